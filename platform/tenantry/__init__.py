"""Tenantry: a multi-tenant SaaS API platform."""

__version__ = "0.1.0"
