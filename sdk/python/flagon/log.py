"""Structured logging through the host: each line carries the component id and the request id.

Granted to every component. At most 256 lines per request are kept, each cut at 4 KiB.
(`print` also works: stdout and stderr go to the host's log.)
"""

from __future__ import annotations

from . import _host

_levels = _host.log.Level if _host.log is not None else None


def _log(level: str, message: str) -> None:
    if _host.log is None or _levels is None:
        print(f"[{level}] {message}")
        return
    _host.log.log(getattr(_levels, level), str(message))


def trace(message: str) -> None:
    _log("TRACE", message)


def debug(message: str) -> None:
    _log("DEBUG", message)


def info(message: str) -> None:
    _log("INFO", message)


def warn(message: str) -> None:
    _log("WARN", message)


def error(message: str) -> None:
    _log("ERROR", message)
