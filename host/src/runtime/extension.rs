//! Authenticator and middleware components: instantiated fresh for every request, like
//! handlers, under the same memory limit and deadline. A middleware keeps its one instance from
//! `before` to `after` of the same request, and never longer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::InstancePre;
use wasmtime::{Engine, Store};

use super::bindings::extension::AuthenticatorPre;
use super::bindings::extension::exports::flagon::app::authenticate::AuthError;
use super::bindings::extension::middleware::Middleware as MiddlewareBindings;
use super::bindings::extension::middleware::MiddlewarePre;
use super::bindings::extension::middleware::exports::flagon::app::intercept::Action;
use super::bindings::{Identity, RequestHead, Response};
use super::instance::{Failure, RuntimeView, bounded, guard_store};
use crate::metrics::Guest;

/// What `authenticate` answered.
pub type AuthOutcome = Result<Option<Identity>, AuthError>;

/// A component exporting the `authenticator` world.
pub struct Authenticator<T: 'static> {
    pre: AuthenticatorPre<T>,
    timeout: Duration,
}

impl<T: RuntimeView> Authenticator<T> {
    /// Wrap a pre-linked component; fails if it does not export `flagon:app/authenticate`.
    pub fn new(pre: InstancePre<T>, timeout: Duration) -> wasmtime::Result<Self> {
        Ok(Self {
            pre: AuthenticatorPre::new(pre)?,
            timeout,
        })
    }

    /// Run `check-settings` on an instance of its own (at load).
    pub async fn check_settings(
        &self,
        engine: &Engine,
        data: T,
    ) -> Result<Result<(), String>, Failure> {
        let mut store = new_store(engine, data, self.timeout);
        let guest = metrics(&mut store);
        bounded(Instant::now(), self.timeout, guest.as_deref(), async {
            let a = self.pre.instantiate_async(&mut store).await?;
            store.data_mut().runtime().instantiated();
            a.flagon_app_authenticate()
                .call_check_settings(&mut store)
                .await
        })
        .await
    }

    /// Ask a fresh instance who sent `head`. The `Store` comes back for what the call left in
    /// it; drop it then.
    pub async fn authenticate(
        &self,
        engine: &Engine,
        data: T,
        head: &RequestHead,
    ) -> (Result<AuthOutcome, Failure>, Store<T>) {
        let started = Instant::now();
        let mut store = new_store(engine, data, self.timeout);
        let guest = metrics(&mut store);
        let outcome = bounded(started, self.timeout, guest.as_deref(), async {
            let a = self.pre.instantiate_async(&mut store).await?;
            store.data_mut().runtime().instantiated();
            a.flagon_app_authenticate()
                .call_authenticate(&mut store, head)
                .await
        })
        .await;
        (outcome, store)
    }
}

/// A component exporting the `middleware` world.
pub struct Middleware<T: 'static> {
    pre: MiddlewarePre<T>,
    timeout: Duration,
}

/// One request's middleware instance, between `before` and `after`.
pub struct MiddlewareInstance<T: 'static> {
    store: Store<T>,
    bindings: MiddlewareBindings,
    timeout: Duration,
}

impl<T: RuntimeView> Middleware<T> {
    /// Wrap a pre-linked component; fails if it does not export `flagon:app/intercept`.
    pub fn new(pre: InstancePre<T>, timeout: Duration) -> wasmtime::Result<Self> {
        Ok(Self {
            pre: MiddlewarePre::new(pre)?,
            timeout,
        })
    }

    /// Run `check-settings` on an instance of its own (at load).
    pub async fn check_settings(
        &self,
        engine: &Engine,
        data: T,
    ) -> Result<Result<(), String>, Failure> {
        let mut store = new_store(engine, data, self.timeout);
        let guest = metrics(&mut store);
        bounded(Instant::now(), self.timeout, guest.as_deref(), async {
            let m = self.pre.instantiate_async(&mut store).await?;
            store.data_mut().runtime().instantiated();
            m.flagon_app_intercept()
                .call_check_settings(&mut store)
                .await
        })
        .await
    }

    /// Instantiate for one request and call `before`. On `continue` the instance is kept for
    /// `after`; a failed call ends it.
    pub async fn before(
        &self,
        engine: &Engine,
        data: T,
        head: &RequestHead,
    ) -> Result<(Action, MiddlewareInstance<T>), Failure> {
        let started = Instant::now();
        let mut store = new_store(engine, data, self.timeout);
        let guest = metrics(&mut store);
        let (action, bindings) = bounded(started, self.timeout, guest.as_deref(), async {
            let m = self.pre.instantiate_async(&mut store).await?;
            store.data_mut().runtime().instantiated();
            let action = m
                .flagon_app_intercept()
                .call_before(&mut store, head)
                .await?;
            Ok((action, m))
        })
        .await?;
        Ok((
            action,
            MiddlewareInstance {
                store,
                bindings,
                timeout: self.timeout,
            },
        ))
    }
}

impl<T: RuntimeView> MiddlewareInstance<T> {
    /// Call `after` with the response, under a deadline of its own.
    pub async fn after(
        &mut self,
        head: &RequestHead,
        response: &Response,
    ) -> Result<Response, Failure> {
        let started = Instant::now();
        self.store
            .data_mut()
            .runtime()
            .set_deadline(Some(started + self.timeout));
        let guest = metrics(&mut self.store);
        let (store, bindings) = (&mut self.store, &self.bindings);
        bounded(started, self.timeout, guest.as_deref(), async {
            bindings
                .flagon_app_intercept()
                .call_after(&mut *store, head, response)
                .await
        })
        .await
    }

    /// The store's data, e.g. for what the guest logged.
    pub fn data_mut(&mut self) -> &mut T {
        self.store.data_mut()
    }
}

/// Where a call in `store` is counted.
fn metrics<T: RuntimeView>(store: &mut Store<T>) -> Option<Arc<Guest>> {
    store.data_mut().runtime().metrics().cloned()
}

fn new_store<T: RuntimeView>(engine: &Engine, mut data: T, timeout: Duration) -> Store<T> {
    data.runtime().set_deadline(Some(Instant::now() + timeout));
    let mut store = Store::new(engine, data);
    guard_store(&mut store);
    store
}
