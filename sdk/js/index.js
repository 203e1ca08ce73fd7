// Write Flagon handler components in JavaScript.
//
//   import { app, text } from "@flagon/sdk";
//
//   export const handle = app({
//     greet: (req) => text(`Hello, ${req.param("name")}!\n`),
//   });
//
// `build.mjs` bundles the app with this module and turns it into a component of the world
// `flagon:app/handler` (see docs/lang/js.md). The host interfaces are imported below by their
// WIT names; the bundler drops every one the app does not reach, and the build writes a world
// with only the rest, so the component imports (and needs grants for) only what it uses.
//
// Every request runs on a fresh instance: module state does not survive to the next request.

import { log as hostLog } from "flagon:app/log@0.1.0";
import { get as configGet, getAll as configGetAll } from "flagon:app/config@0.1.0";
import { get as settingsGet } from "flagon:app/settings@0.1.0";
import {
  hashPassword as cryptoHashPassword,
  verifyPassword as cryptoVerifyPassword,
  randomBytes as cryptoRandomBytes,
  randomToken as cryptoRandomToken,
  hmacSha256 as cryptoHmacSha256,
  hmacSha256Verify as cryptoHmacSha256Verify,
} from "flagon:app/crypto@0.1.0";
import { render as templatesRender } from "flagon:app/templates@0.1.0";
import {
  get as sessionGet,
  set as sessionSet,
  remove as sessionRemove,
  keys as sessionKeys,
  clear as sessionClear,
  rotate as sessionRotate,
  flash as sessionFlash,
  takeFlashes as sessionTakeFlashes,
  csrfToken as sessionCsrfToken,
} from "flagon:app/session@0.1.0";
import {
  get as kvGet,
  set as kvSet,
  delete as kvDelete,
  exists as kvExists,
  increment as kvIncrement,
  incrementNew as kvIncrementNew,
  listKeys as kvListKeys,
} from "flagon:app/kv@0.1.0";
import { send as outboundSend } from "flagon:app/outbound-http@0.1.0";
import {
  query as sqlQuery,
  execute as sqlExecute,
  begin as sqlBegin,
  Transaction as SqlTransactionHandle,
} from "flagon:app/sql@0.1.0";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

const REASONS = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/**
 * An error that becomes a response with its status. Throw it anywhere in a handler.
 *
 * Client errors (4xx) show their message, which should say what to fix. Server errors (5xx)
 * show only the reason phrase; the message goes to the log with the request id.
 */
export class HttpError extends Error {
  constructor(status, message, options = {}) {
    super(message ?? REASONS[status] ?? `HTTP ${status}`, options.cause ? { cause: options.cause } : undefined);
    this.name = "HttpError";
    this.status = status;
    this.headers = normalizeHeaders(options.headers);
  }

  static badRequest(message = "bad request") {
    return new HttpError(400, message);
  }
  static unauthorized(message = "unauthorized") {
    return new HttpError(401, message);
  }
  static forbidden(message = "forbidden") {
    return new HttpError(403, message);
  }
  static notFound(message = "not found") {
    return new HttpError(404, message);
  }
  static conflict(message = "conflict") {
    return new HttpError(409, message);
  }
  static unsupportedMediaType(message = "unsupported media type") {
    return new HttpError(415, message);
  }
  static internal(message = "internal error") {
    return new HttpError(500, message);
  }
}

/** Throw an {@link HttpError}: `abort(404)`, `abort(400, "name is required")`. */
export function abort(status, message) {
  throw new HttpError(status, message);
}

/**
 * A host call that failed with a message (`result<_, string>` in the WIT): a full kv store, a
 * session over its size limit, a refused outbound request. A 500 unless said otherwise (502 for
 * outbound requests).
 */
export class HostError extends HttpError {
  constructor(iface, message, status = 500) {
    super(status, `${iface}: ${message}`);
    this.name = "HostError";
    this.interface = iface;
    this.reason = message;
  }
}

// The generated bindings throw a `ComponentError` whose `payload` is the WIT error value. It is
// made in the bindings' own realm, so `instanceof Error` is false here: test for `payload`.
function payloadOf(e) {
  return e !== null && typeof e === "object" && "payload" in e ? e.payload : undefined;
}

function hostCall(iface, fn, status = 500) {
  try {
    return fn();
  } catch (e) {
    if (typeof payloadOf(e) === "string") {
      throw new HostError(iface, e.payload, status);
    }
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

function methodName(method) {
  if (typeof method === "string") return method.toUpperCase();
  return method.tag === "other" ? method.val : method.tag.toUpperCase();
}

function methodVariant(name) {
  const lower = String(name).toLowerCase();
  switch (lower) {
    case "get":
    case "head":
    case "post":
    case "put":
    case "delete":
    case "patch":
    case "options":
      return { tag: lower };
    default:
      return { tag: "other", val: String(name).toUpperCase() };
  }
}

/** Header pairs with case-insensitive look-up, as the host sent them (lowercase names). */
export class HeaderMap {
  constructor(pairs = []) {
    this._pairs = normalizeHeaders(pairs).map(([k, v]) => [k.toLowerCase(), v]);
  }
  /** The first value of `name`, or `null` (as the web `Headers.get`, but not joined). */
  get(name) {
    const n = name.toLowerCase();
    const hit = this._pairs.find(([k]) => k === n);
    return hit ? hit[1] : null;
  }
  /** Every value of `name`, in the order received. */
  getAll(name) {
    const n = name.toLowerCase();
    return this._pairs.filter(([k]) => k === n).map(([, v]) => v);
  }
  has(name) {
    return this.get(name) !== null;
  }
  entries() {
    return this._pairs.map(([k, v]) => [k, v])[Symbol.iterator]();
  }
  keys() {
    return [...new Set(this._pairs.map(([k]) => k))][Symbol.iterator]();
  }
  [Symbol.iterator]() {
    return this.entries();
  }
  /** A plain object of the first value of each header. */
  toObject() {
    const out = {};
    for (const [k, v] of this._pairs) if (!(k in out)) out[k] = v;
    return out;
  }
  toJSON() {
    return this.toObject();
  }
}

function identityFromWire(id) {
  if (!id) return null;
  return Object.freeze({
    subject: id.subject,
    displayName: id.displayName ?? null,
    roles: [...id.roles],
    claims: Object.fromEntries(id.claims),
    authenticator: id.authenticator,
  });
}

function mediaType(value) {
  return (value ?? "").split(";")[0].trim().toLowerCase();
}

/** One incoming request, as the host parsed and routed it. */
export class Request {
  constructor(wire) {
    /** The request record exactly as the host sent it (`flagon:app/types.request`). */
    this.raw = wire;
    this.method = methodName(wire.method);
    /** The raw (percent-encoded) path, without the query. */
    this.path = wire.path;
    /** The raw query string without `?` ("" when there is none). */
    this.queryString = wire.query;
    /** The `name` of the matched route in flagon.toml, or `null`. */
    this.route = wire.route ?? null;
    /** The decoded path parameters of the route (`{name}`, `{*rest}`). */
    this.params = Object.freeze(Object.fromEntries(wire.params));
    /** The parsed query string. */
    this.query = new URLSearchParams(wire.query);
    this.headers = new HeaderMap(wire.headers);
    /** The body bytes (empty for multipart forms: their parts are in `formFields`). */
    this.body = bytesIn(wire.body);
    /** The client's address as the host saw it, e.g. `127.0.0.1:50412`. */
    this.client = wire.client;
    /** The id of this request, as in the host's log and error pages. */
    this.requestId = wire.requestId;
    /** Who sent the request, on routes with `auth`; `null` otherwise. */
    this.identity = identityFromWire(wire.identity);
    /** Every decoded form field, files too: `{ name, value, file }`. */
    this.formFields = wire.form.map((f) => ({
      name: f.name,
      value: f.value,
      file: f.file ? { filename: f.file.filename, contentType: f.file.contentType, data: bytesIn(f.file.data) } : null,
    }));
    this._cookies = undefined;
  }

  /** The path with the query string, as in the request line. */
  get fullPath() {
    return this.queryString ? `${this.path}?${this.queryString}` : this.path;
  }

  /** A path parameter, or `undefined`. */
  param(name) {
    return Object.hasOwn(this.params, name) ? this.params[name] : undefined;
  }

  /** The first value of a header (case-insensitive), or `null`. */
  header(name) {
    return this.headers.get(name);
  }

  /** The media type of the body, lowercase, without parameters (`application/json`). */
  get contentType() {
    return mediaType(this.headers.get("content-type"));
  }

  /** The cookies of the `Cookie` header (the host's own session cookie is never among them). */
  get cookies() {
    if (this._cookies === undefined) {
      const out = {};
      for (const header of this.headers.getAll("cookie")) {
        for (const pair of header.split(";")) {
          const i = pair.indexOf("=");
          if (i < 0) continue;
          const k = pair.slice(0, i).trim();
          let v = pair.slice(i + 1).trim();
          if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
          if (k && !(k in out)) out[k] = v;
        }
      }
      this._cookies = Object.freeze(out);
    }
    return this._cookies;
  }

  /** The value of one cookie, or `undefined`. */
  cookie(name) {
    return Object.hasOwn(this.cookies, name) ? this.cookies[name] : undefined;
  }

  /** The body as text; a body that is not UTF-8 is a 400. */
  text() {
    try {
      return decoder.decode(this.body);
    } catch {
      throw new HttpError(400, "request body is not valid UTF-8");
    }
  }

  /**
   * The body parsed as JSON. Another `Content-Type` is a 415; JSON that does not parse is a
   * 400 saying why. Synchronous (`await req.json()` works too).
   */
  json() {
    const ct = this.contentType;
    if (!(ct === "application/json" || ct.endsWith("+json"))) {
      throw new HttpError(415, "expected a request body with `Content-Type: application/json`");
    }
    try {
      return JSON.parse(this.text());
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(400, `invalid JSON body: ${e.message}`);
    }
  }

  /**
   * The text fields of a form (urlencoded or multipart, decoded by the host) as an object of
   * the first value of each name. Another `Content-Type` is a 415.
   */
  form() {
    const ct = this.contentType;
    if (ct !== "application/x-www-form-urlencoded" && ct !== "multipart/form-data") {
      throw new HttpError(
        415,
        "expected a form body (`application/x-www-form-urlencoded` or `multipart/form-data`)",
      );
    }
    const out = {};
    for (const f of this.formFields) if (!f.file && !(f.name in out)) out[f.name] = f.value;
    return out;
  }

  /** The first text value of the form field `name`, or `undefined`. */
  field(name) {
    return this.formFields.find((f) => f.name === name && !f.file)?.value;
  }

  /** Every text value of the form field `name` (checkboxes, multi-selects). */
  fieldAll(name) {
    return this.formFields.filter((f) => f.name === name && !f.file).map((f) => f.value);
  }

  /** The first file uploaded under `name`: `{ filename, contentType, data }`, or `undefined`. */
  file(name) {
    return this.formFields.find((f) => f.name === name && f.file)?.file ?? undefined;
  }

  /** Whether the request's identity has `role`. */
  hasRole(role) {
    return this.identity?.roles.includes(role) ?? false;
  }
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

function normalizeHeaders(headers) {
  if (!headers) return [];
  if (headers instanceof HeaderMap) return [...headers];
  if (Array.isArray(headers)) return headers.map(([k, v]) => [String(k), String(v)]);
  if (typeof headers[Symbol.iterator] === "function") return [...headers].map(([k, v]) => [String(k), String(v)]);
  return Object.entries(headers).map(([k, v]) => [k, String(v)]);
}

// Byte lists from the generated bindings are Uint8Arrays of the bindings' realm: `instanceof
// Uint8Array` is false for them in the app. A view of the same memory fixes that, without a copy.
function bytesIn(bytes) {
  return bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function toBytes(body) {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError(`a body must be a string or bytes, not ${typeof body}`);
}

/**
 * The response a handler returns. Make one with {@link text}, {@link html}, {@link json},
 * {@link redirect}, {@link render} or {@link status}, or `new Response(body, { status, headers })`,
 * then chain `withStatus` and `withHeader`.
 */
export class Response {
  constructor(body = "", init = {}) {
    this.status = init.status ?? 200;
    this.headers = normalizeHeaders(init.headers);
    this.body = toBytes(body);
  }

  /** Replace the status code. */
  withStatus(status) {
    this.status = status;
    return this;
  }

  /** Add a header (the host validates names and values). */
  withHeader(name, value) {
    this.headers.push([String(name), String(value)]);
    return this;
  }

  /** Add a `Set-Cookie` header. The host's session cookie is managed by `session`, not here. */
  withCookie(name, value, options = {}) {
    let c = `${name}=${value}`;
    if (options.maxAge !== undefined) c += `; Max-Age=${Math.trunc(options.maxAge)}`;
    c += `; Path=${options.path ?? "/"}`;
    if (options.domain) c += `; Domain=${options.domain}`;
    if (options.httpOnly ?? true) c += "; HttpOnly";
    if (options.secure) c += "; Secure";
    c += `; SameSite=${options.sameSite ?? "Lax"}`;
    return this.withHeader("set-cookie", c);
  }

  /** The first value of a header set so far, or `undefined`. */
  header(name) {
    const n = name.toLowerCase();
    return this.headers.find(([k]) => k.toLowerCase() === n)?.[1];
  }

  /** The body as text (for tests and middleware-like code). */
  text() {
    return decoder.decode(this.body);
  }
}

function withInit(response, init) {
  if (init === undefined) return response;
  if (typeof init === "number") return response.withStatus(init);
  if (init.status !== undefined) response.withStatus(init.status);
  for (const [k, v] of normalizeHeaders(init.headers)) response.withHeader(k, v);
  return response;
}

/** `200` with a `text/plain; charset=utf-8` body. `init` is a status or `{ status, headers }`. */
export function text(body, init) {
  return withInit(new Response(String(body), { headers: [["content-type", "text/plain; charset=utf-8"]] }), init);
}

/**
 * `200` with a `text/html; charset=utf-8` body. Nothing is escaped: build HTML from untrusted
 * input with {@link render} (the host's auto-escaping templates) instead.
 */
export function html(body, init) {
  return withInit(new Response(String(body), { headers: [["content-type", "text/html; charset=utf-8"]] }), init);
}

/** `200` with `value` as JSON (`application/json`). BigInts become JSON numbers. */
export function json(value, init) {
  return withInit(new Response(stringifyJson(value), { headers: [["content-type", "application/json"]] }), init);
}

/** `303 See Other` to `location` (after a form post the browser follows with a GET). */
export function redirect(location, status = 303) {
  return new Response("", { status, headers: [["location", String(location)]] });
}

/**
 * An empty response with this status. An empty 4xx or 5xx gets the app's error page if
 * `[errors]` in flagon.toml names one.
 */
export function status(code, init) {
  return withInit(new Response("", { status: code }), init);
}

const TEMPLATE_TYPES = {
  txt: "text/plain; charset=utf-8",
  text: "text/plain; charset=utf-8",
  json: "application/json",
  xml: "application/xml; charset=utf-8",
  svg: "image/svg+xml",
  css: "text/css; charset=utf-8",
};

/**
 * Render the template `name` (a path under `templates/`) with `context` (an object whose keys
 * become template variables) into the template's text. Needs `grants.templates`. A failed
 * render is a 500 (the host logs the template and line).
 */
export function renderToString(name, context = {}) {
  if (context === null || typeof context !== "object" || Array.isArray(context)) {
    throw new TypeError("a template context must be an object");
  }
  return hostCall("templates", () => templatesRender(name, stringifyJson(context)));
}

/**
 * Render a template into a `200` response whose `Content-Type` follows the template's
 * extension (`.html` -> `text/html`, `.txt` -> `text/plain`, ...). Needs `grants.templates`.
 */
export function render(name, context = {}, init) {
  const body = renderToString(name, context);
  const ext = name.replace(/\.(j2|jinja)$/, "").split(".").pop();
  const type = TEMPLATE_TYPES[ext] ?? "text/html; charset=utf-8";
  return withInit(new Response(body, { headers: [["content-type", type]] }), init);
}

// JSON with BigInt support: a BigInt is written as a JSON number (JSON.rawJSON where the engine
// has it, else a Number when that is exact).
function stringifyJson(value) {
  return JSON.stringify(value, (_key, v) => {
    if (typeof v !== "bigint") return v;
    if (typeof JSON.rawJSON === "function") return JSON.rawJSON(v.toString());
    if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    throw new TypeError(`the BigInt ${v} cannot be written as an exact JSON number here; convert it to a string`);
  });
}

// ---------------------------------------------------------------------------------------------
// The exported handler
// ---------------------------------------------------------------------------------------------

function reasonOf(status) {
  return REASONS[status] ?? (status >= 500 ? "Server Error" : "Error");
}

function errorResponse(err, req) {
  if (err instanceof HttpError) {
    if (err.status >= 500) {
      log.error(`handler error: ${err.message}`);
      return new Response(`${reasonOf(err.status)}\n`, {
        status: err.status,
        headers: [["content-type", "text/plain; charset=utf-8"], ...err.headers],
      });
    }
    return new Response(`${err.message}\n`, {
      status: err.status,
      headers: [["content-type", "text/plain; charset=utf-8"], ...err.headers],
    });
  }
  if (err instanceof SqlError) {
    log.error(`handler error: sql: ${err.message}`);
    return new Response(`${reasonOf(err.status)}\n`, {
      status: err.status,
      headers: [["content-type", "text/plain; charset=utf-8"]],
    });
  }
  const detail = err instanceof Error ? `${err.name}: ${err.message}${err.stack ? `\n${err.stack}` : ""}` : String(err);
  log.error(`uncaught exception in ${req ? `route ${req.route ?? req.path}` : "the handler"}: ${detail}`);
  return new Response("Internal Server Error\n", {
    status: 500,
    headers: [["content-type", "text/plain; charset=utf-8"]],
  });
}

function coerce(out) {
  if (out instanceof Response) return out;
  if (typeof out === "string") return text(out);
  if (out instanceof Uint8Array || out instanceof ArrayBuffer) {
    return new Response(out, { headers: [["content-type", "application/octet-stream"]] });
  }
  if (out === undefined || out === null) {
    throw new TypeError("the handler returned nothing; return a Response (text(), json(), render(), status(204), ...)");
  }
  if (typeof out === "object") return json(out);
  throw new TypeError(`the handler returned a ${typeof out}; return a Response`);
}

function toWire(res) {
  return { status: res.status, headers: res.headers, body: res.body };
}

function finish(out, req) {
  try {
    return toWire(coerce(out));
  } catch (e) {
    return toWire(errorResponse(e, req));
  }
}

function routeTable(table, options) {
  // Method keys are matched in uppercase, whatever case the table uses.
  const routes = {};
  for (const [name, entry] of Object.entries(table)) {
    if (typeof entry === "function") {
      routes[name] = entry;
      continue;
    }
    if (!entry || typeof entry !== "object") throw new TypeError(`route \`${name}\`: expected a function or { GET, POST, ... }`);
    routes[name] = {};
    for (const [m, fn] of Object.entries(entry)) {
      if (typeof fn !== "function") throw new TypeError(`route \`${name}\`: \`${m}\` is not a function`);
      routes[name][m.toUpperCase()] = fn;
    }
  }
  return (req) => {
    const entry = req.route !== null && Object.hasOwn(routes, req.route) ? routes[req.route] : undefined;
    if (entry === undefined) {
      return options.notFound ? options.notFound(req) : status(404);
    }
    if (typeof entry === "function") return entry(req);
    const fn = entry[req.method] ?? (req.method === "HEAD" ? entry.GET : undefined);
    if (fn) return fn(req);
    const allow = Object.keys(entry).join(", ");
    return status(405).withHeader("allow", allow);
  };
}

/**
 * Turn a handler into this component's `handle` export:
 *
 *   export const handle = app(async (req) => text("hi"));
 *
 * or route by the routes' `name` in flagon.toml, with a function or one per method:
 *
 *   export const handle = app({
 *     index: (req) => render("index.html", {}),
 *     login: { GET: showForm, POST: signIn },
 *   });
 *
 * A handler returns a Response (a string becomes text/plain, an object JSON) or a promise of
 * one. A thrown HttpError becomes its status; anything else thrown is logged and becomes a 500.
 * Requests for a route name that is not in the table get an empty 404 (`options.notFound`
 * changes that).
 */
export function app(handler, options = {}) {
  const fn = typeof handler === "function" ? handler : routeTable(handler, options);
  // The engine's own fetch() is built without wasi:http (the host never links it for
  // handlers), and calling it would trap the instance: say what to use instead.
  globalThis.fetch = function fetch() {
    return Promise.reject(
      new TypeError("the global fetch() is not available in a Flagon handler: use `outbound.fetch` from @flagon/sdk (and `grants.outbound`)"),
    );
  };
  return function handle(wire) {
    let req;
    let out;
    try {
      req = new Request(wire);
      out = fn(req);
    } catch (e) {
      return toWire(errorResponse(e, req));
    }
    if (out && typeof out.then === "function") {
      return out.then(
        (value) => finish(value, req),
        (e) => toWire(errorResponse(e, req)),
      );
    }
    return finish(out, req);
  };
}

// ---------------------------------------------------------------------------------------------
// log, config, settings
// ---------------------------------------------------------------------------------------------

function logLine(args) {
  return args
    .map((a) => {
      if (typeof a === "string") return a;
      if (a instanceof Error) return a.stack ? `${a.name}: ${a.message}\n${a.stack}` : `${a.name}: ${a.message}`;
      try {
        return stringifyJson(a) ?? String(a);
      } catch {
        return String(a);
      }
    })
    .join(" ");
}

/** Log lines through the host, attributed to the component and the request id. */
export const log = {
  trace: (...args) => hostLog("trace", logLine(args)),
  debug: (...args) => hostLog("debug", logLine(args)),
  info: (...args) => hostLog("info", logLine(args)),
  warn: (...args) => hostLog("warn", logLine(args)),
  error: (...args) => hostLog("error", logLine(args)),
};

/** The variables granted to this component (`grants.variables`). */
export const config = {
  /** The value of a granted variable, or `undefined`. */
  get(name) {
    return configGet(name) ?? undefined;
  },
  /** The value of a granted variable; throws (a 500) when it is not granted. */
  require(name) {
    const v = configGet(name);
    if (v === undefined || v === null) throw new HttpError(500, `config: the variable \`${name}\` is not granted to this component`);
    return v;
  },
  /** Every granted variable, as an object. */
  getAll() {
    return Object.fromEntries(configGetAll());
  },
};

/** This component's own `settings` table from flagon.toml. */
export const settings = {
  /** The settings parsed from JSON (`{}` without a table). */
  get() {
    return JSON.parse(settingsGet());
  },
  /** The settings as the JSON text the host sent. */
  text() {
    return settingsGet();
  },
};

// ---------------------------------------------------------------------------------------------
// crypto
// ---------------------------------------------------------------------------------------------

/** Password hashing, secure random numbers and HMAC, done by the host (`grants.crypto`). */
export const crypto = {
  /** Hash a password with argon2id into a PHC string to store. */
  hashPassword(password) {
    return hostCall("crypto", () => cryptoHashPassword(password));
  },
  /** Check a password against a stored PHC string (false for a malformed hash). */
  verifyPassword(password, hash) {
    return cryptoVerifyPassword(password, hash);
  },
  /** `length` secure random bytes (at most 65536). */
  randomBytes(length) {
    return bytesIn(hostCall("crypto", () => cryptoRandomBytes(length)));
  },
  /** A URL-safe random token of `bytes` random bytes (16 to 1024; 32 by default). */
  randomToken(bytes = 32) {
    return hostCall("crypto", () => cryptoRandomToken(bytes));
  },
  /** HMAC-SHA256 of `message` under `key` (strings are UTF-8 encoded). */
  hmacSha256(key, message) {
    return bytesIn(cryptoHmacSha256(toBytes(key), toBytes(message)));
  },
  /** Check an HMAC-SHA256 tag in constant time. */
  hmacSha256Verify(key, message, tag) {
    return cryptoHmacSha256Verify(toBytes(key), toBytes(message), toBytes(tag));
  },
};

// ---------------------------------------------------------------------------------------------
// session
// ---------------------------------------------------------------------------------------------

/**
 * The visitor's session, kept by the host in an encrypted cookie (`grants.session`). Routes of
 * such components get CSRF checks for unsafe methods: put `{{ csrf_token() }}` in a form field
 * named `csrf_token`, or send an `X-CSRF-Token` header.
 */
export const session = {
  /** The value stored under `key`, or `undefined`. */
  get(key) {
    return sessionGet(key) ?? undefined;
  },
  /** The JSON value stored under `key` with `setJSON`, or `undefined`. */
  getJSON(key) {
    const v = sessionGet(key);
    if (v === undefined || v === null) return undefined;
    try {
      return JSON.parse(v);
    } catch {
      return undefined;
    }
  },
  /** Store `value` under `key`; throws (a 500) when the cookie would outgrow its limit. */
  set(key, value) {
    hostCall("session", () => sessionSet(key, String(value)));
  },
  /** Store `value` as JSON under `key`. */
  setJSON(key, value) {
    hostCall("session", () => sessionSet(key, stringifyJson(value)));
  },
  /** Remove `key`; true when it was there. */
  remove(key) {
    return sessionRemove(key);
  },
  /** Every key in the session. */
  keys() {
    return [...sessionKeys()];
  },
  /** Empty the session (values, flashes and the CSRF secret): log out. */
  clear() {
    sessionClear();
  },
  /** A new CSRF secret and lifetime, same values: call it when privileges change (log in). */
  rotate() {
    sessionRotate();
  },
  /** Queue a message for the next page (`get_flashed_messages()` in templates). */
  flash(category, message) {
    hostCall("session", () => sessionFlash(category, message));
  },
  /** Take the queued messages: `[{ category, message }]`. */
  takeFlashes() {
    return sessionTakeFlashes().map(([category, message]) => ({ category, message }));
  },
  /** A CSRF token for this session (a new one each call, all valid). */
  csrfToken() {
    return sessionCsrfToken();
  },
  /**
   * Sign the visitor in for routes that `plugins/auth-session` authenticates: `rotate()`, then
   * the identity under `identity`. Check the password first (`crypto.verifyPassword`).
   */
  signIn(subject, { name = null, roles = [] } = {}) {
    sessionRotate();
    hostCall("session", () => sessionSet("identity", stringifyJson({ subject, name, roles })));
  },
  /** Sign out: `clear()`. */
  signOut() {
    sessionClear();
  },
};

// ---------------------------------------------------------------------------------------------
// kv
// ---------------------------------------------------------------------------------------------

function intOut(v) {
  return typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(v)
    : v;
}

function ttlMs(options) {
  const ttl = options?.ttl;
  if (ttl === undefined || ttl === null) return undefined;
  if (typeof ttl !== "bigint" && !(Number.isInteger(ttl) && ttl > 0)) {
    throw new TypeError("ttl is a whole number of milliseconds greater than 0");
  }
  return BigInt(ttl);
}

/** One named store from `[kv.<name>]`; every call fails unless `grants.kv` lists it. */
export class KvStore {
  constructor(name) {
    this.name = name;
  }
  /** The value's bytes, or `undefined`. */
  get(key) {
    const v = hostCall("kv", () => kvGet(this.name, key));
    return v === undefined || v === null ? undefined : bytesIn(v);
  }
  /** The value as UTF-8 text, or `undefined`. */
  getText(key) {
    const v = this.get(key);
    return v === undefined ? undefined : new TextDecoder().decode(v);
  }
  /** The value parsed as JSON, or `undefined`. */
  getJSON(key) {
    const v = this.getText(key);
    return v === undefined ? undefined : JSON.parse(v);
  }
  /** Store a string or bytes; `{ ttl }` in milliseconds makes it expire. */
  set(key, value, options) {
    hostCall("kv", () => kvSet(this.name, key, toBytes(value), ttlMs(options)));
  }
  /** Store `value` as JSON. */
  setJSON(key, value, options) {
    this.set(key, stringifyJson(value), options);
  }
  /** Remove `key`; true when it was there. */
  delete(key) {
    return hostCall("kv", () => kvDelete(this.name, key));
  }
  /** Whether `key` is there (and not expired). */
  has(key) {
    return hostCall("kv", () => kvExists(this.name, key));
  }
  /** Add `delta` (1 by default) to the integer under `key` (missing counts as 0); the sum. */
  increment(key, delta = 1) {
    return intOut(hostCall("kv", () => kvIncrement(this.name, key, BigInt(delta))));
  }
  /**
   * `increment`, and a key this call creates expires after `ttl` milliseconds (an existing key
   * keeps its expiry): a fixed-window counter.
   */
  incrementNew(key, delta, ttl) {
    return intOut(hostCall("kv", () => kvIncrementNew(this.name, key, BigInt(delta), ttlMs({ ttl }))));
  }
  /** Keys starting with `prefix`, sorted (at most 1000). */
  keys(prefix = "") {
    return [...hostCall("kv", () => kvListKeys(this.name, prefix))];
  }
}

/** Named key-value stores (`grants.kv`). */
export const kv = {
  /** The store `name`. */
  store(name) {
    return new KvStore(name);
  },
};

// ---------------------------------------------------------------------------------------------
// outbound HTTP
// ---------------------------------------------------------------------------------------------

/** The response to an outbound request (after redirects). */
export class OutboundResponse {
  constructor(wire) {
    this.status = wire.status;
    this.ok = wire.status >= 200 && wire.status < 300;
    this.headers = new HeaderMap(wire.headers);
    this.body = bytesIn(wire.body);
  }
  /** The body bytes. */
  bytes() {
    return this.body;
  }
  /** The body as UTF-8 text; a 502 if it is not. */
  text() {
    try {
      return decoder.decode(this.body);
    } catch {
      throw new HttpError(502, "the upstream response is not UTF-8");
    }
  }
  /** The body parsed as JSON; a 502 if it does not parse. */
  json() {
    try {
      return JSON.parse(this.text());
    } catch (e) {
      if (e instanceof HttpError) throw e;
      throw new HttpError(502, `invalid JSON from upstream: ${e.message}`);
    }
  }
}

function outgoing(url, init = {}) {
  const headers = normalizeHeaders(init.headers);
  let body = init.body;
  if (init.json !== undefined) {
    body = stringifyJson(init.json);
    if (!headers.some(([k]) => k.toLowerCase() === "content-type")) headers.push(["content-type", "application/json"]);
  }
  return { method: methodVariant(init.method ?? "GET"), url: String(url), headers, body: toBytes(body) };
}

/**
 * HTTP requests to the origins in `grants.outbound`, and nowhere else. Refusals (origin not
 * granted, private address, timeout, too large) and network failures throw a HostError (502).
 */
export const outbound = {
  /** Send a request now and return the response: `outbound.send(url, { method, headers, body, json })`. */
  send(url, init) {
    return new OutboundResponse(hostCall("outbound", () => outboundSend(outgoing(url, init)), 502));
  },
  /** `send` with the shape of the web `fetch`: `await outbound.fetch(url, init)`. */
  async fetch(url, init) {
    return outbound.send(url, init);
  },
};

// ---------------------------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------------------------

const SQL_KINDS = {
  "constraint-violation": "constraint violation",
  "no-such-table": "no such table",
  "no-such-column": "no such column",
  syntax: "syntax error",
  timeout: "the statement timed out",
  "too-many-rows": "too many rows",
  "too-large": "too large",
  "connection-lost": "the database connection was lost",
  "not-granted": "not granted",
  other: "error",
};

/**
 * A failed SQL statement (`sql-error` in the WIT). `kind` is the variant's name
 * (`constraint-violation`, `no-such-table`, `timeout`, ...). Uncaught in a handler it is a 503
 * for `timeout` and `connection-lost`, a 500 otherwise; the message goes to the log.
 */
export class SqlError extends Error {
  constructor(wire) {
    const kind = wire.tag;
    let message;
    let constraint = null;
    let limit = null;
    switch (kind) {
      case "constraint-violation":
        constraint = { kind: wire.val.kind, name: wire.val.constraint ?? null, message: wire.val.message };
        message = `constraint violation: ${wire.val.message}`;
        break;
      case "no-such-table":
        message = `no such table: ${wire.val}`;
        break;
      case "no-such-column":
        message = `no such column: ${wire.val}`;
        break;
      case "syntax":
        message = `syntax error: ${wire.val}`;
        break;
      case "timeout":
      case "connection-lost":
        message = SQL_KINDS[kind];
        break;
      case "too-many-rows":
        limit = intOut(wire.val);
        message = `the result has more than ${limit} rows`;
        break;
      case "too-large":
        limit = intOut(wire.val);
        message = `the result or parameters exceed ${limit} bytes`;
        break;
      default:
        message = String(wire.val ?? kind);
    }
    super(message);
    this.name = "SqlError";
    this.kind = kind;
    /** For `constraint-violation`: `{ kind: "unique" | "primary-key" | ..., name, message }`. */
    this.constraint = constraint;
    /** For `too-many-rows` and `too-large`: the limit. */
    this.limit = limit;
    this.status = kind === "timeout" || kind === "connection-lost" ? 503 : 500;
  }
}

function sqlCall(fn) {
  try {
    return fn();
  } catch (e) {
    const payload = payloadOf(e);
    if (payload && typeof payload.tag === "string") {
      throw new SqlError(payload);
    }
    throw e;
  }
}

/** A parameter with an explicit SQL type (see `sql.integer`, `sql.real`, ...). */
export class SqlValue {
  constructor(tag, val) {
    this.tag = tag;
    this.val = val;
  }
}

function toSqlValue(v, i) {
  if (v instanceof SqlValue) return v.tag === "null" ? { tag: "null" } : { tag: v.tag, val: v.val };
  if (v === null || v === undefined) return { tag: "null" };
  switch (typeof v) {
    case "boolean":
      return { tag: "boolean", val: v };
    case "bigint":
      return { tag: "integer", val: BigInt.asIntN(64, v) === v ? v : overflow(v, i) };
    case "number":
      return Number.isInteger(v) ? { tag: "integer", val: BigInt(v) } : { tag: "real", val: v };
    case "string":
      return { tag: "text", val: v };
    default:
      if (v instanceof Uint8Array || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return { tag: "blob", val: toBytes(v) };
      if (v instanceof Date) return { tag: "text", val: v.toISOString() };
      throw new TypeError(`SQL parameter ${i + 1}: cannot bind a ${v?.constructor?.name ?? typeof v}; pass a string, number, bigint, boolean, bytes, Date or null`);
  }
}

function overflow(v, i) {
  throw new RangeError(`SQL parameter ${i + 1}: ${v} does not fit in a 64-bit integer`);
}

function fromSqlValue(v) {
  switch (v.tag) {
    case "null":
      return null;
    case "integer":
      return intOut(v.val);
    case "blob":
      return bytesIn(v.val);
    default:
      return v.val;
  }
}

function params(list) {
  if (!Array.isArray(list)) throw new TypeError("SQL parameters are an array: query(statement, [a, b])");
  return list.map(toSqlValue);
}

function rowsOut(wire) {
  return { columns: [...wire.columns], rows: wire.rows.map((r) => r.map(fromSqlValue)) };
}

function objects({ columns, rows }) {
  return rows.map((r) => {
    const o = {};
    columns.forEach((c, i) => {
      o[c] = r[i];
    });
    return o;
  });
}

function outcomeOut(wire) {
  return {
    rowsAffected: intOut(wire.rowsAffected),
    lastInsertId: wire.lastInsertId === undefined || wire.lastInsertId === null ? null : intOut(wire.lastInsertId),
  };
}

class Queries {
  /** The rows as objects keyed by column name: `[{ id: 1, title: "..." }]`. */
  query(statement, values = []) {
    return objects(this.queryRaw(statement, values));
  }
  /** The first row as an object, or `undefined`. */
  queryOne(statement, values = []) {
    return this.query(statement, values)[0];
  }
  /** The first column of the first row, or `undefined`: `SELECT count(*) ...`. */
  queryValue(statement, values = []) {
    return this.queryRaw(statement, values).rows[0]?.[0];
  }
}

/** An open transaction on one connection. Ended by `commit` or `rollback`; one never ended is rolled back when the request ends. */
export class Transaction extends Queries {
  constructor(handle) {
    super();
    this._handle = handle;
  }
  _open() {
    if (!this._handle) throw new SqlError({ tag: "other", val: "the transaction has ended" });
    return this._handle;
  }
  /** `{ columns, rows }` with the values in column order. */
  queryRaw(statement, values = []) {
    const h = this._open();
    return rowsOut(sqlCall(() => h.query(statement, params(values))));
  }
  /** Run a statement that changes data: `{ rowsAffected, lastInsertId }`. */
  execute(statement, values = []) {
    const h = this._open();
    return outcomeOut(sqlCall(() => h.execute(statement, params(values))));
  }
  /** Whether the transaction is still open. */
  get open() {
    return this._handle !== null;
  }
  /** Commit; on an error it is rolled back. The transaction ends either way. */
  commit() {
    const h = this._open();
    this._handle = null;
    sqlCall(() => SqlTransactionHandle.commit(h));
  }
  /** Roll back (a no-op when it has ended). */
  rollback() {
    const h = this._handle;
    if (!h) return;
    this._handle = null;
    sqlCall(() => SqlTransactionHandle.rollback(h));
  }
  /** `using tx = db.transaction()` rolls back at the end of the block unless committed. */
  [Symbol.dispose ?? Symbol.for("Symbol.dispose")]() {
    this.rollback();
  }
}

/** A database from `[databases.<name>]`; every call fails with `not-granted` unless `grants.sql` lists it. */
export class Database extends Queries {
  constructor(name) {
    super();
    this.name = name;
  }
  /** `{ columns, rows }` with the values in column order (for duplicate column names). */
  queryRaw(statement, values = []) {
    return rowsOut(sqlCall(() => sqlQuery(this.name, statement, params(values))));
  }
  /** Run a statement that changes data: `{ rowsAffected, lastInsertId }`. */
  execute(statement, values = []) {
    return outcomeOut(sqlCall(() => sqlExecute(this.name, statement, params(values))));
  }
  /**
   * Begin a transaction. With a function, run it with the transaction, commit when it returns
   * (or its promise resolves) and roll back when it throws; without, return the Transaction.
   */
  transaction(fn) {
    const tx = new Transaction(sqlCall(() => sqlBegin(this.name)));
    if (fn === undefined) return tx;
    let out;
    try {
      out = fn(tx);
    } catch (e) {
      tx.rollback();
      throw e;
    }
    if (out && typeof out.then === "function") {
      return out.then(
        (v) => {
          if (tx.open) tx.commit();
          return v;
        },
        (e) => {
          tx.rollback();
          throw e;
        },
      );
    }
    if (tx.open) tx.commit();
    return out;
  }
}

/**
 * SQL on the databases in `grants.sql`. Statements take their values as parameters
 * (`?1`, `?2` for SQLite; `$1`, `$2` for Postgres), never spliced into the text.
 */
export const sql = {
  /** The database `name`. */
  database(name) {
    return new Database(name);
  },
  /** Typed parameters, for when the JS type is not the one wanted: `sql.real(2)`. */
  integer: (v) => new SqlValue("integer", BigInt(v)),
  real: (v) => new SqlValue("real", Number(v)),
  text: (v) => new SqlValue("text", String(v)),
  blob: (v) => new SqlValue("blob", toBytes(v)),
  boolean: (v) => new SqlValue("boolean", Boolean(v)),
  /** An explicit SQL NULL (`null` and `undefined` are NULL too). */
  get null() {
    return new SqlValue("null", undefined);
  },
};
