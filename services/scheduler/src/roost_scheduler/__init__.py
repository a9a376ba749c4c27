"""Roost's scheduler service: DAG progression, run completion, outbox sweeping."""
