"""Password hashing, secure random numbers and HMAC, done by the host.

Needs `grants = { crypto = true }`.
"""

from __future__ import annotations

from types import ModuleType

from . import _host
from .errors import HTTPError


def _crypto() -> ModuleType:
    return _host.require(_host.crypto, "crypto")


def hash_password(password: str) -> str:
    """Hash a password with argon2id (19 MiB, 2 passes, random salt) into a PHC string to
    store. Passwords over 4 KiB are a 500."""
    try:
        return str(_crypto().hash_password(password))
    except _host.Err as e:
        raise HTTPError(500, f"hash_password: {e.value}") from None


def verify_password(password: str, hash: str) -> bool:
    """Whether `password` matches a PHC string from `hash_password` (a malformed hash is
    False)."""
    return bool(_crypto().verify_password(password, hash))


def random_bytes(n: int) -> bytes:
    """`n` bytes from the operating system's secure random source (at most 65536)."""
    try:
        return bytes(_crypto().random_bytes(n))
    except _host.Err as e:
        raise HTTPError(500, f"random_bytes: {e.value}") from None


def random_token(nbytes: int = 32) -> str:
    """A URL-safe random token (base64url, no padding) of `nbytes` random bytes (16 to 1024;
    the default 32 makes 43 characters)."""
    try:
        return str(_crypto().random_token(nbytes))
    except _host.Err as e:
        raise HTTPError(500, f"random_token: {e.value}") from None


def hmac_sha256(key: bytes, message: bytes | str) -> bytes:
    """HMAC-SHA256 of `message` (str is UTF-8) under `key`."""
    return bytes(_crypto().hmac_sha256(bytes(key), _bytes(message)))


def hmac_sha256_verify(key: bytes, message: bytes | str, tag: bytes) -> bool:
    """Check an HMAC-SHA256 tag in constant time."""
    return bool(_crypto().hmac_sha256_verify(bytes(key), _bytes(message), bytes(tag)))


def _bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)
