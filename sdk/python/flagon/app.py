"""Route dispatch: views registered by route name, Flask style."""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, Union

from . import _host, log
from .errors import HTTPError
from .request import Request
from .response import Response

#: What a view may return: a `Response`; a `str` (sent as `text/plain`); a dict or list (sent
#: as JSON).
ViewResult = Union[Response, str, dict[str, Any], list[Any]]
View = Callable[..., ViewResult]
V = TypeVar("V", bound=View)


class _Entry:
    __slots__ = ("view", "methods")

    def __init__(self, view: View, methods: frozenset[str] | None) -> None:
        self.view = view
        self.methods = methods


class App:
    """A handler component's routes.

    Register a view per route `name` from `flagon.toml` (the host matches paths and methods;
    the view gets the request and the route's path parameters as keyword arguments):

        app = App()

        @app.route("greet")                  # path = "/hello/{name}", name = "greet"
        def greet(req: Request, name: str) -> str:
            return f"Hello, {name}!\\n"

        WitWorld = app.export()              # what componentize-py calls

    One route name may have several views for different methods (`@app.get("login")` and
    `@app.post("login")`); a view without `methods` takes any method the route allows.
    """

    def __init__(self) -> None:
        self._routes: dict[str, list[_Entry]] = {}
        self._not_found: View | None = None

    def route(self, name: str, *, methods: Iterable[str] | None = None) -> Callable[[V], V]:
        """Register the decorated function as the view of the route `name`, for `methods`
        (all of them when None)."""
        allowed = None if methods is None else frozenset(m.upper() for m in methods)

        def register(view: V) -> V:
            entries = self._routes.setdefault(name, [])
            if any(e.methods is None and allowed is None for e in entries):
                raise ValueError(f"route `{name}` already has a view for every method")
            if allowed is not None:
                clash = [m for e in entries if e.methods for m in e.methods & allowed]
                if clash:
                    raise ValueError(f"route `{name}` already has a view for {sorted(clash)}")
            entries.append(_Entry(view, allowed))
            return view

        return register

    def get(self, name: str) -> Callable[[V], V]:
        """`route(name, methods=["GET"])` (HEAD requests use it too)."""
        return self.route(name, methods=["GET"])

    def post(self, name: str) -> Callable[[V], V]:
        return self.route(name, methods=["POST"])

    def put(self, name: str) -> Callable[[V], V]:
        return self.route(name, methods=["PUT"])

    def patch(self, name: str) -> Callable[[V], V]:
        return self.route(name, methods=["PATCH"])

    def delete(self, name: str) -> Callable[[V], V]:
        return self.route(name, methods=["DELETE"])

    def not_found(self, view: V) -> V:
        """Register the view for requests whose route has no view (the default answers an
        empty 404, which gets the app's `[errors]` page)."""
        self._not_found = view
        return view

    # -- dispatch --------------------------------------------------------------------------

    def _find(self, req: Request) -> View | Response:
        entries = self._routes.get(req.route or "")
        if not entries:
            if self._not_found is not None:
                return self._not_found
            return Response(status=404)
        method = req.method
        for e in entries:
            if e.methods is not None and method in e.methods:
                return e.view
        if method == "HEAD":
            for e in entries:
                if e.methods is not None and "GET" in e.methods:
                    return e.view
        for e in entries:
            if e.methods is None:
                return e.view
        allow = sorted({m for e in entries for m in e.methods or ()})
        return Response.text("method not allowed\n", 405).with_header("allow", ", ".join(allow))

    def dispatch(self, req: Request) -> Response:
        """Run the view for `req` and turn what it returns or raises into a `Response`.

        An `HTTPError` becomes its response (5xx messages are logged, not shown). Any other
        exception is logged with its traceback and answered with an empty 500, which gets the
        app's error page.
        """
        try:
            found = self._find(req)
            if isinstance(found, Response):
                return found
            return to_response(found(req, **req.params))
        except HTTPError as e:
            if e.status >= 500:
                log.error(f"handler error: {e.message}")
            return Response.from_error(e)
        except Exception:
            log.error(f"unhandled exception in route {req.route!r}:\n{traceback.format_exc()}")
            return Response(status=500)

    def handle(self, raw: Any) -> Any:
        """The world's `handle` export: a WIT request in, a WIT response out."""
        r = self.dispatch(Request(raw))
        return _host.types.Response(r.status, r.headers, r.body)

    def export(self) -> type:
        """The class componentize-py instantiates for the world's exports. Assign it to
        `WitWorld` at the top level of the app module: `WitWorld = app.export()`."""
        app = self

        class WitWorld:
            def handle(self, request: Any) -> Any:
                return app.handle(request)

        return WitWorld


def to_response(value: object) -> Response:
    """A view's return value as a `Response`."""
    if isinstance(value, Response):
        return value
    if isinstance(value, str):
        return Response.text(value)
    if isinstance(value, (dict, list)):
        return Response.json(value)
    raise TypeError(
        f"a view must return a Response, str, dict or list, not {type(value).__name__}"
    )
