"""Errors a handler raises; each becomes a response."""

from __future__ import annotations

from typing import NoReturn

REASONS: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class HTTPError(Exception):
    """An error that ends the request with `status`.

    Raise it (or `abort(...)`) anywhere in a handler. A client error (4xx) answers with its
    message as plain text, which should say what to fix. A server error (5xx) answers with only
    the status's reason; the message goes to the log, attributed to the request id.
    """

    status: int
    message: str

    def __init__(self, status: int, message: str = "") -> None:
        if not 400 <= status <= 999:
            raise ValueError(f"an HTTPError's status must be in 400..=999, not {status}")
        self.status = status
        self.message = message or REASONS.get(status, "error")
        super().__init__(f"{status} {self.message}")


def abort(status: int, message: str = "") -> NoReturn:
    """Stop the handler and answer `status` (see `HTTPError`)."""
    raise HTTPError(status, message)


def bad_request(message: str) -> HTTPError:
    """A `400 Bad Request` to raise: `raise bad_request("a must be a number")`."""
    return HTTPError(400, message)

