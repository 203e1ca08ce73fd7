/*
 * flagon.c: the Flagon C SDK over wit-bindgen's bindings (handler.h). See flagon.h.
 *
 * Strings. The canonical ABI hands the guest strings as pointer and length. This file
 * defines the module's `cabi_realloc`, which every block the host writes into guest memory
 * (the request, and what host calls return) comes from, and it allocates one byte more and
 * sets it to NUL. So every string from the host is also a C string, with no copy, and every
 * block is a malloc block the caller may free(). (The canonical ABI calls realloc for every
 * string and list, empty ones too.) It replaces wit-bindgen's weak definition in handler.c.
 */
#include "flagon.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"

/* ============================================================================================
 * Allocation and strings
 * ========================================================================================== */

void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size);

__attribute__((__export_name__("cabi_realloc")))
void *cabi_realloc(void *ptr, size_t old_size, size_t align, size_t new_size) {
    (void)old_size;
    /* malloc aligns to 16 bytes; no WIT type needs more than 8. */
    if (align > 16 || new_size == SIZE_MAX)
        abort();
    char *p = realloc(ptr, new_size + 1);
    if (!p)
        abort();
    p[new_size] = '\0';
    return p;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p)
        abort();
    return p;
}

static void *xcalloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        abort();
    return p;
}

static void *xrealloc(void *ptr, size_t n) {
    void *p = realloc(ptr, n ? n : 1);
    if (!p)
        abort();
    return p;
}

static char *xstrndup(const char *s, size_t len) {
    char *p = xmalloc(len + 1);
    if (len)
        memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

char *flagon_strdup(const char *text) {
    return text ? xstrndup(text, strlen(text)) : NULL;
}

char *flagon_strndup(const char *text, size_t len) {
    return text ? xstrndup(text, len) : NULL;
}

char *flagon_vsprintf(const char *fmt, va_list args) {
    va_list copy;
    va_copy(copy, args);
    int n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return flagon_strdup("(invalid format)");
    char *out = xmalloc((size_t)n + 1);
    vsnprintf(out, (size_t)n + 1, fmt, args);
    return out;
}

char *flagon_sprintf(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char *out = flagon_vsprintf(fmt, args);
    va_end(args);
    return out;
}

/* A WIT string borrowing a C string (the host copies it during the call). */
static handler_string_t wstr(const char *s) {
    handler_string_t out = {(uint8_t *)s, s ? strlen(s) : 0};
    return out;
}

static handler_list_u8_t wbytes(const void *data, size_t len) {
    handler_list_u8_t out = {(uint8_t *)data, data ? len : 0};
    return out;
}

/* A string the host returned, as a C string: see the top of this file. Ownership moves to the
 * caller. */
static char *take(handler_string_t s) {
    return (char *)s.ptr;
}

/* A borrowed view of a string the host sent. */
static const char *view(const handler_string_t *s) {
    return s->ptr ? (const char *)s->ptr : "";
}

static bool eq_ignore_case(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return false;
    return *a == *b;
}

/* ============================================================================================
 * Errors and lists
 * ========================================================================================== */

static flagon_err *err_take(uint16_t status, char *message) {
    flagon_err *e = xcalloc(1, sizeof *e);
    e->status = status;
    e->message = message;
    return e;
}

flagon_err *flagon_err_new(uint16_t status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char *message = flagon_vsprintf(fmt, args);
    va_end(args);
    return err_take(status, message);
}

/* A 500 from a host call's error string (which it takes). */
static flagon_err *host_err(handler_string_t *message) {
    return err_take(500, take(*message));
}

void flagon_err_free(flagon_err *err) {
    if (!err)
        return;
    free(err->message);
    free(err->constraint);
    free(err);
}

void flagon_strings_free(flagon_strings *list) {
    if (!list)
        return;
    for (size_t i = 0; i < list->len; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->len = 0;
}

void flagon_pairs_free(flagon_pairs *pairs) {
    if (!pairs)
        return;
    for (size_t i = 0; i < pairs->len; i++) {
        free(pairs->items[i].name);
        free(pairs->items[i].value);
    }
    free(pairs->items);
    pairs->items = NULL;
    pairs->len = 0;
}

const char *flagon_pairs_get(const flagon_pairs *pairs, const char *name) {
    for (size_t i = 0; pairs && i < pairs->len; i++)
        if (strcmp(pairs->items[i].name, name) == 0)
            return pairs->items[i].value;
    return NULL;
}

void flagon_bytes_free(flagon_bytes *bytes) {
    if (!bytes)
        return;
    free(bytes->ptr);
    bytes->ptr = NULL;
    bytes->len = 0;
}

static void pairs_push(flagon_pairs *p, size_t *cap, char *name, char *value) {
    if (p->len == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        p->items = xrealloc(p->items, *cap * sizeof *p->items);
    }
    p->items[p->len].name = name;
    p->items[p->len].value = value;
    p->len++;
}

/* Pairs from the host (their strings move into the result; the array is freed). */
static flagon_pairs take_pairs(handler_list_tuple2_string_string_t *list) {
    flagon_pairs out = {NULL, 0};
    if (list->len) {
        out.items = xmalloc(list->len * sizeof *out.items);
        for (size_t i = 0; i < list->len; i++) {
            out.items[i].name = take(list->ptr[i].f0);
            out.items[i].value = take(list->ptr[i].f1);
        }
        out.len = list->len;
    }
    free(list->ptr);
    return out;
}

static flagon_strings take_strings(handler_list_string_t *list) {
    flagon_strings out = {NULL, 0};
    if (list->len) {
        out.items = xmalloc(list->len * sizeof *out.items);
        for (size_t i = 0; i < list->len; i++)
            out.items[i] = take(list->ptr[i]);
        out.len = list->len;
    }
    free(list->ptr);
    return out;
}

/* ============================================================================================
 * The handler export
 * ========================================================================================== */

struct flagon_request {
    flagon_app_types_request_t raw;
};

typedef struct header {
    char *name;
    char *value;
} header;

struct flagon_response {
    uint16_t status;
    header *headers;
    size_t header_count, header_cap;
    uint8_t *body;
    size_t body_len;
};

void exports_handler_handle(handler_request_t *request, handler_response_t *ret) {
    const flagon_request *req = (const flagon_request *)request;
    flagon_response *r = flagon_handle(req);
    if (!r)
        r = flagon_error(500, "flagon_handle returned NULL for %s %s", flagon_method(req),
                         flagon_path(req));

    /* The generated post-return function frees these with free(). */
    ret->status = r->status;
    ret->headers.len = r->header_count;
    ret->headers.ptr = r->header_count ? xmalloc(r->header_count * sizeof *ret->headers.ptr) : NULL;
    for (size_t i = 0; i < r->header_count; i++) {
        ret->headers.ptr[i].f0 = wstr(r->headers[i].name);
        ret->headers.ptr[i].f1 = wstr(r->headers[i].value);
    }
    ret->body.ptr = r->body_len ? r->body : NULL;
    ret->body.len = r->body_len;
    if (!r->body_len)
        free(r->body);
    free(r->headers);
    free(r);
    flagon_app_types_request_free(request);
}

/* ============================================================================================
 * The request
 * ========================================================================================== */

const struct flagon_app_types_request_t *flagon_request_raw(const flagon_request *req) {
    return &req->raw;
}

const char *flagon_method(const flagon_request *req) {
    switch (req->raw.method.tag) {
    case FLAGON_APP_TYPES_METHOD_GET:
        return "GET";
    case FLAGON_APP_TYPES_METHOD_HEAD:
        return "HEAD";
    case FLAGON_APP_TYPES_METHOD_POST:
        return "POST";
    case FLAGON_APP_TYPES_METHOD_PUT:
        return "PUT";
    case FLAGON_APP_TYPES_METHOD_DELETE:
        return "DELETE";
    case FLAGON_APP_TYPES_METHOD_PATCH:
        return "PATCH";
    case FLAGON_APP_TYPES_METHOD_OPTIONS:
        return "OPTIONS";
    default:
        return view(&req->raw.method.val.other);
    }
}

bool flagon_is_method(const flagon_request *req, const char *method) {
    return strcmp(flagon_method(req), method) == 0;
}

const char *flagon_path(const flagon_request *req) {
    return view(&req->raw.path);
}

const char *flagon_route(const flagon_request *req) {
    return req->raw.route.is_some ? view(&req->raw.route.val) : NULL;
}

bool flagon_route_is(const flagon_request *req, const char *name) {
    const char *route = flagon_route(req);
    return route && strcmp(route, name) == 0;
}

static const char *fields_find(const flagon_app_types_fields_t *fields, const char *name,
                               bool ignore_case) {
    for (size_t i = 0; i < fields->len; i++) {
        const char *k = view(&fields->ptr[i].f0);
        if (ignore_case ? eq_ignore_case(k, name) : strcmp(k, name) == 0)
            return view(&fields->ptr[i].f1);
    }
    return NULL;
}

static bool fields_at(const flagon_app_types_fields_t *fields, size_t i, const char **name,
                      const char **value) {
    if (i >= fields->len)
        return false;
    if (name)
        *name = view(&fields->ptr[i].f0);
    if (value)
        *value = view(&fields->ptr[i].f1);
    return true;
}

const char *flagon_param(const flagon_request *req, const char *name) {
    return fields_find(&req->raw.params, name, false);
}

size_t flagon_param_count(const flagon_request *req) {
    return req->raw.params.len;
}

bool flagon_param_at(const flagon_request *req, size_t i, const char **name, const char **value) {
    return fields_at(&req->raw.params, i, name, value);
}

const char *flagon_query_string(const flagon_request *req) {
    return view(&req->raw.query);
}

flagon_pairs flagon_query_pairs(const flagon_request *req) {
    return flagon_parse_urlencoded(view(&req->raw.query), req->raw.query.len);
}

char *flagon_query(const flagon_request *req, const char *name) {
    flagon_pairs pairs = flagon_query_pairs(req);
    char *found = NULL;
    for (size_t i = 0; i < pairs.len; i++) {
        if (strcmp(pairs.items[i].name, name) == 0) {
            found = pairs.items[i].value;
            pairs.items[i].value = NULL;
            break;
        }
    }
    flagon_pairs_free(&pairs);
    return found;
}

flagon_err *flagon_query_i64(const flagon_request *req, const char *name, int64_t *out) {
    char *value = flagon_query(req, name);
    if (!value)
        return flagon_err_new(400, "invalid query string: missing field `%s`", name);
    bool ok = flagon_parse_i64(value, out);
    free(value);
    if (!ok)
        return flagon_err_new(400, "invalid query string: `%s` must be a 64-bit integer", name);
    return NULL;
}

const char *flagon_header(const flagon_request *req, const char *name) {
    return fields_find(&req->raw.headers, name, true);
}

size_t flagon_header_count(const flagon_request *req) {
    return req->raw.headers.len;
}

bool flagon_header_at(const flagon_request *req, size_t i, const char **name, const char **value) {
    return fields_at(&req->raw.headers, i, name, value);
}

char *flagon_cookie(const flagon_request *req, const char *name) {
    size_t name_len = strlen(name);
    for (size_t i = 0; i < req->raw.headers.len; i++) {
        if (strcmp(view(&req->raw.headers.ptr[i].f0), "cookie") != 0)
            continue;
        const char *p = view(&req->raw.headers.ptr[i].f1);
        while (*p) {
            const char *end = strchr(p, ';');
            if (!end)
                end = p + strlen(p);
            const char *s = p, *e = end;
            while (s < e && isspace((unsigned char)*s))
                s++;
            while (e > s && isspace((unsigned char)e[-1]))
                e--;
            const char *eq = memchr(s, '=', (size_t)(e - s));
            if (eq && (size_t)(eq - s) == name_len && memcmp(s, name, name_len) == 0) {
                const char *v = eq + 1;
                while (v < e && *v == '"')
                    v++;
                while (e > v && e[-1] == '"')
                    e--;
                return xstrndup(v, (size_t)(e - v));
            }
            p = *end ? end + 1 : end;
        }
    }
    return NULL;
}

char *flagon_content_type(const flagon_request *req) {
    const char *ct = flagon_header(req, "content-type");
    if (!ct)
        return flagon_strdup("");
    size_t len = strcspn(ct, ";");
    while (len && isspace((unsigned char)ct[len - 1]))
        len--;
    while (len && isspace((unsigned char)*ct)) {
        ct++;
        len--;
    }
    char *out = xstrndup(ct, len);
    for (char *c = out; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return out;
}

const uint8_t *flagon_body(const flagon_request *req, size_t *len) {
    if (len)
        *len = req->raw.body.len;
    return req->raw.body.ptr ? req->raw.body.ptr : (const uint8_t *)"";
}

const char *flagon_body_text(const flagon_request *req) {
    size_t len;
    const char *body = (const char *)flagon_body(req, &len);
    if (memchr(body, '\0', len) || !flagon_utf8_valid(body, len))
        return NULL;
    return body;
}

flagon_err *flagon_expect_form(const flagon_request *req) {
    char *ct = flagon_content_type(req);
    bool form = strcmp(ct, "application/x-www-form-urlencoded") == 0 ||
                strcmp(ct, "multipart/form-data") == 0;
    free(ct);
    if (!form)
        return flagon_err_new(415, "expected a form body (`application/x-www-form-urlencoded` "
                                   "or `multipart/form-data`)");
    return NULL;
}

static void form_view(const flagon_app_types_form_field_t *f, flagon_form_field *out) {
    out->name = view(&f->name);
    out->value = view(&f->value);
    out->is_file = f->file.is_some;
    if (f->file.is_some) {
        out->filename = view(&f->file.val.filename);
        out->content_type = view(&f->file.val.content_type);
        out->data = f->file.val.data.ptr ? f->file.val.data.ptr : (const uint8_t *)"";
        out->data_len = f->file.val.data.len;
    } else {
        out->filename = NULL;
        out->content_type = NULL;
        out->data = NULL;
        out->data_len = 0;
    }
}

const char *flagon_form_value(const flagon_request *req, const char *name) {
    for (size_t i = 0; i < req->raw.form.len; i++) {
        const flagon_app_types_form_field_t *f = &req->raw.form.ptr[i];
        if (!f->file.is_some && strcmp(view(&f->name), name) == 0)
            return view(&f->value);
    }
    return NULL;
}

size_t flagon_form_count(const flagon_request *req) {
    return req->raw.form.len;
}

bool flagon_form_at(const flagon_request *req, size_t i, flagon_form_field *out) {
    if (i >= req->raw.form.len)
        return false;
    form_view(&req->raw.form.ptr[i], out);
    return true;
}

bool flagon_form_file(const flagon_request *req, const char *name, flagon_form_field *out) {
    for (size_t i = 0; i < req->raw.form.len; i++) {
        const flagon_app_types_form_field_t *f = &req->raw.form.ptr[i];
        if (f->file.is_some && strcmp(view(&f->name), name) == 0) {
            form_view(f, out);
            return true;
        }
    }
    return false;
}

const char *flagon_client(const flagon_request *req) {
    return view(&req->raw.client);
}

const char *flagon_request_id(const flagon_request *req) {
    return view(&req->raw.request_id);
}

static const flagon_app_types_identity_t *identity(const flagon_request *req) {
    return req->raw.identity.is_some ? &req->raw.identity.val : NULL;
}

bool flagon_has_identity(const flagon_request *req) {
    return identity(req) != NULL;
}

const char *flagon_identity_subject(const flagon_request *req) {
    const flagon_app_types_identity_t *id = identity(req);
    return id ? view(&id->subject) : NULL;
}

const char *flagon_identity_name(const flagon_request *req) {
    const flagon_app_types_identity_t *id = identity(req);
    return id && id->display_name.is_some ? view(&id->display_name.val) : NULL;
}

const char *flagon_identity_authenticator(const flagon_request *req) {
    const flagon_app_types_identity_t *id = identity(req);
    return id ? view(&id->authenticator) : NULL;
}

size_t flagon_identity_role_count(const flagon_request *req) {
    const flagon_app_types_identity_t *id = identity(req);
    return id ? id->roles.len : 0;
}

const char *flagon_identity_role_at(const flagon_request *req, size_t i) {
    const flagon_app_types_identity_t *id = identity(req);
    return id && i < id->roles.len ? view(&id->roles.ptr[i]) : NULL;
}

bool flagon_has_role(const flagon_request *req, const char *role) {
    for (size_t i = 0; i < flagon_identity_role_count(req); i++)
        if (strcmp(flagon_identity_role_at(req, i), role) == 0)
            return true;
    return false;
}

const char *flagon_identity_claim(const flagon_request *req, const char *name) {
    const flagon_app_types_identity_t *id = identity(req);
    return id ? fields_find(&id->claims, name, false) : NULL;
}

/* ============================================================================================
 * URL encoding, numbers, UTF-8
 * ========================================================================================== */

static int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *flagon_url_decode(const char *text, size_t len, bool plus_is_space) {
    char *out = xmalloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        int hi, lo;
        if (c == '%' && i + 2 < len && (hi = hex_value(text[i + 1])) >= 0 &&
            (lo = hex_value(text[i + 2])) >= 0) {
            out[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[n++] = ' ';
        } else {
            out[n++] = c;
        }
    }
    out[n] = '\0';
    return out;
}

char *flagon_url_encode(const char *text) {
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(text);
    char *out = xmalloc(len * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return out;
}

flagon_pairs flagon_parse_urlencoded(const char *text, size_t len) {
    flagon_pairs out = {NULL, 0};
    size_t cap = 0;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && text[end] != '&')
            end++;
        if (end > i) {
            const char *eq = memchr(text + i, '=', end - i);
            size_t name_end = eq ? (size_t)(eq - text) : end;
            char *name = flagon_url_decode(text + i, name_end - i, true);
            char *value = eq ? flagon_url_decode(eq + 1, end - name_end - 1, true)
                             : flagon_strdup("");
            pairs_push(&out, &cap, name, value);
        }
        i = end + 1;
    }
    return out;
}

bool flagon_parse_i64(const char *text, int64_t *out) {
    if (!text || !*text || isspace((unsigned char)*text))
        return false;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE || *end != '\0' || end == text)
        return false;
    /* strtoll takes a leading `+`; so does Rust's i64 parser. */
    *out = (int64_t)v;
    return true;
}

/* The code point at `s` (with `len` bytes left), or -1 if invalid; its length in `*n`. */
static int32_t utf8_decode(const unsigned char *s, size_t len, size_t *n) {
    unsigned char c = s[0];
    int32_t cp;
    size_t need;
    if (c < 0x80) {
        *n = 1;
        return c;
    } else if (c >= 0xC2 && c <= 0xDF) {
        cp = c & 0x1F;
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        cp = c & 0x0F;
        need = 2;
    } else if (c >= 0xF0 && c <= 0xF4) {
        cp = c & 0x07;
        need = 3;
    } else {
        *n = 1;
        return -1;
    }
    if (len < need + 1) {
        *n = 1;
        return -1;
    }
    for (size_t i = 1; i <= need; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *n = i;
            return -1;
        }
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    *n = need + 1;
    if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        *n = 1;
        return -1;
    }
    return cp;
}

bool flagon_utf8_valid(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0, n;
    while (i < len) {
        if (utf8_decode(s + i, len - i, &n) < 0)
            return false;
        i += n;
    }
    return true;
}

size_t flagon_utf8_count(const char *text, size_t len) {
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)text[i] & 0xC0) != 0x80)
            count++;
    return count;
}

/* ============================================================================================
 * JSON writer
 * ========================================================================================== */

#define JSON_MAX_DEPTH 128

struct flagon_json {
    char *buf;
    size_t len, cap;
    int depth;
    char kind[JSON_MAX_DEPTH];   /* 'o' or 'a' per open container */
    bool first[JSON_MAX_DEPTH];  /* nothing written in it yet */
    bool after_key;              /* in an object, a key waits for its value */
    bool done;                   /* a whole top-level value was written */
    bool failed;
};

static void buf_put(flagon_json *j, const char *s, size_t n) {
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 64;
        while (cap < j->len + n + 1)
            cap *= 2;
        j->buf = xrealloc(j->buf, cap);
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void buf_puts(flagon_json *j, const char *s) {
    buf_put(j, s, strlen(s));
}

flagon_json *flagon_json_new(void) {
    return xcalloc(1, sizeof(flagon_json));
}

void flagon_json_free(flagon_json *j) {
    if (!j)
        return;
    free(j->buf);
    free(j);
}

/* Before any value: a comma in an array, a key in an object, one value at the top. */
static bool json_value_start(flagon_json *j) {
    if (j->failed)
        return false;
    if (j->depth == 0) {
        if (j->done) {
            j->failed = true;
            return false;
        }
        return true;
    }
    if (j->kind[j->depth - 1] == 'o') {
        if (!j->after_key) {
            j->failed = true;
            return false;
        }
        j->after_key = false;
        return true;
    }
    if (!j->first[j->depth - 1])
        buf_put(j, ",", 1);
    j->first[j->depth - 1] = false;
    return true;
}

static void json_value_end(flagon_json *j) {
    if (j->depth == 0)
        j->done = true;
}

static void json_open(flagon_json *j, char kind) {
    if (!json_value_start(j))
        return;
    if (j->depth == JSON_MAX_DEPTH) {
        j->failed = true;
        return;
    }
    buf_put(j, kind == 'o' ? "{" : "[", 1);
    j->kind[j->depth] = kind;
    j->first[j->depth] = true;
    j->depth++;
}

static void json_close(flagon_json *j, char kind) {
    if (j->failed)
        return;
    if (j->depth == 0 || j->kind[j->depth - 1] != kind || j->after_key) {
        j->failed = true;
        return;
    }
    buf_put(j, kind == 'o' ? "}" : "]", 1);
    j->depth--;
    json_value_end(j);
}

void flagon_json_begin_object(flagon_json *j) {
    json_open(j, 'o');
}

void flagon_json_end_object(flagon_json *j) {
    json_close(j, 'o');
}

void flagon_json_begin_array(flagon_json *j) {
    json_open(j, 'a');
}

void flagon_json_end_array(flagon_json *j) {
    json_close(j, 'a');
}

/* A JSON string literal: escapes, and U+FFFD for invalid UTF-8. */
static void json_quote(flagon_json *j, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    buf_put(j, "\"", 1);
    size_t i = 0, n;
    while (i < len) {
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            buf_put(j, s + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        if (c >= 0x80) {
            if (utf8_decode(p + i, len - i, &n) < 0)
                buf_put(j, "\xEF\xBF\xBD", 3);
            else
                buf_put(j, s + i, n);
            i += n;
            continue;
        }
        switch (c) {
        case '"':
            buf_put(j, "\\\"", 2);
            break;
        case '\\':
            buf_put(j, "\\\\", 2);
            break;
        case '\n':
            buf_put(j, "\\n", 2);
            break;
        case '\r':
            buf_put(j, "\\r", 2);
            break;
        case '\t':
            buf_put(j, "\\t", 2);
            break;
        case '\b':
            buf_put(j, "\\b", 2);
            break;
        case '\f':
            buf_put(j, "\\f", 2);
            break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            buf_put(j, esc, 6);
        }
        }
        i++;
    }
    buf_put(j, "\"", 1);
}

void flagon_json_key(flagon_json *j, const char *key) {
    if (j->failed)
        return;
    if (j->depth == 0 || j->kind[j->depth - 1] != 'o' || j->after_key || !key) {
        j->failed = true;
        return;
    }
    if (!j->first[j->depth - 1])
        buf_put(j, ",", 1);
    j->first[j->depth - 1] = false;
    json_quote(j, key, strlen(key));
    buf_put(j, ":", 1);
    j->after_key = true;
}

void flagon_json_string_n(flagon_json *j, const char *s, size_t len) {
    if (!s) {
        flagon_json_null(j);
        return;
    }
    if (!json_value_start(j))
        return;
    json_quote(j, s, len);
    json_value_end(j);
}

void flagon_json_string(flagon_json *j, const char *s) {
    flagon_json_string_n(j, s, s ? strlen(s) : 0);
}

void flagon_json_int(flagon_json *j, int64_t n) {
    if (!json_value_start(j))
        return;
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%lld", (long long)n);
    buf_puts(j, tmp);
    json_value_end(j);
}

void flagon_json_double(flagon_json *j, double d) {
    if (!isfinite(d)) {
        flagon_json_null(j);
        return;
    }
    if (!json_value_start(j))
        return;
    /* The shortest text that reads back as the same number. */
    char tmp[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(tmp, sizeof tmp, "%.*g", precision, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    buf_puts(j, tmp);
    /* Keep a real a real: 1.0, not 1. */
    if (!strpbrk(tmp, ".eE"))
        buf_put(j, ".0", 2);
    json_value_end(j);
}

void flagon_json_bool(flagon_json *j, bool b) {
    if (!json_value_start(j))
        return;
    buf_puts(j, b ? "true" : "false");
    json_value_end(j);
}

void flagon_json_null(flagon_json *j) {
    if (!json_value_start(j))
        return;
    buf_puts(j, "null");
    json_value_end(j);
}

void flagon_json_raw(flagon_json *j, const char *json) {
    if (!json || !*json) {
        j->failed = true;
        return;
    }
    if (!json_value_start(j))
        return;
    buf_puts(j, json);
    json_value_end(j);
}

void flagon_json_put_string(flagon_json *j, const char *key, const char *s) {
    flagon_json_key(j, key);
    flagon_json_string(j, s);
}

void flagon_json_put_int(flagon_json *j, const char *key, int64_t n) {
    flagon_json_key(j, key);
    flagon_json_int(j, n);
}

void flagon_json_put_double(flagon_json *j, const char *key, double d) {
    flagon_json_key(j, key);
    flagon_json_double(j, d);
}

void flagon_json_put_bool(flagon_json *j, const char *key, bool b) {
    flagon_json_key(j, key);
    flagon_json_bool(j, b);
}

void flagon_json_put_null(flagon_json *j, const char *key) {
    flagon_json_key(j, key);
    flagon_json_null(j);
}

char *flagon_json_finish(flagon_json *j, size_t *len) {
    if (!j)
        return NULL;
    char *out = NULL;
    if (!j->failed && j->done && j->depth == 0) {
        out = j->buf;
        if (len)
            *len = j->len;
        j->buf = NULL;
    }
    flagon_json_free(j);
    return out;
}

/* ============================================================================================
 * JSON reader
 * ========================================================================================== */

struct flagon_json_value {
    flagon_json_type type;
    bool boolean;
    bool is_integer;     /* a number written without fraction or exponent that fits in 64 bits */
    int64_t integer;
    double number;
    char *string;        /* FLAGON_JSON_STRING */
    size_t string_len;
    size_t count;        /* arrays and objects */
    flagon_json_value **items;
    char **keys;         /* objects */
};

typedef struct parser {
    const char *s;
    size_t len, pos;
    int depth;
    char *error;
} parser;

static void parse_fail(parser *p, const char *what) {
    if (!p->error)
        p->error = flagon_sprintf("%s at byte %zu", what, p->pos);
}

static void skip_ws(parser *p) {
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

static bool literal(parser *p, const char *word) {
    size_t n = strlen(word);
    if (p->len - p->pos >= n && memcmp(p->s + p->pos, word, n) == 0) {
        p->pos += n;
        return true;
    }
    return false;
}

static int hex4(parser *p) {
    if (p->len - p->pos < 4)
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p->s[p->pos + (size_t)i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    p->pos += 4;
    return v;
}

static void put_utf8(char *out, size_t *n, uint32_t cp) {
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

/* A string literal (at its opening quote) into a new buffer; its length in `*out_len`. */
static char *parse_string(parser *p, size_t *out_len) {
    p->pos++; /* the quote */
    /* Escapes only shrink, so the rest of the input bounds the output. */
    size_t start = p->pos;
    size_t end = start;
    while (end < p->len && p->s[end] != '"') {
        if (p->s[end] == '\\')
            end++;
        end++;
    }
    char *out = xmalloc((end > p->len ? p->len : end) - start + 1);
    size_t n = 0;
    while (true) {
        if (p->pos >= p->len) {
            parse_fail(p, "unterminated string");
            break;
        }
        unsigned char c = (unsigned char)p->s[p->pos];
        if (c == '"') {
            p->pos++;
            out[n] = '\0';
            *out_len = n;
            return out;
        }
        if (c < 0x20) {
            parse_fail(p, "control character in a string");
            break;
        }
        if (c >= 0x80) {
            size_t len;
            if (utf8_decode((const unsigned char *)p->s + p->pos, p->len - p->pos, &len) < 0) {
                parse_fail(p, "invalid UTF-8");
                break;
            }
            memcpy(out + n, p->s + p->pos, len);
            n += len;
            p->pos += len;
            continue;
        }
        if (c != '\\') {
            out[n++] = (char)c;
            p->pos++;
            continue;
        }
        p->pos++;
        if (p->pos >= p->len) {
            parse_fail(p, "unterminated string");
            break;
        }
        char e = p->s[p->pos++];
        switch (e) {
        case '"':
        case '\\':
        case '/':
            out[n++] = e;
            break;
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'u': {
            int cp = hex4(p);
            if (cp < 0) {
                parse_fail(p, "invalid \\u escape");
                goto fail;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                parse_fail(p, "lone trailing surrogate in a \\u escape");
                goto fail;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (!literal(p, "\\u")) {
                    parse_fail(p, "lone leading surrogate in a \\u escape");
                    goto fail;
                }
                int lo = hex4(p);
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    parse_fail(p, "invalid surrogate pair in a \\u escape");
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            /* A \u escape is 6 or 12 input bytes for at most 4 output bytes. */
            put_utf8(out, &n, (uint32_t)cp);
            break;
        }
        default:
            p->pos--;
            parse_fail(p, "invalid escape");
            goto fail;
        }
    }
fail:
    free(out);
    return NULL;
}

static flagon_json_value *parse_value(parser *p);

static flagon_json_value *new_value(flagon_json_type type) {
    flagon_json_value *v = xcalloc(1, sizeof *v);
    v->type = type;
    return v;
}

static void push_item(flagon_json_value *v, size_t *cap, char *key, flagon_json_value *item) {
    if (v->count == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        v->items = xrealloc(v->items, *cap * sizeof *v->items);
        if (v->type == FLAGON_JSON_OBJECT)
            v->keys = xrealloc(v->keys, *cap * sizeof *v->keys);
    }
    v->items[v->count] = item;
    if (v->type == FLAGON_JSON_OBJECT)
        v->keys[v->count] = key;
    v->count++;
}

static flagon_json_value *parse_number(parser *p) {
    size_t start = p->pos;
    bool integer = true;
    if (p->pos < p->len && p->s[p->pos] == '-')
        p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '0') {
        p->pos++;
    } else if (p->pos < p->len && p->s[p->pos] >= '1' && p->s[p->pos] <= '9') {
        while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos]))
            p->pos++;
    } else {
        parse_fail(p, "invalid number");
        return NULL;
    }
    if (p->pos < p->len && p->s[p->pos] == '.') {
        integer = false;
        p->pos++;
        if (p->pos >= p->len || !isdigit((unsigned char)p->s[p->pos])) {
            parse_fail(p, "invalid number");
            return NULL;
        }
        while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos]))
            p->pos++;
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        integer = false;
        p->pos++;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || !isdigit((unsigned char)p->s[p->pos])) {
            parse_fail(p, "invalid number");
            return NULL;
        }
        while (p->pos < p->len && isdigit((unsigned char)p->s[p->pos]))
            p->pos++;
    }
    char *text = xstrndup(p->s + start, p->pos - start);
    flagon_json_value *v = new_value(FLAGON_JSON_NUMBER);
    v->number = strtod(text, NULL);
    if (integer) {
        errno = 0;
        long long n = strtoll(text, NULL, 10);
        if (errno != ERANGE) {
            v->is_integer = true;
            v->integer = (int64_t)n;
        }
    }
    free(text);
    return v;
}

static flagon_json_value *parse_value(parser *p) {
    skip_ws(p);
    if (p->pos >= p->len) {
        parse_fail(p, "unexpected end of input");
        return NULL;
    }
    char c = p->s[p->pos];
    if (c == '{' || c == '[') {
        if (++p->depth > JSON_MAX_DEPTH) {
            parse_fail(p, "nested too deeply");
            return NULL;
        }
        bool object = c == '{';
        flagon_json_value *v = new_value(object ? FLAGON_JSON_OBJECT : FLAGON_JSON_ARRAY);
        size_t cap = 0;
        p->pos++;
        skip_ws(p);
        if (p->pos < p->len && p->s[p->pos] == (object ? '}' : ']')) {
            p->pos++;
            p->depth--;
            return v;
        }
        while (true) {
            char *key = NULL;
            if (object) {
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != '"') {
                    parse_fail(p, "expected a string key");
                    break;
                }
                size_t key_len;
                key = parse_string(p, &key_len);
                if (!key)
                    break;
                skip_ws(p);
                if (p->pos >= p->len || p->s[p->pos] != ':') {
                    free(key);
                    parse_fail(p, "expected `:`");
                    break;
                }
                p->pos++;
            }
            flagon_json_value *item = parse_value(p);
            if (!item) {
                free(key);
                break;
            }
            push_item(v, &cap, key, item);
            skip_ws(p);
            if (p->pos < p->len && p->s[p->pos] == ',') {
                p->pos++;
                continue;
            }
            if (p->pos < p->len && p->s[p->pos] == (object ? '}' : ']')) {
                p->pos++;
                p->depth--;
                return v;
            }
            parse_fail(p, object ? "expected `,` or `}`" : "expected `,` or `]`");
            break;
        }
        flagon_json_value_free(v);
        return NULL;
    }
    if (c == '"') {
        size_t len;
        char *s = parse_string(p, &len);
        if (!s)
            return NULL;
        flagon_json_value *v = new_value(FLAGON_JSON_STRING);
        v->string = s;
        v->string_len = len;
        return v;
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p);
    if (literal(p, "true") || literal(p, "false")) {
        flagon_json_value *v = new_value(FLAGON_JSON_BOOL);
        v->boolean = p->s[p->pos - 1] == 'e' && p->s[p->pos - 2] == 'u';
        return v;
    }
    if (literal(p, "null"))
        return new_value(FLAGON_JSON_NULL);
    parse_fail(p, "expected a value");
    return NULL;
}

flagon_json_value *flagon_json_parse(const char *text, size_t len, char **error) {
    parser p = {text ? text : "", text ? len : 0, 0, 0, NULL};
    flagon_json_value *v = parse_value(&p);
    if (v) {
        skip_ws(&p);
        if (p.pos != p.len) {
            parse_fail(&p, "trailing characters");
            flagon_json_value_free(v);
            v = NULL;
        }
    }
    if (error)
        *error = p.error;
    else
        free(p.error);
    return v;
}

void flagon_json_value_free(flagon_json_value *v) {
    if (!v)
        return;
    for (size_t i = 0; i < v->count; i++) {
        flagon_json_value_free(v->items[i]);
        if (v->keys)
            free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->string);
    free(v);
}

flagon_json_type flagon_json_type_of(const flagon_json_value *v) {
    return v ? v->type : FLAGON_JSON_NULL;
}

bool flagon_json_is_null(const flagon_json_value *v) {
    return !v || v->type == FLAGON_JSON_NULL;
}

const flagon_json_value *flagon_json_get(const flagon_json_value *object, const char *key) {
    if (!object || object->type != FLAGON_JSON_OBJECT || !key)
        return NULL;
    /* The last of repeated keys wins, as in most JSON parsers. */
    for (size_t i = object->count; i-- > 0;)
        if (strcmp(object->keys[i], key) == 0)
            return object->items[i];
    return NULL;
}

size_t flagon_json_count(const flagon_json_value *v) {
    return v && (v->type == FLAGON_JSON_ARRAY || v->type == FLAGON_JSON_OBJECT) ? v->count : 0;
}

const flagon_json_value *flagon_json_at(const flagon_json_value *v, size_t i) {
    return i < flagon_json_count(v) ? v->items[i] : NULL;
}

const char *flagon_json_key_at(const flagon_json_value *object, size_t i) {
    return object && object->type == FLAGON_JSON_OBJECT && i < object->count ? object->keys[i]
                                                                             : NULL;
}

const char *flagon_json_as_string(const flagon_json_value *v, size_t *len) {
    if (!v || v->type != FLAGON_JSON_STRING)
        return NULL;
    if (len)
        *len = v->string_len;
    return v->string;
}

bool flagon_json_as_bool(const flagon_json_value *v, bool *out) {
    if (!v || v->type != FLAGON_JSON_BOOL)
        return false;
    *out = v->boolean;
    return true;
}

bool flagon_json_as_i64(const flagon_json_value *v, int64_t *out) {
    if (!v || v->type != FLAGON_JSON_NUMBER || !v->is_integer)
        return false;
    *out = v->integer;
    return true;
}

bool flagon_json_as_double(const flagon_json_value *v, double *out) {
    if (!v || v->type != FLAGON_JSON_NUMBER)
        return false;
    *out = v->number;
    return true;
}

void flagon_json_value_write(flagon_json *j, const flagon_json_value *v) {
    switch (flagon_json_type_of(v)) {
    case FLAGON_JSON_NULL:
        flagon_json_null(j);
        break;
    case FLAGON_JSON_BOOL:
        flagon_json_bool(j, v->boolean);
        break;
    case FLAGON_JSON_NUMBER:
        if (v->is_integer)
            flagon_json_int(j, v->integer);
        else
            flagon_json_double(j, v->number);
        break;
    case FLAGON_JSON_STRING:
        flagon_json_string_n(j, v->string, v->string_len);
        break;
    case FLAGON_JSON_ARRAY:
        flagon_json_begin_array(j);
        for (size_t i = 0; i < v->count; i++)
            flagon_json_value_write(j, v->items[i]);
        flagon_json_end_array(j);
        break;
    case FLAGON_JSON_OBJECT:
        flagon_json_begin_object(j);
        for (size_t i = 0; i < v->count; i++) {
            flagon_json_key(j, v->keys[i]);
            flagon_json_value_write(j, v->items[i]);
        }
        flagon_json_end_object(j);
        break;
    }
}

flagon_err *flagon_json_body(const flagon_request *req, flagon_json_value **out) {
    *out = NULL;
    char *ct = flagon_content_type(req);
    size_t ct_len = strlen(ct);
    bool json = strcmp(ct, "application/json") == 0 ||
                (ct_len >= 5 && strcmp(ct + ct_len - 5, "+json") == 0);
    free(ct);
    if (!json)
        return flagon_err_new(415, "expected a request body with `Content-Type: application/json`");
    size_t len;
    const char *body = (const char *)flagon_body(req, &len);
    char *error = NULL;
    *out = flagon_json_parse(body, len, &error);
    if (!*out)
        return err_take(400, flagon_sprintf("invalid JSON body: %s", error));
    free(error);
    return NULL;
}

/* ============================================================================================
 * Responses
 * ========================================================================================== */

flagon_response *flagon_response_new(uint16_t status) {
    flagon_response *r = xcalloc(1, sizeof *r);
    r->status = status;
    return r;
}

uint16_t flagon_response_status(const flagon_response *r) {
    return r->status;
}

flagon_response *flagon_set_status(flagon_response *r, uint16_t status) {
    r->status = status;
    return r;
}

flagon_response *flagon_add_header(flagon_response *r, const char *name, const char *value) {
    if (r->header_count == r->header_cap) {
        r->header_cap = r->header_cap ? r->header_cap * 2 : 4;
        r->headers = xrealloc(r->headers, r->header_cap * sizeof *r->headers);
    }
    r->headers[r->header_count].name = flagon_strdup(name ? name : "");
    r->headers[r->header_count].value = flagon_strdup(value ? value : "");
    r->header_count++;
    return r;
}

/* Take `body` (malloc'd) as the body. */
static flagon_response *set_body_owned(flagon_response *r, char *body, size_t len) {
    free(r->body);
    r->body = (uint8_t *)body;
    r->body_len = len;
    return r;
}

flagon_response *flagon_set_body(flagon_response *r, const void *data, size_t len) {
    char *copy = xmalloc(len);
    if (len)
        memcpy(copy, data, len);
    return set_body_owned(r, copy, len);
}

static flagon_response *typed(const char *content_type, char *body, size_t len) {
    flagon_response *r = flagon_response_new(200);
    flagon_add_header(r, "content-type", content_type);
    return set_body_owned(r, body, len);
}

flagon_response *flagon_text(const char *text) {
    text = text ? text : "";
    return typed("text/plain; charset=utf-8", flagon_strdup(text), strlen(text));
}

flagon_response *flagon_textf(const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char *text = flagon_vsprintf(fmt, args);
    va_end(args);
    return typed("text/plain; charset=utf-8", text, strlen(text));
}

flagon_response *flagon_html(const char *html) {
    html = html ? html : "";
    return typed("text/html; charset=utf-8", flagon_strdup(html), strlen(html));
}

flagon_response *flagon_json_response(flagon_json *j) {
    size_t len;
    char *text = flagon_json_finish(j, &len);
    if (!text)
        return flagon_error(500, "could not serialise the JSON response: the JSON writer was "
                                 "misused (a value without a key, or an unclosed object)");
    return typed("application/json", text, len);
}

flagon_response *flagon_redirect(const char *location) {
    return flagon_add_header(flagon_response_new(303), "location", location);
}

static const char *reason(uint16_t status) {
    switch (status) {
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Server Error";
    }
}

flagon_response *flagon_fail(flagon_err *err) {
    if (!err)
        err = flagon_err_new(500, "flagon_fail was given no error");
    flagon_response *r = flagon_response_new(err->status);
    flagon_add_header(r, "content-type", "text/plain; charset=utf-8");
    char *body;
    if (err->status >= 500) {
        flagon_log(FLAGON_ERROR, "handler error: %s", err->message ? err->message : "");
        body = flagon_sprintf("%s\n", reason(err->status));
    } else {
        body = flagon_sprintf("%s\n", err->message ? err->message : "");
    }
    set_body_owned(r, body, strlen(body));
    flagon_err_free(err);
    return r;
}

flagon_response *flagon_error(uint16_t status, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char *message = flagon_vsprintf(fmt, args);
    va_end(args);
    return flagon_fail(err_take(status, message));
}

static bool ends_with(const char *s, size_t len, const char *suffix) {
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/* The Content-Type of a rendered template, by its extension (as the Rust SDK does). */
static const char *template_type(const char *name) {
    size_t len = strlen(name);
    if (ends_with(name, len, ".j2"))
        len -= 3;
    else if (ends_with(name, len, ".jinja"))
        len -= 6;
    size_t dot = len;
    while (dot > 0 && name[dot - 1] != '.')
        dot--;
    const char *ext = dot > 0 ? name + dot : "";
    size_t ext_len = dot > 0 ? len - dot : 0;
#define EXT(e) (ext_len == sizeof(e) - 1 && memcmp(ext, e, ext_len) == 0)
    if (EXT("txt") || EXT("text"))
        return "text/plain; charset=utf-8";
    if (EXT("json"))
        return "application/json";
    if (EXT("xml"))
        return "application/xml; charset=utf-8";
    if (EXT("svg"))
        return "image/svg+xml";
    if (EXT("css"))
        return "text/css; charset=utf-8";
#undef EXT
    return "text/html; charset=utf-8";
}

flagon_response *flagon_render(const char *name, flagon_json *context) {
    char *json = NULL;
    if (context) {
        json = flagon_json_finish(context, NULL);
        if (!json)
            return flagon_error(500, "template context for `%s`: the JSON writer was misused",
                                name);
    }
    char *html;
    flagon_err *e = flagon_template_render(name, json, &html);
    free(json);
    if (e)
        return flagon_fail(e);
    return typed(template_type(name), html, strlen(html));
}

/* ============================================================================================
 * log, config, settings, templates
 * ========================================================================================== */

void flagon_log(flagon_level level, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    char *message = flagon_vsprintf(fmt, args);
    va_end(args);
    handler_string_t m = wstr(message);
    flagon_app_log_log((flagon_app_log_level_t)level, &m);
    free(message);
}

char *flagon_config_get(const char *name) {
    handler_string_t n = wstr(name), value;
    return flagon_app_config_get(&n, &value) ? take(value) : NULL;
}

flagon_pairs flagon_config_all(void) {
    handler_list_tuple2_string_string_t list;
    flagon_app_config_get_all(&list);
    return take_pairs(&list);
}

char *flagon_settings_json(void) {
    handler_string_t s;
    flagon_app_settings_get(&s);
    return take(s);
}

flagon_json_value *flagon_settings(void) {
    char *text = flagon_settings_json();
    flagon_json_value *v = flagon_json_parse(text, strlen(text), NULL);
    free(text);
    return v;
}

flagon_err *flagon_template_render(const char *name, const char *context_json, char **out) {
    *out = NULL;
    handler_string_t n = wstr(name), c = wstr(context_json ? context_json : "{}"), ok, err;
    if (!flagon_app_templates_render(&n, &c, &ok, &err))
        return host_err(&err);
    *out = take(ok);
    return NULL;
}

/* ============================================================================================
 * session
 * ========================================================================================== */

char *flagon_session_get(const char *key) {
    handler_string_t k = wstr(key), value;
    return flagon_app_session_get(&k, &value) ? take(value) : NULL;
}

flagon_err *flagon_session_set(const char *key, const char *value) {
    handler_string_t k = wstr(key), v = wstr(value), err;
    return flagon_app_session_set(&k, &v, &err) ? NULL : host_err(&err);
}

bool flagon_session_remove(const char *key) {
    handler_string_t k = wstr(key);
    return flagon_app_session_remove(&k);
}

flagon_strings flagon_session_keys(void) {
    handler_list_string_t list;
    flagon_app_session_keys(&list);
    return take_strings(&list);
}

void flagon_session_clear(void) {
    flagon_app_session_clear();
}

void flagon_session_rotate(void) {
    flagon_app_session_rotate();
}

flagon_err *flagon_session_flash(const char *category, const char *message) {
    handler_string_t c = wstr(category), m = wstr(message), err;
    return flagon_app_session_flash(&c, &m, &err) ? NULL : host_err(&err);
}

flagon_pairs flagon_session_take_flashes(void) {
    handler_list_tuple2_string_string_t list;
    flagon_app_session_take_flashes(&list);
    return take_pairs(&list);
}

char *flagon_session_csrf_token(void) {
    handler_string_t token;
    flagon_app_session_csrf_token(&token);
    return take(token);
}

flagon_err *flagon_session_sign_in(const char *subject, const char *name,
                                   const char *const *roles, size_t role_count) {
    flagon_session_rotate();
    flagon_json *j = flagon_json_new();
    flagon_json_begin_object(j);
    flagon_json_put_string(j, "subject", subject);
    flagon_json_put_string(j, "name", name);
    flagon_json_key(j, "roles");
    flagon_json_begin_array(j);
    for (size_t i = 0; i < role_count; i++)
        flagon_json_string(j, roles[i]);
    flagon_json_end_array(j);
    flagon_json_end_object(j);
    char *json = flagon_json_finish(j, NULL);
    if (!json)
        return flagon_err_new(500, "cannot write the identity: a subject or role is NULL");
    flagon_err *e = flagon_session_set("identity", json);
    free(json);
    return e;
}

void flagon_session_sign_out(void) {
    flagon_session_clear();
}

/* ============================================================================================
 * kv
 * ========================================================================================== */

flagon_err *flagon_kv_get(const char *store, const char *key, flagon_bytes *value, bool *found) {
    handler_string_t s = wstr(store), k = wstr(key), err;
    handler_option_list_u8_t ok;
    value->ptr = NULL;
    value->len = 0;
    *found = false;
    if (!flagon_app_kv_get(&s, &k, &ok, &err))
        return host_err(&err);
    if (ok.is_some) {
        *found = true;
        value->ptr = ok.val.ptr;
        value->len = ok.val.len;
    }
    return NULL;
}

flagon_err *flagon_kv_get_string(const char *store, const char *key, char **value) {
    flagon_bytes bytes;
    bool found;
    *value = NULL;
    flagon_err *e = flagon_kv_get(store, key, &bytes, &found);
    if (e || !found)
        return e;
    if (memchr(bytes.ptr, '\0', bytes.len) ||
        !flagon_utf8_valid((const char *)bytes.ptr, bytes.len)) {
        flagon_bytes_free(&bytes);
        return flagon_err_new(500, "value of `%s` is not UTF-8 text", key);
    }
    *value = (char *)bytes.ptr;
    return NULL;
}

flagon_err *flagon_kv_set(const char *store, const char *key, const void *value, size_t len,
                          uint64_t ttl_ms) {
    handler_string_t s = wstr(store), k = wstr(key), err;
    handler_list_u8_t v = wbytes(value, len);
    if (!flagon_app_kv_set(&s, &k, &v, ttl_ms ? &ttl_ms : NULL, &err))
        return host_err(&err);
    return NULL;
}

flagon_err *flagon_kv_set_string(const char *store, const char *key, const char *value,
                                 uint64_t ttl_ms) {
    return flagon_kv_set(store, key, value, value ? strlen(value) : 0, ttl_ms);
}

flagon_err *flagon_kv_delete(const char *store, const char *key, bool *existed) {
    handler_string_t s = wstr(store), k = wstr(key), err;
    bool ok;
    if (!flagon_app_kv_delete(&s, &k, &ok, &err))
        return host_err(&err);
    if (existed)
        *existed = ok;
    return NULL;
}

flagon_err *flagon_kv_exists(const char *store, const char *key, bool *exists) {
    handler_string_t s = wstr(store), k = wstr(key), err;
    if (!flagon_app_kv_exists(&s, &k, exists, &err))
        return host_err(&err);
    return NULL;
}

flagon_err *flagon_kv_increment(const char *store, const char *key, int64_t delta, int64_t *out) {
    handler_string_t s = wstr(store), k = wstr(key), err;
    int64_t sum;
    if (!flagon_app_kv_increment(&s, &k, delta, &sum, &err))
        return host_err(&err);
    if (out)
        *out = sum;
    return NULL;
}

flagon_err *flagon_kv_increment_new(const char *store, const char *key, int64_t delta,
                                    uint64_t ttl_ms, int64_t *out) {
    handler_string_t s = wstr(store), k = wstr(key), err;
    int64_t sum;
    if (!flagon_app_kv_increment_new(&s, &k, delta, ttl_ms, &sum, &err))
        return host_err(&err);
    if (out)
        *out = sum;
    return NULL;
}

flagon_err *flagon_kv_keys(const char *store, const char *prefix, flagon_strings *out) {
    handler_string_t s = wstr(store), p = wstr(prefix ? prefix : ""), err;
    handler_list_string_t list;
    out->items = NULL;
    out->len = 0;
    if (!flagon_app_kv_list_keys(&s, &p, &list, &err))
        return host_err(&err);
    *out = take_strings(&list);
    return NULL;
}

/* ============================================================================================
 * crypto
 * ========================================================================================== */

flagon_err *flagon_crypto_hash_password(const char *password, char **out) {
    handler_string_t p = wstr(password), ok, err;
    *out = NULL;
    if (!flagon_app_crypto_hash_password(&p, &ok, &err))
        return host_err(&err);
    *out = take(ok);
    return NULL;
}

bool flagon_crypto_verify_password(const char *password, const char *hash) {
    handler_string_t p = wstr(password), h = wstr(hash);
    return flagon_app_crypto_verify_password(&p, &h);
}

flagon_err *flagon_crypto_random_bytes(uint32_t len, flagon_bytes *out) {
    handler_list_u8_t ok;
    handler_string_t err;
    out->ptr = NULL;
    out->len = 0;
    if (!flagon_app_crypto_random_bytes(len, &ok, &err))
        return host_err(&err);
    out->ptr = ok.ptr;
    out->len = ok.len;
    return NULL;
}

flagon_err *flagon_crypto_random_token_n(uint32_t bytes, char **out) {
    handler_string_t ok, err;
    *out = NULL;
    if (!flagon_app_crypto_random_token(bytes, &ok, &err))
        return host_err(&err);
    *out = take(ok);
    return NULL;
}

char *flagon_crypto_random_token(void) {
    char *token;
    flagon_err *e = flagon_crypto_random_token_n(32, &token);
    if (e) {
        /* 32 is always a valid size: the host is broken. */
        flagon_log(FLAGON_ERROR, "random-token(32) failed: %s", e->message);
        abort();
    }
    return token;
}

void flagon_crypto_hmac_sha256(const void *key, size_t key_len, const void *message,
                               size_t message_len, uint8_t out[32]) {
    handler_list_u8_t k = wbytes(key, key_len), m = wbytes(message, message_len), tag;
    flagon_app_crypto_hmac_sha256(&k, &m, &tag);
    memset(out, 0, 32);
    memcpy(out, tag.ptr, tag.len < 32 ? tag.len : 32);
    free(tag.ptr);
}

bool flagon_crypto_hmac_sha256_verify(const void *key, size_t key_len, const void *message,
                                      size_t message_len, const void *tag, size_t tag_len) {
    handler_list_u8_t k = wbytes(key, key_len), m = wbytes(message, message_len),
                      t = wbytes(tag, tag_len);
    return flagon_app_crypto_hmac_sha256_verify(&k, &m, &t);
}

/* ============================================================================================
 * outbound-http
 * ========================================================================================== */

struct flagon_outbound {
    char *method;
    char *url;
    header *headers;
    size_t header_count, header_cap;
    uint8_t *body;
    size_t body_len;
};

struct flagon_incoming {
    flagon_app_outbound_http_incoming_response_t raw;
};

flagon_outbound *flagon_outbound_new(const char *method, const char *url) {
    flagon_outbound *o = xcalloc(1, sizeof *o);
    o->method = flagon_strdup(method ? method : "GET");
    o->url = flagon_strdup(url ? url : "");
    return o;
}

void flagon_outbound_free(flagon_outbound *o) {
    if (!o)
        return;
    for (size_t i = 0; i < o->header_count; i++) {
        free(o->headers[i].name);
        free(o->headers[i].value);
    }
    free(o->headers);
    free(o->body);
    free(o->method);
    free(o->url);
    free(o);
}

void flagon_outbound_header(flagon_outbound *o, const char *name, const char *value) {
    if (o->header_count == o->header_cap) {
        o->header_cap = o->header_cap ? o->header_cap * 2 : 4;
        o->headers = xrealloc(o->headers, o->header_cap * sizeof *o->headers);
    }
    o->headers[o->header_count].name = flagon_strdup(name ? name : "");
    o->headers[o->header_count].value = flagon_strdup(value ? value : "");
    o->header_count++;
}

void flagon_outbound_body(flagon_outbound *o, const void *data, size_t len) {
    free(o->body);
    o->body = xmalloc(len);
    if (len)
        memcpy(o->body, data, len);
    o->body_len = len;
}

void flagon_outbound_json(flagon_outbound *o, flagon_json *j) {
    size_t len;
    char *text = flagon_json_finish(j, &len);
    flagon_outbound_header(o, "content-type", "application/json");
    /* A misused writer sends `null`, which the upstream will refuse. */
    if (!text)
        text = flagon_strdup("null"), len = 4;
    free(o->body);
    o->body = (uint8_t *)text;
    o->body_len = len;
}

static flagon_app_types_method_t wmethod(const char *m) {
    static const char *const names[] = {"GET",    "HEAD",  "POST",   "PUT",
                                        "DELETE", "PATCH", "OPTIONS"};
    flagon_app_types_method_t out;
    for (uint8_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (strcmp(m, names[i]) == 0) {
            out.tag = i;
            return out;
        }
    }
    out.tag = FLAGON_APP_TYPES_METHOD_OTHER;
    out.val.other = wstr(m);
    return out;
}

flagon_err *flagon_outbound_send(flagon_outbound *o, flagon_incoming **out) {
    *out = NULL;
    flagon_app_outbound_http_outgoing_request_t request;
    request.method = wmethod(o->method);
    request.url = wstr(o->url);
    request.headers.len = o->header_count;
    request.headers.ptr = xmalloc(o->header_count * sizeof *request.headers.ptr);
    for (size_t i = 0; i < o->header_count; i++) {
        request.headers.ptr[i].f0 = wstr(o->headers[i].name);
        request.headers.ptr[i].f1 = wstr(o->headers[i].value);
    }
    request.body = wbytes(o->body, o->body_len);
    flagon_incoming *in = xcalloc(1, sizeof *in);
    handler_string_t err;
    bool ok = flagon_app_outbound_http_send(&request, &in->raw, &err);
    free(request.headers.ptr);
    flagon_outbound_free(o);
    if (!ok) {
        free(in);
        return err_take(502, take(err));
    }
    *out = in;
    return NULL;
}

uint16_t flagon_incoming_status(const flagon_incoming *in) {
    return in->raw.status;
}

const char *flagon_incoming_header(const flagon_incoming *in, const char *name) {
    return fields_find(&in->raw.headers, name, true);
}

const uint8_t *flagon_incoming_body(const flagon_incoming *in, size_t *len) {
    if (len)
        *len = in->raw.body.len;
    return in->raw.body.ptr ? in->raw.body.ptr : (const uint8_t *)"";
}

flagon_err *flagon_incoming_json(const flagon_incoming *in, flagon_json_value **out) {
    size_t len;
    const char *body = (const char *)flagon_incoming_body(in, &len);
    char *error = NULL;
    *out = flagon_json_parse(body, len, &error);
    if (!*out)
        return err_take(502, flagon_sprintf("invalid JSON from upstream: %s", error));
    free(error);
    return NULL;
}

void flagon_incoming_free(flagon_incoming *in) {
    if (!in)
        return;
    flagon_app_outbound_http_incoming_response_free(&in->raw);
    free(in);
}

/* ============================================================================================
 * sql
 * ========================================================================================== */

flagon_value flagon_sql_null(void) {
    flagon_value v = {.kind = FLAGON_VALUE_NULL};
    return v;
}

flagon_value flagon_sql_int(int64_t n) {
    flagon_value v = {.kind = FLAGON_VALUE_INTEGER, .as.integer = n};
    return v;
}

flagon_value flagon_sql_real(double d) {
    flagon_value v = {.kind = FLAGON_VALUE_REAL, .as.real = d};
    return v;
}

flagon_value flagon_sql_text_n(const char *text, size_t len) {
    if (!text)
        return flagon_sql_null();
    flagon_value v = {.kind = FLAGON_VALUE_TEXT};
    v.as.text.ptr = text;
    v.as.text.len = len;
    return v;
}

flagon_value flagon_sql_text(const char *text) {
    return flagon_sql_text_n(text, text ? strlen(text) : 0);
}

flagon_value flagon_sql_blob(const void *data, size_t len) {
    flagon_value v = {.kind = FLAGON_VALUE_BLOB};
    v.as.blob.ptr = data ? data : (const uint8_t *)"";
    v.as.blob.len = data ? len : 0;
    return v;
}

flagon_value flagon_sql_bool(bool b) {
    flagon_value v = {.kind = FLAGON_VALUE_BOOLEAN, .as.boolean = b};
    return v;
}

/* The parameters as the WIT list; free the array (only) afterwards. */
static flagon_app_sql_list_value_t wparams(const flagon_value *params, size_t count) {
    flagon_app_sql_list_value_t list = {xmalloc(count * sizeof(flagon_app_sql_value_t)), count};
    for (size_t i = 0; i < count; i++) {
        const flagon_value *p = &params[i];
        flagon_app_sql_value_t *v = &list.ptr[i];
        switch (p->kind) {
        case FLAGON_VALUE_INTEGER:
            v->tag = FLAGON_APP_SQL_TYPES_VALUE_INTEGER;
            v->val.integer = p->as.integer;
            break;
        case FLAGON_VALUE_REAL:
            v->tag = FLAGON_APP_SQL_TYPES_VALUE_REAL;
            v->val.real = p->as.real;
            break;
        case FLAGON_VALUE_TEXT:
            v->tag = FLAGON_APP_SQL_TYPES_VALUE_TEXT;
            v->val.text.ptr = (uint8_t *)p->as.text.ptr;
            v->val.text.len = p->as.text.len;
            break;
        case FLAGON_VALUE_BLOB:
            v->tag = FLAGON_APP_SQL_TYPES_VALUE_BLOB;
            v->val.blob.ptr = (uint8_t *)p->as.blob.ptr;
            v->val.blob.len = p->as.blob.len;
            break;
        case FLAGON_VALUE_BOOLEAN:
            v->tag = FLAGON_APP_SQL_TYPES_VALUE_BOOLEAN;
            v->val.boolean = p->as.boolean;
            break;
        default:
            v->tag = FLAGON_APP_SQL_TYPES_VALUE_NULL;
            break;
        }
    }
    return list;
}

/* A SQL error as a flagon_err, worded as the Rust SDK's `SqlError::describe`. Frees `e`'s
 * strings. */
static flagon_err *sql_err(flagon_app_sql_sql_error_t *e) {
    flagon_err *out = xcalloc(1, sizeof *out);
    out->status = 500;
    char *what = NULL;
    switch (e->tag) {
    case FLAGON_APP_SQL_TYPES_SQL_ERROR_CONSTRAINT_VIOLATION:
        out->sql = FLAGON_SQL_ERR_CONSTRAINT_VIOLATION;
        out->constraint_kind = (flagon_constraint_kind)e->val.constraint_violation.kind;
        out->constraint = e->val.constraint_violation.constraint.is_some
                              ? flagon_strdup(view(&e->val.constraint_violation.constraint.val))
                              : NULL;
        what = flagon_sprintf("constraint violation: %s",
                              view(&e->val.constraint_violation.message));
        break;
    case FLAGON_APP_SQL_TYPES_SQL_ERROR_NO_SUCH_TABLE:
        out->sql = FLAGON_SQL_ERR_NO_SUCH_TABLE;
        what = flagon_sprintf("no such table: %s", view(&e->val.no_such_table));
        break;
    case FLAGON_APP_SQL_TYPES_SQL_ERROR_NO_SUCH_COLUMN:
        out->sql = FLAGON_SQL_ERR_NO_SUCH_COLUMN;
        what = flagon_sprintf("no such column: %s", view(&e->val.no_such_column));
        break;
    case FLAGON_APP_SQL_TYPES_SQL_ERROR_SYNTAX:
        out->sql = FLAGON_SQL_ERR_SYNTAX;
        what = flagon_sprintf("syntax error: %s", view(&e->val.syntax));
        break;
    case FLAGON_APP_SQL_TYPES_SQL_ERROR_TIMEOUT:
        out->sql = FLAGON_SQL_ERR_TIMEOUT;
        out->status = 503;
        what = flagon_strdup("the statement timed out");
        break;
    case FLAGON_APP_SQL_TYPES_SQL_ERROR_TOO_MANY_ROWS:
        out->sql = FLAGON_SQL_ERR_TOO_MANY_ROWS;
        out->limit = e->val.too_many_rows;
        what = flagon_sprintf("the result has more than %llu rows",
                              (unsigned long long)out->limit);
        break;
    case FLAGON_APP_SQL_TYPES_SQL_ERROR_TOO_LARGE:
        out->sql = FLAGON_SQL_ERR_TOO_LARGE;
        out->limit = e->val.too_large;
        what = flagon_sprintf("the result or parameters exceed %llu bytes",
                              (unsigned long long)out->limit);
        break;
    case FLAGON_APP_SQL_TYPES_SQL_ERROR_CONNECTION_LOST:
        out->sql = FLAGON_SQL_ERR_CONNECTION_LOST;
        out->status = 503;
        what = flagon_strdup("the database connection was lost");
        break;
    case FLAGON_APP_SQL_TYPES_SQL_ERROR_NOT_GRANTED:
        out->sql = FLAGON_SQL_ERR_NOT_GRANTED;
        what = flagon_strdup(view(&e->val.not_granted));
        break;
    default:
        out->sql = FLAGON_SQL_ERR_OTHER;
        what = flagon_strdup(view(&e->val.other));
        break;
    }
    out->message = flagon_sprintf("sql: %s", what);
    free(what);
    flagon_app_sql_types_sql_error_free(e);
    return out;
}

struct flagon_rows {
    flagon_app_sql_rows_t raw; /* the host's rows, which the values borrow from */
    size_t columns, count;
    flagon_value *values;      /* count * columns, row by row */
};

static flagon_value value_view(const flagon_app_sql_value_t *v) {
    switch (v->tag) {
    case FLAGON_APP_SQL_TYPES_VALUE_INTEGER:
        return flagon_sql_int(v->val.integer);
    case FLAGON_APP_SQL_TYPES_VALUE_REAL:
        return flagon_sql_real(v->val.real);
    case FLAGON_APP_SQL_TYPES_VALUE_TEXT:
        return flagon_sql_text_n(view(&v->val.text), v->val.text.len);
    case FLAGON_APP_SQL_TYPES_VALUE_BLOB:
        return flagon_sql_blob(v->val.blob.ptr, v->val.blob.len);
    case FLAGON_APP_SQL_TYPES_VALUE_BOOLEAN:
        return flagon_sql_bool(v->val.boolean);
    default:
        return flagon_sql_null();
    }
}

static flagon_rows *rows_take(flagon_app_sql_rows_t *raw) {
    flagon_rows *r = xcalloc(1, sizeof *r);
    r->raw = *raw;
    r->columns = raw->columns.len;
    r->count = raw->rows.len;
    r->values = xmalloc(r->columns * r->count * sizeof *r->values);
    for (size_t row = 0; row < r->count; row++) {
        const flagon_app_sql_types_list_value_t *vals = &raw->rows.ptr[row];
        for (size_t col = 0; col < r->columns; col++)
            r->values[row * r->columns + col] =
                col < vals->len ? value_view(&vals->ptr[col]) : flagon_sql_null();
    }
    return r;
}

flagon_err *flagon_sql_query(const char *database, const char *statement,
                             const flagon_value *params, size_t count, flagon_rows **out) {
    handler_string_t d = wstr(database), s = wstr(statement);
    flagon_app_sql_list_value_t p = wparams(params, count);
    flagon_app_sql_rows_t ok;
    flagon_app_sql_sql_error_t err;
    *out = NULL;
    bool success = flagon_app_sql_query(&d, &s, &p, &ok, &err);
    free(p.ptr);
    if (!success)
        return sql_err(&err);
    *out = rows_take(&ok);
    return NULL;
}

static void outcome_set(flagon_outcome *out, const flagon_app_sql_outcome_t *o) {
    if (!out)
        return;
    out->rows_affected = o->rows_affected;
    out->has_last_insert_id = o->last_insert_id.is_some;
    out->last_insert_id = o->last_insert_id.is_some ? o->last_insert_id.val : 0;
}

flagon_err *flagon_sql_execute(const char *database, const char *statement,
                               const flagon_value *params, size_t count, flagon_outcome *out) {
    handler_string_t d = wstr(database), s = wstr(statement);
    flagon_app_sql_list_value_t p = wparams(params, count);
    flagon_app_sql_outcome_t ok;
    flagon_app_sql_sql_error_t err;
    bool success = flagon_app_sql_execute(&d, &s, &p, &ok, &err);
    free(p.ptr);
    if (!success)
        return sql_err(&err);
    outcome_set(out, &ok);
    return NULL;
}

size_t flagon_rows_count(const flagon_rows *rows) {
    return rows ? rows->count : 0;
}

size_t flagon_rows_columns(const flagon_rows *rows) {
    return rows ? rows->columns : 0;
}

const char *flagon_rows_column(const flagon_rows *rows, size_t column) {
    return rows && column < rows->columns ? view(&rows->raw.columns.ptr[column]) : NULL;
}

long flagon_rows_column_index(const flagon_rows *rows, const char *name) {
    for (size_t i = 0; rows && i < rows->columns; i++)
        if (strcmp(view(&rows->raw.columns.ptr[i]), name) == 0)
            return (long)i;
    return -1;
}

const flagon_value *flagon_rows_at(const flagon_rows *rows, size_t row, size_t column) {
    if (!rows || row >= rows->count || column >= rows->columns)
        return NULL;
    return &rows->values[row * rows->columns + column];
}

const flagon_value *flagon_rows_get(const flagon_rows *rows, size_t row, const char *column) {
    long i = flagon_rows_column_index(rows, column);
    return i < 0 ? NULL : flagon_rows_at(rows, row, (size_t)i);
}

static void value_write_json(flagon_json *j, const flagon_value *v) {
    switch (v->kind) {
    case FLAGON_VALUE_INTEGER:
        flagon_json_int(j, v->as.integer);
        break;
    case FLAGON_VALUE_REAL:
        flagon_json_double(j, v->as.real);
        break;
    case FLAGON_VALUE_TEXT:
        flagon_json_string_n(j, v->as.text.ptr, v->as.text.len);
        break;
    case FLAGON_VALUE_BLOB:
        flagon_json_begin_array(j);
        for (size_t i = 0; i < v->as.blob.len; i++)
            flagon_json_int(j, v->as.blob.ptr[i]);
        flagon_json_end_array(j);
        break;
    case FLAGON_VALUE_BOOLEAN:
        flagon_json_bool(j, v->as.boolean);
        break;
    default:
        flagon_json_null(j);
        break;
    }
}

void flagon_rows_write_json(flagon_json *j, const flagon_rows *rows) {
    flagon_json_begin_array(j);
    for (size_t row = 0; row < flagon_rows_count(rows); row++) {
        flagon_json_begin_object(j);
        for (size_t col = 0; col < rows->columns; col++) {
            flagon_json_key(j, flagon_rows_column(rows, col));
            value_write_json(j, flagon_rows_at(rows, row, col));
        }
        flagon_json_end_object(j);
    }
    flagon_json_end_array(j);
}

void flagon_rows_free(flagon_rows *rows) {
    if (!rows)
        return;
    free(rows->values);
    flagon_app_sql_rows_free(&rows->raw);
    free(rows);
}

bool flagon_value_as_i64(const flagon_value *v, int64_t *out) {
    if (!v)
        return false;
    if (v->kind == FLAGON_VALUE_INTEGER) {
        *out = v->as.integer;
        return true;
    }
    if (v->kind == FLAGON_VALUE_BOOLEAN) {
        *out = v->as.boolean ? 1 : 0;
        return true;
    }
    return false;
}

bool flagon_value_as_double(const flagon_value *v, double *out) {
    if (!v)
        return false;
    if (v->kind == FLAGON_VALUE_REAL) {
        *out = v->as.real;
        return true;
    }
    if (v->kind == FLAGON_VALUE_INTEGER) {
        *out = (double)v->as.integer;
        return true;
    }
    return false;
}

bool flagon_value_as_bool(const flagon_value *v, bool *out) {
    if (!v)
        return false;
    if (v->kind == FLAGON_VALUE_BOOLEAN) {
        *out = v->as.boolean;
        return true;
    }
    if (v->kind == FLAGON_VALUE_INTEGER && (v->as.integer == 0 || v->as.integer == 1)) {
        *out = v->as.integer == 1;
        return true;
    }
    return false;
}

const char *flagon_value_as_text(const flagon_value *v) {
    return v && v->kind == FLAGON_VALUE_TEXT ? v->as.text.ptr : NULL;
}

bool flagon_value_is_null(const flagon_value *v) {
    return !v || v->kind == FLAGON_VALUE_NULL;
}

struct flagon_tx {
    flagon_app_sql_own_transaction_t handle;
};

flagon_err *flagon_sql_begin(const char *database, flagon_tx **out) {
    handler_string_t d = wstr(database);
    flagon_app_sql_own_transaction_t handle;
    flagon_app_sql_sql_error_t err;
    *out = NULL;
    if (!flagon_app_sql_begin(&d, &handle, &err))
        return sql_err(&err);
    *out = xmalloc(sizeof **out);
    (*out)->handle = handle;
    return NULL;
}

flagon_err *flagon_tx_query(flagon_tx *tx, const char *statement, const flagon_value *params,
                            size_t count, flagon_rows **out) {
    handler_string_t s = wstr(statement);
    flagon_app_sql_list_value_t p = wparams(params, count);
    flagon_app_sql_rows_t ok;
    flagon_app_sql_sql_error_t err;
    *out = NULL;
    bool success = flagon_app_sql_method_transaction_query(
        flagon_app_sql_borrow_transaction(tx->handle), &s, &p, &ok, &err);
    free(p.ptr);
    if (!success)
        return sql_err(&err);
    *out = rows_take(&ok);
    return NULL;
}

flagon_err *flagon_tx_execute(flagon_tx *tx, const char *statement, const flagon_value *params,
                              size_t count, flagon_outcome *out) {
    handler_string_t s = wstr(statement);
    flagon_app_sql_list_value_t p = wparams(params, count);
    flagon_app_sql_outcome_t ok;
    flagon_app_sql_sql_error_t err;
    bool success = flagon_app_sql_method_transaction_execute(
        flagon_app_sql_borrow_transaction(tx->handle), &s, &p, &ok, &err);
    free(p.ptr);
    if (!success)
        return sql_err(&err);
    outcome_set(out, &ok);
    return NULL;
}

flagon_err *flagon_tx_commit(flagon_tx *tx) {
    flagon_app_sql_sql_error_t err;
    bool success = flagon_app_sql_static_transaction_commit(tx->handle, &err);
    free(tx);
    return success ? NULL : sql_err(&err);
}

flagon_err *flagon_tx_rollback(flagon_tx *tx) {
    flagon_app_sql_sql_error_t err;
    bool success = flagon_app_sql_static_transaction_rollback(tx->handle, &err);
    free(tx);
    return success ? NULL : sql_err(&err);
}
