//! A multi-cluster controller runtime over kcp virtual workspaces.
//!
//! ```text
//! EndpointSource (APIExportEndpointSlice | WorkspaceType), watched by name
//!    │ its URLs: one virtual-workspace endpoint per shard, added and removed live
//!    ▼
//! per endpoint: one wildcard watch per kind at <url>/clusters/*
//!    │ every object carries kcp.io/cluster
//!    ▼
//! ClusterSet (engaged clusters, endpoint per cluster, path index) + Cache<K> keyed by
//! ObjectKey { cluster, namespace, name } ◄── related kinds (and newly engaged clusters)
//!                                             map to primary keys
//!    ▼
//! WorkQueue<ObjectKey>: dedupe, per-key backoff, one run per key at a time, due keys
//!    │ round-robin across clusters (a busy workspace cannot starve the others), N workers
//!    ▼
//! reconcile(object, Context) ── writes through <endpoint>/clusters/<cluster>
//! ```

mod cache;
mod clusters;
mod controller;
mod expiry;
mod metrics;
mod queue;
mod source;
mod watch;

pub use cache::{Cache, ObjectKey};
pub use clusters::ClusterSet;
pub use controller::{
    Action, ApiScope, Context, Controller, ControllerConfig, Health, ReconcileResult,
};
pub use metrics::RuntimeMetrics;
pub use queue::{Backoff, Completion, FairnessGroup, WorkQueue};
pub use source::{EndpointSource, VirtualWorkspaceKind};
