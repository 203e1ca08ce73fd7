"""This component's own `settings` table from `[components.<id>]` in `flagon.toml`.

Granted to every component. No secrets here: name a granted secret variable in a setting and
read its value with `flagon.config`.
"""

from __future__ import annotations

import json as _json
from typing import Any

from . import _host
from .errors import HTTPError


def raw() -> str:
    """The table as the JSON text the host sends (`{}` without one)."""
    return str(_host.require(_host.settings, "settings").get())


def get() -> dict[str, Any]:
    """The table as a dict."""
    try:
        value = _json.loads(raw())
    except ValueError as e:
        raise HTTPError(500, f"the component's settings are not JSON: {e}") from None
    if not isinstance(value, dict):
        raise HTTPError(500, "the component's settings are not a JSON object")
    return value
