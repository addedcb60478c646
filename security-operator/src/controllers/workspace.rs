//! The `root:security` initializer and terminator of org and account workspaces, on the
//! `security` WorkspaceType's initializing and terminating virtual workspaces (URLs read from
//! its status). kcp keeps a workspace initializing until every step below succeeded, and
//! keeps a deleted one until its termination did.
//!
//! * An org: its Store in `root:orgs` (the core module, the creator's owner tuples), waited
//!   for until the store exists and the tuples are written; then, each behind its flag, its
//!   identity provider, the creator's Invite and its authentication configuration ([`oidc`]).
//!   On deletion the org's AuthorizationModels and Store go (the Store's finalizer deletes
//!   its tuples and every OpenFGA store of the name), so an org re-created under the same
//!   name starts clean (upstream #214); upstream had no org terminator and org deletion hung
//!   (#43).
//! * An account: the owner, role and parent tuples in its org's store. On deletion its
//!   tuples and its roles' tuples go; a missing store is not an error.

use std::sync::Arc;

use async_trait::async_trait;
use crds::authorization_model::AuthorizationModel;
use crds::{Account, Store, StoreSpec};
use fga::platform_mesh::{account_object, owner_tuples, role_prefix};
use fga::sync::{SyncOptions, read_tuples};
use fga::tuple::ReadFilter;
use kcp::PATH_ANNOTATION;
use kcp::types::core::{LogicalCluster, LogicalClusterPhase};
use kit::controller::{LifecycleController, Setup};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use lifecycle::{Mode, Outcome, Subroutine, SubroutineError};

use super::api_export_policy::tuples_for_new_workspace;
use super::oidc;
use super::store::trusted_models;
use super::{Ctx, FgaOperation, MANAGER, Settings, fga_failure, new_controller, poll, to_crd};

/// The initializer controller's name.
pub const INITIALIZER_RECONCILER: &str = "LogicalClusterInitializer";
/// The name of the controller that re-applies the initializer's work to initialized workspaces.
pub const WORKSPACE_RECONCILER: &str = "LogicalClusterReconciler";
/// The terminator controller's name.
pub const TERMINATOR_RECONCILER: &str = "LogicalClusterTerminator";

/// Builds the initializer.
pub fn initializer_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<LogicalCluster, Ctx> {
    controller(INITIALIZER_RECONCILER, setup, settings).mode(Mode::Initializer)
}

/// Builds the terminator.
pub fn terminator_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<LogicalCluster, Ctx> {
    controller(TERMINATOR_RECONCILER, setup, settings).mode(Mode::Terminator)
}

/// Builds the controller that re-applies the initializer's work to initialized workspaces
/// (role `fga`, on the endpoint slice, which claims LogicalClusters): a Store or tuple deleted
/// behind the operator's back comes back. It writes nothing to the LogicalCluster.
pub fn workspace_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<LogicalCluster, Ctx> {
    controller(WORKSPACE_RECONCILER, setup, settings).without_conditions()
}

/// Whether kcp finished initializing the workspace and it is not being deleted: before, the
/// initializer does the work; after, the terminator undoes it.
fn initialized(cluster: &LogicalCluster) -> bool {
    cluster.metadata.deletion_timestamp.is_none()
        && cluster
            .status
            .as_ref()
            .is_some_and(|s| s.phase == Some(LogicalClusterPhase::Ready))
}

fn controller(
    name: &'static str,
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<LogicalCluster, Ctx> {
    new_controller(name, setup, vec![Box::new(WorkspaceSubroutine)], settings)
}

/// What a workspace is to Platform Mesh, read from its LogicalCluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tenant {
    /// `root:orgs:<org>`; `orgs_cluster` holds its Account.
    Org { org: String, orgs_cluster: String },
    /// `root:orgs:<org>:…:<name>`; `parent_cluster` holds its Account.
    Account {
        org: String,
        name: String,
        parent_cluster: String,
    },
}

/// Classifies a LogicalCluster by its `kcp.io/path` below `orgs_path`; `None` for anything
/// else (no path, no owner, or not below `orgs_path`).
pub(super) fn tenant(cluster: &LogicalCluster, orgs_path: &str) -> Option<Tenant> {
    let path = cluster.annotations().get(PATH_ANNOTATION)?;
    let rest = path.strip_prefix(orgs_path)?.strip_prefix(':')?;
    let owner = cluster.spec.owner.as_ref()?;
    let segments: Vec<&str> = rest.split(':').collect();
    let org = (*segments.first()?).to_owned();
    if segments.len() == 1 {
        return Some(Tenant::Org {
            org,
            orgs_cluster: owner.cluster.clone(),
        });
    }
    Some(Tenant::Account {
        org,
        name: (*segments.last()?).to_owned(),
        parent_cluster: owner.cluster.clone(),
    })
}

fn tenant_of(cluster: &LogicalCluster, ctx: &Ctx) -> Option<Tenant> {
    tenant(cluster, ctx.settings.orgs_path.as_str())
}

/// The creator of Account `name` in `cluster`, read with `client` (for that cluster).
async fn creator(client: Client, cluster: &str, name: &str) -> Result<String, SubroutineError> {
    let account = Api::<Account>::all(client)
        .get_opt(name)
        .await
        .map_err(|e| SubroutineError::kube(format!("reading Account {name} in {cluster}"), e))?
        .ok_or_else(|| {
            SubroutineError::permanent(
                "AccountNotFound",
                format!("there is no Account {name} in {cluster} for this workspace"),
            )
        })?;
    account
        .spec
        .creator
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            SubroutineError::permanent(
                "NoCreator",
                format!("Account {name} in {cluster} has no spec.creator to make its owner"),
            )
        })
}

/// The tuples of a new org: the creator's owner tuples; with `--allow-member-tuples-enabled`,
/// every authenticated user a member.
pub(super) fn org_tuples(
    orgs_cluster: &str,
    org: &str,
    creator: &str,
    members: bool,
) -> Vec<fga::Tuple> {
    let mut tuples = owner_tuples(orgs_cluster, org, creator, None);
    if members {
        tuples.push(fga::Tuple::new("role:authenticated", "assignee", "user:*"));
        tuples.push(fga::Tuple::new(
            account_object(orgs_cluster, org),
            "member",
            "role:authenticated#assignee",
        ));
    }
    tuples
}

/// The initializer's and the terminator's work on a workspace: an org's Store, an account's
/// tuples. It writes no condition (a LogicalCluster's status is kcp's); its name shows in logs
/// and metrics.
#[derive(Debug)]
struct WorkspaceSubroutine;

#[async_trait]
impl Subroutine<LogicalCluster, Ctx> for WorkspaceSubroutine {
    fn name(&self) -> &str {
        "WorkspaceSubroutine"
    }

    async fn process(
        &self,
        cluster: &LogicalCluster,
        ctx: &Ctx,
    ) -> Result<Outcome, SubroutineError> {
        if !initialized(cluster) {
            return Ok(Outcome::skip("not initialized, or being deleted"));
        }
        self.initialize(cluster, ctx).await
    }

    async fn initialize(
        &self,
        cluster: &LogicalCluster,
        ctx: &Ctx,
    ) -> Result<Outcome, SubroutineError> {
        let (outcome, is_org, org, object) = match tenant_of(cluster, ctx) {
            Some(Tenant::Org { org, orgs_cluster }) => (
                initialize_org(&org, &orgs_cluster, ctx).await?,
                true,
                org.clone(),
                account_object(&orgs_cluster, &org),
            ),
            Some(Tenant::Account {
                org,
                name,
                parent_cluster,
            }) => (
                initialize_account(&org, &name, &parent_cluster, ctx).await?,
                false,
                org,
                account_object(&parent_cluster, &name),
            ),
            None => return Ok(Outcome::skip("not an organization or an account below one")),
        };
        if outcome != Outcome::Ok {
            return Ok(outcome);
        }
        let path = cluster
            .annotations()
            .get(PATH_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        grant_existing_policies(ctx, &path, is_org, &org, &object).await?;
        Ok(Outcome::Ok)
    }

    async fn terminate(
        &self,
        cluster: &LogicalCluster,
        ctx: &Ctx,
    ) -> Result<Outcome, SubroutineError> {
        match tenant_of(cluster, ctx) {
            Some(Tenant::Org { org, .. }) => terminate_org(&org, ctx).await,
            Some(Tenant::Account {
                org,
                name,
                parent_cluster,
            }) => terminate_account(&org, &name, &parent_cluster, ctx).await,
            None => Ok(Outcome::skip("not an organization or an account below one")),
        }
    }
}

/// The bind tuples existing APIExportPolicies give this new workspace, written before it turns
/// Ready (not through the Store's spec: the policy controller removes them when the policy
/// changes).
async fn grant_existing_policies(
    ctx: &Ctx,
    path: &str,
    is_org: bool,
    org: &str,
    object: &str,
) -> Result<(), SubroutineError> {
    let settings = &ctx.settings;
    let tuples = tuples_for_new_workspace(settings, path, is_org, object).await?;
    if tuples.is_empty() {
        return Ok(());
    }
    let Some(store_id) = org_store_id(settings, org).await? else {
        return Err(poll(format!("waiting for organization {org}'s store")).into());
    };
    ctx.write_tuples(
        &store_id,
        tuples,
        "writing the bind tuples of APIExportPolicies",
    )
    .await
}

/// An org's Store with its owner tuples, waited for until both are in OpenFGA.
async fn initialize_org(
    org: &str,
    orgs_cluster: &str,
    ctx: &Ctx,
) -> Result<Outcome, SubroutineError> {
    let settings = &ctx.settings;
    if !settings.initialize_org_store {
        return Ok(Outcome::skip("--initializer-workspace-enabled=false"));
    }
    let creator = creator(settings.cluster(orgs_cluster)?, orgs_cluster, org).await?;
    let tuples = org_tuples(orgs_cluster, org, &creator, settings.allow_member_tuples);
    let mut store = Store::new(
        org,
        StoreSpec {
            core_module: settings.core_module.clone(),
            tuples: Some(tuples.iter().map(to_crd).collect()),
        },
    );
    store.metadata.managed_fields = None;
    let store = Api::<Store>::all(settings.workspace(&settings.orgs_path)?)
        .patch(
            org,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&store),
        )
        .await
        .map_err(|e| {
            SubroutineError::kube(format!("applying Store {org} in {}", settings.orgs_path), e)
        })?;
    let status = store.status.unwrap_or_default();
    if status.store_id.as_deref().is_none_or(str::is_empty) {
        return Err(poll(format!("waiting for Store {org} to get its OpenFGA store")).into());
    }
    let written = tuples
        .iter()
        .map(to_crd)
        .all(|t| status.managed_tuples.contains(&t));
    if !written {
        return Err(poll(format!("waiting for Store {org} to write the owner tuples")).into());
    }
    let oidc = &settings.oidc;
    if oidc.idp {
        oidc::identity_provider(ctx, org).await?;
    }
    if oidc.invite {
        oidc::invite(ctx, org, &creator).await?;
    }
    if oidc.workspace_auth {
        oidc::workspace_authentication(ctx, org).await?;
    }
    Ok(Outcome::Ok)
}

/// The org's modules and Store go; the Store's finalizer deletes its tuples and stores.
async fn terminate_org(org: &str, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
    let settings = &ctx.settings;
    // Its modules go first: the Store waits for every module that extends it.
    for (model_cluster, model) in trusted_models(org, ctx).await? {
        let name = model.name_any();
        delete_ignoring_missing(
            &Api::<AuthorizationModel>::all(settings.cluster(&model_cluster)?),
            &name,
        )
        .await
        .map_err(|e| SubroutineError::kube(format!("deleting AuthorizationModel {name}"), e))?;
    }
    let stores = Api::<Store>::all(settings.workspace(&settings.orgs_path)?);
    delete_ignoring_missing(&stores, org)
        .await
        .map_err(|e| SubroutineError::kube(format!("deleting Store {org}"), e))?;
    if settings.org_store(org).await?.is_some() {
        return Err(poll(format!(
            "waiting for Store {org} to delete its tuples and OpenFGA store"
        ))
        .into());
    }
    oidc::terminate(ctx, org).await?;
    Ok(Outcome::Ok)
}

pub(super) async fn delete_ignoring_missing<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The OpenFGA store id of organisation `org`, or `None` while it has none.
async fn org_store_id(settings: &Settings, org: &str) -> Result<Option<String>, SubroutineError> {
    Ok(settings
        .org_store(org)
        .await?
        .and_then(|s| s.status)
        .and_then(|s| s.store_id)
        .filter(|id| !id.is_empty()))
}

/// An account's owner, role and parent tuples in its org's store.
async fn initialize_account(
    org: &str,
    name: &str,
    parent_cluster: &str,
    ctx: &Ctx,
) -> Result<Outcome, SubroutineError> {
    let settings = &ctx.settings;
    // Through the core export: the operator has no RBAC in tenants' workspaces.
    let (parent, in_parent) = settings.through_core(parent_cluster).await?;
    let Some(grandparent) = parent.spec.owner else {
        return Err(SubroutineError::permanent(
            "NoParent",
            format!("the parent workspace {parent_cluster} has no owner"),
        ));
    };
    let creator = creator(in_parent, parent_cluster, name).await?;
    let Some(store_id) = org_store_id(settings, org).await? else {
        return Err(poll(format!("waiting for organization {org}'s store")).into());
    };
    let tuples = owner_tuples(
        parent_cluster,
        name,
        &creator,
        Some((&grandparent.cluster, &grandparent.name)),
    );
    ctx.write_tuples(&store_id, tuples, "writing the account's tuples")
        .await?;
    Ok(Outcome::Ok)
}

/// An account's tuples and its roles' tuples go; a missing store is not an error.
async fn terminate_account(
    org: &str,
    name: &str,
    parent_cluster: &str,
    ctx: &Ctx,
) -> Result<Outcome, SubroutineError> {
    let Some(store_id) = org_store_id(&ctx.settings, org).await? else {
        return Ok(Outcome::skip(format!(
            "organization {org} has no store any more: its tuples went with it"
        )));
    };
    let mut fga = ctx.fga();
    let options = SyncOptions::default();
    let account = ReadFilter::object(account_object(parent_cluster, name));
    let metrics = &ctx.settings.metrics;
    let read = read_tuples(&mut fga, &store_id, Some(&account), &options).await;
    let mut doomed = metrics
        .fga(FgaOperation::List, read)
        .map_err(|e| fga_failure("reading the account's tuples", e))?;
    let prefix = role_prefix(parent_cluster, name);
    let roles: Vec<String> = doomed
        .iter()
        .filter(|t| t.user.starts_with(&prefix))
        .map(|t| t.user.split('#').next().unwrap_or_default().to_owned())
        .collect();
    for role in roles {
        let filter = ReadFilter::object(role);
        let read = read_tuples(&mut fga, &store_id, Some(&filter), &options).await;
        doomed.extend(
            metrics
                .fga(FgaOperation::List, read)
                .map_err(|e| fga_failure("reading the account's role tuples", e))?,
        );
    }
    doomed.sort();
    doomed.dedup();
    ctx.delete_tuples(&store_id, doomed, "deleting the account's tuples")
        .await?;
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kcp::types::core::{LogicalClusterOwner, LogicalClusterSpec};

    fn logical_cluster(path: Option<&str>, owner_cluster: &str) -> LogicalCluster {
        let mut cluster = LogicalCluster::new(
            "cluster",
            LogicalClusterSpec {
                owner: Some(LogicalClusterOwner {
                    cluster: owner_cluster.into(),
                    name: path
                        .and_then(|p| p.rsplit(':').next())
                        .unwrap_or("x")
                        .into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
        if let Some(path) = path {
            cluster
                .annotations_mut()
                .insert(PATH_ANNOTATION.into(), path.into());
        }
        cluster
    }

    #[test]
    fn workspaces_are_orgs_accounts_or_none_of_ours() {
        let org = logical_cluster(Some("root:orgs:acme"), "c0");
        assert_eq!(
            tenant(&org, "root:orgs"),
            Some(Tenant::Org {
                org: "acme".into(),
                orgs_cluster: "c0".into()
            })
        );
        let account = logical_cluster(Some("root:orgs:acme:team:dev"), "c2");
        assert_eq!(
            tenant(&account, "root:orgs"),
            Some(Tenant::Account {
                org: "acme".into(),
                name: "dev".into(),
                parent_cluster: "c2".into()
            })
        );
        for other in [
            Some("root:orgs"),
            Some("root:orgsx:a"),
            Some("root:providers:p"),
            None,
        ] {
            assert_eq!(
                tenant(&logical_cluster(other, "c"), "root:orgs"),
                None,
                "{other:?}"
            );
        }
    }

    #[test]
    fn only_ready_workspaces_not_being_deleted_are_reapplied() {
        let mut cluster = logical_cluster(Some("root:orgs:acme"), "c0");
        assert!(!initialized(&cluster));
        for (phase, expected) in [
            (LogicalClusterPhase::Initializing, false),
            (LogicalClusterPhase::Ready, true),
        ] {
            cluster.status = Some(kcp::types::core::LogicalClusterStatus {
                phase: Some(phase),
                ..Default::default()
            });
            assert_eq!(initialized(&cluster), expected);
        }
        cluster.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(!initialized(&cluster));
    }

    #[test]
    fn org_tuples_with_and_without_members() {
        let owners = org_tuples("c0", "acme", "alice:x", false);
        assert_eq!(owners.len(), 2);
        assert_eq!(owners[0].user, "user:alice.x");
        let members = org_tuples("c0", "acme", "alice", true);
        assert_eq!(members.len(), 4);
        assert_eq!(
            members[3].to_string(),
            "core_platform-mesh_io_account:c0/acme#member@role:authenticated#assignee"
        );
    }
}
