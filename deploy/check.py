"""Offline checks of deploy/, run by deploy/check (which makes the venv this runs in).

1. Every Kubernetes object in deploy/k8s against the Kubernetes JSON schemas bundled by
   kubernetes-validate, strictly (an unknown field is an error), for each of KUBERNETES.
2. The objects against each other and against the ConfigMap's flagon.toml: selectors, port
   names, probes on the admin listener, Secret keys, the grace period against shutdown_grace,
   shared state for several replicas, Postgres connections at the HPA's maximum, and the
   securityContext (non-root, read-only root filesystem, no privilege escalation, no
   capabilities, RuntimeDefault seccomp).
3. The Containerfile, statically: pinned bases, no remote ADD, a numeric non-root USER in the
   final stage, exec-form ENTRYPOINT, no RUN or HEALTHCHECK on the shell-less base, EXPOSE of
   the ports the manifests use; and its ignore file (build output out, no tracked file out).
4. A self-test: broken copies of the real files must each be refused, so that a check that
   silently stopped looking is noticed.
5. With --flagon BIN: `BIN check` on the ConfigMap's flagon.toml in a copy of examples/todo.

Nothing here uses the network. The last line is `deploy: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes_validate.utils as kv
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# The oldest version the manifests are for (the preStop `sleep` action is on by default from
# 1.30) and the newest schema kubernetes-validate bundles.
KUBERNETES = ["1.30", "1.37"]
# Postgres's default max_connections less its superuser_reserved_connections (3). Raise it
# here if your server allows more.
POSTGRES_CONNECTIONS = 97
# Debian release of each base image family, to keep the builder's glibc the runtime's.
DEBIAN = {"bookworm": "12", "debian12": "12", "trixie": "13", "debian13": "13"}
MANIFEST_KEY = "flagon.toml"


# ---- small parsers -----------------------------------------------------------------------------


def quantity(value: object) -> float:
    """A Kubernetes resource quantity ("500m", "2", "256Mi", "1G") as a number."""
    s = str(value)
    m = re.fullmatch(r"([0-9.]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?", s)
    if not m:
        raise ValueError(f"not a quantity: {s!r}")
    factor = {
        None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
        "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    }[m.group(2)]
    return float(m.group(1)) * factor


def seconds(duration: str) -> float:
    """A Flagon duration ("25s", "500ms", "1m 30s") in seconds."""
    units = {"ms": 1e-3, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"([0-9]+)\s*(ms|min|s|m|h|d)", duration)
    if not parts or re.sub(r"[0-9]+\s*(ms|min|s|m|h|d)|\s", "", duration):
        raise ValueError(f"not a duration: {duration!r}")
    return sum(int(n) * units[u] for n, u in parts)


def listen_addr(addr: str) -> tuple[str, int]:
    m = re.fullmatch(r"\[?([^\]]*)\]?:([0-9]+)", addr)
    if not m:
        raise ValueError(f"not an address:port: {addr!r}")
    return m.group(1), int(m.group(2))


def loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


# ---- loading -----------------------------------------------------------------------------------


@dataclass
class Obj:
    file: str
    doc: dict

    @property
    def kind(self) -> str:
        return self.doc.get("kind", "?")

    @property
    def name(self) -> str:
        return (self.doc.get("metadata") or {}).get("name", "?")

    def __str__(self) -> str:
        return f"{self.file}: {self.kind}/{self.name}"


def load_objects(k8s: Path) -> list[Obj]:
    objs = []
    for path in sorted(k8s.glob("*.yaml")) + sorted(k8s.glob("*.yml")):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is not None:
                    objs.append(Obj(path.name, doc))
    return objs


@dataclass
class Result:
    passed: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)


# ---- 1. schemas --------------------------------------------------------------------------------


def schema_problems(objs: list[Obj]) -> list[str]:
    out = []
    for o in objs:
        if o.kind == "Kustomization":
            continue  # not an API object; checked by kustomization_problems
        for version in KUBERNETES:
            try:
                kv.validate(o.doc, version, strict=True)
            except kv.ValidationError as e:
                where = ".".join(str(p) for p in e.absolute_path) or "(top)"
                out.append(f"Kubernetes {version} schema: {where}: {e.message}")
            except kv.SchemaNotFoundError as e:
                out.append(f"{o}: {e.message}")
            except (KeyError, TypeError) as e:
                out.append(f"{o}: not a Kubernetes object ({e})")
    return out


# ---- 2. the objects together -------------------------------------------------------------------


def by_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o.kind == kind]


def matches(selector: dict | None, labels: dict) -> bool:
    selector = selector or {}
    want = selector.get("matchLabels") or {}
    return bool(want) and all(labels.get(k) == v for k, v in want.items())


def manifest_of(objs: list[Obj]) -> tuple[Obj | None, dict | None, list[str]]:
    """The ConfigMap holding flagon.toml, and the parsed manifest."""
    maps = [o for o in by_kind(objs, "ConfigMap") if MANIFEST_KEY in (o.doc.get("data") or {})]
    if len(maps) != 1:
        return None, None, [f"expected one ConfigMap with a `{MANIFEST_KEY}` key, found {len(maps)}"]
    try:
        return maps[0], tomllib.loads(maps[0].doc["data"][MANIFEST_KEY]), []
    except tomllib.TOMLDecodeError as e:
        return maps[0], None, [f"{maps[0]}: {MANIFEST_KEY} is not TOML: {e}"]


def example_drift(toml: dict, example: Path) -> list[str]:
    """The ConfigMap's app is examples/todo: the same routes, components and pages."""
    out = []
    with open(example, "rb") as f:
        ex = tomllib.load(f)
    for key in ("app", "auth", "middleware", "routes", "static", "errors", "templates"):
        if toml.get(key) != ex.get(key):
            out.append(f"{MANIFEST_KEY}: `{key}` differs from {example.relative_to(REPO)}")

    def comparable(components: dict) -> dict:
        c = copy.deepcopy(components)
        for section in c.values():
            section.pop("build", None)  # nothing builds in the pod
            if section.get("plugin") == "cors":
                section.get("settings", {}).pop("origins", None)  # the deploy's front end
        return c

    if comparable(toml.get("components", {})) != comparable(ex.get("components", {})):
        out.append(
            f"{MANIFEST_KEY}: `components` differ from {example.relative_to(REPO)} "
            "(beyond `build` and the cors origins)"
        )
    missing = set(ex.get("variables", {})) - set(toml.get("variables", {}))
    if missing:
        out.append(f"{MANIFEST_KEY}: variables of the example missing: {sorted(missing)}")
    return out


def manifest_problems(toml: dict, replicas: int) -> list[str]:
    out = []
    server = toml.get("server", {})
    host, _ = listen_addr(server.get("listen", "127.0.0.1:8080"))
    if loopback(host):
        out.append(f"{MANIFEST_KEY}: [server] listen is loopback: the Service cannot reach it")
    admin = toml.get("admin")
    if admin is None or "listen" not in admin:
        out.append(f"{MANIFEST_KEY}: no [admin] listen: the probes have nothing to ask")
    elif loopback(listen_addr(admin["listen"])[0]):
        out.append(f"{MANIFEST_KEY}: [admin] listen is loopback: the kubelet's probes cannot reach it")
    if not server.get("allowed_hosts"):
        out.append(f"{MANIFEST_KEY}: [server] allowed_hosts is empty (any Host is answered)")
    variables = toml.get("variables", {})
    session = toml.get("session", {})
    if session.get("secret") is None:
        out.append(f"{MANIFEST_KEY}: [session] secret is not set: serve refuses to start without --dev")
    for name in [session.get("secret"), *session.get("fallback_secrets", [])]:
        v = variables.get(name) if name else None
        if name and (v is None or not v.get("secret") or "default" in v):
            out.append(f"{MANIFEST_KEY}: session key variable `{name}` must be secret with no default")
    for name, v in variables.items():
        if v.get("dev_random"):
            out.append(f"{MANIFEST_KEY}: variable `{name}` has dev_random, a development setting")
    if replicas > 1:
        for name, store in toml.get("kv", {}).items():
            if store.get("backend", "embedded") != "redis":
                out.append(
                    f"{MANIFEST_KEY}: [kv.{name}] is embedded (one process's file) but there are "
                    f"{replicas} replicas: use backend = \"redis\""
                )
        for name, db in toml.get("databases", {}).items():
            if db.get("adapter") == "sqlite":
                out.append(f"{MANIFEST_KEY}: [databases.{name}] is SQLite, for one replica only")
            url = variables.get(db.get("url_variable", ""), {})
            if str(url.get("default", "")).startswith("sqlite"):
                out.append(
                    f"{MANIFEST_KEY}: [databases.{name}]'s URL variable defaults to SQLite: "
                    "a missing Secret would run each replica on a database of its own"
                )
    return out


def container_env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def deployment_problems(objs: list[Obj], toml: dict | None, cf: "Containerfile | None") -> list[str]:
    out = []
    deps = by_kind(objs, "Deployment")
    if len(deps) != 1:
        return [f"expected one Deployment, found {len(deps)}"]
    d = deps[0]
    spec = d.doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    if not matches(spec.get("selector"), labels):
        out.append(f"{d}: selector does not match the pod template's labels")
    if spec.get("replicas", 1) < 2:
        out.append(f"{d}: replicas {spec.get('replicas', 1)}: one node lost is the site lost")
    if pod.get("automountServiceAccountToken") is not False:
        out.append(f"{d}: automountServiceAccountToken should be false (Flagon uses no API token)")
    if pod.get("enableServiceLinks") is not False:
        out.append(
            f"{d}: enableServiceLinks should be false: a Service named flagon... would inject "
            "FLAGON_* variables, where Flagon reads its settings"
        )
    psc = pod.get("securityContext", {})
    secrets = {o.name: o for o in by_kind(objs, "Secret")}
    config_maps = {o.name: o for o in by_kind(objs, "ConfigMap")}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    containers = pod.get("containers", [])
    if not containers:
        return out + [f"{d}: no containers"]

    admin_port = public_port = None
    if toml:
        try:
            public_port = listen_addr(toml.get("server", {}).get("listen", "127.0.0.1:8080"))[1]
            if "listen" in toml.get("admin", {}):
                admin_port = listen_addr(toml["admin"]["listen"])[1]
        except ValueError as e:
            out.append(f"{MANIFEST_KEY}: {e}")

    for c in containers:
        where = f"{d}: container `{c.get('name')}`"
        sc = c.get("securityContext", {})

        def eff(key: str):
            return sc.get(key, psc.get(key))

        if eff("runAsNonRoot") is not True:
            out.append(f"{where}: runAsNonRoot must be true")
        uid = eff("runAsUser")
        if not isinstance(uid, int) or uid == 0:
            out.append(f"{where}: runAsUser must be a non-zero number, is {uid!r}")
        elif cf and cf.user_uid is not None and uid != cf.user_uid:
            out.append(f"{where}: runAsUser {uid} is not the image's USER {cf.user_uid}")
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{where}: readOnlyRootFilesystem must be true")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{where}: allowPrivilegeEscalation must be false")
        if sc.get("privileged"):
            out.append(f"{where}: must not be privileged")
        if "ALL" not in (sc.get("capabilities", {}).get("drop") or []):
            out.append(f"{where}: capabilities must drop ALL")
        if sc.get("capabilities", {}).get("add"):
            out.append(f"{where}: adds capabilities {sc['capabilities']['add']}")
        if (eff("seccompProfile") or {}).get("type") != "RuntimeDefault":
            out.append(f"{where}: seccompProfile must be RuntimeDefault")

        image = str(c.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        if "@" not in tag and (":" not in tag or tag.endswith(":latest")):
            out.append(f"{where}: image `{image}` needs a version tag or digest, not latest")

        res = c.get("resources", {})
        for kind in ("cpu", "memory"):
            req = res.get("requests", {}).get(kind)
            lim = res.get("limits", {}).get(kind)
            if req is None:
                out.append(f"{where}: no {kind} request (the HPA and the scheduler need one)")
            if kind == "memory" and lim is None:
                out.append(f"{where}: no memory limit")
            if req is not None and lim is not None and quantity(req) > quantity(lim):
                out.append(f"{where}: {kind} request {req} above its limit {lim}")

        ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
        numbers = set(ports.values())
        if public_port is not None and public_port not in numbers:
            out.append(f"{where}: no containerPort for [server] listen's port {public_port}")
        if admin_port is not None and admin_port not in numbers:
            out.append(f"{where}: no containerPort for [admin] listen's port {admin_port}")
        if cf:
            for p in sorted(numbers - cf.exposed):
                out.append(f"{where}: port {p} is not EXPOSEd by the Containerfile")

        def probe_port(probe: dict) -> int | None:
            port = (probe.get("httpGet") or {}).get("port")
            return ports.get(port) if isinstance(port, str) else port

        for probe_name, path in (
            ("startupProbe", None),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            probe = c.get(probe_name)
            if not probe:
                out.append(f"{where}: no {probe_name}")
                continue
            get = probe.get("httpGet")
            if not get:
                out.append(f"{where}: {probe_name} should be an httpGet on the admin port")
                continue
            if path and get.get("path") != path:
                out.append(f"{where}: {probe_name} asks {get.get('path')}, not {path}")
            port = probe_port(probe)
            if port is None:
                out.append(f"{where}: {probe_name}'s port {get.get('port')!r} is no container port")
            elif admin_port is not None and port != admin_port:
                out.append(f"{where}: {probe_name} asks port {port}, not the admin port {admin_port}")

        if toml:
            grace = pod.get("terminationGracePeriodSeconds", 30)
            shutdown = seconds(toml.get("server", {}).get("shutdown_grace", "30s"))
            pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep", {}).get("seconds", 0)
            if grace <= shutdown + pre_stop:
                out.append(
                    f"{d}: terminationGracePeriodSeconds {grace} does not cover preStop "
                    f"({pre_stop}s) + shutdown_grace ({shutdown:g}s): requests would be cut"
                )

        env = container_env(c)
        for name, e in env.items():
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and secrets:
                s = secrets.get(ref.get("name"))
                data = {**(s.doc.get("data") or {}), **(s.doc.get("stringData") or {})} if s else {}
                if s is None:
                    out.append(f"{where}: env {name} reads Secret `{ref.get('name')}`, not in deploy/k8s")
                elif ref.get("key") not in data:
                    out.append(f"{where}: env {name} reads key `{ref.get('key')}`, not in Secret `{s.name}`")
        if toml:
            for vname, v in toml.get("variables", {}).items():
                if v.get("env") and "default" not in v and "file" not in v and v["env"] not in env:
                    out.append(
                        f"{where}: variable `{vname}` needs ${v['env']}, which the container "
                        "does not set: the start would stop"
                    )

        mounts = {m.get("mountPath"): m for m in c.get("volumeMounts", [])}
        for path, m in mounts.items():
            vol = volumes.get(m.get("name"))
            if vol is None:
                out.append(f"{where}: volumeMount {path} names no volume `{m.get('name')}`")
                continue
            cm = (vol.get("configMap") or {}).get("name")
            if cm and cm not in config_maps:
                out.append(f"{where}: volume `{m['name']}` reads ConfigMap `{cm}`, not in deploy/k8s")
        args = [str(a) for a in c.get("command", []) + c.get("args", [])]
        after_serve = args[args.index("serve") + 1 :] if "serve" in args else []
        app_dir = next((a for a in after_serve if not a.startswith("-")), None)
        if app_dir is None:
            out.append(f"{where}: args should be `serve <app dir> ...`")
        else:
            if app_dir.endswith(".toml"):
                manifest_path = app_dir
            else:
                manifest_path = app_dir.rstrip("/") + "/" + MANIFEST_KEY
            m = mounts.get(manifest_path)
            if m is None:
                out.append(f"{where}: nothing mounted at {manifest_path}: the image's own manifest would be served")
            elif m.get("subPath") != MANIFEST_KEY:
                out.append(f"{where}: the manifest mount at {manifest_path} needs subPath {MANIFEST_KEY}")
        # The compile cache: Flagon refuses a directory other accounts could write, and an
        # emptyDir is created world-writable (0777, no sticky bit).
        cache = (toml or {}).get("server", {}).get("cache_dir")
        if sc.get("readOnlyRootFilesystem") and "--no-cache" not in args:
            if cache is None:
                out.append(f"{where}: no --no-cache and no [server] cache_dir on a read-only root filesystem")
            else:
                for path, m in mounts.items():
                    vol = volumes.get(m.get("name"), {})
                    if "emptyDir" in vol and (cache + "/").startswith(path.rstrip("/") + "/"):
                        out.append(
                            f"{where}: cache_dir {cache} is on emptyDir `{m['name']}`, which is "
                            "world-writable: Flagon will not use it (see docs/operator-guide.md)"
                        )
    return out


def service_problems(objs: list[Obj], admin_port: int | None) -> list[str]:
    out = []
    deps = by_kind(objs, "Deployment")
    if not deps:
        return out
    tmpl = deps[0].doc["spec"]["template"]
    labels = tmpl.get("metadata", {}).get("labels", {})
    cports = {p.get("name"): p.get("containerPort") for c in tmpl["spec"]["containers"] for p in c.get("ports", [])}
    for s in by_kind(objs, "Service"):
        spec = s.doc.get("spec", {})
        if not matches({"matchLabels": spec.get("selector", {})}, labels):
            out.append(f"{s}: selector {spec.get('selector')} matches no pod of the Deployment")
        metrics = (s.doc["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "metrics"
        for p in spec.get("ports", []):
            target = p.get("targetPort", p.get("port"))
            number = cports.get(target) if isinstance(target, str) else target
            if number is None:
                out.append(f"{s}: targetPort {target!r} is no container port")
            elif number == admin_port and not (metrics and spec.get("clusterIP") == "None"):
                out.append(
                    f"{s}: exposes the admin port {admin_port}; only a headless Service labelled "
                    "app.kubernetes.io/component=metrics may"
                )
        if spec.get("type") in ("NodePort", "LoadBalancer") and metrics:
            out.append(f"{s}: a metrics Service must not be reachable from outside the cluster")
    return out


def hpa_problems(objs: list[Obj], toml: dict | None) -> list[str]:
    out = []
    deps = {o.name: o for o in by_kind(objs, "Deployment")}
    for h in by_kind(objs, "HorizontalPodAutoscaler"):
        spec = h.doc["spec"]
        ref = spec.get("scaleTargetRef", {})
        d = deps.get(ref.get("name")) if ref.get("kind") == "Deployment" else None
        if d is None:
            out.append(f"{h}: scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not in deploy/k8s")
            continue
        lo, hi = spec.get("minReplicas", 1), spec["maxReplicas"]
        replicas = d.doc["spec"].get("replicas", 1)
        if not lo <= replicas <= hi:
            out.append(f"{h}: the Deployment's replicas {replicas} outside {lo}..{hi}")
        if toml:
            pool = sum(
                db.get("pool", 4)
                for db in toml.get("databases", {}).values()
                if db.get("adapter", "postgres" if "url_variable" in db else "") == "postgres"
            )
            surge = d.doc["spec"].get("strategy", {}).get("rollingUpdate", {}).get("maxSurge", 1)
            surge = surge if isinstance(surge, int) else 1
            total = (hi + surge) * pool
            if total > POSTGRES_CONNECTIONS:
                out.append(
                    f"{h}: (maxReplicas {hi} + surge {surge}) x pool {pool} = {total} Postgres "
                    f"connections, over {POSTGRES_CONNECTIONS}"
                )
    return out


def policy_problems(objs: list[Obj], admin_port: int | None) -> list[str]:
    out = []
    deps = by_kind(objs, "Deployment")
    if not deps:
        return out
    tmpl = deps[0].doc["spec"]["template"]
    labels = tmpl.get("metadata", {}).get("labels", {})
    cports = {p.get("name"): p.get("containerPort") for c in tmpl["spec"]["containers"] for p in c.get("ports", [])}
    for o in by_kind(objs, "PodDisruptionBudget"):
        if not matches(o.doc["spec"].get("selector"), labels):
            out.append(f"{o}: selector matches no pod of the Deployment")
    for o in by_kind(objs, "NetworkPolicy"):
        spec = o.doc["spec"]
        if not matches(spec.get("podSelector"), labels):
            out.append(f"{o}: podSelector matches no pod of the Deployment")
        for rule in spec.get("ingress", []):
            for p in rule.get("ports") or []:
                port = p.get("port")
                number = cports.get(port) if isinstance(port, str) else port
                if number is None:
                    out.append(f"{o}: port {port!r} is no container port")
                elif number == admin_port and not rule.get("from"):
                    out.append(f"{o}: opens the admin port {admin_port} to everyone")
            if not rule.get("ports") and not rule.get("from"):
                out.append(f"{o}: an ingress rule with neither ports nor from opens every port")
    return out


def kustomization_problems(objs: list[Obj], k8s: Path) -> list[str]:
    out = []
    ks = by_kind(objs, "Kustomization")
    if len(ks) != 1:
        return [f"expected one kustomization.yaml, found {len(ks)}"]
    k = ks[0].doc
    listed = k.get("resources", [])
    for r in listed:
        if not (k8s / r).is_file():
            out.append(f"kustomization.yaml: resource {r} does not exist")
    secret_files = {o.file for o in by_kind(objs, "Secret")}
    for f in sorted({o.file for o in objs} - {ks[0].file} - set(listed) - secret_files):
        out.append(f"kustomization.yaml: {f} is not listed in resources")
    for f in sorted(secret_files & set(listed)):
        out.append(f"kustomization.yaml: lists {f}, whose placeholders would replace the real Secret")
    images = {c["image"].rsplit(":", 1)[0] for o in by_kind(objs, "Deployment") for c in o.doc["spec"]["template"]["spec"]["containers"]}
    for i in k.get("images", []):
        if i.get("name") not in images:
            out.append(f"kustomization.yaml: images entry {i.get('name')} names no container image")
    return out


# ---- 3. the Containerfile ----------------------------------------------------------------------


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str, int]] = field(default_factory=list)


@dataclass
class Containerfile:
    path: str
    args: dict[str, str]
    stages: list[Stage]
    user_uid: int | None = None
    exposed: set[int] = field(default_factory=set)


def parse_containerfile(text: str, path: str) -> tuple[Containerfile, list[str]]:
    out = []
    lines, buf, start = [], "", 0
    for n, raw in enumerate(text.splitlines(), 1):
        if not buf and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if buf and raw.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if not buf:
            start = n
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        lines.append((buf + raw, start))
        buf = ""
    if buf:
        out.append(f"{path}:{start}: the last instruction ends in a line continuation")
    cf = Containerfile(path, {}, [])
    for line, n in lines:
        word, _, rest = line.strip().partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "ARG" and not cf.stages:
            name, _, default = rest.partition("=")
            cf.args[name] = default
        elif word == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: cf.args.get(m.group(1), m.group(0)), parts[0])
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            cf.stages.append(Stage(base, name))
        elif not cf.stages:
            out.append(f"{path}:{n}: {word} before the first FROM")
        else:
            cf.stages[-1].instructions.append((word, rest, n))
    return cf, out


def containerfile_problems(cf: Containerfile, repo: Path) -> list[str]:
    out = []
    p = cf.path
    if len(cf.stages) < 2:
        return [f"{p}: expected a build stage and a runtime stage, found {len(cf.stages)} stage(s)"]
    for s in cf.stages:
        image = s.base.rsplit("/", 1)[-1]
        if s.base in {st.name for st in cf.stages}:
            continue
        if "$" in s.base:
            out.append(f"{p}: FROM {s.base}: an ARG without a default")
        elif "@" not in image and (":" not in image or image.endswith(":latest")):
            out.append(f"{p}: FROM {s.base}: pin a tag or digest, not latest")
        for word, rest, n in s.instructions:
            if word == "ADD" and re.search(r"(https?|git)://|git@", rest):
                out.append(f"{p}:{n}: ADD of a URL; download in a RUN with a checksum, or COPY")
            elif word == "ADD":
                out.append(f"{p}:{n}: ADD (it unpacks archives); use COPY")
    releases = {
        st.base: next((r for k, r in DEBIAN.items() if k in st.base.rsplit("/", 1)[-1]), None)
        for st in cf.stages
    }
    build, final = cf.stages[0], cf.stages[-1]
    if releases[build.base] != releases[final.base]:
        out.append(
            f"{p}: builder {build.base} and runtime {final.base} are not the same Debian release "
            "(the binary needs the builder's glibc)"
        )
    words = [w for w, _, _ in final.instructions]
    users = [(rest, n) for w, rest, n in final.instructions if w == "USER"]
    if not users:
        out.append(f"{p}: the final stage has no USER")
    else:
        user, n = users[-1]
        m = re.fullmatch(r"([0-9]+)(?::([0-9]+))?", user)
        if not m:
            out.append(f"{p}:{n}: USER {user}: use a numeric uid:gid, so runAsNonRoot can check it")
        elif int(m.group(1)) == 0 or (m.group(2) is not None and int(m.group(2)) == 0):
            out.append(f"{p}:{n}: USER {user} is root")
        else:
            cf.user_uid = int(m.group(1))
    for w, rest, n in final.instructions:
        if w in ("RUN", "SHELL"):
            out.append(f"{p}:{n}: {w} in the final stage, whose base has no shell")
        if w == "HEALTHCHECK" and rest.upper() != "NONE":
            out.append(f"{p}:{n}: HEALTHCHECK needs a program in the image; probe the admin port instead")
        if w == "COPY" and "--from=" not in rest:
            out.append(f"{p}:{n}: COPY from the build context into the runtime image; copy built files from the build stage")
        if w in ("ENTRYPOINT", "CMD") and not rest.startswith("["):
            out.append(f"{p}:{n}: {w} in shell form needs a shell; use the exec form [\"...\"]")
        if w == "EXPOSE":
            for port in rest.split():
                cf.exposed.add(int(port.split("/")[0]))
        if w == "ENV" and re.search(r"(KEY|SECRET|PASSWORD|PEPPER|TOKEN)\w*=", rest):
            out.append(f"{p}:{n}: a secret in ENV is baked into the image")
    if "ENTRYPOINT" not in words:
        out.append(f"{p}: the final stage has no ENTRYPOINT")
    if not any(w == "ENV" and "glibc.malloc.mmap_threshold=" in rest for w, rest, _ in final.instructions):
        out.append(
            f"{p}: the final stage does not fix glibc's mmap threshold (GLIBC_TUNABLES): "
            "password hashes then stay in malloc's arenas (docs/operator-guide.md, \"Running in a container\")"
        )
    # Paths of the repository the build names must exist.
    for s in cf.stages:
        for _, rest, n in s.instructions:
            for path in re.findall(r"\b(examples/[\w./-]+)", rest):
                if "/target/" not in path and not (repo / path).exists():
                    out.append(f"{p}:{n}: {path} does not exist in the repository")
    return out


def ignore_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over a relative path."""
    pat = pattern.strip().lstrip("/")
    rx, i = "", 0
    while i < len(pat):
        if pat.startswith("**/", i):
            rx, i = rx + "(?:.*/)?", i + 3
        elif pat.startswith("**", i):
            rx, i = rx + ".*", i + 2
        elif pat[i] == "*":
            rx, i = rx + "[^/]*", i + 1
        elif pat[i] == "?":
            rx, i = rx + "[^/]", i + 1
        else:
            rx, i = rx + re.escape(pat[i]), i + 1
    return re.compile(rx + "(?:/.*)?")  # a directory excludes what is under it


def ignored(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    out = False
    for negate, rx in rules:
        if rx.fullmatch(path):
            out = not negate
    return out


def ignore_problems(path: Path, repo: Path) -> list[str]:
    out = []
    if not path.is_file():
        return [f"{path.name}: missing: the whole work tree, target/ included, would be sent to the build"]
    rules = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            negate = line.startswith("!")
            rules.append((negate, ignore_regex(line[1:] if negate else line)))
    for sample in (
        "target/release/flagon",
        "examples/todo/target/wasm32-wasip2/release/todo.wasm",
        ".git/HEAD",
        "sdk/js/node_modules/x/index.js",
        "deploy/.venv/bin/python",
        "examples/todo/data/sql/main/main.db",
        "examples/todo/.env",
    ):
        if not ignored(sample, rules):
            out.append(f"{path.name}: does not leave out {sample}")
    try:
        tracked = subprocess.run(
            ["git", "-C", str(repo), "ls-files", "-z"], capture_output=True, check=True
        ).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        tracked = []
    bad = [f for f in tracked if f and ignored(f, rules)]
    for f in bad[:10]:
        out.append(f"{path.name}: leaves out {f}, which git tracks (the build may need it)")
    return out


# ---- the whole run -----------------------------------------------------------------------------


def guarded(f, *args) -> list[str]:
    """A check that crashes on a malformed object (one the schemas refuse) reports it."""
    try:
        return f(*args)
    except Exception as e:  # noqa: BLE001
        return [f"could not check ({type(e).__name__}: {e}); see the schema errors"]


def all_problems(k8s: Path, containerfile: Path, ignorefile: Path, objs=None, cf_text=None) -> dict[str, list[str]]:
    """Every check by name, with its problems (none: passed)."""
    objs = load_objects(k8s) if objs is None else objs
    text = containerfile.read_text() if cf_text is None else cf_text
    cf, parse = parse_containerfile(text, containerfile.name)
    checks: dict[str, list[str]] = {}
    checks["Containerfile"] = parse + guarded(containerfile_problems, cf, REPO)
    checks["Containerfile ignore file"] = guarded(ignore_problems, ignorefile, REPO)
    for o in objs:
        if o.kind != "Kustomization":
            checks[f"schema {o}"] = schema_problems([o])
    cm, toml, problems = manifest_of(objs)
    deps = by_kind(objs, "Deployment")
    replicas = deps[0].doc.get("spec", {}).get("replicas", 1) if deps else 1
    replicas = replicas if isinstance(replicas, int) else 1
    if toml:
        problems += guarded(manifest_problems, toml, replicas)
        problems += guarded(example_drift, toml, REPO / "examples/todo/flagon.toml")
    checks[f"{MANIFEST_KEY} in the ConfigMap"] = problems
    admin_port = None
    try:
        if toml and "listen" in toml.get("admin", {}):
            admin_port = listen_addr(toml["admin"]["listen"])[1]
    except ValueError:
        pass  # reported by manifest_problems
    checks["Deployment: security, probes, resources, env, volumes"] = guarded(deployment_problems, objs, toml, cf)
    checks["Services"] = guarded(service_problems, objs, admin_port)
    checks["HorizontalPodAutoscaler"] = guarded(hpa_problems, objs, toml)
    checks["PodDisruptionBudget and NetworkPolicy"] = guarded(policy_problems, objs, admin_port)
    checks["kustomization.yaml"] = guarded(kustomization_problems, objs, k8s)
    return checks


def flat(checks: dict[str, list[str]]) -> set[str]:
    return {f"{name}: {p}" for name, problems in checks.items() for p in problems}


def self_test(k8s: Path, containerfile: Path, ignorefile: Path, verbose: bool) -> list[str]:
    """Broken copies of the real files: each must be refused with a problem the real files
    do not have."""
    objs = load_objects(k8s)
    text = containerfile.read_text()
    base = flat(all_problems(k8s, containerfile, ignorefile, objs=objs, cf_text=text))

    def refused(what: str, checks: dict[str, list[str]]) -> bool:
        new = sorted(flat(checks) - base)
        if verbose:
            print(f"  self-test, {what}:")
            for p in new:
                print(f"      {p}")
        return bool(new)

    def first(kind: str, o: list[Obj]) -> dict:
        return next(x for x in o if x.kind == kind).doc

    def container(o: list[Obj]) -> dict:
        return first("Deployment", o)["spec"]["template"]["spec"]["containers"][0]

    def toml_edit(o: list[Obj], old: str, new: str) -> None:
        cm = next(x for x in o if x.kind == "ConfigMap").doc
        assert old in cm["data"][MANIFEST_KEY], old
        cm["data"][MANIFEST_KEY] = cm["data"][MANIFEST_KEY].replace(old, new, 1)

    breaks = {
        "an unknown field in the container": lambda o: container(o).update(imagePullPolicyy="Always"),
        "replicas as a string": lambda o: first("Deployment", o)["spec"].update(replicas="three"),
        "a writable root filesystem": lambda o: container(o)["securityContext"].update(readOnlyRootFilesystem=False),
        "privilege escalation": lambda o: container(o)["securityContext"].pop("allowPrivilegeEscalation"),
        "root": lambda o: container(o)["securityContext"].update(runAsUser=0),
        "a readiness probe on a port that is not there": lambda o: container(o)["readinessProbe"]["httpGet"].update(port="adminn"),
        "a grace period shorter than shutdown_grace": lambda o: first("Deployment", o)["spec"]["template"]["spec"].update(terminationGracePeriodSeconds=10),
        "the public Service exposing the admin port": lambda o: first("Service", o)["spec"]["ports"].append({"name": "admin", "port": 9464, "targetPort": "admin"}),
        "an embedded kv store with 3 replicas": lambda o: toml_edit(o, 'backend = "redis"\nurl = "redis_url"', ""),
        "an env var from a Secret key that does not exist": lambda o: container(o)["env"][-1]["valueFrom"]["secretKeyRef"].update(key="redis-uri"),
        "a cache_dir on an emptyDir": lambda o: (
            toml_edit(o, "[server]\n", '[server]\ncache_dir = "/cache"\n'),
            container(o)["args"].remove("--no-cache"),
            container(o)["volumeMounts"].append({"name": "cache", "mountPath": "/cache"}),
            first("Deployment", o)["spec"]["template"]["spec"]["volumes"].append({"name": "cache", "emptyDir": {}}),
        ),
    }
    cf_breaks = {
        "USER root in the Containerfile": lambda t: t.replace("USER 65532:65532", "USER root"),
        "ADD of a URL in the Containerfile": lambda t: t.replace("WORKDIR /src", "WORKDIR /src\nADD https://example.com/x.tar.gz /x"),
        "a RUN in the shell-less final stage": lambda t: t.replace("WORKDIR /app", "WORKDIR /app\nRUN true"),
    }
    out = []
    for what, f in breaks.items():
        broken = copy.deepcopy(objs)
        f(broken)
        if not refused(what, all_problems(k8s, containerfile, ignorefile, objs=broken, cf_text=text)):
            out.append(f"self-test: {what} was not refused")
    for what, f in cf_breaks.items():
        broken_text = f(text)
        if broken_text == text:
            out.append(f"self-test: could not make {what} (the Containerfile changed?)")
        elif not refused(what, all_problems(k8s, containerfile, ignorefile, objs=objs, cf_text=broken_text)):
            out.append(f"self-test: {what} was not refused")
    return out


def flagon_check(binary: str, objs: list[Obj]) -> list[str]:
    """`flagon check` on the ConfigMap's manifest, in a copy of examples/todo's app directory."""
    cm, toml, problems = manifest_of(objs)
    if problems:
        return problems
    todo = REPO / "examples/todo"
    wasm = todo / "target/wasm32-wasip2/release/todo.wasm"
    if not wasm.is_file():
        return [f"{wasm.relative_to(REPO)} is missing: run `{binary} build examples/todo` first"]
    deps = by_kind(objs, "Deployment")
    secrets = {o.name: o.doc.get("stringData", {}) for o in by_kind(objs, "Secret")}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for c in deps[0].doc["spec"]["template"]["spec"]["containers"] if deps else []:
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            value = e.get("value", "")
            if ref:
                value = secrets.get(ref["name"], {}).get(ref["key"], "")
                if "://" not in value:
                    # The Secret's placeholders are short on purpose; check wants a value only.
                    value = "deploy-check-placeholder-value-0123456789abcdef"
            env[e["name"]] = value
    with tempfile.TemporaryDirectory(prefix="flagon-deploy-check-") as tmp:
        app = Path(tmp) / "app"
        for d in ("migrations", "templates", "static"):
            shutil.copytree(todo / d, app / d)
        (app / "target/wasm32-wasip2/release").mkdir(parents=True)
        shutil.copy(wasm, app / "target/wasm32-wasip2/release/todo.wasm")
        (app / MANIFEST_KEY).write_text(cm.doc["data"][MANIFEST_KEY])
        env["HOME"] = tmp
        env["FLAGON_CACHE_DIR"] = str(Path(tmp) / "cache")
        run = subprocess.run([binary, "check", str(app)], env=env, capture_output=True, text=True)
        if run.returncode != 0:
            return [f"`flagon check` of the ConfigMap's manifest failed:\n{run.stdout}{run.stderr}"]
    return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--k8s", type=Path, default=HERE / "k8s", help="directory of manifests")
    ap.add_argument("--containerfile", type=Path, default=HERE / "Containerfile")
    ap.add_argument("--ignorefile", type=Path, default=None, help="default: <containerfile>.dockerignore")
    ap.add_argument("--flagon", metavar="BIN", help="also run `BIN check` on the ConfigMap's manifest")
    ap.add_argument("--no-self-test", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true", help="show what each broken copy got")
    a = ap.parse_args()
    ignorefile = a.ignorefile or a.containerfile.with_name(a.containerfile.name + ".dockerignore")
    checks = all_problems(a.k8s, a.containerfile, ignorefile)
    if not a.no_self_test:
        checks["self-test: broken copies are refused"] = self_test(a.k8s, a.containerfile, ignorefile, a.verbose)
    if a.flagon:
        checks["flagon check of the ConfigMap's flagon.toml"] = flagon_check(a.flagon, load_objects(a.k8s))
    failed = 0
    for name, problems in checks.items():
        print(f"{'ok  ' if not problems else 'FAIL'} {name}")
        for p in problems:
            print(f"       {p}")
        failed += bool(problems)
    print(f"(schemas: Kubernetes {', '.join(KUBERNETES)}, strict, from kubernetes-validate {kv.__version__}; no network)")
    print(f"deploy: {len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
