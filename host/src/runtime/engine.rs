//! The wasmtime engine: pooling allocation, epoch interruption, and the on-disk cache of
//! precompiled components.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::{Context as _, Result};
use wasmtime::component::Component;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, WasmBacktraceDetails,
};

/// How often the engine's epoch advances. Every running guest reaches a check at least this
/// often: a guest past its deadline is stopped within one tick, and a busy guest yields its
/// thread to other requests once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Wasm stack a guest may use; deeper recursion traps with a stack overflow (500), it never
/// overflows the host's stack.
const MAX_WASM_STACK: usize = 512 * 1024;
/// The native stack each async call runs on; must exceed `MAX_WASM_STACK` with room for host
/// frames.
const ASYNC_STACK: usize = 2 * 1024 * 1024;
/// Core instances one component instance may average: enough for componentize-py's 17.
const CORE_INSTANCES_PER_COMPONENT: u32 = 20;
/// Bytes of each linear memory reset in place (not decommitted) between requests.
const KEEP_RESIDENT_MEMORY: usize = 2 * 1024 * 1024;
/// Bytes at the top of each async stack zeroed in place (not decommitted) between calls:
/// enough for a typical handler call and the host frames under it. wasmtime madvises the rest
/// of the stack after every call: one system call, and TLB shootdowns only when pages were
/// left there.
const KEEP_RESIDENT_STACK: usize = 64 * 1024;
/// Bytes of each table reset in place between requests.
const KEEP_RESIDENT_TABLE: usize = 64 * 1024;

/// Settings that shape the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineSettings {
    /// Component instances alive at once (the pool's size).
    pub max_instances: u32,
    /// The largest linear memory any component is allowed (its `limits.memory`).
    pub max_memory: u64,
}

/// The engine plus the thread that advances its epoch.
pub struct FlagonEngine {
    pub engine: Engine,
    ticker: Arc<AtomicBool>,
}

impl FlagonEngine {
    pub fn new(settings: &EngineSettings) -> Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        let n = settings.max_instances;
        // A Rust component is three core instances (the program plus small shims that hold
        // indirect-call tables) and a C one four, but a Python one (componentize-py: CPython,
        // its libc, the WASI adapter and shims) is seventeen. The count only limits how many
        // exist at once; each is allocated when instantiated, so the headroom costs nothing.
        pool.total_component_instances(n)
            .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memories_per_component(2)
            .max_memory_size(usize::try_from(settings.max_memory).unwrap_or(usize::MAX))
            // Keep recently used slots (and their copy-on-write images) warm for reuse.
            .max_unused_warm_slots(n.min(100))
            // Reset the low, hot part of memories and tables with memset instead of madvise:
            // madvise(DONTNEED) on every request means page faults on the next one and TLB
            // shootdown IPIs across cores. With PAGEMAP_SCAN (Linux 6.7+) only pages the guest
            // actually touched are reset.
            .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
            .table_keep_resident(KEEP_RESIDENT_TABLE)
            .pagemap_scan(wasmtime::Enabled::Auto)
            // The same for the fiber stack each guest call runs on: with zeroing on and nothing
            // kept resident, wasmtime madvises the whole stack after every call, which costs a
            // page fault and TLB-shootdown IPIs per request (about half of a hello request's
            // CPU under a hypervisor; docs/performance.md).
            .async_stack_keep_resident(KEEP_RESIDENT_STACK);

        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .async_stack_size(ASYNC_STACK)
            .memory_init_cow(true)
            // A guest's stack is zeroed before the next guest gets the slot, so nothing one
            // request left on it can be read by another (defence in depth: instances are
            // fresh, but stacks are pooled).
            .async_stack_zeroing(true)
            // Backtraces make trap logs useful to app authors; symbol details stay off so the
            // engine does not depend on the environment (WASMTIME_BACKTRACE_DETAILS).
            .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(64))
            .wasm_backtrace_details(WasmBacktraceDetails::Disable)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("failed to configure the wasmtime engine")?;

        let ticker = Arc::new(AtomicBool::new(true));
        spawn_epoch_ticker(engine.weak(), Arc::downgrade(&ticker));
        Ok(Self { engine, ticker })
    }
}

impl Drop for FlagonEngine {
    fn drop(&mut self) {
        self.ticker.store(false, Ordering::Relaxed);
    }
}

/// A plain thread, not a tokio task: it must keep ticking even when every runtime worker is
/// busy running guests.
fn spawn_epoch_ticker(engine: wasmtime::EngineWeak, alive: Weak<AtomicBool>) {
    std::thread::Builder::new()
        .name("flagon-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(EPOCH_TICK);
                let running = alive.upgrade().is_some_and(|a| a.load(Ordering::Relaxed));
                match engine.upgrade() {
                    Some(engine) if running => engine.increment_epoch(),
                    _ => return,
                }
            }
        })
        .expect("failed to spawn the epoch thread");
}

/// Where a component was loaded from, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Deserialized from the cache: no compilation.
    Cache,
    /// Compiled now (and written to the cache when there is one).
    Compiled,
}

/// Load `wasm` as a component, from the precompiled cache when possible.
///
/// The cache key is the SHA-256 of the component bytes, the wasmtime version and the engine's
/// compatibility hash (target, tunables and features), so a changed component or engine never
/// sees a stale artifact.
pub fn load_component(
    engine: &Engine,
    wasm: &[u8],
    cache_dir: Option<&Path>,
) -> Result<(Component, Origin)> {
    let Some(dir) = cache_dir else {
        return Ok((Component::new(engine, wasm)?, Origin::Compiled));
    };
    let path = dir.join(format!("{}.cwasm", cache_key(engine, wasm)));
    if path.exists() {
        match deserialize_cached(engine, &path) {
            Ok(component) => return Ok((component, Origin::Cache)),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable cache entry: {e:#}")
            }
        }
    }
    let component = Component::new(engine, wasm)?;
    if let Err(e) = store_cached(&component, dir, &path) {
        tracing::warn!(dir = %dir.display(), "could not cache the compiled component: {e:#}");
    }
    Ok((component, Origin::Compiled))
}

fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    struct DigestHasher(ring::digest::Context);
    impl Hasher for DigestHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = DigestHasher(ring::digest::Context::new(&ring::digest::SHA256));
    h.write(b"flagon-cwasm-v1\0");
    h.write(env!("CARGO_PKG_VERSION").as_bytes());
    engine.precompile_compatibility_hash().hash(&mut h);
    h.write(&(wasm.len() as u64).to_le_bytes());
    h.write(wasm);
    // Once per component load, so plain formatting is fast enough.
    h.0.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn deserialize_cached(engine: &Engine, path: &Path) -> Result<Component> {
    let dir = path.parent().unwrap_or(path);
    check_cache_dir_private(dir)?;
    check_ancestors(dir)?;
    // Opened without following symlinks, and checked on the open handle: nothing can swap the
    // file between the check and the read.
    let bytes = read_private(path)?;
    // SAFETY: `deserialize` trusts the bytes to be a component this engine produced: its
    // code is run. Flagon writes these files itself (atomically, in a directory it created
    // with mode 0700), refuses a directory others can write to or that lies under one they
    // could replace, and reads the file through a handle that it checked is a regular file of
    // this account that no one else can write. wasmtime also checks the header against this
    // engine's version and settings and rejects a mismatch.
    #[allow(unsafe_code)]
    let component = unsafe { Component::deserialize(engine, &bytes)? };
    Ok(component)
}

fn store_cached(component: &Component, dir: &Path, path: &Path) -> Result<()> {
    create_private_dir(dir)?;
    check_ancestors(dir)?;
    let bytes = component.serialize()?;
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), unique()));
    write_private(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

fn unique() -> u64 {
    use std::sync::atomic::AtomicU64;
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating the cache directory {}", dir.display()))?;
    }
    check_cache_dir_private(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the cache directory {}", dir.display()))
}

/// Precompiled code is run as-is, so the cache directory must belong to the account running
/// Flagon and must not be writable by anyone else.
fn check_cache_dir_private(dir: &Path) -> Result<()> {
    check_private(dir, "cache directory")
}

/// The effective user of this process (`/proc/self` belongs to it), where that can be known.
#[cfg(unix)]
fn my_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).ok()
}

/// Every directory above the cache directory must be one that no other account could use to
/// swap the cache out: owned by root or this account, and not writable by others unless it
/// has the sticky bit (as `/tmp` does). Group-writable directories are allowed: on systems
/// with a group per user that group is the user's own.
#[cfg(unix)]
fn check_ancestors(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let real =
        std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
    let me = my_uid();
    for above in real.ancestors().skip(1) {
        let meta =
            std::fs::metadata(above).with_context(|| format!("reading {}", above.display()))?;
        let owner_ok = meta.uid() == 0 || me.is_none_or(|uid| uid == meta.uid());
        let open_to_others = meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0;
        if !owner_ok || open_to_others {
            let why = if owner_ok {
                "is writable by other users"
            } else {
                "belongs to another user"
            };
            anyhow::bail!(
                "the cache directory {} lies under {}, which {why}, so another account could replace it; set `[server] cache_dir` (or FLAGON_CACHE_DIR) to a directory of your own",
                dir.display(),
                above.display()
            );
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_ancestors(_dir: &Path) -> Result<()> {
    Ok(())
}

/// Read a cache entry: opened with `O_NOFOLLOW`, then checked on the open handle (a regular
/// file of this account that group and others cannot write).
#[cfg(unix)]
fn read_private(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .with_context(|| format!("opening {} (a symbolic link is refused)", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("the cache entry {} is not a regular file", path.display());
    }
    check_meta(&meta, path, "cache entry")?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(bytes)
}

#[cfg(not(unix))]
fn read_private(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `path` must not be a symlink, must be owned by this process's user, and must not be
/// writable by group or others.
#[cfg(unix)]
fn check_private(path: &Path, what: &str) -> Result<()> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.file_type().is_symlink() {
        anyhow::bail!(
            "the {what} {} is a symbolic link; point `[server] cache_dir` at a real directory",
            path.display()
        );
    }
    check_meta(&meta, path, what)
}

/// Owned by this process's user and not writable by group or others.
#[cfg(unix)]
fn check_meta(meta: &std::fs::Metadata, path: &Path, what: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = my_uid();
    let shown = path.display();
    if me.is_some_and(|uid| uid != meta.uid()) {
        anyhow::bail!(
            "the {what} {shown} belongs to another user; use a directory of your own (`[server] cache_dir` or FLAGON_CACHE_DIR)"
        );
    }
    if meta.mode() & 0o022 != 0 {
        anyhow::bail!(
            "the {what} {shown} is writable by other users; run `chmod go-w {shown}` or set `[server] cache_dir`"
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _what: &str) -> Result<()> {
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// The smallest component: the preamble alone.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    fn engine() -> FlagonEngine {
        FlagonEngine::new(&EngineSettings {
            max_instances: 1,
            max_memory: 1 << 20,
        })
        .unwrap()
    }

    fn origin(engine: &FlagonEngine, dir: &Path) -> Origin {
        load_component(&engine.engine, EMPTY_COMPONENT, Some(dir))
            .unwrap()
            .1
    }

    #[test]
    fn the_cache_is_used_only_where_no_one_else_could_write() {
        let engine = engine();
        let root = tempfile::tempdir().unwrap();

        let private = root.path().join("private");
        assert_eq!(origin(&engine, &private), Origin::Compiled);
        assert_eq!(origin(&engine, &private), Origin::Cache);

        // Under a directory anyone may write to (and without the sticky bit), the cache
        // directory could be swapped for another: it is not used.
        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let under_open = open.join("cache");
        assert_eq!(origin(&engine, &under_open), Origin::Compiled);
        assert_eq!(origin(&engine, &under_open), Origin::Compiled);
        // With the sticky bit (as on /tmp) others cannot replace what is ours.
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(origin(&engine, &under_open), Origin::Compiled);
        assert_eq!(origin(&engine, &under_open), Origin::Cache);

        // A cache entry replaced by a symbolic link is not followed.
        let entry = std::fs::read_dir(&private)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
            .unwrap();
        let elsewhere = root.path().join("elsewhere.cwasm");
        std::fs::rename(&entry, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
        assert!(read_private(&entry).is_err());
        assert_eq!(origin(&engine, &private), Origin::Compiled);
    }
}
