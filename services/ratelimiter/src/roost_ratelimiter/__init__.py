"""Roost ratelimiter: admits rate-limited task attempts to their worker queues."""
