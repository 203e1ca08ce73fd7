"""The app's templates (`templates/`), rendered by the host with auto-escaping.

Needs `grants = { templates = true }`.
"""

from __future__ import annotations

import json as _json
from collections.abc import Mapping
from typing import Any

from . import _host
from .errors import HTTPError


def render(name: str, context: Mapping[str, Any] | None = None, /, **values: Any) -> str:
    """Render the template `name` (a path under `templates/`, e.g. `pages/index.html`) with the
    keys of `context` and the keyword `values` as its variables. They must be JSON values
    (dicts, lists, str, int, float, bool, None).

    A failed render (unknown template, undefined variable, ...) is a 500: the host logs the
    template and line, and answers 500 whatever the handler returns.
    """
    host = _host.require(_host.templates, "templates")
    merged: dict[str, Any] = dict(context or {})
    merged.update(values)
    try:
        encoded = _json.dumps(merged, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise HTTPError(500, f"the context of template `{name}` is not JSON: {e}") from None
    try:
        return str(host.render(name, encoded))
    except _host.Err as e:
        raise HTTPError(500, f"template `{name}`: {e.value}") from None
