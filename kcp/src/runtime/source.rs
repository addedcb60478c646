//! Where a controller's virtual-workspace endpoints come from.

use std::collections::BTreeSet;

use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::watch::{Failing, Seen, Target, run};
use crate::types::apis::ApiExportEndpointSlice;
use crate::types::tenancy::WorkspaceType;

/// Which of a WorkspaceType's virtual workspaces a controller uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VirtualWorkspaceKind {
    /// `…/services/initializingworkspaces/<initializer>`: workspaces waiting for us.
    Initializing,
    /// `…/services/terminatingworkspaces/<terminator>`: deleted workspaces waiting for us.
    Terminating,
}

impl VirtualWorkspaceKind {
    fn type_name(self) -> &'static str {
        match self {
            Self::Initializing => "initializing",
            Self::Terminating => "terminating",
        }
    }
}

/// The object whose status lists the endpoint URLs, one per shard. It is watched by name in
/// the workspace `client` points at; endpoints are added and removed as it changes, an empty
/// list is normal, and its deletion stops every endpoint.
#[derive(Clone)]
pub enum EndpointSource {
    /// `APIExportEndpointSlice` `name`: apiexport virtual workspaces. Clusters engage while
    /// they hold a Ready APIBinding to the export.
    ApiExport { client: Client, slice: String },
    /// `WorkspaceType` `name`: initializing or terminating virtual workspaces. Clusters engage
    /// while the virtual workspace lists their LogicalCluster.
    WorkspaceType {
        client: Client,
        name: String,
        kind: VirtualWorkspaceKind,
    },
    /// The API server `url` names, watched directly: one endpoint and no virtual workspace,
    /// for a plain Kubernetes cluster (the one hosting the operators, where a
    /// `PlatformMesh` lives). Its objects engage their cluster themselves; those without kcp's
    /// cluster annotation belong to [`ClusterName::host`](crate::ClusterName::host).
    Direct { url: String },
}

impl std::fmt::Debug for EndpointSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiExport { slice, .. } => write!(f, "APIExportEndpointSlice {slice}"),
            Self::WorkspaceType { name, kind, .. } => write!(f, "WorkspaceType {name} ({kind:?})"),
            Self::Direct { url } => write!(f, "{url}"),
        }
    }
}

impl EndpointSource {
    /// The plural of the kind watched, for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::ApiExport { .. } => "apiexportendpointslices",
            Self::WorkspaceType { .. } => "workspacetypes",
            Self::Direct { .. } => "direct",
        }
    }

    /// Whether the one endpoint is the server itself rather than virtual workspaces.
    pub(crate) fn is_direct(&self) -> bool {
        matches!(self, Self::Direct { .. })
    }

    /// Whether clusters engage through APIBindings (apiexport flavour) rather than through
    /// the primary objects themselves (initializing and terminating flavours).
    pub(crate) fn engages_by_bindings(&self) -> bool {
        matches!(self, Self::ApiExport { .. })
    }

    /// Watches the source until `stop`, publishing its endpoint URLs (and whether the first
    /// list arrived) on `urls`.
    pub(crate) async fn watch(
        self,
        urls: watch::Sender<(bool, BTreeSet<String>)>,
        failing: &Failing,
        failed: impl FnMut(&watcher::Error),
        stop: CancellationToken,
    ) {
        let publish = |set: BTreeSet<String>| {
            urls.send_modify(|(synced, current)| {
                *synced = true;
                *current = set;
            });
        };
        match self {
            Self::ApiExport { client, slice } => {
                let config = watcher::Config::default().fields(&format!("metadata.name={slice}"));
                let api: Api<ApiExportEndpointSlice> = Api::all(client);
                run(
                    Target {
                        api,
                        config,
                        what: "apiexportendpointslice",
                        unannotated: None,
                    },
                    stop,
                    failing,
                    failed,
                    |seen| match seen {
                        Seen::Apply(_, s) => {
                            publish(s.endpoint_urls().map(str::to_owned).collect())
                        }
                        Seen::Delete(..) => publish(BTreeSet::new()),
                        Seen::Synced => urls.send_modify(|(synced, _)| *synced = true),
                    },
                )
                .await;
            }
            Self::WorkspaceType { client, name, kind } => {
                let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
                let api: Api<WorkspaceType> = Api::all(client);
                run(
                    Target {
                        api,
                        config,
                        what: "workspacetype",
                        unannotated: None,
                    },
                    stop,
                    failing,
                    failed,
                    |seen| match seen {
                        Seen::Apply(_, wt) => publish(
                            wt.virtual_workspace_urls(kind.type_name())
                                .map(str::to_owned)
                                .collect(),
                        ),
                        Seen::Delete(..) => publish(BTreeSet::new()),
                        Seen::Synced => urls.send_modify(|(synced, _)| *synced = true),
                    },
                )
                .await;
            }
            Self::Direct { url } => {
                // Nothing to watch: the endpoint is fixed.
                publish(BTreeSet::from([url]));
                stop.cancelled().await;
            }
        }
    }
}
