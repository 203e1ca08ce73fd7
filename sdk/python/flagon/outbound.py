"""HTTP requests to the origins `flagon.toml` grants (`grants.outbound`), and nowhere else.

Needs `grants = { outbound = ["https://api.example.com"] }`. The host checks every address and
redirect, follows up to 5 redirects, and bounds the exchange by the component's timeout.

    r = outbound.get("https://api.example.com/v1/items", headers={"accept": "application/json"})
    items = r.json()
"""

from __future__ import annotations

import json as _json
from collections.abc import Mapping
from typing import Any

from . import _host
from .errors import HTTPError
from .request import Headers, method_variant


class OutboundError(HTTPError):
    """A request the host refused (origin not granted, private address, framing header) or
    that failed (network, timeout, a body over 10 MiB). A 502 if not caught."""

    def __init__(self, message: str) -> None:
        super().__init__(502, message)


class Response:
    """The final response, after redirects, fully read."""

    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status = status
        self.headers = Headers(headers)
        self.body = body

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def text(self) -> str:
        """The body as UTF-8 (a 502 if it is not)."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise OutboundError("the upstream response is not UTF-8") from None

    def json(self) -> Any:
        """The body parsed as JSON (a 502 if it does not parse)."""
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise OutboundError(f"invalid JSON from upstream: {e}") from None

    def __repr__(self) -> str:
        return f"<outbound.Response {self.status} {len(self.body)} bytes>"


def request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | str = b"",
    json: Any = None,
) -> Response:
    """Send a request and read the whole response. `json=` sends a JSON body with
    `Content-Type: application/json`. Framing headers (`host`, `content-length`, ...) are
    refused: the host sets them."""
    host = _host.require(_host.outbound_http, "outbound_http")
    pairs: list[tuple[str, str]] = (
        list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    )
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if json is not None:
        data = _json.dumps(json, separators=(",", ":")).encode("utf-8")
        if not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("content-type", "application/json"))
    req = host.OutgoingRequest(method_variant(method), url, pairs, data)
    try:
        r = host.send(req)
    except _host.Err as e:
        raise OutboundError(str(e.value)) from None
    return Response(int(r.status), list(r.headers), bytes(r.body))


def get(url: str, *, headers: Mapping[str, str] | list[tuple[str, str]] | None = None) -> Response:
    """`GET url`."""
    return request("GET", url, headers=headers)


def post(
    url: str,
    *,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | str = b"",
    json: Any = None,
) -> Response:
    """`POST url` with `body`, or `json` as a JSON body."""
    return request("POST", url, headers=headers, body=body, json=json)
