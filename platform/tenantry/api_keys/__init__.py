"""API keys: machine credentials of a tenant."""
