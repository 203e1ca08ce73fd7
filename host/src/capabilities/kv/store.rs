//! Named key-value stores for the `kv` capability: get, set (with an optional TTL), delete,
//! exists, increment and list-by-prefix, over one of two backends.
//!
//! - **Embedded** (the default, nothing to set up): one [redb] file per store,
//!   `<dir>/<store>.redb`, that survives restarts. Only one process may have a store's file
//!   open; a second one gets a [`KvError::Open`] naming the file.
//! - **Redis**: a shared server reached through [`redis::aio::ConnectionManager`], which
//!   reconnects by itself. Every key is namespaced with a prefix (default `flagon:<store>:`) so
//!   several stores and apps can share one Redis.
//!
//! Both backends behave the same as far as a guest can tell: arguments are validated here,
//! before either backend is touched, counters are stored as decimal ASCII and parsed with Redis's
//! own strict rules, and `list_keys` returns the lexicographically first keys in both.
//!
//! Errors from an open store's operations are what a guest sees: their
//! [`Display`](std::fmt::Display) names the store at most, never a host path or a Redis URL.
//! Errors from [`KvStore::open`] are for the operator and name the file, or the Redis URL with
//! its user info replaced by `***` (the URL may hold a password).

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{ReadOnlyTable, ReadableDatabase as _, ReadableTable as _, Table, TableDefinition};
use redis::aio::ConnectionManager;

/// Size and count limits, enforced before a request reaches the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvLimits {
    /// Longest key (and `list_keys` prefix), in bytes of UTF-8.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most keys one `list_keys` call returns; past it the list is truncated.
    pub max_list: usize,
    /// Most entries the store holds. A `set` or `increment` that would add a key past it is
    /// refused with [`KvError::StoreFull`] (after expired entries are purged).
    pub max_entries: u64,
    /// Most bytes the store holds, counting each entry as its key's length plus its value's.
    /// A write that would grow the total past it is refused with [`KvError::StoreFull`].
    pub max_bytes: u64,
}

impl Default for KvLimits {
    fn default() -> Self {
        Self {
            max_key_bytes: 512,
            max_value_bytes: 1024 * 1024,
            max_list: 1000,
            max_entries: 1_000_000,
            max_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Where a store keeps its data.
#[derive(Clone)]
pub enum KvBackendConfig {
    /// A redb file `<dir>/<store>.redb`. `dir` is created (mode 0700) if it is missing.
    /// Without `durable`, commits are fsynced at most once a second (see [`SYNC_EVERY_MS`]).
    Embedded { dir: PathBuf, durable: bool },
    /// A Redis server. `url` is `redis://[user][:password@]host[:port][/db]`, or `rediss://` when
    /// the redis client was built with TLS. `prefix` namespaces every key; `None` means
    /// [`default_redis_prefix`]. An empty prefix gives the store the whole database.
    Redis { url: String, prefix: Option<String> },
}

/// Written by hand so that a URL's password never reaches a log through `{:?}`.
impl fmt::Debug for KvBackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded { dir, durable } => f
                .debug_struct("Embedded")
                .field("dir", dir)
                .field("durable", durable)
                .finish(),
            Self::Redis { url, prefix } => f
                .debug_struct("Redis")
                .field("url", &redact_url(url))
                .field("prefix", prefix)
                .finish(),
        }
    }
}

/// The key prefix a Redis store uses when none is configured.
pub fn default_redis_prefix(store: &str) -> String {
    format!("flagon:{store}:")
}

/// A kv failure. Guest-visible variants name the store at most; see the module docs.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error(
        "invalid kv store name `{name}`: use 1 to {MAX_STORE_NAME} ASCII letters, digits, `-` or `_`"
    )]
    InvalidStoreName { name: String },
    #[error("key is empty")]
    EmptyKey,
    #[error("key is {len} bytes, more than the limit of {max}")]
    KeyTooLarge { len: usize, max: usize },
    #[error("value is {len} bytes, more than the limit of {max}")]
    ValueTooLarge { len: usize, max: usize },
    #[error("ttl must be between 1 ms and 365 days")]
    InvalidTtl,
    #[error("value is not a decimal integer in the range of `i64`")]
    NotAnInteger,
    #[error("increment would overflow `i64`")]
    Overflow,
    /// The write would take the store past [`KvLimits::max_entries`] or
    /// [`KvLimits::max_bytes`]. Nothing was written; deleting entries (or letting them
    /// expire) makes room.
    #[error("kv store `{store}` is full: the write would pass its limit of {limit}")]
    StoreFull { store: Arc<str>, limit: String },
    /// The backend failed (I/O, connection, timeout). The message names the store; at
    /// [`KvStore::open`] of a Redis store it also names the URL with its password redacted.
    #[error("{0}")]
    Backend(String),
    /// The embedded store's file (or its directory) could not be opened. Only from
    /// [`KvStore::open`], for the operator: it names the host path.
    #[error("cannot open kv store file `{}`: {message}", path.display())]
    Open { path: PathBuf, message: String },
    /// The backend configuration is unusable. Only from [`KvStore::open`].
    #[error("{0}")]
    InvalidConfig(String),
}

/// Longest store name; it becomes a file name and part of the Redis prefix.
const MAX_STORE_NAME: usize = 64;
/// Longest TTL accepted (365 days).
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A named key-value store, shared by reference (it is `Send + Sync`). Its operations never
/// block a runtime worker: redb calls run on the blocking pool.
pub struct KvStore {
    name: Arc<str>,
    limits: KvLimits,
    backend: Backend,
    fingerprint: [u8; 32],
    /// Its calls, errors and latency in `/metrics`.
    metrics: crate::metrics::Kv,
}

enum Backend {
    Embedded(Embedded),
    Redis(RedisStore),
}

impl fmt::Debug for KvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backend = match &self.backend {
            Backend::Embedded(_) => "embedded",
            Backend::Redis(_) => "redis",
        };
        f.debug_struct("KvStore")
            .field("name", &self.name)
            .field("limits", &self.limits)
            .field("backend", &backend)
            .finish()
    }
}

impl KvStore {
    /// Open (creating if needed) the store `name`. A Redis store connects and sends `PING`
    /// here, so a wrong URL or a dead server fails the start rather than the first request.
    pub async fn open(
        name: &str,
        config: KvBackendConfig,
        limits: KvLimits,
    ) -> Result<Self, KvError> {
        if !valid_store_name(name) {
            return Err(KvError::InvalidStoreName {
                name: name.to_owned(),
            });
        }
        let fingerprint = Self::fingerprint_of(name, &config, &limits);
        let name: Arc<str> = Arc::from(name);
        let backend = match config {
            KvBackendConfig::Embedded { dir, durable } => {
                Backend::Embedded(Embedded::open(name.clone(), dir, limits, durable).await?)
            }
            KvBackendConfig::Redis { url, prefix } => {
                let prefix = prefix.unwrap_or_else(|| default_redis_prefix(&name));
                Backend::Redis(RedisStore::open(name.clone(), &url, prefix, limits).await?)
            }
        };
        Ok(Self {
            metrics: crate::metrics::Kv::new(&name),
            name,
            limits,
            backend,
            fingerprint,
        })
    }

    /// Where the store's calls are counted.
    pub fn metrics(&self) -> &crate::metrics::Kv {
        &self.metrics
    }

    /// Whether the store answers, for `/readyz`: Redis must answer `PING` (within the client's
    /// response timeout); an embedded store is a file this process holds open, always there.
    pub async fn ping(&self) -> Result<(), KvError> {
        match &self.backend {
            Backend::Embedded(_) => Ok(()),
            Backend::Redis(r) => r.query::<String>(&redis::cmd("PING")).await.map(drop),
        }
    }

    /// A digest of what a store is opened from (its name, backend with the Redis URL and
    /// prefix, and limits). A reload keeps a store whose fingerprint has not changed.
    pub fn fingerprint_of(name: &str, config: &KvBackendConfig, limits: &KvLimits) -> [u8; 32] {
        let mut f = crate::capabilities::Fingerprint::new();
        f.field(name.as_bytes());
        match config {
            KvBackendConfig::Embedded { dir, durable } => {
                f.field(b"embedded")
                    .field(dir.as_os_str().as_encoded_bytes())
                    .field(&[u8::from(*durable)]);
            }
            KvBackendConfig::Redis { url, prefix } => {
                f.field(b"redis")
                    .field(url.as_bytes())
                    .field(prefix.as_deref().unwrap_or("\0default").as_bytes());
            }
        }
        f.field(format!("{limits:?}").as_bytes());
        f.finish()
    }

    /// See [`KvStore::fingerprint_of`].
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// True for a store in a file only this process may open (embedded), false for Redis.
    pub fn is_embedded(&self) -> bool {
        matches!(self.backend, Backend::Embedded(_))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn limits(&self) -> KvLimits {
        self.limits
    }

    /// The value of `key`, or `None` if it is missing or expired.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.check_key(key)?;
        match &self.backend {
            Backend::Embedded(e) => e.get(key).await,
            Backend::Redis(r) => r.get(key).await,
        }
    }

    /// Store `value` under `key`, replacing any value and TTL it had. With `ttl` the entry
    /// expires after that long (whole milliseconds; a fraction is dropped).
    pub async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), KvError> {
        self.check_key(key)?;
        if value.len() > self.limits.max_value_bytes {
            return Err(KvError::ValueTooLarge {
                len: value.len(),
                max: self.limits.max_value_bytes,
            });
        }
        let ttl_ms = ttl.map(ttl_millis).transpose()?;
        match &self.backend {
            Backend::Embedded(e) => e.set(key, value, ttl_ms).await,
            Backend::Redis(r) => r.set(key, value, ttl_ms).await,
        }
    }

    /// Remove `key`; `true` if it existed (and had not expired).
    pub async fn delete(&self, key: &str) -> Result<bool, KvError> {
        self.check_key(key)?;
        match &self.backend {
            Backend::Embedded(e) => e.delete(key).await,
            Backend::Redis(r) => r.delete(key).await,
        }
    }

    /// Whether `key` holds a value that has not expired.
    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.check_key(key)?;
        match &self.backend {
            Backend::Embedded(e) => e.exists(key).await,
            Backend::Redis(r) => r.exists(key).await,
        }
    }

    /// Add `delta` to the integer at `key` and return the result, atomically. A missing key
    /// counts as 0. The value is stored as decimal ASCII, as Redis's `INCRBY` does, so `get`
    /// returns e.g. `b"42"` on both backends; a value that is not such a number (Redis's rules:
    /// no `+`, no leading zeros, no spaces) is [`KvError::NotAnInteger`], and a result outside
    /// `i64` is [`KvError::Overflow`]. An existing TTL is kept; a key this call creates
    /// expires after `new_ttl_ms` if given (a counter for a fixed window).
    pub async fn increment(
        &self,
        key: &str,
        delta: i64,
        new_ttl_ms: Option<u64>,
    ) -> Result<i64, KvError> {
        self.check_key(key)?;
        let new_ttl_ms = new_ttl_ms
            .map(|ms| ttl_millis(Duration::from_millis(ms)))
            .transpose()?;
        match &self.backend {
            Backend::Embedded(e) => e.increment(key, delta, new_ttl_ms).await,
            Backend::Redis(r) => r.increment(key, delta, new_ttl_ms).await,
        }
    }

    /// The keys that start with `prefix` (empty: all keys), sorted by their UTF-8 bytes. At
    /// most [`KvLimits::max_list`] are returned: past it the list is truncated to the first
    /// ones in that order, without an error, so a caller that gets exactly `max_list` keys
    /// should assume there are more and narrow the prefix.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, KvError> {
        if prefix.len() > self.limits.max_key_bytes {
            return Err(KvError::KeyTooLarge {
                len: prefix.len(),
                max: self.limits.max_key_bytes,
            });
        }
        let max = self.limits.max_list;
        if max == 0 {
            return Ok(Vec::new());
        }
        match &self.backend {
            Backend::Embedded(e) => e.list_keys(prefix, max).await,
            Backend::Redis(r) => r.list_keys(prefix, max).await,
        }
    }

    /// Close the store, reporting what dropping it would ignore. An embedded store's file is
    /// released once no operation is still running on it (one whose caller gave up can
    /// briefly outlive it).
    pub async fn close(self) -> Result<(), KvError> {
        match self.backend {
            Backend::Embedded(e) => e.close().await,
            Backend::Redis(_) => Ok(()),
        }
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        if key.len() > self.limits.max_key_bytes {
            return Err(KvError::KeyTooLarge {
                len: key.len(),
                max: self.limits.max_key_bytes,
            });
        }
        Ok(())
    }
}

/// How a [`KvError::StoreFull`] names an entry limit.
fn entries_limit(n: u64) -> String {
    format!("{n} {}", if n == 1 { "entry" } else { "entries" })
}

/// Store names become file names and Redis prefixes, so they are kept to a safe alphabet (no
/// `/`, `.`, or glob characters).
fn valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_STORE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn ttl_millis(ttl: Duration) -> Result<u64, KvError> {
    if ttl < Duration::from_millis(1) || ttl > MAX_TTL {
        return Err(KvError::InvalidTtl);
    }
    u64::try_from(ttl.as_millis()).map_err(|_| KvError::InvalidTtl)
}

/// Wall-clock time in unix milliseconds. Expiry follows the wall clock, as Redis's does, so
/// TTLs survive a restart of the embedded store.
fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Parse a stored counter the way Redis's `string2ll` does, so both backends accept and refuse
/// the same values: `0`, or an optional `-` then a digit 1-9 then digits, within `i64`.
fn parse_counter(bytes: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(bytes).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    let canonical = s == "0"
        || (!digits.is_empty()
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit()));
    if !canonical {
        return None;
    }
    s.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// Embedded backend (redb)
// ---------------------------------------------------------------------------------------------

/// key -> (expiry in unix ms, 0 = never; value).
const DATA: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("kv");
/// (expiry in unix ms, key) -> (), for every entry with a TTL: lets a write find what has
/// expired without scanning the store.
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("kv_expiry");
/// `"entries"` and `"bytes"` -> the store's totals, updated by every write transaction that
/// adds or removes an entry, so the limits cost no scan.
const META: TableDefinition<&str, u64> = TableDefinition::new("kv_meta");
const META_ENTRIES: &str = "entries";
const META_BYTES: &str = "bytes";

/// How many expired entries each write transaction purges, besides its own work. Entries are
/// removed lazily: reads treat an expired entry as absent, and every write (set, delete,
/// increment, and a `list_keys` that met expired keys) also deletes up to this many of the
/// entries that expired first. A store that is written to therefore does not grow with dead
/// entries, while no operation pays for more than a small, bounded sweep.
const SWEEP_BATCH: usize = 64;
/// Most expired keys one `list_keys` purges (the sweep does the rest over time).
const LIST_PURGE_MAX: usize = 1024;
/// Most expired entries a write purges before it is refused for a full store: enough that a
/// store kept full by short-lived entries makes room, small enough to bound the transaction.
const FULL_SWEEP_MAX: usize = 4096;
/// redb's page cache per store. Its default (1 GiB) is meant for one big database per
/// process; kv stores are many and small.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

struct Embedded {
    name: Arc<str>,
    limits: KvLimits,
    db: Arc<redb::Database>,
    /// redb allows one write transaction at a time and blocks the others in `begin_write`.
    /// Queuing writers here instead keeps them off the blocking thread pool while they wait.
    /// It holds when the last commit was fsynced (milliseconds), for a store that is not
    /// `durable`.
    write_lock: Arc<tokio::sync::Mutex<u64>>,
    /// Every commit fsynced (the default); otherwise at most every [`SYNC_EVERY_MS`].
    durable: bool,
}

/// How often a store without `durable` fsyncs a commit: a crash loses at most this much of
/// its writes (rate-limit counters, caches), and redb can reuse the pages of earlier commits.
pub const SYNC_EVERY_MS: u64 = 1000;

/// The tables of one write transaction.
struct Tables<'t> {
    data: Table<'t, &'static str, (u64, &'static [u8])>,
    expiry: Table<'t, (u64, &'static str), ()>,
    now: u64,
    /// The store's totals as of this transaction, kept by [`Tables::put`] and
    /// [`Tables::remove`] and written back to [`META`] at commit.
    usage: Usage,
}

/// How much a store holds: its entries (live or expired but not yet purged) and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    entries: u64,
    bytes: u64,
}

/// What an entry counts against [`KvLimits::max_bytes`].
fn entry_bytes(key: &str, value_len: usize) -> u64 {
    u64::try_from(key.len() + value_len).unwrap_or(u64::MAX)
}

fn is_expired(expires: u64, now: u64) -> bool {
    expires != 0 && expires <= now
}

/// A redb failure as a backend error; [`Embedded::tag`] adds the store name.
fn db_err(e: impl Into<redb::Error>) -> KvError {
    KvError::Backend(e.into().to_string())
}

impl Tables<'_> {
    /// The live (unexpired) entry's expiry and value.
    fn live(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>, KvError> {
        let Some(guard) = self.data.get(key).map_err(db_err)? else {
            return Ok(None);
        };
        let (expires, value) = guard.value();
        Ok((!is_expired(expires, self.now)).then(|| (expires, value.to_vec())))
    }

    fn put(&mut self, key: &str, expires: u64, value: &[u8]) -> Result<(), KvError> {
        let old = self
            .data
            .insert(key, (expires, value))
            .map_err(db_err)?
            .map(|g| (g.value().0, g.value().1.len()));
        match old {
            Some((_, len)) => {
                self.usage.bytes = self.usage.bytes.saturating_sub(entry_bytes(key, len))
            }
            None => self.usage.entries += 1,
        }
        self.usage.bytes += entry_bytes(key, value.len());
        if let Some((old, _)) = old
            && old != 0
        {
            self.expiry.remove((old, key)).map_err(db_err)?;
        }
        if expires != 0 {
            self.expiry.insert((expires, key), ()).map_err(db_err)?;
        }
        Ok(())
    }

    /// Remove `key` and its expiry-index entry; the expiry it had, if it was present.
    fn remove(&mut self, key: &str) -> Result<Option<u64>, KvError> {
        let old = self
            .data
            .remove(key)
            .map_err(db_err)?
            .map(|g| (g.value().0, g.value().1.len()));
        let Some((old, len)) = old else {
            return Ok(None);
        };
        // Saturating: totals are only ever as wrong as a damaged file makes them.
        self.usage.entries = self.usage.entries.saturating_sub(1);
        self.usage.bytes = self.usage.bytes.saturating_sub(entry_bytes(key, len));
        if old != 0 {
            self.expiry.remove((old, key)).map_err(db_err)?;
        }
        Ok(Some(old))
    }

    /// Purge up to `limit` of the entries that expired first.
    fn sweep(&mut self, limit: usize) -> Result<(), KvError> {
        let due: Vec<(u64, String)> = self
            .expiry
            .range::<(u64, &str)>(..(self.now.saturating_add(1), ""))
            .map_err(db_err)?
            .take(limit)
            .map(|entry| {
                entry.map(|(k, _)| {
                    let (expires, key) = k.value();
                    (expires, key.to_owned())
                })
            })
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        for (expires, key) in due {
            // The index always matches the data; checking anyway means a stray index entry can
            // only ever cost itself, never a live value.
            let current = self
                .data
                .get(key.as_str())
                .map_err(db_err)?
                .map(|g| g.value().0);
            if current == Some(expires) {
                self.remove(&key)?;
            } else {
                self.expiry
                    .remove((expires, key.as_str()))
                    .map_err(db_err)?;
            }
        }
        Ok(())
    }
}

impl Embedded {
    async fn open(
        name: Arc<str>,
        dir: PathBuf,
        limits: KvLimits,
        durable: bool,
    ) -> Result<Self, KvError> {
        let path = dir.join(format!("{name}.redb"));
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || open_db(&dir, &path)).await
        };
        let db = opened.map_err(|e| KvError::Open {
            path,
            message: format!("the opening task failed: {e}"),
        })??;
        Ok(Self {
            name,
            limits,
            db: Arc::new(db),
            write_lock: Arc::new(tokio::sync::Mutex::new(0)),
            durable,
        })
    }

    /// Name the store in a backend error (redb's own messages carry no path).
    fn tag(&self, e: KvError) -> KvError {
        match e {
            KvError::Backend(m) => KvError::Backend(format!("kv store `{}`: {m}", self.name)),
            other => other,
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ReadOnlyTable<&'static str, (u64, &'static [u8])>, u64) -> Result<T, KvError>
        + Send
        + 'static,
    ) -> Result<T, KvError> {
        let db = self.db.clone();
        let run = move || {
            let txn = db.begin_read().map_err(db_err)?;
            let table = txn.open_table(DATA).map_err(db_err)?;
            f(&table, now_millis())
        };
        let result = tokio::task::spawn_blocking(run)
            .await
            .unwrap_or_else(|e| Err(KvError::Backend(format!("the read task failed: {e}"))));
        result.map_err(|e| self.tag(e))
    }

    /// Run `f` in a short write transaction that also sweeps expired entries, and commit it
    /// unless `f` fails (then nothing it did is kept).
    ///
    /// Limits: if `f` grew the store's entries or bytes past [`KvLimits::max_entries`] or
    /// [`KvLimits::max_bytes`], up to [`FULL_SWEEP_MAX`] more expired entries are purged, and if
    /// the store is still past the limit the transaction is dropped and the write refused with
    /// [`KvError::StoreFull`]. A write that does not grow the store (a delete, a smaller value)
    /// always passes, so a store over a newly lowered limit can still be emptied.
    ///
    /// Durability: redb's default, [`redb::Durability::Immediate`], which fsyncs every commit.
    /// A guest that was told "stored" may tell its user so, and an acknowledged write lost to
    /// a power cut would be a silent bug; an fsync per write (about a millisecond on an SSD)
    /// is an acceptable price for the small, infrequent writes kv stores see. A store set
    /// `durable = false` (counters written on every request) fsyncs at most once per
    /// [`SYNC_EVERY_MS`] instead.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tables<'_>) -> Result<T, KvError> + Send + 'static,
    ) -> Result<T, KvError> {
        // Owned, and moved into the task, so that a caller that gives up does not release the
        // lock while its transaction is still running.
        let mut guard = self.write_lock.clone().lock_owned().await;
        let db = self.db.clone();
        let (name, limits, durable) = (self.name.clone(), self.limits, self.durable);
        let run = move || {
            let mut txn = db.begin_write().map_err(db_err)?;
            let now = now_millis();
            if !durable {
                if now.saturating_sub(*guard) >= SYNC_EVERY_MS {
                    *guard = now;
                } else {
                    txn.set_durability(redb::Durability::None).map_err(db_err)?;
                }
            }
            let out = {
                let mut meta = txn.open_table(META).map_err(db_err)?;
                let stored = read_usage(&meta)?;
                let mut tables = Tables {
                    data: txn.open_table(DATA).map_err(db_err)?,
                    expiry: txn.open_table(EXPIRY).map_err(db_err)?,
                    now: now_millis(),
                    usage: stored,
                };
                tables.sweep(SWEEP_BATCH)?;
                let before = tables.usage;
                let out = f(&mut tables)?;
                let grew = |t: &Tables<'_>| {
                    let u = t.usage;
                    if u.entries > before.entries && u.entries > limits.max_entries {
                        Some(entries_limit(limits.max_entries))
                    } else if u.bytes > before.bytes && u.bytes > limits.max_bytes {
                        Some(format!("{} bytes", limits.max_bytes))
                    } else {
                        None
                    }
                };
                if grew(&tables).is_some() {
                    tables.sweep(FULL_SWEEP_MAX)?;
                    if let Some(limit) = grew(&tables) {
                        return Err(KvError::StoreFull { store: name, limit });
                    }
                }
                if tables.usage != stored {
                    meta.insert(META_ENTRIES, tables.usage.entries)
                        .map_err(db_err)?;
                    meta.insert(META_BYTES, tables.usage.bytes)
                        .map_err(db_err)?;
                }
                out
            };
            txn.commit().map_err(db_err)?;
            Ok(out)
        };
        let result = tokio::task::spawn_blocking(run)
            .await
            .unwrap_or_else(|e| Err(KvError::Backend(format!("the write task failed: {e}"))));
        result.map_err(|e| self.tag(e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let key = key.to_owned();
        self.read(move |table, now| {
            let Some(guard) = table.get(key.as_str()).map_err(db_err)? else {
                return Ok(None);
            };
            let (expires, value) = guard.value();
            Ok((!is_expired(expires, now)).then(|| value.to_vec()))
        })
        .await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        let key = key.to_owned();
        self.read(move |table, now| {
            let expires = table
                .get(key.as_str())
                .map_err(db_err)?
                .map(|g| g.value().0);
            Ok(expires.is_some_and(|e| !is_expired(e, now)))
        })
        .await
    }

    async fn set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), KvError> {
        let (key, value) = (key.to_owned(), value.to_vec());
        self.write(move |t| {
            let expires = ttl_ms.map_or(0, |ms| t.now.saturating_add(ms));
            t.put(&key, expires, &value)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        let key = key.to_owned();
        self.write(move |t| {
            let now = t.now;
            Ok(t.remove(&key)?.is_some_and(|e| !is_expired(e, now)))
        })
        .await
    }

    async fn increment(
        &self,
        key: &str,
        delta: i64,
        new_ttl_ms: Option<u64>,
    ) -> Result<i64, KvError> {
        let key = key.to_owned();
        self.write(move |t| {
            let (expires, current) = match t.live(&key)? {
                Some((expires, value)) => {
                    (expires, parse_counter(&value).ok_or(KvError::NotAnInteger)?)
                }
                None => (new_ttl_ms.map_or(0, |ms| t.now.saturating_add(ms)), 0),
            };
            let next = current.checked_add(delta).ok_or(KvError::Overflow)?;
            t.put(&key, expires, next.to_string().as_bytes())?;
            Ok(next)
        })
        .await
    }

    async fn list_keys(&self, prefix: &str, max: usize) -> Result<Vec<String>, KvError> {
        let owned = prefix.to_owned();
        let (keys, expired) = self
            .read(move |table, now| {
                let mut keys = Vec::new();
                let mut expired = Vec::new();
                for entry in table.range::<&str>(owned.as_str()..).map_err(db_err)? {
                    let (k, v) = entry.map_err(db_err)?;
                    let key = k.value();
                    if !key.starts_with(owned.as_str()) {
                        break;
                    }
                    if !is_expired(v.value().0, now) {
                        keys.push(key.to_owned());
                        if keys.len() >= max {
                            break;
                        }
                    } else if expired.len() < LIST_PURGE_MAX {
                        expired.push(key.to_owned());
                    }
                }
                Ok((keys, expired))
            })
            .await?;
        if !expired.is_empty() {
            // Purge what the listing skipped, checking again: a key may have been set anew.
            self.write(move |t| {
                for key in expired {
                    if t.live(&key)?.is_none() {
                        t.remove(&key)?;
                    }
                }
                Ok(())
            })
            .await?;
        }
        Ok(keys)
    }

    async fn close(self) -> Result<(), KvError> {
        let _writers_done = self.write_lock.lock().await;
        let Ok(db) = Arc::try_unwrap(self.db) else {
            // A read still holds the database; it closes when that finishes.
            return Ok(());
        };
        let result = tokio::task::spawn_blocking(move || db.close().map_err(db_err))
            .await
            .unwrap_or_else(|e| Err(KvError::Backend(format!("the close task failed: {e}"))));
        result.map_err(|e| match e {
            KvError::Backend(m) => KvError::Backend(format!("kv store `{}`: {m}", self.name)),
            other => other,
        })
    }
}

/// The totals kept in [`META`] (zero for a new store).
fn read_usage(meta: &impl redb::ReadableTable<&'static str, u64>) -> Result<Usage, KvError> {
    let get = |k: &str| -> Result<u64, KvError> {
        Ok(meta.get(k).map_err(db_err)?.map_or(0, |g| g.value()))
    };
    Ok(Usage {
        entries: get(META_ENTRIES)?,
        bytes: get(META_BYTES)?,
    })
}

/// Create `dir` (0700) if needed, then open or create the database file and its tables.
fn open_db(dir: &Path, path: &Path) -> Result<redb::Database, KvError> {
    let open_err = |p: &Path, message: String| KvError::Open {
        path: p.to_owned(),
        message,
    };
    if !dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| open_err(dir, format!("cannot create the directory: {e}")))?;
    }
    // Create the file ourselves, owner-only, in case the directory is more open than 0700;
    // redb initialises an empty file and never truncates an existing one.
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    drop(
        options
            .open(path)
            .map_err(|e| open_err(path, e.to_string()))?,
    );

    let db = redb::Builder::new()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| {
            let message = match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    "the file is locked by another process (is another flagon using the same \
                     data directory?)"
                        .to_owned()
                }
                other => other.to_string(),
            };
            open_err(path, message)
        })?;
    let txn = db
        .begin_write()
        .map_err(|e| open_err(path, db_err(e).to_string()))?;
    txn.open_table(DATA)
        .map_err(|e| open_err(path, db_err(e).to_string()))?;
    txn.open_table(EXPIRY)
        .map_err(|e| open_err(path, db_err(e).to_string()))?;
    count_if_uncounted(&txn).map_err(|e| open_err(path, e.to_string()))?;
    txn.commit()
        .map_err(|e| open_err(path, db_err(e).to_string()))?;
    Ok(db)
}

/// Fill in [`META`] for a store written before its totals were kept: one scan, once.
fn count_if_uncounted(txn: &redb::WriteTransaction) -> Result<(), KvError> {
    let mut meta = txn.open_table(META).map_err(db_err)?;
    if meta.get(META_ENTRIES).map_err(db_err)?.is_some() {
        return Ok(());
    }
    let data = txn.open_table(DATA).map_err(db_err)?;
    let mut usage = Usage::default();
    for entry in data.iter().map_err(db_err)? {
        let (k, v) = entry.map_err(db_err)?;
        usage.entries += 1;
        usage.bytes += entry_bytes(k.value(), v.value().1.len());
    }
    meta.insert(META_ENTRIES, usage.entries).map_err(db_err)?;
    meta.insert(META_BYTES, usage.bytes).map_err(db_err)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Redis backend
// ---------------------------------------------------------------------------------------------

/// `COUNT` hint for each `SCAN` call.
const SCAN_COUNT: usize = 1000;
/// Most `SCAN` calls one `list_keys` makes. `SCAN MATCH` walks the whole Redis database, not
/// just this store's keys, so on a huge shared database a listing is refused rather than
/// left to run for minutes (with the default count, about ten million keys).
const SCAN_MAX_CALLS: usize = 10_000;
/// Limits for reaching the server, so a dead one fails a request instead of hanging it.
const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
const REDIS_OPEN_TIMEOUT: Duration = Duration::from_secs(15);
/// Connection attempts (with backoff up to [`REDIS_RETRY_MAX_DELAY`]) before a (re)connect
/// fails. Few, because requests wait on a reconnect: while Redis is down they should fail
/// within about a second, not hang (the next request tries again), and a wrong URL should fail
/// the start promptly. The client's default is 6, which takes about ten seconds.
const REDIS_CONNECT_RETRIES: usize = 3;
const REDIS_RETRY_MAX_DELAY: Duration = Duration::from_millis(500);

struct RedisStore {
    name: Arc<str>,
    limits: KvLimits,
    conn: ConnectionManager,
    prefix: String,
    /// `<prefix>\xffindex` and `<prefix>\xffsizes`: the keys of [`RedisScripts`]' books.
    /// A guest's key is UTF-8, so no key of the store can be either.
    index: Vec<u8>,
    sizes: Vec<u8>,
    /// The URL's password, raw and percent-decoded, scrubbed from every error message in case
    /// the client ever echoes it.
    secrets: Vec<String>,
}

impl RedisStore {
    async fn open(
        name: Arc<str>,
        url: &str,
        prefix: String,
        limits: KvLimits,
    ) -> Result<Self, KvError> {
        let shown = redact_url(url);
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("redis") => {}
            Some("rediss") if tls_supported() => {}
            Some("rediss") => {
                return Err(KvError::InvalidConfig(format!(
                    "kv store `{name}`: `rediss://` needs a redis client built with TLS (a \
                     `tls-*` feature of the `redis` crate), and this host has none; use \
                     `redis://` or rebuild with TLS"
                )));
            }
            _ => {
                return Err(KvError::InvalidConfig(format!(
                    "kv store `{name}`: the redis URL `{shown}` must start with `redis://` or \
                     `rediss://`"
                )));
            }
        }
        let secrets = url_secrets(url);
        let fail = |what: &str, e: redis::RedisError| {
            KvError::Backend(format!(
                "kv store `{name}`: {what} redis at `{shown}`: {}",
                scrub(&secrets, e.to_string())
            ))
        };
        let client = redis::Client::open(url).map_err(|e| fail("invalid URL for", e))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
            .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
            .set_number_of_retries(REDIS_CONNECT_RETRIES)
            .set_max_delay(REDIS_RETRY_MAX_DELAY);
        let connect = async {
            let mut conn = ConnectionManager::new_with_config(client, config).await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
            Ok::<_, redis::RedisError>(conn)
        };
        let conn = match tokio::time::timeout(REDIS_OPEN_TIMEOUT, connect).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(fail("cannot reach", e)),
            Err(_) => {
                return Err(KvError::Backend(format!(
                    "kv store `{name}`: cannot reach redis at `{shown}`: no answer within {}s",
                    REDIS_OPEN_TIMEOUT.as_secs()
                )));
            }
        };
        let book = |suffix: &[u8]| [prefix.as_bytes(), b"\xff", suffix].concat();
        Ok(Self {
            name,
            limits,
            conn,
            index: book(b"index"),
            sizes: book(b"sizes"),
            prefix,
            secrets,
        })
    }

    /// A runtime error: names the store only, never the server.
    fn err(&self, e: redis::RedisError) -> KvError {
        KvError::Backend(format!(
            "kv store `{}`: redis: {}",
            self.name,
            scrub(&self.secrets, e.to_string())
        ))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, KvError> {
        let mut conn = self.conn.clone();
        cmd.query_async(&mut conn).await.map_err(|e| self.err(e))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.query(redis::cmd("GET").arg(self.key(key))).await
    }

    async fn exists(&self, key: &str) -> Result<bool, KvError> {
        let n: i64 = self.query(redis::cmd("EXISTS").arg(self.key(key))).await?;
        Ok(n > 0)
    }

    /// Run one of [`RedisScripts`] on `key` with `args` after the common ones. Its reply is
    /// a status word and a detail: `ok` and a value, `full` and the limit that refused the
    /// write, or `err` and Redis's message.
    async fn script(
        &self,
        script: &redis::Script,
        key: &str,
        args: &[&[u8]],
    ) -> Result<(String, Option<Vec<u8>>), KvError> {
        let mut call = script.key(self.key(key));
        call.key(self.index.as_slice())
            .key(self.sizes.as_slice())
            .arg(key)
            .arg(self.limits.max_entries)
            .arg(self.limits.max_bytes);
        for arg in args {
            call.arg(*arg);
        }
        let mut conn = self.conn.clone();
        let mut reply: Vec<Vec<u8>> = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| self.err(e))?;
        let detail = (reply.len() > 1).then(|| reply.swap_remove(1));
        let status = reply.into_iter().next().unwrap_or_default();
        Ok((String::from_utf8_lossy(&status).into_owned(), detail))
    }

    /// The error for a `full` reply naming `entries` or `bytes`.
    fn full(&self, which: Option<&[u8]>) -> KvError {
        let limit = if which == Some(b"entries") {
            entries_limit(self.limits.max_entries)
        } else {
            format!("{} bytes", self.limits.max_bytes)
        };
        KvError::StoreFull {
            store: self.name.clone(),
            limit,
        }
    }

    fn unexpected(&self, status: &str) -> KvError {
        KvError::Backend(format!(
            "kv store `{}`: redis: unexpected script reply `{}`",
            self.name,
            crate::text::log_safe(status)
        ))
    }

    async fn set(&self, key: &str, value: &[u8], ttl_ms: Option<u64>) -> Result<(), KvError> {
        let ttl = ttl_ms.map(|ms| ms.to_string()).unwrap_or_default();
        let scripts = RedisScripts::get();
        match self
            .script(&scripts.set, key, &[value, ttl.as_bytes()])
            .await?
        {
            (s, _) if s == "ok" => Ok(()),
            (s, which) if s == "full" => Err(self.full(which.as_deref())),
            (s, _) => Err(self.unexpected(&s)),
        }
    }

    async fn delete(&self, key: &str) -> Result<bool, KvError> {
        match self.script(&RedisScripts::get().delete, key, &[]).await? {
            (s, n) if s == "ok" => Ok(n.as_deref() == Some(b"1")),
            (s, _) => Err(self.unexpected(&s)),
        }
    }

    async fn increment(
        &self,
        key: &str,
        delta: i64,
        new_ttl_ms: Option<u64>,
    ) -> Result<i64, KvError> {
        let delta = delta.to_string();
        let ttl = new_ttl_ms
            .map(|ms| ms.max(1).to_string())
            .unwrap_or_default();
        let scripts = RedisScripts::get();
        match self
            .script(&scripts.increment, key, &[delta.as_bytes(), ttl.as_bytes()])
            .await?
        {
            (s, value) if s == "ok" => value
                .as_deref()
                .and_then(parse_counter)
                .ok_or_else(|| self.unexpected("ok without a counter")),
            (s, which) if s == "full" => Err(self.full(which.as_deref())),
            (s, message) if s == "err" => {
                let message =
                    String::from_utf8_lossy(message.as_deref().unwrap_or_default()).into_owned();
                if message.contains("not an integer") {
                    Err(KvError::NotAnInteger)
                } else if message.contains("overflow") {
                    Err(KvError::Overflow)
                } else {
                    Err(KvError::Backend(format!(
                        "kv store `{}`: redis: {}",
                        self.name,
                        scrub(&self.secrets, message)
                    )))
                }
            }
            (s, _) => Err(self.unexpected(&s)),
        }
    }

    /// `SCAN MATCH` over the namespaced prefix (glob characters escaped). `SCAN` returns keys
    /// in no order and may repeat one, so the smallest `max` are kept in a bounded set, which
    /// makes the result the same as the embedded store's.
    async fn list_keys(&self, prefix: &str, max: usize) -> Result<Vec<String>, KvError> {
        let pattern = format!("{}*", glob_escape(&self.key(prefix)));
        let mut keys = BTreeSet::new();
        let mut cursor: u64 = 0;
        for _ in 0..SCAN_MAX_CALLS {
            let (next, batch): (u64, Vec<Vec<u8>>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT),
                )
                .await?;
            for raw in batch {
                // Keys written by something other than this module may not be UTF-8.
                let Some(key) = raw
                    .strip_prefix(self.prefix.as_bytes())
                    .and_then(|k| std::str::from_utf8(k).ok())
                else {
                    continue;
                };
                if keys.len() < max || keys.last().is_some_and(|last: &String| key < last.as_str())
                {
                    keys.insert(key.to_owned());
                    if keys.len() > max {
                        keys.pop_last();
                    }
                }
            }
            if next == 0 {
                return Ok(keys.into_iter().collect());
            }
            cursor = next;
        }
        Err(KvError::Backend(format!(
            "kv store `{}`: listing keys scanned more than {} redis keys without finishing; the \
             redis database is too large to list",
            self.name,
            SCAN_MAX_CALLS * SCAN_COUNT
        )))
    }
}

/// The Lua scripts through which a Redis store writes, so that it can keep its limits: each
/// write and its bookkeeping are one atomic step on the server, whichever host sends it.
///
/// The books, beside the data (`KEYS[2]`, `KEYS[3]`): a sorted set of the store's keys scored
/// by expiry in unix ms (`+inf` for none), whose size is the entry count; and a hash of each
/// key's size (key length + value length) plus a field `\xff` holding the total. Every write
/// first forgets up to 64 keys whose expiry has passed (Redis has already dropped their data),
/// and forgets its own key if Redis no longer has it (evicted, or deleted by something else).
/// A write that would grow the store past a limit forgets up to 4096 expired keys, checks
/// again, and is refused (writing nothing) if it still would.
///
/// Time is Redis's own (`TIME`), the clock its `PX` expiries use, so every host agrees.
/// Reads (`GET`, `EXISTS`, `SCAN`) need no books and stay plain commands.
struct RedisScripts {
    set: redis::Script,
    delete: redis::Script,
    increment: redis::Script,
}

/// The part every script starts with. `KEYS`: the entry, the index, the sizes. `ARGV`: the
/// key as the guest named it, the entry limit, the byte limit, then the script's own.
const LUA_BOOKS: &str = r#"
local entry, index, sizes = KEYS[1], KEYS[2], KEYS[3]
local key, max_entries, max_bytes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local TOTAL = '\255'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
-- Integers as Redis parses them (never `-0` or an exponent).
local function int(n) if n == 0 then return '0' end return string.format('%.0f', n) end
local function forget(k)
  local size = redis.call('HGET', sizes, k)
  if size then
    redis.call('HDEL', sizes, k)
    redis.call('HINCRBY', sizes, TOTAL, int(-tonumber(size)))
  end
  redis.call('ZREM', index, k)
end
local function sweep(limit)
  local due = redis.call('ZRANGEBYSCORE', index, '-inf', int(now), 'LIMIT', 0, limit)
  for _, k in ipairs(due) do forget(k) end
end
-- Which limit a write taking this key from `old` bytes (nil: a new entry) to `new` passes.
local function passes(old, new)
  local entries = redis.call('ZCARD', index)
  local bytes = tonumber(redis.call('HGET', sizes, TOTAL) or '0')
  if not old and entries + 1 > max_entries then return 'entries' end
  if new > (old or 0) and bytes - (old or 0) + new > max_bytes then return 'bytes' end
  return false
end
local function full(old, new)
  if not passes(old, new) then return false end
  sweep(4096)
  return passes(old, new)
end
local function record(old, new, score)
  if score then redis.call('ZADD', index, score, key) end
  redis.call('HSET', sizes, key, int(new))
  redis.call('HINCRBY', sizes, TOTAL, int(new - (old or 0)))
end
sweep(64)
if redis.call('EXISTS', entry) == 0 then forget(key) end
local old = redis.call('HGET', sizes, key)
old = old and tonumber(old)
"#;

/// `ARGV[4]` the value, `ARGV[5]` the TTL in ms or empty.
const LUA_SET: &str = r#"
local value, ttl = ARGV[4], ARGV[5]
local new = #key + #value
local why = full(old, new)
if why then return {'full', why} end
if ttl == '' then
  redis.call('SET', entry, value)
  record(old, new, '+inf')
else
  redis.call('SET', entry, value, 'PX', ttl)
  record(old, new, int(now + tonumber(ttl)))
end
return {'ok'}
"#;

const LUA_DELETE: &str = r#"
local n = redis.call('DEL', entry)
forget(key)
return {'ok', tostring(n)}
"#;

/// `ARGV[4]` the delta, `ARGV[5]` the TTL in ms of a key this call creates, or empty. The
/// counter comes back as a string: Lua's numbers are doubles.
const LUA_INCREMENT: &str = r#"
local before = redis.call('GET', entry)
local r = redis.pcall('INCRBY', entry, ARGV[4])
if type(r) == 'table' and r.err then return {'err', r.err} end
if not before and ARGV[5] ~= '' then redis.call('PEXPIRE', entry, ARGV[5]) end
local value = redis.call('GET', entry)
local new = #key + #value
local why = full(old, new)
if why then
  if before then redis.call('SET', entry, before, 'KEEPTTL') else redis.call('DEL', entry) end
  return {'full', why}
end
local score = nil
if not old then
  local pttl = redis.call('PTTL', entry)
  score = pttl > 0 and int(now + pttl) or '+inf'
end
record(old, new, score)
return {'ok', value}
"#;

impl RedisScripts {
    fn get() -> &'static Self {
        static SCRIPTS: std::sync::LazyLock<RedisScripts> =
            std::sync::LazyLock::new(|| RedisScripts {
                set: redis::Script::new(&format!("{LUA_BOOKS}{LUA_SET}")),
                delete: redis::Script::new(&format!("{LUA_BOOKS}{LUA_DELETE}")),
                increment: redis::Script::new(&format!("{LUA_BOOKS}{LUA_INCREMENT}")),
            });
        &SCRIPTS
    }
}

/// `message` with every secret replaced by `***`.
fn scrub(secrets: &[String], mut message: String) -> String {
    for secret in secrets {
        message = message.replace(secret.as_str(), "***");
    }
    message
}

/// Whether the redis client was built with TLS: without it, it refuses `rediss://` URLs.
fn tls_supported() -> bool {
    redis::Client::open("rediss://127.0.0.1/").is_ok()
}

/// Escape Redis glob characters so a prefix matches only itself.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The authority part of a URL (`user:password@host:port`) and where it starts.
fn authority(url: &str) -> Option<(usize, &str)> {
    let start = url.find("://")? + 3;
    let rest = &url[start..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((start, &rest[..end]))
}

/// `url` with its user info (which may hold a password) replaced by `***`.
fn redact_url(url: &str) -> String {
    match authority(url) {
        Some((start, auth)) => match auth.rfind('@') {
            Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
            None => url.to_owned(),
        },
        None => "<unparsable URL>".to_owned(),
    }
}

/// The password of `url`, as written and percent-decoded.
fn url_secrets(url: &str) -> Vec<String> {
    let Some((_, auth)) = authority(url) else {
        return Vec::new();
    };
    let Some(password) = auth
        .rfind('@')
        .and_then(|at| auth[..at].split_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
    else {
        return Vec::new();
    };
    let mut secrets = vec![password.to_owned()];
    let decoded = percent_decode(password);
    if decoded != password && !decoded.is_empty() {
        secrets.push(decoded);
    }
    secrets
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    use redb::ReadableTableMetadata as _;
    use std::net::{TcpListener, TcpStream};
    use std::process::{Child, Command, Stdio};

    fn limits() -> KvLimits {
        KvLimits {
            max_key_bytes: 32,
            max_value_bytes: 1024,
            max_list: 5,
            max_entries: 10_000,
            max_bytes: 1024 * 1024,
        }
    }

    /// Limits small enough to reach: 3 entries, 40 bytes.
    fn small() -> KvLimits {
        KvLimits {
            max_entries: 3,
            max_bytes: 40,
            ..limits()
        }
    }

    fn is_full(result: Result<impl fmt::Debug, KvError>, what: &str) {
        match result {
            Err(e @ KvError::StoreFull { .. }) => {
                let message = e.to_string();
                assert!(message.contains("is full"), "{message}");
                assert!(message.contains(what), "{message} should name {what}");
            }
            other => panic!("expected a full store ({what}), got {other:?}"),
        }
    }

    /// How both backends keep [`small`] limits. `store` must be empty.
    async fn limits_behaviour(store: &KvStore) {
        let five = b"12345";
        for k in ["a", "b", "c"] {
            store.set(k, five, None).await.unwrap();
        }
        // A fourth entry is refused and nothing is written; so is a new counter.
        is_full(store.set("d", b"x", None).await, "3 entries");
        assert_eq!(store.get("d").await.unwrap(), None);
        is_full(store.increment("d", 1, None).await, "3 entries");
        assert_eq!(store.get("d").await.unwrap(), None);
        // Overwriting an entry adds none.
        store.set("a", b"1234567890", None).await.unwrap();
        assert!(store.delete("c").await.unwrap());
        store.set("d", b"x", None).await.unwrap();
        assert!(store.delete("d").await.unwrap());
        // Bytes: a (11) + b (6) = 17; e with 30 bytes would make 48.
        let thirty = [b'v'; 30];
        is_full(store.set("e", &thirty, None).await, "40 bytes");
        assert_eq!(store.get("e").await.unwrap(), None);
        store.set("e", &thirty[..20], None).await.unwrap();
        store.set("e", b"", None).await.unwrap();
        // A counter that would grow past the bytes is refused and keeps its value.
        assert!(store.delete("b").await.unwrap());
        assert_eq!(store.increment("n", 9, None).await.unwrap(), 9);
        store.set("a", &[b'a'; 36], None).await.unwrap(); // 37 + 1 + 2 = 40
        is_full(store.increment("n", 1, None).await, "40 bytes");
        assert_eq!(store.get("n").await.unwrap().as_deref(), Some(&b"9"[..]));
        assert_eq!(store.increment("n", -1, None).await.unwrap(), 8);
        is_full(store.set("a", &[b'a'; 37], None).await, "40 bytes");
        store.set("a", b"a", None).await.unwrap();
        // Expired entries make room.
        assert!(store.delete("e").await.unwrap());
        store.set("t", b"x", Some(SHORT_TTL)).await.unwrap();
        is_full(store.set("z", b"x", None).await, "3 entries");
        sleep_ms(SHORT_TTL_MS + 200).await;
        store.set("z", b"x", None).await.unwrap();
        assert_eq!(store.list_keys("").await.unwrap(), ["a", "n", "z"]);
    }

    async fn embedded(dir: &Path, name: &str) -> Result<KvStore, KvError> {
        let config = KvBackendConfig::Embedded {
            durable: true,
            dir: dir.to_owned(),
        };
        KvStore::open(name, config, limits()).await
    }

    /// A store without `durable` behaves the same; what a clean close leaves is read back.
    #[tokio::test]
    async fn a_store_that_is_not_durable_keeps_its_writes_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let config = || KvBackendConfig::Embedded {
            durable: false,
            dir: dir.path().to_owned(),
        };
        let store = KvStore::open("fast", config(), limits()).await.unwrap();
        for i in 1..=200 {
            assert_eq!(store.increment("n", 1, Some(60_000)).await.unwrap(), i);
        }
        drop(store);
        let store = KvStore::open("fast", config(), limits()).await.unwrap();
        assert_eq!(store.increment("n", 1, None).await.unwrap(), 201);
    }

    /// Long enough that a few fsynced writes on a busy machine finish well within it.
    const SHORT_TTL_MS: u64 = 400;
    const SHORT_TTL: Duration = Duration::from_millis(SHORT_TTL_MS);

    async fn sleep_ms(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// The behaviour both backends must share. `store` must be empty.
    async fn behaviour(store: &KvStore) {
        // get / set / delete / exists
        assert_eq!(store.get("a").await.unwrap(), None);
        assert!(!store.exists("a").await.unwrap());
        store.set("a", b"1", None).await.unwrap();
        assert_eq!(store.get("a").await.unwrap().as_deref(), Some(&b"1"[..]));
        assert!(store.exists("a").await.unwrap());
        store.set("a", b"two", None).await.unwrap();
        assert_eq!(store.get("a").await.unwrap().as_deref(), Some(&b"two"[..]));
        store.set("empty", b"", None).await.unwrap();
        assert_eq!(store.get("empty").await.unwrap(), Some(Vec::new()));
        assert!(store.delete("a").await.unwrap());
        assert!(!store.delete("a").await.unwrap());
        assert_eq!(store.get("a").await.unwrap(), None);
        assert!(store.delete("empty").await.unwrap());
        let binary: Vec<u8> = (0..=255).collect();
        store.set("bin", &binary, None).await.unwrap();
        assert_eq!(store.get("bin").await.unwrap(), Some(binary.clone()));
        assert!(store.delete("bin").await.unwrap());

        // TTL: expiry, set without ttl clears one, increment keeps one.
        store.set("t", b"x", Some(SHORT_TTL)).await.unwrap();
        store.set("kept", b"x", Some(SHORT_TTL)).await.unwrap();
        store.set("kept", b"y", None).await.unwrap();
        store.set("ctr", b"5", Some(SHORT_TTL)).await.unwrap();
        assert_eq!(store.increment("ctr", 1, None).await.unwrap(), 6);
        // A window counter: the call that creates it sets its TTL, later ones keep it.
        assert_eq!(
            store.increment("win", 1, Some(SHORT_TTL_MS)).await.unwrap(),
            1
        );
        assert_eq!(store.increment("win", 1, Some(3_600_000)).await.unwrap(), 2);
        assert_eq!(store.get("t").await.unwrap().as_deref(), Some(&b"x"[..]));
        sleep_ms(SHORT_TTL_MS + 200).await;
        assert_eq!(store.get("t").await.unwrap(), None);
        assert!(!store.exists("t").await.unwrap());
        assert!(!store.delete("t").await.unwrap());
        assert_eq!(store.get("ctr").await.unwrap(), None);
        assert_eq!(store.get("win").await.unwrap(), None, "the window expired");
        assert_eq!(store.get("kept").await.unwrap().as_deref(), Some(&b"y"[..]));
        assert!(store.delete("kept").await.unwrap());
        // An expired counter restarts from 0, without the old TTL.
        store
            .set("ctr", b"41", Some(Duration::from_millis(30)))
            .await
            .unwrap();
        sleep_ms(100).await;
        assert_eq!(store.increment("ctr", 2, None).await.unwrap(), 2);
        sleep_ms(50).await;
        assert_eq!(store.get("ctr").await.unwrap().as_deref(), Some(&b"2"[..]));
        assert!(store.delete("ctr").await.unwrap());

        // increment
        assert_eq!(store.increment("n", 5, None).await.unwrap(), 5);
        assert_eq!(store.increment("n", 10, None).await.unwrap(), 15);
        assert_eq!(store.increment("n", -20, None).await.unwrap(), -5);
        assert_eq!(store.get("n").await.unwrap().as_deref(), Some(&b"-5"[..]));
        store.set("n", b"100", None).await.unwrap();
        assert_eq!(store.increment("n", 0, None).await.unwrap(), 100);
        assert_eq!(store.increment("neg", -3, None).await.unwrap(), -3);
        for bad in [
            &b"abc"[..],
            b"",
            b"1.5",
            b" 5",
            b"5 ",
            b"+5",
            b"007",
            b"-0",
            b"-",
            b"9223372036854775808",
            b"\xff",
        ] {
            store.set("bad", bad, None).await.unwrap();
            let got = store.increment("bad", 1, None).await;
            assert!(
                matches!(got, Err(KvError::NotAnInteger)),
                "{bad:?}: {got:?}"
            );
            assert_eq!(store.get("bad").await.unwrap().as_deref(), Some(bad));
        }
        store
            .set("max", i64::MAX.to_string().as_bytes(), None)
            .await
            .unwrap();
        assert!(matches!(
            store.increment("max", 1, None).await,
            Err(KvError::Overflow)
        ));
        assert_eq!(
            store.increment("max", -1, None).await.unwrap(),
            i64::MAX - 1
        );
        store
            .set("min", i64::MIN.to_string().as_bytes(), None)
            .await
            .unwrap();
        assert!(matches!(
            store.increment("min", -1, None).await,
            Err(KvError::Overflow)
        ));
        assert_eq!(store.increment("min", 0, None).await.unwrap(), i64::MIN);
        for k in ["n", "neg", "bad", "max", "min"] {
            assert!(store.delete(k).await.unwrap(), "{k}");
        }

        // list by prefix: sorted, glob characters literal, capped at max_list (5).
        for k in [
            "a*[2", "a*[1", "a*x", "a[x", "ab", "a\\*", "a?", "b", "a]", "ä", "c:",
        ] {
            store.set(k, b"v", None).await.unwrap();
        }
        assert_eq!(store.list_keys("a*[").await.unwrap(), ["a*[1", "a*[2"]);
        assert_eq!(store.list_keys("a\\").await.unwrap(), ["a\\*"]);
        assert_eq!(store.list_keys("a?").await.unwrap(), ["a?"]);
        assert_eq!(store.list_keys("a[").await.unwrap(), ["a[x"]);
        assert_eq!(store.list_keys("a]").await.unwrap(), ["a]"]);
        assert_eq!(store.list_keys("ä").await.unwrap(), ["ä"]);
        assert_eq!(store.list_keys("zz").await.unwrap(), Vec::<String>::new());
        assert_eq!(
            store.list_keys("").await.unwrap(),
            ["a*[1", "a*[2", "a*x", "a?", "a[x"]
        );
        assert_eq!(
            store.list_keys("a").await.unwrap(),
            ["a*[1", "a*[2", "a*x", "a?", "a[x"]
        );
        store.set("a!", b"v", Some(SHORT_TTL)).await.unwrap();
        assert_eq!(store.list_keys("a!").await.unwrap(), ["a!"]);
        sleep_ms(SHORT_TTL_MS + 200).await;
        assert_eq!(store.list_keys("a!").await.unwrap(), Vec::<String>::new());
        assert_eq!(
            store.list_keys("a").await.unwrap(),
            ["a*[1", "a*[2", "a*x", "a?", "a[x"]
        );
        for k in [
            "a*[2", "a*[1", "a*x", "a[x", "ab", "a\\*", "a?", "b", "a]", "ä", "c:",
        ] {
            assert!(store.delete(k).await.unwrap(), "{k}");
        }
        assert_eq!(store.list_keys("").await.unwrap(), Vec::<String>::new());

        // limits, all checked before the backend
        let long = "k".repeat(33);
        assert!(matches!(store.get("").await, Err(KvError::EmptyKey)));
        assert!(matches!(
            store.set("", b"", None).await,
            Err(KvError::EmptyKey)
        ));
        assert!(matches!(store.delete("").await, Err(KvError::EmptyKey)));
        assert!(matches!(store.exists("").await, Err(KvError::EmptyKey)));
        assert!(matches!(
            store.increment("", 1, None).await,
            Err(KvError::EmptyKey)
        ));
        assert!(matches!(
            store.get(&long).await,
            Err(KvError::KeyTooLarge { len: 33, max: 32 })
        ));
        assert!(matches!(
            store.list_keys(&long).await,
            Err(KvError::KeyTooLarge { len: 33, max: 32 })
        ));
        store.set(&long[..32], b"v", None).await.unwrap();
        assert!(store.delete(&long[..32]).await.unwrap());
        assert!(matches!(
            store.set("v", &[0; 1025], None).await,
            Err(KvError::ValueTooLarge {
                len: 1025,
                max: 1024
            })
        ));
        store.set("v", &[0; 1024], None).await.unwrap();
        for ttl in [
            Duration::ZERO,
            Duration::from_micros(999),
            MAX_TTL + Duration::from_millis(1),
            Duration::MAX,
        ] {
            assert!(
                matches!(
                    store.set("v", b"x", Some(ttl)).await,
                    Err(KvError::InvalidTtl)
                ),
                "{ttl:?}"
            );
        }
        store.set("v", b"x", Some(MAX_TTL)).await.unwrap();
        store
            .set("v", b"x", Some(Duration::from_millis(1)))
            .await
            .unwrap();
        sleep_ms(20).await;
        assert!(!store.exists("v").await.unwrap());
    }

    #[tokio::test]
    async fn embedded_behaviour() {
        let dir = tempfile::tempdir().unwrap();
        let store = embedded(dir.path(), "main").await.unwrap();
        behaviour(&store).await;
    }

    fn embedded_usage(store: &KvStore) -> Usage {
        let Backend::Embedded(e) = &store.backend else {
            unreachable!()
        };
        let txn = e.db.begin_read().unwrap();
        read_usage(&txn.open_table(META).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn embedded_limits_hold_and_their_totals_persist() {
        let dir = tempfile::tempdir().unwrap();
        let config = || KvBackendConfig::Embedded {
            durable: true,
            dir: dir.path().to_owned(),
        };
        let store = KvStore::open("small", config(), small()).await.unwrap();
        limits_behaviour(&store).await;
        // a (2) + n (2) + z (2).
        let expected = Usage {
            entries: 3,
            bytes: 6,
        };
        assert_eq!(embedded_usage(&store), expected);
        store.close().await.unwrap();

        // The totals survive a restart, and a store written before they were kept is counted
        // once when it is opened.
        let store = KvStore::open("small", config(), small()).await.unwrap();
        assert_eq!(embedded_usage(&store), expected);
        is_full(store.set("new", b"x", None).await, "3 entries");
        let Backend::Embedded(e) = &store.backend else {
            unreachable!()
        };
        let txn = e.db.begin_write().unwrap();
        txn.delete_table(META).unwrap();
        txn.commit().unwrap();
        store.close().await.unwrap();
        let store = KvStore::open("small", config(), small()).await.unwrap();
        assert_eq!(embedded_usage(&store), expected);

        // A limit lowered below what the store holds refuses growth but allows shrinking.
        store.close().await.unwrap();
        let tighter = KvLimits {
            max_entries: 1,
            max_bytes: 4,
            ..small()
        };
        let store = KvStore::open("small", config(), tighter).await.unwrap();
        is_full(store.set("a", b"longer", None).await, "4 bytes");
        store.set("a", b"", None).await.unwrap();
        assert!(store.delete("n").await.unwrap());
        is_full(store.set("n", b"1", None).await, "limit of 1 entry");
        assert!(store.delete("z").await.unwrap());
        assert_eq!(
            embedded_usage(&store),
            Usage {
                entries: 1,
                bytes: 1
            }
        );
    }

    #[tokio::test]
    async fn embedded_persists_across_reopen_and_creates_private_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data").join("kv");
        let store = embedded(&dir, "sessions").await.unwrap();
        store.set("user", b"alice", None).await.unwrap();
        store
            .set("later", b"x", Some(Duration::from_secs(3600)))
            .await
            .unwrap();
        store
            .set("soon", b"x", Some(Duration::from_millis(30)))
            .await
            .unwrap();
        assert_eq!(store.increment("hits", 3, None).await.unwrap(), 3);
        store.close().await.unwrap();
        assert!(dir.join("sessions.redb").is_file());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
            let mode = std::fs::metadata(dir.join("sessions.redb"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }

        sleep_ms(60).await;
        let store = embedded(&dir, "sessions").await.unwrap();
        assert_eq!(
            store.get("user").await.unwrap().as_deref(),
            Some(&b"alice"[..])
        );
        assert!(store.exists("later").await.unwrap());
        assert!(!store.exists("soon").await.unwrap());
        assert_eq!(store.increment("hits", 1, None).await.unwrap(), 4);
        assert_eq!(
            store.list_keys("").await.unwrap(),
            ["hits", "later", "user"]
        );
    }

    #[tokio::test]
    async fn embedded_stores_in_one_dir_are_independent() {
        let dir = tempfile::tempdir().unwrap();
        let a = embedded(dir.path(), "a").await.unwrap();
        let b = embedded(dir.path(), "b").await.unwrap();
        a.set("k", b"from a", None).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), None);
        b.set("k", b"from b", None).await.unwrap();
        assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"from a"[..]));
        assert!(a.delete("k").await.unwrap());
        assert!(b.exists("k").await.unwrap());
        assert_eq!(a.list_keys("").await.unwrap(), Vec::<String>::new());
        assert_eq!(b.list_keys("").await.unwrap(), ["k"]);
    }

    #[tokio::test]
    async fn embedded_locked_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let _first = embedded(dir.path(), "locked").await.unwrap();
        // A second open takes a second file lock, exactly as another process would.
        let err = embedded(dir.path(), "locked").await.unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, KvError::Open { .. }), "{err:?}");
        assert!(message.contains("locked.redb"), "{message}");
        assert!(message.contains("locked by another process"), "{message}");
    }

    #[tokio::test]
    async fn embedded_sweep_purges_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = embedded(dir.path(), "sweep").await.unwrap();
        let Backend::Embedded(e) = &store.backend else {
            unreachable!()
        };
        // 100 entries that expired a second ago, written in one transaction (whose sweep runs
        // before they exist).
        e.write(|t| {
            let past = t.now - 1000;
            for i in 0..100 {
                t.put(&format!("s{i:03}"), past, b"x")?;
            }
            Ok(())
        })
        .await
        .unwrap();
        store
            .set("keep", b"x", Some(Duration::from_secs(60)))
            .await
            .unwrap();
        let count = |e: &Embedded| {
            let txn = e.db.begin_read().unwrap();
            let data = txn.open_table(DATA).unwrap().len().unwrap();
            let expiry = txn.open_table(EXPIRY).unwrap().len().unwrap();
            (data, expiry)
        };
        assert_eq!(
            count(e),
            (101 - SWEEP_BATCH as u64, 101 - SWEEP_BATCH as u64)
        );
        assert_eq!(store.get("s099").await.unwrap(), None);
        store.set("w", b"x", None).await.unwrap();
        assert_eq!(count(e), (2, 1));
        store.delete("w").await.unwrap();
        assert_eq!(count(e), (1, 1));
        assert_eq!(store.list_keys("").await.unwrap(), ["keep"]);
        // Overwriting drops the old expiry entry.
        store
            .set("keep", b"y", Some(Duration::from_secs(120)))
            .await
            .unwrap();
        assert_eq!(count(e), (1, 1));
        // A listing purges what it skipped.
        store
            .set("gone", b"x", Some(Duration::from_millis(10)))
            .await
            .unwrap();
        sleep_ms(40).await;
        assert_eq!(count(e), (2, 2));
        assert_eq!(store.list_keys("g").await.unwrap(), Vec::<String>::new());
        assert_eq!(count(e), (1, 1));
    }

    #[tokio::test]
    async fn invalid_store_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "../x", "a/b", "a.b", "a*", &"n".repeat(65)] {
            let err = embedded(dir.path(), name).await.unwrap_err();
            assert!(matches!(err, KvError::InvalidStoreName { .. }), "{name}");
        }
        embedded(dir.path(), "Ok_name-1").await.unwrap();
    }

    /// Host functions run in wasmtime's async store, which needs `Send` futures.
    #[test]
    fn store_and_its_futures_are_send() {
        fn send<T: Send>(_: &T) {}
        fn send_sync<T: Send + Sync>() {}
        send_sync::<KvStore>();
        send_sync::<KvError>();
        let store: Option<&KvStore> = None;
        if let Some(s) = store {
            send(&s.get("k"));
            send(&s.set("k", b"", None));
            send(&s.delete("k"));
            send(&s.exists("k"));
            send(&s.increment("k", 1, None));
            send(&s.list_keys("k"));
        }
    }

    #[test]
    fn counters_parse_like_redis() {
        assert_eq!(parse_counter(b"0"), Some(0));
        assert_eq!(parse_counter(b"-12"), Some(-12));
        assert_eq!(parse_counter(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_counter(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b""[..],
            b"-",
            b"-0",
            b"00",
            b"01",
            b"+1",
            b" 1",
            b"1e3",
            b"0x1",
        ] {
            assert_eq!(parse_counter(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@127.0.0.1:1/0"),
            "redis://***@127.0.0.1:1/0"
        );
        assert_eq!(redact_url("redis://u:p@ss@host/"), "redis://***@host/");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
        assert_eq!(url_secrets("redis://u:p%40ss@host/"), ["p%40ss", "p@ss"]);
        assert_eq!(url_secrets("redis://u@host/"), Vec::<String>::new());
        let config = KvBackendConfig::Redis {
            url: "redis://:hunter2@h/".to_owned(),
            prefix: None,
        };
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(glob_escape(r"a*?[]\b:"), r"a\*\?\[\]\\b:");
    }

    // --- Redis ---------------------------------------------------------------------------

    /// A throwaway `redis-server` on a free local port, killed on drop.
    struct RedisServer {
        child: Child,
        port: u16,
    }

    impl RedisServer {
        fn start() -> Self {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            Self::start_on(port)
        }

        fn start_on(port: u16) -> Self {
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--bind", "127.0.0.1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start `redis-server` ({e}); the Redis tests need it: \
                         install it (`apt-get install redis-server`)"
                    )
                });
            let server = Self { child, port };
            for _ in 0..200 {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            panic!("`redis-server` did not accept connections on port {port} within 5s");
        }

        fn url(&self) -> String {
            format!("redis://127.0.0.1:{}/", self.port)
        }
    }

    impl Drop for RedisServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    async fn redis_store(server: &RedisServer, name: &str, prefix: Option<&str>) -> KvStore {
        let config = KvBackendConfig::Redis {
            url: server.url(),
            prefix: prefix.map(str::to_owned),
        };
        KvStore::open(name, config, limits()).await.unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_behaviour_and_namespaces() {
        let server = RedisServer::start();
        let store = redis_store(&server, "main", None).await;
        behaviour(&store).await;

        // Prefixes keep stores apart, including one with glob characters in it.
        let a = redis_store(&server, "a", None).await;
        let b = redis_store(&server, "b", Some(r"t*[?\:")).await;
        let c = redis_store(&server, "c", Some(r"tx[?\:")).await;
        a.set("k", b"from a", None).await.unwrap();
        assert_eq!(b.get("k").await.unwrap(), None);
        b.set("k", b"from b", None).await.unwrap();
        c.set("k2", b"from c", None).await.unwrap();
        assert_eq!(a.get("k").await.unwrap().as_deref(), Some(&b"from a"[..]));
        assert_eq!(a.list_keys("").await.unwrap(), ["k"]);
        assert_eq!(b.list_keys("").await.unwrap(), ["k"]);
        assert_eq!(c.list_keys("").await.unwrap(), ["k2"]);
        assert!(a.delete("k").await.unwrap());
        assert!(b.exists("k").await.unwrap());

        // The default prefix is what other tools see.
        let raw = redis::Client::open(server.url()).unwrap();
        let mut conn = raw.get_multiplexed_async_connection().await.unwrap();
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg("flagon:a:k")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(v, None);
        a.set("k", b"v", None).await.unwrap();
        let v: Option<Vec<u8>> = redis::cmd("GET")
            .arg("flagon:a:k")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"v"[..]));

        // A listing over many keys (several SCAN pages) keeps the smallest, sorted.
        let big = KvStore::open(
            "big",
            KvBackendConfig::Redis {
                url: server.url(),
                prefix: None,
            },
            KvLimits {
                max_list: 50,
                ..limits()
            },
        )
        .await
        .unwrap();
        for i in (0..3000).rev() {
            redis::cmd("SET")
                .arg(format!("flagon:big:k{i:05}"))
                .arg("v")
                .query_async::<()>(&mut conn)
                .await
                .unwrap();
        }
        let expected: Vec<String> = (0..50).map(|i| format!("k{i:05}")).collect();
        assert_eq!(big.list_keys("k").await.unwrap(), expected);
    }

    /// The limits hold for several hosts sharing one store, whose books live in Redis beside
    /// the data and never show up as keys.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_limits_hold_across_hosts() {
        let server = RedisServer::start();
        let config = || KvBackendConfig::Redis {
            url: server.url(),
            prefix: None,
        };
        let store = KvStore::open("small", config(), small()).await.unwrap();
        limits_behaviour(&store).await;
        let other = KvStore::open("small", config(), small()).await.unwrap();
        is_full(other.set("new", b"x", None).await, "3 entries");
        assert!(store.delete("z").await.unwrap());
        other.set("new", b"x", None).await.unwrap();
        is_full(store.set("z", b"x", None).await, "3 entries");
        assert_eq!(other.list_keys("").await.unwrap(), ["a", "n", "new"]);

        // A key Redis dropped by itself (evicted, or deleted by another tool) is forgotten
        // when it is next written, and stops counting.
        let raw = redis::Client::open(server.url()).unwrap();
        let mut conn = raw.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("DEL")
            .arg("flagon:small:new")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        store.set("new", b"y", None).await.unwrap();
        let books: i64 = redis::cmd("ZCARD")
            .arg(&b"flagon:small:\xffindex"[..])
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(books, 3);
        let total: Option<i64> = redis::cmd("HGET")
            .arg(&b"flagon:small:\xffsizes"[..])
            .arg(&b"\xff"[..])
            .query_async(&mut conn)
            .await
            .unwrap();
        // a (2) + n (2) + new (4).
        assert_eq!(total, Some(8));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_outage_fails_requests_then_recovers() {
        let server = RedisServer::start();
        let port = server.port;
        let config = KvBackendConfig::Redis {
            url: format!("redis://:secret-pw@127.0.0.1:{port}/"),
            prefix: None,
        };
        let s = redis_store(&server, "o", None).await;
        s.set("k", b"v", None).await.unwrap();
        drop(server);
        let started = std::time::Instant::now();
        let err = s.get("k").await.unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
        let shown = err.to_string();
        assert!(matches!(err, KvError::Backend(_)), "{shown}");
        assert!(shown.starts_with("kv store `o`: redis: "), "{shown}");
        assert!(!shown.contains("127.0.0.1"), "{shown}");

        let _server = RedisServer::start_on(port);
        let mut recovered = false;
        for _ in 0..50 {
            match s.set("k", b"again", None).await {
                Ok(()) => {
                    recovered = true;
                    break;
                }
                Err(_) => sleep_ms(100).await,
            }
        }
        assert!(recovered, "the store did not reconnect");
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"again"[..]));
        // The server has no password, so this open fails authentication: still no leak.
        if let Err(err) = KvStore::open("o", config, limits()).await {
            assert!(!format!("{err} {err:?}").contains("secret-pw"), "{err:?}");
        }
    }

    #[tokio::test]
    async fn redis_wrong_url_fails_open_without_leaking_the_password() {
        let config = KvBackendConfig::Redis {
            url: "redis://:hunter2@127.0.0.1:1/".to_owned(),
            prefix: None,
        };
        let err = KvStore::open("s", config, limits()).await.unwrap_err();
        assert!(matches!(err, KvError::Backend(_)), "{err:?}");
        let (shown, debug) = (err.to_string(), format!("{err:?}"));
        assert!(
            !shown.contains("hunter2") && !debug.contains("hunter2"),
            "{debug}"
        );
        assert!(shown.contains("redis://***@127.0.0.1:1/"), "{shown}");

        let config = KvBackendConfig::Redis {
            url: "http://127.0.0.1/".to_owned(),
            prefix: None,
        };
        let err = KvStore::open("s", config, limits()).await.unwrap_err();
        assert!(matches!(err, KvError::InvalidConfig(_)), "{err:?}");
        if !tls_supported() {
            let config = KvBackendConfig::Redis {
                url: "rediss://:hunter2@127.0.0.1:1/".to_owned(),
                prefix: None,
            };
            let err = KvStore::open("s", config, limits()).await.unwrap_err();
            let shown = err.to_string();
            assert!(matches!(err, KvError::InvalidConfig(_)), "{shown}");
            assert!(
                shown.contains("TLS") && !shown.contains("hunter2"),
                "{shown}"
            );
        }
    }
}
