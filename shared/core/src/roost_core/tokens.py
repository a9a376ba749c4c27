"""API tokens: random secrets shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid

import psycopg

from roost_core.db import DEFAULT_TENANT_ID, translate_errors
from roost_core.queries import SQL

_INSERT = SQL.insert_token

TOKEN_PREFIX = "rst_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(conninfo: str, name: str, tenant_id: str = DEFAULT_TENANT_ID) -> str:
    """Create a token named ``name`` and return it; only its hash is stored."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with translate_errors(), psycopg.connect(conninfo) as conn:
        conn.execute(
            _INSERT,
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "name": name,
                "token_hash": hash_token(token),
            },
        )
    return token
