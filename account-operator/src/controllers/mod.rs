//! The Account and AccountInfo controllers: kcp runtime controllers over the
//! `core.platform-mesh.io` virtual workspaces, each running its subroutines through the
//! lifecycle engine.

mod account;
mod account_info;
mod metrics;

use std::sync::Arc;
use std::time::Duration;

use kcp::ClusterPath;
use kcp::runtime::{Action, Context};
use kube::{Api, Client, Resource};
use lifecycle::{Lifecycle, Outcome, SubroutineError};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use account::{AccountController, Steps, account_controller};
pub use account_info::{AccountInfoController, account_info_controller};
pub use metrics::AccountMetrics;

/// What every subroutine needs besides the object.
#[derive(Debug)]
pub struct Settings {
    /// The workspace holding organisations and their WorkspaceTypes (`root:orgs`).
    pub orgs_path: ClusterPath,
    /// kcp's CA (PEM), written into every AccountInfo.
    pub ca_pem: String,
    /// Only objects whose `debug.platform-mesh.io` label has this value are reconciled.
    pub debug_label_value: String,
    pub metrics: AccountMetrics,
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

    /// A client for `root:orgs`, once it is bound to the export and engaged.
    fn orgs(&self) -> Result<Client, Outcome> {
        let path = &self.settings.orgs_path;
        let cluster = self
            .runtime
            .clusters()
            .cluster_for_path(path)
            .ok_or_else(|| {
                Outcome::pending(format!(
                    "waiting for {path} to bind core.platform-mesh.io (it is not served yet)"
                ))
            })?;
        match self.runtime.client_for(&cluster) {
            Some(Ok(client)) => Ok(client),
            _ => Err(Outcome::pending(format!("waiting for {path} to be served"))),
        }
    }
}

/// The label that limits which objects a controller instance reconciles (upstream's debug
/// predicate).
pub const DEBUG_LABEL: &str = "debug.platform-mesh.io";

/// Runs `lifecycle` for one object, as the runtime's reconcile function.
async fn reconcile_with<K>(
    lifecycle: &Lifecycle<K, Ctx>,
    object: Arc<K>,
    ctx: Ctx,
) -> Result<Action, lifecycle::Error>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let label = object
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(DEBUG_LABEL));
    if label.map_or("", String::as_str) != ctx.settings.debug_label_value {
        return Ok(Action::Done);
    }
    let client = match ctx.runtime.client() {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(key = %ctx.runtime.key, error = %e, "no client for the object's cluster");
            return Ok(Action::RequeueAfter(Duration::from_secs(1)));
        }
    };
    let api: Api<K> = Api::all(client);
    let reconciled = lifecycle.reconcile(&api, object, &ctx).await?;
    Ok(reconciled
        .requeue_after
        .map_or(Action::Done, Action::RequeueAfter))
}
