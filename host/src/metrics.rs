//! Process-wide metrics, served as Prometheus text on the admin listener's `/metrics`
//! (`app::admin`). A leaf every folder may use, like `text`.
//!
//! One registry for the life of the process, so counters survive app reloads. Everything is
//! named `flagon_...`; `docs/operator-guide.md` ("Health and metrics") lists every family.
//!
//! The request path stays cheap: what belongs to one component, key-value store or database
//! is resolved once, at load, into a handle ([`Guest`], [`Kv`], [`Sql`]) whose counters are
//! plain atomics; the per-request HTTP series are one lookup in a small label set whose
//! strings are shared (`Arc<str>`), never copied.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// `Content-Type` of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of the Prometheus text format (0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
type Seconds = Counter<f64, AtomicU64>;

/// The route label of a request: its route's name (or pattern), a static mount, or nothing
/// (no route matched: 404, 405, a bad host). Never the raw path, so the series stay few.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RouteLabel {
    /// No route matched.
    None,
    /// A `[[static]]` mount answered.
    Static,
    /// A route's `name`, else its path pattern.
    Route(Arc<str>),
}

impl RouteLabel {
    pub fn route(name_or_pattern: &str) -> Self {
        Self::Route(Arc::from(name_or_pattern))
    }

    fn as_str(&self) -> &str {
        match self {
            RouteLabel::None => "<none>",
            RouteLabel::Static => "<static>",
            RouteLabel::Route(r) => r,
        }
    }
}

impl EncodeLabelValue for RouteLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    route: RouteLabel,
    method: &'static str,
    status: StatusLabel,
}

/// The status label of a request: a standard status by its code, any other by its class. A
/// guest may answer any status from 200 to 999; labelled by code, one route and method could
/// make 800 series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum StatusLabel {
    /// A status `http` knows a reason phrase for (`200`, `404`, `503`...).
    Code(u16),
    /// Another status from 100 to 599, by its first digit: `2xx` for 299.
    Class(u8),
    /// 600 and above.
    Other,
}

impl StatusLabel {
    fn of(status: u16) -> Self {
        let standard = http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .is_some();
        match status {
            100..=599 if standard => Self::Code(status),
            100..=599 => Self::Class((status / 100) as u8),
            _ => Self::Other,
        }
    }
}

impl EncodeLabelValue for StatusLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let class = match self {
            StatusLabel::Code(code) => return EncodeLabelValue::encode(code, encoder),
            StatusLabel::Class(1) => "1xx",
            StatusLabel::Class(2) => "2xx",
            StatusLabel::Class(3) => "3xx",
            StatusLabel::Class(4) => "4xx",
            StatusLabel::Class(5) => "5xx",
            StatusLabel::Class(_) | StatusLabel::Other => "other",
        };
        EncodeLabelValue::encode(&class, encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RouteMethodLabels {
    route: RouteLabel,
    method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ComponentLabels {
    component: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreLabels {
    store: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StoreOpLabels {
    store: Arc<str>,
    op: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DatabaseLabels {
    database: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DatabaseOpLabels {
    database: Arc<str>,
    op: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Every family, registered once.
struct Metrics {
    registry: Registry,
    http_requests: Family<RequestLabels, Counter>,
    http_duration: HistogramFamily<RouteMethodLabels>,
    instances_created: Family<ComponentLabels, Counter>,
    instances_in_use: Gauge,
    traps: Family<ComponentLabels, Counter>,
    timeouts: Family<ComponentLabels, Counter>,
    overloaded: Family<ComponentLabels, Counter>,
    guest_cpu: Family<ComponentLabels, Seconds>,
    guest_memory: HistogramFamily<ComponentLabels>,
    kv_calls: Family<StoreOpLabels, Counter>,
    kv_errors: Family<StoreLabels, Counter>,
    kv_duration: HistogramFamily<StoreLabels>,
    sql_calls: Family<DatabaseOpLabels, Counter>,
    sql_errors: Family<DatabaseLabels, Counter>,
    sql_duration: HistogramFamily<DatabaseLabels>,
    sql_pool_size: Family<DatabaseLabels, Gauge>,
    sql_pool_in_use: Family<DatabaseLabels, Gauge>,
    reloads: Family<ResultLabels, Counter>,
    loaded_at: Gauge<f64, AtomicU64>,
}

/// Request latency: 0.5 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Store and database calls: 0.1 ms to about 3 s.
fn call_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Linear memory: 64 KiB to 4 GiB, by fours.
fn memory_histogram() -> Histogram {
    Histogram::new(exponential_buckets(65536.0, 4.0, 9))
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("flagon");
    let m = Metrics {
        registry: Registry::default(),
        http_requests: Family::default(),
        http_duration: Family::new_with_constructor(latency_histogram),
        instances_created: Family::default(),
        instances_in_use: Gauge::default(),
        traps: Family::default(),
        timeouts: Family::default(),
        overloaded: Family::default(),
        guest_cpu: Family::default(),
        guest_memory: Family::new_with_constructor(memory_histogram),
        kv_calls: Family::default(),
        kv_errors: Family::default(),
        kv_duration: Family::new_with_constructor(call_histogram),
        sql_calls: Family::default(),
        sql_errors: Family::default(),
        sql_duration: Family::new_with_constructor(call_histogram),
        sql_pool_size: Family::default(),
        sql_pool_in_use: Family::default(),
        reloads: Family::default(),
        loaded_at: Gauge::default(),
    };
    // Counters get their `_total` suffix from the encoder.
    registry.register(
        "http_requests",
        "Requests answered, by route (name or pattern; <static>, <none>), method and status \
         (a non-standard status by class: 1xx to 5xx; other past 599)",
        m.http_requests.clone(),
    );
    registry.register_with_unit(
        "http_request_duration",
        "Time from the request head to the response head, by route and method",
        Unit::Seconds,
        m.http_duration.clone(),
    );
    registry.register(
        "instances_created",
        "Component instances created (handlers, extensions, DB adapters)",
        m.instances_created.clone(),
    );
    registry.register(
        "instances_in_use",
        "Instances alive now: instance-pool slots in use",
        m.instances_in_use.clone(),
    );
    registry.register(
        "guest_traps",
        "Calls into a component that trapped",
        m.traps.clone(),
    );
    registry.register(
        "guest_timeouts",
        "Calls into a component stopped at their deadline",
        m.timeouts.clone(),
    );
    registry.register(
        "overloaded",
        "Calls refused because every instance slot was in use (answered 503)",
        m.overloaded.clone(),
    );
    registry.register_with_unit(
        "guest_cpu",
        "CPU time of the threads running a component's calls, host calls made from them \
         included (metered from the admin listener's start)",
        Unit::Seconds,
        m.guest_cpu.clone(),
    );
    registry.register_with_unit(
        "guest_memory_peak",
        "Largest linear memory each instance reached",
        Unit::Bytes,
        m.guest_memory.clone(),
    );
    registry.register(
        "kv_calls",
        "Key-value calls by components, by store and operation",
        m.kv_calls.clone(),
    );
    registry.register(
        "kv_errors",
        "Key-value calls that returned an error",
        m.kv_errors.clone(),
    );
    registry.register_with_unit(
        "kv_call_duration",
        "Time of key-value calls",
        Unit::Seconds,
        m.kv_duration.clone(),
    );
    registry.register(
        "sql_calls",
        "SQL calls through a database's adapter, by operation",
        m.sql_calls.clone(),
    );
    registry.register(
        "sql_errors",
        "SQL calls that returned an error (waiting for a connection included)",
        m.sql_errors.clone(),
    );
    registry.register_with_unit(
        "sql_call_duration",
        "Time of SQL calls in the adapter",
        Unit::Seconds,
        m.sql_duration.clone(),
    );
    registry.register(
        "sql_pool_size",
        "Adapter instances (connections) a database's pool may hold",
        m.sql_pool_size.clone(),
    );
    registry.register(
        "sql_pool_in_use",
        "Adapter instances leased now (a statement or a transaction)",
        m.sql_pool_in_use.clone(),
    );
    registry.register(
        "app_reloads",
        "App reloads, by result (ok, error)",
        m.reloads.clone(),
    );
    registry.register(
        "app_loaded_timestamp_seconds",
        "When the app now served was loaded (Unix time)",
        m.loaded_at.clone(),
    );
    Metrics { registry, ..m }
});

/// Everything, in the OpenMetrics text format (ends with `# EOF`).
pub fn encode_openmetrics() -> String {
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::text::encode(&mut out, &METRICS.registry)
        .expect("writing to a String cannot fail");
    out
}

/// Everything, in the Prometheus text format 0.0.4.
pub fn encode_prometheus() -> String {
    let mut out = String::with_capacity(16 * 1024);
    prometheus_client::encoding::prometheus_text::encode(&mut out, &METRICS.registry)
        .expect("writing to a String cannot fail");
    out
}

/// A method as a label: the standard ones by name, any other as `OTHER` (a client may send
/// any token; the label set must stay small).
/// The method labels, in the order of [`method_index`].
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

fn method_index(method: &http::Method) -> usize {
    match *method {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::DELETE => 4,
        http::Method::PATCH => 5,
        http::Method::OPTIONS => 6,
        http::Method::CONNECT => 7,
        http::Method::TRACE => 8,
        _ => 9,
    }
}

/// The statuses whose series a route keeps at hand ([`RouteSeries`]); others are looked up.
const COMMON_STATUSES: [u16; 22] = [
    200, 201, 204, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 413, 422, 429, 500,
    502, 503, 504,
];

/// One route's HTTP series, kept at hand after first use: a request then costs an atomic add
/// and one histogram observation, not a lookup in the label families (a lock and two hashes
/// of the label set each).
#[derive(Debug)]
pub struct RouteSeries {
    label: RouteLabel,
    durations: [OnceLock<Histogram>; METHODS.len()],
    counts: [[OnceLock<Counter>; COMMON_STATUSES.len()]; METHODS.len()],
}

impl RouteSeries {
    pub fn new(label: RouteLabel) -> Self {
        Self {
            label,
            durations: Default::default(),
            counts: Default::default(),
        }
    }

    /// Requests no route matched.
    pub fn none() -> &'static RouteSeries {
        static NONE: LazyLock<RouteSeries> = LazyLock::new(|| RouteSeries::new(RouteLabel::None));
        &NONE
    }

    /// Requests a static mount answered.
    pub fn statics() -> &'static RouteSeries {
        static STATIC: LazyLock<RouteSeries> =
            LazyLock::new(|| RouteSeries::new(RouteLabel::Static));
        &STATIC
    }
}

/// One request answered: counted by route, method and status (a non-standard status by its
/// class, see [`StatusLabel`]), and timed.
pub fn http_request(route: &RouteSeries, method: &http::Method, status: u16, took: Duration) {
    let m = &*METRICS;
    let mi = method_index(method);
    let method = METHODS[mi];
    let count = |status: u16| {
        m.http_requests
            .get_or_create(&RequestLabels {
                route: route.label.clone(),
                method,
                status: StatusLabel::of(status),
            })
            .clone()
    };
    match COMMON_STATUSES.iter().position(|&s| s == status) {
        Some(si) => route.counts[mi][si].get_or_init(|| count(status)).inc(),
        None => count(status).inc(),
    };
    route.durations[mi]
        .get_or_init(|| {
            m.http_duration
                .get_or_create(&RouteMethodLabels {
                    route: route.label.clone(),
                    method,
                })
                .clone()
        })
        .observe(took.as_secs_f64());
}

/// An app load finished; `app_loaded_timestamp_seconds` is now.
pub fn loaded() {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    METRICS.loaded_at.set(now.as_secs_f64());
}

/// A reload ended: `ok` if the new app is served, else the old one still is.
pub fn reloaded(ok: bool) {
    let result = if ok { "ok" } else { "error" };
    METRICS
        .reloads
        .get_or_create(&ResultLabels { result })
        .inc();
    if ok {
        loaded();
    }
}

/// One component's series (or a database adapter's, as `sql:<database>`), resolved at load.
#[derive(Debug)]
pub struct Guest {
    created: Counter,
    in_use: Gauge,
    traps: Counter,
    timeouts: Counter,
    overloaded: Counter,
    cpu: Seconds,
    memory: Histogram,
}

impl Guest {
    pub fn new(component: &str) -> Arc<Self> {
        let m = &*METRICS;
        let labels = ComponentLabels {
            component: Arc::from(component),
        };
        Arc::new(Self {
            created: m.instances_created.get_or_create_owned(&labels),
            in_use: m.instances_in_use.clone(),
            traps: m.traps.get_or_create_owned(&labels),
            timeouts: m.timeouts.get_or_create_owned(&labels),
            overloaded: m.overloaded.get_or_create_owned(&labels),
            cpu: m.guest_cpu.get_or_create_owned(&labels),
            memory: m.guest_memory.get_or_create_owned(&labels),
        })
    }

    /// An instance was created (it holds a pool slot until [`Guest::ended`]).
    pub fn instantiated(&self) {
        self.created.inc();
        self.in_use.inc();
    }

    /// An instance [`Guest::instantiated`] is gone, having grown its memory to `peak` bytes.
    pub fn ended(&self, peak: usize) {
        self.in_use.dec();
        self.memory.observe(peak as f64);
    }

    pub fn trapped(&self) {
        self.traps.inc();
    }

    pub fn timed_out(&self) {
        self.timeouts.inc();
    }

    pub fn overloaded(&self) {
        self.overloaded.inc();
    }

    /// CPU time spent in one call (see [`CpuMeter`]).
    pub fn cpu(&self, spent: Duration) {
        if !spent.is_zero() {
            self.cpu.inc_by(spent.as_secs_f64());
        }
    }
}

/// Adds up the CPU time of the calling thread over the polls of a future: every poll of a
/// guest call runs the guest (and the host functions it calls synchronously) on the polling
/// thread, so the thread's CPU clock before and after a poll brackets exactly that work, and
/// time the call spends waiting (for I/O, a timer, another task) is not counted.
///
/// `CLOCK_THREAD_CPUTIME_ID` is a system call (no vDSO): two per poll, about a microsecond
/// together, and most calls finish in one poll. So the meter runs only once
/// [`enable_cpu_metering`] was called (the admin listener does, when it starts: without it
/// nobody reads `flagon_guest_cpu_seconds_total`); before, a poll costs one relaxed load. Off
/// unix it counts nothing.
#[derive(Debug, Default)]
pub struct CpuMeter {
    nanos: u64,
}

/// Whether [`CpuMeter`]s read the thread CPU clock; see [`enable_cpu_metering`].
static CPU_METERING: AtomicBool = AtomicBool::new(false);

/// Turn guest CPU metering on for the rest of the process (idempotent). Polls from now on are
/// measured; calls before counted nothing.
pub fn enable_cpu_metering() {
    CPU_METERING.store(true, Ordering::Relaxed);
}

impl CpuMeter {
    /// Run `f` (one poll), adding the thread CPU time it took if metering is on (see
    /// [`enable_cpu_metering`]); else just run it, with no system call.
    pub fn measure<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.measure_if(CPU_METERING.load(Ordering::Relaxed), f)
    }

    fn measure_if<R>(&mut self, on: bool, f: impl FnOnce() -> R) -> R {
        if !on {
            return f();
        }
        let before = thread_cpu_nanos();
        let out = f();
        self.nanos = self
            .nanos
            .saturating_add(thread_cpu_nanos().saturating_sub(before));
        out
    }

    pub fn spent(&self) -> Duration {
        Duration::from_nanos(self.nanos)
    }
}

#[cfg(unix)]
#[allow(unsafe_code)]
fn thread_cpu_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec`, and the clock id is a constant the kernel
    // knows; `clock_gettime` writes nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
}

#[cfg(not(unix))]
fn thread_cpu_nanos() -> u64 {
    0
}

/// A key-value operation, as its `op` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvOp {
    Get,
    Set,
    Delete,
    Exists,
    Increment,
    ListKeys,
}

impl KvOp {
    const ALL: [KvOp; 6] = [
        KvOp::Get,
        KvOp::Set,
        KvOp::Delete,
        KvOp::Exists,
        KvOp::Increment,
        KvOp::ListKeys,
    ];

    fn label(self) -> &'static str {
        match self {
            KvOp::Get => "get",
            KvOp::Set => "set",
            KvOp::Delete => "delete",
            KvOp::Exists => "exists",
            KvOp::Increment => "increment",
            KvOp::ListKeys => "list-keys",
        }
    }
}

/// One key-value store's series, resolved when it is opened.
#[derive(Debug, Clone)]
pub struct Kv {
    calls: [Counter; 6],
    errors: Counter,
    duration: Histogram,
}

impl Kv {
    pub fn new(store: &str) -> Self {
        let m = &*METRICS;
        let store: Arc<str> = Arc::from(store);
        let calls = KvOp::ALL.map(|op| {
            m.kv_calls.get_or_create_owned(&StoreOpLabels {
                store: store.clone(),
                op: op.label(),
            })
        });
        let labels = StoreLabels { store };
        Self {
            calls,
            errors: m.kv_errors.get_or_create_owned(&labels),
            duration: m.kv_duration.get_or_create_owned(&labels),
        }
    }

    /// Count and time one call.
    pub async fn observe<T, E>(
        &self,
        op: KvOp,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.calls[op as usize].inc();
        timed(&self.duration, &self.errors, call).await
    }
}

/// Await `call`, observing its time in `duration` and counting it in `errors` if it failed.
async fn timed<T, E>(
    duration: &Histogram,
    errors: &Counter,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let started = Instant::now();
    let out = call.await;
    duration.observe(started.elapsed().as_secs_f64());
    if out.is_err() {
        errors.inc();
    }
    out
}

/// A SQL operation, as its `op` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlOp {
    Query,
    Execute,
    Begin,
    Commit,
    Rollback,
    /// A migration script.
    Script,
}

impl SqlOp {
    const ALL: [SqlOp; 6] = [
        SqlOp::Query,
        SqlOp::Execute,
        SqlOp::Begin,
        SqlOp::Commit,
        SqlOp::Rollback,
        SqlOp::Script,
    ];

    fn label(self) -> &'static str {
        match self {
            SqlOp::Query => "query",
            SqlOp::Execute => "execute",
            SqlOp::Begin => "begin",
            SqlOp::Commit => "commit",
            SqlOp::Rollback => "rollback",
            SqlOp::Script => "script",
        }
    }
}

/// One database's series, resolved when its pool is made.
#[derive(Debug, Clone)]
pub struct Sql {
    calls: [Counter; 6],
    errors: Counter,
    duration: Histogram,
    in_use: Gauge,
}

impl Sql {
    /// The series of `database`, whose pool holds at most `size` instances.
    pub fn new(database: &str, size: u32) -> Self {
        let m = &*METRICS;
        let database: Arc<str> = Arc::from(database);
        let calls = SqlOp::ALL.map(|op| {
            m.sql_calls.get_or_create_owned(&DatabaseOpLabels {
                database: database.clone(),
                op: op.label(),
            })
        });
        let labels = DatabaseLabels { database };
        m.sql_pool_size.get_or_create(&labels).set(i64::from(size));
        Self {
            calls,
            errors: m.sql_errors.get_or_create_owned(&labels),
            duration: m.sql_duration.get_or_create_owned(&labels),
            in_use: m.sql_pool_in_use.get_or_create_owned(&labels),
        }
    }

    /// Count and time one call.
    pub async fn observe<T, E>(
        &self,
        op: SqlOp,
        call: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        self.calls[op as usize].inc();
        timed(&self.duration, &self.errors, call).await
    }

    /// A call failed before it reached the adapter (no connection within the timeout).
    pub fn error(&self) {
        self.errors.inc();
    }

    /// One instance leased until the guard is dropped.
    pub fn lease(&self) -> InUse {
        self.in_use.inc();
        InUse(self.in_use.clone())
    }
}

/// Counts one leased adapter instance in `sql_pool_in_use` while it lives.
#[derive(Debug)]
pub struct InUse(Gauge);

impl Drop for InUse {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_named_and_labelled() {
        let route = RouteSeries::new(RouteLabel::route("metrics-unit-test"));
        http_request(&route, &http::Method::GET, 201, Duration::from_millis(3));
        http_request(
            RouteSeries::none(),
            &http::Method::from_bytes(b"BREW").unwrap(),
            404,
            Duration::ZERO,
        );
        let guest = Guest::new("metrics-unit-guest");
        guest.instantiated();
        guest.trapped();
        guest.cpu(Duration::from_millis(5));
        guest.ended(1 << 20);
        let kv = Kv::new("metrics-unit-store");
        let _ = futures_util::FutureExt::now_or_never(
            kv.observe(KvOp::Get, async { Err::<(), ()>(()) }),
        );
        let sql = Sql::new("metrics-unit-db", 4);
        let lease = sql.lease();
        // Again, through the series the route now keeps at hand: the same counters.
        http_request(&route, &http::Method::GET, 201, Duration::from_millis(3));
        let text = encode_prometheus();
        for line in [
            "flagon_http_requests_total{route=\"metrics-unit-test\",method=\"GET\",status=\"201\"} 2",
            "flagon_http_requests_total{route=\"<none>\",method=\"OTHER\",status=\"404\"} 1",
            "flagon_http_request_duration_seconds_count{route=\"metrics-unit-test\",method=\"GET\"} 2",
            "flagon_instances_created_total{component=\"metrics-unit-guest\"} 1",
            "flagon_guest_traps_total{component=\"metrics-unit-guest\"} 1",
            "flagon_guest_cpu_seconds_total{component=\"metrics-unit-guest\"} 0.005",
            "flagon_guest_memory_peak_bytes_count{component=\"metrics-unit-guest\"} 1",
            "flagon_kv_calls_total{store=\"metrics-unit-store\",op=\"get\"} 1",
            "flagon_kv_errors_total{store=\"metrics-unit-store\"} 1",
            "flagon_sql_pool_size{database=\"metrics-unit-db\"} 4",
            "flagon_sql_pool_in_use{database=\"metrics-unit-db\"} 1",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
        drop(lease);
        assert!(
            encode_prometheus().contains("flagon_sql_pool_in_use{database=\"metrics-unit-db\"} 0")
        );
        let open = encode_openmetrics();
        assert!(open.ends_with("# EOF\n"), "{open}");
        assert!(
            open.contains("# TYPE flagon_http_requests counter"),
            "{open}"
        );
    }

    #[test]
    fn statuses_are_labelled_by_code_only_when_standard() {
        for (status, label) in [
            (200, StatusLabel::Code(200)),
            (204, StatusLabel::Code(204)),
            (404, StatusLabel::Code(404)),
            (503, StatusLabel::Code(503)),
            (299, StatusLabel::Class(2)),
            (399, StatusLabel::Class(3)),
            (499, StatusLabel::Class(4)),
            (599, StatusLabel::Class(5)),
            (600, StatusLabel::Other),
            (999, StatusLabel::Other),
            (0, StatusLabel::Other),
        ] {
            assert_eq!(StatusLabel::of(status), label, "{status}");
        }
        // However many odd statuses a guest answers, a route and method get at most one series
        // per class (and one `other`) beside the standard codes.
        let route = RouteSeries::new(RouteLabel::route("metrics-unit-status"));
        for status in 200..=999 {
            http_request(&route, &http::Method::GET, status, Duration::ZERO);
        }
        let text = encode_prometheus();
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("flagon_http_requests_total{route=\"metrics-unit-status\""))
            .collect();
        let standard = (200..=599)
            .filter(|&s| matches!(StatusLabel::of(s), StatusLabel::Code(_)))
            .count();
        assert_eq!(series.len(), standard + 5, "{series:#?}");
        for line in [
            "flagon_http_requests_total{route=\"metrics-unit-status\",method=\"GET\",status=\"200\"} 1",
            "flagon_http_requests_total{route=\"metrics-unit-status\",method=\"GET\",status=\"other\"} 400",
        ] {
            assert!(series.contains(&line), "no `{line}` in {series:#?}");
        }
        for class in ["2xx", "3xx", "4xx", "5xx"] {
            assert!(
                series
                    .iter()
                    .any(|l| l.contains(&format!("status=\"{class}\""))),
                "no {class} in {series:#?}"
            );
        }
    }

    #[test]
    fn the_cpu_meter_is_free_until_enabled() {
        let mut meter = CpuMeter::default();
        let out = meter.measure_if(false, || {
            let t = Instant::now();
            let mut x = 0u64;
            while t.elapsed() < Duration::from_millis(20) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            7
        });
        assert_eq!((out, meter.spent()), (7, Duration::ZERO));
    }

    #[test]
    fn the_cpu_meter_counts_work_not_waiting() {
        enable_cpu_metering();
        let mut meter = CpuMeter::default();
        meter.measure(|| std::thread::sleep(Duration::from_millis(30)));
        let slept = meter.spent();
        meter.measure(|| {
            let t = Instant::now();
            let mut x = 0u64;
            while t.elapsed() < Duration::from_millis(30) {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        });
        let worked = meter.spent() - slept;
        assert!(slept < Duration::from_millis(10), "{slept:?}");
        if cfg!(unix) {
            // 30 ms of spinning, of which other tests on a busy machine may take a share.
            assert!(
                worked > slept && worked >= Duration::from_millis(3),
                "{worked:?}"
            );
        }
    }
}
