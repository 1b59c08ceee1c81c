"""Tenants: create, list, the current one, deletion and the purge that follows."""
