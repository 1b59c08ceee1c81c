"""Members of a tenant and their roles."""
