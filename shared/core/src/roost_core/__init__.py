"""Roost internals shared by the services and the SDK. Not a public API."""
