"""The generated bindings of the interfaces this component imports.

componentize-py generates the `wit_world` package for the world the build targets, and the build
script derives that world from the component's grants in `flagon.toml`: an interface that is not
granted is not imported, and its module is missing here. Every binding is looked up once, while
the component is built (componentize-py runs the app's imports then and snapshots the result),
so nothing is imported while a request runs.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from componentize_py_types import Err

from .errors import HTTPError

__all__ = ["Err", "require"]

# interface -> the `grants` key in flagon.toml that makes the build import it
GRANTS: dict[str, str] = {
    "config": "variables",
    "crypto": "crypto",
    "templates": "templates",
    "session": "session",
    "kv": "kv",
    "outbound_http": "outbound",
    "sql": "sql",
}


def _load(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"wit_world.imports.{name}")
    except ImportError:
        return None


types = importlib.import_module("wit_world.imports.types")
log = _load("log")
settings = _load("settings")
config = _load("config")
crypto = _load("crypto")
templates = _load("templates")
session = _load("session")
kv = _load("kv")
outbound_http = _load("outbound_http")
sql = _load("sql")
sql_types = _load("sql_types")


def require(module: ModuleType | None, name: str) -> ModuleType:
    """The binding module `name`, or a 500 that says which grant is missing."""
    if module is None:
        wit = name.replace("_", "-")
        grant = GRANTS.get(name, name)
        raise HTTPError(
            500,
            f"this component does not import flagon:app/{wit}: grant `{grant}` to it in "
            f"flagon.toml and rebuild (the build imports only what the grants allow)",
        )
    return module
