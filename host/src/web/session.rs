//! Host-owned cookie sessions: the whole session lives in one cookie, encrypted and
//! authenticated with ChaCha20-Poly1305, so the server stores nothing and a client can neither
//! read nor forge it.
//!
//! Guests never see the keys or the cookie value. Per request the host calls [`Session::load`]
//! with the request's `Cookie` headers, lets the guest read and change the session through host
//! calls, then asks [`Session::set_cookie`] for a `Set-Cookie` header, which exists only when
//! the guest changed something. [`Session::accessed`] tells the host to add `Vary: Cookie` so
//! shared caches never serve one visitor's page to another.
//!
//! Cookie value: `v2.` + base64url-nopad(nonce(12) || ciphertext || tag(16)). The AEAD's
//! associated data is the full cookie name and the app's name (its audience), so a value
//! cannot be replayed under another name, nor in another app that shares the key and the
//! cookie name. The plaintext is compact JSON
//! `{"values":{..},"flashes":[[c,m],..],"csrf":"..","iat":secs,"ct":secs}`; `iat` is when the
//! cookie was written, and the cookie expires `max_age` after that (every write renews it);
//! `ct` is when the session began (its first write, or the last `rotate`), and it ends
//! `absolute_max_age` after that however active it is.
//!
//! Key rotation: [`SessionKeys`] has one primary key that encrypts and any number of fallbacks
//! that only decrypt, so a retired secret keeps old cookies valid until they are next written
//! (with the primary) or expire. No key id is stored: every key is tried, which keeps the format
//! free of hints about which secret is in use.
//!
//! CSRF tokens are bound to the session by a 32-byte secret kept inside it. Tokens handed to
//! pages are masked with a fresh one-time pad each time (as Django does), so the secret never
//! appears twice in a compressed response and BREACH cannot recover it.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::Cookie;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Shortest secret accepted: 256 bits, the size of the derived key, so the key is never weaker
/// than it looks.
pub const MIN_SECRET_LEN: usize = 32;
/// Default largest `name=value`: browsers drop cookies over 4096 bytes, so keep headroom.
pub const DEFAULT_MAX_SIZE: usize = 4000;
/// Default lifetime from the last write.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 60 * 60);
/// The longest a session lives from its start, however active: 30 days (longer than the idle
/// lifetime, as Flask's permanent sessions).
pub const DEFAULT_ABSOLUTE_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Browsers cap `Max-Age` at 400 days (RFC 6265bis), so a longer setting would silently lie.
const MAX_MAX_AGE: Duration = Duration::from_secs(400 * 24 * 60 * 60);
/// Smallest `max_size` accepted: an empty session with a CSRF secret must always fit.
const MIN_MAX_SIZE: usize = 256;
/// Largest `max_size` accepted: anything bigger is dropped by browsers.
const MAX_MAX_SIZE: usize = 4096;

/// HKDF salt and info: fixed, so the same secret always yields the same key, and versioned, so
/// a future format derives unrelated keys from the same secrets.
const KDF_LABEL: &[u8] = b"flagon session v1";
/// Marks the format of the cookie value, so a later format can be told apart.
const VALUE_PREFIX: &str = "v2.";
const TAG_LEN: usize = 16;
/// Longer cookie values are ignored without decoding: we never write one, and decrypting it
/// under every key would be work an attacker chooses.
const MAX_COOKIE_VALUE: usize = 8 * 1024;
/// At most this many cookies with the session's name are tried per request (duplicates come
/// from stale paths or domains, a handful at most); the rest are ignored.
const MAX_CANDIDATES: usize = 8;
/// A cookie written this far in the future is refused: clocks drift a little, but a much later
/// `iat` means a forged or misconfigured clock that would stretch the lifetime.
const MAX_CLOCK_SKEW: u64 = 5 * 60;
const CSRF_LEN: usize = 32;
/// A masked token is 64 bytes, 86 base64 characters; anything much longer is not ours and is
/// refused before decoding.
const MAX_CSRF_TOKEN: usize = 128;
/// Stands in for `iat` when sizing a session before it is written: ten digits, as every unix
/// time until 2286 has.
const IAT_FOR_SIZING: u64 = 9_999_999_999;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "session secret `{which}` is {len} bytes; it must be at least {MIN_SECRET_LEN} bytes\n  \
         help: generate one with `openssl rand -base64 48`"
    )]
    KeyTooShort { which: String, len: usize },
    #[error(
        "the session cookie would be {size} bytes, over the limit of {max}\n  \
         help: cookies are small; store an id in the session and keep the data in kv or a database"
    )]
    TooLarge { size: usize, max: usize },
    #[error("invalid session setting `{key}`: {message}")]
    Config { key: &'static str, message: String },
    #[error("cannot derive the session key from `{which}`")]
    KeyDerivation { which: String },
}

/// The cookie's `SameSite` attribute. `None` is deliberately absent: a session cookie sent on
/// cross-site requests would undo the CSRF defence that `Lax` gives for free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Lax,
    Strict,
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Base name, e.g. `session`; the `__Host-` prefix is added when `secure`.
    pub cookie_name: String,
    /// True by default; false only in development mode on plain http, where browsers would
    /// drop a `Secure` cookie.
    pub secure: bool,
    /// Lifetime from the last write (rolling).
    pub max_age: Duration,
    /// Lifetime from the session's start (its first write, or the last `rotate`), however
    /// often it is written.
    pub absolute_max_age: Duration,
    /// Who the cookie is for: the app's name. Bound into the AEAD, so an app never accepts
    /// another app's cookie even when both share a key and a cookie name.
    pub audience: String,
    pub same_site: SameSite,
    /// Largest `name=value` a `Set-Cookie` may carry.
    pub max_size: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            cookie_name: "session".to_owned(),
            secure: true,
            max_age: DEFAULT_MAX_AGE,
            absolute_max_age: DEFAULT_ABSOLUTE_MAX_AGE,
            audience: String::new(),
            same_site: SameSite::Lax,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

impl SessionConfig {
    /// The name on the wire. `__Host-` makes browsers insist on `Secure`, `Path=/` and no
    /// `Domain`, so a sibling subdomain or a plain-http page cannot plant or overwrite it.
    pub fn cookie_name(&self) -> String {
        if self.secure {
            format!("__Host-{}", self.cookie_name)
        } else {
            self.cookie_name.clone()
        }
    }

    /// Check the settings once at startup; the per-request functions cannot report errors and
    /// assume a valid configuration.
    pub fn validate(&self) -> Result<(), SessionError> {
        let name = &self.cookie_name;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(SessionError::Config {
                key: "cookie_name",
                message: format!(
                    "`{name}` is not a valid cookie name; use letters, digits, `-` and `_`"
                ),
            });
        }
        if has_prefix_ignore_case(name, "__Host-") || has_prefix_ignore_case(name, "__Secure-") {
            return Err(SessionError::Config {
                key: "cookie_name",
                message: format!(
                    "`{name}` must not carry a `__Host-` or `__Secure-` prefix; the host adds \
                     `__Host-` itself when cookies are secure"
                ),
            });
        }
        if self.max_age < Duration::from_secs(1) || self.max_age > MAX_MAX_AGE {
            return Err(SessionError::Config {
                key: "max_age",
                message: "must be between 1 second and 400 days (the browsers' cap)".to_owned(),
            });
        }
        if self.absolute_max_age < self.max_age || self.absolute_max_age > MAX_MAX_AGE {
            return Err(SessionError::Config {
                key: "absolute_max_age",
                message: "must be at least `max_age` and at most 400 days".to_owned(),
            });
        }
        if !(MIN_MAX_SIZE..=MAX_MAX_SIZE).contains(&self.max_size) {
            return Err(SessionError::Config {
                key: "max_size",
                message: format!(
                    "{} is outside {MIN_MAX_SIZE}..={MAX_MAX_SIZE} bytes; browsers drop larger \
                     cookies",
                    self.max_size
                ),
            });
        }
        Ok(())
    }
}

/// RFC 6265 `token` characters, the only ones safe in a cookie name.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

fn has_prefix_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// The keys that seal and open session cookies. Derived keys only: the secrets themselves are
/// not kept.
pub struct SessionKeys {
    primary: LessSafeKey,
    fallbacks: Vec<LessSafeKey>,
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("fallbacks", &self.fallbacks.len())
            .finish_non_exhaustive()
    }
}

impl SessionKeys {
    /// `primary` encrypts and decrypts; `fallbacks` (previous primaries) only decrypt, so
    /// secrets can be rotated without logging everyone out.
    pub fn new(primary: &[u8], fallbacks: &[Vec<u8>]) -> Result<Self, SessionError> {
        let primary = derive_key(primary, "primary")?;
        let fallbacks = fallbacks
            .iter()
            .enumerate()
            .map(|(i, secret)| derive_key(secret, &format!("fallback {}", i + 1)))
            .collect::<Result<_, _>>()?;
        Ok(Self { primary, fallbacks })
    }

    /// A random key for development mode: sessions work but do not survive a restart.
    pub fn ephemeral() -> Self {
        let mut secret = [0u8; MIN_SECRET_LEN];
        fill_random(&mut secret);
        Self::new(&secret, &[]).expect("a random secret of the minimum length is accepted")
    }

    /// The development-mode key of the app at `manifest`: random, made once per process, so
    /// that a reload (`--watch`, SIGHUP) keeps everyone signed in; a restart does not.
    pub fn ephemeral_for(manifest: &std::path::Path) -> Self {
        static SECRETS: std::sync::Mutex<BTreeMap<std::path::PathBuf, [u8; MIN_SECRET_LEN]>> =
            std::sync::Mutex::new(BTreeMap::new());
        let mut secrets = SECRETS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let secret = secrets.entry(manifest.to_path_buf()).or_insert_with(|| {
            let mut secret = [0u8; MIN_SECRET_LEN];
            fill_random(&mut secret);
            secret
        });
        Self::new(&secret[..], &[]).expect("a random secret of the minimum length is accepted")
    }

    fn all(&self) -> impl Iterator<Item = &LessSafeKey> {
        std::iter::once(&self.primary).chain(&self.fallbacks)
    }
}

/// HKDF-SHA256 so that secrets of any length and quality (e.g. a passphrase-like string from
/// the environment) become a uniform 256-bit key.
fn derive_key(secret: &[u8], which: &str) -> Result<LessSafeKey, SessionError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(SessionError::KeyTooShort {
            which: which.to_owned(),
            len: secret.len(),
        });
    }
    let key = hkdf::Salt::new(hkdf::HKDF_SHA256, KDF_LABEL)
        .extract(secret)
        .expand(&[KDF_LABEL], &CHACHA20_POLY1305)
        .map(UnboundKey::from)
        .map_err(|_| SessionError::KeyDerivation {
            which: which.to_owned(),
        })?;
    Ok(LessSafeKey::new(key))
}

/// The operating system's random source failing leaves no safe way to continue: a predictable
/// nonce or CSRF secret would break the guarantees silently.
fn fill_random(bytes: &mut [u8]) {
    SystemRandom::new()
        .fill(bytes)
        .expect("the operating system's random source failed");
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Serialize)]
struct PlainRef<'a> {
    values: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    flashes: &'a [(String, String)],
    #[serde(skip_serializing_if = "Option::is_none")]
    csrf: Option<String>,
    iat: u64,
    ct: u64,
}

#[derive(Deserialize)]
struct Plain {
    #[serde(default)]
    values: BTreeMap<String, String>,
    #[serde(default)]
    flashes: Vec<(String, String)>,
    #[serde(default)]
    csrf: Option<String>,
    iat: u64,
    ct: u64,
}

/// What a valid cookie holds, checked and decoded.
struct Contents {
    values: BTreeMap<String, String>,
    flashes: Vec<(String, String)>,
    csrf: Option<[u8; CSRF_LEN]>,
    created: u64,
}

/// Length of `name=v1.<base64>` for a plaintext of `plain_len` bytes, computed without
/// encrypting (the ciphertext is exactly as long as the plaintext).
fn cookie_size(name_len: usize, plain_len: usize) -> usize {
    let sealed = NONCE_LEN + plain_len + TAG_LEN;
    name_len + 1 + VALUE_PREFIX.len() + (4 * sealed).div_ceil(3)
}

/// One user's session for the length of a request.
pub struct Session {
    values: BTreeMap<String, String>,
    flashes: Vec<(String, String)>,
    csrf: Option<[u8; CSRF_LEN]>,
    /// When the session began (`ct`); `None` until its first write, and again after `rotate`.
    created: Option<u64>,
    /// From the config at load, so `set` and `flash` can refuse oversize writes up front.
    max_size: usize,
    name_len: usize,
    accessed: bool,
    modified: bool,
}

/// Values and the CSRF secret stay out of logs; only their shape is shown.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("flashes", &self.flashes.len())
            .field("csrf", &self.csrf.is_some())
            .field("accessed", &self.accessed)
            .field("modified", &self.modified)
            .finish()
    }
}

/// An empty session sized for the default configuration.
impl Default for Session {
    fn default() -> Self {
        Self::new(&SessionConfig::default())
    }
}

impl Session {
    /// An empty session, as for a visitor without a valid cookie.
    pub fn new(cfg: &SessionConfig) -> Self {
        Self::empty(cfg, cfg.cookie_name().len())
    }

    fn empty(cfg: &SessionConfig, name_len: usize) -> Self {
        Self {
            values: BTreeMap::new(),
            flashes: Vec::new(),
            csrf: None,
            created: None,
            max_size: cfg.max_size,
            name_len,
            accessed: false,
            modified: false,
        }
    }

    /// Load the session from the request's raw `Cookie` header values. Never fails: a missing,
    /// tampered, expired or undecryptable cookie gives an empty session, the same thing a new
    /// visitor gets, so a client learns nothing from how its cookie was rejected.
    pub fn load<'h>(
        keys: &SessionKeys,
        cfg: &SessionConfig,
        cookie_headers: impl IntoIterator<Item = &'h [u8]>,
        now: SystemTime,
    ) -> Session {
        let name = cfg.cookie_name();
        let mut session = Session::empty(cfg, name.len());
        let now = unix_secs(now);
        let mut tried = 0;
        for header in cookie_headers {
            // Other cookies may carry non-UTF-8 bytes; ours is ASCII, so replacing them loses
            // nothing we could accept.
            let text = String::from_utf8_lossy(header);
            for cookie in Cookie::split_parse(text.as_ref()).flatten() {
                if cookie.name() != name {
                    continue;
                }
                if tried == MAX_CANDIDATES {
                    return session;
                }
                tried += 1;
                if let Some(contents) = open(keys, &name, cookie.value(), now, cfg) {
                    session.values = contents.values;
                    session.flashes = contents.flashes;
                    session.csrf = contents.csrf;
                    session.created = Some(contents.created);
                    return session;
                }
            }
        }
        session
    }

    pub fn get(&mut self, key: &str) -> Option<String> {
        self.accessed = true;
        self.values.get(key).cloned()
    }

    /// Refuses a write that would make the cookie larger than `max_size`, leaving the session
    /// as it was, so the guest hears about it now rather than the browser silently dropping
    /// the cookie later.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), SessionError> {
        self.accessed = true;
        let old = self.values.insert(key.to_owned(), value.to_owned());
        if let Err(e) = self.check_size() {
            match old {
                Some(old) => self.values.insert(key.to_owned(), old),
                None => self.values.remove(key),
            };
            return Err(e);
        }
        self.modified = true;
        Ok(())
    }

    pub fn remove(&mut self, key: &str) -> bool {
        self.accessed = true;
        let removed = self.values.remove(key).is_some();
        self.modified |= removed;
        removed
    }

    /// Drop all values, flashes and the CSRF secret (logout); the response deletes the cookie.
    pub fn clear(&mut self) {
        self.accessed = true;
        self.values.clear();
        self.flashes.clear();
        self.csrf = None;
        self.created = None;
        self.modified = true;
    }

    /// Replace the CSRF secret, keeping the values. Call after login (or any privilege
    /// change): tokens issued to an attacker who planted or saw the old cookie stop working.
    /// The cookie is rewritten, which also renews its issue time.
    pub fn rotate(&mut self) {
        self.accessed = true;
        let mut secret = [0u8; CSRF_LEN];
        fill_random(&mut secret);
        self.csrf = Some(secret);
        // A new privilege level is a new session: its absolute lifetime starts again.
        self.created = None;
        self.modified = true;
    }

    /// Queue a one-time message for the next page that calls [`Session::take_flashes`].
    pub fn flash(&mut self, category: &str, message: &str) -> Result<(), SessionError> {
        self.accessed = true;
        self.flashes.push((category.to_owned(), message.to_owned()));
        if let Err(e) = self.check_size() {
            self.flashes.pop();
            return Err(e);
        }
        self.modified = true;
        Ok(())
    }

    pub fn take_flashes(&mut self) -> Vec<(String, String)> {
        self.accessed = true;
        self.modified |= !self.flashes.is_empty();
        std::mem::take(&mut self.flashes)
    }

    pub fn keys(&mut self) -> Vec<String> {
        self.accessed = true;
        self.values.keys().cloned().collect()
    }

    /// A masked CSRF token for a form or header, creating the session's secret on first use.
    /// Every call returns a different string, all of which verify.
    pub fn csrf_token(&mut self) -> String {
        self.accessed = true;
        let secret = match self.csrf {
            Some(secret) => secret,
            None => {
                let mut secret = [0u8; CSRF_LEN];
                fill_random(&mut secret);
                self.csrf = Some(secret);
                self.modified = true;
                secret
            }
        };
        let mut token = [0u8; 2 * CSRF_LEN];
        let (pad, masked) = token.split_at_mut(CSRF_LEN);
        fill_random(pad);
        for ((m, p), s) in masked.iter_mut().zip(pad.iter()).zip(secret) {
            *m = p ^ s;
        }
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Whether `token` came from [`Session::csrf_token`] on this session. Does not count as an
    /// access: verification happens on unsafe methods, whose responses are not cached.
    pub fn verify_csrf(&self, token: &str) -> bool {
        let Some(secret) = self.csrf else {
            return false;
        };
        if token.len() > MAX_CSRF_TOKEN {
            return false;
        }
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        if bytes.len() != 2 * CSRF_LEN {
            return false;
        }
        let (pad, masked) = bytes.split_at(CSRF_LEN);
        // Fold every byte's difference so the time taken does not reveal where a guess first
        // goes wrong.
        let diff = pad
            .iter()
            .zip(masked)
            .zip(secret)
            .fold(0u8, |acc, ((p, m), s)| acc | (p ^ m ^ s));
        std::hint::black_box(diff) == 0
    }

    /// True when the guest read or wrote the session, so the response depends on the cookie
    /// and the host must add `Vary: Cookie`.
    pub fn accessed(&self) -> bool {
        self.accessed
    }

    /// The `Set-Cookie` header value for the response, or `None` when nothing changed. An
    /// emptied session deletes the cookie rather than storing an empty one. Always written
    /// with the primary key, so cookies opened with a fallback migrate on their next write.
    pub fn set_cookie(
        &self,
        keys: &SessionKeys,
        cfg: &SessionConfig,
        now: SystemTime,
    ) -> Option<String> {
        if !self.modified {
            return None;
        }
        let name = cfg.cookie_name();
        let (value, max_age) = if self.is_empty() {
            (String::new(), cookie::time::Duration::ZERO)
        } else {
            let now = unix_secs(now);
            let created = self.created.unwrap_or(now);
            // The browser keeps it no longer than either lifetime allows.
            let left = created
                .saturating_add(cfg.absolute_max_age.as_secs())
                .saturating_sub(now)
                .min(cfg.max_age.as_secs());
            let plain = self.plaintext(now, created, false)?;
            let secs = i64::try_from(left).unwrap_or(i64::MAX);
            (
                seal(&keys.primary, &aad(&name, cfg), plain)?,
                cookie::time::Duration::seconds(secs),
            )
        };
        let same_site = match cfg.same_site {
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::Strict => cookie::SameSite::Strict,
        };
        // No `Domain`: the cookie stays host-only, as the `__Host-` prefix requires.
        let cookie = Cookie::build((name, value))
            .path("/")
            .max_age(max_age)
            .http_only(true)
            .same_site(same_site)
            .secure(cfg.secure)
            .build();
        Some(cookie.to_string())
    }

    fn is_empty(&self) -> bool {
        self.values.is_empty() && self.flashes.is_empty() && self.csrf.is_none()
    }

    /// Sizes the session as if it held a CSRF secret, so creating one later can never push a
    /// cookie that was accepted over the limit.
    fn check_size(&self) -> Result<(), SessionError> {
        let plain_len = self
            .plaintext(IAT_FOR_SIZING, IAT_FOR_SIZING, true)
            .map_or(usize::MAX, |p| p.len());
        let size = cookie_size(self.name_len, plain_len);
        if size > self.max_size {
            return Err(SessionError::TooLarge {
                size,
                max: self.max_size,
            });
        }
        Ok(())
    }

    fn plaintext(&self, iat: u64, ct: u64, reserve_csrf: bool) -> Option<Vec<u8>> {
        let csrf = match self.csrf {
            Some(secret) => Some(secret),
            None if reserve_csrf => Some([0u8; CSRF_LEN]),
            None => None,
        };
        serde_json::to_vec(&PlainRef {
            values: &self.values,
            flashes: &self.flashes,
            csrf: csrf.map(|c| URL_SAFE_NO_PAD.encode(c)),
            iat,
            ct,
        })
        .ok()
    }
}

/// The AEAD's associated data: the cookie's full name and the app it is for.
fn aad(name: &str, cfg: &SessionConfig) -> Vec<u8> {
    let mut aad = Vec::with_capacity(name.len() + 1 + cfg.audience.len());
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(cfg.audience.as_bytes());
    aad
}

fn seal(key: &LessSafeKey, aad: &[u8], plain: Vec<u8>) -> Option<String> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce);
    let mut sealed = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
    sealed.extend_from_slice(&nonce);
    let mut body = plain;
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut body,
    )
    .ok()?;
    sealed.extend_from_slice(&body);
    Some(format!("{VALUE_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
}

/// Decrypt and check one candidate cookie value; `None` for anything not a live session we
/// wrote under this name for this app.
fn open(
    keys: &SessionKeys,
    name: &str,
    value: &str,
    now: u64,
    cfg: &SessionConfig,
) -> Option<Contents> {
    let aad = aad(name, cfg);
    if value.len() > MAX_COOKIE_VALUE {
        return None;
    }
    let sealed = URL_SAFE_NO_PAD
        .decode(value.strip_prefix(VALUE_PREFIX)?)
        .ok()?;
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = <[u8; NONCE_LEN]>::try_from(nonce).ok()?;
    let plain = keys.all().find_map(|key| {
        let mut buf = body.to_vec();
        let plain = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_slice()),
                &mut buf,
            )
            .ok()?;
        Some(plain.to_vec())
    })?;
    let plain: Plain = serde_json::from_slice(&plain).ok()?;
    let expires = plain.iat.checked_add(cfg.max_age.as_secs())?;
    let ends = plain.ct.checked_add(cfg.absolute_max_age.as_secs())?;
    if now > expires
        || now > ends
        || plain.iat > now.saturating_add(MAX_CLOCK_SKEW)
        || plain.ct > plain.iat
    {
        return None;
    }
    // A secret of the wrong length means the cookie is not one we wrote.
    let csrf = match plain.csrf {
        None => None,
        Some(encoded) => {
            let bytes = URL_SAFE_NO_PAD.decode(encoded).ok()?;
            Some(<[u8; CSRF_LEN]>::try_from(bytes.as_slice()).ok()?)
        }
    };
    Some(Contents {
        values: plain.values,
        flashes: plain.flashes,
        csrf,
        created: plain.ct,
    })
}

/// Whether a `Set-Cookie` header a guest tried to send would touch the host's session cookie,
/// under any of the names a browser could confuse with it, so the host can drop it. A header
/// without `=` is a nameless cookie whose value browsers send back as a bare `name`, and an
/// empty name with value `session=x` comes back as `session=x`, so both are checked too.
pub fn is_session_cookie(set_cookie_value: &str, cfg: &SessionConfig) -> bool {
    let pair = set_cookie_value
        .split(';')
        .next()
        .unwrap_or(set_cookie_value);
    let (name, value) = pair.split_once('=').unwrap_or(("", pair));
    let name = name.trim();
    let name = if name.is_empty() {
        let value = value.trim();
        value.split_once('=').map_or(value, |(n, _)| n).trim()
    } else {
        name
    };
    is_session_cookie_name(name, cfg)
}

/// Whether a cookie called `name` is, or could be taken by a browser for, the host's session
/// cookie: the base name, or it behind `__Host-` or `__Secure-`, in any case.
fn is_session_cookie_name(name: &str, cfg: &SessionConfig) -> bool {
    let base = cfg.cookie_name.as_str();
    name.eq_ignore_ascii_case(base)
        || ["__Host-", "__Secure-"].iter().any(|prefix| {
            has_prefix_ignore_case(name, prefix)
                && name
                    .get(prefix.len()..)
                    .is_some_and(|rest| rest.eq_ignore_ascii_case(base))
        })
}

/// A request's `Cookie` header as guests see it: without the host's session cookie, which is
/// a bearer token no guest may read or send on (the `session` interface is the only way in).
/// A header without it is returned as it is (no copy); otherwise the other cookies keep their
/// order and spelling. `None` when nothing is left.
pub fn without_session_cookie<'a>(
    header: &'a str,
    cfg: &SessionConfig,
) -> Option<std::borrow::Cow<'a, str>> {
    let pairs = || header.split(';').map(str::trim).filter(|p| !p.is_empty());
    let is_session = |pair: &&str| {
        let name = pair.split_once('=').map_or("", |(n, _)| n).trim();
        is_session_cookie_name(name, cfg)
    };
    if !pairs().any(|p| is_session(&p)) {
        return pairs().next().is_some().then_some(header.into());
    }
    let kept: Vec<&str> = pairs().filter(|p| !is_session(p)).collect();
    (!kept.is_empty()).then(|| kept.join("; ").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-primary";
    const OLD_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-old-one";

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn keys() -> SessionKeys {
        SessionKeys::new(SECRET, &[]).unwrap()
    }

    fn cfg() -> SessionConfig {
        SessionConfig::default()
    }

    /// The `name=value` part of a `Set-Cookie`, as a browser would send it back.
    fn pair(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_owned()
    }

    fn value_of(set_cookie: &str) -> String {
        pair(set_cookie).split_once('=').unwrap().1.to_owned()
    }

    fn load_with(keys: &SessionKeys, cfg: &SessionConfig, header: &str, at: SystemTime) -> Session {
        Session::load(keys, cfg, [header.as_bytes()], at)
    }

    /// A written cookie holding `user=alice`.
    fn written(keys: &SessionKeys, cfg: &SessionConfig, at: SystemTime) -> String {
        let mut s = Session::new(cfg);
        s.set("user", "alice").unwrap();
        s.set_cookie(keys, cfg, at).unwrap()
    }

    fn is_empty_and_untouched(mut s: Session) -> bool {
        s.keys().is_empty() && s.take_flashes().is_empty() && !s.verify_csrf("x")
    }

    #[test]
    fn round_trip() {
        let (keys, cfg) = (keys(), cfg());
        let mut s = Session::new(&cfg);
        s.set("user", "alice").unwrap();
        s.set("theme", "dark \"quoted\"; semi=colon ünïcode")
            .unwrap();
        s.flash("info", "saved").unwrap();
        let token = s.csrf_token();
        let header = s.set_cookie(&keys, &cfg, now()).unwrap();

        let mut back = load_with(&keys, &cfg, &pair(&header), now());
        assert!(!back.accessed());
        assert_eq!(back.get("user").as_deref(), Some("alice"));
        assert_eq!(
            back.get("theme").as_deref(),
            Some("dark \"quoted\"; semi=colon ünïcode")
        );
        assert_eq!(back.keys(), ["theme", "user"]);
        assert!(back.verify_csrf(&token));
        assert_eq!(
            back.take_flashes(),
            [("info".to_owned(), "saved".to_owned())]
        );
        // Taking flashes rewrites the cookie without them.
        let header = back.set_cookie(&keys, &cfg, now()).unwrap();
        let mut again = load_with(&keys, &cfg, &pair(&header), now());
        assert!(again.take_flashes().is_empty());
        assert_eq!(again.get("user").as_deref(), Some("alice"));
    }

    #[test]
    fn value_format() {
        let (keys, cfg) = (keys(), cfg());
        let header = written(&keys, &cfg, now());
        let value = value_of(&header);
        let b64 = value.strip_prefix("v2.").unwrap();
        let sealed = URL_SAFE_NO_PAD.decode(b64).unwrap();
        assert!(sealed.len() > NONCE_LEN + TAG_LEN);
        assert_eq!(
            cookie_size(cfg.cookie_name().len(), sealed.len() - 28),
            pair(&header).len()
        );
        // A fresh nonce per write: the same contents never encrypt the same way twice.
        assert_ne!(value, value_of(&written(&keys, &cfg, now())));
    }

    #[test]
    fn secure_flags() {
        let (keys, cfg) = (keys(), cfg());
        let header = written(&keys, &cfg, now());
        assert!(header.starts_with("__Host-session=v2."), "{header}");
        let attrs: Vec<&str> = header.split("; ").skip(1).collect();
        for want in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=1209600",
        ] {
            assert!(attrs.contains(&want), "{want} missing from {header}");
        }
        assert!(!header.to_ascii_lowercase().contains("domain"), "{header}");
    }

    #[test]
    fn insecure_flags() {
        let keys = keys();
        let cfg = SessionConfig {
            secure: false,
            same_site: SameSite::Strict,
            max_age: Duration::from_secs(600),
            ..cfg()
        };
        assert_eq!(cfg.cookie_name(), "session");
        let header = written(&keys, &cfg, now());
        assert!(header.starts_with("session=v2."), "{header}");
        let attrs: Vec<&str> = header.split("; ").skip(1).collect();
        for want in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=600"] {
            assert!(attrs.contains(&want), "{want} missing from {header}");
        }
        assert!(!attrs.contains(&"Secure"), "{header}");
        let mut back = load_with(&keys, &cfg, &pair(&header), now());
        assert_eq!(back.get("user").as_deref(), Some("alice"));
    }

    #[test]
    fn tampered_byte_anywhere_gives_empty_session() {
        let (keys, cfg) = (keys(), cfg());
        let header = written(&keys, &cfg, now());
        let sealed = URL_SAFE_NO_PAD
            .decode(value_of(&header).strip_prefix("v2.").unwrap())
            .unwrap();
        for i in 0..sealed.len() {
            for flip in [0x01, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= flip;
                let cookie = format!("__Host-session=v2.{}", URL_SAFE_NO_PAD.encode(&bad));
                let s = load_with(&keys, &cfg, &cookie, now());
                assert!(is_empty_and_untouched(s), "byte {i} flipped by {flip:#x}");
            }
        }
        // A changed character of the encoding itself, including the version prefix.
        let original = pair(&header);
        let start = "__Host-session=".len();
        for i in start..original.len() {
            let mut bad = original.clone().into_bytes();
            bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
            let bad = String::from_utf8(bad).unwrap();
            assert!(
                is_empty_and_untouched(load_with(&keys, &cfg, &bad, now())),
                "char {i}"
            );
        }
    }

    #[test]
    fn truncated_or_malformed_gives_empty_session() {
        let (keys, cfg) = (keys(), cfg());
        let header = pair(&written(&keys, &cfg, now()));
        for len in 0..header.len() {
            let s = load_with(&keys, &cfg, &header[..len], now());
            assert!(is_empty_and_untouched(s), "truncated to {len}");
        }
        for bad in [
            "__Host-session=",
            "__Host-session=v2.",
            "__Host-session=v2.!!!!",
            "__Host-session=v2.AAAA",
            "__Host-session=v2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                is_empty_and_untouched(load_with(&keys, &cfg, bad, now())),
                "{bad}"
            );
        }
        let huge = format!("__Host-session=v2.{}", "A".repeat(MAX_COOKIE_VALUE));
        assert!(is_empty_and_untouched(load_with(&keys, &cfg, &huge, now())));
        // Non-UTF-8 bytes elsewhere in the header do not hide a valid cookie.
        let mut raw = b"other=\xff\xfe; ".to_vec();
        raw.extend_from_slice(header.as_bytes());
        let mut s = Session::load(&keys, &cfg, [raw.as_slice()], now());
        assert_eq!(s.get("user").as_deref(), Some("alice"));
    }

    #[test]
    fn bad_json_under_a_valid_tag_gives_empty_session() {
        let (keys, cfg) = (keys(), cfg());
        let name = cfg.cookie_name();
        for plain in [
            &b"not json"[..],
            br#"{"values":{}}"#,
            br#"{"values":{"a":1},"iat":1700000000,"ct":1700000000}"#,
            // Without the session's start, or one after the write.
            br#"{"values":{"a":"b"},"iat":1700000000}"#,
            br#"{"values":{"a":"b"},"iat":1700000000,"ct":1700000001}"#,
            br#"{"values":{},"csrf":"AAAA","iat":1700000000}"#,
        ] {
            let value = seal(&keys.primary, &aad(&name, &cfg), plain.to_vec()).unwrap();
            let s = load_with(&keys, &cfg, &format!("{name}={value}"), now());
            assert!(
                is_empty_and_untouched(s),
                "{}",
                String::from_utf8_lossy(plain)
            );
        }
        // The same sealing with a well-formed plaintext is accepted, so the cases above fail
        // for their content alone.
        let value = seal(
            &keys.primary,
            &aad(&name, &cfg),
            br#"{"values":{"a":"b"},"iat":1700000000,"ct":1700000000}"#.to_vec(),
        );
        let mut s = load_with(&keys, &cfg, &format!("{name}={}", value.unwrap()), now());
        assert_eq!(s.get("a").as_deref(), Some("b"));
    }

    #[test]
    fn a_cookie_is_only_for_the_app_it_was_written_for() {
        let keys = keys();
        let ours = SessionConfig {
            audience: "shop".into(),
            ..cfg()
        };
        let theirs = SessionConfig {
            audience: "admin".into(),
            ..cfg()
        };
        let header = pair(&written(&keys, &ours, now()));
        let mut s = load_with(&keys, &ours, &header, now());
        assert_eq!(s.get("user").as_deref(), Some("alice"));
        // Same key, same cookie name, another app: not a session there.
        let s = load_with(&keys, &theirs, &header, now());
        assert!(is_empty_and_untouched(s));
    }

    #[test]
    fn sessions_end_at_their_absolute_lifetime_however_active() {
        let keys = keys();
        let cfg = SessionConfig {
            max_age: Duration::from_secs(600),
            absolute_max_age: Duration::from_secs(3600),
            ..cfg()
        };
        let start = now();
        let mut header = pair(&written(&keys, &cfg, start));
        // Written every 5 minutes, the idle lifetime never runs out...
        let mut t = start;
        while t + Duration::from_secs(300) <= start + cfg.absolute_max_age {
            t += Duration::from_secs(300);
            let mut s = load_with(&keys, &cfg, &header, t);
            assert_eq!(s.get("user").as_deref(), Some("alice"), "at {t:?}");
            s.set("seen", &format!("{t:?}")).unwrap();
            let cookie = s.set_cookie(&keys, &cfg, t).unwrap();
            // ... and the browser is told to keep it only until the absolute end.
            let left = (start + cfg.absolute_max_age).duration_since(t).unwrap();
            let expect = left.min(cfg.max_age).as_secs();
            assert!(cookie.contains(&format!("Max-Age={expect}")), "{cookie}");
            header = pair(&cookie);
        }
        // ... but an hour after it began, the session is over.
        let after = start + cfg.absolute_max_age + Duration::from_secs(1);
        assert!(is_empty_and_untouched(load_with(
            &keys, &cfg, &header, after
        )));
        // Rotating (at login) starts a new session with a new absolute lifetime.
        let mut s = load_with(&keys, &cfg, &header, t);
        s.rotate();
        let rotated = pair(&s.set_cookie(&keys, &cfg, t).unwrap());
        let mut s = load_with(&keys, &cfg, &rotated, after);
        assert_eq!(s.get("user").as_deref(), Some("alice"));
    }

    #[test]
    fn expiry() {
        let (keys, cfg) = (keys(), cfg());
        let header = pair(&written(&keys, &cfg, now()));
        let last_second = now() + cfg.max_age;
        assert_eq!(
            load_with(&keys, &cfg, &header, last_second)
                .get("user")
                .as_deref(),
            Some("alice")
        );
        let expired = last_second + Duration::from_secs(1);
        assert!(is_empty_and_untouched(load_with(
            &keys, &cfg, &header, expired
        )));
    }

    #[test]
    fn future_issue_time_refused() {
        let (keys, cfg) = (keys(), cfg());
        let slightly_ahead = pair(&written(&keys, &cfg, now() + Duration::from_secs(299)));
        let far_ahead = pair(&written(&keys, &cfg, now() + Duration::from_secs(301)));
        assert_eq!(
            load_with(&keys, &cfg, &slightly_ahead, now())
                .get("user")
                .as_deref(),
            Some("alice")
        );
        assert!(is_empty_and_untouched(load_with(
            &keys,
            &cfg,
            &far_ahead,
            now()
        )));
    }

    #[test]
    fn unknown_key_gives_empty_session() {
        let cfg = cfg();
        let header = pair(&written(
            &SessionKeys::new(OLD_SECRET, &[]).unwrap(),
            &cfg,
            now(),
        ));
        assert!(is_empty_and_untouched(load_with(
            &keys(),
            &cfg,
            &header,
            now()
        )));
        let other = SessionKeys::ephemeral();
        assert!(is_empty_and_untouched(load_with(
            &other,
            &cfg,
            &header,
            now()
        )));
    }

    #[test]
    fn ephemeral_keys_round_trip() {
        let (keys, cfg) = (SessionKeys::ephemeral(), cfg());
        let header = pair(&written(&keys, &cfg, now()));
        assert_eq!(
            load_with(&keys, &cfg, &header, now())
                .get("user")
                .as_deref(),
            Some("alice")
        );
    }

    #[test]
    fn fallback_key_reads_and_primary_writes() {
        let cfg = cfg();
        let old = SessionKeys::new(OLD_SECRET, &[]).unwrap();
        let rotated = SessionKeys::new(SECRET, &[OLD_SECRET.to_vec()]).unwrap();
        let header = pair(&written(&old, &cfg, now()));

        let mut s = load_with(&rotated, &cfg, &header, now());
        assert_eq!(s.get("user").as_deref(), Some("alice"));
        assert!(
            s.set_cookie(&rotated, &cfg, now()).is_none(),
            "reading alone writes nothing"
        );
        s.set("n", "1").unwrap();
        let rewritten = pair(&s.set_cookie(&rotated, &cfg, now()).unwrap());

        let new_only = SessionKeys::new(SECRET, &[]).unwrap();
        let mut back = load_with(&new_only, &cfg, &rewritten, now());
        assert_eq!(back.get("user").as_deref(), Some("alice"));
        assert_eq!(back.get("n").as_deref(), Some("1"));
        assert!(is_empty_and_untouched(load_with(
            &old,
            &cfg,
            &rewritten,
            now()
        )));
    }

    #[test]
    fn value_moved_to_another_name_gives_empty_session() {
        let keys = keys();
        let cfg = cfg();
        let value = value_of(&written(&keys, &cfg, now()));
        let other = SessionConfig {
            cookie_name: "other".to_owned(),
            ..cfg.clone()
        };
        let moved = format!("{}={value}", other.cookie_name());
        assert!(is_empty_and_untouched(load_with(
            &keys,
            &other,
            &moved,
            now()
        )));
        // Nor is the secure cookie's value accepted under the plain name in development mode.
        let insecure = SessionConfig {
            secure: false,
            ..cfg
        };
        let moved = format!("session={value}");
        assert!(is_empty_and_untouched(load_with(
            &keys,
            &insecure,
            &moved,
            now()
        )));
    }

    #[test]
    fn forged_first_duplicate_does_not_hide_valid_one() {
        let (keys, cfg) = (keys(), cfg());
        let good = pair(&written(&keys, &cfg, now()));
        let forged = pair(&written(&SessionKeys::ephemeral(), &cfg, now()));
        let header = format!("{forged}; unrelated=1; {good}");
        let mut s = load_with(&keys, &cfg, &header, now());
        assert_eq!(s.get("user").as_deref(), Some("alice"));
        // Also across separate `Cookie` headers.
        let mut s = Session::load(&keys, &cfg, [forged.as_bytes(), good.as_bytes()], now());
        assert_eq!(s.get("user").as_deref(), Some("alice"));
    }

    #[test]
    fn oversize_writes_refused_and_session_unchanged() {
        let (keys, cfg) = (keys(), cfg());
        let mut s = Session::new(&cfg);
        s.set("user", "alice").unwrap();
        let before = s.set_cookie(&keys, &cfg, now()).map(|h| pair(&h).len());

        let err = s.set("blob", &"x".repeat(4000)).unwrap_err();
        let SessionError::TooLarge { size, max } = err else {
            panic!("wrong error {err:?}");
        };
        assert!(size > 4000 && max == 4000, "{size} {max}");
        let message = err.to_string();
        assert!(
            message.contains(&size.to_string()) && message.contains("4000"),
            "{message}"
        );
        assert!(message.contains("kv"), "{message}");

        assert!(s.set("user", &"y".repeat(4000)).is_err());
        assert!(s.flash("info", &"z".repeat(4000)).is_err());
        assert_eq!(s.keys(), ["user"]);
        assert_eq!(s.get("user").as_deref(), Some("alice"));
        assert!(s.take_flashes().is_empty());
        assert_eq!(
            s.set_cookie(&keys, &cfg, now()).map(|h| pair(&h).len()),
            before
        );

        // A refused write on an untouched session leaves nothing to write.
        let mut fresh = Session::new(&cfg);
        assert!(fresh.set("blob", &"x".repeat(5000)).is_err());
        assert!(fresh.set_cookie(&keys, &cfg, now()).is_none());
    }

    #[test]
    fn largest_accepted_session_fits_even_with_a_csrf_secret() {
        let (keys, cfg) = (keys(), cfg());
        let mut s = Session::new(&cfg);
        let mut len = 0;
        while s.set("k", &"v".repeat(len + 1)).is_ok() {
            len += 1;
        }
        s.csrf_token();
        let header = s.set_cookie(&keys, &cfg, now()).unwrap();
        let size = pair(&header).len();
        assert!(size <= cfg.max_size && size > cfg.max_size - 4, "{size}");
    }

    #[test]
    fn clear_deletes_the_cookie() {
        let (keys, cfg) = (keys(), cfg());
        let header = pair(&written(&keys, &cfg, now()));
        let mut s = load_with(&keys, &cfg, &header, now());
        s.clear();
        assert!(s.keys().is_empty());
        let deletion = s.set_cookie(&keys, &cfg, now()).unwrap();
        assert!(deletion.starts_with("__Host-session=;"), "{deletion}");
        let attrs: Vec<&str> = deletion.split("; ").skip(1).collect();
        for want in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/", "Max-Age=0"] {
            assert!(attrs.contains(&want), "{want} missing from {deletion}");
        }
        // Removing the last value deletes the cookie too.
        let mut s = load_with(&keys, &cfg, &header, now());
        assert!(s.remove("user"));
        assert!(!s.remove("user"));
        assert!(
            s.set_cookie(&keys, &cfg, now())
                .unwrap()
                .contains("Max-Age=0")
        );
    }

    #[test]
    fn untouched_or_read_only_session_writes_nothing() {
        let (keys, cfg) = (keys(), cfg());
        let s = Session::new(&cfg);
        assert!(!s.accessed());
        assert!(s.set_cookie(&keys, &cfg, now()).is_none());

        let header = pair(&written(&keys, &cfg, now()));
        let mut s = load_with(&keys, &cfg, &header, now());
        assert!(!s.accessed());
        s.get("user");
        s.keys();
        assert!(s.take_flashes().is_empty());
        assert!(!s.remove("missing"));
        assert!(s.accessed());
        assert!(s.set_cookie(&keys, &cfg, now()).is_none());
    }

    #[test]
    fn accessed_flag() {
        let cfg = cfg();
        type Op = fn(&mut Session);
        let ops: [(&str, Op); 9] = [
            ("get", |s| drop(s.get("a"))),
            ("set", |s| s.set("a", "b").unwrap()),
            ("remove", |s| {
                s.remove("a");
            }),
            ("clear", |s| s.clear()),
            ("rotate", |s| s.rotate()),
            ("flash", |s| s.flash("a", "b").unwrap()),
            ("take_flashes", |s| drop(s.take_flashes())),
            ("keys", |s| drop(s.keys())),
            ("csrf_token", |s| drop(s.csrf_token())),
        ];
        for (name, op) in ops {
            let mut s = Session::new(&cfg);
            assert!(!s.accessed());
            op(&mut s);
            assert!(s.accessed(), "{name}");
        }
    }

    #[test]
    fn csrf_tokens_are_masked_and_verify() {
        let (keys, cfg) = (keys(), cfg());
        let mut s = Session::new(&cfg);
        assert!(!s.verify_csrf(""), "no secret yet");
        let first = s.csrf_token();
        let second = s.csrf_token();
        assert_ne!(first, second);
        assert_eq!(first.len(), 86);
        assert!(s.verify_csrf(&first) && s.verify_csrf(&second));

        // Creating the secret makes the session worth writing; it survives the round trip.
        let header = pair(&s.set_cookie(&keys, &cfg, now()).unwrap());
        let mut back = load_with(&keys, &cfg, &header, now());
        assert!(back.verify_csrf(&first));
        let third = back.csrf_token();
        assert!(
            back.set_cookie(&keys, &cfg, now()).is_none(),
            "existing secret reused"
        );
        assert!(s.verify_csrf(&third));

        // Rotating invalidates every earlier token but keeps the values.
        back.set("user", "alice").unwrap();
        back.rotate();
        assert!(!back.verify_csrf(&first) && !back.verify_csrf(&third));
        let fresh = back.csrf_token();
        assert!(back.verify_csrf(&fresh));
        assert_eq!(back.get("user").as_deref(), Some("alice"));

        // Clearing drops the secret.
        back.clear();
        assert!(!back.verify_csrf(&first));
    }

    #[test]
    fn csrf_token_from_another_session_fails() {
        let cfg = cfg();
        let mut a = Session::new(&cfg);
        let mut b = Session::new(&cfg);
        let token = a.csrf_token();
        b.csrf_token();
        assert!(!b.verify_csrf(&token));
    }

    #[test]
    fn garbage_csrf_tokens_fail() {
        let mut s = Session::new(&cfg());
        let good = s.csrf_token();
        let mut flipped = good.clone().into_bytes();
        flipped[40] = if flipped[40] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let padded = format!("{good}==");
        let standard = good.replace('-', "+").replace('_', "/");
        for bad in [
            "",
            "x",
            "not base64 !",
            &good[..85],
            &good[..43],
            &format!("{good}A"),
            &format!("{good}AAAA"),
            &flipped,
            &padded,
            &"A".repeat(86),
            &"A".repeat(10_000),
        ] {
            assert!(!s.verify_csrf(bad), "{bad:?}");
        }
        if standard != good {
            assert!(!s.verify_csrf(&standard));
        }
        // The bare secret (pad of zeros) is a valid token by construction, but only to someone
        // who already knows the secret; a pad of zeros with zero secret is not.
        assert!(!s.verify_csrf(&URL_SAFE_NO_PAD.encode([0u8; 64])));
    }

    #[test]
    fn short_keys_refused() {
        let err = SessionKeys::new(&[7u8; 31], &[]).unwrap_err();
        assert!(matches!(&err, SessionError::KeyTooShort { which, len: 31 } if which == "primary"));
        assert!(err.to_string().contains("at least 32 bytes"), "{err}");
        let err = SessionKeys::new(&[7u8; 32], &[vec![1u8; 32], vec![1u8; 5]]).unwrap_err();
        assert!(
            matches!(&err, SessionError::KeyTooShort { which, len: 5 } if which == "fallback 2"),
            "{err:?}"
        );
        assert!(SessionKeys::new(&[7u8; 32], &[vec![1u8; 64]]).is_ok());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let mut s = Session::new(&cfg());
        s.set("user", "top-secret-value").unwrap();
        s.csrf_token();
        let shown = format!("{s:?} {:?}", keys());
        assert!(!shown.contains("top-secret-value"), "{shown}");
        assert!(shown.contains("user"), "{shown}");
    }

    #[test]
    fn config_validation() {
        assert!(cfg().validate().is_ok());
        let bad = |f: fn(&mut SessionConfig)| {
            let mut c = cfg();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(bad(|c| c.cookie_name = String::new()));
        assert!(bad(|c| c.cookie_name = "a b".to_owned()));
        assert!(bad(|c| c.cookie_name = "a;b".to_owned()));
        assert!(bad(|c| c.cookie_name = "__host-session".to_owned()));
        assert!(bad(|c| c.cookie_name = "__Secure-session".to_owned()));
        assert!(bad(|c| c.max_age = Duration::ZERO));
        assert!(bad(|c| c.max_age = Duration::from_secs(401 * 24 * 3600)));
        assert!(bad(|c| c.max_size = 5000));
        assert!(bad(|c| c.max_size = 10));
    }

    #[test]
    fn is_session_cookie_cases() {
        let cfg = cfg();
        for header in [
            "session=x",
            "__Host-session=x; Path=/; Secure",
            "__Secure-session=x",
            "__host-SESSION=x",
            "SESSION=x",
            " session =x; HttpOnly",
            "session",
            "session; Path=/",
            "=session=x",
            "= __Host-session=x",
            "__HOST-session",
        ] {
            assert!(is_session_cookie(header, &cfg), "{header:?}");
        }
        for header in [
            "other=x",
            "sessionx=x",
            "xsession=x",
            "__Host-other=x",
            "__Host-=session",
            "other=session",
            "__Host-__Host-session=x",
            "",
            "=x",
        ] {
            assert!(!is_session_cookie(header, &cfg), "{header:?}");
        }
        let insecure = SessionConfig {
            secure: false,
            ..cfg
        };
        assert!(is_session_cookie("__Host-session=x", &insecure));
        assert!(is_session_cookie("session=x", &insecure));
    }
}
