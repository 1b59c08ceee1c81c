"""What `tenantry dev` needs and production never runs: the process supervisor, the
state file other commands read, readable dev mail, demo data and the tiny pages that
email links open in development."""
