// The hello example in JavaScript: plain text, a path parameter, a granted variable, JSON in and
// out, and HTML pages rendered by the host from templates, with a cookie session, flash
// messages and a CSRF-protected sign-in form. The same routes, answered the same way, as
// examples/hello (Rust).

import { app, config, HttpError, json, log, redirect, render, session, text } from "@flagon/sdk";

function greeting() {
  return config.get("greeting") ?? "Hello";
}

/** The context of templates/index.html and templates/login.html. */
function page() {
  return { greeting: greeting(), user: session.get("user") ?? null };
}

/**
 * A query parameter that must be an integer JavaScript can add exactly.
 * @param {import("@flagon/sdk").Request} req
 * @param {string} name
 */
function intQuery(req, name) {
  const raw = req.query.get(name);
  if (raw === null) throw HttpError.badRequest(`invalid query string: missing field \`${name}\``);
  const n = Number(raw);
  if (!/^[+-]?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n)) {
    throw HttpError.badRequest(`invalid query string: \`${name}\` must be an integer`);
  }
  return n;
}

/**
 * POST /login. The form's `csrf_token` field was checked by the host before the handler ran.
 * @param {import("@flagon/sdk").Request} req
 */
function logIn(req) {
  const name = (req.form().username ?? "").trim();
  if (name.length === 0 || [...name].length > 32) {
    // Post/redirect/get: the message survives the redirect in the session.
    session.flash("error", "Choose a name of 1 to 32 characters.");
    return redirect("/login");
  }
  // A real app checks a password here, e.g. with `crypto.verifyPassword`.
  //
  // The privileges change, so the CSRF secret does too: tokens issued before the sign-in
  // (perhaps to someone who planted this session) stop working.
  session.rotate();
  session.set("user", name);
  session.flash("success", `Welcome, ${name}!`);
  log.info("signed in");
  return redirect("/");
}

// One handler per route `name` in flagon.toml; a name missing here gets an empty 404, which the
// host turns into the app's error page (`[errors]`).
export const handle = app({
  // The templates escape `user` (it came from a form), add the CSRF token to forms and show
  // the flash messages.
  index: () => render("index.html", page()),

  login: {
    GET: () => render("login.html", page()),
    POST: logIn,
  },

  logout: () => {
    // Empties the session (and its CSRF secret); the flash starts a new one.
    session.clear();
    session.flash("info", "You are signed out.");
    return redirect("/");
  },

  greet: (req) => {
    const name = req.param("name") ?? "world";
    log.info(`greeting ${name}`);
    return text(`${greeting()}, ${name}!\n`);
  },

  // GET /api/add?a=1&b=2
  add: (req) => {
    const a = intQuery(req, "a");
    const b = intQuery(req, "b");
    const sum = a + b;
    if (!Number.isSafeInteger(sum)) throw HttpError.badRequest("the sum is too large to add exactly");
    return json({ a, b, sum });
  },

  // POST /api/echo with {"message": "...", "shout": true}
  echo: async (req) => {
    const input = await req.json();
    if (typeof input?.message !== "string") {
      throw HttpError.badRequest("invalid JSON body: `message` must be a string");
    }
    const message = input.shout === true ? input.message.toUpperCase() : input.message;
    return json({ message, length: [...message].length, request_id: req.requestId });
  },
});
