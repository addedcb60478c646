//! The controller: endpoints, wildcard watches, engagement, the cache, the queue, workers.

use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};
use std::fmt::{Debug, Display};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::client::Body;
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cache::{Cache, ObjectKey};
use super::clusters::{Change, ClusterSet};
use super::expiry::{expire_if_empty, is_watch};
use super::metrics::{
    ControllerLabel, ResultLabels, RuntimeMetrics, WatchErrorLabels, WatchLabels,
};
use super::queue::{Backoff, Completion, WorkQueue};
use super::source::EndpointSource;
use super::watch::{Failing, Seen, Target, run};
use crate::PATH_ANNOTATION;
use crate::client::{ClientFactory, Error as ClientError};
use crate::name::{ClusterName, ClusterPath};
use crate::types::apis::ApiBinding;

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Nothing until something changes (or the safety-net resync).
    Done,
    /// Look again after the duration.
    RequeueAfter(Duration),
}

/// The `result` label of every reconcile counter (the runtime's, and any an operator keeps
/// of its own), so that dashboards can compare them: as upstream, `success`, `requeue` or
/// `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileResult {
    /// Done until something changes.
    Success,
    /// Asked to be looked at again after a while.
    Requeue,
    /// Failed; retried with backoff.
    Error,
}

impl ReconcileResult {
    /// The result of a reconcile that returned `result`.
    pub fn of<E>(result: &Result<Action, E>) -> Self {
        match result {
            Ok(Action::Done) => Self::Success,
            Ok(Action::RequeueAfter(_)) => Self::Requeue,
            Err(_) => Self::Error,
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Requeue => "requeue",
            Self::Error => "error",
        }
    }
}

/// How a controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Reconciles running at once (across all keys; one key never runs twice at once).
    pub concurrency: usize,
    /// Per-key backoff after errors.
    pub backoff: Backoff,
    /// Safety-net requeue of every object after a successful reconcile; every wait is a
    /// watch, so this is only there to heal missed events.
    pub resync: Option<Duration>,
    /// How long shutdown waits for running reconciles before abandoning them.
    pub shutdown_timeout: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            backoff: Backoff::default(),
            resync: Some(Duration::from_secs(600)),
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// What a reconcile gets besides the object.
#[derive(Debug, Clone)]
pub struct Context {
    /// The object's cluster-qualified key.
    pub key: ObjectKey,
    /// The virtual-workspace endpoint (shard) the object's cluster is served on, or the
    /// server itself for a [direct](EndpointSource::Direct) source.
    pub endpoint: String,
    factory: ClientFactory,
    clusters: ClusterSet,
    direct: bool,
    related: RelatedCaches,
}

/// The objects of each kind a controller [watches](Controller::watches) besides its own, as
/// their watches last saw them (without managedFields), by kind.
type RelatedCaches = Arc<HashMap<TypeId, Box<dyn Any + Send + Sync>>>;

impl Context {
    /// Object `name` of kind `R` (the controller's own or a related kind) in `cluster`, as the
    /// controller's watch of `R` last saw it: what a reconcile reads instead of asking the
    /// server. `None` when the watch has not seen it (it does not exist, or its event is still
    /// on the way: a change of it reconciles again) or the controller does not watch `R`.
    pub fn cached<R: Resource + Send + Sync + 'static>(
        &self,
        cluster: &ClusterName,
        name: &str,
    ) -> Option<Arc<R>> {
        self.related
            .get(&TypeId::of::<R>())?
            .downcast_ref::<Cache<R>>()?
            .get(&ObjectKey::cluster_scoped(cluster.clone(), name))
    }

    /// Every object of kind `R` (own or related) in `cluster`, as the controller's watch of
    /// `R` last saw them (empty when the controller does not watch `R`).
    pub fn cached_in<R: Resource + Send + Sync + 'static>(
        &self,
        cluster: &ClusterName,
    ) -> Vec<Arc<R>> {
        self.related
            .get(&TypeId::of::<R>())
            .and_then(|cache| cache.downcast_ref::<Cache<R>>())
            .map(|cache| {
                cache
                    .in_cluster(cluster)
                    .into_iter()
                    .map(|(_, object)| object)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every object of kind `R` (own or related) in every cluster, as the controller's watch
    /// of `R` last saw them; `None` when the controller does not watch `R`. What a shard that is down
    /// last showed stays here, so reading this instead of listing every endpoint keeps a
    /// reconcile going through one shard's outage.
    pub fn cached_everywhere<R: Resource + Send + Sync + 'static>(
        &self,
    ) -> Option<Vec<(ObjectKey, Arc<R>)>> {
        self.related
            .get(&TypeId::of::<R>())?
            .downcast_ref::<Cache<R>>()
            .map(Cache::all)
    }

    /// A client for the object's cluster through its endpoint: `<endpoint>/clusters/<cluster>`.
    /// For a direct source, the server itself.
    pub fn client(&self) -> Result<Client, ClientError> {
        self.client_on(&self.endpoint, &self.key.cluster)
    }

    /// A client for another engaged cluster, through the endpoint that serves it.
    pub fn client_for(&self, cluster: &ClusterName) -> Option<Result<Client, ClientError>> {
        let endpoint = self.clusters.endpoint_of(cluster)?;
        Some(self.client_on(&endpoint, cluster))
    }

    fn client_on(&self, endpoint: &str, cluster: &ClusterName) -> Result<Client, ClientError> {
        if self.direct {
            self.factory.for_url(endpoint)
        } else {
            self.factory.for_virtual_cluster(endpoint, cluster)
        }
    }

    /// The engaged clusters, with the path index.
    pub fn clusters(&self) -> &ClusterSet {
        &self.clusters
    }

    /// An `Api` for the object's own kind and scope in its cluster: `Api::namespaced` for a
    /// namespaced object, `Api::all` for a cluster-scoped one.
    pub fn api<K>(&self) -> Result<Api<K>, ClientError>
    where
        K: Resource<DynamicType = ()>,
        K::Scope: ApiScope,
    {
        Ok(K::Scope::api(self.client()?, self.key.namespace.as_deref()))
    }
}

/// Builds the `Api` that addresses one object of a kind, by the kind's scope: kube offers no
/// constructor generic over both scopes (`Api::namespaced` exists only for namespaced kinds,
/// and `Api::all` cannot write a namespaced object).
pub trait ApiScope {
    /// `Api::all` for a cluster-scoped kind; `Api::namespaced` in `namespace` for a namespaced
    /// one.
    fn api<K: Resource<Scope = Self, DynamicType = ()>>(
        client: Client,
        namespace: Option<&str>,
    ) -> Api<K>;
}

impl ApiScope for ClusterResourceScope {
    fn api<K: Resource<Scope = Self, DynamicType = ()>>(client: Client, _: Option<&str>) -> Api<K> {
        Api::all(client)
    }
}

impl ApiScope for NamespaceResourceScope {
    fn api<K: Resource<Scope = Self, DynamicType = ()>>(
        client: Client,
        namespace: Option<&str>,
    ) -> Api<K> {
        match namespace {
            Some(namespace) => Api::namespaced(client, namespace),
            None => Api::all(client),
        }
    }
}

/// A controller's health: whether every watch delivered its first complete list (synced),
/// and whether one has been failing (kcp down, 403 after an RBAC change …). Cheap to clone;
/// the ops server's `/readyz` reads it on every request.
#[derive(Debug, Clone)]
pub struct Health {
    tracker: Arc<WatchTracker>,
    synced: watch::Receiver<bool>,
}

impl Health {
    /// Whether the endpoint source and every open watch delivered their first list. An
    /// endpoint whose watches could not be started has no open watch: it shows in
    /// [`failing_longer_than`](Self::failing_longer_than) instead.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Waits until synced; returns false if the controller stopped first.
    pub async fn wait_synced(&mut self) -> bool {
        self.synced.wait_for(|synced| *synced).await.is_ok()
    }

    /// The watch that has been failing the longest, if for longer than `grace`: what it
    /// watches, since when, and its latest error, in words for `/readyz` and the logs. An
    /// endpoint whose watches cannot be started counts as failing from its first failed
    /// start until it starts or leaves the source's list.
    pub fn failing_longer_than(&self, grace: Duration) -> Option<String> {
        let state = self.tracker.lock();
        let watches = state.watches.values().filter_map(|w| {
            let (since, error) = w.failing.since()?;
            Some((since, format!("the watch of {}", w.what), error, ""))
        });
        let endpoints = state.broken_endpoints.iter().map(|(url, broken)| {
            let note = if broken.retried {
                ""
            } else {
                " (not retried: the URL is invalid; the endpoint source has to change it)"
            };
            let what = format!("starting the watches on endpoint {url}");
            (broken.since, what, broken.error.clone(), note)
        });
        watches
            .chain(endpoints)
            .filter(|(since, ..)| since.elapsed() > grace)
            .min_by_key(|(since, ..)| *since)
            .map(|(since, what, error, note)| {
                format!(
                    "{what} has been failing for {}s: {error}{note}",
                    since.elapsed().as_secs()
                )
            })
    }
}

#[derive(Debug)]
struct TrackedWatch {
    /// `<kind> on <endpoint>`.
    what: String,
    synced: bool,
    failing: Arc<Failing>,
}

/// An endpoint whose watches could not be started.
#[derive(Debug)]
struct BrokenEndpoint {
    since: Instant,
    error: String,
    /// Whether it is tried again (not when its URL is invalid).
    retried: bool,
}

#[derive(Debug, Default)]
struct TrackerState {
    source_synced: bool,
    watches: HashMap<u64, TrackedWatch>,
    next_id: u64,
    /// By URL, until they start or leave the source's list.
    broken_endpoints: HashMap<String, BrokenEndpoint>,
}

/// Every open watch of a controller (the endpoint source's included): synced, failing.
#[derive(Debug)]
struct WatchTracker {
    state: Mutex<TrackerState>,
    synced: watch::Sender<bool>,
}

impl WatchTracker {
    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update<T>(&self, change: impl FnOnce(&mut TrackerState) -> T) -> T {
        let mut state = self.lock();
        let out = change(&mut state);
        let synced = state.source_synced && state.watches.values().all(|w| w.synced);
        self.synced
            .send_if_modified(|s| std::mem::replace(s, synced) != synced);
        out
    }

    fn source_synced(&self) {
        self.update(|s| s.source_synced = true);
    }

    /// Tracks a new watch; it counts as synced from the start when `synced`.
    fn register(&self, what: String, synced: bool) -> (u64, Arc<Failing>) {
        self.update(|s| {
            s.next_id += 1;
            let failing = Arc::new(Failing::default());
            s.watches.insert(
                s.next_id,
                TrackedWatch {
                    what,
                    synced,
                    failing: failing.clone(),
                },
            );
            (s.next_id, failing)
        })
    }

    fn synced(&self, id: u64) {
        self.update(|s| {
            if let Some(w) = s.watches.get_mut(&id) {
                w.synced = true;
            }
        });
    }

    fn unregister(&self, id: u64) {
        self.update(|s| s.watches.remove(&id));
    }

    /// The watches of endpoint `url` could not be started; failing since the first time.
    fn endpoint_failed(&self, url: &str, error: String, retried: bool) {
        let mut state = self.lock();
        match state.broken_endpoints.get_mut(url) {
            Some(broken) => {
                broken.error = error;
                broken.retried = retried;
            }
            None => {
                state.broken_endpoints.insert(
                    url.to_owned(),
                    BrokenEndpoint {
                        since: Instant::now(),
                        error,
                        retried,
                    },
                );
            }
        }
    }

    /// Endpoint `url` started, or is no longer wanted: it is not failing.
    fn endpoint_started(&self, url: &str) {
        self.lock().broken_endpoints.remove(url);
    }
}

/// Maps a newly engaged cluster to primary objects in other clusters.
type EngageHook<K> =
    Box<dyn Fn(&ClusterName, &ClusterSet, &Cache<K>) -> Vec<ObjectKey> + Send + Sync>;

/// State shared by a controller's tasks.
struct Shared<K> {
    name: String,
    cache: Cache<K>,
    clusters: ClusterSet,
    queue: WorkQueue<ObjectKey>,
    metrics: Option<RuntimeMetrics>,
    tracker: Arc<WatchTracker>,
    engage_hooks: Vec<EngageHook<K>>,
    /// The endpoints each cached object's cluster was seen on, to drop its objects with the
    /// last of them. (A set: while a cluster moves shards, both deliver its objects, and
    /// dropping the one it left must not empty the cache of what the other still serves.)
    seen_on: Mutex<HashMap<ClusterName, BTreeSet<String>>>,
    /// Whether the source is [direct](EndpointSource::Direct).
    direct: bool,
    /// See [`Controller::ignore_status_only_changes`].
    ignore_status_only: bool,
    related_caches: RelatedCaches,
}

impl<K> Shared<K> {
    fn label(&self) -> ControllerLabel {
        ControllerLabel {
            controller: self.name.clone(),
        }
    }

    /// Queues `key` if its cluster is engaged (others wait for engagement).
    fn enqueue(&self, key: ObjectKey) {
        if self.clusters.is_engaged(&key.cluster) {
            self.queue.add(key);
            self.observe_queue();
        }
    }

    fn observe_queue(&self) {
        if let Some(m) = &self.metrics {
            m.queue_depth
                .get_or_create(&self.label())
                .set(i64::try_from(self.queue.len()).unwrap_or(i64::MAX));
        }
    }

    fn observe_clusters(&self) {
        if let Some(m) = &self.metrics {
            m.engaged_clusters
                .get_or_create(&self.label())
                .set(i64::try_from(self.clusters.len()).unwrap_or(i64::MAX));
        }
    }

    /// A cluster engaged: everything already seen in it gets reconciled, and so does whatever
    /// the engage hooks name in other clusters (the Account whose new workspace this is).
    fn engaged(&self, cluster: &ClusterName) {
        tracing::info!(controller = %self.name, %cluster, "cluster engaged");
        for (key, _) in self.cache.in_cluster(cluster) {
            self.queue.add(key);
        }
        for hook in &self.engage_hooks {
            for key in hook(cluster, &self.clusters, &self.cache) {
                self.enqueue(key);
            }
        }
        self.observe_clusters();
        self.observe_queue();
    }

    fn disengaged(&self, cluster: &ClusterName) {
        tracing::info!(controller = %self.name, %cluster, "cluster disengaged");
        for (key, _) in self.cache.in_cluster(cluster) {
            self.queue.remove(&key);
        }
        self.observe_clusters();
        self.observe_queue();
    }

    /// Runs one watch on an endpoint, counted in the metrics and the health.
    async fn watch<R>(
        self: &Arc<Self>,
        client: Client,
        endpoint: &str,
        stop: CancellationToken,
        mut on: impl FnMut(&Arc<Self>, Seen<'_, R>),
    ) where
        R: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + 'static,
    {
        let kind = R::plural(&()).into_owned();
        let (id, failing) = self
            .tracker
            .register(format!("{kind} on {endpoint}"), false);
        let labels = WatchLabels {
            controller: self.name.clone(),
            kind: kind.clone(),
        };
        let gauge = self
            .metrics
            .as_ref()
            .map(|m| m.watches.get_or_create(&labels).clone());
        let errors = self.metrics.as_ref().map(|m| {
            m.watch_errors
                .get_or_create(&WatchErrorLabels {
                    controller: self.name.clone(),
                    kind: kind.clone(),
                    endpoint: endpoint.to_owned(),
                })
                .clone()
        });
        if let Some(g) = &gauge {
            g.inc();
        }
        let host = self.direct.then(ClusterName::host);
        let stopped = stop.clone();
        run(
            Target {
                api: Api::<R>::all(client),
                config: watcher::Config::default(),
                what: &kind,
                unannotated: host.as_ref(),
            },
            stop,
            &failing,
            |_| {
                if let Some(errors) = &errors {
                    errors.inc();
                }
            },
            |seen| {
                // The endpoint was dropped (or the controller stops): an event that was
                // already on its way must not engage a cluster or cache an object again after
                // `drop_endpoint` forgot them.
                if stopped.is_cancelled() {
                    return;
                }
                if matches!(seen, Seen::Synced) {
                    self.tracker.synced(id);
                }
                on(self, seen);
            },
        )
        .await;
        if let Some(g) = &gauge {
            g.dec();
        }
        self.tracker.unregister(id);
    }
}

type RelatedWatch<K> =
    Box<dyn Fn(Arc<Shared<K>>, Client, String, CancellationToken) -> BoxFuture + Send + Sync>;

/// A controller of kind `K` across every workspace its endpoint source serves.
pub struct Controller<K> {
    name: String,
    factory: ClientFactory,
    source: EndpointSource,
    config: ControllerConfig,
    metrics: Option<RuntimeMetrics>,
    related: Vec<RelatedWatch<K>>,
    engage_hooks: Vec<EngageHook<K>>,
    cache: Cache<K>,
    clusters: ClusterSet,
    tracker: Arc<WatchTracker>,
    synced: watch::Receiver<bool>,
    ignore_status_only: bool,
    related_caches: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl<K> Debug for Controller<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.name)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl<K> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// A controller named `name` (used in logs and metrics) of the objects of kind `K` that
    /// `source`'s virtual workspaces serve.
    pub fn new(
        name: impl Into<String>,
        factory: ClientFactory,
        source: EndpointSource,
        config: ControllerConfig,
        metrics: Option<RuntimeMetrics>,
    ) -> Self {
        let (synced_tx, synced) = watch::channel(false);
        let cache = Cache::<K>::default();
        // A reconcile reads the controller's own kind from the cache as it reads a related one.
        let own: Box<dyn Any + Send + Sync> = Box::new(cache.clone());
        Self {
            name: name.into(),
            factory,
            source,
            config,
            metrics,
            related: Vec::new(),
            engage_hooks: Vec::new(),
            ignore_status_only: false,
            related_caches: HashMap::from([(TypeId::of::<K>(), own)]),
            cache,
            clusters: ClusterSet::default(),
            tracker: Arc::new(WatchTracker {
                state: Mutex::default(),
                synced: synced_tx,
            }),
            synced,
        }
    }

    /// Also watch kind `R` on every endpoint, and reconcile the primary objects `map` names
    /// for each change, deletions included (a Workspace's phase change wakes its Account, …).
    /// A reconcile reads what the watch saw with [`Context::cached`].
    pub fn watches<R>(
        mut self,
        map: impl Fn(&R, &ObjectKey, &Cache<K>) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Self
    where
        R: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    {
        let map = Arc::new(map);
        let cache = Cache::<R>::default();
        self.related_caches
            .insert(TypeId::of::<R>(), Box::new(cache.clone()));
        self.related
            .push(Box::new(move |shared, client, endpoint, stop| {
                let (map, cache) = (map.clone(), cache.clone());
                Box::pin(async move {
                    shared
                        .watch::<R>(client, &endpoint, stop, |shared, seen| {
                            let (key, object) = match seen {
                                Seen::Apply(key, object) => {
                                    cache.insert(key.clone(), Arc::new(object.clone()));
                                    (key, object)
                                }
                                Seen::Delete(key, object) => {
                                    cache.remove(&key);
                                    (key, object)
                                }
                                Seen::Synced => return,
                            };
                            for primary in map(object, &key, &shared.cache) {
                                shared.enqueue(primary);
                            }
                        })
                        .await;
                })
            }));
        self
    }

    /// When a cluster becomes engaged, also reconcile the primary objects `map` names, in any
    /// engaged cluster: a child workspace that just bound the export is served now, so the
    /// Account in its parent that waits for it can go on. `map` gets the new cluster, the
    /// engaged clusters (with their paths) and the cache of primary objects.
    pub fn on_engage(
        mut self,
        map: impl Fn(&ClusterName, &ClusterSet, &Cache<K>) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Self {
        self.engage_hooks.push(Box::new(map));
        self
    }

    /// Do not reconcile an object for a change of its status alone (the same generation,
    /// labels, annotations, finalizers, owners and deletion mark): such a change is mostly the
    /// reconciler's own status write, and reconciling it again costs every read once more for
    /// nothing. The cache still takes the change. Only for a reconciler that reads nothing
    /// of its input from the object's status; a wait for something else has a watch of it.
    pub fn ignore_status_only_changes(mut self) -> Self {
        self.ignore_status_only = true;
        self
    }

    /// The engaged clusters.
    pub fn clusters(&self) -> ClusterSet {
        self.clusters.clone()
    }

    /// The watched objects of kind `K`, kept current while the controller runs: a reader
    /// that only needs the objects (an authorization webhook's view of the workspaces) takes
    /// this before [`run`](Self::run).
    pub fn cache(&self) -> Cache<K> {
        self.cache.clone()
    }

    /// Whether the watches synced, and whether one is failing.
    pub fn health(&self) -> Health {
        Health {
            tracker: self.tracker.clone(),
            synced: self.synced.clone(),
        }
    }

    /// Runs until `stop` is cancelled, then shuts down within the configured deadline.
    pub async fn run<F, Fut, E>(self, reconcile: F, stop: CancellationToken)
    where
        F: Fn(Arc<K>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let Self {
            name,
            factory,
            source,
            config,
            metrics,
            related,
            engage_hooks,
            cache,
            clusters,
            tracker,
            synced: _,
            ignore_status_only,
            related_caches,
        } = self;
        let shared = Arc::new(Shared {
            name,
            cache,
            clusters,
            queue: WorkQueue::new(config.backoff),
            metrics,
            tracker,
            engage_hooks,
            seen_on: Mutex::default(),
            direct: source.is_direct(),
            ignore_status_only,
            related_caches: Arc::new(related_caches),
        });
        let related = Arc::new(related);
        let reconcile = Arc::new(reconcile);
        let by_bindings = source.engages_by_bindings();
        // Every task is owned here: when this future is dropped (the leader lost its lease),
        // the JoinSet aborts them all, and each worker aborts the reconcile it runs.
        let mut tasks = JoinSet::new();

        let (urls_tx, mut urls) = watch::channel((false, BTreeSet::new()));
        // The source counts as synced through `source_synced`; here it is tracked for failing.
        let (source_id, source_failing) = shared.tracker.register(format!("{source:?}"), true);
        {
            let (tracker, stop) = (shared.tracker.clone(), stop.child_token());
            let errors = shared.metrics.as_ref().map(|m| {
                m.watch_errors
                    .get_or_create(&WatchErrorLabels {
                        controller: shared.name.clone(),
                        kind: source.kind().to_owned(),
                        endpoint: "source".to_owned(),
                    })
                    .clone()
            });
            let failed = move |_: &watcher::Error| {
                if let Some(errors) = &errors {
                    errors.inc();
                }
            };
            tasks.spawn(async move {
                source.watch(urls_tx, &source_failing, failed, stop).await;
                tracker.unregister(source_id);
            });
        }
        for _ in 0..config.concurrency.max(1) {
            tasks.spawn(worker(
                shared.clone(),
                factory.clone(),
                reconcile.clone(),
                config.resync,
                stop.clone(),
            ));
        }

        let mut endpoints = Endpoints::default();
        loop {
            let retry = endpoints.next_retry();
            tokio::select! {
                () = stop.cancelled() => break,
                changed = urls.changed() => if changed.is_err() { break },
                () = sleep_until_some(retry) => {}
            }
            let (synced, wanted) = urls.borrow_and_update().clone();
            endpoints.update(&shared, &wanted, &stop, |url, token| {
                for watch in start_endpoint(&shared, &factory, &related, url, by_bindings, token)? {
                    tasks.spawn(watch);
                }
                Ok(())
            });
            if synced {
                shared.tracker.source_synced();
            }
        }

        tracing::info!(controller = %shared.name, "shutting down");
        endpoints.stop(&shared);
        shared.queue.shut_down();
        let drained = tokio::time::timeout(config.shutdown_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(controller = %shared.name, "shutdown deadline passed; abandoning running work");
            tasks.abort_all();
        }
    }
}

/// How often an endpoint whose watches could not be started is tried again. What can fail
/// for a while is building its client: the credentials are read then (a token file not yet
/// mounted or being rotated, an exec credential plugin that fails). An invalid URL fails the
/// same way every time and is not retried. kube's watcher retries a failing watch at least
/// every 30 s; so does this.
const ENDPOINT_RETRY: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(30),
};

/// The endpoints a controller watches, and those whose watches could not be started.
#[derive(Debug, Default)]
struct Endpoints {
    /// Endpoint URL → the token that stops its watches.
    running: HashMap<String, CancellationToken>,
    /// Endpoint URL → its failed starts, and when to try again: `None` for an invalid URL,
    /// which fails the same way every time, until the source lists another.
    broken: HashMap<String, (u32, Option<Instant>)>,
}

impl Endpoints {
    /// When the next broken endpoint is to be tried again, if one is.
    fn next_retry(&self) -> Option<Instant> {
        self.broken.values().filter_map(|(_, at)| *at).min()
    }

    /// Follows the source's URL set: stops and drops the endpoints that left it, starts the
    /// new ones with `start` (which spawns their watches, stopped by the token it gets), and
    /// tries the broken ones whose retry is due again. Failed starts are logged, counted in
    /// `kcp_watch_errors` (under the controller's own kind) and reported by the health until
    /// the endpoint starts or leaves the set.
    fn update<K: Resource<DynamicType = ()>>(
        &mut self,
        shared: &Shared<K>,
        wanted: &BTreeSet<String>,
        stop: &CancellationToken,
        mut start: impl FnMut(&str, &CancellationToken) -> Result<(), ClientError>,
    ) {
        let controller = &shared.name;
        for (url, token) in self.running.extract_if(|url, _| !wanted.contains(url)) {
            tracing::info!(%controller, %url, "endpoint removed");
            token.cancel();
            drop_endpoint(shared, &url);
        }
        for (url, _) in self.broken.extract_if(|url, _| !wanted.contains(url)) {
            tracing::info!(%controller, %url, "endpoint removed");
            shared.tracker.endpoint_started(&url);
        }
        let now = Instant::now();
        for url in wanted {
            if self.running.contains_key(url) {
                continue;
            }
            match self.broken.get(url) {
                Some((_, retry)) if retry.is_none_or(|at| at > now) => continue,
                Some(_) => {}
                None => tracing::info!(%controller, %url, "endpoint added"),
            }
            let token = stop.child_token();
            match start(url, &token) {
                Ok(()) => {
                    self.running.insert(url.clone(), token);
                    if let Some((failures, _)) = self.broken.remove(url) {
                        tracing::info!(%controller, %url, failures, "endpoint started");
                        shared.tracker.endpoint_started(url);
                    }
                }
                Err(error) => {
                    let (failures, retry) = self.broken.entry(url.clone()).or_default();
                    *failures = failures.saturating_add(1);
                    // The same string fails to parse (or is no apiexport URL) every time.
                    let retried = !matches!(error, ClientError::InvalidUrl { .. });
                    let delay = ENDPOINT_RETRY.delay(*failures);
                    *retry = retried.then(|| now + delay);
                    if retried {
                        tracing::warn!(%controller, %url, %error, retry_in = ?delay, "cannot watch endpoint; retrying");
                    } else {
                        tracing::error!(%controller, %url, %error, "cannot watch endpoint: its URL is invalid; waiting for the endpoint source to change it");
                    }
                    if let Some(m) = &shared.metrics {
                        m.watch_errors
                            .get_or_create(&WatchErrorLabels {
                                controller: controller.clone(),
                                kind: K::plural(&()).into_owned(),
                                endpoint: url.clone(),
                            })
                            .inc();
                    }
                    shared
                        .tracker
                        .endpoint_failed(url, error.to_string(), retried);
                }
            }
        }
        if let Some(m) = &shared.metrics {
            m.endpoints
                .get_or_create(&shared.label())
                .set(i64::try_from(self.running.len()).unwrap_or(i64::MAX));
        }
    }

    /// Stops every endpoint's watches (the controller stops); the health forgets the broken.
    fn stop<K>(&mut self, shared: &Shared<K>) {
        for token in self.running.values() {
            token.cancel();
        }
        for url in self.broken.keys() {
            shared.tracker.endpoint_started(url);
        }
        self.broken.clear();
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Whether `new` differs from `old` in its status alone: see
/// [`Controller::ignore_status_only_changes`].
fn only_status_changed<K: Resource>(old: &K, new: &K) -> bool {
    let (a, b) = (old.meta(), new.meta());
    a.generation.is_some()
        && a.generation == b.generation
        && a.labels == b.labels
        && a.annotations == b.annotations
        && a.finalizers == b.finalizers
        && a.owner_references == b.owner_references
        && a.deletion_timestamp == b.deletion_timestamp
}

/// Starts the watches of one endpoint; they stop when `token` is cancelled.
fn start_endpoint<K>(
    shared: &Arc<Shared<K>>,
    factory: &ClientFactory,
    related: &Arc<Vec<RelatedWatch<K>>>,
    url: &str,
    by_bindings: bool,
    token: &CancellationToken,
) -> Result<Vec<BoxFuture>, ClientError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let wildcard = if shared.direct {
        factory.for_url(url)?
    } else {
        factory.for_virtual_wildcard(url)?
    };
    let wildcard = watch_client(wildcard, shared);
    let mut watches: Vec<BoxFuture> = Vec::new();

    if by_bindings {
        let export = ExportRef::from_endpoint_url(url).ok_or_else(|| ClientError::InvalidUrl {
            url: url.to_owned(),
            reason:
                "not an apiexport virtual-workspace URL (…/services/apiexport/<cluster>/<export>)"
                    .to_owned(),
        })?;
        let (shared, client, stop, url) = (
            shared.clone(),
            wildcard.clone(),
            token.clone(),
            url.to_owned(),
        );
        watches.push(Box::pin(async move {
            shared
                .clone()
                .watch::<ApiBinding>(client, &url.clone(), stop, move |shared, seen| match seen {
                    // Only Ready bindings of this export engage (an export that claims
                    // apibindings also sees the workspace's other bindings, tenancy.kcp.io …).
                    // A binding being deleted still engages while Ready: kcp deletes the
                    // workspace's content meanwhile, and its objects' finalizers need us.
                    Seen::Apply(key, binding)
                        if export.is_bound_by(binding) && binding.is_ready() =>
                    {
                        let path = path_of(binding);
                        if shared.clusters.hold(&key.cluster, &key.name, &url, path)
                            == Change::Engaged
                        {
                            shared.engaged(&key.cluster);
                        }
                    }
                    Seen::Apply(key, _) | Seen::Delete(key, _) => {
                        if shared.clusters.release(&key.cluster, &key.name, &url)
                            == Change::Disengaged
                        {
                            shared.disengaged(&key.cluster);
                        }
                    }
                    Seen::Synced => {}
                })
                .await;
        }));
    }

    let (primary_shared, client, stop, endpoint) = (
        shared.clone(),
        wildcard.clone(),
        token.clone(),
        url.to_owned(),
    );
    watches.push(Box::pin(async move {
        primary_shared
            .clone()
            .watch::<K>(
                client,
                &endpoint.clone(),
                stop,
                move |shared, seen| match seen {
                    Seen::Apply(key, object) => {
                        let previous = shared.cache.insert(key.clone(), Arc::new(object.clone()));
                        let mut seen_on = shared.seen_on.lock().unwrap_or_else(|p| p.into_inner());
                        let endpoints = seen_on.entry(key.cluster.clone()).or_default();
                        if !endpoints.contains(&endpoint) {
                            endpoints.insert(endpoint.clone());
                        }
                        drop(seen_on);
                        if !by_bindings
                            && shared.clusters.hold(
                                &key.cluster,
                                &key.to_string(),
                                &endpoint,
                                path_of(object),
                            ) == Change::Engaged
                        {
                            shared.engaged(&key.cluster);
                        }
                        let status_only = shared.ignore_status_only
                            && previous.is_some_and(|p| only_status_changed(&*p, object));
                        if !status_only {
                            shared.enqueue(key);
                        }
                    }
                    Seen::Delete(key, _) => {
                        shared.cache.remove(&key);
                        shared.queue.remove(&key);
                        if !by_bindings
                            && shared
                                .clusters
                                .release(&key.cluster, &key.to_string(), &endpoint)
                                == Change::Disengaged
                        {
                            shared.disengaged(&key.cluster);
                        }
                        shared.observe_queue();
                    }
                    Seen::Synced => {}
                },
            )
            .await;
    }));

    for watch in related.iter() {
        watches.push(watch(
            shared.clone(),
            wildcard.clone(),
            url.to_owned(),
            token.clone(),
        ));
    }
    Ok(watches)
}

/// The export an apiexport virtual-workspace URL serves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExportRef {
    cluster: String,
    name: String,
}

impl ExportRef {
    /// From `<shard>/services/apiexport/<export cluster>/<export name>`.
    fn from_endpoint_url(url: &str) -> Option<Self> {
        let (_, rest) = url.split_once("/services/apiexport/")?;
        let mut parts = rest.trim_end_matches('/').split('/');
        let (cluster, name) = (parts.next()?, parts.next()?);
        (parts.next().is_none() && !cluster.is_empty() && !name.is_empty()).then(|| Self {
            cluster: cluster.to_owned(),
            name: name.to_owned(),
        })
    }

    fn is_bound_by(&self, binding: &ApiBinding) -> bool {
        let names_us = binding
            .spec
            .reference
            .export
            .as_ref()
            .is_some_and(|e| e.name == self.name);
        let in_our_cluster = binding
            .status
            .as_ref()
            .and_then(|s| s.api_export_cluster_name.as_deref())
            == Some(self.cluster.as_str());
        names_us && in_our_cluster
    }
}

/// An endpoint went away: the clusters only it held disengage, and the objects of the
/// clusters only it delivered leave the cache.
fn drop_endpoint<K>(shared: &Shared<K>, url: &str) {
    for cluster in shared.clusters.drop_endpoint(url) {
        shared.disengaged(&cluster);
    }
    let gone: Vec<ClusterName> = {
        let mut seen_on = shared.seen_on.lock().unwrap_or_else(|p| p.into_inner());
        let mut gone = Vec::new();
        seen_on.retain(|cluster, endpoints| {
            let kept = !(endpoints.remove(url) && endpoints.is_empty());
            if !kept {
                gone.push(cluster.clone());
            }
            kept
        });
        gone
    };
    for key in shared.cache.remove_where(|key| gone.contains(&key.cluster)) {
        shared.queue.remove(&key);
    }
    shared.observe_queue();
}

fn path_of<R: Resource>(object: &R) -> Option<ClusterPath> {
    object.annotations().get(PATH_ANNOTATION)?.parse().ok()
}

/// One worker: takes keys off the queue and reconciles them until the queue shuts down.
async fn worker<K, F, Fut, E>(
    shared: Arc<Shared<K>>,
    factory: ClientFactory,
    reconcile: Arc<F>,
    resync: Option<Duration>,
    stop: CancellationToken,
) where
    K: Send + Sync + 'static,
    F: Fn(Arc<K>, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    // No reconcile before every watch delivered its first list, as controller-runtime waits
    // for its caches: one that ran earlier would take what a related watch has not shown yet
    // for absent (after a restart, an Account whose Workspace was not in the cache yet lost
    // Ready until the next pass).
    let mut synced = shared.tracker.synced.subscribe();
    tokio::select! {
        result = synced.wait_for(|synced| *synced) => if result.is_err() { return },
        () = stop.cancelled() => return,
    }
    drop(synced);
    while let Some(key) = shared.queue.next().await {
        shared.observe_queue();
        let (Some(object), Some(endpoint)) = (
            shared.cache.get(&key),
            shared.clusters.endpoint_of(&key.cluster),
        ) else {
            // Gone, or its cluster is not engaged: nothing to do until it comes back.
            shared.queue.done(key, Completion::Success(None));
            continue;
        };
        let context = Context {
            key: key.clone(),
            endpoint,
            factory: factory.clone(),
            clusters: shared.clusters.clone(),
            direct: shared.direct,
            related: shared.related_caches.clone(),
        };
        let started = Instant::now();
        // Its own task, so a panicking reconcile does not take the worker (and the key) with
        // it; aborted with the worker, so a dropped controller leaves no reconcile running.
        let result = match AbortOnDrop(tokio::spawn(reconcile(object, context))).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(join) => Err(format!("the reconcile panicked: {join}")),
        };
        let completion = match &result {
            Ok(Action::Done) => Completion::Success(resync),
            Ok(Action::RequeueAfter(after)) => Completion::Success(Some(*after)),
            Err(error) => {
                tracing::warn!(controller = %shared.name, %key, %error, "reconcile failed");
                Completion::Failure
            }
        };
        if let Some(m) = &shared.metrics {
            let label = shared.label();
            m.reconcile_time
                .get_or_create(&label)
                .observe(started.elapsed().as_secs_f64());
            m.reconciles
                .get_or_create(&ResultLabels {
                    controller: shared.name.clone(),
                    result: ReconcileResult::of(&result).as_str().to_owned(),
                })
                .inc();
            if completion == Completion::Failure {
                m.reconcile_errors.get_or_create(&label).inc();
            }
        }
        let retry_in = shared.queue.done(key.clone(), completion);
        if completion == Completion::Failure {
            tracing::debug!(controller = %shared.name, %key, ?retry_in, "backing off");
        }
    }
}

/// A spawned task, aborted when this handle is dropped (tokio's own handle detaches instead).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Wraps a wildcard client for the runtime's watches: an empty watch response is read as
/// expired ([`expire_if_empty`]), and with metrics every watch request is counted by resource,
/// the evidence that one watch per kind per endpoint is all the runtime opens.
fn watch_client<K>(client: Client, shared: &Shared<K>) -> Client {
    let metrics = shared.metrics.clone();
    let controller = shared.name.clone();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let watch = is_watch(request.uri());
        if let (true, Some(metrics)) = (watch, &metrics) {
            let kind = crate::client::classify(request.method(), request.uri().path(), None).1;
            metrics
                .watch_requests
                .get_or_create(&WatchLabels {
                    controller: controller.clone(),
                    kind,
                })
                .inc();
        }
        let client = client.clone();
        async move {
            let response = client.send(request).await.map_err(BoxError::from)?;
            Ok::<_, BoxError>(expire_if_empty(response, watch))
        }
    });
    Client::new(service, "default")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use k8s_openapi::api::core::v1::ConfigMap;
    use prometheus_client::registry::Registry;

    use super::*;

    #[test]
    fn a_status_write_alone_is_a_status_only_change() {
        use crate::types::tenancy::Workspace;
        let mut old = Workspace::new("w", Default::default());
        old.metadata.generation = Some(3);
        old.metadata.finalizers = Some(vec!["f".into()]);
        let mut status = old.clone();
        status.metadata.resource_version = Some("9".into());
        status.status = Some(Default::default());
        assert!(only_status_changed(&old, &status));

        let changed: [fn(&mut Workspace); 6] = [
            |w| w.metadata.generation = Some(4),
            |w| w.metadata.labels = Some([("l".to_owned(), "v".to_owned())].into()),
            |w| w.metadata.annotations = Some([("a".to_owned(), "v".to_owned())].into()),
            |w| w.metadata.finalizers = None,
            |w| w.metadata.owner_references = Some(vec![Default::default()]),
            |w| {
                w.metadata.deletion_timestamp = Some(
                    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
                )
            },
        ];
        for change in changed {
            let mut new = status.clone();
            change(&mut new);
            assert!(!only_status_changed(&old, &new), "{:?}", new.metadata);
        }
        // Without a generation nothing tells spec from status: every change counts.
        let (mut a, mut b) = (old.clone(), status.clone());
        a.metadata.generation = None;
        b.metadata.generation = None;
        assert!(!only_status_changed(&a, &b));
    }

    #[test]
    fn the_export_is_read_from_the_endpoint_url() {
        let export = ExportRef::from_endpoint_url(
            "https://h:6443/services/apiexport/1xjz4095h44lho1r/core.platform-mesh.io",
        )
        .unwrap();
        assert_eq!(export.cluster, "1xjz4095h44lho1r");
        assert_eq!(export.name, "core.platform-mesh.io");
        assert_eq!(
            ExportRef::from_endpoint_url("https://h/services/apiexport/x"),
            None
        );
        assert_eq!(
            ExportRef::from_endpoint_url("https://h/clusters/root"),
            None
        );
    }

    #[test]
    fn only_bindings_of_this_export_count() {
        let export = ExportRef {
            cluster: "abc".into(),
            name: "core.platform-mesh.io".into(),
        };
        let binding = |name: &str, cluster: &str| -> ApiBinding {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding",
                "metadata": {"name": name},
                "spec": {"reference": {"export": {"path": "root:x", "name": name}}},
                "status": {"apiExportClusterName": cluster},
            }))
            .unwrap()
        };
        assert!(export.is_bound_by(&binding("core.platform-mesh.io", "abc")));
        assert!(!export.is_bound_by(&binding("tenancy.kcp.io", "root")));
        assert!(!export.is_bound_by(&binding("core.platform-mesh.io", "other")));
    }

    /// A factory whose clients authenticate with a token file that does not exist yet: one
    /// way building a client fails for a while and then works (a projected token not yet
    /// mounted). Creating the file fixes it.
    struct TokenFile(PathBuf);

    impl TokenFile {
        fn missing(test: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "kcp-endpoint-retry-{}-{test}.token",
                std::process::id()
            ));
            let _ = std::fs::remove_file(&path);
            Self(path)
        }

        fn factory(&self, server: &str) -> ClientFactory {
            let mut config = kube::Config::new(server.parse().unwrap());
            config.auth_info.token_file = Some(self.0.display().to_string());
            ClientFactory::new(config).unwrap()
        }

        fn create(&self) {
            std::fs::write(&self.0, "token").unwrap();
        }
    }

    impl Drop for TokenFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn shared(metrics: RuntimeMetrics) -> (Arc<Shared<ConfigMap>>, Health) {
        let (synced_tx, synced) = watch::channel(false);
        let tracker = Arc::new(WatchTracker {
            state: Mutex::default(),
            synced: synced_tx,
        });
        let shared = Arc::new(Shared {
            name: "test".into(),
            cache: Cache::default(),
            clusters: ClusterSet::default(),
            queue: WorkQueue::new(Backoff::default()),
            metrics: Some(metrics),
            tracker: tracker.clone(),
            engage_hooks: Vec::new(),
            seen_on: Mutex::default(),
            direct: false,
            ignore_status_only: false,
            related_caches: Arc::default(),
        });
        (shared, Health { tracker, synced })
    }

    fn start_errors(metrics: &RuntimeMetrics, controller: &str, url: &str) -> u64 {
        metrics
            .watch_errors
            .get_or_create(&WatchErrorLabels {
                controller: controller.into(),
                kind: "configmaps".into(),
                endpoint: url.into(),
            })
            .get()
    }

    const URL: &str = "https://shard-1:6443/services/apiexport/abc/core.platform-mesh.io";

    /// Issue 14: a failed start was only logged, and the endpoint stayed unwatched until the
    /// slice's URLs changed.
    #[tokio::test(start_paused = true)]
    async fn a_failed_endpoint_start_is_retried_with_backoff_and_reported_until_it_starts() {
        let token = TokenFile::missing("retried");
        let factory = token.factory("https://127.0.0.1:6443");
        let metrics = RuntimeMetrics::new(&mut Registry::default());
        let (shared, health) = shared(metrics.clone());
        let stop = CancellationToken::new();
        let wanted = BTreeSet::from([URL.to_owned()]);
        let attempts = AtomicUsize::new(0);
        let start = |url: &str, _: &CancellationToken| {
            attempts.fetch_add(1, Ordering::SeqCst);
            factory.for_virtual_wildcard(url).map(drop)
        };
        let mut endpoints = Endpoints::default();
        let began = Instant::now();

        endpoints.update(&shared, &wanted, &stop, start);
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
        assert_eq!(endpoints.next_retry(), Some(began + Duration::from_secs(1)));
        // Another change of the source before the retry is due does not try again.
        endpoints.update(&shared, &wanted, &stop, start);
        assert_eq!(attempts.load(Ordering::SeqCst), 1);

        // Retried after 1 s, then 2 s, 4 s …
        for (failures, next) in [(2, 3), (3, 7), (4, 15)] {
            tokio::time::sleep_until(endpoints.next_retry().unwrap()).await;
            endpoints.update(&shared, &wanted, &stop, start);
            assert_eq!(attempts.load(Ordering::SeqCst), failures);
            assert_eq!(
                endpoints.next_retry(),
                Some(began + Duration::from_secs(next))
            );
        }
        assert_eq!(start_errors(&metrics, "test", URL), 4);
        let why = health.failing_longer_than(Duration::from_secs(5)).unwrap();
        assert!(
            why.starts_with(&format!(
                "starting the watches on endpoint {URL} has been failing for 7s: "
            )),
            "{why}"
        );
        assert!(why.contains("token"), "{why}");
        assert!(!why.contains("not retried"), "{why}");
        assert_eq!(health.failing_longer_than(Duration::from_secs(7)), None);

        token.create();
        tokio::time::sleep_until(endpoints.next_retry().unwrap()).await;
        endpoints.update(&shared, &wanted, &stop, start);
        assert_eq!(attempts.load(Ordering::SeqCst), 5);
        assert_eq!(endpoints.next_retry(), None);
        assert!(endpoints.running.contains_key(URL));
        assert_eq!(health.failing_longer_than(Duration::ZERO), None);
        let gauge = |m: &RuntimeMetrics| {
            m.endpoints
                .get_or_create(&ControllerLabel {
                    controller: "test".into(),
                })
                .get()
        };
        assert_eq!(gauge(&metrics), 1);

        // Started endpoints are not started again, and leave with the source's list.
        endpoints.update(&shared, &wanted, &stop, start);
        assert_eq!(attempts.load(Ordering::SeqCst), 5);
        endpoints.update(&shared, &BTreeSet::new(), &stop, start);
        assert!(endpoints.running.is_empty());
        assert_eq!(gauge(&metrics), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_invalid_endpoint_url_is_reported_not_retried_and_forgotten_when_it_leaves() {
        let factory =
            ClientFactory::new(kube::Config::new("https://127.0.0.1:6443".parse().unwrap()))
                .unwrap();
        let metrics = RuntimeMetrics::new(&mut Registry::default());
        let (shared, health) = shared(metrics.clone());
        let stop = CancellationToken::new();
        let related = Arc::new(Vec::new());
        let attempts = AtomicUsize::new(0);
        let start = |url: &str, token: &CancellationToken| {
            attempts.fetch_add(1, Ordering::SeqCst);
            start_endpoint(&shared, &factory, &related, url, true, token).map(drop)
        };
        // Not a URL; and a URL that is no apiexport virtual workspace (the export it serves
        // is read from it).
        let (garbage, not_apiexport) = (
            "shard-1:6443/services",
            "https://shard-1:6443/clusters/root",
        );
        let wanted = BTreeSet::from([garbage.to_owned(), not_apiexport.to_owned()]);
        let mut endpoints = Endpoints::default();
        endpoints.update(&shared, &wanted, &stop, start);
        assert_eq!(attempts.load(Ordering::SeqCst), 2);
        assert_eq!(endpoints.next_retry(), None, "nothing to retry");

        tokio::time::sleep(Duration::from_secs(600)).await;
        endpoints.update(&shared, &wanted, &stop, start);
        assert_eq!(attempts.load(Ordering::SeqCst), 2, "not retried");
        assert_eq!(start_errors(&metrics, "test", garbage), 1);
        assert_eq!(start_errors(&metrics, "test", not_apiexport), 1);
        let why = health.failing_longer_than(Duration::from_secs(60)).unwrap();
        assert!(why.contains("has been failing for 600s"), "{why}");
        assert!(why.contains("not retried: the URL is invalid"), "{why}");

        // The source lists a good URL instead: the bad ones are forgotten.
        let fixed = BTreeSet::from([URL.to_owned()]);
        endpoints.update(&shared, &fixed, &stop, start);
        assert_eq!(attempts.load(Ordering::SeqCst), 3);
        assert!(endpoints.running.contains_key(URL));
        assert!(endpoints.broken.is_empty());
        assert_eq!(health.failing_longer_than(Duration::ZERO), None);
    }

    /// Two shards: `moving` is held and seen on both (it moves from shard 1 to 2), `staying`
    /// on shard 1 only. Dropping shard 1 leaves `moving` engaged on shard 2 with its objects
    /// cached, and takes `staying` with its objects.
    #[tokio::test]
    async fn dropping_one_of_two_endpoints_keeps_what_the_other_serves() {
        const S2: &str = "https://shard-2:6443/services/apiexport/abc/core.platform-mesh.io";
        let (shared, _) = shared(RuntimeMetrics::new(&mut Registry::default()));
        let (moving, staying): (ClusterName, ClusterName) =
            ("moving".parse().unwrap(), "staying".parse().unwrap());
        for (cluster, endpoints) in [(&moving, vec![URL, S2]), (&staying, vec![URL])] {
            let key = ObjectKey::cluster_scoped(cluster.clone(), "cm");
            shared
                .cache
                .insert(key.clone(), Arc::new(ConfigMap::default()));
            for endpoint in endpoints {
                shared.clusters.hold(cluster, "binding", endpoint, None);
                shared
                    .seen_on
                    .lock()
                    .unwrap()
                    .entry(cluster.clone())
                    .or_default()
                    .insert(endpoint.to_owned());
            }
            shared.queue.add(key);
        }

        drop_endpoint(&shared, URL);
        assert_eq!(shared.clusters.clusters(), vec![moving.clone()]);
        assert_eq!(shared.clusters.endpoint_of(&moving).as_deref(), Some(S2));
        let cached: Vec<ObjectKey> = shared.cache.keys();
        assert_eq!(
            cached,
            vec![ObjectKey::cluster_scoped(moving.clone(), "cm")]
        );
        assert_eq!(
            shared.queue.len(),
            1,
            "the dropped cluster's key left the queue"
        );

        drop_endpoint(&shared, S2);
        assert!(shared.clusters.is_empty());
        assert_eq!(shared.cache.len(), 0);
        assert!(shared.seen_on.lock().unwrap().is_empty());
    }

    /// A plain API server with no ConfigMaps whose watches stay open.
    async fn serve_nothing(uri: axum::http::Uri) -> axum::response::Response {
        use axum::response::IntoResponse;
        if uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true"))
        {
            let forever = futures::stream::pending::<Result<String, std::io::Error>>();
            return axum::body::Body::from_stream(forever).into_response();
        }
        axum::Json(
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "1"}, "items": []}),
        )
        .into_response()
    }

    /// A reconcile reads the controller's own kind from its cache, every cluster's objects
    /// included, as it reads a related kind.
    #[tokio::test]
    async fn a_reconcile_reads_its_own_kind_from_the_cache() {
        async fn serve_two(uri: axum::http::Uri) -> axum::response::Response {
            use axum::response::IntoResponse;
            if uri.query().is_some_and(|q| q.contains("watch=true")) {
                return serve_nothing(uri).await;
            }
            let item = |cluster: &str| {
                serde_json::json!({"metadata": {"name": "c", "namespace": "default",
                    "resourceVersion": "1", "annotations": {crate::CLUSTER_ANNOTATION: cluster}}})
            };
            axum::Json(
                serde_json::json!({"apiVersion": "v1", "kind": "ConfigMapList",
                "metadata": {"resourceVersion": "1"}, "items": [item("abc"), item("def")]}),
            )
            .into_response()
        }
        let app = axum::Router::new().route("/api/v1/configmaps", axum::routing::get(serve_two));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let factory = ClientFactory::new(kube::Config::new(url.parse().unwrap())).unwrap();
        let controller: Controller<ConfigMap> = Controller::new(
            "own",
            factory,
            EndpointSource::Direct { url },
            ControllerConfig::default(),
            None,
        );
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let running = tokio::spawn(controller.run(
            move |_, ctx: Context| {
                let cached = ctx.cached_everywhere::<ConfigMap>().map(|all| {
                    let mut clusters: Vec<String> =
                        all.iter().map(|(key, _)| key.cluster.to_string()).collect();
                    clusters.sort();
                    clusters
                });
                let _ = seen_tx.send(cached);
                async { Ok::<_, String>(Action::Done) }
            },
            stop.clone(),
        ));
        // The first reconcile may run before the list's second object is cached; the second
        // one's reconcile sees both.
        let both = vec!["abc".to_owned(), "def".to_owned()];
        loop {
            let cached = tokio::time::timeout(Duration::from_secs(20), seen.recv())
                .await
                .unwrap()
                .unwrap();
            let cached = cached.expect("the controller's own kind is cached");
            if cached == both {
                break;
            }
            assert!(cached.iter().all(|c| both.contains(c)), "{cached:?}");
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), running)
            .await
            .unwrap()
            .unwrap();
    }

    /// The controller's own loop retries the endpoint on its timer, with no change of the
    /// source to wake it, and its health reports the endpoint until it works.
    #[tokio::test]
    async fn a_controller_watches_an_endpoint_once_its_client_can_be_built() {
        let app =
            axum::Router::new().route("/api/v1/configmaps", axum::routing::get(serve_nothing));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let token = TokenFile::missing("controller");
        let metrics = RuntimeMetrics::new(&mut Registry::default());
        let controller: Controller<ConfigMap> = Controller::new(
            "retrying",
            token.factory(&url),
            EndpointSource::Direct { url: url.clone() },
            ControllerConfig::default(),
            Some(metrics.clone()),
        );
        let health = controller.health();
        let stop = CancellationToken::new();
        let running = tokio::spawn(
            controller.run(|_, _| async { Ok::<_, String>(Action::Done) }, stop.clone()),
        );
        let eventually = async |what: &str, done: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(20);
            while !done() {
                assert!(Instant::now() < deadline, "timed out waiting for {what}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        eventually("the endpoint to fail", &|| {
            health.failing_longer_than(Duration::ZERO).is_some()
        })
        .await;
        let why = health.failing_longer_than(Duration::ZERO).unwrap();
        assert!(why.contains(&format!("endpoint {url}")), "{why}");
        assert!(start_errors(&metrics, "retrying", &url) >= 1);

        token.create();
        eventually("the endpoint to start and sync", &|| {
            health.is_synced() && health.failing_longer_than(Duration::ZERO).is_none()
        })
        .await;
        let watches = metrics
            .watches
            .get_or_create(&WatchLabels {
                controller: "retrying".into(),
                kind: "configmaps".into(),
            })
            .get();
        assert_eq!(watches, 1);

        stop.cancel();
        tokio::time::timeout(Duration::from_secs(15), running)
            .await
            .unwrap()
            .unwrap();
    }
}
