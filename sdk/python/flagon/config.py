"""The variables `flagon.toml` grants this component (`grants.variables`), and no others.

Needs `grants = { variables = ["name", ...] }`.
"""

from __future__ import annotations

from typing import overload

from . import _host


@overload
def get(name: str) -> str | None: ...
@overload
def get(name: str, default: str) -> str: ...
def get(name: str, default: str | None = None) -> str | None:
    """The value of the variable `name`, or `default` when it was not granted."""
    value = _host.require(_host.config, "config").get(name)
    return default if value is None else str(value)


def get_all() -> dict[str, str]:
    """Every variable granted to this component."""
    return dict(_host.require(_host.config, "config").get_all())
