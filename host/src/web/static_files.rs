//! `[[static]]` mounts: files the host serves straight from a directory under a URL prefix,
//! without running any component.
//!
//! Confinement does not rest on path checks alone. Each mount holds a `cap_std::fs::Dir` opened
//! once at startup, and every lookup is resolved beneath that handle, so `..`, absolute paths
//! and symlinks that lead outside the directory fail inside cap-std whatever the path looks
//! like. The request path is still checked lexically first (decoded exactly once, no dot
//! segments, no dotfiles, no backslashes, no control characters) so that hostile paths are
//! refused before they reach the file system and `.env` or `.git` are never published.

use std::io::{self, Seek};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cap_fs_ext::OpenOptionsSyncExt;
use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use tokio::sync::Semaphore;

use crate::http::Body;
use percent_encoding::percent_decode_str;

/// Largest file served: 64 MiB. Files are streamed in chunks (a response holds one chunk in
/// memory, whatever the file's size), so this is a policy for app assets rather than a memory
/// bound: larger downloads belong on a CDN or a file server.
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// Files streamed at once, across all mounts. Each holds an open file and a chunk buffer until
/// its client has it (or its connection ends: see `[server] write_timeout`); further requests
/// wait for a slot.
const MAX_CONCURRENT_FILES: usize = 256;

/// `no-cache` lets browsers keep a copy but makes them revalidate it on every use, which the
/// strong `ETag` turns into a cheap 304. Stale assets after a deploy are worse than a round trip.
const DEFAULT_CACHE_CONTROL: &str = "no-cache";

#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("invalid `[[static]]` `url` `{prefix}`: {message}\n  help: {help}")]
    Prefix {
        prefix: String,
        message: &'static str,
        help: String,
    },
    #[error(
        "invalid `[[static]]` `cache_control` `{value}` for `{prefix}`: {message}\n  help: omit `cache_control` for the default `no-cache`, or write a value such as `public, max-age=86400`"
    )]
    CacheControl {
        prefix: String,
        value: String,
        message: &'static str,
    },
    #[error(
        "cannot open `[[static]]` directory `{}` for `{prefix}`: {source}\n  help: `dir` is relative to the manifest; create the directory or fix the path",
        path.display()
    )]
    OpenDir {
        prefix: String,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "`[[static]]` directory `{}` for `{prefix}` is not a directory\n  help: point `dir` at a directory; single files cannot be mounted",
        path.display()
    )]
    NotADirectory { prefix: String, path: PathBuf },
    #[error(
        "two `[[static]]` mounts use the url `{prefix}`\n  help: give each mount its own `url`, or put the files in one directory"
    )]
    DuplicatePrefix { prefix: String },
    #[error(
        "static file `{}` is {len} bytes, over the {MAX_FILE_SIZE}-byte limit, so it is not served\n  help: serve large files from a CDN or a dedicated file server",
        path.display()
    )]
    TooLarge { path: PathBuf, len: u64 },
    #[error("cannot read static file `{}`: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
}

/// One `[[static]]` mount: a URL prefix and the directory handle everything under it is
/// resolved beneath.
#[derive(Debug)]
pub struct StaticMount {
    prefix: String,
    /// Shared with the blocking tasks that do the file IO; an `Arc` is cheaper than
    /// `try_clone`, which would duplicate the descriptor on every request.
    dir: Arc<Dir>,
    cache_control: HeaderValue,
    /// The directory as configured, only for messages; never used to open anything.
    root: PathBuf,
}

impl StaticMount {
    /// Opens the mount's directory once, so that a missing directory is a startup error
    /// rather than a stream of 404s, and so that later lookups are confined to this handle.
    ///
    /// `prefix` must start with `/` and not end with `/` (unless it is exactly `/`), and may
    /// only contain characters that need no percent-encoding: it is matched against the raw
    /// request path, so an encoded form could never match.
    pub fn open(
        prefix: &str,
        dir: &Path,
        cache_control: Option<&str>,
    ) -> Result<Self, StaticError> {
        validate_prefix(prefix)?;
        let cache_control = match cache_control {
            None => HeaderValue::from_static(DEFAULT_CACHE_CONTROL),
            Some(value) => parse_cache_control(prefix, value)?,
        };
        let open_error = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotADirectory {
                StaticError::NotADirectory {
                    prefix: prefix.to_owned(),
                    path: dir.to_path_buf(),
                }
            } else {
                StaticError::OpenDir {
                    prefix: prefix.to_owned(),
                    path: dir.to_path_buf(),
                    source,
                }
            }
        };
        let handle = Dir::open_ambient_dir(dir, ambient_authority()).map_err(open_error)?;
        // Platforms differ in whether opening a file as a directory fails; check explicitly.
        if !handle.dir_metadata().map_err(open_error)?.is_dir() {
            return Err(StaticError::NotADirectory {
                prefix: prefix.to_owned(),
                path: dir.to_path_buf(),
            });
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            dir: Arc::new(handle),
            cache_control,
            root: dir.to_path_buf(),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The directory as configured, for messages.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The rest of `raw_path` after this mount's prefix, if the prefix matches at a segment
    /// boundary. The rest is empty or starts with `/`.
    fn strip<'a>(&self, raw_path: &'a str) -> Option<&'a str> {
        if self.prefix == "/" {
            return raw_path.starts_with('/').then_some(raw_path);
        }
        let rest = raw_path.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Serves `rest` (the raw, still percent-encoded path after the prefix, as returned by
    /// [`StaticFiles::find`]: empty or starting with `/`).
    ///
    /// Only regular files are served: no directory listings and no `index.html`, so a mount
    /// never reveals more than the exact names a client already knows.
    pub async fn serve(&self, method: &Method, rest: &str, headers: &HeaderMap) -> Served {
        if method != Method::GET && method != Method::HEAD {
            return Served::MethodNotAllowed;
        }
        let rel = match relative_path(rest) {
            Ok(rel) => rel,
            Err(Refusal::BadRequest) => return Served::BadRequest,
            Err(Refusal::NotFound) => return Served::NotFound,
        };
        let conditions = Conditions::from_headers(headers);
        let head = method == Method::HEAD;
        let dir = Arc::clone(&self.dir);
        let task_rel = rel.clone();
        static SLOTS: std::sync::LazyLock<Arc<Semaphore>> =
            std::sync::LazyLock::new(|| Arc::new(Semaphore::new(MAX_CONCURRENT_FILES)));
        let Ok(slot) = SLOTS.clone().acquire_owned().await else {
            return Served::NotFound;
        };
        let loaded =
            tokio::task::spawn_blocking(move || load(&dir, &task_rel, &conditions, head)).await;
        let path = || self.root.join(&rel);
        match loaded {
            Err(join) => Served::Unservable(StaticError::Read {
                path: path(),
                source: io::Error::other(format!("the file-reading task failed: {join}")),
            }),
            Ok(Loaded::Missing) => Served::NotFound,
            Ok(Loaded::TooLarge(len)) => {
                Served::Unservable(StaticError::TooLarge { path: path(), len })
            }
            Ok(Loaded::Failed(source)) => Served::Unservable(StaticError::Read {
                path: path(),
                source,
            }),
            Ok(Loaded::NotModified(validators)) => {
                let mut response = Response::new(Body::default());
                *response.status_mut() = StatusCode::NOT_MODIFIED;
                self.validator_headers(response.headers_mut(), validators);
                Served::Response(response)
            }
            Ok(Loaded::Unsatisfiable(validators, len)) => {
                let mut response = Response::new(Body::default());
                *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                let headers = response.headers_mut();
                headers.insert(
                    header::CONTENT_RANGE,
                    HeaderValue::from_str(&format!("bytes */{len}"))
                        .unwrap_or_else(|_| HeaderValue::from_static("bytes */0")),
                );
                self.validator_headers(headers, validators);
                headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                Served::Response(response)
            }
            Ok(Loaded::Head(validators, len)) => {
                Served::Response(self.full_response(&rel, validators, len, Body::default()))
            }
            Ok(Loaded::Full(validators, file, len)) => {
                let body = Body::file(file, len, Some(slot));
                Served::Response(self.full_response(&rel, validators, len, body))
            }
            Ok(Loaded::Partial {
                validators,
                file,
                start,
                end,
                len,
            }) => {
                let body = Body::file(file, end - start + 1, Some(slot));
                let mut response = self.full_response(&rel, validators, end - start + 1, body);
                *response.status_mut() = StatusCode::PARTIAL_CONTENT;
                if let Ok(range) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, range);
                }
                Served::Response(response)
            }
        }
    }

    fn validator_headers(&self, headers: &mut HeaderMap, validators: Validators) {
        headers.insert(header::ETAG, validators.etag);
        if let Some(last_modified) = validators.last_modified {
            headers.insert(header::LAST_MODIFIED, last_modified);
        }
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
    }

    /// A 200; for HEAD `body` is empty but `len` is still the file's length, so both methods
    /// send the same headers.
    fn full_response(
        &self,
        rel: &Path,
        validators: Validators,
        len: u64,
        body: Body,
    ) -> Response<Body> {
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type(rel));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        self.validator_headers(headers, validators);
        // One range per request (`bytes=a-b`, `a-`, `-n`); a request for several gets the
        // whole file, as RFC 9110 allows, rather than a multipart body.
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        // The type is guessed from the extension; stop browsers from second-guessing it (for
        // example rendering an uploaded `.txt` that contains HTML as a page).
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// All `[[static]]` mounts of an app.
#[derive(Debug, Default)]
pub struct StaticFiles {
    /// Longest prefix first, so `/static/img` wins over `/static` for `/static/img/a.png`.
    mounts: Vec<StaticMount>,
}

impl StaticFiles {
    /// Refuses two mounts with the same prefix: one would silently shadow the other.
    pub fn new(mut mounts: Vec<StaticMount>) -> Result<Self, StaticError> {
        mounts.sort_by(|a, b| {
            b.prefix
                .len()
                .cmp(&a.prefix.len())
                .then(a.prefix.cmp(&b.prefix))
        });
        if let Some(pair) = mounts.windows(2).find(|w| w[0].prefix == w[1].prefix) {
            return Err(StaticError::DuplicatePrefix {
                prefix: pair[0].prefix.clone(),
            });
        }
        Ok(Self { mounts })
    }

    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    /// The mount whose prefix matches the raw (still percent-encoded) request path at a
    /// segment boundary (`/static` matches `/static/a.css` and `/static`, not `/staticfoo`),
    /// with the rest of the path after the prefix. `raw_path` is the path alone, without the
    /// query (`Uri::path()`).
    ///
    /// Matching the raw path keeps this a plain string comparison: decoding happens once, in
    /// [`StaticMount::serve`], and only on the part below the mount.
    pub fn find<'a>(&self, raw_path: &'a str) -> Option<(&StaticMount, &'a str)> {
        self.mounts
            .iter()
            .find_map(|mount| mount.strip(raw_path).map(|rest| (mount, rest)))
    }
}

/// What [`StaticMount::serve`] decided.
#[derive(Debug)]
pub enum Served {
    /// A 200 (with the body, or empty for HEAD), a 206 for a range, a 304 or a 416.
    Response(Response<Body>),
    NotFound,
    /// Malformed percent-encoding, invalid UTF-8, NUL or other control characters.
    BadRequest,
    /// Neither GET nor HEAD; the caller adds `Allow: GET, HEAD`.
    MethodNotAllowed,
    /// The file exists but cannot be served (larger than [`MAX_FILE_SIZE`], or reading it
    /// failed). Answer as [`Served::NotFound`] and log the error: only the operator can fix it,
    /// and the client learns nothing useful from the difference.
    Unservable(StaticError),
}

fn validate_prefix(prefix: &str) -> Result<(), StaticError> {
    let invalid = |message: &'static str, help: String| StaticError::Prefix {
        prefix: prefix.to_owned(),
        message,
        help,
    };
    if !prefix.starts_with('/') {
        return Err(invalid(
            "must start with `/`",
            format!("write `url = \"/{prefix}\"`"),
        ));
    }
    if prefix == "/" {
        return Ok(());
    }
    if prefix.ends_with('/') {
        let trimmed = prefix.trim_end_matches('/');
        let fixed = if trimmed.is_empty() { "/" } else { trimmed };
        return Err(invalid(
            "must not end with `/`",
            format!("write `url = \"{fixed}\"`; it still matches everything below it"),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/".contains(c);
    if !prefix.chars().all(allowed) {
        return Err(invalid(
            "may only contain characters that need no percent-encoding",
            "use letters, digits, `/` and `-._~`; the prefix is matched against the raw request path"
                .to_owned(),
        ));
    }
    for segment in prefix[1..].split('/') {
        if segment.is_empty() {
            return Err(invalid(
                "has an empty segment (`//`)",
                "separate segments with a single `/`".to_owned(),
            ));
        }
        if segment == "." || segment == ".." {
            return Err(invalid(
                "has a `.` or `..` segment",
                "write the prefix as clients see it, without dot segments".to_owned(),
            ));
        }
    }
    Ok(())
}

fn parse_cache_control(prefix: &str, value: &str) -> Result<HeaderValue, StaticError> {
    let invalid = |message| StaticError::CacheControl {
        prefix: prefix.to_owned(),
        value: value.to_owned(),
        message,
    };
    if value.trim().is_empty() {
        return Err(invalid("is empty"));
    }
    HeaderValue::from_str(value).map_err(|_| invalid("is not a valid header value"))
}

#[derive(Debug, PartialEq)]
enum Refusal {
    BadRequest,
    NotFound,
}

/// The file a request path below a mount names (`/css/app.css` -> `css/app.css`), as a relative
/// path of plain segments, or `None` when it is refused. What `serve` uses; public for fuzzing.
pub fn decode_request_path(rest: &str) -> Option<PathBuf> {
    relative_path(rest).ok()
}

/// Turns the raw rest of the path into a relative path of plain segments, or refuses it.
///
/// Decoding happens exactly once, and every check runs on the decoded form, so encoded dots,
/// slashes and backslashes get no second chance (`%252e` is the literal name `%2e`).
/// Requiring UTF-8 refuses overlong encodings such as `%c0%ae`.
fn relative_path(rest: &str) -> Result<PathBuf, Refusal> {
    let Some(encoded) = rest.strip_prefix('/') else {
        return Err(Refusal::NotFound);
    };
    // `percent_decode_str` passes a stray `%` through unchanged; refuse it instead, so there is
    // only one reading of the path.
    let mut bytes = encoded.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'%' {
            let hex = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_hexdigit());
            if !hex(bytes.next()) || !hex(bytes.next()) {
                return Err(Refusal::BadRequest);
            }
        }
    }
    let decoded: Vec<u8> = percent_decode_str(encoded).collect();
    let decoded = String::from_utf8(decoded).map_err(|_| Refusal::BadRequest)?;
    if decoded.chars().any(char::is_control) {
        return Err(Refusal::BadRequest);
    }
    if decoded.is_empty() || decoded.contains('\\') {
        return Err(Refusal::NotFound);
    }
    // Empty segments (`//`, trailing `/`) would make a leading one absolute; any segment
    // starting with `.` is `.`, `..` or a dotfile, none of which is ever served.
    if decoded
        .split('/')
        .any(|segment| segment.is_empty() || segment.starts_with('.'))
    {
        return Err(Refusal::NotFound);
    }
    let path = PathBuf::from(decoded);
    // Belt and braces for platforms whose paths have more shapes (e.g. `C:` prefixes).
    if !path
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
    {
        return Err(Refusal::NotFound);
    }
    Ok(path)
}

/// The request's cache validators, owned so they can move into the blocking task.
#[derive(Debug, Default)]
struct Conditions {
    /// All `If-None-Match` values joined with commas.
    if_none_match: Option<Vec<u8>>,
    if_modified_since: Option<SystemTime>,
    /// `Range`, when it asks for one range of bytes.
    range: Option<ByteRange>,
    /// `If-Range`: send the range only if the file is still this one.
    if_range: Option<Vec<u8>>,
}

/// One range of a `Range: bytes=...` header, before the file's length is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// `a-b` or `a-`.
    From(u64, Option<u64>),
    /// `-n`: the last `n` bytes.
    Last(u64),
}

impl ByteRange {
    /// A single range of `bytes=...`; `None` for anything else (other units, several ranges,
    /// bad syntax), which means the whole file is sent.
    fn parse(value: &str) -> Option<Self> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (first, last) = spec.split_once('-')?;
        let number = |s: &str| -> Option<u64> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
        };
        match (first.trim(), last.trim()) {
            ("", n) => Some(Self::Last(number(n)?)),
            (a, "") => Some(Self::From(number(a)?, None)),
            (a, b) => {
                let (a, b) = (number(a)?, number(b)?);
                (a <= b).then_some(Self::From(a, Some(b)))
            }
        }
    }

    /// The first and last byte of this range in a file of `len` bytes; `None` when it is not
    /// satisfiable (416).
    fn resolve(self, len: u64) -> Option<(u64, u64)> {
        match self {
            Self::From(start, _) if start >= len => None,
            Self::From(start, end) => Some((start, end.map_or(len - 1, |e| e.min(len - 1)))),
            Self::Last(0) => None,
            Self::Last(_) if len == 0 => None,
            Self::Last(n) => Some((len.saturating_sub(n), len - 1)),
        }
    }
}

impl Conditions {
    fn from_headers(headers: &HeaderMap) -> Self {
        let mut if_none_match: Option<Vec<u8>> = None;
        for value in headers.get_all(header::IF_NONE_MATCH) {
            let list = if_none_match.get_or_insert_with(Vec::new);
            if !list.is_empty() {
                list.push(b',');
            }
            list.extend_from_slice(value.as_bytes());
        }
        // RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is present, and
        // when it is not a valid date.
        let if_modified_since = if if_none_match.is_some() {
            None
        } else {
            headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| httpdate::parse_http_date(value).ok())
        };
        let range = headers
            .get(header::RANGE)
            .and_then(|value| value.to_str().ok())
            .and_then(ByteRange::parse);
        let if_range = headers
            .get(header::IF_RANGE)
            .map(|value| value.as_bytes().to_vec());
        Self {
            if_none_match,
            if_modified_since,
            range,
            if_range,
        }
    }

    /// The range to send, if any: `If-Range` must name this file exactly (its strong `ETag`,
    /// or its `Last-Modified` date), else the whole file goes out.
    fn range(&self, validators: &Validators) -> Option<ByteRange> {
        let range = self.range?;
        match &self.if_range {
            None => Some(range),
            Some(tag) if tag.as_slice() == validators.etag.as_bytes() => Some(range),
            Some(date) => {
                let same = validators
                    .last_modified
                    .as_ref()
                    .is_some_and(|lm| lm.as_bytes() == date.as_slice());
                same.then_some(range)
            }
        }
    }

    fn not_modified(&self, validators: &Validators) -> bool {
        if let Some(list) = &self.if_none_match {
            return etag_list_matches(list, &validators.opaque);
        }
        match (self.if_modified_since, validators.mtime) {
            (Some(since), Some(mtime)) => since
                .duration_since(UNIX_EPOCH)
                .is_ok_and(|since| mtime.as_secs() <= since.as_secs()),
            _ => false,
        }
    }
}

/// Whether an `If-None-Match` list names `opaque` (our tag without quotes). Comparison is weak,
/// as RFC 9110 requires for `If-None-Match`: a `W/` prefix is ignored. An unparsable remainder
/// matches nothing, which at worst costs a full response.
fn etag_list_matches(mut list: &[u8], opaque: &str) -> bool {
    loop {
        while let [b' ' | b'\t' | b',', tail @ ..] = list {
            list = tail;
        }
        if list.is_empty() {
            return false;
        }
        if list.starts_with(b"*") {
            // `*` matches any current representation, and the file exists.
            return true;
        }
        if let Some(tail) = list.strip_prefix(b"W/") {
            list = tail;
        }
        let Some(quoted) = list.strip_prefix(b"\"") else {
            return false;
        };
        let Some(end) = quoted.iter().position(|&b| b == b'"') else {
            return false;
        };
        let (tag, tail) = quoted.split_at(end);
        if tag == opaque.as_bytes() {
            return true;
        }
        list = tail.get(1..).unwrap_or_default();
    }
}

/// A file's validators: a strong `ETag` from length and modification time (no hashing, so
/// conditional requests never read the file), and `Last-Modified` when the platform has it.
#[derive(Debug)]
struct Validators {
    opaque: String,
    etag: HeaderValue,
    last_modified: Option<HeaderValue>,
    /// Since the Unix epoch; `None` when unknown or before 1970.
    mtime: Option<Duration>,
}

impl Validators {
    fn new(len: u64, modified: Option<SystemTime>) -> Self {
        let mtime = modified.and_then(|time| time.duration_since(UNIX_EPOCH).ok());
        let (secs, nanos) = mtime.map_or((0, 0), |d| (d.as_secs(), d.subsec_nanos()));
        let opaque = format!("{len:x}-{secs:x}-{nanos:x}");
        // Hex digits and dashes are always a valid header value.
        let etag = HeaderValue::from_str(&format!("\"{opaque}\""))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        let last_modified = mtime.and_then(|d| {
            let time = UNIX_EPOCH.checked_add(Duration::from_secs(d.as_secs()))?;
            HeaderValue::from_str(&httpdate::fmt_http_date(time)).ok()
        });
        Self {
            opaque,
            etag,
            last_modified,
            mtime,
        }
    }
}

/// The result of the blocking part of [`StaticMount::serve`].
#[derive(Debug)]
enum Loaded {
    Missing,
    TooLarge(u64),
    Failed(io::Error),
    NotModified(Validators),
    Head(Validators, u64),
    /// The file, opened, and its length.
    Full(Validators, std::fs::File, u64),
    /// The file, positioned at `start`, for bytes `start..=end` of `len`.
    Partial {
        validators: Validators,
        file: std::fs::File,
        start: u64,
        end: u64,
        len: u64,
    },
    Unsatisfiable(Validators, u64),
}

/// Opens `rel` beneath `dir` and decides what to send: nothing, its headers, the file or a
/// range of it (read later, in chunks, by the response body). Runs on the blocking pool.
///
/// Any failure to find or open the file is `Missing`: cap-std's refusals of escaping paths,
/// permission errors and plain absence all look the same to the client.
fn load(dir: &Dir, rel: &Path, conditions: &Conditions, head: bool) -> Loaded {
    // Refuse anything but a regular file before opening it: opening a FIFO blocks until a
    // writer appears, and opening a device can have side effects.
    match dir.metadata(rel) {
        Ok(metadata) if metadata.is_file() => {}
        _ => return Loaded::Missing,
    }
    // Non-blocking, in case the file was swapped for a FIFO since the check above; it makes no
    // difference to reading regular files.
    let mut options = OpenOptions::new();
    options.read(true).nonblock(true);
    let Ok(file) = dir.open_with(rel, &options) else {
        return Loaded::Missing;
    };
    // Check the opened file itself, not the path, which may have changed in between.
    let metadata = match file.metadata() {
        Ok(metadata) => metadata,
        Err(error) => return Loaded::Failed(error),
    };
    if !metadata.is_file() {
        return Loaded::Missing;
    }
    if metadata.len() > MAX_FILE_SIZE {
        return Loaded::TooLarge(metadata.len());
    }
    let validators = Validators::new(
        metadata.len(),
        metadata.modified().ok().map(|time| time.into_std()),
    );
    if conditions.not_modified(&validators) {
        return Loaded::NotModified(validators);
    }
    let len = metadata.len();
    let range = conditions.range(&validators).map(|r| r.resolve(len));
    if head {
        return Loaded::Head(validators, len);
    }
    let mut file = file.into_std();
    match range {
        None => Loaded::Full(validators, file, len),
        Some(None) => Loaded::Unsatisfiable(validators, len),
        Some(Some((start, end))) => match file.seek(io::SeekFrom::Start(start)) {
            Ok(_) => Loaded::Partial {
                validators,
                file,
                start,
                end,
                len,
            },
            Err(error) => Loaded::Failed(error),
        },
    }
}

/// `Content-Type` from the extension. Text types get `charset=utf-8`, since without it browsers
/// guess (often Windows-1252) and mangle non-ASCII text.
fn content_type(rel: &Path) -> HeaderValue {
    let mime = mime_guess::from_path(rel).first_or_octet_stream();
    let textual = mime.type_() == mime_guess::mime::TEXT
        || mime.subtype() == "javascript"
        || mime.subtype() == mime_guess::mime::JSON
        || mime.suffix() == Some(mime_guess::mime::JSON);
    let value = if textual && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.to_string()
    };
    HeaderValue::from_str(&value)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// Whatever the raw path, an accepted one is made of plain segments only: joined to
        /// the mount's directory and read lexically, it never leaves it.
        #[test]
        fn a_decoded_static_path_never_leaves_the_mount(
            rest in "/([a-z./\\\\%:]|%2[eEfF]|%5[cC]|%00|%c0%ae|%25){0,24}"
        ) {
            if let Ok(path) = relative_path(&rest) {
                let root = Path::new("/srv/static");
                let mut depth = 0usize;
                for component in path.components() {
                    match component {
                        Component::Normal(name) => {
                            prop_assert!(!name.is_empty());
                            depth += 1;
                        }
                        other => prop_assert!(false, "{other:?} in {path:?} from {rest:?}"),
                    }
                }
                prop_assert!(depth > 0);
                prop_assert!(root.join(&path).starts_with(root));
                // `a..` is a file name like any other; only a whole `..` segment climbs.
                prop_assert!(
                    path.to_string_lossy().split('/').all(|s| s != ".." && s != "."),
                    "{path:?} from {rest:?}"
                );
            }
        }
    }

    use std::fs;
    use std::time::Duration;

    use super::*;

    const SECRET: &str = "TOP SECRET";

    /// `<tmp>/public` is mounted; `<tmp>/secret.txt` and `<tmp>/outside/` sit next to it.
    struct Fixture {
        tmp: tempfile::TempDir,
        mount: StaticMount,
    }

    impl Fixture {
        fn public(&self) -> PathBuf {
            self.tmp.path().join("public")
        }
    }

    fn fixture() -> Fixture {
        fixture_with(None)
    }

    fn fixture_with(cache_control: Option<&str>) -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let public = tmp.path().join("public");
        fs::create_dir_all(public.join("css")).unwrap();
        fs::create_dir_all(public.join("nested/deep")).unwrap();
        fs::create_dir_all(tmp.path().join("outside")).unwrap();
        fs::write(public.join("a.txt"), "hello").unwrap();
        fs::write(public.join("css/site.css"), "body{}").unwrap();
        fs::write(public.join("nested/deep/app.js"), "let x = 1;").unwrap();
        fs::write(public.join(".env"), SECRET).unwrap();
        fs::write(public.join("%2e.txt"), "literal").unwrap();
        fs::write(tmp.path().join("secret.txt"), SECRET).unwrap();
        fs::write(tmp.path().join("outside/secret.txt"), SECRET).unwrap();
        let mount = StaticMount::open("/static", &public, cache_control).unwrap();
        Fixture { tmp, mount }
    }

    async fn get(mount: &StaticMount, rest: &str, headers: &[(&str, &str)]) -> Served {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        // File bodies are streamed; collect them so the tests can look at the bytes.
        match mount.serve(&Method::GET, rest, &map).await {
            Served::Response(response) => {
                use http_body_util::BodyExt as _;
                let (parts, body) = response.into_parts();
                let bytes = body.collect().await.unwrap().to_bytes();
                Served::Response(Response::from_parts(parts, Body::new(bytes)))
            }
            other => other,
        }
    }

    fn ok(served: Served) -> Response<Body> {
        match served {
            Served::Response(response) => response,
            other => panic!("expected a response, got {other:?}"),
        }
    }

    fn header(response: &Response<Body>, name: header::HeaderName) -> &str {
        response.headers()[name].to_str().unwrap()
    }

    #[tokio::test]
    async fn single_byte_ranges_with_if_range() {
        let f = fixture();
        let full = ok(get(&f.mount, "/a.txt", &[]).await);
        let etag = header(&full, header::ETAG).to_string();
        let modified = header(&full, header::LAST_MODIFIED).to_string();
        for (range, body, content_range) in [
            ("bytes=1-3", "ell", "bytes 1-3/5"),
            ("bytes=2-", "llo", "bytes 2-4/5"),
            ("bytes=-2", "lo", "bytes 3-4/5"),
            ("bytes=-9", "hello", "bytes 0-4/5"),
            ("bytes=1-100", "ello", "bytes 1-4/5"),
            ("bytes=0-0", "h", "bytes 0-0/5"),
        ] {
            let r = ok(get(&f.mount, "/a.txt", &[("range", range)]).await);
            assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(r.body().as_ref(), body.as_bytes(), "{range}");
            assert_eq!(header(&r, header::CONTENT_RANGE), content_range, "{range}");
            assert_eq!(header(&r, header::CONTENT_LENGTH), body.len().to_string());
        }
        for range in ["bytes=5-", "bytes=9-10", "bytes=-0"] {
            let r = ok(get(&f.mount, "/a.txt", &[("range", range)]).await);
            assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(header(&r, header::CONTENT_RANGE), "bytes */5");
            assert!(r.body().is_empty());
        }
        // Several ranges, other units and bad syntax get the whole file.
        for range in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=a-b",
            "bytes=3-1",
            "bytes=--1",
        ] {
            let r = ok(get(&f.mount, "/a.txt", &[("range", range)]).await);
            assert_eq!(r.status(), StatusCode::OK, "{range}");
            assert_eq!(r.body().as_ref(), b"hello", "{range}");
        }
        // `If-Range`: the range only while the file is the one the client has.
        for (if_range, partial) in [
            (etag.as_str(), true),
            (modified.as_str(), true),
            ("\"other\"", false),
            (&format!("W/{etag}"), false),
            ("Mon, 01 Jan 2001 00:00:00 GMT", false),
        ] {
            let r = ok(get(
                &f.mount,
                "/a.txt",
                &[("range", "bytes=0-1"), ("if-range", if_range)],
            )
            .await);
            let want = if partial {
                StatusCode::PARTIAL_CONTENT
            } else {
                StatusCode::OK
            };
            assert_eq!(r.status(), want, "{if_range}");
        }
    }

    #[tokio::test]
    async fn large_files_are_streamed_in_chunks() {
        let f = fixture();
        let content: Vec<u8> = (0..(3 << 20) + 17).map(|i| (i % 251) as u8).collect();
        fs::write(f.public().join("big.bin"), &content).unwrap();
        let mut map = HeaderMap::new();
        map.insert(header::RANGE, HeaderValue::from_static("bytes=1000000-"));
        let Served::Response(r) = f.mount.serve(&Method::GET, "/big.bin", &map).await else {
            panic!("no response");
        };
        use http_body_util::BodyExt as _;
        let mut body = r.into_body();
        // The body is read chunk by chunk, never the whole file at once.
        let mut got = Vec::new();
        let mut largest = 0;
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            largest = largest.max(data.len());
            got.extend_from_slice(&data);
        }
        assert_eq!(got, content[1_000_000..]);
        assert!(largest <= 64 * 1024, "{largest}");
    }

    #[tokio::test]
    async fn serves_a_file_with_its_headers() {
        let f = fixture();
        let response = ok(get(&f.mount, "/a.txt", &[]).await);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.body().as_ref(), b"hello");
        assert_eq!(
            header(&response, header::CONTENT_TYPE),
            "text/plain; charset=utf-8"
        );
        assert_eq!(header(&response, header::CONTENT_LENGTH), "5");
        assert_eq!(header(&response, header::CACHE_CONTROL), "no-cache");
        assert_eq!(header(&response, header::ACCEPT_RANGES), "bytes");
        assert_eq!(header(&response, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        let etag = header(&response, header::ETAG);
        assert!(etag.starts_with("\"5-") && etag.ends_with('"'), "{etag}");
        assert_eq!(etag.matches('-').count(), 2, "{etag}");
        let modified = fs::metadata(f.public().join("a.txt"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(
            header(&response, header::LAST_MODIFIED),
            httpdate::fmt_http_date(modified)
        );
    }

    #[tokio::test]
    async fn serves_nested_files_and_configured_cache_control() {
        let f = fixture_with(Some("public, max-age=86400"));
        let response = ok(get(&f.mount, "/nested/deep/app.js", &[]).await);
        assert_eq!(response.body().as_ref(), b"let x = 1;");
        assert_eq!(
            header(&response, header::CONTENT_TYPE),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            header(&response, header::CACHE_CONTROL),
            "public, max-age=86400"
        );
        let response = ok(get(&f.mount, "/css/site.css", &[]).await);
        assert_eq!(response.body().as_ref(), b"body{}");
        assert_eq!(
            header(&response, header::CONTENT_TYPE),
            "text/css; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn decodes_once_and_serves_literal_percent_names() {
        let f = fixture();
        // `%252e` decodes once to the literal name `%2e`.
        let response = ok(get(&f.mount, "/%252e.txt", &[]).await);
        assert_eq!(response.body().as_ref(), b"literal");
        // Encoded ordinary characters and `%2f` as a separator are fine.
        let response = ok(get(&f.mount, "/%61.txt", &[]).await);
        assert_eq!(response.body().as_ref(), b"hello");
        let response = ok(get(&f.mount, "/css%2fsite.css", &[]).await);
        assert_eq!(response.body().as_ref(), b"body{}");
    }

    #[test]
    fn content_types() {
        let ct = |name: &str| content_type(Path::new(name)).to_str().unwrap().to_owned();
        assert_eq!(ct("a.json"), "application/json; charset=utf-8");
        assert_eq!(ct("a.mjs"), "application/javascript; charset=utf-8");
        assert_eq!(ct("a.html"), "text/html; charset=utf-8");
        assert_eq!(ct("a.png"), "image/png");
        assert_eq!(ct("a.wasm"), "application/wasm");
        assert_eq!(ct("a.unknownext"), "application/octet-stream");
        assert_eq!(ct("noext"), "application/octet-stream");
    }

    #[tokio::test]
    async fn if_none_match_gives_304() {
        let f = fixture();
        let first = ok(get(&f.mount, "/a.txt", &[]).await);
        let etag = header(&first, header::ETAG).to_owned();
        let weak = format!("W/{etag}");
        let list = format!("\"nope\", W/\"other\",{etag}");
        for value in [etag.as_str(), weak.as_str(), list.as_str(), "*"] {
            let response = ok(get(&f.mount, "/a.txt", &[("if-none-match", value)]).await);
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{value}");
            assert!(response.body().is_empty());
            assert_eq!(header(&response, header::ETAG), etag);
            assert_eq!(
                header(&response, header::LAST_MODIFIED),
                header(&first, header::LAST_MODIFIED)
            );
            assert_eq!(header(&response, header::CACHE_CONTROL), "no-cache");
            assert!(response.headers().get(header::CONTENT_LENGTH).is_none());
        }
        // Two header lines form one list.
        let response = ok(get(
            &f.mount,
            "/a.txt",
            &[("if-none-match", "\"nope\""), ("if-none-match", &etag)],
        )
        .await);
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
        for value in ["\"nope\"", "garbage", "\"unterminated", ""] {
            let response = ok(get(&f.mount, "/a.txt", &[("if-none-match", value)]).await);
            assert_eq!(response.status(), StatusCode::OK, "{value}");
            assert_eq!(response.body().as_ref(), b"hello");
        }
    }

    #[tokio::test]
    async fn if_modified_since() {
        let f = fixture();
        let mtime = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        fs::File::options()
            .write(true)
            .open(f.public().join("a.txt"))
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let at = |secs: u64| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        let status = |served: Served| ok(served).status();
        for (since, expected) in [
            (at(1_700_000_000), StatusCode::NOT_MODIFIED),
            (at(1_700_000_100), StatusCode::NOT_MODIFIED),
            (at(1_699_999_999), StatusCode::OK),
            ("not a date".to_owned(), StatusCode::OK),
        ] {
            let served = get(&f.mount, "/a.txt", &[("if-modified-since", &since)]).await;
            assert_eq!(status(served), expected, "{since}");
        }
        // If-None-Match, even a non-matching one, overrides If-Modified-Since.
        let served = get(
            &f.mount,
            "/a.txt",
            &[
                ("if-none-match", "\"nope\""),
                ("if-modified-since", &at(1_700_000_100)),
            ],
        )
        .await;
        assert_eq!(status(served), StatusCode::OK);
        let response = ok(get(&f.mount, "/a.txt", &[]).await);
        assert_eq!(
            header(&response, header::LAST_MODIFIED),
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(
            header(&response, header::ETAG),
            format!("\"5-{:x}-{:x}\"", 1_700_000_000u64, 123_456_789u32)
        );
    }

    #[tokio::test]
    async fn head_has_the_get_headers_and_no_body() {
        let f = fixture();
        let got = ok(get(&f.mount, "/a.txt", &[]).await);
        let head = ok(f
            .mount
            .serve(&Method::HEAD, "/a.txt", &HeaderMap::new())
            .await);
        assert_eq!(head.status(), StatusCode::OK);
        assert!(head.body().is_empty());
        assert_eq!(head.headers(), got.headers());
        assert_eq!(header(&head, header::CONTENT_LENGTH), "5");
    }

    #[tokio::test]
    async fn other_methods_are_not_allowed() {
        let f = fixture();
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let served = f.mount.serve(&method, "/a.txt", &HeaderMap::new()).await;
            assert!(matches!(served, Served::MethodNotAllowed), "{method}");
        }
    }

    /// Must be refused, never the content of the secret outside the mount.
    async fn assert_refused(f: &Fixture, rest: &str) {
        for method in [Method::GET, Method::HEAD] {
            match f.mount.serve(&method, rest, &HeaderMap::new()).await {
                Served::NotFound | Served::BadRequest => {}
                Served::Response(response) => panic!(
                    "`{rest}` was served: {} {:?}",
                    response.status(),
                    response.body()
                ),
                other => panic!("`{rest}`: unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn traversal_corpus_is_refused() {
        let f = fixture();
        for rest in [
            "/../secret.txt",
            "/..%2fsecret.txt",
            "/..%2Fsecret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/.%2e/secret.txt",
            "/%2e%2e%2fsecret.txt",
            "/%252e%252e%252fsecret.txt",
            "/..%5csecret.txt",
            "/..\\secret.txt",
            "/%c0%ae%c0%ae/secret.txt",
            "/%c0%ae%c0%ae%c0%afsecret.txt",
            "/css/../../secret.txt",
            "/css/%2e%2e/%2e%2e/secret.txt",
            "/%00",
            "/a.txt%00.png",
            "/a.txt%0a",
            "/a.txt%7f",
            "//etc/passwd",
            "/%2fetc%2fpasswd",
            "/%2Fetc%2Fpasswd",
            "/.env",
            "/%2eenv",
            "/css/.",
            "/.",
            "/..",
            "",
            "/",
            "/css",
            "/css/",
            "/css//site.css",
            "/%",
            "/%zz",
            "/a.txt%2",
            "/%ff",
            "a.txt",
        ] {
            assert_refused(&f, rest).await;
        }
    }

    #[tokio::test]
    async fn refusal_kinds() {
        assert_eq!(relative_path("/%00"), Err(Refusal::BadRequest));
        assert_eq!(relative_path("/a%zz"), Err(Refusal::BadRequest));
        assert_eq!(relative_path("/%c0%ae"), Err(Refusal::BadRequest));
        assert_eq!(relative_path("/a%0d%0ab"), Err(Refusal::BadRequest));
        assert_eq!(relative_path("/../a"), Err(Refusal::NotFound));
        assert_eq!(relative_path("/a\\b"), Err(Refusal::NotFound));
        assert_eq!(relative_path("//etc/passwd"), Err(Refusal::NotFound));
        assert_eq!(relative_path("/a/b c"), Ok(PathBuf::from("a/b c")));
        assert_eq!(relative_path("/caf%C3%A9"), Ok(PathBuf::from("café")));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlinks_are_confined_to_the_mount() {
        use std::os::unix::fs::symlink;
        let f = fixture();
        let public = f.public();
        symlink("../secret.txt", public.join("relative-out.txt")).unwrap();
        symlink(
            f.tmp.path().join("secret.txt"),
            public.join("absolute-out.txt"),
        )
        .unwrap();
        symlink("../outside", public.join("dir-out")).unwrap();
        symlink(f.tmp.path().join("outside"), public.join("abs-dir-out")).unwrap();
        symlink("a.txt", public.join("inside.txt")).unwrap();
        symlink("css", public.join("inside-dir")).unwrap();
        symlink("nested/deep/../../a.txt", public.join("winding.txt")).unwrap();
        for rest in [
            "/relative-out.txt",
            "/absolute-out.txt",
            "/dir-out/secret.txt",
            "/abs-dir-out/secret.txt",
        ] {
            assert_refused(&f, rest).await;
        }
        let response = ok(get(&f.mount, "/inside.txt", &[]).await);
        assert_eq!(response.body().as_ref(), b"hello");
        let response = ok(get(&f.mount, "/inside-dir/site.css", &[]).await);
        assert_eq!(response.body().as_ref(), b"body{}");
        let response = ok(get(&f.mount, "/winding.txt", &[]).await);
        assert_eq!(response.body().as_ref(), b"hello");
    }

    /// The directory handle confines lookups even when the lexical checks are bypassed.
    #[test]
    fn the_directory_handle_confines_unchecked_paths() {
        let f = fixture();
        let conditions = Conditions::default();
        #[cfg(unix)]
        {
            use std::os::unix::fs::symlink;
            symlink("../secret.txt", f.public().join("out.txt")).unwrap();
            symlink(f.tmp.path().join("outside"), f.public().join("out-dir")).unwrap();
        }
        let secret = f.tmp.path().join("secret.txt");
        for rel in [
            Path::new("../secret.txt"),
            Path::new("css/../../secret.txt"),
            secret.as_path(),
            Path::new("/etc/passwd"),
            Path::new("out.txt"),
            Path::new("out-dir/secret.txt"),
        ] {
            let loaded = load(&f.mount.dir, rel, &conditions, false);
            assert!(matches!(loaded, Loaded::Missing), "{rel:?}: {loaded:?}");
        }
        let loaded = load(&f.mount.dir, Path::new("a.txt"), &conditions, false);
        assert!(matches!(loaded, Loaded::Full(_, _, 5)), "{loaded:?}");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn special_files_are_not_served() {
        let f = fixture();
        let public = f.public();
        let status = std::process::Command::new("mkfifo")
            .arg(public.join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let _listener = std::os::unix::net::UnixListener::bind(public.join("sock")).unwrap();
        for rest in ["/pipe", "/sock"] {
            // A FIFO must be refused, not block the blocking pool waiting for a writer.
            tokio::time::timeout(Duration::from_secs(10), assert_refused(&f, rest))
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn files_over_the_cap_are_unservable() {
        let f = fixture();
        let big = fs::File::create(f.public().join("big.bin")).unwrap();
        big.set_len(MAX_FILE_SIZE + 1).unwrap();
        match get(&f.mount, "/big.bin", &[]).await {
            Served::Unservable(StaticError::TooLarge { len, path }) => {
                assert_eq!(len, MAX_FILE_SIZE + 1);
                assert_eq!(path, f.public().join("big.bin"));
            }
            other => panic!("expected `TooLarge`, got {other:?}"),
        }
        big.set_len(MAX_FILE_SIZE).unwrap();
        let head = ok(f
            .mount
            .serve(&Method::HEAD, "/big.bin", &HeaderMap::new())
            .await);
        assert_eq!(
            header(&head, header::CONTENT_LENGTH),
            MAX_FILE_SIZE.to_string()
        );
    }

    #[test]
    fn open_validates_the_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        for prefix in ["/", "/static", "/a/b", "/.well-known", "/assets-v1.2"] {
            StaticMount::open(prefix, tmp.path(), None).unwrap();
        }
        for (prefix, fragment) in [
            ("", "must start with `/`"),
            ("static", "url = \"/static\""),
            ("/static/", "url = \"/static\""),
            ("//", "url = \"/\""),
            ("/a//b", "empty segment"),
            ("/a/../b", "`..`"),
            ("/a/./b", "`.`"),
            ("/a b", "percent-encoding"),
            ("/a%20b", "percent-encoding"),
            ("/a?b", "percent-encoding"),
            ("/café", "percent-encoding"),
        ] {
            let error = StaticMount::open(prefix, tmp.path(), None)
                .unwrap_err()
                .to_string();
            assert!(error.contains(fragment), "{prefix}: {error}");
        }
    }

    #[test]
    fn open_reports_bad_directories_and_cache_control() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("missing");
        let error = StaticMount::open("/s", &missing, None).unwrap_err();
        assert!(matches!(error, StaticError::OpenDir { .. }), "{error:?}");
        assert!(error.to_string().contains(&missing.display().to_string()));
        let file = tmp.path().join("file.txt");
        fs::write(&file, "x").unwrap();
        let error = StaticMount::open("/s", &file, None).unwrap_err();
        assert!(
            matches!(error, StaticError::NotADirectory { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains(&file.display().to_string()));
        for value in ["", "  ", "a\nb"] {
            let error = StaticMount::open("/s", tmp.path(), Some(value)).unwrap_err();
            assert!(
                matches!(error, StaticError::CacheControl { .. }),
                "{error:?}"
            );
        }
    }

    fn mounts(prefixes: &[&str]) -> (tempfile::TempDir, StaticFiles) {
        let tmp = tempfile::tempdir().unwrap();
        let mounts = prefixes
            .iter()
            .map(|prefix| StaticMount::open(prefix, tmp.path(), None).unwrap())
            .collect();
        (tmp, StaticFiles::new(mounts).unwrap())
    }

    #[test]
    fn find_matches_at_segment_boundaries() {
        let (_tmp, files) = mounts(&["/static", "/static/img"]);
        assert!(!files.is_empty());
        let found = |path| files.find(path).map(|(m, rest)| (m.prefix(), rest));
        assert_eq!(found("/static/a.css"), Some(("/static", "/a.css")));
        assert_eq!(found("/static"), Some(("/static", "")));
        assert_eq!(found("/static/"), Some(("/static", "/")));
        assert_eq!(found("/static/img/a.png"), Some(("/static/img", "/a.png")));
        assert_eq!(
            found("/static/imgx/a.png"),
            Some(("/static", "/imgx/a.png"))
        );
        assert_eq!(found("/static/%2e%2e/x"), Some(("/static", "/%2e%2e/x")));
        assert_eq!(found("/staticfoo"), None);
        assert_eq!(found("/staticfoo/a.css"), None);
        assert_eq!(found("/Static/a.css"), None);
        assert_eq!(found("/%73tatic/a.css"), None);
        assert_eq!(found("static/a.css"), None);
        assert_eq!(found("/"), None);
        assert_eq!(found(""), None);
    }

    #[test]
    fn root_mount_catches_the_rest() {
        let (_tmp, files) = mounts(&["/", "/static"]);
        let found = |path| files.find(path).map(|(m, rest)| (m.prefix(), rest));
        assert_eq!(found("/static/a.css"), Some(("/static", "/a.css")));
        assert_eq!(found("/staticfoo"), Some(("/", "/staticfoo")));
        assert_eq!(found("/"), Some(("/", "/")));
        assert_eq!(found(""), None);
    }

    #[test]
    fn empty_and_duplicate_mounts() {
        assert!(StaticFiles::new(Vec::new()).unwrap().is_empty());
        let tmp = tempfile::tempdir().unwrap();
        let a = StaticMount::open("/s", tmp.path(), None).unwrap();
        let b = StaticMount::open("/s", tmp.path(), None).unwrap();
        let error = StaticFiles::new(vec![a, b]).unwrap_err();
        assert!(matches!(error, StaticError::DuplicatePrefix { .. }));
    }

    #[tokio::test]
    async fn find_then_serve() {
        let f = fixture();
        let files = StaticFiles::new(vec![
            StaticMount::open("/static", &f.public(), None).unwrap(),
        ])
        .unwrap();
        let (mount, rest) = files.find("/static/css/site.css").unwrap();
        let response = ok(get(mount, rest, &[]).await);
        assert_eq!(response.body().as_ref(), b"body{}");
        let (mount, rest) = files.find("/static/../secret.txt").unwrap();
        assert!(matches!(get(mount, rest, &[]).await, Served::NotFound));
    }
}
