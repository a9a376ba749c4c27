"""Workflows the end-to-end tests run on real workers."""
