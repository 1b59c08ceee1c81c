"""Invitations: a pending seat, claimed once with an emailed token."""
