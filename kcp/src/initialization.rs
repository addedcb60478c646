//! Releasing a workspace from an initializer or terminator.
//!
//! A controller removes only its own entry from `status.initializers` (or
//! `status.terminators`) of the LogicalCluster, through its virtual workspace. kcp only checks
//! that exactly one entry disappears and that it is the caller's; a merge patch computed from
//! a stale read would re-add an entry another controller removed meanwhile. Every release
//! therefore carries the `resourceVersion` it was computed from: a stale one gets 409 and is
//! recomputed from a fresh read.

use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::types::core::{LOGICAL_CLUSTER_NAME, LogicalCluster};

/// Which list a marker lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// An entry of `status.initializers`, e.g. `root:security`.
    Initializer(String),
    /// An entry of `status.terminators`.
    Terminator(String),
}

impl Marker {
    /// The marker a WorkspaceType's virtual-workspace URL serves: its last path segment, as
    /// kcp writes it (`…/services/initializingworkspaces/<initializer>`). Read, never built:
    /// for types outside `root` it is `<cluster name>:<type>`, not a path.
    pub fn from_virtual_workspace_url(url: &str) -> Option<Self> {
        let url = url.trim_end_matches('/');
        let (service, name) = url.rsplit_once('/')?;
        let name = name.to_owned();
        if service.ends_with("/services/initializingworkspaces") {
            Some(Self::Initializer(name))
        } else if service.ends_with("/services/terminatingworkspaces") {
            Some(Self::Terminator(name))
        } else {
            None
        }
    }

    fn field(&self) -> &'static str {
        match self {
            Self::Initializer(_) => "initializers",
            Self::Terminator(_) => "terminators",
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Initializer(n) | Self::Terminator(n) => n,
        }
    }

    fn entries<'a>(&self, cluster: &'a LogicalCluster) -> &'a [String] {
        let status = cluster.status.as_ref();
        match self {
            Self::Initializer(_) => status.map_or(&[], |s| &s.initializers),
            Self::Terminator(_) => status.map_or(&[], |s| &s.terminators),
        }
    }
}

/// What a release did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// Our entry was removed now.
    Removed,
    /// Our entry was already gone.
    AlreadyGone,
}

/// Errors releasing a marker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("releasing {marker:?}: {source}")]
    Api {
        marker: Marker,
        #[source]
        source: kube::Error,
    },
    #[error("releasing {marker:?}: the LogicalCluster kept changing ({attempts} attempts)")]
    Contended { marker: Marker, attempts: u32 },
}

const ATTEMPTS: u32 = 5;

/// Removes `marker` from the LogicalCluster that `client` addresses (a client for
/// `<virtual workspace url>/clusters/<cluster>`).
pub async fn release(client: Client, marker: &Marker) -> Result<Released, Error> {
    let api: Api<LogicalCluster> = Api::all(client);
    let api_error = |source| Error::Api {
        marker: marker.clone(),
        source,
    };
    for _ in 0..ATTEMPTS {
        let cluster = api.get(LOGICAL_CLUSTER_NAME).await.map_err(api_error)?;
        let Some(patch) = release_patch(&cluster, marker) else {
            return Ok(Released::AlreadyGone);
        };
        match api
            .patch_status(
                LOGICAL_CLUSTER_NAME,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => return Ok(Released::Removed),
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(api_error(e)),
        }
    }
    Err(Error::Contended {
        marker: marker.clone(),
        attempts: ATTEMPTS,
    })
}

/// The merge patch that removes `marker` from what `cluster` lists, guarded by its
/// resourceVersion; `None` when the marker is not listed.
pub fn release_patch(cluster: &LogicalCluster, marker: &Marker) -> Option<serde_json::Value> {
    let entries = marker.entries(cluster);
    if !entries.iter().any(|e| e == marker.name()) {
        return None;
    }
    let remaining: Vec<&String> = entries.iter().filter(|e| *e != marker.name()).collect();
    Some(serde_json::json!({
        "metadata": { "resourceVersion": cluster.metadata.resource_version },
        "status": { marker.field(): remaining },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::core::LogicalClusterStatus;
    use kube::core::ObjectMeta;

    fn cluster(initializers: &[&str]) -> LogicalCluster {
        LogicalCluster {
            metadata: ObjectMeta {
                resource_version: Some("42".into()),
                ..Default::default()
            },
            spec: Default::default(),
            status: Some(LogicalClusterStatus {
                initializers: initializers.iter().map(|s| (*s).to_owned()).collect(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn markers_are_read_from_virtual_workspace_urls() {
        assert_eq!(
            Marker::from_virtual_workspace_url(
                "https://h:6443/services/initializingworkspaces/2x7qbhz1k5mtaf3s:security"
            ),
            Some(Marker::Initializer("2x7qbhz1k5mtaf3s:security".into()))
        );
        assert_eq!(
            Marker::from_virtual_workspace_url(
                "https://h/services/terminatingworkspaces/root:org/"
            ),
            Some(Marker::Terminator("root:org".into()))
        );
        assert_eq!(
            Marker::from_virtual_workspace_url("https://h/services/apiexport/x/y"),
            None
        );
    }

    #[test]
    fn the_patch_removes_only_our_entry_and_carries_the_resource_version() {
        let patch = release_patch(
            &cluster(&["root:universal", "abc:mine", "system:apibindings"]),
            &Marker::Initializer("abc:mine".into()),
        )
        .unwrap();
        assert_eq!(
            patch,
            serde_json::json!({
                "metadata": {"resourceVersion": "42"},
                "status": {"initializers": ["root:universal", "system:apibindings"]},
            })
        );
        assert_eq!(
            release_patch(
                &cluster(&["other"]),
                &Marker::Initializer("abc:mine".into())
            ),
            None
        );
    }
}
