"""ARQ workers: thin job functions over tenantry's services. Never imported by tenantry."""
