"""The request a handler receives, as the host parsed and routed it."""

from __future__ import annotations

import json as _json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from . import _host
from .errors import HTTPError

_METHODS: dict[type, str] = {
    _host.types.Method_Get: "GET",
    _host.types.Method_Head: "HEAD",
    _host.types.Method_Post: "POST",
    _host.types.Method_Put: "PUT",
    _host.types.Method_Delete: "DELETE",
    _host.types.Method_Patch: "PATCH",
    _host.types.Method_Options: "OPTIONS",
}


def method_name(method: Any) -> str:
    """The WIT `method` variant as an uppercase string (`other(m)` as `m`)."""
    if isinstance(method, _host.types.Method_Other):
        return str(method.value)
    return _METHODS[type(method)]


def method_variant(name: str) -> Any:
    """An uppercase method string as the WIT `method` variant."""
    upper = name.upper()
    for cls, text in _METHODS.items():
        if text == upper:
            return cls()
    return _host.types.Method_Other(name)


class Headers(Mapping[str, str]):
    """Header (name, value) pairs; lookups ignore the case of names.

    `headers["accept"]` and `headers.get("Accept")` give the first value of a name,
    `headers.get_all("accept")` every value, and iterating gives each name once (lowercase).
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = list(items or [])

    def __getitem__(self, name: str) -> str:
        lower = name.lower()
        for k, v in self._items:
            if k.lower() == lower:
                return v
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for k, _ in self._items:
            lower = k.lower()
            if lower not in seen:
                seen.add(lower)
                yield lower

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self._items})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k.lower() == name.lower() for k, _ in self._items)

    def get_all(self, name: str) -> list[str]:
        """Every value of `name`, in the order received."""
        lower = name.lower()
        return [v for k, v in self._items if k.lower() == lower]

    def items_all(self) -> list[tuple[str, str]]:
        """All (name, value) pairs, repeated names included."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass(frozen=True)
class UploadedFile:
    """A file uploaded in a `multipart/form-data` form. `filename` and `content_type` are what
    the browser sent: untrusted, never a path."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class FormField:
    """One field of a form, in order: a text field (`file` is None) or an uploaded file."""

    name: str
    value: str
    file: UploadedFile | None = None


@dataclass(frozen=True)
class Identity:
    """Who sent a request, as the route's authenticator established it."""

    subject: str
    display_name: str | None
    roles: list[str] = field(default_factory=list)
    claims: dict[str, str] = field(default_factory=dict)
    authenticator: str = ""

    def has_role(self, role: str) -> bool:
        return role in self.roles


class Request:
    """One incoming request. The host has read the whole body (within the route's `max_body`),
    decoded any form, and checked the CSRF token of unsafe requests to session routes."""

    __slots__ = ("raw", "method", "headers", "_form", "_query")

    def __init__(self, raw: Any) -> None:
        #: The `flagon:app/types.request` record the host sent.
        self.raw = raw
        #: The method, uppercase: `"GET"`, `"POST"`, ...
        self.method: str = method_name(raw.method)
        #: The headers: lowercase names, grouped by name; never the host's session cookie.
        self.headers = Headers(raw.headers)
        self._form: list[FormField] | None = None
        self._query: list[tuple[str, str]] | None = None

    # -- routing ---------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The path, still percent-encoded, without the query string."""
        return str(self.raw.path)

    @property
    def route(self) -> str | None:
        """The `name` of the matched route in `flagon.toml`."""
        return self.raw.route  # type: ignore[no-any-return]

    @property
    def params(self) -> dict[str, str]:
        """The route's path parameters (`{name}`, `{*rest}`), percent-decoded."""
        return dict(self.raw.params)

    def param(self, name: str, default: str | None = None) -> str | None:
        """One path parameter."""
        for k, v in self.raw.params:
            if k == name:
                return str(v)
        return default

    # -- query -----------------------------------------------------------------------------

    @property
    def query_string(self) -> str:
        """The raw query string, without the `?` (empty when there is none)."""
        return str(self.raw.query)

    @property
    def query(self) -> dict[str, str]:
        """The query parameters, decoded; the first value of a repeated name."""
        out: dict[str, str] = {}
        for k, v in self._query_pairs():
            out.setdefault(k, v)
        return out

    def query_list(self, name: str) -> list[str]:
        """Every value of the query parameter `name`."""
        return [v for k, v in self._query_pairs() if k == name]

    def arg(self, name: str, default: str | None = None) -> str | None:
        """One query parameter (its first value)."""
        for k, v in self._query_pairs():
            if k == name:
                return v
        return default

    def _query_pairs(self) -> list[tuple[str, str]]:
        if self._query is None:
            try:
                self._query = parse_qsl(self.raw.query, keep_blank_values=True, errors="strict")
            except (UnicodeDecodeError, ValueError) as e:
                raise HTTPError(400, f"invalid query string: {e}") from None
        return self._query

    # -- headers and cookies ---------------------------------------------------------------

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of a header (the name is matched case-insensitively)."""
        return self.headers.get(name, default)

    @property
    def content_type(self) -> str:
        """The body's media type, lowercase, without parameters: `application/json`."""
        value = self.headers.get("content-type", "")
        return value.split(";", 1)[0].strip().lower()

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies of the `Cookie` header (the host's own session cookie is never here: use
        `flagon.session`)."""
        out: dict[str, str] = {}
        for header in self.headers.get_all("cookie"):
            for pair in header.split(";"):
                name, sep, value = pair.strip().partition("=")
                if sep and name:
                    out.setdefault(name, value.strip('"'))
        return out

    def cookie(self, name: str, default: str | None = None) -> str | None:
        """One cookie's value."""
        return self.cookies.get(name, default)

    # -- body ------------------------------------------------------------------------------

    @property
    def body(self) -> bytes:
        """The body (empty for a multipart form: its parts are in `form_fields`)."""
        return bytes(self.raw.body)

    def text(self) -> str:
        """The body as UTF-8 text; anything else is a 400."""
        try:
            return bytes(self.raw.body).decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPError(400, "request body is not valid UTF-8") from None

    def json(self) -> Any:
        """The body parsed as JSON.

        A `Content-Type` other than `application/json` (or `*+json`) is a 415, and a body that
        does not parse is a 400 that says where.
        """
        ct = self.content_type
        if not (ct == "application/json" or ct.endswith("+json")):
            raise HTTPError(415, "expected a request body with `Content-Type: application/json`")
        try:
            return _json.loads(bytes(self.raw.body))
        except ValueError as e:
            raise HTTPError(400, f"invalid JSON body: {e}") from None

    def form(self) -> dict[str, str]:
        """The text fields of a form (urlencoded or multipart, decoded by the host): the first
        value of each name. A body that is not a form is a 415."""
        ct = self.content_type
        if ct not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise HTTPError(
                415,
                "expected a form body (`application/x-www-form-urlencoded` or "
                "`multipart/form-data`)",
            )
        out: dict[str, str] = {}
        for f in self.form_fields:
            if f.file is None:
                out.setdefault(f.name, f.value)
        return out

    def form_list(self, name: str) -> list[str]:
        """Every text value of the form field `name`."""
        return [f.value for f in self.form_fields if f.name == name and f.file is None]

    def field(self, name: str, default: str | None = None) -> str | None:
        """The first text value of the form field `name`."""
        for f in self.form_fields:
            if f.name == name and f.file is None:
                return f.value
        return default

    @property
    def form_fields(self) -> list[FormField]:
        """Every field of the form, in order: text fields and uploaded files."""
        if self._form is None:
            self._form = [
                FormField(
                    f.name,
                    f.value,
                    None
                    if f.file is None
                    else UploadedFile(f.file.filename, f.file.content_type, bytes(f.file.data)),
                )
                for f in self.raw.form
            ]
        return self._form

    @property
    def files(self) -> dict[str, UploadedFile]:
        """The uploaded files by field name (the first of each name)."""
        out: dict[str, UploadedFile] = {}
        for f in self.form_fields:
            if f.file is not None:
                out.setdefault(f.name, f.file)
        return out

    def file(self, name: str) -> UploadedFile | None:
        """The first file uploaded under the field `name`."""
        return self.files.get(name)

    # -- who -------------------------------------------------------------------------------

    @property
    def client(self) -> str:
        """The client's address as the host saw it, e.g. `127.0.0.1:50412`."""
        return str(self.raw.client)

    @property
    def request_id(self) -> str:
        """This request's id, as in the host's logs and error pages."""
        return str(self.raw.request_id)

    @property
    def identity(self) -> Identity | None:
        """Who sent the request, on routes with `auth`; None otherwise and for anonymous
        requests. The host has already checked the route's `roles`."""
        i = self.raw.identity
        if i is None:
            return None
        return Identity(i.subject, i.display_name, list(i.roles), dict(i.claims), i.authenticator)

    def has_role(self, role: str) -> bool:
        """Whether the request's identity has `role`."""
        identity = self.identity
        return identity is not None and identity.has_role(role)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path} route={self.route!r}>"
