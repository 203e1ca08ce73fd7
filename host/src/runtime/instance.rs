//! A handler component linked once into an `InstancePre` and instantiated fresh for every
//! request, in a `Store` that never serves a second one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::{InstancePre, ResourceTable};
use wasmtime::{
    Engine, PoolConcurrencyLimitError, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder,
    Trap, UpdateDeadline,
};

use super::bindings::{HandlerPre, Request, Response};
use super::engine;
use crate::metrics::{CpuMeter, Guest};

/// What the runtime keeps in every `Store`: the resource table, the memory limit and the
/// deadline of the call, and the component's metrics.
pub struct RuntimeCtx {
    pub table: ResourceTable,
    limits: Limits,
    /// When this request's time in the guest is up (checked at every epoch tick); set when the
    /// call starts.
    deadline: Option<Instant>,
    /// Where this instance is counted (none for a store outside any app, e.g. in a test).
    guest: Option<Arc<Guest>>,
    /// An instance was created in this store (it holds a pool slot until the store is dropped).
    instantiated: bool,
}

/// The memory limit, and the most linear memory the store's instances held at once.
struct Limits {
    inner: StoreLimits,
    /// Bytes of linear memory now (all memories of the instance), and at most so far.
    memory: usize,
    peak: usize,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            // A new memory is announced as growing from 0 to its initial size.
            self.memory = self.memory.saturating_add(desired.saturating_sub(current));
            self.peak = self.peak.max(self.memory);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl RuntimeCtx {
    /// A context whose instance may grow its linear memory to `memory` bytes.
    pub fn new(memory: usize) -> Self {
        Self {
            table: ResourceTable::new(),
            limits: Limits {
                inner: StoreLimitsBuilder::new()
                    .memory_size(memory)
                    // Failing growth returns -1 to the guest (its allocator reports
                    // out-of-memory and usually aborts, which traps); the host itself never
                    // allocates past the limit.
                    .trap_on_grow_failure(false)
                    .build(),
                memory: 0,
                peak: 0,
            },
            deadline: None,
            guest: None,
            instantiated: false,
        }
    }

    /// Count this store's instance, calls and failures in `guest`'s series.
    pub fn with_metrics(mut self, guest: Arc<Guest>) -> Self {
        self.guest = Some(guest);
        self
    }

    /// Where this store is counted.
    pub fn metrics(&self) -> Option<&Arc<Guest>> {
        self.guest.as_ref()
    }

    /// An instance was created in this store: counted as created, and as a slot in use until
    /// the store is dropped.
    pub fn instantiated(&mut self) {
        if !self.instantiated {
            self.instantiated = true;
            if let Some(guest) = &self.guest {
                guest.instantiated();
            }
        }
    }
}

impl Drop for RuntimeCtx {
    fn drop(&mut self) {
        if self.instantiated
            && let Some(guest) = &self.guest
        {
            guest.ended(self.limits.peak);
        }
    }
}

impl RuntimeCtx {
    /// Stop the guest at `deadline` (checked at every epoch tick); `None` stops it at once.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }
}

/// Put a new `Store` under its runtime's limits: the memory limiter, and an epoch callback
/// that stops the guest past its deadline and otherwise yields the thread once per tick.
pub fn guard_store<T: RuntimeView>(store: &mut Store<T>) {
    store.limiter(|s| &mut s.runtime().limits);
    store.epoch_deadline_callback(|mut ctx| {
        let past = ctx
            .data_mut()
            .runtime()
            .deadline
            .is_none_or(|d| Instant::now() >= d);
        Ok(if past {
            UpdateDeadline::Interrupt
        } else {
            // Not yet: let other requests on this thread run, then check again next tick.
            // tokio's `yield_now` defers the wake-up until the worker has polled the I/O
            // driver, so a spinning guest cannot starve the network and timers.
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        })
    });
    store.set_epoch_deadline(1);
}

/// How the runtime reaches its part of a `Store`'s data.
pub trait RuntimeView: Send + 'static {
    fn runtime(&mut self) -> &mut RuntimeCtx;
}

/// Why a request to a guest produced no response.
#[derive(Debug)]
pub enum Failure {
    /// The guest ran past its deadline and was stopped.
    Timeout,
    /// Every instance slot is in use.
    Overloaded,
    /// The guest trapped (panic, stack overflow, out-of-bounds access, ...) or failed to
    /// instantiate. The detail is for the log only.
    Trap(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout => f.write_str("stopped at its deadline"),
            Failure::Overloaded => f.write_str("no free instance slot"),
            Failure::Trap(detail) => write!(f, "trapped: {detail}"),
        }
    }
}

/// A component exporting `flagon:app/handler`, ready to be instantiated per request.
pub struct Handler<T: 'static> {
    pre: HandlerPre<T>,
    /// Time one request may spend in the guest.
    timeout: Duration,
}

impl<T: RuntimeView> Handler<T> {
    /// Wrap a pre-linked component; fails if it does not export the handler world.
    pub fn new(pre: InstancePre<T>, timeout: Duration) -> wasmtime::Result<Self> {
        Ok(Self {
            pre: HandlerPre::new(pre)?,
            timeout,
        })
    }

    /// Run one request through a fresh instance whose `Store` holds `data`. The `Store` comes
    /// back with the outcome, for what the host calls changed during the call; drop it then:
    /// a `Store` never serves a second request.
    ///
    /// The `Store` is made before the returned future first runs, so the future carries a
    /// pointer to it rather than `data` itself (fewer copies per request).
    pub fn call<'a>(
        &'a self,
        engine: &Engine,
        mut data: T,
        request: &'a Request,
    ) -> impl Future<Output = (Result<Response, Failure>, Store<T>)> + 'a {
        let started = Instant::now();
        data.runtime().deadline = Some(started + self.timeout);
        let guest = data.runtime().guest.clone();
        let mut store = Store::new(engine, data);
        guard_store(&mut store);

        async move {
            let result = bounded(started, self.timeout, guest.as_deref(), async {
                let handler = self.pre.instantiate_async(&mut store).await?;
                store.data_mut().runtime().instantiated();
                handler.call_handle(&mut store, request).await
            })
            .await;
            (result, store)
        }
    }
}

/// Run a call into a guest that started at `started` and may take `timeout`. The epoch deadline
/// stops guest code; the outer timeout here also covers time spent in host calls, so nothing a
/// guest does can hold a request past its deadline for long.
///
/// Most calls never wait on the host: the first poll runs the fiber to completion, and only a
/// call that is still pending afterwards arms a timer (saving a timer-wheel insert and removal
/// on every request).
///
/// With `guest`, the call's thread CPU time (every poll, see [`CpuMeter`]) and a failure are
/// counted in its metrics.
pub(crate) async fn bounded<R>(
    started: Instant,
    timeout: Duration,
    guest: Option<&Guest>,
    run: impl Future<Output = wasmtime::Result<R>>,
) -> Result<R, Failure> {
    let limit = timeout + engine::EPOCH_TICK * 20;
    let mut run = std::pin::pin!(run);
    let mut cpu = CpuMeter::default();
    let mut poll = |cx: &mut std::task::Context<'_>| match guest {
        Some(_) => cpu.measure(|| run.as_mut().poll(cx)),
        None => run.as_mut().poll(cx),
    };
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(poll(cx))).await;
    let outcome = match first {
        std::task::Poll::Ready(done) => Ok(done),
        std::task::Poll::Pending => {
            let until = tokio::time::Instant::from_std(started + limit);
            tokio::time::timeout_at(until, std::future::poll_fn(&mut poll)).await
        }
    };
    let result = match outcome {
        Err(_elapsed) => Err(Failure::Timeout),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(classify_error(e)),
    };
    if let Some(guest) = guest {
        guest.cpu(cpu.spent());
        match &result {
            Ok(_) => {}
            Err(Failure::Timeout) => guest.timed_out(),
            Err(Failure::Overloaded) => guest.overloaded(),
            Err(Failure::Trap(_)) => guest.trapped(),
        }
    }
    result
}

/// Why a call into a guest failed: a timeout, a full pool, or a trap.
pub fn classify_error(e: wasmtime::Error) -> Failure {
    if e.downcast_ref::<PoolConcurrencyLimitError>().is_some() {
        return Failure::Overloaded;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Timeout,
        _ => Failure::Trap(format!("{e:#}")),
    }
}
