//! Runtime metrics, with controller-runtime's names where one exists so dashboards carry over.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ControllerLabel {
    pub controller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WatchLabels {
    pub controller: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WatchErrorLabels {
    pub controller: String,
    pub kind: String,
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    pub controller: String,
    pub result: String,
}

/// The runtime's metric families; register once, share between controllers.
#[derive(Clone, Debug)]
pub struct RuntimeMetrics {
    pub(crate) queue_depth: Family<ControllerLabel, Gauge>,
    pub(crate) reconciles: Family<ResultLabels, Counter>,
    pub(crate) reconcile_errors: Family<ControllerLabel, Counter>,
    pub(crate) reconcile_time: Family<ControllerLabel, Histogram>,
    pub(crate) endpoints: Family<ControllerLabel, Gauge>,
    pub(crate) engaged_clusters: Family<ControllerLabel, Gauge>,
    pub(crate) watches: Family<WatchLabels, Gauge>,
    pub(crate) watch_requests: Family<WatchLabels, Counter>,
    pub(crate) watch_errors: Family<WatchErrorLabels, Counter>,
}

impl RuntimeMetrics {
    /// Registers the families into `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            queue_depth: Family::default(),
            reconciles: Family::default(),
            reconcile_errors: Family::default(),
            reconcile_time: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 14))
            }),
            endpoints: Family::default(),
            engaged_clusters: Family::default(),
            watches: Family::default(),
            watch_requests: Family::default(),
            watch_errors: Family::default(),
        };
        registry.register(
            "workqueue_depth",
            "Keys waiting in the controller's work queue",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "controller_runtime_reconcile",
            "Reconciles by result (success, requeue, error)",
            metrics.reconciles.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Reconciles that returned an error",
            metrics.reconcile_errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Time per reconcile",
            metrics.reconcile_time.clone(),
        );
        registry.register(
            "kcp_virtual_workspace_endpoints",
            "Virtual-workspace endpoints (one per shard) the controller watches",
            metrics.endpoints.clone(),
        );
        registry.register(
            "kcp_engaged_clusters",
            "Logical clusters the controller currently serves",
            metrics.engaged_clusters.clone(),
        );
        registry.register(
            "kcp_wildcard_watches",
            "Open wildcard watches by kind (one per kind per endpoint)",
            metrics.watches.clone(),
        );
        registry.register(
            "kcp_watch_requests",
            "Watch requests sent, by kind (re-established watches count again)",
            metrics.watch_requests.clone(),
        );
        registry.register(
            "kcp_watch_errors",
            "Watch errors by kind and endpoint, each retried with backoff; a failed start of an \
             endpoint's watches counts under the controller's own kind (not retried when the \
             endpoint URL is invalid)",
            metrics.watch_errors.clone(),
        );
        metrics
    }
}
