"""API tokens: random secrets shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import psycopg

from roost_core.db import DEFAULT_TENANT_ID, translate_errors

TOKEN_PREFIX = "rst_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(conninfo: str, name: str, tenant_id: str = DEFAULT_TENANT_ID) -> str:
    """Create a token named ``name`` and return it; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with translate_errors(), psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO api_tokens (id, tenant_id, name, token_hash) VALUES (%s, %s, %s, %s)",
            (uuid.uuid4(), tenant_id, name, hash_token(token)),
        )
    return token
