"""The hello example in Python: plain text, a path parameter, a granted variable, JSON in and
out, and HTML pages rendered by the host from templates, with a cookie session, flash messages
and a CSRF-protected sign-in form. The same routes, answered the same way, as examples/hello.
"""

from __future__ import annotations

from typing import Any

from flagon import App, Request, Response, bad_request, config, log, session

app = App()

_I64 = range(-(2**63), 2**63)


def greeting() -> str:
    return config.get("greeting", "Hello")


def page() -> dict[str, Any]:
    """The context of `templates/index.html` and `templates/login.html`."""
    return {"greeting": greeting(), "user": session.get("user")}


# The templates escape `user` (it came from a form), add the CSRF token to forms and show the
# flash messages.
@app.route("index")
def index(req: Request) -> Response:
    return Response.render("index.html", page())


@app.get("login")
def login_form(req: Request) -> Response:
    return Response.render("login.html", page())


@app.post("login")
def log_in(req: Request) -> Response:
    # The form's `csrf_token` field was checked by the host before the handler ran.
    name = req.form().get("username", "").strip()
    if not name or len(name) > 32:
        # Post/redirect/get: the message survives the redirect in the session.
        session.flash("error", "Choose a name of 1 to 32 characters.")
        return Response.redirect("/login")
    # A real app checks a password here, e.g. with `flagon.crypto.verify_password`.
    #
    # The privileges change, so the CSRF secret does too: tokens issued before the sign-in
    # (perhaps to someone who planted this session) stop working.
    session.rotate()
    session.set("user", name)
    session.flash("success", f"Welcome, {name}!")
    log.info("signed in")
    return Response.redirect("/")


@app.post("logout")
def log_out(req: Request) -> Response:
    # Empties the session (and its CSRF secret); the flash starts a new one.
    session.clear()
    session.flash("info", "You are signed out.")
    return Response.redirect("/")


@app.route("greet")
def greet(req: Request, name: str) -> str:
    log.info(f"greeting {name}")
    return f"{greeting()}, {name}!\n"


@app.route("add")
def add(req: Request) -> Response:
    """`GET /api/add?a=1&b=2`"""
    try:
        a, b = int(req.query["a"]), int(req.query["b"])
    except KeyError as e:
        raise bad_request(f"invalid query string: missing field `{e.args[0]}`") from None
    except ValueError:
        raise bad_request("invalid query string: `a` and `b` must be integers") from None
    if a not in _I64 or b not in _I64:
        raise bad_request("invalid query string: `a` and `b` must fit in 64 bits")
    if a + b not in _I64:
        raise bad_request("the sum does not fit in 64 bits")
    return Response.json({"a": a, "b": b, "sum": a + b})


@app.post("echo")
def echo(req: Request) -> Response:
    """`POST /api/echo` with `{"message": "...", "shout": true}`"""
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        raise bad_request("invalid JSON body: expected an object with a string `message`")
    shout = body.get("shout", False)
    if not isinstance(shout, bool):
        raise bad_request("invalid JSON body: `shout` must be a boolean")
    message = body["message"].upper() if shout else body["message"]
    return Response.json({"message": message, "length": len(message), "request_id": req.request_id})


# What componentize-py calls: the world's `handle` export, dispatching by route name. An
# unknown route gets an empty 404, which the host answers with the app's error page.
WitWorld = app.export()
