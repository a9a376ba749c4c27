"""Bearer-token authentication, shared by the api and the gateway (whose middleware,
``roost_core.authentication``, calls it).

Two kinds of token:

* API tokens (``rst_...``): random secrets, stored only as a SHA-256 hash, sent in an
  ``Authorization: Bearer`` header.
* Stream tokens (``rss_...``): short-lived tokens for browsers, whose EventSource cannot
  send headers and must put a token in the URL. A stream token names its API token,
  its expiry, and an HMAC of both keyed by the API token's stored hash, so any api or
  gateway replica can check it with no shared secret and no extra table; revoking the
  API token revokes its stream tokens. A leaked stream token (URLs end up in logs)
  expires in minutes and cannot be extended without the API token.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from typing import Any

from psycopg_pool import AsyncConnectionPool

from roost_core.errors import AuthenticationError
from roost_core.queries import SQL
from roost_core.tokens import hash_token

# A token is looked up by its hash (a bearer token) or its id (a stream token).
_BY_COLUMN = {"token_hash": SQL.token_by_hash, "id": SQL.token_by_id}

STREAM_TOKEN_PREFIX = "rss_"


@dataclass(frozen=True)
class Principal:
    """Who a token speaks for."""

    tenant_id: str
    token_id: str
    token_hash: str


def _signature(token_hash: str, token_id: str, expires: int) -> str:
    message = f"{token_id}.{expires}".encode()
    return hmac.new(token_hash.encode(), message, hashlib.sha256).hexdigest()[:32]


def mint_stream_token(principal: Principal, ttl_seconds: float) -> tuple[str, int]:
    """A stream token for ``principal`` valid ``ttl_seconds``, and its expiry (unix)."""
    expires = int(time.time() + ttl_seconds)
    signature = _signature(principal.token_hash, principal.token_id, expires)
    return f"{STREAM_TOKEN_PREFIX}{principal.token_id}.{expires}.{signature}", expires


class TokenVerifier:
    """Checks tokens against their stored hashes, caching hits briefly so the hot path
    does not pay a query per request (revocation takes effect within ``ttl``)."""

    def __init__(self, pool: AsyncConnectionPool[Any], ttl: float) -> None:
        self._pool = pool
        self._ttl = ttl
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def principal(self, authorization: str | None) -> Principal:
        """Who the API token in an ``Authorization`` header speaks for, or raise."""
        if not authorization:
            raise AuthenticationError("missing Authorization header: send 'Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <token>'")
        digest = hash_token(token.strip())
        found = await self._lookup("token_hash", digest)
        if found is None:
            raise AuthenticationError("invalid or revoked token")
        return found

    async def stream_principal(self, token: str) -> Principal:
        """Who a stream token (from a URL's ``token`` parameter) speaks for, or raise."""
        if not token.startswith(STREAM_TOKEN_PREFIX):
            raise AuthenticationError(
                "the token query parameter takes a stream token (rss_...) from"
                " POST /api/v1/stream-tokens; send API tokens in the Authorization header"
            )
        token_id, _, rest = token[len(STREAM_TOKEN_PREFIX) :].partition(".")
        expires_text, _, signature = rest.partition(".")
        if not expires_text.isdigit() or not signature:
            raise AuthenticationError("malformed stream token")
        expires = int(expires_text)
        if expires < time.time():
            raise AuthenticationError("stream token expired: get a new one")
        try:
            found = await self._lookup("id", token_id)
        except ValueError:
            found = None
        if found is None or not hmac.compare_digest(
            signature, _signature(found.token_hash, token_id, expires)
        ):
            raise AuthenticationError("invalid or revoked stream token")
        return found

    async def _lookup(self, column: str, value: str) -> Principal | None:
        key = f"{column}:{value}"
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit and hit[1] > now:
            return hit[0]
        if column == "id":
            uuid.UUID(value)  # raises ValueError: not a token id
        async with self._pool.connection() as conn:
            cur = await conn.execute(_BY_COLUMN[column], {"value": value})
            row = await cur.fetchone()
        if row is None:
            return None
        principal = Principal(str(row[0]), str(row[1]), row[2])
        self._cache[key] = (principal, now + self._ttl)
        return principal
