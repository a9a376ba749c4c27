"""Roost's dashboard: a Starlette app that talks only to the api and the gateway."""
