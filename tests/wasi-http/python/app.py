"""A standard `wasi:http/proxy` component in Python, the kind written for `wasmtime serve` or
Spin. It uses no Flagon interface. Modelled on componentize-py's `examples/http`, but with
plain blocking pollables instead of its asyncio `poll_loop`.

    GET /              200 text/plain "hello from python wasi:http"
    GET /headers       200 JSON: the request's method, path with query, and headers
    GET /fetch?url=U   an outgoing GET of U through wasi:http/outgoing-handler: 200 with
                       "<status>\\n<body>", or 502 with the error if the request fails
    anything else      404
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

from componentize_py_types import Err, Ok
from wit_world import exports
from wit_world.imports import outgoing_handler
from wit_world.imports.streams import StreamError_Closed
from wit_world.imports.types import (
    ErrorCode,
    Fields,
    IncomingBody,
    IncomingRequest,
    Method,
    Method_Connect,
    Method_Delete,
    Method_Get,
    Method_Head,
    Method_Options,
    Method_Other,
    Method_Patch,
    Method_Post,
    Method_Put,
    Method_Trace,
    OutgoingBody,
    OutgoingRequest,
    OutgoingResponse,
    ResponseOutparam,
    Scheme,
    Scheme_Http,
    Scheme_Https,
    Scheme_Other,
)

# `blocking-write-and-flush` takes at most 4096 bytes per call.
WRITE_CHUNK = 4096
READ_CHUNK = 64 * 1024
# Enough for the tests; a real proxy would stream instead of buffering.
MAX_FETCHED = 1024 * 1024

METHODS: dict[type, str] = {
    Method_Get: "GET",
    Method_Head: "HEAD",
    Method_Post: "POST",
    Method_Put: "PUT",
    Method_Delete: "DELETE",
    Method_Connect: "CONNECT",
    Method_Options: "OPTIONS",
    Method_Trace: "TRACE",
    Method_Patch: "PATCH",
}


def method_name(method: Method) -> str:
    if isinstance(method, Method_Other):
        return method.value
    return METHODS[type(method)]


class IncomingHandler(exports.IncomingHandler):
    """The `wasi:http/incoming-handler` export."""

    def handle(self, request: IncomingRequest, response_out: ResponseOutparam) -> None:
        method = request.method()
        target = request.path_with_query() or "/"
        path = target.split("?", 1)[0]
        if not isinstance(method, Method_Get):
            respond(response_out, 405, "text/plain", b"only GET\n")
        elif path == "/":
            respond(response_out, 200, "text/plain", b"hello from python wasi:http")
        elif path == "/headers":
            headers = [
                [name, value.decode("utf-8", "replace")]
                for name, value in request.headers().entries()
            ]
            info = {"method": method_name(method), "path_with_query": target, "headers": headers}
            respond(response_out, 200, "application/json", json.dumps(info).encode())
        elif path == "/fetch":
            urls = parse_qs(urlsplit(target).query).get("url")
            if not urls:
                respond(response_out, 400, "text/plain", b"missing ?url=\n")
                return
            try:
                status, fetched = fetch(urls[0])
            except FetchError as e:
                respond(response_out, 502, "text/plain", f"{e}\n".encode())
                return
            respond(response_out, 200, "text/plain", f"{status}\n".encode() + fetched)
        else:
            respond(response_out, 404, "text/plain", b"not found\n")


def respond(out: ResponseOutparam, status: int, content_type: str, body: bytes) -> None:
    """Send a whole response."""
    response = OutgoingResponse(
        Fields.from_list(
            [("content-type", content_type.encode()), ("content-length", str(len(body)).encode())]
        )
    )
    response.set_status_code(status)
    outgoing = response.body()
    ResponseOutparam.set(out, Ok(response))
    with outgoing.write() as stream:
        for i in range(0, len(body), WRITE_CHUNK):
            stream.blocking_write_and_flush(body[i : i + WRITE_CHUNK])
    OutgoingBody.finish(outgoing, None)


class FetchError(Exception):
    pass


def fetch(url: str) -> tuple[int, bytes]:
    """GET `url` through wasi:http/outgoing-handler, blocking on its pollables."""
    parts = urlsplit(url)
    scheme: Scheme
    if parts.scheme == "http":
        scheme = Scheme_Http()
    elif parts.scheme == "https":
        scheme = Scheme_Https()
    elif parts.scheme:
        scheme = Scheme_Other(parts.scheme)
    else:
        raise FetchError(f"not an absolute URL: {url!r}")
    if not parts.netloc:
        raise FetchError(f"no host in {url!r}")
    request = OutgoingRequest(Fields())
    request.set_scheme(scheme)
    request.set_authority(parts.netloc)
    request.set_path_with_query((parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    OutgoingBody.finish(request.body(), None)
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise FetchError(describe(e.value)) from None
    with future:
        while (result := future.get()) is None:
            with future.subscribe() as ready:
                ready.block()
    if isinstance(result, Err):
        raise FetchError("the response was already taken")
    inner = result.value
    if isinstance(inner, Err):
        raise FetchError(describe(inner.value))
    response = inner.value
    with response:
        status = response.status()
        body = read_all(response.consume())
    return status, body


def read_all(body: IncomingBody) -> bytes:
    chunks: list[bytes] = []
    size = 0
    with body.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(READ_CHUNK)
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise FetchError("reading the response body failed") from None
            size += len(chunk)
            if size > MAX_FETCHED:
                raise FetchError(f"the response body is over {MAX_FETCHED} bytes")
            chunks.append(chunk)
    IncomingBody.finish(body)
    return b"".join(chunks)


def describe(code: ErrorCode) -> str:
    """An `error-code` as text: `ConnectionRefused`, `DnsError(...)`, `InternalError('...')`."""
    name = type(code).__name__.removeprefix("ErrorCode_")
    value = getattr(code, "value", None)
    return name if value is None else f"{name}({value!r})"
