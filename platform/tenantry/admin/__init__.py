"""Platform operators: every tenant, plan and status."""
