"""Routes with several methods on one path. Starlette matches a path's routes in turn, so
with one route per method a request with another method is answered 405 by the first,
whose ``Allow`` names only its own method; one route per path, dispatching on the
method, answers with every method the path has."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]
_METHODS = "__roost_methods__"


def resource(path: str, **endpoints: Endpoint) -> Route:
    """One route for ``path``: ``resource("/x", GET=read, POST=create)``."""
    by_method = {method.upper(): endpoint for method, endpoint in endpoints.items()}

    async def dispatch(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await by_method[method](request)

    setattr(dispatch, _METHODS, by_method)
    dispatch.__name__ = f"resource {path}"
    return Route(path, dispatch, methods=list(by_method))


def endpoints_of(route: Route) -> dict[str, Callable[..., object]]:
    """Each method of ``route`` (HEAD aside) with the endpoint that answers it."""
    found = getattr(route.endpoint, _METHODS, None)
    if isinstance(found, dict):
        return dict(found)
    return {m: route.endpoint for m in sorted((route.methods or set()) - {"HEAD"})}
