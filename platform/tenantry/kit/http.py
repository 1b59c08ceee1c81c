"""HTTP constants shared by the app factory and the domains."""

API_PREFIX = "/api/v1"
