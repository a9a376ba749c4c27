"""Roost gateway: live events over Server-Sent Events, resumable from the durable event log."""
