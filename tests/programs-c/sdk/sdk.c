/*
 * The C SDK's wider calls, each route answering JSON that tests/all/hello_c.rs checks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flagon.h"

/* Write an error (or null) under `key`, and free it. */
static void put_err(flagon_json *j, const char *key, flagon_err *e) {
    flagon_json_key(j, key);
    if (!e) {
        flagon_json_null(j);
        return;
    }
    flagon_json_begin_object(j);
    flagon_json_put_int(j, "status", e->status);
    flagon_json_put_string(j, "message", e->message);
    flagon_json_put_int(j, "sql", e->sql);
    if (e->sql == FLAGON_SQL_ERR_CONSTRAINT_VIOLATION) {
        flagon_json_put_int(j, "constraint_kind", e->constraint_kind);
        flagon_json_put_string(j, "constraint", e->constraint);
    }
    flagon_json_end_object(j);
    flagon_err_free(e);
}

static void put_strings(flagon_json *j, const char *key, const flagon_strings *list) {
    flagon_json_key(j, key);
    flagon_json_begin_array(j);
    for (size_t i = 0; i < list->len; i++)
        flagon_json_string(j, list->items[i]);
    flagon_json_end_array(j);
}

static void put_pairs(flagon_json *j, const char *key, const flagon_pairs *pairs) {
    flagon_json_key(j, key);
    flagon_json_begin_array(j);
    for (size_t i = 0; i < pairs->len; i++) {
        flagon_json_begin_array(j);
        flagon_json_string(j, pairs->items[i].name);
        flagon_json_string(j, pairs->items[i].value);
        flagon_json_end_array(j);
    }
    flagon_json_end_array(j);
}

static char *hex(const uint8_t *bytes, size_t len) {
    static const char digits[] = "0123456789abcdef";
    char *out = malloc(len * 2 + 1);
    if (!out)
        abort();
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[len * 2] = '\0';
    return out;
}

static flagon_response *kv(void) {
    flagon_json *j = flagon_json_new();
    flagon_json_begin_object(j);
    FLAGON_TRY(flagon_kv_set_string("cache", "greeting", "hi", 0));
    char *got;
    FLAGON_TRY(flagon_kv_get_string("cache", "greeting", &got));
    flagon_json_put_string(j, "get", got);
    free(got);
    bool exists;
    FLAGON_TRY(flagon_kv_exists("cache", "greeting", &exists));
    flagon_json_put_bool(j, "exists", exists);
    int64_t hits;
    FLAGON_TRY(flagon_kv_increment("cache", "hits", 2, NULL));
    FLAGON_TRY(flagon_kv_increment("cache", "hits", 2, &hits));
    flagon_json_put_int(j, "hits", hits);
    int64_t window;
    FLAGON_TRY(flagon_kv_increment_new("cache", "window", 1, 60000, &window));
    flagon_json_put_int(j, "window", window);
    FLAGON_TRY(flagon_kv_set_string("cache", "temp", "soon gone", 60000));
    static const uint8_t binary[] = {0, 1, 2, 0, 255};
    FLAGON_TRY(flagon_kv_set("cache", "bin", binary, sizeof binary, 0));
    flagon_bytes value;
    bool found;
    FLAGON_TRY(flagon_kv_get("cache", "bin", &value, &found));
    flagon_json_put_bool(j, "binary_ok",
                         found && value.len == sizeof binary &&
                             memcmp(value.ptr, binary, sizeof binary) == 0);
    flagon_bytes_free(&value);
    flagon_strings keys;
    FLAGON_TRY(flagon_kv_keys("cache", "", &keys));
    put_strings(j, "keys", &keys);
    flagon_strings_free(&keys);
    bool existed, existed_again;
    FLAGON_TRY(flagon_kv_delete("cache", "greeting", &existed));
    FLAGON_TRY(flagon_kv_delete("cache", "greeting", &existed_again));
    flagon_json_put_bool(j, "deleted", existed);
    flagon_json_put_bool(j, "deleted_again", existed_again);
    FLAGON_TRY(flagon_kv_get_string("cache", "greeting", &got));
    flagon_json_put_string(j, "after_delete", got); /* NULL: null */
    /* Not a number: increment fails. */
    put_err(j, "not_a_number", flagon_kv_increment("cache", "temp", 1, NULL));
    put_err(j, "ungranted", flagon_kv_get_string("elsewhere", "x", &got));
    flagon_json_end_object(j);
    return flagon_json_response(j);
}

static flagon_response *crypto(void) {
    flagon_json *j = flagon_json_new();
    flagon_json_begin_object(j);
    char *hash;
    FLAGON_TRY(flagon_crypto_hash_password("correct horse", &hash));
    flagon_json_put_bool(j, "hash_is_argon2id", strncmp(hash, "$argon2id$", 10) == 0);
    flagon_json_put_bool(j, "verify_ok", flagon_crypto_verify_password("correct horse", hash));
    flagon_json_put_bool(j, "verify_bad", flagon_crypto_verify_password("wrong horse", hash));
    free(hash);
    char *token = flagon_crypto_random_token();
    flagon_json_put_int(j, "token_len", (int64_t)strlen(token));
    free(token);
    FLAGON_TRY(flagon_crypto_random_token_n(16, &token));
    flagon_json_put_int(j, "token16_len", (int64_t)strlen(token));
    free(token);
    put_err(j, "token_too_short", flagon_crypto_random_token_n(8, &token));
    flagon_bytes random;
    FLAGON_TRY(flagon_crypto_random_bytes(24, &random));
    flagon_json_put_int(j, "random_len", (int64_t)random.len);
    flagon_bytes_free(&random);
    const char *key = "key", *message = "The quick brown fox jumps over the lazy dog";
    uint8_t tag[32];
    flagon_crypto_hmac_sha256(key, strlen(key), message, strlen(message), tag);
    char *tag_hex = hex(tag, sizeof tag);
    flagon_json_put_string(j, "hmac", tag_hex);
    free(tag_hex);
    flagon_json_put_bool(j, "hmac_ok", flagon_crypto_hmac_sha256_verify(
                                           key, strlen(key), message, strlen(message), tag, 32));
    tag[0] ^= 1;
    flagon_json_put_bool(j, "hmac_bad", flagon_crypto_hmac_sha256_verify(
                                            key, strlen(key), message, strlen(message), tag, 32));
    flagon_json_end_object(j);
    return flagon_json_response(j);
}

/* The number of rows in `items`, through `tx` if not NULL. */
static flagon_err *count_items(flagon_tx *tx, int64_t *out) {
    flagon_rows *rows;
    flagon_err *e = tx ? flagon_tx_query(tx, "SELECT count(*) AS n FROM items", FLAGON_NO_PARAMS, &rows)
                       : flagon_sql_query("main", "SELECT count(*) AS n FROM items", FLAGON_NO_PARAMS,
                                          &rows);
    if (e)
        return e;
    if (!flagon_value_as_i64(flagon_rows_get(rows, 0, "n"), out))
        e = flagon_err_new(500, "count(*) is not an integer");
    flagon_rows_free(rows);
    return e;
}

static flagon_response *sql(void) {
    flagon_json *j = flagon_json_new();
    flagon_json_begin_object(j);
    FLAGON_TRY(flagon_sql_execute("main", "DROP TABLE IF EXISTS items", FLAGON_NO_PARAMS, NULL));
    FLAGON_TRY(flagon_sql_execute("main",
                                  "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL "
                                  "UNIQUE, price REAL, data BLOB, active BOOLEAN, note TEXT)",
                                  FLAGON_NO_PARAMS, NULL));
    static const uint8_t data[] = {0, 255, 1};
    flagon_outcome outcome;
    FLAGON_TRY(flagon_sql_execute(
        "main", "INSERT INTO items (name, price, data, active, note) VALUES (?1, ?2, ?3, ?4, ?5)",
        FLAGON_PARAMS(flagon_sql_text("widget"), flagon_sql_real(2.5),
                      flagon_sql_blob(data, sizeof data), flagon_sql_bool(true),
                      flagon_sql_text(NULL)),
        &outcome));
    flagon_json_put_int(j, "rows_affected", (int64_t)outcome.rows_affected);
    if (outcome.has_last_insert_id)
        flagon_json_put_int(j, "last_insert_id", outcome.last_insert_id);
    else
        flagon_json_put_null(j, "last_insert_id");

    flagon_rows *rows;
    FLAGON_TRY(flagon_sql_query("main",
                                "SELECT id, name, price, data, active, note FROM items WHERE name = ?1",
                                FLAGON_PARAMS(flagon_sql_text("widget")), &rows));
    flagon_json_key(j, "rows");
    flagon_rows_write_json(j, rows);
    bool active = false;
    double price = 0;
    flagon_json_put_bool(j, "active", flagon_value_as_bool(flagon_rows_get(rows, 0, "active"), &active) && active);
    flagon_json_put_bool(j, "price_ok",
                         flagon_value_as_double(flagon_rows_get(rows, 0, "price"), &price) &&
                             price == 2.5);
    flagon_json_put_string(j, "name", flagon_value_as_text(flagon_rows_get(rows, 0, "name")));
    flagon_json_put_bool(j, "note_is_null", flagon_value_is_null(flagon_rows_get(rows, 0, "note")));
    flagon_json_put_int(j, "columns", (int64_t)flagon_rows_columns(rows));
    flagon_json_put_string(j, "column_3", flagon_rows_column(rows, 3));
    flagon_rows_free(rows);

    FLAGON_TRY(flagon_sql_query("main", "SELECT ?1 AS min, ?2 AS max, ?3 AS text",
                                FLAGON_PARAMS(flagon_sql_int(INT64_MIN), flagon_sql_int(INT64_MAX),
                                              flagon_sql_text("grüße \"quoted\"\n")),
                                &rows));
    flagon_json_key(j, "extremes");
    flagon_rows_write_json(j, rows);
    flagon_rows_free(rows);

    put_err(j, "duplicate",
            flagon_sql_execute("main", "INSERT INTO items (name) VALUES (?1)",
                               FLAGON_PARAMS(flagon_sql_text("widget")), NULL));
    put_err(j, "no_table", flagon_sql_query("main", "SELECT * FROM missing", FLAGON_NO_PARAMS, &rows));
    put_err(j, "syntax", flagon_sql_query("main", "SELEC 1", FLAGON_NO_PARAMS, &rows));
    put_err(j, "not_granted", flagon_sql_query("other", "SELECT 1", FLAGON_NO_PARAMS, &rows));

    /* A transaction rolled back leaves nothing; one committed keeps its row. */
    flagon_tx *tx;
    int64_t inside, after_rollback, after_commit;
    FLAGON_TRY(flagon_sql_begin("main", &tx));
    FLAGON_TRY(flagon_tx_execute(tx, "INSERT INTO items (name) VALUES (?1)",
                                 FLAGON_PARAMS(flagon_sql_text("gadget")), NULL));
    FLAGON_TRY(count_items(tx, &inside));
    put_err(j, "tx_error", flagon_tx_query(tx, "SELECT nope FROM items", FLAGON_NO_PARAMS, &rows));
    FLAGON_TRY(flagon_tx_rollback(tx));
    FLAGON_TRY(count_items(NULL, &after_rollback));
    FLAGON_TRY(flagon_sql_begin("main", &tx));
    FLAGON_TRY(flagon_tx_execute(tx, "INSERT INTO items (name) VALUES (?1)",
                                 FLAGON_PARAMS(flagon_sql_text("gizmo")), NULL));
    FLAGON_TRY(flagon_tx_commit(tx));
    FLAGON_TRY(count_items(NULL, &after_commit));
    flagon_json_put_int(j, "inside", inside);
    flagon_json_put_int(j, "after_rollback", after_rollback);
    flagon_json_put_int(j, "after_commit", after_commit);
    flagon_json_end_object(j);
    return flagon_json_response(j);
}

static flagon_response *config(void) {
    flagon_json *j = flagon_json_new();
    flagon_json_begin_object(j);
    char *motto = flagon_config_get("motto");
    flagon_json_put_string(j, "motto", motto);
    free(motto);
    char *missing = flagon_config_get("not_granted");
    flagon_json_put_string(j, "missing", missing);
    free(missing);
    flagon_pairs all = flagon_config_all();
    flagon_json_put_int(j, "count", (int64_t)all.len);
    flagon_json_put_string(j, "motto_again", flagon_pairs_get(&all, "motto"));
    flagon_pairs_free(&all);
    char *settings = flagon_settings_json();
    flagon_json_key(j, "settings");
    flagon_json_raw(j, settings);
    free(settings);
    flagon_json_value *parsed = flagon_settings();
    int64_t retries = 0;
    bool on = false;
    flagon_json_put_string(j, "title", flagon_json_as_string(flagon_json_get(parsed, "title"), NULL));
    flagon_json_put_bool(j, "retries_ok",
                         flagon_json_as_i64(flagon_json_get(parsed, "retries"), &retries) &&
                             retries == 3);
    flagon_json_put_bool(j, "nested_on",
                         flagon_json_as_bool(flagon_json_get(flagon_json_get(parsed, "nested"), "on"), &on) &&
                             on);
    flagon_json_value_free(parsed);
    flagon_json_end_object(j);
    return flagon_json_response(j);
}

static flagon_response *session(void) {
    flagon_json *j = flagon_json_new();
    flagon_json_begin_object(j);
    FLAGON_TRY(flagon_session_set("a", "1"));
    FLAGON_TRY(flagon_session_set("b", "two"));
    flagon_strings keys = flagon_session_keys();
    put_strings(j, "keys", &keys);
    flagon_strings_free(&keys);
    flagon_json_put_bool(j, "removed", flagon_session_remove("a"));
    flagon_json_put_bool(j, "removed_again", flagon_session_remove("a"));
    char *b = flagon_session_get("b");
    flagon_json_put_string(j, "b", b);
    free(b);
    char *token = flagon_session_csrf_token();
    flagon_json_put_bool(j, "csrf_token", strlen(token) > 20);
    free(token);
    FLAGON_TRY(flagon_session_flash("info", "first"));
    FLAGON_TRY(flagon_session_flash("error", "second"));
    flagon_pairs flashes = flagon_session_take_flashes();
    put_pairs(j, "flashes", &flashes);
    flagon_pairs_free(&flashes);
    flagon_pairs none = flagon_session_take_flashes();
    flagon_json_put_int(j, "flashes_left", (int64_t)none.len);
    flagon_pairs_free(&none);
    const char *roles[] = {"admin", "editor"};
    FLAGON_TRY(flagon_session_sign_in("u1", "Una", roles, 2));
    char *identity = flagon_session_get("identity");
    flagon_json_key(j, "identity");
    flagon_json_raw(j, identity);
    free(identity);
    flagon_json_end_object(j);
    return flagon_json_response(j);
}

/* POST to the upstream's /api/echo (hello-c, in the test), or to `?url=`. */
static flagon_response *fetch(const flagon_request *req) {
    char *url = flagon_query(req, "url");
    if (!url) {
        char *upstream = flagon_config_get("upstream");
        url = flagon_sprintf("%s/api/echo", upstream ? upstream : "");
        free(upstream);
    }
    flagon_outbound *o = flagon_outbound_new("POST", url);
    free(url);
    flagon_outbound_header(o, "accept", "application/json");
    flagon_json *body = flagon_json_new();
    flagon_json_begin_object(body);
    flagon_json_put_string(body, "message", "from c");
    flagon_json_put_bool(body, "shout", true);
    flagon_json_end_object(body);
    flagon_outbound_json(o, body);
    flagon_incoming *in;
    FLAGON_TRY(flagon_outbound_send(o, &in));
    flagon_json_value *answer;
    flagon_err *e = flagon_incoming_json(in, &answer);
    if (e) {
        flagon_incoming_free(in);
        return flagon_fail(e);
    }
    flagon_json *j = flagon_json_new();
    flagon_json_begin_object(j);
    flagon_json_put_int(j, "status", flagon_incoming_status(in));
    flagon_json_put_string(j, "content_type", flagon_incoming_header(in, "Content-Type"));
    flagon_json_key(j, "answer");
    flagon_json_value_write(j, answer);
    flagon_json_end_object(j);
    flagon_json_value_free(answer);
    flagon_incoming_free(in);
    return flagon_json_response(j);
}

static flagon_response *inspect(const flagon_request *req) {
    flagon_json *j = flagon_json_new();
    flagon_json_begin_object(j);
    flagon_json_put_string(j, "method", flagon_method(req));
    flagon_json_put_string(j, "path", flagon_path(req));
    flagon_json_put_string(j, "route", flagon_route(req));
    flagon_json_put_string(j, "rest", flagon_param(req, "rest"));
    flagon_json_put_int(j, "param_count", (int64_t)flagon_param_count(req));
    flagon_json_put_string(j, "query_string", flagon_query_string(req));
    flagon_pairs query = flagon_query_pairs(req);
    put_pairs(j, "query", &query);
    flagon_pairs_free(&query);
    char *q = flagon_query(req, "q");
    flagon_json_put_string(j, "q", q);
    free(q);
    flagon_json_put_string(j, "x_thing", flagon_header(req, "X-Thing"));
    flagon_json_put_bool(j, "has_headers", flagon_header_count(req) > 0);
    char *cookie = flagon_cookie(req, "flavour");
    flagon_json_put_string(j, "cookie", cookie);
    free(cookie);
    char *ct = flagon_content_type(req);
    flagon_json_put_string(j, "content_type", ct);
    free(ct);
    flagon_json_put_bool(j, "client", strlen(flagon_client(req)) > 0);
    flagon_json_put_bool(j, "request_id", strlen(flagon_request_id(req)) > 0);
    flagon_json_put_bool(j, "identity", flagon_has_identity(req));
    size_t body_len;
    flagon_body(req, &body_len);
    flagon_json_put_int(j, "body_len", (int64_t)body_len);
    flagon_json_put_string(j, "body_text", flagon_body_text(req));
    flagon_json_put_string(j, "field_name", flagon_form_value(req, "name"));
    flagon_json_key(j, "form");
    flagon_json_begin_array(j);
    flagon_form_field f;
    for (size_t i = 0; flagon_form_at(req, i, &f); i++) {
        flagon_json_begin_object(j);
        flagon_json_put_string(j, "name", f.name);
        flagon_json_put_string(j, "value", f.value);
        flagon_json_put_bool(j, "is_file", f.is_file);
        if (f.is_file) {
            flagon_json_put_string(j, "filename", f.filename);
            flagon_json_put_string(j, "content_type", f.content_type);
            flagon_json_key(j, "data");
            flagon_json_string_n(j, (const char *)f.data, f.data_len);
        }
        flagon_json_end_object(j);
    }
    flagon_json_end_array(j);
    flagon_json_put_bool(j, "has_upload", flagon_form_file(req, "upload", &f));
    flagon_json_end_object(j);
    flagon_response *r = flagon_json_response(j);
    flagon_add_header(r, "x-handled-by", "c");
    return flagon_set_status(r, flagon_is_method(req, "PUT") ? 201 : 200);
}

/* The body parsed and written back: the reader and the writer round-trip. */
static flagon_response *json(const flagon_request *req) {
    flagon_json_value *v;
    FLAGON_TRY(flagon_json_body(req, &v));
    flagon_json *j = flagon_json_new();
    flagon_json_value_write(j, v);
    flagon_json_value_free(v);
    return flagon_json_response(j);
}

flagon_response *flagon_handle(const flagon_request *req) {
    if (flagon_route_is(req, "kv"))
        return kv();
    if (flagon_route_is(req, "crypto"))
        return crypto();
    if (flagon_route_is(req, "sql"))
        return sql();
    if (flagon_route_is(req, "config"))
        return config();
    if (flagon_route_is(req, "session"))
        return session();
    if (flagon_route_is(req, "fetch"))
        return fetch(req);
    if (flagon_route_is(req, "inspect"))
        return inspect(req);
    if (flagon_route_is(req, "json"))
        return json(req);
    if (flagon_route_is(req, "misuse")) {
        /* A value without a key inside an object: the writer refuses, the response is a 500. */
        flagon_json *j = flagon_json_new();
        flagon_json_begin_object(j);
        flagon_json_int(j, 1);
        flagon_json_end_object(j);
        return flagon_json_response(j);
    }
    if (flagon_route_is(req, "fail")) {
        /* The C library's stdio goes through the preview1 adapter to the host's log. */
        fprintf(stderr, "about to fail on purpose\n");
        return flagon_error(503, "deliberate failure %d", 42);
    }
    return flagon_response_new(404);
}
