/*
 * The hello example in C: plain text, a path parameter, a granted variable, JSON in and out, and
 * HTML pages rendered by the host from templates, with a cookie session, flash messages and a
 * CSRF-protected sign-in form. The same routes, answered the same way, as examples/hello (Rust).
 */
#include <ctype.h>
#include <limits.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <wctype.h>

#include "flagon.h"

/* The granted variable `greeting` (yours to free). */
static char *greeting(void) {
    char *greeting = flagon_config_get("greeting");
    return greeting ? greeting : flagon_strdup("Hello");
}

/* The context of templates/index.html and templates/login.html: {"greeting", "user"}. */
static flagon_json *page(void) {
    char *greet = greeting();
    char *user = flagon_session_get("user"); /* NULL when signed out: written as null */
    flagon_json *context = flagon_json_new();
    flagon_json_begin_object(context);
    flagon_json_put_string(context, "greeting", greet);
    flagon_json_put_string(context, "user", user);
    flagon_json_end_object(context);
    free(greet);
    free(user);
    return context;
}

/* POST /login. The form's `csrf_token` field was checked by the host before the handler ran. */
static flagon_response *log_in(const flagon_request *req) {
    FLAGON_TRY(flagon_expect_form(req));
    const char *username = flagon_form_value(req, "username");
    if (!username)
        return flagon_error(400, "invalid form: missing field `username`");
    /* Trim the name. */
    while (isspace((unsigned char)*username))
        username++;
    size_t len = strlen(username);
    while (len > 0 && isspace((unsigned char)username[len - 1]))
        len--;
    if (len == 0 || flagon_utf8_count(username, len) > 32) {
        /* Post/redirect/get: the message survives the redirect in the session. */
        FLAGON_TRY(flagon_session_flash("error", "Choose a name of 1 to 32 characters."));
        return flagon_redirect("/login");
    }
    char *name = flagon_sprintf("%.*s", (int)len, username);
    /* A real app checks a password here, with flagon_crypto_verify_password.
     *
     * The privileges change, so the CSRF secret does too: tokens issued before the sign-in
     * (perhaps to someone who planted this session) stop working. */
    flagon_session_rotate();
    FLAGON_TRY(flagon_session_set("user", name));
    char *welcome = flagon_sprintf("Welcome, %s!", name);
    flagon_err *err = flagon_session_flash("success", welcome);
    free(welcome);
    free(name);
    if (err)
        return flagon_fail(err);
    flagon_log_info("signed in");
    return flagon_redirect("/");
}

/* GET /hello/{name} */
static flagon_response *greet(const flagon_request *req) {
    char *greet = greeting();
    const char *name = flagon_param(req, "name");
    if (!name)
        name = "world";
    flagon_log_info("greeting %s", name);
    flagon_response *r = flagon_textf("%s, %s!\n", greet, name);
    free(greet);
    return r;
}

/* GET /api/add?a=1&b=2 */
static flagon_response *add(const flagon_request *req) {
    int64_t a, b, sum;
    FLAGON_TRY(flagon_query_i64(req, "a", &a));
    FLAGON_TRY(flagon_query_i64(req, "b", &b));
    if (__builtin_add_overflow(a, b, &sum))
        return flagon_error(400, "the sum does not fit in 64 bits");
    flagon_json *out = flagon_json_new();
    flagon_json_begin_object(out);
    flagon_json_put_int(out, "a", a);
    flagon_json_put_int(out, "b", b);
    flagon_json_put_int(out, "sum", sum);
    flagon_json_end_object(out);
    return flagon_json_response(out);
}

/* `len` bytes of `text` in upper case, with the C library's Unicode case mapping: a new string
 * (yours) of `*out_len` bytes. */
static char *upper(const char *text, size_t len, size_t *out_len) {
    setlocale(LC_CTYPE, "C.UTF-8");
    char *out = malloc(len * MB_LEN_MAX + 1);
    if (!out)
        abort();
    mbstate_t in_state = {0}, out_state = {0};
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        wchar_t wc;
        size_t used = mbrtowc(&wc, text + i, len - i, &in_state);
        if (used == (size_t)-1 || used == (size_t)-2) { /* not UTF-8: keep the rest as is */
            memcpy(out + n, text + i, len - i);
            n += len - i;
            break;
        }
        if (used == 0) /* an encoded U+0000 */
            used = 1;
        size_t written = wcrtomb(out + n, (wchar_t)towupper((wint_t)wc), &out_state);
        n += written == (size_t)-1 ? 0 : written;
        i += used;
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* POST /api/echo with {"message": "...", "shout": true} */
static flagon_response *echo(const flagon_request *req) {
    flagon_json_value *input;
    FLAGON_TRY(flagon_json_body(req, &input));
    size_t len;
    const char *message = flagon_json_as_string(flagon_json_get(input, "message"), &len);
    const flagon_json_value *shout_value = flagon_json_get(input, "shout");
    bool shout = false;
    flagon_response *r;
    if (flagon_json_type_of(input) != FLAGON_JSON_OBJECT) {
        r = flagon_error(400, "invalid JSON body: expected an object");
    } else if (!message) {
        r = flagon_error(400, "invalid JSON body: missing field `message` (a string)");
    } else if (shout_value && !flagon_json_as_bool(shout_value, &shout)) {
        r = flagon_error(400, "invalid JSON body: `shout` must be true or false");
    } else {
        /* The message is valid UTF-8 (the parser checked), so upper() can trust it. */
        size_t said_len = len;
        char *said = shout ? upper(message, len, &said_len) : flagon_strndup(message, len);
        flagon_json *out = flagon_json_new();
        flagon_json_begin_object(out);
        flagon_json_key(out, "message");
        flagon_json_string_n(out, said, said_len);
        flagon_json_put_int(out, "length", (int64_t)flagon_utf8_count(said, said_len));
        flagon_json_put_string(out, "request_id", flagon_request_id(req));
        flagon_json_end_object(out);
        free(said);
        r = flagon_json_response(out);
    }
    flagon_json_value_free(input);
    return r;
}

flagon_response *flagon_handle(const flagon_request *req) {
    /* The templates escape `user` (it came from a form), add the CSRF token to forms and show
     * the flash messages. */
    if (flagon_route_is(req, "index"))
        return flagon_render("index.html", page());
    if (flagon_route_is(req, "login"))
        return flagon_is_method(req, "POST") ? log_in(req) : flagon_render("login.html", page());
    if (flagon_route_is(req, "logout")) {
        /* Empties the session (and its CSRF secret); the flash starts a new one. */
        flagon_session_clear();
        FLAGON_TRY(flagon_session_flash("info", "You are signed out."));
        return flagon_redirect("/");
    }
    if (flagon_route_is(req, "greet"))
        return greet(req);
    if (flagon_route_is(req, "add"))
        return add(req);
    if (flagon_route_is(req, "echo"))
        return echo(req);
    /* An empty 404 gets the app's error page (`[errors]` in flagon.toml). */
    return flagon_response_new(404);
}
