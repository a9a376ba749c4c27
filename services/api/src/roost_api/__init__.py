"""Roost's api service: the HTTP front door (Starlette)."""
