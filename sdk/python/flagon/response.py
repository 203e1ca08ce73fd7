"""The response a handler returns."""

from __future__ import annotations

import json as _json
from collections.abc import Mapping
from typing import Any

from . import templates
from .errors import REASONS, HTTPError

_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"

# The Content-Type of a rendered template, by extension (anything else is HTML).
_TEMPLATE_TYPES: dict[str, str] = {
    "txt": _TEXT,
    "text": _TEXT,
    "json": "application/json",
    "xml": "application/xml; charset=utf-8",
    "svg": "image/svg+xml",
    "css": "text/css; charset=utf-8",
}


class Response:
    """A response: status, headers and body.

    Build one with `Response.text`, `Response.html`, `Response.json`, `Response.redirect` or
    `Response.render`, or directly: `Response(status=404)` (an empty 404 gets the app's error
    page from `[errors]` in flagon.toml). Add headers with `with_header`, which returns the
    response so calls chain.
    """

    __slots__ = ("status", "headers", "body")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: list[tuple[str, str]] | Mapping[str, str] | None = None,
    ) -> None:
        if not 200 <= status <= 999:
            raise ValueError(f"a handler's status must be in 200..=999, not {status}")
        self.status: int = status
        if headers is None:
            self.headers: list[tuple[str, str]] = []
        elif isinstance(headers, Mapping):
            self.headers = list(headers.items())
        else:
            self.headers = list(headers)
        self.body: bytes = body.encode("utf-8") if isinstance(body, str) else bytes(body)

    @classmethod
    def text(cls, body: str, status: int = 200) -> Response:
        """A `text/plain; charset=utf-8` response."""
        return cls(body, status, [("content-type", _TEXT)])

    @classmethod
    def html(cls, body: str, status: int = 200) -> Response:
        """A `text/html; charset=utf-8` response. The SDK does not escape `body`: build HTML
        from untrusted input with `Response.render` (the host's templates escape it)."""
        return cls(body, status, [("content-type", _HTML)])

    @classmethod
    def json(cls, value: Any, status: int = 200) -> Response:
        """`value` as compact JSON (`application/json`). A value `json.dumps` cannot encode
        is a 500."""
        try:
            body = _json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise HTTPError(500, f"could not serialise the JSON response: {e}") from None
        return cls(body, status, [("content-type", "application/json")])

    @classmethod
    def redirect(cls, location: str, status: int = 303) -> Response:
        """A redirect, `303 See Other` by default: after a form post the browser follows with a
        GET. Pass 301, 302, 307 or 308 for the others."""
        if status not in (301, 302, 303, 307, 308):
            raise ValueError(f"{status} is not a redirect status")
        return cls(b"", status, [("location", location)])

    @classmethod
    def render(
        cls, template: str, context: Mapping[str, Any] | None = None, /, status: int = 200,
        **values: Any,
    ) -> Response:
        """Render the app's template `template` (a path under `templates/`) with `context` and
        keyword `values` as its variables. The `Content-Type` follows the extension (`.html`:
        `text/html`, `.txt`: `text/plain`, `.json`: `application/json`, ...). Needs
        `grants.templates`; a failed render is a 500."""
        body = templates.render(template, context, **values)
        name = template.removesuffix(".j2").removesuffix(".jinja")
        ext = name.rsplit(".", 1)[-1] if "." in name else ""
        return cls(body, status, [("content-type", _TEMPLATE_TYPES.get(ext, _HTML))])

    @classmethod
    def from_error(cls, error: HTTPError) -> Response:
        """The response for an `HTTPError`: a 4xx shows its message, a 5xx only its reason."""
        shown = error.message if error.status < 500 else REASONS.get(error.status, "Server Error")
        return cls.text(f"{shown}\n", error.status)

    def with_header(self, name: str, value: str) -> Response:
        """Add a header (names are case-insensitive; the host validates names and values)."""
        self.headers.append((name, value))
        return self

    def with_status(self, status: int) -> Response:
        """Replace the status code."""
        self.status = status
        return self

    def header(self, name: str) -> str | None:
        """The first value of a header set so far."""
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)

    def __repr__(self) -> str:
        return f"<Response {self.status} {len(self.body)} bytes>"
