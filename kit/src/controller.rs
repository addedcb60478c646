//! The lifecycle controller: a kcp runtime controller whose reconcile is the lifecycle
//! engine. An operator declares its primary kind, subroutines, related-kind mappers and
//! context; this owns the rest: the `Api` of the object's scope, the debug-label filter, the
//! one translation from the engine's result to the queue's next action, the reconcile count,
//! and, for initializers and terminators, releasing the kcp marker once every subroutine
//! completed.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kcp::initialization::{self, Marker};
use kcp::runtime::{
    Action, ApiScope, Cache, ClusterSet, Context, Controller, ControllerConfig, EndpointSource,
    Health, ObjectKey, ReconcileResult, RuntimeMetrics,
};
use kcp::{ClientFactory, ClusterName};
use kube::{Resource, ResourceExt};
use lifecycle::{Lifecycle, Mode, Reconciled, Subroutine};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

/// The label that limits which objects a controller instance reconciles (upstream's debug
/// predicate): only those whose label value equals `--debug-label-value`.
pub const DEBUG_LABEL: &str = "debug.platform-mesh.io";

/// How long a waiting object is left alone when no requeue was asked for: its wait is a
/// watch, and this recheck is only the safety net for a missed event (instead of the
/// 10-minute resync).
pub const WAIT_RECHECK: Duration = Duration::from_secs(30);

/// What every controller of one process is built with.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Clients for kcp workspaces and virtual workspaces, on one connection pool.
    pub factory: ClientFactory,
    /// Where the virtual-workspace endpoints come from.
    pub source: EndpointSource,
    /// Concurrency, backoff, resync and shutdown timeout.
    pub config: ControllerConfig,
    /// The runtime's metric families.
    pub runtime_metrics: RuntimeMetrics,
    /// The engine's metric families.
    pub lifecycle_metrics: lifecycle::Metrics,
    /// The binary's name: the field manager of every write it makes.
    pub field_manager: String,
    /// `--debug-label-value`.
    pub debug_label_value: String,
}

/// Why a reconcile failed; the runtime retries it with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The engine failed (a transient subroutine error, a failed write).
    #[error(transparent)]
    Lifecycle(#[from] lifecycle::Error),
    /// No client for the object's cluster.
    #[error("no client for the object's cluster: {0}")]
    Client(#[from] kcp::ClientError),
    /// The endpoint is not an initializing or terminating virtual workspace.
    #[error(
        "cannot release the workspace: {0:?} is not an initializing or terminating virtual-workspace URL"
    )]
    NoMarker(String),
    /// Releasing the initializer or terminator failed.
    #[error(transparent)]
    Release(#[from] initialization::Error),
}

/// A kind a lifecycle controller can reconcile: a typed Kubernetes object whose scope picks its
/// `Api` (see [`ApiScope`]).
pub trait Object:
    Resource<DynamicType = (), Scope: ApiScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
}

impl<K> Object for K where
    K: Resource<DynamicType = (), Scope: ApiScope>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

type ContextBuilder<C> = Arc<dyn Fn(Context) -> C + Send + Sync>;
type Observer<K> = Arc<dyn Fn(&K, ReconcileResult) + Send + Sync>;

/// A controller of kind `K` across every workspace its source serves, running `K`'s
/// subroutines with a context of type `C`.
pub struct LifecycleController<K, C> {
    controller: Controller<K>,
    lifecycle: Lifecycle<K, C>,
    context: ContextBuilder<C>,
    debug_label_value: String,
    observer: Option<Observer<K>>,
}

impl<K, C> Debug for LifecycleController<K, C>
where
    K: Send + Sync,
    C: Send + Sync,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LifecycleController")
            .field("controller", &self.controller)
            .field("lifecycle", &self.lifecycle)
            .finish_non_exhaustive()
    }
}

impl<K, C> LifecycleController<K, C>
where
    K: Object,
    C: Send + Sync + 'static,
{
    /// A controller named `name` (in logs and metrics) running
    /// `subroutines` in order; `context` builds each reconcile's context from the runtime's.
    pub fn new(
        name: &str,
        setup: &Setup,
        subroutines: Vec<Box<dyn Subroutine<K, C>>>,
        context: impl Fn(Context) -> C + Send + Sync + 'static,
    ) -> Self {
        let controller = Controller::new(
            name,
            setup.factory.clone(),
            setup.source.clone(),
            setup.config.clone(),
            Some(setup.runtime_metrics.clone()),
        );
        let lifecycle = Lifecycle::new(name, subroutines)
            .with_metrics(setup.lifecycle_metrics.clone())
            .with_field_manager(setup.field_manager.clone());
        Self {
            controller,
            lifecycle,
            context: Arc::new(context),
            debug_label_value: setup.debug_label_value.clone(),
            observer: None,
        }
    }

    /// Runs the subroutines' `initialize` (or `terminate`) hooks instead, and releases the
    /// controller's initializer (terminator) from the workspace once all completed. The
    /// source must be the WorkspaceType's initializing (terminating) virtual workspace.
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.lifecycle = self.lifecycle.with_mode(mode);
        self
    }

    /// Writes no conditions: for a kind whose status is not ours (see
    /// [`Lifecycle::without_conditions`]).
    #[must_use]
    pub fn without_conditions(mut self) -> Self {
        self.lifecycle = self.lifecycle.without_conditions();
        self
    }

    /// Also watch kind `R`, reconciling the primary objects `map` names for each change.
    #[must_use]
    pub fn watches<R>(
        mut self,
        map: impl Fn(&R, &ObjectKey, &Cache<K>) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Self
    where
        R: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    {
        self.controller = self.controller.watches(map);
        self
    }

    /// Do not reconcile an object whose status alone changed (mostly this controller's own
    /// status write): see [`kcp::runtime::Controller::ignore_status_only_changes`].
    #[must_use]
    pub fn ignore_status_only_changes(mut self) -> Self {
        self.controller = self.controller.ignore_status_only_changes();
        self
    }

    /// When a cluster becomes engaged, also reconcile the primary objects `map` names.
    #[must_use]
    pub fn on_engage(
        mut self,
        map: impl Fn(&ClusterName, &ClusterSet, &Cache<K>) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Self {
        self.controller = self.controller.on_engage(map);
        self
    }

    /// Calls `observe` after every reconcile, for an operator's own metrics.
    #[must_use]
    pub fn observe(
        mut self,
        observe: impl Fn(&K, ReconcileResult) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(Arc::new(observe));
        self
    }

    /// Whether the watches synced, and whether one is failing.
    pub fn health(&self) -> Health {
        self.controller.health()
    }

    /// Runs until `stop` is cancelled (then drains within the shutdown timeout), or until the
    /// future is dropped (then every running reconcile is aborted).
    pub async fn run(self, stop: CancellationToken) {
        let Self {
            controller,
            lifecycle,
            context,
            debug_label_value,
            observer,
        } = self;
        let lifecycle = Arc::new(lifecycle);
        let reconcile = move |object: Arc<K>, runtime: Context| {
            let (lifecycle, context, observer) =
                (lifecycle.clone(), context.clone(), observer.clone());
            let selected =
                object.labels().get(DEBUG_LABEL).map_or("", String::as_str) == debug_label_value;
            async move {
                if !selected {
                    return Ok(Action::Done);
                }
                let result = reconcile(&lifecycle, &context, object.clone(), runtime).await;
                if let Some(observe) = &observer {
                    observe(&object, ReconcileResult::of(&result));
                }
                result
            }
        };
        controller.run(reconcile, stop).await;
    }
}

/// One reconcile: the engine, then (initializer and terminator modes) the marker release.
async fn reconcile<K, C>(
    lifecycle: &Lifecycle<K, C>,
    context: &ContextBuilder<C>,
    object: Arc<K>,
    runtime: Context,
) -> Result<Action, ReconcileError>
where
    K: Object,
    C: Send + Sync,
{
    let api = runtime.api::<K>()?;
    let endpoint = runtime.endpoint.clone();
    let client = runtime.client()?;
    let reconciled = lifecycle.reconcile(&api, object, &context(runtime)).await?;
    if reconciled.completed && lifecycle.mode() != Mode::Normal {
        let marker = Marker::from_virtual_workspace_url(&endpoint)
            .ok_or_else(|| ReconcileError::NoMarker(endpoint.clone()))?;
        initialization::release(client, &marker).await?;
    }
    Ok(next_action(&reconciled))
}

/// What the queue does after a reconcile that did not fail: the requeue a subroutine asked
/// for; for a wait without one, the safety-net recheck behind its watch; else nothing until
/// the next event.
pub fn next_action(reconciled: &Reconciled) -> Action {
    match reconciled.requeue_after {
        Some(after) => Action::RequeueAfter(after),
        None if reconciled.waiting => Action::RequeueAfter(WAIT_RECHECK),
        None => Action::Done,
    }
}

/// A controller the process runs: the lifecycle controllers, type-erased.
pub trait Runnable: Send {
    /// The controller's health, for `/readyz`.
    fn health(&self) -> Health;
    /// Runs it (see [`LifecycleController::run`]).
    fn run(self: Box<Self>, stop: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl<K, C> Runnable for LifecycleController<K, C>
where
    K: Object,
    C: Send + Sync + 'static,
{
    fn health(&self) -> Health {
        LifecycleController::health(self)
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(LifecycleController::run(*self, stop))
    }
}

/// A controller that reconciles nothing and only keeps its cache of `K` current, for a process
/// that reads objects rather than changing them (the authorization webhook's view of the
/// workspaces). Such a process runs without leader election, so that every replica answers
/// from a view of its own.
pub struct Reflector<K> {
    controller: Controller<K>,
}

impl<K> Debug for Reflector<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reflector")
            .field("controller", &self.controller)
            .finish()
    }
}

impl<K> Reflector<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// A reflector named `name` (in logs and metrics) of the objects of kind `K` that the
    /// setup's source serves.
    pub fn new(name: &str, setup: &Setup) -> Self {
        let config = ControllerConfig {
            // Nothing to reconcile: one worker drains the queue, and no resync refills it.
            concurrency: 1,
            resync: None,
            ..setup.config.clone()
        };
        Self {
            controller: Controller::new(
                name,
                setup.factory.clone(),
                setup.source.clone(),
                config,
                Some(setup.runtime_metrics.clone()),
            ),
        }
    }

    /// The objects, kept current while the reflector runs.
    pub fn cache(&self) -> Cache<K> {
        self.controller.cache()
    }

    /// The engaged clusters and their paths.
    pub fn clusters(&self) -> ClusterSet {
        self.controller.clusters()
    }
}

impl<K> Runnable for Reflector<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    fn health(&self) -> Health {
        self.controller.health()
    }

    fn run(self: Box<Self>, stop: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let nothing = |_: Arc<K>, _: Context| {
            std::future::ready(Ok::<_, std::convert::Infallible>(Action::Done))
        };
        Box::pin(self.controller.run(nothing, stop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engines_result_becomes_the_queues_next_action() {
        let after = Duration::from_secs(5);
        let cases = [
            (Reconciled::default(), Action::Done),
            (
                Reconciled {
                    requeue_after: Some(after),
                    ..Default::default()
                },
                Action::RequeueAfter(after),
            ),
            (
                Reconciled {
                    waiting: true,
                    ..Default::default()
                },
                Action::RequeueAfter(WAIT_RECHECK),
            ),
            (
                Reconciled {
                    waiting: true,
                    requeue_after: Some(after),
                    ..Default::default()
                },
                Action::RequeueAfter(after),
            ),
            (
                Reconciled {
                    permanent_error: true,
                    ..Default::default()
                },
                Action::Done,
            ),
        ];
        for (reconciled, expected) in cases {
            assert_eq!(next_action(&reconciled), expected, "{reconciled:?}");
        }
    }
}
