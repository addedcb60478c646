//! The controller: endpoints, wildcard watches, engagement, the store, the queue, workers.

use std::collections::{BTreeSet, HashMap};
use std::fmt::{Debug, Display};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::client::Body;
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::clusters::{Change, ClusterSet};
use super::metrics::{ControllerLabel, ResultLabels, RuntimeMetrics, WatchLabels};
use super::queue::{Backoff, Outcome, WorkQueue};
use super::source::EndpointSource;
use super::store::{ObjectKey, Store};
use super::watch::{Seen, run};
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
    /// The virtual-workspace endpoint (shard) the object's cluster is served on.
    pub endpoint: String,
    factory: ClientFactory,
    clusters: ClusterSet,
}

impl Context {
    /// A client for the object's cluster through its endpoint: `<endpoint>/clusters/<cluster>`.
    pub fn client(&self) -> Result<Client, ClientError> {
        self.factory
            .for_virtual_cluster(&self.endpoint, &self.key.cluster)
    }

    /// A client for another engaged cluster, through the endpoint that serves it.
    pub fn client_for(&self, cluster: &ClusterName) -> Option<Result<Client, ClientError>> {
        let endpoint = self.clusters.endpoint_of(cluster)?;
        Some(self.factory.for_virtual_cluster(&endpoint, cluster))
    }

    /// The engaged clusters, with the path index.
    pub fn clusters(&self) -> &ClusterSet {
        &self.clusters
    }

    /// The client factory, for workspaces outside the virtual workspace.
    pub fn factory(&self) -> &ClientFactory {
        &self.factory
    }
}

/// Whether every watch of a controller has delivered its first complete list.
#[derive(Debug, Clone)]
pub struct Readiness(watch::Receiver<bool>);

impl Readiness {
    /// Ready now?
    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until ready; returns false if the controller stopped first.
    pub async fn wait(&mut self) -> bool {
        self.0.wait_for(|ready| *ready).await.is_ok()
    }
}

/// Which watches have synced; readiness is "the source and every open watch synced".
#[derive(Debug)]
struct SyncTracker {
    state: Mutex<(bool, HashMap<u64, bool>, u64)>,
    ready: watch::Sender<bool>,
}

impl SyncTracker {
    fn update(
        &self,
        change: impl FnOnce(&mut (bool, HashMap<u64, bool>, u64)) -> Option<u64>,
    ) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let id = change(&mut state);
        let ready = state.0 && state.1.values().all(|synced| *synced);
        self.ready
            .send_if_modified(|r| std::mem::replace(r, ready) != ready);
        id
    }

    fn source_synced(&self) {
        self.update(|s| {
            s.0 = true;
            None
        });
    }

    fn register(&self) -> u64 {
        self.update(|s| {
            s.2 += 1;
            s.1.insert(s.2, false);
            Some(s.2)
        })
        .unwrap_or_default()
    }

    fn synced(&self, id: u64) {
        self.update(|s| {
            s.1.insert(id, true);
            None
        });
    }

    fn unregister(&self, id: u64) {
        self.update(|s| {
            s.1.remove(&id);
            None
        });
    }
}

/// State shared by a controller's tasks.
struct Shared<K> {
    name: String,
    store: Store<K>,
    clusters: ClusterSet,
    queue: WorkQueue<ObjectKey>,
    metrics: Option<RuntimeMetrics>,
    sync: SyncTracker,
    /// The endpoint each stored object's cluster was seen on, to drop them with it.
    seen_on: Mutex<HashMap<ClusterName, String>>,
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

    /// A cluster engaged: everything already seen in it gets reconciled.
    fn engaged(&self, cluster: &ClusterName) {
        tracing::info!(controller = %self.name, %cluster, "cluster engaged");
        for (key, _) in self.store.in_cluster(cluster) {
            self.queue.add(key);
        }
        self.observe_clusters();
        self.observe_queue();
    }

    fn disengaged(&self, cluster: &ClusterName) {
        tracing::info!(controller = %self.name, %cluster, "cluster disengaged");
        for (key, _) in self.store.in_cluster(cluster) {
            self.queue.remove(&key);
        }
        self.observe_clusters();
        self.observe_queue();
    }

    /// Runs one watch on an endpoint, counted in the metrics and the readiness.
    async fn watch<R>(
        self: &Arc<Self>,
        client: Client,
        stop: CancellationToken,
        mut on: impl FnMut(&Arc<Self>, Seen<'_, R>),
    ) where
        R: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + 'static,
    {
        let kind = R::plural(&()).into_owned();
        let id = self.sync.register();
        let gauge = self.metrics.as_ref().map(|m| {
            m.watches
                .get_or_create(&WatchLabels {
                    controller: self.name.clone(),
                    kind: kind.clone(),
                })
                .clone()
        });
        if let Some(g) = &gauge {
            g.inc();
        }
        run(
            Api::<R>::all(client),
            watcher::Config::default(),
            &kind,
            stop,
            |seen| {
                if matches!(seen, Seen::Synced) {
                    self.sync.synced(id);
                }
                on(self, seen);
            },
        )
        .await;
        if let Some(g) = &gauge {
            g.dec();
        }
        self.sync.unregister(id);
    }
}

type RelatedWatch<K> =
    Box<dyn Fn(Arc<Shared<K>>, Client, CancellationToken) -> BoxFuture + Send + Sync>;

/// A controller of kind `K` across every workspace its endpoint source serves.
pub struct Controller<K> {
    factory: ClientFactory,
    source: EndpointSource,
    config: ControllerConfig,
    related: Vec<RelatedWatch<K>>,
    shared: Arc<Shared<K>>,
    ready: watch::Receiver<bool>,
}

impl<K> Debug for Controller<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.shared.name)
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
        let (ready_tx, ready) = watch::channel(false);
        let shared = Arc::new(Shared {
            name: name.into(),
            store: Store::default(),
            clusters: ClusterSet::default(),
            queue: WorkQueue::new(config.backoff),
            metrics,
            sync: SyncTracker {
                state: Mutex::new((false, HashMap::new(), 0)),
                ready: ready_tx,
            },
            seen_on: Mutex::default(),
        });
        Self {
            factory,
            source,
            config,
            related: Vec::new(),
            shared,
            ready,
        }
    }

    /// Also watch kind `R` on every endpoint, and reconcile the primary objects `map` names
    /// for each change (a Workspace's phase change wakes its Account, …).
    pub fn watches<R>(
        mut self,
        map: impl Fn(&R, &ObjectKey, &Store<K>) -> Vec<ObjectKey> + Send + Sync + 'static,
    ) -> Self
    where
        R: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    {
        let map = Arc::new(map);
        self.related.push(Box::new(move |shared, client, stop| {
            let map = map.clone();
            Box::pin(async move {
                shared
                    .watch::<R>(client, stop, |shared, seen| {
                        let (key, object) = match &seen {
                            Seen::Apply(key, object) => (key, *object),
                            Seen::Delete(key, Some(object)) => (key, *object),
                            Seen::Delete(_, None) | Seen::Synced => return,
                        };
                        for primary in map(object, key, &shared.store) {
                            shared.enqueue(primary);
                        }
                    })
                    .await;
            })
        }));
        self
    }

    /// The primary objects seen so far, from every cluster.
    pub fn store(&self) -> Store<K> {
        self.shared.store.clone()
    }

    /// The engaged clusters.
    pub fn clusters(&self) -> ClusterSet {
        self.shared.clusters.clone()
    }

    /// Becomes ready once the source and every open watch delivered a complete list.
    pub fn readiness(&self) -> Readiness {
        Readiness(self.ready.clone())
    }

    /// Runs until `stop` is cancelled, then shuts down within the configured deadline.
    pub async fn run<F, Fut, E>(self, reconcile: F, stop: CancellationToken)
    where
        F: Fn(Arc<K>, Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Action, E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let Self {
            factory,
            source,
            config,
            related,
            shared,
            ready: _,
        } = self;
        let related = Arc::new(related);
        let reconcile = Arc::new(reconcile);
        let by_bindings = source.engages_by_bindings();
        let mut tasks = JoinSet::new();

        let (urls_tx, mut urls) = watch::channel((false, BTreeSet::new()));
        tasks.spawn(source.watch(urls_tx, stop.child_token()));
        for _ in 0..config.concurrency.max(1) {
            tasks.spawn(worker(
                shared.clone(),
                factory.clone(),
                reconcile.clone(),
                config.resync,
            ));
        }

        let mut endpoints: HashMap<String, CancellationToken> = HashMap::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                changed = urls.changed() => if changed.is_err() { break },
            }
            let (synced, wanted) = urls.borrow_and_update().clone();
            for (url, token) in endpoints.extract_if(|url, _| !wanted.contains(url)) {
                tracing::info!(controller = %shared.name, %url, "endpoint removed");
                token.cancel();
                drop_endpoint(&shared, &url);
            }
            for url in wanted {
                if endpoints.contains_key(&url) {
                    continue;
                }
                tracing::info!(controller = %shared.name, %url, "endpoint added");
                let token = stop.child_token();
                match start_endpoint(&shared, &factory, &related, &url, by_bindings, &token) {
                    Ok(watches) => {
                        for watch in watches {
                            tasks.spawn(watch);
                        }
                        endpoints.insert(url, token);
                    }
                    Err(error) => {
                        tracing::error!(controller = %shared.name, %url, %error, "cannot watch endpoint");
                    }
                }
            }
            if let Some(m) = &shared.metrics {
                m.endpoints
                    .get_or_create(&shared.label())
                    .set(i64::try_from(endpoints.len()).unwrap_or(i64::MAX));
            }
            if synced {
                shared.sync.source_synced();
            }
        }

        tracing::info!(controller = %shared.name, "shutting down");
        for token in endpoints.values() {
            token.cancel();
        }
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
    let wildcard = counting_watches(factory.for_virtual_wildcard(url)?, shared);
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
                .watch::<ApiBinding>(client, stop, move |shared, seen| match seen {
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
                        if shared.clusters.release(&key.cluster, &key.name) == Change::Disengaged {
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
            .watch::<K>(client, stop, move |shared, seen| match seen {
                Seen::Apply(key, object) => {
                    shared.store.insert(key.clone(), Arc::new(object.clone()));
                    shared
                        .seen_on
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key.cluster.clone(), endpoint.clone());
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
                    shared.enqueue(key);
                }
                Seen::Delete(key, _) => {
                    shared.store.remove(&key);
                    shared.queue.remove(&key);
                    if !by_bindings
                        && shared.clusters.release(&key.cluster, &key.to_string())
                            == Change::Disengaged
                    {
                        shared.disengaged(&key.cluster);
                    }
                    shared.observe_queue();
                }
                Seen::Synced => {}
            })
            .await;
    }));

    for watch in related.iter() {
        watches.push(watch(shared.clone(), wildcard.clone(), token.clone()));
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

/// An endpoint went away: its clusters disengage and its objects leave the store.
fn drop_endpoint<K>(shared: &Shared<K>, url: &str) {
    for cluster in shared.clusters.drop_endpoint(url) {
        shared.disengaged(&cluster);
    }
    let gone: Vec<ClusterName> = {
        let mut seen_on = shared.seen_on.lock().unwrap_or_else(|p| p.into_inner());
        let gone = seen_on
            .iter()
            .filter(|(_, e)| e.as_str() == url)
            .map(|(c, _)| c.clone())
            .collect();
        seen_on.retain(|_, e| e.as_str() != url);
        gone
    };
    for key in shared.store.remove_where(|key| gone.contains(&key.cluster)) {
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
) where
    K: Send + Sync + 'static,
    F: Fn(Arc<K>, Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Action, E>> + Send + 'static,
    E: Display + Send + 'static,
{
    while let Some(key) = shared.queue.next().await {
        shared.observe_queue();
        let (Some(object), Some(endpoint)) = (
            shared.store.get(&key),
            shared.clusters.endpoint_of(&key.cluster),
        ) else {
            // Gone, or its cluster is not engaged: nothing to do until it comes back.
            shared.queue.done(key, Outcome::Success(None));
            continue;
        };
        let context = Context {
            key: key.clone(),
            endpoint,
            factory: factory.clone(),
            clusters: shared.clusters.clone(),
        };
        let started = Instant::now();
        // A panicking reconcile must not take the worker (and the key) with it.
        let result = tokio::spawn(reconcile(object, context)).await;
        let (outcome, result_label) = match result {
            Ok(Ok(Action::Done)) => (Outcome::Success(resync), "success"),
            Ok(Ok(Action::RequeueAfter(after))) => (Outcome::Success(Some(after)), "requeue_after"),
            Ok(Err(error)) => {
                tracing::warn!(controller = %shared.name, %key, %error, "reconcile failed");
                (Outcome::Failure, "error")
            }
            Err(join) => {
                tracing::error!(controller = %shared.name, %key, error = %join, "reconcile panicked");
                (Outcome::Failure, "error")
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
                    result: result_label.to_owned(),
                })
                .inc();
            if outcome == Outcome::Failure {
                m.reconcile_errors.get_or_create(&label).inc();
            }
        }
        let retry_in = shared.queue.done(key.clone(), outcome);
        if outcome == Outcome::Failure {
            tracing::debug!(controller = %shared.name, %key, ?retry_in, "backing off");
        }
    }
}

/// Wraps a wildcard client so every watch request it sends is counted by resource: the
/// evidence that one watch per kind per endpoint is all the runtime opens.
fn counting_watches<K>(client: Client, shared: &Shared<K>) -> Client {
    let Some(metrics) = shared.metrics.clone() else {
        return client;
    };
    let controller = shared.name.clone();
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let is_watch = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true"));
        if is_watch {
            let kind = resource_of(request.uri().path()).to_owned();
            metrics
                .watch_requests
                .get_or_create(&WatchLabels {
                    controller: controller.clone(),
                    kind,
                })
                .inc();
        }
        let client = client.clone();
        async move { client.send(request).await.map_err(BoxError::from) }
    });
    Client::new(service, "default")
}

/// The resource segment of an API path: `/apis/g/v/resource` or `/api/v1/resource`.
fn resource_of(path: &str) -> &str {
    let after_api = path
        .split_once("/apis/")
        .map(|(_, rest)| rest.splitn(3, '/').nth(2))
        .or_else(|| {
            path.split_once("/api/")
                .map(|(_, rest)| rest.split_once('/').map(|(_, resource)| resource))
        })
        .flatten()
        .unwrap_or(path);
    after_api.split('/').next_back().unwrap_or(after_api)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn resource_segment_of_api_paths() {
        assert_eq!(
            resource_of(
                "/services/apiexport/x/e/clusters/*/apis/core.platform-mesh.io/v1alpha1/accounts"
            ),
            "accounts"
        );
        assert_eq!(resource_of("/clusters/*/api/v1/configmaps"), "configmaps");
    }
}
