//! The Account and AccountInfo controllers: lifecycle controllers over the
//! `core.platform-mesh.io` virtual workspaces. Each file holds a kind's subroutines and the
//! pure functions that compute what they write, unit-tested without a server.

mod account;
mod account_info;
mod metrics;
mod slots;

use std::sync::Arc;

use kcp::runtime::Context;
use kcp::{ClusterName, ClusterPath};
use kube::Client;
use lifecycle::{SubroutineError, Wait};

pub use account::{
    ACCOUNT_RECONCILER, Steps, account_controller, child_account_info, org_account_info,
    org_workspace_types, workspace_type_name,
};
pub use account_info::{ACCOUNT_INFO_RECONCILER, account_info_controller};
pub use metrics::AccountMetrics;
pub use slots::CreationSlots;

/// What every subroutine needs besides the object.
#[derive(Debug)]
pub struct Settings {
    /// The workspace holding organisations and their WorkspaceTypes (`root:orgs`).
    pub orgs_path: ClusterPath,
    /// kcp's CA (PEM), written into every AccountInfo.
    pub ca_pem: String,
    pub metrics: AccountMetrics,
    /// The workspaces in creation per workspace, capped by `--max-workspaces-in-creation`.
    pub creation_slots: CreationSlots,
}

/// The context a subroutine gets: the runtime's (clients for the object's cluster and for
/// other engaged clusters) and the operator's settings.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub runtime: Context,
    pub settings: Arc<Settings>,
}

impl Ctx {
    /// A client for the object's own (origin) cluster.
    fn origin(&self) -> Result<Client, SubroutineError> {
        self.runtime.client().map_err(|e| {
            SubroutineError::transient(format!("client for {}: {e}", self.runtime.key.cluster))
        })
    }

    /// The cluster of `root:orgs`, once it is bound to the export and engaged.
    fn orgs_cluster(&self) -> Result<ClusterName, SubroutineError> {
        let path = &self.settings.orgs_path;
        self.runtime
            .clusters()
            .cluster_for_path(path)
            .ok_or_else(|| {
                Wait::new(format!(
                    "waiting for {path} to bind core.platform-mesh.io (it is not served yet)"
                ))
                .into()
            })
    }

    /// A client for `root:orgs`, once it is bound to the export and engaged.
    fn orgs(&self) -> Result<Client, SubroutineError> {
        let path = &self.settings.orgs_path;
        let cluster = self.orgs_cluster()?;
        match self.runtime.client_for(&cluster) {
            Some(Ok(client)) => Ok(client),
            _ => Err(Wait::new(format!("waiting for {path} to be served")).into()),
        }
    }
}
