// Types of the Flagon JavaScript SDK (`@flagon/sdk`). See docs/lang/js.md.

// ---------------------------------------------------------------------------------------------
// The WIT records, as the generated bindings pass them (flagon:app/types@0.1.0)
// ---------------------------------------------------------------------------------------------

/** WIT `variant method`. */
export type WireMethod =
  | { tag: "get" }
  | { tag: "head" }
  | { tag: "post" }
  | { tag: "put" }
  | { tag: "delete" }
  | { tag: "patch" }
  | { tag: "options" }
  | { tag: "other"; val: string };

/** WIT `type fields = list<tuple<string, string>>`. */
export type Fields = Array<[string, string]>;

/** WIT `record uploaded-file`. */
export interface UploadedFile {
  /** As the browser sent it: untrusted, never a path. */
  filename: string;
  contentType: string;
  data: Uint8Array;
}

/** WIT `record form-field`. */
export interface WireFormField {
  name: string;
  value: string;
  file?: UploadedFile;
}

/** WIT `record identity`. */
export interface WireIdentity {
  subject: string;
  displayName?: string;
  roles: string[];
  claims: Fields;
  authenticator: string;
}

/** WIT `record request`: what the host passes to `handle`. */
export interface WireRequest {
  method: WireMethod;
  path: string;
  params: Fields;
  query: string;
  headers: Fields;
  body: Uint8Array;
  client: string;
  requestId: string;
  route?: string;
  form: WireFormField[];
  identity?: WireIdentity;
}

/** WIT `record response`: what `handle` returns. */
export interface WireResponse {
  status: number;
  headers: Fields;
  body: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** Headers as pairs, an object, or a HeaderMap. */
export type HeadersInit = Fields | Record<string, string | number> | HeaderMap | Iterable<[string, string]>;

/**
 * An error that becomes a response with its status. Client errors (4xx) show their message;
 * server errors (5xx) show only the reason phrase and log the message.
 */
export class HttpError extends Error {
  constructor(status: number, message?: string, options?: { headers?: HeadersInit; cause?: unknown });
  readonly status: number;
  readonly headers: Fields;
  static badRequest(message?: string): HttpError;
  static unauthorized(message?: string): HttpError;
  static forbidden(message?: string): HttpError;
  static notFound(message?: string): HttpError;
  static conflict(message?: string): HttpError;
  static unsupportedMediaType(message?: string): HttpError;
  static internal(message?: string): HttpError;
}

/** Throw an HttpError: `abort(404)`, `abort(400, "name is required")`. */
export function abort(status: number, message?: string): never;

/**
 * A host call that failed with a message (a WIT `result<_, string>` error): a full kv store, a
 * session over its size limit, a refused outbound request. Status 500, or 502 for outbound.
 */
export class HostError extends HttpError {
  /** The interface that failed: `"kv"`, `"session"`, `"outbound"`, `"crypto"`, `"templates"`. */
  readonly interface: string;
  /** The host's message, without the interface prefix. */
  readonly reason: string;
}

// ---------------------------------------------------------------------------------------------
// Request
// ---------------------------------------------------------------------------------------------

/** Header pairs with case-insensitive look-up (names are lowercase, as the host sends them). */
export class HeaderMap implements Iterable<[string, string]> {
  constructor(pairs?: HeadersInit);
  /** The first value of `name`, or `null`. */
  get(name: string): string | null;
  /** Every value of `name`, in the order received. */
  getAll(name: string): string[];
  has(name: string): boolean;
  entries(): IterableIterator<[string, string]>;
  keys(): IterableIterator<string>;
  [Symbol.iterator](): IterableIterator<[string, string]>;
  /** The first value of each header. */
  toObject(): Record<string, string>;
  toJSON(): Record<string, string>;
}

/** Who sent a request, as the route's authenticator established it. */
export interface Identity {
  readonly subject: string;
  readonly displayName: string | null;
  readonly roles: readonly string[];
  readonly claims: Readonly<Record<string, string>>;
  /** The id of the authenticator component. */
  readonly authenticator: string;
}

/** A decoded form field; `file` is set for an uploaded file. */
export interface FormField {
  name: string;
  value: string;
  file: UploadedFile | null;
}

/** One incoming request, as the host parsed and routed it. */
export class Request {
  constructor(wire: WireRequest);
  /** The request record exactly as the host sent it. */
  readonly raw: WireRequest;
  /** Uppercase: `"GET"`, `"POST"`, ... */
  readonly method: string;
  /** The raw (percent-encoded) path, without the query. */
  readonly path: string;
  /** The path with `?query` when there is one. */
  readonly fullPath: string;
  /** The raw query string without `?` (`""` when there is none). */
  readonly queryString: string;
  /** The parsed query string: `req.query.get("page")`. */
  readonly query: URLSearchParams;
  /** The `name` of the matched route in flagon.toml, or `null`. */
  readonly route: string | null;
  /** The decoded path parameters. */
  readonly params: Readonly<Record<string, string>>;
  readonly headers: HeaderMap;
  /** The body (empty for multipart forms: their parts are in `formFields`). */
  readonly body: Uint8Array;
  /** The client's address as the host saw it. */
  readonly client: string;
  /** The id of this request, as in the host's log and error pages. */
  readonly requestId: string;
  /** Who sent the request on routes with `auth`; `null` otherwise. */
  readonly identity: Identity | null;
  /** Every decoded form field (urlencoded or multipart), files too, in order. */
  readonly formFields: readonly FormField[];
  /** The media type of the body, lowercase, without parameters. */
  readonly contentType: string;
  /** The cookies of the `Cookie` header (never the host's session cookie). */
  readonly cookies: Readonly<Record<string, string>>;

  /** A path parameter, or `undefined`. */
  param(name: string): string | undefined;
  /** The first value of a header (case-insensitive), or `null`. */
  header(name: string): string | null;
  /** One cookie, or `undefined`. */
  cookie(name: string): string | undefined;
  /** The body as UTF-8 text; not UTF-8 is a 400. */
  text(): string;
  /** The body parsed as JSON: another Content-Type is a 415, bad JSON a 400. Synchronous. */
  json<T = any>(): T;
  /** The text fields of a form (first value of each name); not a form is a 415. */
  form(): Record<string, string>;
  /** The first text value of a form field, or `undefined`. */
  field(name: string): string | undefined;
  /** Every text value of a form field. */
  fieldAll(name: string): string[];
  /** The first file uploaded under `name`, or `undefined`. */
  file(name: string): UploadedFile | undefined;
  /** Whether the identity has `role`. */
  hasRole(role: string): boolean;
}

// ---------------------------------------------------------------------------------------------
// Response
// ---------------------------------------------------------------------------------------------

export type Body = string | Uint8Array | ArrayBuffer | ArrayBufferView | null | undefined;

export interface ResponseInit {
  status?: number;
  headers?: HeadersInit;
}

export interface CookieOptions {
  /** Seconds. */
  maxAge?: number;
  /** Default `/`. */
  path?: string;
  domain?: string;
  /** Default true. */
  httpOnly?: boolean;
  secure?: boolean;
  /** Default `Lax`. */
  sameSite?: "Strict" | "Lax" | "None";
}

/** The response a handler returns. */
export class Response {
  constructor(body?: Body, init?: ResponseInit);
  status: number;
  headers: Fields;
  body: Uint8Array;
  /** Replace the status code. */
  withStatus(status: number): this;
  /** Add a header. */
  withHeader(name: string, value: string | number): this;
  /** Add a `Set-Cookie` header. */
  withCookie(name: string, value: string, options?: CookieOptions): this;
  /** The first value of a header set so far. */
  header(name: string): string | undefined;
  /** The body as text. */
  text(): string;
}

/** A status, or `{ status, headers }`. */
export type Init = number | ResponseInit;

/** `200` with `text/plain; charset=utf-8`. */
export function text(body: string | number, init?: Init): Response;
/** `200` with `text/html; charset=utf-8`; nothing is escaped (use `render` for untrusted data). */
export function html(body: string, init?: Init): Response;
/** `200` with `value` as JSON. BigInts become JSON numbers. */
export function json(value: unknown, init?: Init): Response;
/** `303 See Other` (or another 3xx) to `location`. */
export function redirect(location: string, status?: 301 | 302 | 303 | 307 | 308): Response;
/** An empty response with this status (an empty 4xx/5xx gets the app's error page). */
export function status(code: number, init?: Init): Response;
/**
 * Render a template (a path under `templates/`) with `context` into a `200` whose Content-Type
 * follows the extension. Needs `grants.templates`.
 */
export function render(name: string, context?: Record<string, unknown>, init?: Init): Response;
/** Render a template into a string. Needs `grants.templates`. */
export function renderToString(name: string, context?: Record<string, unknown>): string;

// ---------------------------------------------------------------------------------------------
// The exported handler
// ---------------------------------------------------------------------------------------------

/** What a handler may return: a Response, a string (text/plain), bytes, or an object (JSON). */
export type HandlerResult = Response | string | Uint8Array | ArrayBuffer | object;

export type Handler = (req: Request) => HandlerResult | Promise<HandlerResult>;

/** A handler per method: `{ GET: show, POST: save }` (HEAD falls back to GET). */
export type MethodHandlers = Partial<Record<"GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | string, Handler>>;

/** Handlers by route `name` (flagon.toml). */
export type Routes = Record<string, Handler | MethodHandlers>;

export interface AppOptions {
  /** For a route name not in the table (default: an empty 404). */
  notFound?: Handler;
}

/** The component's `handle` export. */
export type Handle = (request: WireRequest) => WireResponse | Promise<WireResponse>;

/**
 * Make the `handle` export from a handler or a table of handlers by route name:
 * `export const handle = app({ index: () => text("hi") })`.
 */
export function app(handler: Handler | Routes, options?: AppOptions): Handle;

// ---------------------------------------------------------------------------------------------
// Host interfaces
// ---------------------------------------------------------------------------------------------

/** `flagon:app/log`, granted to every component. Arguments are joined like console.log's. */
export const log: {
  trace(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
};

/** `flagon:app/config`: the variables in `grants.variables`. */
export const config: {
  get(name: string): string | undefined;
  /** Throws a 500 when the variable is not granted. */
  require(name: string): string;
  getAll(): Record<string, string>;
};

/** `flagon:app/settings`: this component's own `settings` table. */
export const settings: {
  get<T = Record<string, unknown>>(): T;
  text(): string;
};

/** `flagon:app/crypto` (`grants.crypto`). Shadows the global WebCrypto `crypto` where imported. */
export const crypto: {
  hashPassword(password: string): string;
  verifyPassword(password: string, hash: string): boolean;
  randomBytes(length: number): Uint8Array;
  /** base64url; `bytes` from 16 to 1024, default 32. */
  randomToken(bytes?: number): string;
  hmacSha256(key: string | Uint8Array, message: string | Uint8Array): Uint8Array;
  hmacSha256Verify(key: string | Uint8Array, message: string | Uint8Array, tag: Uint8Array): boolean;
};

export interface Flash {
  category: string;
  message: string;
}

/** `flagon:app/session` (`grants.session`). */
export const session: {
  get(key: string): string | undefined;
  getJSON<T = unknown>(key: string): T | undefined;
  set(key: string, value: string): void;
  setJSON(key: string, value: unknown): void;
  remove(key: string): boolean;
  keys(): string[];
  clear(): void;
  rotate(): void;
  flash(category: string, message: string): void;
  takeFlashes(): Flash[];
  csrfToken(): string;
  /** `rotate()`, then `{ subject, name, roles }` under `identity` (for plugins/auth-session). */
  signIn(subject: string, options?: { name?: string | null; roles?: string[] }): void;
  signOut(): void;
};

export interface KvSetOptions {
  /** Milliseconds until the value expires. */
  ttl?: number | bigint;
}

/** One store from `[kv.<name>]` (`grants.kv`). */
export class KvStore {
  constructor(name: string);
  readonly name: string;
  get(key: string): Uint8Array | undefined;
  getText(key: string): string | undefined;
  getJSON<T = unknown>(key: string): T | undefined;
  set(key: string, value: string | Uint8Array, options?: KvSetOptions): void;
  setJSON(key: string, value: unknown, options?: KvSetOptions): void;
  delete(key: string): boolean;
  has(key: string): boolean;
  /** The new value (a BigInt only past ±2^53). */
  increment(key: string, delta?: number | bigint): number | bigint;
  incrementNew(key: string, delta: number | bigint, ttl: number | bigint): number | bigint;
  keys(prefix?: string): string[];
}

/** `flagon:app/kv`. */
export const kv: {
  store(name: string): KvStore;
};

export interface OutboundInit {
  /** Default `GET`. */
  method?: string;
  headers?: HeadersInit;
  body?: Body;
  /** A JSON body (sets `content-type: application/json` unless given). */
  json?: unknown;
}

/** The response to an outbound request, after redirects. */
export class OutboundResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: HeaderMap;
  readonly body: Uint8Array;
  bytes(): Uint8Array;
  /** Not UTF-8 is a 502. */
  text(): string;
  /** Bad JSON is a 502. */
  json<T = any>(): T;
}

/** `flagon:app/outbound-http` (`grants.outbound`). Failures throw a HostError with status 502. */
export const outbound: {
  send(url: string, init?: OutboundInit): OutboundResponse;
  fetch(url: string, init?: OutboundInit): Promise<OutboundResponse>;
};

// ---------------------------------------------------------------------------------------------
// SQL
// ---------------------------------------------------------------------------------------------

/** A JS value as a SQL value: null, integer (number or bigint), real, text, blob, boolean. */
export type SqlParam = null | undefined | boolean | number | bigint | string | Uint8Array | ArrayBuffer | Date | SqlValue;

/** A value read from a row: integers are numbers (BigInt past ±2^53), blobs Uint8Arrays. */
export type SqlResult = null | boolean | number | bigint | string | Uint8Array;

/** A parameter with an explicit type (WIT `sql-types.value`). */
export class SqlValue {
  constructor(tag: "null" | "integer" | "real" | "text" | "blob" | "boolean", val: unknown);
  readonly tag: "null" | "integer" | "real" | "text" | "blob" | "boolean";
  readonly val: unknown;
}

export type Row = Record<string, SqlResult>;

export interface RawRows {
  columns: string[];
  rows: SqlResult[][];
}

export interface Outcome {
  rowsAffected: number | bigint;
  /** SQLite's rowid of the last insert; `null` where the database has none (Postgres). */
  lastInsertId: number | bigint | null;
}

export type SqlErrorKind =
  | "constraint-violation"
  | "no-such-table"
  | "no-such-column"
  | "syntax"
  | "timeout"
  | "too-many-rows"
  | "too-large"
  | "connection-lost"
  | "not-granted"
  | "other";

export type ConstraintKind = "unique" | "primary-key" | "foreign-key" | "not-null" | "check" | "other";

/** A failed statement (WIT `sql-error`). Uncaught: 503 for timeout/connection-lost, else 500. */
export class SqlError extends Error {
  readonly kind: SqlErrorKind;
  /** For `constraint-violation`. `name` is the constraint's name (SQLite: the columns). */
  readonly constraint: { kind: ConstraintKind; name: string | null; message: string } | null;
  /** For `too-many-rows` and `too-large`. */
  readonly limit: number | bigint | null;
  readonly status: 500 | 503;
}

interface Queries {
  /** The rows as objects keyed by column name. */
  query<R extends Row = Row>(statement: string, params?: SqlParam[]): R[];
  /** The first row, or `undefined`. */
  queryOne<R extends Row = Row>(statement: string, params?: SqlParam[]): R | undefined;
  /** The first column of the first row, or `undefined`. */
  queryValue(statement: string, params?: SqlParam[]): SqlResult | undefined;
  /** Columns and rows of values in column order. */
  queryRaw(statement: string, params?: SqlParam[]): RawRows;
  /** A statement that changes data. */
  execute(statement: string, params?: SqlParam[]): Outcome;
}

/** An open transaction; one never ended is rolled back when the request ends. */
export class Transaction implements Queries {
  query<R extends Row = Row>(statement: string, params?: SqlParam[]): R[];
  queryOne<R extends Row = Row>(statement: string, params?: SqlParam[]): R | undefined;
  queryValue(statement: string, params?: SqlParam[]): SqlResult | undefined;
  queryRaw(statement: string, params?: SqlParam[]): RawRows;
  execute(statement: string, params?: SqlParam[]): Outcome;
  readonly open: boolean;
  commit(): void;
  rollback(): void;
  [Symbol.dispose](): void;
}

/** A database from `[databases.<name>]` (`grants.sql`). */
export class Database implements Queries {
  constructor(name: string);
  readonly name: string;
  query<R extends Row = Row>(statement: string, params?: SqlParam[]): R[];
  queryOne<R extends Row = Row>(statement: string, params?: SqlParam[]): R | undefined;
  queryValue(statement: string, params?: SqlParam[]): SqlResult | undefined;
  queryRaw(statement: string, params?: SqlParam[]): RawRows;
  execute(statement: string, params?: SqlParam[]): Outcome;
  /** Begin a transaction and return it. */
  transaction(): Transaction;
  /** Run `fn` in a transaction: committed when it returns, rolled back when it throws. */
  transaction<T>(fn: (tx: Transaction) => T): T;
}

/** `flagon:app/sql`. */
export const sql: {
  database(name: string): Database;
  integer(v: number | bigint | string): SqlValue;
  real(v: number): SqlValue;
  text(v: unknown): SqlValue;
  blob(v: Uint8Array | ArrayBuffer | string): SqlValue;
  boolean(v: unknown): SqlValue;
  readonly null: SqlValue;
};
