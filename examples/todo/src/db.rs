//! What every module needs from the database: the handle, ids, clocks and a few helpers for
//! writing SQL that runs unchanged on SQLite and Postgres.
//!
//! Portability rules the queries in this crate follow:
//! - placeholders are `$1`, `$2`, ... and each first appears in order (SQLite numbers `$N` by
//!   first appearance, Postgres by `N`; in order, both agree);
//! - booleans are stored as INTEGER 0/1 (SQLite has no boolean type) and bound as integers
//!   (Postgres refuses a boolean for an INTEGER column). Reading them back into a `bool` field
//!   accepts an integer or a boolean value: the SDK's row decoder maps both;
//! - timestamps are BIGINT unix seconds, ids TEXT.

use std::time::{SystemTime, UNIX_EPOCH};

use flagon_sdk::crypto;
use flagon_sdk::sql::{self, ConstraintKind, Database, SqlError};

/// The one database this app uses (`[databases.main]` in flagon.toml).
pub fn db() -> Database<'static> {
    sql::database("main")
}

/// Length of the ids of users, todos and API keys: 22 URL-safe base64 characters are 132
/// random bits, far past guessing, and short enough for a tidy URL.
const ID_LEN: usize = 22;

/// A new unguessable id. Ids appear in URLs, so sequential numbers would let anyone count the
/// users and todos; every query also checks the owner, so an id alone grants nothing.
pub fn new_id() -> String {
    let mut token = crypto::random_token();
    token.truncate(ID_LEN);
    token
}

/// Whether `s` could be an id we made: lets handlers answer 404 for junk without a query.
pub fn is_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The current time in unix seconds. WASI gives handlers a wall clock.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A boolean as the INTEGER 0/1 the schema stores.
pub fn flag(b: bool) -> i64 {
    i64::from(b)
}

/// The pattern for `LOWER(title) LIKE $n ESCAPE '\'` that finds `search` anywhere in a title,
/// ignoring case: lowercased, with LIKE's own `%` and `_` (and the escape character) escaped so
/// that a search for `50%` means the text "50%".
///
/// SQLite's LOWER folds ASCII only, so a search with non-ASCII capitals may miss on SQLite.
pub fn contains_pattern(search: &str) -> String {
    let mut pattern = String::with_capacity(search.len() + 2);
    pattern.push('%');
    for c in search.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Whether a failed statement broke a UNIQUE (or primary key) constraint.
pub fn is_unique_violation(e: &SqlError) -> bool {
    e.constraint()
        .is_some_and(|c| matches!(c.kind, ConstraintKind::Unique | ConstraintKind::PrimaryKey))
}

/// A unix time as `2025-01-31 14:05 UTC`, for pages (templates have no date filter).
pub fn display_time(ts: i64) -> String {
    let (date, h, m, _) = civil(ts);
    format!("{date} {h:02}:{m:02} UTC")
}

/// A unix time as ISO 8601 (`2025-01-31T14:05:09Z`), for `<time datetime=...>`.
pub fn iso_time(ts: i64) -> String {
    let (date, h, m, s) = civil(ts);
    format!("{date}T{h:02}:{m:02}:{s:02}Z")
}

/// Split unix seconds into a `YYYY-MM-DD` date and hour, minute, second (UTC), with Howard
/// Hinnant's days-to-civil algorithm: no date crate needed for this much.
fn civil(ts: i64) -> (String, i64, i64, i64) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        secs / 3600,
        secs % 3600 / 60,
        secs % 60,
    )
}
