#!/usr/bin/env node
// Build a Flagon handler component from JavaScript.
//
//   node <sdk>/build.mjs src/app.js -o target/app.wasm --wit <wit dir>
//
// 1. Installs the pinned toolchain (jco, componentize-js, rolldown) into <sdk>/node_modules
//    with `npm ci` from <sdk>/package-lock.json, once. Every app built with this SDK shares it.
// 2. Bundles the entry module, the SDK and any npm packages the app uses into one ES module
//    with rolldown. `@flagon/sdk` always resolves to this SDK.
// 3. Writes a world with only the `flagon:app` interfaces the bundle still imports (the bundler
//    drops the rest), so the component imports, and needs grants for, only what it uses.
// 4. Runs `jco componentize` on it with componentize-js (StarlingMonkey), without wasi:http
//    (`-d http -d fetch-event`), which the host never links for handlers.
//
// Options:
//   -o, --out <file>       the component to write (required)
//   --wit <dir>            the flagon:app WIT package (required), e.g. ../../wit
//   --world <name>         the world in that package (default: handler)
//   --disable <feature>    also leave out a componentize-js feature: stdio, random or clocks
//   --no-bundle-file       do not keep the bundle next to the output (<out>.bundle.js)
//   --install-tools        only install the toolchain (for scripts that run jco themselves)
//
// Everything it needs is relative to this file or given on the command line, so the SDK can be
// copied into an app.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, cpSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const SDK_DIR = dirname(fileURLToPath(import.meta.url));
const SDK_ENTRY = join(SDK_DIR, "index.js");
/** Features the host never links for a handler (wasi:http); always left out. */
const ALWAYS_DISABLED = ["http", "fetch-event"];
const OPTIONAL_FEATURES = ["stdio", "random", "clocks"];
const TOOLS = ["@bytecodealliance/jco", "@bytecodealliance/componentize-js", "rolldown"];

class BuildError extends Error {}

function fail(message, help) {
  throw new BuildError(help ? `${message}\n  help: ${help}` : message);
}

function parseArgs(argv) {
  const opts = { entry: null, out: null, wit: null, world: "handler", disable: [], bundleFile: true, installOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("-")) fail(`\`${a}\` needs a value`);
      return v;
    };
    if (a === "-o" || a === "--out") opts.out = value();
    else if (a === "--wit") opts.wit = value();
    else if (a === "--world") opts.world = value();
    else if (a === "--disable") opts.disable.push(value());
    else if (a === "--no-bundle-file") opts.bundleFile = false;
    else if (a === "--install-tools") opts.installOnly = true;
    else if (a === "-h" || a === "--help") {
      process.stdout.write(readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 25).map((l) => l.replace(/^\/\/ ?/, "")).join("\n") + "\n");
      process.exit(0);
    } else if (a.startsWith("-")) fail(`unknown option \`${a}\``, "run with --help for the options");
    else if (opts.entry === null) opts.entry = a;
    else fail(`unexpected argument \`${a}\``, "give one entry module");
  }
  if (opts.installOnly) return opts;
  if (!opts.entry) fail("no entry module given", "node build.mjs src/app.js -o target/app.wasm --wit ../../wit");
  if (!opts.out) fail("no output file given", "add `-o target/app.wasm`");
  if (!opts.wit) fail("no WIT directory given", "add `--wit <dir>`, the directory holding the flagon:app WIT files");
  for (const f of opts.disable) {
    if (!OPTIONAL_FEATURES.includes(f)) fail(`cannot disable \`${f}\``, `choose from ${OPTIONAL_FEATURES.join(", ")} (http and fetch-event are always left out)`);
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------
// The toolchain in <sdk>/node_modules
// ---------------------------------------------------------------------------------------------

function installedVersion(name) {
  const p = join(SDK_DIR, "node_modules", name, "package.json");
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, "utf8")).version;
}

function wantedVersions() {
  const pkg = JSON.parse(readFileSync(join(SDK_DIR, "package.json"), "utf8"));
  return TOOLS.map((name) => [name, pkg.devDependencies?.[name]]);
}

function toolchainReady() {
  return wantedVersions().every(([name, want]) => installedVersion(name) === want);
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === "EPERM";
  }
}

/** One `npm ci` at a time in the SDK directory, across concurrent builds. */
function withInstallLock(fn) {
  const lock = join(SDK_DIR, ".install-lock");
  const deadline = Date.now() + 10 * 60 * 1000;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, "pid"), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== "EEXIST") throw e;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(lock, "pid"), "utf8"));
      } catch {}
      if (Number.isInteger(owner) && owner > 0 && !alive(owner)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) fail(`another build has held ${lock} for 10 minutes`, `remove ${lock} if no build is running`);
      sleep(250);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function ensureToolchain() {
  if (toolchainReady()) return;
  withInstallLock(() => {
    if (toolchainReady()) return;
    if (!existsSync(join(SDK_DIR, "package-lock.json"))) {
      fail(`${join(SDK_DIR, "package-lock.json")} is missing`, "the SDK's lock file pins the toolchain; restore it from the Flagon repository");
    }
    const rel = relative(process.cwd(), SDK_DIR) || ".";
    console.error(`flagon-js: installing the pinned toolchain into ${rel}/node_modules (npm ci, once)`);
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const r = spawnSync(npm, ["ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], {
      cwd: SDK_DIR,
      stdio: ["ignore", "inherit", "inherit"],
    });
    if (r.error?.code === "ENOENT") fail("npm is not on PATH", "install Node.js 20 or later with npm");
    if (r.status !== 0) {
      fail(`\`npm ci\` in ${SDK_DIR} failed (exit ${r.status ?? r.signal})`, "see npm's output above; offline, the npm cache must already hold the packages of package-lock.json");
    }
    const wrong = wantedVersions().filter(([name, want]) => installedVersion(name) !== want);
    if (wrong.length) {
      fail(`after npm ci, ${wrong.map(([n, w]) => `${n} is ${installedVersion(n) ?? "missing"}, not ${w}`).join("; ")}`, "package.json and package-lock.json disagree: run `npm install` in the SDK directory");
    }
  });
}

/** The app's own npm packages, if it has a lock file but no node_modules yet. */
function ensureAppPackages(appDir) {
  if (!existsSync(join(appDir, "package-lock.json")) || existsSync(join(appDir, "node_modules"))) return;
  const lock = JSON.parse(readFileSync(join(appDir, "package-lock.json"), "utf8"));
  const deps = Object.keys(lock.packages ?? {}).filter((k) => k.startsWith("node_modules/") && !lock.packages[k].link);
  if (deps.length === 0) return; // only the SDK (a link); the build resolves it itself
  console.error(`flagon-js: installing the app's packages (npm ci in ${relative(process.cwd(), appDir) || "."})`);
  const r = spawnSync(process.platform === "win32" ? "npm.cmd" : "npm", ["ci", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], {
    cwd: appDir,
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (r.status !== 0) fail(`\`npm ci\` in ${appDir} failed (exit ${r.status ?? r.signal})`);
}

// ---------------------------------------------------------------------------------------------
// WIT: the world, cut down to the imports the bundle uses
// ---------------------------------------------------------------------------------------------

function readWitPackage(witDir) {
  if (!existsSync(witDir) || !statSync(witDir).isDirectory()) {
    fail(`the WIT directory ${witDir} does not exist`, "pass the directory holding the flagon:app .wit files with --wit");
  }
  const files = readdirSync(witDir).filter((f) => f.endsWith(".wit"));
  if (files.length === 0) fail(`no .wit files in ${witDir}`);
  const text = files.map((f) => readFileSync(join(witDir, f), "utf8")).join("\n");
  const pkg = /^\s*package\s+([a-z][\w-]*):([a-z][\w-]*)@([\w.+-]+)\s*;/m.exec(text);
  if (!pkg) fail(`no \`package\` declaration in ${witDir}`);
  return { files, text: stripComments(text), namespace: pkg[1], name: pkg[2], version: pkg[3] };
}

function stripComments(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/[^\n]*/g, "");
}

/** The body of `world <name> { ... }` as statements. */
function worldStatements(wit, world) {
  const start = new RegExp(`\\bworld\\s+${world}\\s*\\{`).exec(wit.text);
  if (!start) {
    const worlds = [...wit.text.matchAll(/\bworld\s+([\w-]+)\s*\{/g)].map((m) => m[1]);
    fail(`no world \`${world}\` in the WIT package ${wit.namespace}:${wit.name}`, `choose one of: ${worlds.join(", ")}`);
  }
  let depth = 1;
  let i = start.index + start[0].length;
  const from = i;
  for (; i < wit.text.length && depth > 0; i++) {
    if (wit.text[i] === "{") depth++;
    else if (wit.text[i] === "}") depth--;
  }
  const body = wit.text.slice(from, i - 1);
  // Statements end with `;` at brace depth 0, or with the `}` of an inline `interface { ... }`
  // (but `use iface.{a, b};` goes on to its `;`).
  const statements = [];
  let cur = "";
  depth = 0;
  for (let j = 0; j < body.length; j++) {
    const ch = body[j];
    cur += ch;
    if (ch === "{") depth++;
    else if (ch === "}") {
      depth--;
      if (depth === 0 && !/^\s*;/.test(body.slice(j + 1))) {
        statements.push(cur.trim());
        cur = "";
      }
    } else if (ch === ";" && depth === 0) {
      statements.push(cur.trim());
      cur = "";
    }
  }
  return statements.filter(Boolean);
}

/** A world of its own package that imports only `used` and exports what `world` exports. */
function cutWorld(wit, world, used) {
  const qualified = (iface) => `${wit.namespace}:${wit.name}/${iface}@${wit.version}`;
  const statements = worldStatements(wit, world);
  const imports = [];
  const out = [];
  for (const s of statements) {
    let m;
    if ((m = /^import\s+([\w-]+)\s*;$/.exec(s))) {
      imports.push(m[1]);
      if (used.has(qualified(m[1]))) out.push(`import ${qualified(m[1])};`);
    } else if ((m = /^use\s+([\w-]+)\.(\{[^}]*\})\s*;$/.exec(s))) {
      out.push(`use ${qualified(m[1])}.${m[2]};`);
    } else if ((m = /^export\s+([\w-]+)\s*;$/.exec(s))) {
      out.push(`export ${qualified(m[1])};`);
    } else if (/^(import|export)\s/.test(s)) {
      out.push(s);
    } else if (/^include\s/.test(s)) {
      fail(`world \`${world}\` uses \`include\`, which this build script does not support`);
    } else {
      out.push(s);
    }
  }
  return { imports: imports.map(qualified), text: `package flagon-js:build;\n\nworld ${world} {\n${out.map((l) => `  ${l}`).join("\n")}\n}\n` };
}

function writeWitDir(witDir, wit, worldText) {
  const dir = mkdtempSync(join(tmpdir(), "flagon-js-wit-"));
  writeFileSync(join(dir, "world.wit"), worldText);
  const pkgDir = join(dir, "deps", `${wit.namespace}-${wit.name}`);
  mkdirSync(pkgDir, { recursive: true });
  for (const f of wit.files) cpSync(join(witDir, f), join(pkgDir, f));
  if (existsSync(join(witDir, "deps"))) {
    for (const d of readdirSync(join(witDir, "deps"))) cpSync(join(witDir, "deps", d), join(dir, "deps", d), { recursive: true });
  }
  return dir;
}

// ---------------------------------------------------------------------------------------------
// Bundling
// ---------------------------------------------------------------------------------------------

const WIT_IMPORT = /^[a-z][a-z0-9-]*:[a-z][a-z0-9-]*\//;

/** The module specifiers the bundle imports (statically, re-exported or dynamically). */
async function importsOf(code) {
  const { parseAst } = await import(pathToFileURL(join(SDK_DIR, "node_modules", "rolldown", "dist", "parse-ast-index.mjs")).href);
  const found = new Set();
  const visit = (node) => {
    if (!node || typeof node !== "object") return;
    if (Array.isArray(node)) return node.forEach(visit);
    if (
      (node.type === "ImportDeclaration" || node.type === "ExportNamedDeclaration" || node.type === "ExportAllDeclaration") &&
      node.source
    ) {
      found.add(node.source.value);
    }
    if (node.type === "ImportExpression") {
      if (node.source?.type !== "Literal") fail("the app uses import() with a computed specifier, which a component cannot load");
      found.add(node.source.value);
    }
    for (const k in node) if (k !== "parent" && typeof node[k] === "object") visit(node[k]);
  };
  visit(parseAst(code, { sourceType: "module" }).body);
  return [...found];
}

function bundleFailed(e) {
  const text = String(e?.message ?? e).replace(/^Build failed with \d+ errors?:\s*/, "");
  const help = text.includes("UNRESOLVED_IMPORT")
    ? "install the package in the app (`npm install <name>`, then commit package-lock.json), or fix the import path"
    : "fix the code above; the file and line are the app's own";
  const lines = text.split("\n").filter((l) => !/^\s+at /.test(l));
  fail(`bundling the app failed:\n${lines.join("\n").trim()}`, help);
}

async function bundle(entry) {
  const { rolldown } = await import(pathToFileURL(join(SDK_DIR, "node_modules", "rolldown", "dist", "index.mjs")).href);
  const nodeBuiltins = new Set();
  const build = await rolldown({
    input: entry,
    cwd: dirname(entry),
    platform: "neutral",
    logLevel: "warn",
    external: (id) => WIT_IMPORT.test(id) && !id.startsWith("node:"),
    resolve: { mainFields: ["module", "main"], alias: { "@flagon/sdk": SDK_ENTRY } },
    // A host interface the app never reaches is dropped with its import.
    treeshake: { moduleSideEffects: (_id, external) => !external },
    plugins: [
      {
        name: "flagon-no-node-builtins",
        resolveId(source) {
          if (source.startsWith("node:")) {
            nodeBuiltins.add(source);
            return { id: source, external: true };
          }
          return null;
        },
      },
    ],
    // A package that is not installed must stop the build, not become an import of nothing.
    onLog(level, log, handler) {
      handler(log.code === "UNRESOLVED_IMPORT" ? "error" : level, log);
    },
  }).catch(bundleFailed);
  try {
    const { output } = await build.generate({ format: "esm", codeSplitting: false }).catch(bundleFailed);
    const chunks = output.filter((o) => o.type === "chunk");
    if (chunks.length !== 1) fail(`bundling produced ${chunks.length} chunks; dynamic imports that cannot be inlined are not supported`);
    const chunk = chunks[0];
    // `chunk.imports` names every external module the graph saw; the code imports only those
    // that survived tree shaking, so read them from the code itself.
    const imports = await importsOf(chunk.code);
    const used = imports.filter((i) => WIT_IMPORT.test(i) && !i.startsWith("node:"));
    const node = imports.filter((i) => i.startsWith("node:"));
    if (node.length) fail(`the app imports ${node.map((n) => `\`${n}\``).join(", ")}: Node.js built-ins do not exist in a component`, "use the SDK (outbound.fetch, kv, sql, crypto, log) instead");
    if (!chunk.exports.includes("handle")) {
      fail(`${relative(process.cwd(), entry)} does not export \`handle\``, "add `export const handle = app(...)` (import { app } from \"@flagon/sdk\")");
    }
    return { code: chunk.code, used: new Set(used) };
  } finally {
    await build.close();
  }
}

// ---------------------------------------------------------------------------------------------

const GRANTS = {
  config: "grants.variables = [...]",
  crypto: "grants.crypto = true",
  templates: "grants.templates = true",
  session: "grants.session = true",
  kv: "grants.kv = [...]",
  "outbound-http": "grants.outbound = [...]",
  sql: "grants.sql = [...]",
};

async function main() {
  const started = Date.now();
  const opts = parseArgs(process.argv.slice(2));
  if (opts.installOnly) {
    ensureToolchain();
    return;
  }
  const entry = resolve(opts.entry);
  const out = resolve(opts.out);
  const witDir = resolve(opts.wit);
  if (!existsSync(entry)) fail(`the entry module ${opts.entry} does not exist`);
  const wit = readWitPackage(witDir);

  ensureToolchain();
  ensureAppPackages(process.cwd());

  const { code, used } = await bundle(entry);
  const world = cutWorld(wit, opts.world, used);
  const unknown = [...used].filter((u) => !world.imports.includes(u));
  if (unknown.length) {
    fail(
      `the app imports ${unknown.map((u) => `\`${u}\``).join(", ")}, which the world \`${wit.namespace}:${wit.name}/${opts.world}\` does not offer`,
      "a Flagon handler can import only the flagon:app interfaces (wasi:http and wasi:sockets are never linked)",
    );
  }

  mkdirSync(dirname(out), { recursive: true });
  const bundlePath = opts.bundleFile ? out.replace(/\.wasm$/, "") + ".bundle.js" : join(mkdtempSync(join(tmpdir(), "flagon-js-src-")), basename(out, ".wasm") + ".bundle.js");
  writeFileSync(bundlePath, code);
  const worldDir = writeWitDir(witDir, wit, world.text);
  try {
    const jco = join(SDK_DIR, "node_modules", "@bytecodealliance", "jco", "dist", "jco.js");
    const args = [jco, "componentize", bundlePath, "--wit", worldDir, "--world-name", opts.world, "-o", out];
    for (const f of [...ALWAYS_DISABLED, ...opts.disable]) args.push("-d", f);
    const r = spawnSync(process.execPath, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    if (r.status !== 0) {
      const msg = `${r.stderr ?? ""}${r.stdout ?? ""}`.trim();
      if (msg.includes("`componentize.wizer` function trapped")) {
        fail(
          `the app's module failed while it was pre-initialised:\n${msg.split("\n").slice(0, 3).join("\n")}`,
          "the top level of a module runs once, at build time (Wizer snapshots it), where there is no host: move calls to config, session, kv, sql, crypto, log, ... into a handler, and check the top level for an exception",
        );
      }
      fail(`jco componentize failed (exit ${r.status ?? r.signal}):\n${msg}`, `the bundle it was given is ${relative(process.cwd(), bundlePath)}; line numbers in errors refer to it`);
    }
  } finally {
    if (!process.env.FLAGON_JS_KEEP_WIT) rmSync(worldDir, { recursive: true, force: true });
    else console.error(`flagon-js: kept the generated WIT in ${worldDir}`);
    if (!opts.bundleFile) rmSync(dirname(bundlePath), { recursive: true, force: true });
  }

  const size = statSync(out).size;
  const names = [...used].map((u) => u.replace(/^[^/]+\//, "").replace(/@.*$/, "")).sort();
  console.error(`flagon-js: wrote ${relative(process.cwd(), out)} (${(size / 1048576).toFixed(1)} MiB) in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  console.error(`flagon-js: imports ${names.map((n) => `flagon:app/${n}`).join(", ") || "nothing from flagon:app"}`);
  const grants = names.filter((n) => GRANTS[n]).map((n) => GRANTS[n]);
  if (grants.length) console.error(`flagon-js: so the component needs ${grants.join(", ")}`);
}

main().catch((e) => {
  if (e instanceof BuildError) {
    console.error(`flagon-js: error: ${e.message}`);
  } else {
    console.error("flagon-js: error: the build failed unexpectedly:");
    console.error(e?.stack ?? e);
  }
  process.exit(1);
});
