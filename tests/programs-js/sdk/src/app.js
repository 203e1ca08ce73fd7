// Drives the JavaScript SDK's calls beyond examples/hello-js; each route answers JSON of what
// the calls returned, which tests/all/hello_js.rs checks.

import {
  app,
  config,
  crypto,
  HttpError,
  json,
  kv,
  log,
  outbound,
  Response,
  session,
  settings,
  sql,
  SqlError,
  status,
  text,
} from "@flagon/sdk";

/** What a call threw, as JSON. */
function caught(fn) {
  try {
    return { value: fn() };
  } catch (e) {
    return {
      error: {
        name: e.name,
        status: e.status ?? null,
        kind: e.kind ?? null,
        interface: e.interface ?? null,
        constraint: e.constraint ?? null,
        message: e.message,
      },
    };
  }
}

const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");

function kvTour() {
  const cache = kv.store("cache");
  cache.set("greeting", "hi");
  cache.set("bin", new Uint8Array([0, 1, 0, 255]));
  cache.setJSON("doc", { a: [1, 2], big: 2n ** 60n });
  cache.set("temp", "soon gone", { ttl: 60_000 });
  cache.delete("hits");
  cache.delete("window");
  cache.increment("hits");
  cache.increment("hits", 2);
  const hits = cache.increment("hits", 1n);
  const window = cache.incrementNew("window", 1, 60_000);
  const deleted = cache.delete("temp");
  return {
    get: cache.getText("greeting"),
    bytes: [...cache.get("bin")],
    doc: cache.getJSON("doc"),
    missing: cache.get("nope") ?? null,
    exists: cache.has("greeting"),
    hits,
    window,
    keys: cache.keys(),
    keys_b: cache.keys("b"),
    deleted,
    deleted_again: cache.delete("temp"),
    not_a_number: caught(() => cache.increment("greeting")),
    ungranted: caught(() => kv.store("elsewhere").get("x")),
    bad_ttl: caught(() => cache.set("x", "y", { ttl: 0 })),
  };
}

function cryptoTour() {
  const hash = crypto.hashPassword("correct horse");
  const key = "key";
  const msg = "The quick brown fox jumps over the lazy dog";
  const tag = crypto.hmacSha256(key, msg);
  return {
    hash_is_argon2id: hash.startsWith("$argon2id$"),
    verify_ok: crypto.verifyPassword("correct horse", hash),
    verify_bad: crypto.verifyPassword("wrong", hash),
    token_len: crypto.randomToken().length,
    token16_len: crypto.randomToken(16).length,
    token_too_short: caught(() => crypto.randomToken(4)),
    random_len: crypto.randomBytes(24).length,
    random_is_bytes: crypto.randomBytes(1) instanceof Uint8Array,
    hmac_is_bytes: tag instanceof Uint8Array,
    hmac: hex(tag),
    hmac_ok: crypto.hmacSha256Verify(key, msg, tag),
    hmac_bad: crypto.hmacSha256Verify(key, `${msg}.`, tag),
  };
}

function sqlTour() {
  const db = sql.database("main");
  db.execute("DROP TABLE IF EXISTS items");
  db.execute(
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, price REAL, data BLOB, active BOOLEAN, note TEXT, big INTEGER)",
  );
  const inserted = db.execute("INSERT INTO items (name, price, data, active, note, big) VALUES (?1, ?2, ?3, ?4, ?5, ?6)", [
    "widget",
    2.5,
    new Uint8Array([0, 255, 1]),
    true,
    null,
    2n ** 62n,
  ]);
  db.execute("INSERT INTO items (name, price) VALUES (?1, ?2)", ["gadget", sql.real(3)]);
  const rows = db.query("SELECT id, name, price, data, active, note, big FROM items WHERE id = ?1", [1]);
  const raw = db.queryRaw("SELECT name, price FROM items ORDER BY id");
  const count = db.queryValue("SELECT count(*) FROM items");
  const one = db.queryOne("SELECT name FROM items WHERE price > ?1 ORDER BY price", [2.6]);
  const none = db.queryOne("SELECT name FROM items WHERE id = ?1", [99]) ?? null;

  // Transactions: committed, rolled back, and through a callback that throws.
  const tx = db.transaction();
  tx.execute("INSERT INTO items (name) VALUES (?1)", ["committed"]);
  const inside = tx.queryValue("SELECT count(*) FROM items");
  tx.commit();
  const tx2 = db.transaction();
  tx2.execute("INSERT INTO items (name) VALUES (?1)", ["rolled back"]);
  tx2.rollback();
  const thrown = caught(() =>
    db.transaction((t) => {
      t.execute("INSERT INTO items (name) VALUES (?1)", ["thrown"]);
      throw new Error("changed my mind");
    }),
  );
  const returned = db.transaction((t) => t.execute("INSERT INTO items (name) VALUES (?1)", ["returned"]).rowsAffected);
  const ended = caught(() => tx.execute("SELECT 1"));
  const names = db.query("SELECT name FROM items ORDER BY id").map((r) => r.name);

  return {
    rows_affected: inserted.rowsAffected,
    last_insert_id: inserted.lastInsertId,
    rows,
    big_is_bigint: typeof rows[0].big === "bigint",
    blob_is_bytes: rows[0].data instanceof Uint8Array,
    blob: [...rows[0].data],
    raw,
    count,
    one,
    none,
    inside,
    thrown,
    returned,
    ended,
    names,
    unique: caught(() => db.execute("INSERT INTO items (name) VALUES (?1)", ["widget"])),
    not_null: caught(() => db.execute("INSERT INTO items (price) VALUES (1)")),
    no_table: caught(() => db.query("SELECT * FROM nowhere")),
    syntax: caught(() => db.query("SELEKT 1")),
    ungranted: caught(() => sql.database("other").query("SELECT 1")),
    bad_param: caught(() => db.query("SELECT ?1", [{ not: "bindable" }])),
    is_sql_error: (() => {
      try {
        db.query("SELEKT 1");
        return false;
      } catch (e) {
        return e instanceof SqlError;
      }
    })(),
  };
}

export const handle = app({
  kv: () => json(kvTour()),
  crypto: () => json(cryptoTour()),
  sql: () => json(sqlTour()),
  // An uncaught SqlError: a 500 with the message in the log.
  "sql-fail": () => sql.database("main").query("SELECT * FROM missing_table"),

  config: () =>
    json({
      motto: config.get("motto"),
      missing: config.get("nope") ?? null,
      all: config.getAll(),
      require_missing: caught(() => config.require("nope")),
      settings: settings.get(),
      settings_text: settings.text(),
    }),

  session: (req) => {
    const before = session.keys();
    session.setJSON("cart", { items: [1, 2] });
    session.set("plain", "value");
    const cart = session.getJSON("cart");
    const removed = session.remove("plain");
    const removedAgain = session.remove("plain");
    session.flash("info", "one");
    session.flash("error", "two");
    const flashes = session.takeFlashes();
    const token = session.csrfToken();
    const tooBig = caught(() => session.set("huge", "x".repeat(64 * 1024)));
    session.signIn("u-1", { name: "Ada", roles: ["admin"] });
    return json({
      before,
      cart,
      removed,
      removed_again: removedAgain,
      flashes,
      after_take: session.takeFlashes(),
      token_len: token.length,
      too_big: tooBig,
      identity: session.getJSON("identity"),
      keys: session.keys().sort(),
      method: req.method,
    });
  },

  fetch: async (req) => {
    const upstream = config.require("upstream");
    const r = await outbound.fetch(`${upstream}/hello/outbound`, { headers: { "x-from": "sdk-js" } });
    const posted = outbound.send(`${upstream}/api/echo`, { method: "POST", json: { message: "via outbound", shout: true } });
    let refused;
    try {
      await outbound.fetch("http://127.0.0.1:1/nowhere");
    } catch (e) {
      refused = { name: e.name, status: e.status, interface: e.interface, message: e.message };
    }
    let globalFetch;
    try {
      await fetch(`${upstream}/hello/global`);
    } catch (e) {
      globalFetch = `${e.name}: ${e.message}`;
    }
    return json({
      global_fetch: globalFetch,
      status: r.status,
      ok: r.ok,
      content_type: r.headers.get("content-type"),
      text: r.text(),
      posted: posted.json(),
      refused,
      query: req.query.get("q"),
    });
  },

  inspect: (req) => {
    const upload = req.file("upload");
    return json({
      method: req.method,
      path: req.path,
      full_path: req.fullPath,
      route: req.route,
      params: req.params,
      rest: req.param("rest"),
      missing_param: req.param("nope") ?? null,
      query_all: req.query.getAll("tag"),
      query_one: req.query.get("q"),
      query_string: req.queryString,
      header: req.header("X-Custom"),
      header_all: req.headers.getAll("x-multi"),
      has_header: req.headers.has("x-custom"),
      cookies: req.cookies,
      cookie: req.cookie("b") ?? null,
      content_type: req.contentType,
      client_ok: /^127\.0\.0\.1:\d+$/.test(req.client),
      request_id_ok: req.requestId.length > 0,
      identity: req.identity,
      has_role: req.hasRole("admin"),
      body_len: req.body.length,
      form: req.contentType.includes("form") ? req.form() : null,
      field_all: req.fieldAll("tag"),
      upload: upload ? { filename: upload.filename, content_type: upload.contentType, text: new TextDecoder().decode(upload.data) } : null,
      json: req.contentType === "application/json" ? req.json() : null,
      not_json: req.contentType !== "application/json" && req.method !== "GET" ? caught(() => req.json()) : null,
    });
  },

  returns: (req) => {
    switch (req.param("kind")) {
      case "string":
        return "a plain string";
      case "object":
        return { an: "object", n: 1 };
      case "bytes":
        return new Uint8Array([104, 105]);
      case "nothing":
        return undefined;
      case "teapot":
        throw new HttpError(418, "short and stout", { headers: { "x-teapot": "yes" } });
      case "server-error":
        throw HttpError.internal("the secret reason");
      case "crash":
        throw new Error("a plain exception");
      case "reject":
        return Promise.reject(new TypeError("a rejected promise"));
      case "cookie":
        return text("with a cookie").withCookie("pref", "dark", { maxAge: 3600 }).withHeader("x-extra", 1).withStatus(201);
      case "custom":
        return new Response("custom body", { status: 202, headers: [["content-type", "text/x-custom"]] });
      case "empty":
        return status(204);
      default:
        return status(404);
    }
  },

  async: async () => {
    const order = [];
    const p = new Promise((resolve) => setTimeout(() => resolve("timer"), 5));
    queueMicrotask(() => order.push("microtask"));
    order.push("sync");
    order.push(await p);
    log.info("async route", { order });
    return json({ order });
  },

  methods: {
    GET: () => text("get"),
  },
});
