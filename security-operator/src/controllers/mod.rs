//! The controllers. Each file holds one kind's controller, its subroutines and the pure
//! functions that compute what they write, unit-tested without a server:
//!
//! * [`store`]: Store → OpenFGA store, composed model, spec tuples (role `fga`);
//! * [`authorization_model`]: AuthorizationModel → its verdict from the Store, its tuples
//!   (role `fga`);
//! * [`account_info`]: holds AccountInfo while APIBindings still need it (role `fga`);
//! * [`workspace`]: the `root:security` initializer and terminator of org and account
//!   workspaces (roles `initializer`, `terminator`), and the same work re-applied to
//!   initialized workspaces (role `fga`);
//! * [`api_export_policy`]: APIExportPolicy → `bind` tuples (role `system`);
//! * [`model_generator`]: APIBinding → AuthorizationModels for the bound resources (role
//!   `model-generator`);
//! * [`identity_provider`]: IdentityProviderConfiguration → Keycloak realm and OIDC clients
//!   (role `system`, with a Keycloak);
//! * [`invite`]: Invite → the user in the org's realm and the invitation e-mail (role `fga`,
//!   with a Keycloak);
//! * [`keycloak`]: the Keycloak settings and error classification the identity controllers
//!   share;
//! * [`oidc`]: the org initializer's identity steps;
//! * [`tuples`]: the tuple subroutine the Store and the AuthorizationModel share.

mod account_info;
mod api_export_policy;
mod authorization_model;
mod identity_provider;
mod invite;
mod keycloak;
mod metrics;
mod model_generator;
mod oidc;
mod store;
mod tuples;
mod workspace;

use std::sync::Arc;

use crds::Store;
use fga::FgaError;
use kcp::runtime::Context;
use kcp::types::apis::ApiExportEndpointSlice;
use kcp::types::core::{LOGICAL_CLUSTER_NAME, LogicalCluster};
use kcp::{CLUSTER_ANNOTATION, ClientFactory, ClusterName, ClusterPath, PATH_ANNOTATION};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use lifecycle::{SubroutineError, Wait};
use openfga_client::client::OpenFgaServiceClient;
use tonic::transport::Channel;

pub use account_info::{ACCOUNT_INFO_RECONCILER, account_info_controller};
pub use api_export_policy::{API_EXPORT_POLICY_RECONCILER, api_export_policy_controller};
pub use authorization_model::{AUTHORIZATION_MODEL_RECONCILER, authorization_model_controller};
pub use identity_provider::{
    CLIENT_NAME_LABEL, CLIENT_SECRET_KEY, IDENTITY_PROVIDER_RECONCILER, IDP_NAME_LABEL,
    REGISTRATION_TOKEN_KEY, identity_provider_controller, refused_realm,
};
pub use invite::{DEFAULT_PASSWORD, INVITE_RECONCILER, invite_controller, required_actions};
pub use keycloak::KeycloakSettings;
pub use metrics::{FgaOperation, SecurityMetrics};
pub use model_generator::{MODEL_GENERATOR_RECONCILER, model_generator_controller};
pub use oidc::OidcSettings;
pub use store::{STORE_RECONCILER, core_module_problems, store_controller};
pub use workspace::{
    INITIALIZER_RECONCILER, TERMINATOR_RECONCILER, WORKSPACE_RECONCILER, initializer_controller,
    terminator_controller, workspace_controller,
};

/// The field manager of every write.
const MANAGER: &str = "security-operator";

/// What every subroutine needs besides the object.
#[derive(Debug)]
pub struct Settings {
    /// The workspace holding organisations and their Stores (`root:orgs`).
    pub orgs_path: ClusterPath,
    /// kcp's front door, for workspaces outside the object's own.
    pub factory: ClientFactory,
    /// The endpoint slices of the kubeconfig's workspace.
    pub slices: Api<ApiExportEndpointSlice>,
    /// The core endpoint slice's name (Stores, AuthorizationModels, APIBindings …).
    pub slice: String,
    /// The system endpoint slice's name (APIExportPolicies).
    pub system_slice: String,
    /// OpenFGA.
    pub fga: OpenFgaServiceClient<Channel>,
    /// The core module of every new organisation's Store.
    pub core_module: String,
    /// `--allow-member-tuples-enabled`.
    pub allow_member_tuples: bool,
    /// `--initializer-workspace-enabled`.
    pub initialize_org_store: bool,
    /// `security_operator_*` metrics.
    pub metrics: SecurityMetrics,
    /// The org initializer's identity steps.
    pub oidc: OidcSettings,
    /// The Keycloak of the identity controllers (`--keycloak-base-url`), if there is one.
    pub keycloak: Option<Arc<KeycloakSettings>>,
}

/// The context a subroutine gets: the runtime's and the operator's settings.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub runtime: Context,
    pub settings: Arc<Settings>,
}

impl Ctx {
    /// The object's own cluster name.
    fn cluster(&self) -> &str {
        self.runtime.key.cluster.as_str()
    }

    /// A client for the object's own cluster, through its endpoint.
    fn origin(&self) -> Result<Client, SubroutineError> {
        self.runtime.client().map_err(|e| {
            SubroutineError::transient(format!("client for {}: {e}", self.runtime.key.cluster))
        })
    }

    /// Keycloak; the identity controllers run only when one is configured.
    fn keycloak(&self) -> Result<&KeycloakSettings, SubroutineError> {
        self.settings.keycloak.as_deref().ok_or_else(|| {
            SubroutineError::permanent("NoKeycloak", "no --keycloak-base-url is configured")
        })
    }

    /// OpenFGA (a clone shares the connection).
    fn fga(&self) -> OpenFgaServiceClient<Channel> {
        self.settings.fga.clone()
    }

    /// Writes `writes` (duplicates ignored) into store `store_id`, counted as `apply`.
    async fn write_tuples(
        &self,
        store_id: &str,
        writes: Vec<fga::Tuple>,
        what: &str,
    ) -> Result<(), SubroutineError> {
        let diff = fga::sync::TupleDiff {
            writes,
            deletes: Vec::new(),
        };
        self.change_tuples(store_id, &diff, FgaOperation::Apply, what)
            .await
    }

    /// Deletes `deletes` (missing ones ignored) from store `store_id`, counted as `delete`.
    async fn delete_tuples(
        &self,
        store_id: &str,
        deletes: Vec<fga::Tuple>,
        what: &str,
    ) -> Result<(), SubroutineError> {
        let diff = fga::sync::TupleDiff {
            writes: Vec::new(),
            deletes,
        };
        self.change_tuples(store_id, &diff, FgaOperation::Delete, what)
            .await
    }

    /// Sends `diff` to store `store_id` in chunks, counted as `operation`; what OpenFGA
    /// refuses becomes a condition saying `what` failed.
    async fn change_tuples(
        &self,
        store_id: &str,
        diff: &fga::sync::TupleDiff,
        operation: FgaOperation,
        what: &str,
    ) -> Result<(), SubroutineError> {
        if diff.is_empty() {
            return Ok(());
        }
        let result = fga::sync::apply(
            &mut self.fga(),
            store_id,
            diff,
            &fga::sync::SyncOptions::default(),
        )
        .await;
        self.settings
            .metrics
            .fga(operation, result)
            .map(drop)
            .map_err(|e| fga_failure(what, e))
    }
}

impl Settings {
    /// A front-door client for a workspace path.
    fn workspace(&self, path: &ClusterPath) -> Result<Client, SubroutineError> {
        self.factory
            .for_path(path)
            .map_err(|e| SubroutineError::transient_from(format!("client for {path}"), e))
    }

    /// A front-door client for a logical cluster (name or path).
    fn cluster(&self, cluster: &str) -> Result<Client, SubroutineError> {
        let path: ClusterPath = cluster.parse().map_err(|e| {
            SubroutineError::permanent("InvalidCluster", format!("cluster {cluster:?}: {e}"))
        })?;
        self.workspace(&path)
    }

    /// The LogicalCluster of a workspace (name or path).
    async fn logical_cluster(&self, cluster: &str) -> Result<LogicalCluster, SubroutineError> {
        Api::<LogicalCluster>::all(self.cluster(cluster)?)
            .get(LOGICAL_CLUSTER_NAME)
            .await
            .map_err(|e| {
                SubroutineError::kube(format!("reading the LogicalCluster of {cluster}"), e)
            })
    }

    /// The LogicalCluster of workspace `cluster` (a name), read through the core export's
    /// virtual workspace on the shard that serves it, and a client for the workspace there.
    /// The export claims LogicalClusters and serves Accounts, so this reads any workspace that
    /// binds it (every org and account) with no RBAC in the workspace itself: only the
    /// export's `apiexports/content`. A shard that does not serve the workspace answers 403 or
    /// 404, one that is down does not answer; either way the next is asked, and when none
    /// serves it the error lists every answer.
    async fn through_core(
        &self,
        cluster: &str,
    ) -> Result<(LogicalCluster, Client), SubroutineError> {
        let name: ClusterName = cluster.parse().map_err(|e| {
            SubroutineError::permanent("InvalidCluster", format!("cluster {cluster:?}: {e}"))
        })?;
        let slice = self
            .slices
            .get_opt(&self.slice)
            .await
            .map_err(|e| {
                SubroutineError::kube(format!("reading endpoint slice {}", self.slice), e)
            })?
            .ok_or_else(|| {
                SubroutineError::transient(format!("there is no endpoint slice {}", self.slice))
            })?;
        let mut answers = Vec::new();
        for url in slice.endpoint_urls() {
            let client = self
                .factory
                .for_virtual_cluster(url, &name)
                .map_err(|e| SubroutineError::transient_from(format!("client for {url}"), e))?;
            match Api::<LogicalCluster>::all(client.clone())
                .get(LOGICAL_CLUSTER_NAME)
                .await
            {
                Ok(logical) => return Ok((logical, client)),
                Err(kube::Error::Api(status)) => answers.push(format!("{url}: {}", status.message)),
                Err(e) => answers.push(format!("{url}: {e}")),
            }
        }
        Err(SubroutineError::transient(format!(
            "no endpoint of {} serves workspace {cluster} ({})",
            self.slice,
            answers.join("; ")
        )))
    }

    /// The cluster name of `root:orgs`.
    async fn orgs_cluster(&self) -> Result<String, SubroutineError> {
        let orgs = self.orgs_path.as_str();
        let cluster = self.logical_cluster(orgs).await?;
        annotation(&cluster, CLUSTER_ANNOTATION).ok_or_else(|| {
            SubroutineError::transient(format!("{orgs} has no {CLUSTER_ANNOTATION}"))
        })
    }

    /// The workspace path of a logical cluster.
    async fn path_of(&self, cluster: &str) -> Result<String, SubroutineError> {
        let logical = self.logical_cluster(cluster).await?;
        annotation(&logical, PATH_ANNOTATION).ok_or_else(|| {
            SubroutineError::transient(format!("{cluster} has no {PATH_ANNOTATION} annotation"))
        })
    }

    /// Whether a workspace path belongs to a tenant: an organisation or an account below it.
    fn is_tenant_path(&self, path: &str) -> bool {
        path.strip_prefix(self.orgs_path.as_str())
            .is_some_and(|rest| rest.starts_with(':'))
    }

    /// The Store of organisation `org` in `root:orgs`, if it exists.
    async fn org_store(&self, org: &str) -> Result<Option<Store>, SubroutineError> {
        Api::<Store>::all(self.workspace(&self.orgs_path)?)
            .get_opt(org)
            .await
            .map_err(|e| {
                SubroutineError::kube(format!("reading Store {org} in {}", self.orgs_path), e)
            })
    }

    /// Every object of kind `K` on every shard of endpoint slice `slice`, with its cluster;
    /// `None` when the slice does not exist (its export is not installed).
    async fn list_everywhere<K>(
        &self,
        slice: &str,
    ) -> Result<Option<Vec<(String, K)>>, SubroutineError>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        let Some(slice) = self
            .slices
            .get_opt(slice)
            .await
            .map_err(|e| SubroutineError::kube(format!("reading endpoint slice {slice}"), e))?
        else {
            return Ok(None);
        };
        let mut objects = Vec::new();
        for url in slice.endpoint_urls() {
            let client = self
                .factory
                .for_virtual_wildcard(url)
                .map_err(|e| SubroutineError::transient_from(format!("client for {url}"), e))?;
            let list = Api::<K>::all(client)
                .list(&ListParams::default())
                .await
                .map_err(|e| {
                    SubroutineError::kube(format!("listing {} on {url}", K::plural(&())), e)
                })?;
            objects.extend(list.items.into_iter().filter_map(|object| {
                let cluster = annotation(&object, CLUSTER_ANNOTATION)?;
                Some((cluster, object))
            }));
        }
        Ok(Some(objects))
    }
}

/// A lifecycle controller of this operator: its reconciles counted in
/// `security_operator_reconcile_total`, its subroutines given the operator's settings.
fn new_controller<K: kit::controller::Object>(
    name: &'static str,
    setup: &kit::controller::Setup,
    subroutines: Vec<Box<dyn lifecycle::Subroutine<K, Ctx>>>,
    settings: Arc<Settings>,
) -> kit::controller::LifecycleController<K, Ctx> {
    let metrics = settings.metrics.clone();
    kit::controller::LifecycleController::new(name, setup, subroutines, move |runtime| Ctx {
        runtime,
        settings: settings.clone(),
    })
    .observe(move |_, result| metrics.reconciled(name, result.as_str()))
}

impl Settings {
    /// Every object of kind `K` behind the core endpoint slice, which must exist.
    async fn list_core<K>(&self) -> Result<Vec<(String, K)>, SubroutineError>
    where
        K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        self.list_everywhere(&self.slice).await?.ok_or_else(|| {
            SubroutineError::transient(format!("there is no endpoint slice {}", self.slice))
        })
    }
}

/// Merge patches under our field manager.
fn merge_params() -> kube::api::PatchParams {
    kube::api::PatchParams {
        field_manager: Some(MANAGER.to_owned()),
        ..Default::default()
    }
}

/// An annotation's value.
fn annotation<K: ResourceExt>(object: &K, key: &str) -> Option<String> {
    object.annotations().get(key).cloned()
}

/// A failed OpenFGA request: what OpenFGA refuses as invalid is permanent (the condition says
/// what to fix); anything else is retried. OpenFGA answers an invalid tuple with gRPC code
/// Unknown and a message naming the tuple, so that case is recognised by its message.
fn fga_failure(what: impl std::fmt::Display, error: FgaError) -> SubroutineError {
    let Some(status) = error.status() else {
        return SubroutineError::transient_from(what, error);
    };
    let reason = match status.code() {
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => "RejectedByOpenFGA",
        tonic::Code::Unknown if status.message().starts_with("Invalid tuple") => "InvalidTuple",
        // A model over OpenFGA's size limit: its code for that (`exceeded_entity_limit`) is no
        // gRPC code, so it arrives as Unknown.
        tonic::Code::Unknown if status.message().starts_with("model exceeds size limit") => {
            "RejectedByOpenFGA"
        }
        _ => return SubroutineError::transient_from(what, error),
    };
    SubroutineError::permanent(reason, format!("{what}: {error}"))
}

/// A wait that no watch ends: look again after a short while.
fn poll(message: impl Into<String>) -> Wait {
    Wait {
        message: message.into(),
        requeue_after: Some(std::time::Duration::from_secs(2)),
    }
}

/// The fga crate's tuple from the CRD's.
fn to_fga(tuple: &crds::Tuple) -> fga::Tuple {
    fga::Tuple::new(&tuple.object, &tuple.relation, &tuple.user)
}

/// The CRD's tuple from the fga crate's.
fn to_crd(tuple: &fga::Tuple) -> crds::Tuple {
    crds::Tuple {
        object: tuple.object.clone(),
        relation: tuple.relation.clone(),
        user: tuple.user.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: tonic::Status) -> SubroutineError {
        let error = FgaError::CreateStore {
            name: "acme".into(),
            source: Box::new(status),
        };
        fga_failure("creating", error)
    }

    fn reason(error: &SubroutineError) -> Option<&str> {
        match error {
            SubroutineError::Permanent { reason, .. } => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn what_openfga_refuses_is_permanent_and_the_rest_is_retried() {
        let invalid = refused(tonic::Status::invalid_argument("name too long"));
        assert_eq!(reason(&invalid), Some("RejectedByOpenFGA"));
        let tuple = refused(tonic::Status::unknown(
            "Invalid tuple 'a:b#r@not a user'. Reason: the 'user' field is malformed",
        ));
        assert_eq!(reason(&tuple), Some("InvalidTuple"));
        let too_large = refused(tonic::Status::unknown(
            "model exceeds size limit: 280426 bytes vs 262144 bytes",
        ));
        assert_eq!(reason(&too_large), Some("RejectedByOpenFGA"));
        assert_eq!(reason(&refused(tonic::Status::unknown("boom"))), None);
        assert_eq!(reason(&refused(tonic::Status::unavailable("down"))), None);
    }
}
