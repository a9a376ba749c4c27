"""Sessions, CSRF and the Content-Security-Policy.

The session is the user's API token in an HttpOnly, SameSite=Strict cookie: scripts
cannot read it and other sites cannot send it. Every form that changes something carries
a CSRF token derived from the session token (an HMAC), so it needs no server-side store:
a page from another origin cannot know it, since it cannot read the cookie.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "roost_session"

# Only this origin: no third-party script, style, font, frame or connection.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self' {gateway}; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'"
)


def csrf_token(session: str) -> str:
    return hmac.new(session.encode(), b"roost-dashboard-csrf", hashlib.sha256).hexdigest()


def csrf_ok(session: str | None, submitted: str | None) -> bool:
    return bool(session and submitted) and hmac.compare_digest(
        csrf_token(session or ""), submitted or ""
    )


class SecurityHeaders:
    """Adds the CSP and the usual hardening headers to every response."""

    def __init__(self, app: ASGIApp, gateway_origin: str) -> None:
        self.app = app
        self.csp = CSP.format(gateway=gateway_origin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = self.csp
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"
                headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, with_headers)
