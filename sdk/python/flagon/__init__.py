"""Write Flagon handler components in Python.

A handler is a module that registers views by route name and exports them:

    from flagon import App, Request, Response

    app = App()

    @app.route("greet")
    def greet(req: Request, name: str) -> Response:
        return Response.text(f"Hello, {name}!\\n")

    WitWorld = app.export()

Build it with `python3 <sdk>/build.py --wit <wit> --output build/app.wasm app` (see
`docs/lang/python.md`). Each request gets a fresh instance, so module globals do not carry
state from one request to the next; keep state in `session`, `kv` or `sql`.

The modules `config`, `crypto`, `kv`, `outbound`, `session`, `sql` and `templates` need their
grants in `flagon.toml`; `log` and `settings` are granted to every component.
"""

from __future__ import annotations

from . import config, crypto, kv, log, outbound, session, settings, sql, templates
from .app import App, to_response
from .errors import HTTPError, abort, bad_request
from .request import FormField, Headers, Identity, Request, UploadedFile
from .response import Response

__all__ = [
    "App",
    "FormField",
    "HTTPError",
    "Headers",
    "Identity",
    "Request",
    "Response",
    "UploadedFile",
    "abort",
    "bad_request",
    "config",
    "crypto",
    "kv",
    "log",
    "outbound",
    "session",
    "settings",
    "sql",
    "templates",
    "to_response",
]
