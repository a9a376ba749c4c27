"""Bearer-token authentication: every endpoint needs a token except /health, /ready and
the OpenAPI document (which describes the API and holds no data)."""

from __future__ import annotations

import time
from typing import Any

from psycopg_pool import AsyncConnectionPool

from roost_core.errors import AuthenticationError
from roost_core.tokens import hash_token


class TokenVerifier:
    """Checks tokens against their stored hashes, caching hits briefly so the hot path
    does not pay a query per request (revocation takes effect within ``ttl``)."""

    def __init__(self, pool: AsyncConnectionPool[Any], ttl: float) -> None:
        self._pool = pool
        self._ttl = ttl
        self._cache: dict[str, tuple[str, float]] = {}

    async def tenant_for(self, authorization: str | None) -> str:
        """The tenant id of the token in an ``Authorization`` header, or raise."""
        if not authorization:
            raise AuthenticationError("missing Authorization header: send 'Bearer <token>'")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("malformed Authorization header: expected 'Bearer <token>'")
        digest = hash_token(token.strip())
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit and hit[1] > now:
            return hit[0]
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT tenant_id FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
                (digest,),
            )
            row = await cur.fetchone()
        if row is None:
            raise AuthenticationError("invalid or revoked token")
        tenant = str(row[0])
        self._cache[digest] = (tenant, now + self._ttl)
        return tenant
