"""Exercises the Python SDK beyond the hello example; every route answers JSON that
tests/all/hello_py.rs checks."""

from __future__ import annotations

from typing import Any

from flagon import (
    App,
    Request,
    Response,
    abort,
    config,
    crypto,
    kv,
    outbound,
    session,
    settings,
    sql,
)

app = App()
db = sql.database("main")


@app.route("inspect")
def inspect(req: Request, rest: str) -> dict[str, Any]:
    """The request as the SDK reads it."""
    body: Any = None
    if req.content_type == "application/json":
        body = req.json()
    elif req.content_type == "application/x-www-form-urlencoded":
        body = {"form": req.form(), "tags": req.form_list("tag")}
    return {
        "method": req.method,
        "path": req.path,
        "route": req.route,
        "rest": rest,
        "params": req.params,
        "query_string": req.query_string,
        "query": req.query,
        "tags": req.query_list("tag"),
        "missing": req.arg("missing", "default"),
        "user_agent": req.header("User-Agent"),
        "accept_all": req.headers.get_all("accept"),
        "cookies": req.cookies,
        "has_client": ":" in req.client,
        "request_id": req.request_id,
        "identity": req.identity is not None,
        "body": body,
    }


@app.post("upload")
def upload(req: Request) -> dict[str, Any]:
    f = req.file("doc")
    if f is None:
        abort(400, "no file in field `doc`")
    return {
        "title": req.field("title"),
        "filename": f.filename,
        "content_type": f.content_type,
        "size": len(f.data),
        "first": f.data[:4].decode("latin-1"),
        "fields": [x.name for x in req.form_fields],
    }


@app.route("kv")
def kv_route(req: Request) -> dict[str, Any]:
    store = kv.store("counters")
    visits = store.increment("visits")
    store.set("greeting", "hi there", ttl=60)
    store.set("blob", b"\x00\x01\x02")
    window = store.increment_new("window", 5, ttl=60)
    keys = store.keys()
    deleted = store.delete("blob")
    error = None
    try:
        kv.store("not-granted").get("x")
    except kv.KvError as e:
        error = {"status": e.status, "message": e.message}
    return {
        "visits": visits,
        "greeting": store.get_str("greeting"),
        "window": window,
        "keys": keys,
        "deleted": deleted,
        "blob_exists": store.exists("blob"),
        "missing": store.get("missing"),
        "error": error,
    }


@app.route("crypto")
def crypto_route(req: Request) -> dict[str, Any]:
    hashed = crypto.hash_password("correct horse")
    key = crypto.random_bytes(32)
    tag = crypto.hmac_sha256(key, "message")
    return {
        "phc": hashed.startswith("$argon2id$"),
        "verify_ok": crypto.verify_password("correct horse", hashed),
        "verify_bad": crypto.verify_password("wrong", hashed),
        "token_len": len(crypto.random_token()),
        "token16_len": len(crypto.random_token(16)),
        "key_len": len(key),
        "tag_len": len(tag),
        "tag_ok": crypto.hmac_sha256_verify(key, b"message", tag),
        "tag_bad": crypto.hmac_sha256_verify(key, b"other", tag),
    }


@app.route("config")
def config_route(req: Request) -> dict[str, Any]:
    return {
        "greeting": config.get("greeting"),
        "token": config.get("api_token"),
        "not_granted": config.get("not_granted"),
        "fallback": config.get("not_granted", "fallback"),
        "all": config.get_all(),
        "settings": settings.get(),
    }


def note_json(row: sql.Row) -> dict[str, Any]:
    data = row["data"]
    return {
        "id": row["id"],
        "body": row["body"],
        "score": row["score"],
        "data": data.hex() if isinstance(data, bytes) else data,
        "done": row["done"],
    }


@app.get("notes")
def list_notes(req: Request) -> dict[str, Any]:
    rows = db.query("SELECT id, body, score, data, done FROM notes ORDER BY id")
    return {
        "columns": rows.columns,
        "notes": [note_json(r) for r in rows],
        "count": db.scalar("SELECT count(*) AS n FROM notes"),
    }


@app.post("notes")
def add_note(req: Request) -> Response:
    note = req.json()
    try:
        out = db.execute(
            "INSERT INTO notes (body, score, data, done) VALUES (?1, ?2, ?3, ?4)",
            [note["body"], note.get("score"), bytes.fromhex(note.get("data", "")), True],
        )
    except sql.SqlError as e:
        if e.kind == sql.ErrorKind.CONSTRAINT_VIOLATION and e.constraint is not None:
            return Response.json(
                {"kind": e.kind, "constraint": e.constraint.kind, "name": e.constraint.name},
                status=409,
            )
        raise
    return Response.json(
        {"id": out.last_insert_id, "rows_affected": out.rows_affected}, status=201
    )


class Rollback(Exception):
    pass


@app.post("notes-tx")
def notes_tx(req: Request) -> dict[str, Any]:
    """Two inserts in a transaction; `?fail=1` raises inside the block, which rolls back."""
    fail = req.arg("fail") == "1"
    rolled_back = False
    try:
        with db.transaction() as tx:
            tx.execute("INSERT INTO notes (body) VALUES (?1)", ["tx-one"])
            tx.execute("INSERT INTO notes (body) VALUES (?1)", ["tx-two"])
            inside = tx.scalar("SELECT count(*) FROM notes WHERE body LIKE 'tx-%'")
            if fail:
                raise Rollback()
    except Rollback:
        rolled_back = True
    # Explicit commit and rollback, and a transaction that has ended.
    tx2 = db.transaction()
    tx2.execute("UPDATE notes SET score = ?1 WHERE body = ?2", [2.5, "tx-one"])
    tx2.rollback()
    ended = None
    try:
        tx2.execute("SELECT 1")
    except sql.SqlError as e:
        ended = str(e)
    after = db.scalar("SELECT count(*) FROM notes WHERE body LIKE 'tx-%'")
    return {"inside": inside, "after": after, "rolled_back": rolled_back, "ended": ended}


@app.route("sql-error")
def sql_error(req: Request) -> Any:
    which = req.arg("which", "table")
    try:
        if which == "table":
            db.query("SELECT * FROM no_such_table")
        elif which == "syntax":
            db.query("SELEC 1")
        elif which == "grant":
            sql.database("other").query("SELECT 1")
        elif which == "param":
            db.query("SELECT ?1", [object()])  # type: ignore[list-item]
        elif which == "uncaught":
            db.execute("DELETE FROM no_such_table")
    except sql.SqlError as e:
        if which == "uncaught":
            raise
        return {"kind": e.kind, "status": e.status, "message": str(e)}
    return {"kind": None}


@app.route("fetch")
def fetch(req: Request) -> Response:
    url = req.arg("url")
    if url is None:
        abort(400, "missing `url`")
    try:
        r = outbound.get(url, headers={"x-from": "flagon-py"})
    except outbound.OutboundError as e:
        return Response.text(f"refused: {e.message}\n", status=502)
    return Response.json({"status": r.status, "body": r.text(), "type": r.header("content-type")})


@app.route("boom")
def boom(req: Request) -> Response:
    raise RuntimeError("boom from python")


@app.route("no-grant")
def no_grant(req: Request) -> Response:
    """This component is not granted `session`, so the build did not import it."""
    return Response.text(session.get("user") or "nobody")


@app.get("only-get")
def only_get(req: Request) -> str:
    return "got\n"


WitWorld = app.export()
