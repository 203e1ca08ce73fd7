"""The visitor's session, kept by the host in an encrypted cookie.

Needs `grants = { session = true }`, which also turns on CSRF checks for the component's unsafe
routes: put `{{ csrf_token() }}` in a form field named `csrf_token`, or send an `X-CSRF-Token`
header. Every call marks the response `Vary: Cookie`.
"""

from __future__ import annotations

import json as _json
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from . import _host
from .errors import HTTPError


def _session() -> ModuleType:
    return _host.require(_host.session, "session")


def get(key: str, default: str | None = None) -> str | None:
    """The value stored under `key`."""
    value = _session().get(key)
    return default if value is None else str(value)


def set(key: str, value: str) -> None:  # noqa: A001  (the WIT name)
    """Store `value` under `key`. A 500 if the cookie would grow past `[session] max_size`:
    keep an id in the session and the data in `kv` or a database."""
    try:
        _session().set(key, value)
    except _host.Err as e:
        raise HTTPError(500, f"session.set: {e.value}") from None


def get_json(key: str) -> Any:
    """The value stored with `set_json`, or None (also when it is not JSON)."""
    value = get(key)
    if value is None:
        return None
    try:
        return _json.loads(value)
    except ValueError:
        return None


def set_json(key: str, value: Any) -> None:
    """Store `value` as JSON under `key`."""
    set(key, _json.dumps(value, separators=(",", ":")))


def remove(key: str) -> bool:
    """Remove `key`; True when it was present."""
    return bool(_session().remove(key))


def keys() -> list[str]:
    """Every key in the session."""
    return list(_session().keys())


def clear() -> None:
    """Empty the session (log out): values, flashes and the CSRF secret. The response deletes
    the cookie."""
    _session().clear()


def rotate() -> None:
    """A new CSRF secret and session lifetime, the same values: call it when privileges change
    (log in), so that a planted session is worth nothing."""
    _session().rotate()


def flash(category: str, message: str) -> None:
    """Queue a message for the next page (`get_flashed_messages()` in templates)."""
    try:
        _session().flash(category, message)
    except _host.Err as e:
        raise HTTPError(500, f"session.flash: {e.value}") from None


def take_flashes() -> list[tuple[str, str]]:
    """Take the queued (category, message) pairs; they are gone afterwards."""
    return [(str(c), str(m)) for c, m in _session().take_flashes()]


def csrf_token() -> str:
    """A CSRF token for this session (a new one each call, all valid), for a form field
    `csrf_token` or an `X-CSRF-Token` header."""
    return str(_session().csrf_token())


def sign_in(subject: str, name: str | None = None, roles: Sequence[str] = ()) -> None:
    """Sign the visitor in for routes that `plugins/auth-session` authenticates: `rotate()`,
    then the identity under `identity`. Check the password first
    (`flagon.crypto.verify_password`)."""
    rotate()
    set_json("identity", {"subject": subject, "name": name, "roles": list(roles)})


def sign_out() -> None:
    """Sign out: empty the session."""
    clear()
