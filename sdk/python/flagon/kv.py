"""Named key-value stores (`[kv.<name>]` in `flagon.toml`).

Needs `grants = { kv = ["name", ...] }`; a store not granted fails on every call.

    visits = kv.store("cache").increment("visits")
"""

from __future__ import annotations

from datetime import timedelta
from types import ModuleType

from . import _host
from .errors import HTTPError


class KvError(HTTPError):
    """A kv call the host refused or that failed (a 500): a store not granted, a full store,
    a key or value too large, a counter that is not an integer."""

    def __init__(self, message: str) -> None:
        super().__init__(500, message)


def _kv() -> ModuleType:
    return _host.require(_host.kv, "kv")


def _ttl_ms(ttl: float | timedelta) -> int:
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    ms = round(seconds * 1000)
    if ms < 1:
        raise ValueError(f"a kv TTL must be at least 1 ms, not {ttl!r}")
    return ms


class Store:
    """The store `name`. Values are bytes; `str` values are stored as UTF-8."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def get(self, key: str) -> bytes | None:
        """The value under `key`, if present and not expired."""
        try:
            value = _kv().get(self.name, key)
        except _host.Err as e:
            raise KvError(str(e.value)) from None
        return None if value is None else bytes(value)

    def get_str(self, key: str) -> str | None:
        """The value as UTF-8 text (a 500 if it is not)."""
        value = self.get(key)
        if value is None:
            return None
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise KvError(f"the value of `{key}` in kv store `{self.name}` is not UTF-8") from None

    def set(self, key: str, value: bytes | str, ttl: float | timedelta | None = None) -> None:
        """Store `value` under `key`, replacing any value and TTL; with `ttl` (seconds, or a
        timedelta) it expires after that long."""
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        try:
            _kv().set(self.name, key, data, None if ttl is None else _ttl_ms(ttl))
        except _host.Err as e:
            raise KvError(str(e.value)) from None

    def delete(self, key: str) -> bool:
        """Remove `key`; True when it was present."""
        try:
            return bool(_kv().delete(self.name, key))
        except _host.Err as e:
            raise KvError(str(e.value)) from None

    def exists(self, key: str) -> bool:
        try:
            return bool(_kv().exists(self.name, key))
        except _host.Err as e:
            raise KvError(str(e.value)) from None

    def increment(self, key: str, delta: int = 1) -> int:
        """Add `delta` to the integer under `key` (a missing key counts as 0) and return the
        sum; atomic, and the key keeps its TTL."""
        try:
            return int(_kv().increment(self.name, key, delta))
        except _host.Err as e:
            raise KvError(str(e.value)) from None

    def increment_new(self, key: str, delta: int, ttl: float | timedelta) -> int:
        """`increment`, and a key this call creates expires after `ttl` (an existing key keeps
        its expiry): a fixed-window counter."""
        try:
            return int(_kv().increment_new(self.name, key, delta, _ttl_ms(ttl)))
        except _host.Err as e:
            raise KvError(str(e.value)) from None

    def keys(self, prefix: str = "") -> list[str]:
        """Keys starting with `prefix`, sorted (at most 1000)."""
        try:
            return list(_kv().list_keys(self.name, prefix))
        except _host.Err as e:
            raise KvError(str(e.value)) from None

    def __repr__(self) -> str:
        return f"kv.Store({self.name!r})"


def store(name: str) -> Store:
    """The store `name`."""
    return Store(name)
