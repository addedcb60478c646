//! The Account controller: WorkspaceType → Workspace → AccountInfo → WorkspaceReady.
//!
//! Every wait is a watch: Workspaces (phase changes) and LogicalClusters (a new workspace
//! became visible) in the Account's cluster, WorkspaceTypes in `root:orgs` (Ready),
//! AccountInfos (the parent's, including OIDC changes, which then flow down the tree), and the
//! engagement of a new child workspace (it bound the export and is served now).
//!
//! Each subroutine dereferences (reads what it needs, a missing piece is a [`Wait`] returned
//! through `?`), builds what it writes with a pure function below, and applies it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crds::Account;
use crds::account::{ACCOUNT_FINALIZER, TYPE_ACCOUNT, TYPE_ORG, WORKSPACE_TYPE_FINALIZER};
use crds::account_info::{
    ACCOUNT_INFO_NAME, AccountInfo, AccountInfoSpec, AccountLocation, ClusterInfo, FgaInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kcp::runtime::{Cache, ClusterSet, ObjectKey};
use kcp::types::core::{LogicalCluster, LogicalClusterPhase};
use kcp::types::tenancy::{
    Workspace, WorkspaceSpec, WorkspaceType, WorkspaceTypeExtension, WorkspaceTypeReference,
    WorkspaceTypeSelector, WorkspaceTypeSpec,
};
use kcp::{ClusterName, ClusterPath};
use kit::controller::{LifecycleController, Setup};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Client, Resource, ResourceExt};
use lifecycle::{Outcome, Subroutine, SubroutineError, Wait, async_trait};
use serde_json::{Value, json};

use super::metrics::{TypeLabel, WorkspaceTypeOperation};
use super::{Ctx, Settings};

/// The controller's name, as upstream.
pub const ACCOUNT_RECONCILER: &str = "AccountReconciler";
/// Field manager of every write the operator makes: the binary's name.
const MANAGER: &str = crate::app::BINARY.name;

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PostParams::default()
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.to_owned()),
        ..PatchParams::default()
    }
}
pub use crds::account::ORG_LABEL;

/// Which subroutines run (each can be switched off by flag, as upstream).
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    pub workspace_type: bool,
    pub workspace: bool,
    pub account_info: bool,
    pub workspace_ready: bool,
}

/// Builds the Account controller with the subroutines `steps` enables.
pub fn account_controller(
    setup: &Setup,
    settings: Arc<Settings>,
    steps: Steps,
) -> LifecycleController<Account, Ctx> {
    let mut subroutines: Vec<Box<dyn Subroutine<Account, Ctx>>> = Vec::new();
    if steps.workspace_type {
        subroutines.push(Box::new(WorkspaceTypeSubroutine));
    }
    if steps.workspace {
        subroutines.push(Box::new(WorkspaceSubroutine));
    }
    if steps.account_info {
        subroutines.push(Box::new(ManageAccountInfoSubroutine));
    }
    if steps.workspace_ready {
        subroutines.push(Box::new(WorkspaceReadySubroutine));
    }
    let metrics = settings.metrics.clone();
    let slots_cap = settings.creation_slots.cap();
    LifecycleController::new(ACCOUNT_RECONCILER, setup, subroutines, move |runtime| Ctx {
        runtime,
        settings: settings.clone(),
    })
    // The Workspace of an Account has the Account's name, in the Account's cluster; a
    // change of one may free a creation slot for the Accounts waiting for one there.
    .watches::<Workspace>(move |ws, key, cache| {
        let mut woken = waiting_for_a_slot(&key.cluster, cache, slots_cap);
        woken.push(ObjectKey::cluster_scoped(
            key.cluster.clone(),
            ws.name_any(),
        ));
        woken
    })
    // A new workspace's LogicalCluster becomes visible once it binds the export: its owner
    // is the Workspace, i.e. the Account, in the parent cluster.
    .watches::<LogicalCluster>(|lc, _, _| owner_account(lc).into_iter().collect())
    // A WorkspaceType `<org>-<type>` turning Ready wakes the Accounts of that type; any
    // change of an org's own types wakes the org, which puts back what it owns.
    .watches::<WorkspaceType>(woken_by_type)
    // An AccountInfo change (the parent's appears, OIDC clients change) reaches every
    // Account in its workspace, which copy it into their own workspaces.
    .watches::<AccountInfo>(|_, key, cache: &Cache<Account>| {
        cache
            .in_cluster(&key.cluster)
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    })
    // A child workspace that bound the export is served now: its Account can write the
    // AccountInfo into it.
    .on_engage(account_of_workspace)
    // Every input is in the spec or in the watched kinds above; the status is output only.
    .ignore_status_only_changes()
    .observe(move |account, result| metrics.reconciled(&account.spec.type_, result.as_str()))
}

fn owner_account(lc: &LogicalCluster) -> Option<ObjectKey> {
    let owner = lc.spec.owner.as_ref()?;
    if owner.resource != "workspaces" {
        return None;
    }
    Some(ObjectKey::cluster_scoped(
        owner.cluster.parse().ok()?,
        owner.name.clone(),
    ))
}

/// The Account whose workspace the newly engaged `cluster` is.
fn account_of_workspace(
    cluster: &ClusterName,
    clusters: &ClusterSet,
    _: &Cache<Account>,
) -> Vec<ObjectKey> {
    clusters
        .path_of(cluster)
        .and_then(|path| account_at(&path, |parent| clusters.cluster_for_path(parent)))
        .into_iter()
        .collect()
}

/// The Account of the workspace at `path`: `<parent path>:<name>` is Account `<name>` in the
/// parent's cluster, if the parent's cluster is known.
fn account_at(
    path: &ClusterPath,
    cluster_of: impl Fn(&ClusterPath) -> Option<ClusterName>,
) -> Option<ObjectKey> {
    let parent = cluster_of(&path.parent()?)?;
    Some(ObjectKey::cluster_scoped(parent, path.base()))
}

/// The Accounts a change of WorkspaceType `<org>-<type>` concerns: those of that type whose
/// workspace step has not completed yet (it may unblock them), and, for the org's own types
/// `<org>-org` and `<org>-account`, the org's Account, which applies them again when someone
/// changed a field it owns. The name is matched by its end, not split: org names and custom
/// types may both contain `-` (`acme-eu-team-space` is `acme-eu`'s `team-space`).
fn woken_by_type(wt: &WorkspaceType, key: &ObjectKey, cache: &Cache<Account>) -> Vec<ObjectKey> {
    let name = wt.name_any();
    let org = [TYPE_ORG, TYPE_ACCOUNT]
        .iter()
        .find_map(|kind| name.strip_suffix(kind)?.strip_suffix('-'))
        .map(|org| ObjectKey::cluster_scoped(key.cluster.clone(), org))
        .filter(|org| cache.get(org).is_some_and(|a| a.spec.type_ == TYPE_ORG));
    let waiting = |account: &Account| {
        may_be_of_type(&name, &account.spec.type_)
            && !account.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "WorkspaceSubroutine" && c.status == "True")
            })
    };
    // The org may be among the waiting too: the queue takes a key once.
    cache
        .keys()
        .into_iter()
        .filter(|key| cache.get(key).is_some_and(|a| waiting(&a)))
        .chain(org)
        .collect()
}

/// How the wait for a free creation slot begins (the condition's message), by which the
/// Workspace watch finds the Accounts to wake when a slot may have come free.
const WAITING_FOR_A_SLOT: &str = "waiting for a free slot to create the Workspace";

/// The `cap` longest-waiting Accounts in `cluster` that wait for a creation slot (as many as
/// one freed slot could be for, were all taken at once); none without a cap.
fn waiting_for_a_slot(cluster: &ClusterName, cache: &Cache<Account>, cap: usize) -> Vec<ObjectKey> {
    if cap == 0 {
        return Vec::new();
    }
    let mut waiting: Vec<(Option<Time>, ObjectKey)> = cache
        .in_cluster(cluster)
        .into_iter()
        .filter(|(_, account)| {
            account.status.as_ref().is_some_and(|s| {
                s.conditions.iter().any(|c| {
                    c.type_ == "WorkspaceSubroutine" && c.message.starts_with(WAITING_FOR_A_SLOT)
                })
            })
        })
        .map(|(key, account)| (account.metadata.creation_timestamp.clone(), key))
        .collect();
    waiting.sort();
    waiting.into_iter().take(cap).map(|(_, key)| key).collect()
}

/// Whether WorkspaceType `name` may be `<org>-<account_type>` for some org.
fn may_be_of_type(name: &str, account_type: &str) -> bool {
    name.strip_suffix(account_type)
        .and_then(|org| org.strip_suffix('-'))
        .is_some_and(|org| !org.is_empty())
}

/// `<org>-<type>`: the WorkspaceType of accounts of `account_type` in organisation `org`.
pub fn workspace_type_name(org: &str, account_type: &str) -> String {
    format!("{org}-{account_type}")
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn account_name(account: &Account) -> Result<String, SubroutineError> {
    account
        .meta()
        .name
        .clone()
        .ok_or_else(|| SubroutineError::permanent("InvalidAccount", "the Account has no name"))
}

/// The org's WorkspaceTypes `<org>-org` and `<org>-account` in `orgs_path`, with the kind each
/// is counted under (`org`, `account`): orgs extend `root:org` and hold accounts; accounts
/// extend `root:account` and hold accounts. Public so that the benchmark's floor writes
/// exactly these.
pub fn org_workspace_types(org: &str, orgs_path: &str) -> [(&'static str, WorkspaceType); 2] {
    let r = |name: String, path: &str| WorkspaceTypeReference {
        name,
        path: path.to_owned(),
    };
    let org_type = workspace_type_name(org, "org");
    let account_type = workspace_type_name(org, "account");
    let children = WorkspaceTypeSelector {
        none: false,
        types: vec![r(account_type.clone(), orgs_path)],
    };
    let labelled = |name: &str, spec: WorkspaceTypeSpec| WorkspaceType {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(ORG_LABEL.to_owned(), org.to_owned())])),
            ..Default::default()
        },
        spec,
        status: None,
    };
    [
        (
            "org",
            labelled(
                &org_type,
                WorkspaceTypeSpec {
                    extend: Some(WorkspaceTypeExtension {
                        with: vec![r("org".into(), "root")],
                    }),
                    default_child_workspace_type: Some(r(account_type.clone(), orgs_path)),
                    limit_allowed_parents: Some(WorkspaceTypeSelector {
                        none: false,
                        types: vec![r("orgs".into(), "root")],
                    }),
                    limit_allowed_children: Some(children.clone()),
                    ..Default::default()
                },
            ),
        ),
        (
            "account",
            labelled(
                &account_type,
                WorkspaceTypeSpec {
                    extend: Some(WorkspaceTypeExtension {
                        with: vec![r("account".into(), "root")],
                    }),
                    default_child_workspace_type: Some(r(account_type.clone(), orgs_path)),
                    limit_allowed_parents: Some(WorkspaceTypeSelector {
                        none: false,
                        types: vec![
                            r(org_type.clone(), orgs_path),
                            r(account_type.clone(), orgs_path),
                        ],
                    }),
                    limit_allowed_children: Some(children),
                    ..Default::default()
                },
            ),
        ),
    ]
}

/// Whether `existing` already has every field and label `desired` (an org WorkspaceType we
/// apply) sets; other fields (another manager's) do not matter.
fn workspace_type_is(existing: &WorkspaceType, desired: &WorkspaceType) -> bool {
    let (e, d) = (&existing.spec, &desired.spec);
    let labels = existing.metadata.labels.clone().unwrap_or_default();
    desired
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && e.extend == d.extend
        && e.default_child_workspace_type == d.default_child_workspace_type
        && e.limit_allowed_parents == d.limit_allowed_parents
        && e.limit_allowed_children == d.limit_allowed_children
}

/// The owner reference that ties a Workspace to its Account.
fn owner_reference(account: &Account, name: &str) -> OwnerReference {
    OwnerReference {
        api_version: Account::api_version(&()).into_owned(),
        kind: Account::kind(&()).into_owned(),
        name: name.to_owned(),
        uid: account.meta().uid.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// The Workspace an Account gets: its name, of `type_name` in `orgs_path`, owned by it.
fn desired_workspace(
    name: &str,
    type_name: &str,
    orgs_path: &str,
    owner: OwnerReference,
) -> Workspace {
    Workspace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: WorkspaceSpec {
            type_: Some(WorkspaceTypeReference {
                name: type_name.to_owned(),
                path: orgs_path.to_owned(),
            }),
            ..Default::default()
        },
        status: None,
    }
}

/// Whether a Workspace found under the Account's name can be its workspace: not while it is
/// being deleted (a wait: its disappearance reconciles again, and the Account gets a new one),
/// and never when it has another type (kcp cannot change a workspace's type, and taking it
/// would give the Account a workspace that is not what its type promises).
fn adoptable(
    existing: &Workspace,
    type_name: &str,
    orgs_path: &ClusterPath,
) -> Result<(), SubroutineError> {
    let name = existing.name_any();
    if existing.metadata.deletion_timestamp.is_some() {
        return Err(Wait::new(format!(
            "Workspace {name} is being deleted; the Account gets a new one once it is gone"
        ))
        .into());
    }
    let ours = existing.spec.type_.as_ref().is_some_and(|t| {
        t.name == type_name && (t.path.is_empty() || t.path == orgs_path.as_str())
    });
    if !ours {
        let found = existing
            .spec
            .type_
            .as_ref()
            .map_or("no type".to_owned(), |t| {
                format!("type {}:{}", t.path, t.name)
            });
        return Err(SubroutineError::permanent(
            "WorkspaceTypeMismatch",
            format!(
                "Workspace {name} already exists with {found}, not {orgs_path}:{type_name}, so \
                 it is not adopted: delete it, or give the Account another name"
            ),
        ));
    }
    Ok(())
}

/// The merge patch that adopts a pre-created Workspace (adds our owner reference, keeps the
/// others and every other field), or `None` when it is ours already.
fn adoption_patch(existing: &Workspace, owner: OwnerReference) -> Option<Value> {
    let mut owners = existing
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    if owners.iter().any(|o| o.uid == owner.uid) {
        return None;
    }
    owners.push(owner);
    Some(json!({"metadata": {
        "ownerReferences": owners,
        "resourceVersion": existing.metadata.resource_version,
    }}))
}

/// Where the account lives: its workspace's cluster and URL, the cluster its Account is in,
/// and its path under the parent's (from kcp, not from splitting the URL).
fn account_location(
    account: &Account,
    name: &str,
    workspace: &Workspace,
    origin: &ClusterName,
    parent_path: &ClusterPath,
) -> Result<(ClusterName, AccountLocation), SubroutineError> {
    let (Some(cluster), Some(url)) = (workspace.spec.cluster.clone(), workspace.spec.url.clone())
    else {
        return Err(Wait::new(format!("waiting for Workspace {name} to be scheduled")).into());
    };
    let cluster: ClusterName = cluster
        .parse()
        .map_err(|e| SubroutineError::permanent("InvalidWorkspace", format!("{e}")))?;
    let path = parent_path
        .join(name)
        .map_err(|e| SubroutineError::permanent("InvalidName", e.to_string()))?;
    let location = AccountLocation {
        name: name.to_owned(),
        generated_cluster_id: cluster.to_string(),
        origin_cluster_id: origin.to_string(),
        path: path.to_string(),
        url,
        type_: account.spec.type_.clone(),
    };
    Ok((cluster, location))
}

/// An org's AccountInfo: itself as account and organisation, kcp's CA; `fga` and `oidc` are
/// the security-operator's.
pub fn org_account_info(me: AccountLocation, ca: String) -> AccountInfoSpec {
    AccountInfoSpec {
        account: me.clone(),
        parent_account: None,
        organization: me,
        fga: FgaInfo::default(),
        cluster_info: ClusterInfo { ca },
        oidc: None,
    }
}

/// The merge patch that brings an org's existing AccountInfo to `desired`, leaving `fga` and
/// `oidc` (the security-operator's) alone; `None` when nothing of ours differs.
fn org_account_info_patch(existing: &AccountInfo, desired: &AccountInfoSpec) -> Option<Value> {
    let s = &existing.spec;
    if s.account == desired.account
        && s.organization == desired.organization
        && s.parent_account.is_none()
        && s.cluster_info == desired.cluster_info
    {
        return None;
    }
    Some(json!({
        "metadata": {"resourceVersion": existing.metadata.resource_version},
        "spec": {
            "account": desired.account,
            "organization": desired.organization,
            "parentAccount": null,
            "clusterInfo": desired.cluster_info,
        },
    }))
}

/// A non-org AccountInfo: itself as account, everything else copied from the parent's.
pub fn child_account_info(
    me: AccountLocation,
    parent: &AccountInfoSpec,
    ca: String,
) -> AccountInfoSpec {
    AccountInfoSpec {
        account: me,
        parent_account: Some(parent.account.clone()),
        organization: parent.organization.clone(),
        fga: parent.fga.clone(),
        cluster_info: ClusterInfo { ca },
        oidc: parent.oidc.clone(),
    }
}

/// The merge patch that makes a child's existing AccountInfo `desired`; `None` when it is.
fn child_account_info_patch(existing: &AccountInfo, desired: &AccountInfoSpec) -> Option<Value> {
    (existing.spec != *desired).then(|| {
        json!({
            "metadata": {"resourceVersion": existing.metadata.resource_version},
            "spec": {
                "account": desired.account,
                "parentAccount": desired.parent_account,
                "organization": desired.organization,
                "fga": desired.fga,
                "clusterInfo": desired.cluster_info,
                "oidc": desired.oidc,
            },
        })
    })
}

/// Seconds since `created`.
fn age(created: &Time) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    (now - created.0.as_second() as f64).max(0.0)
}

/// (1) Orgs only: the org's WorkspaceTypes `<org>-org` and `<org>-account` in `root:orgs`.
#[derive(Debug)]
struct WorkspaceTypeSubroutine;

#[async_trait]
impl Subroutine<Account, Ctx> for WorkspaceTypeSubroutine {
    fn name(&self) -> &str {
        "WorkspaceTypeSubroutine"
    }

    fn finalizers(&self, account: &Account) -> Vec<String> {
        if account.spec.type_ == TYPE_ORG {
            vec![WORKSPACE_TYPE_FINALIZER.to_owned()]
        } else {
            Vec::new()
        }
    }

    async fn process(&self, account: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        if account.spec.type_ != TYPE_ORG {
            return Ok(Outcome::Ok);
        }
        let org = account_name(account)?;
        let orgs = ctx.orgs_cluster()?;
        let api: Api<WorkspaceType> = Api::all(ctx.orgs()?);
        for (kind, desired) in org_workspace_types(&org, ctx.settings.orgs_path.as_str()) {
            let name = desired.name_any();
            // Server-side apply owns only these fields and our label: everything else, such as
            // the security-operator's authenticationConfigurations, is kept.
            let existing = ctx.runtime.cached::<WorkspaceType>(&orgs, &name);
            if existing
                .as_deref()
                .is_some_and(|e| workspace_type_is(e, &desired))
            {
                // Nothing to write: an apply would change nothing and cost a request.
                ctx.settings
                    .metrics
                    .workspacetype_operations
                    .get_or_create(&WorkspaceTypeOperation {
                        operation: "unchanged".to_owned(),
                        wst_kind: kind.to_owned(),
                    })
                    .inc();
                continue;
            }
            api.patch(
                &name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await?;
            // As the watch knew it: "created" may be a repeat whose creation the watch had
            // not shown yet (the apply changed nothing then).
            let operation = if existing.is_some() {
                "updated"
            } else {
                "created"
            };
            ctx.settings
                .metrics
                .workspacetype_operations
                .get_or_create(&WorkspaceTypeOperation {
                    operation: operation.to_owned(),
                    wst_kind: kind.to_owned(),
                })
                .inc();
        }
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, account: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let org = account_name(account)?;
        let api: Api<WorkspaceType> = Api::all(ctx.orgs()?);
        for kind in ["org", "account"] {
            match api
                .delete(&workspace_type_name(&org, kind), &DeleteParams::default())
                .await
            {
                Ok(_) => {}
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Outcome::Ok)
    }
}

/// (2) The Workspace named after the Account, of the org's type, once that type is Ready.
#[derive(Debug)]
struct WorkspaceSubroutine;

impl WorkspaceSubroutine {
    /// The WorkspaceType the account's workspace gets (an org's from its name, an account's
    /// from the organisation its parent's AccountInfo names).
    async fn type_name(account: &Account, ctx: &Ctx) -> Result<String, SubroutineError> {
        let name = account_name(account)?;
        if account.spec.type_ == TYPE_ORG {
            return Ok(workspace_type_name(&name, "org"));
        }
        let parent = parent_account_info(ctx)?;
        let org = &parent.spec.organization.name;
        if org.is_empty() {
            return Err(
                Wait::new("waiting for the parent AccountInfo to name its organization").into(),
            );
        }
        Ok(workspace_type_name(org, &account.spec.type_))
    }

    /// Waits until WorkspaceType `type_name` exists and is Ready.
    async fn ready_type(
        account: &Account,
        type_name: &str,
        ctx: &Ctx,
    ) -> Result<(), SubroutineError> {
        let orgs_path = &ctx.settings.orgs_path;
        let orgs = ctx.orgs_cluster()?;
        match ctx.runtime.cached::<WorkspaceType>(&orgs, type_name) {
            None if ![TYPE_ORG, TYPE_ACCOUNT].contains(&account.spec.type_.as_str()) => Err(Wait::new(format!(
                "WorkspaceType {orgs_path}:{type_name} does not exist: account type {:?} needs it \
                 created by an administrator (the operator creates only the org and account types)",
                account.spec.type_
            ))
            .into()),
            None => Err(Wait::new(format!(
                "waiting for WorkspaceType {orgs_path}:{type_name} to be created"
            ))
            .into()),
            Some(wt) if !wt.is_ready() => Err(Wait::new(format!(
                "waiting for WorkspaceType {orgs_path}:{type_name} to become Ready"
            ))
            .into()),
            Some(_) => Ok(()),
        }
    }
}

#[async_trait]
impl Subroutine<Account, Ctx> for WorkspaceSubroutine {
    fn name(&self) -> &str {
        "WorkspaceSubroutine"
    }

    fn finalizers(&self, _: &Account) -> Vec<String> {
        vec![ACCOUNT_FINALIZER.to_owned()]
    }

    async fn process(&self, account: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let type_name = Self::type_name(account, ctx).await?;
        Self::ready_type(account, &type_name, ctx).await?;
        let name = account_name(account)?;
        let owner = owner_reference(account, &name);
        let workspaces: Api<Workspace> = Api::all(ctx.origin()?);
        match ctx
            .runtime
            .cached::<Workspace>(&ctx.runtime.key.cluster, &name)
        {
            None => {
                let cluster = &ctx.runtime.key.cluster;
                let slots = &ctx.settings.creation_slots;
                let watched = ctx.runtime.cached_in::<Workspace>(cluster);
                if !slots.take(cluster, &name, &watched) {
                    return Err(Wait::new(format!(
                        "{WAITING_FOR_A_SLOT}: {cap} workspaces of Accounts in this workspace \
                         are being created, at most {cap} at a time \
                         (--max-workspaces-in-creation), so that kcp serves other tenants' \
                         workspaces in between",
                        cap = slots.cap()
                    ))
                    .into());
                }
                let orgs_path = ctx.settings.orgs_path.as_str();
                let workspace = desired_workspace(&name, &type_name, orgs_path, owner);
                match workspaces.create(&post_params(), &workspace).await {
                    Ok(_) => {}
                    // Created meanwhile, or not in the watch's view yet: its event reconciles
                    // again, and adopts it if it is not ours (and counts it if in creation).
                    Err(kube::Error::Api(s)) if s.code == 409 => slots.release(cluster, &name),
                    Err(e) => {
                        slots.release(cluster, &name);
                        return Err(e.into());
                    }
                }
            }
            Some(existing) => {
                adoptable(&existing, &type_name, &ctx.settings.orgs_path)?;
                if let Some(patch) = adoption_patch(&existing, owner) {
                    workspaces
                        .patch(&name, &patch_params(), &Patch::Merge(&patch))
                        .await?;
                }
            }
        }
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, account: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let name = account_name(account)?;
        let deleting = Wait::new(format!("waiting for Workspace {name} to be deleted"));
        // Going, as the watch shows it: its disappearance reconciles again, and asking the
        // server meanwhile would only repeat the answer.
        if ctx
            .runtime
            .cached::<Workspace>(&ctx.runtime.key.cluster, &name)
            .is_some_and(|ws| ws.metadata.deletion_timestamp.is_some())
        {
            return Err(deleting.into());
        }
        // Otherwise the server decides: a Workspace the watch has not shown yet must not be
        // left behind.
        let workspaces: Api<Workspace> = Api::all(ctx.origin()?);
        match workspaces.get_opt(&name).await? {
            None => Ok(Outcome::Ok),
            Some(ws) if ws.metadata.deletion_timestamp.is_some() => Err(deleting.into()),
            Some(_) => match workspaces.delete(&name, &DeleteParams::default()).await {
                Ok(_) => Err(deleting.into()),
                Err(e) if not_found(&e) => Ok(Outcome::Ok),
                Err(e) => Err(e.into()),
            },
        }
    }
}

/// The Account's Workspace, as the Workspace watch last showed it (its changes reconcile the
/// Account).
fn workspace_of(account: &Account, ctx: &Ctx) -> Result<Arc<Workspace>, SubroutineError> {
    let name = account_name(account)?;
    ctx.runtime
        .cached::<Workspace>(&ctx.runtime.key.cluster, &name)
        .ok_or_else(|| Wait::new(format!("waiting for Workspace {name} to be created")).into())
}

/// The AccountInfo of the workspace the Account is in, as the AccountInfo watch last showed
/// it (its changes reconcile the Accounts of its workspace).
fn parent_account_info(ctx: &Ctx) -> Result<Arc<AccountInfo>, SubroutineError> {
    ctx.runtime
        .cached::<AccountInfo>(&ctx.runtime.key.cluster, ACCOUNT_INFO_NAME)
        .ok_or_else(|| {
            Wait::new(format!(
                "waiting for the parent workspace's AccountInfo {ACCOUNT_INFO_NAME:?}"
            ))
            .into()
        })
}

/// (3) AccountInfo `account` in the new workspace, written while it is Initializing or Ready.
#[derive(Debug)]
struct ManageAccountInfoSubroutine;

#[async_trait]
impl Subroutine<Account, Ctx> for ManageAccountInfoSubroutine {
    fn name(&self) -> &str {
        "ManageAccountInfoSubroutine"
    }

    async fn process(&self, account: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let workspace = workspace_of(account, ctx)?;
        let name = account_name(account)?;
        let phase = workspace.phase();
        if !matches!(
            phase,
            Some(LogicalClusterPhase::Initializing | LogicalClusterPhase::Ready)
        ) {
            return Err(Wait::new(format!(
                "waiting for Workspace {name} to start initializing (phase {phase:?})"
            ))
            .into());
        }
        let origin = &ctx.runtime.key.cluster;
        let parent_path = ctx
            .runtime
            .clusters()
            .path_of(origin)
            .ok_or_else(|| Wait::new(format!("waiting for the path of cluster {origin}")))?;
        let (cluster, me) = account_location(account, &name, &workspace, origin, &parent_path)?;
        // The child's engagement (it bound the export) requeues this Account: see
        // `account_of_workspace`.
        let Some(Ok(child)) = ctx.runtime.client_for(&cluster) else {
            return Err(Wait::new(unbound(&me.path, &workspace)).into());
        };
        let ca = ctx.settings.ca_pem.clone();
        if account.spec.type_ == TYPE_ORG {
            write_account_info(
                ctx,
                (&cluster, child),
                org_account_info(me, ca),
                org_account_info_patch,
            )
            .await?;
            if let Some(created) = &account.meta().creation_timestamp {
                ctx.settings
                    .metrics
                    .org_provisioning_duration
                    .observe(age(created));
            }
        } else {
            let parent = parent_account_info(ctx)?;
            let desired = child_account_info(me, &parent.spec, ca);
            write_account_info(ctx, (&cluster, child), desired, child_account_info_patch).await?;
        }
        Ok(Outcome::Ok)
    }
}

/// kcp's initializer that creates a new workspace's default APIBindings (its WorkspaceType's
/// `defaultAPIBindings`, core.platform-mesh.io among them).
const APIBINDINGS_INITIALIZER: &str = "system:apibindings";

/// Why the Account waits while its new workspace at `path` has not bound the export. kcp's
/// initializer `system:apibindings` creates the bindings as the workspace's creator, so a
/// creator who may not `bind` the export leaves the workspace initializing for good, and kcp
/// says why only in a condition of the workspace's LogicalCluster, which the operator cannot
/// read (the workspace serves nothing of the export yet): while that initializer is pending,
/// the wait says where to look.
fn unbound(path: &str, workspace: &Workspace) -> String {
    let mut message = format!("waiting for workspace {path} to bind core.platform-mesh.io");
    let pending = workspace
        .status
        .as_ref()
        .is_some_and(|s| s.initializers.iter().any(|i| i == APIBINDINGS_INITIALIZER));
    if pending {
        message.push_str(&format!(
            "; kcp's initializer {APIBINDINGS_INITIALIZER} has not finished: it creates the \
             workspace's default APIBindings as the workspace's creator, who needs `bind` on \
             each of their APIExports (kcp's error, if any, is in condition \
             APIBindingsInitialized of LogicalCluster `cluster` in {path})"
        ));
    }
    message
}

/// Creates AccountInfo `account` in `cluster` as `desired`, or patches the existing one with
/// what `patch` computes (nothing when it is up to date). The existing one is the AccountInfo
/// watch's; only when that has not shown it yet and the create finds it there is it read from
/// the server.
async fn write_account_info(
    ctx: &Ctx,
    (cluster, client): (&ClusterName, Client),
    desired: AccountInfoSpec,
    patch: fn(&AccountInfo, &AccountInfoSpec) -> Option<Value>,
) -> Result<(), SubroutineError> {
    let api: Api<AccountInfo> = Api::all(client);
    let existing = match ctx
        .runtime
        .cached::<AccountInfo>(cluster, ACCOUNT_INFO_NAME)
    {
        Some(existing) => existing,
        None => {
            let info = AccountInfo::new(ACCOUNT_INFO_NAME, desired.clone());
            match api.create(&post_params(), &info).await {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    Arc::new(api.get(ACCOUNT_INFO_NAME).await?)
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    if let Some(patch) = patch(&existing, &desired) {
        api.patch(ACCOUNT_INFO_NAME, &patch_params(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// (4) The Account is Ready only once its Workspace is.
#[derive(Debug)]
struct WorkspaceReadySubroutine;

#[async_trait]
impl Subroutine<Account, Ctx> for WorkspaceReadySubroutine {
    fn name(&self) -> &str {
        "WorkspaceReadySubroutine"
    }

    async fn process(&self, account: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let workspace = workspace_of(account, ctx)?;
        if !workspace.is_ready() {
            return Err(Wait::new(format!(
                "waiting for Workspace {} to become Ready (phase {:?})",
                workspace.name_any(),
                workspace.phase()
            ))
            .into());
        }
        if let Some(created) = &account.meta().creation_timestamp {
            ctx.settings
                .metrics
                .workspace_ready_duration
                .get_or_create(&TypeLabel {
                    r#type: account.spec.type_.clone(),
                })
                .observe(age(created));
        }
        Ok(Outcome::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::AccountSpec;

    #[test]
    fn a_workspace_waiting_for_its_default_bindings_says_where_kcp_reports_why() {
        let mut workspace = Workspace {
            metadata: ObjectMeta::default(),
            spec: WorkspaceSpec::default(),
            status: Some(kcp::types::tenancy::WorkspaceStatus {
                phase: Some(LogicalClusterPhase::Initializing),
                initializers: vec!["root:security".into(), APIBINDINGS_INITIALIZER.into()],
                ..Default::default()
            }),
        };
        assert_eq!(
            unbound("root:orgs:acme", &workspace),
            "waiting for workspace root:orgs:acme to bind core.platform-mesh.io; kcp's \
             initializer system:apibindings has not finished: it creates the workspace's default \
             APIBindings as the workspace's creator, who needs `bind` on each of their \
             APIExports (kcp's error, if any, is in condition APIBindingsInitialized of \
             LogicalCluster `cluster` in root:orgs:acme)"
        );
        if let Some(status) = workspace.status.as_mut() {
            status.initializers = vec!["root:security".into()];
        }
        assert_eq!(
            unbound("root:orgs:acme", &workspace),
            "waiting for workspace root:orgs:acme to bind core.platform-mesh.io"
        );
    }

    #[test]
    fn a_workspace_type_with_our_fields_needs_no_write() {
        let [(_, desired), _] = org_workspace_types("acme", "root:orgs");
        assert!(workspace_type_is(&desired, &desired));
        // Another manager's fields and labels do not matter.
        let mut theirs = desired.clone();
        theirs.spec.authentication_configurations = vec![Default::default()];
        theirs
            .metadata
            .labels
            .get_or_insert_default()
            .insert("other".into(), "x".into());
        assert!(workspace_type_is(&theirs, &desired));
        // A field or label of ours that differs does.
        let mut parents = desired.clone();
        parents.spec.limit_allowed_parents = None;
        let mut label = desired.clone();
        label.metadata.labels = None;
        let mut extend = desired.clone();
        extend.spec.extend = None;
        for differs in [parents, label, extend] {
            assert!(!workspace_type_is(&differs, &desired));
        }
    }

    #[test]
    fn org_workspace_types_chain_as_upstream() {
        let [(org_kind, org), (acc_kind, acc)] = org_workspace_types("acme", "root:orgs");
        assert_eq!((org.name_any().as_str(), org_kind), ("acme-org", "org"));
        assert_eq!(
            (acc.name_any().as_str(), acc_kind),
            ("acme-account", "account")
        );
        for wt in [&org, &acc] {
            assert_eq!(wt.labels().get(ORG_LABEL).map(String::as_str), Some("acme"));
        }
        let (org_spec, acc_spec) = (org.spec, acc.spec);
        assert_eq!(org_spec.extend.unwrap().with[0].name, "org");
        assert_eq!(
            org_spec.limit_allowed_parents.unwrap().types[0].name,
            "orgs"
        );
        let parents: Vec<String> = acc_spec
            .limit_allowed_parents
            .unwrap()
            .types
            .into_iter()
            .map(|t| format!("{}:{}", t.path, t.name))
            .collect();
        assert_eq!(parents, ["root:orgs:acme-org", "root:orgs:acme-account"]);
        for spec in [
            org_spec.default_child_workspace_type,
            acc_spec.default_child_workspace_type,
        ] {
            assert_eq!(spec.unwrap().name, "acme-account");
        }
    }

    #[test]
    fn only_orgs_hold_the_workspace_type_finalizer() {
        let account = |t: &str| {
            Account::new(
                "a",
                AccountSpec {
                    type_: t.into(),
                    display_name: "A".into(),
                    ..Default::default()
                },
            )
        };
        assert_eq!(
            WorkspaceTypeSubroutine.finalizers(&account("org")),
            [WORKSPACE_TYPE_FINALIZER]
        );
        assert!(
            WorkspaceTypeSubroutine
                .finalizers(&account("account"))
                .is_empty()
        );
        assert_eq!(
            WorkspaceSubroutine.finalizers(&account("account")),
            [ACCOUNT_FINALIZER]
        );
    }

    #[test]
    fn logical_clusters_map_to_the_account_that_owns_their_workspace() {
        let lc: LogicalCluster = serde_json::from_value(serde_json::json!({
            "apiVersion": "core.kcp.io/v1alpha1", "kind": "LogicalCluster",
            "metadata": {"name": "cluster"},
            "spec": {"owner": {"apiVersion": "tenancy.kcp.io/v1beta1", "resource": "workspaces",
                               "name": "team", "cluster": "abc123", "uid": "u"}},
        }))
        .unwrap();
        assert_eq!(
            owner_account(&lc),
            Some(ObjectKey::cluster_scoped("abc123".parse().unwrap(), "team"))
        );
    }

    fn account(name: &str, type_: &str) -> Account {
        let mut account = Account::new(
            name,
            AccountSpec {
                type_: type_.into(),
                display_name: name.into(),
                ..Default::default()
            },
        );
        account.metadata.uid = Some(format!("uid-{name}"));
        account
    }

    #[test]
    fn a_workspace_type_wakes_the_accounts_of_its_type_hyphens_and_all() {
        assert!(may_be_of_type("acme-eu-team-space", "team-space"));
        // Could be `acme-eu-team`'s type: a needless wake costs one reconcile, a missed one
        // left the Account waiting for the resync.
        assert!(may_be_of_type("acme-eu-team-space", "space"));
        assert!(may_be_of_type("acme-account", "account"));
        assert!(!may_be_of_type("acme-account", "org"));
        assert!(!may_be_of_type("team-space", "team-space"));
        assert!(!may_be_of_type("-space", "space"));
        assert!(!may_be_of_type("acmespace", "space"));
    }

    fn workspace(cluster: Option<&str>, owners: Vec<OwnerReference>) -> Workspace {
        serde_json::from_value(json!({
            "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
            "metadata": {"name": "team", "resourceVersion": "7", "ownerReferences": owners},
            "spec": {"cluster": cluster, "URL": cluster.map(|c| format!("https://kcp/clusters/{c}"))},
        }))
        .unwrap()
    }

    #[test]
    fn a_workspace_is_adopted_only_with_the_accounts_type_and_not_while_it_goes() {
        let orgs: ClusterPath = "root:orgs".parse().unwrap();
        let typed = |name: &str, path: &str| {
            let mut ws = workspace(None, Vec::new());
            ws.spec.type_ = Some(WorkspaceTypeReference {
                name: name.to_owned(),
                path: path.to_owned(),
            });
            ws
        };
        assert!(adoptable(&typed("acme-account", "root:orgs"), "acme-account", &orgs).is_ok());
        assert!(adoptable(&typed("acme-account", ""), "acme-account", &orgs).is_ok());

        let mut going = typed("acme-account", "root:orgs");
        going.metadata.deletion_timestamp = Some(Time(Default::default()));
        match adoptable(&going, "acme-account", &orgs) {
            Err(SubroutineError::Waiting(wait)) => assert_eq!(
                wait.message,
                "Workspace team is being deleted; the Account gets a new one once it is gone"
            ),
            other => panic!("{other:?}"),
        }

        for (ws, found) in [
            (typed("universal", "root"), "type root:universal"),
            (
                typed("acme-account", "root:other"),
                "type root:other:acme-account",
            ),
            (workspace(None, Vec::new()), "no type"),
        ] {
            match adoptable(&ws, "acme-account", &orgs) {
                Err(SubroutineError::Permanent { reason, message }) => {
                    assert_eq!(reason, "WorkspaceTypeMismatch");
                    assert_eq!(
                        message,
                        format!(
                            "Workspace team already exists with {found}, not \
                             root:orgs:acme-account, so it is not adopted: delete it, or give \
                             the Account another name"
                        )
                    );
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_workspace_is_named_after_the_account_typed_and_owned() {
        let team = account("team", "account");
        let ws = desired_workspace(
            "team",
            "acme-account",
            "root:orgs",
            owner_reference(&team, "team"),
        );
        assert_eq!(ws.name_any(), "team");
        let type_ = ws.spec.type_.unwrap();
        assert_eq!(
            (type_.name.as_str(), type_.path.as_str()),
            ("acme-account", "root:orgs")
        );
        let owners = ws.metadata.owner_references.unwrap();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (
                owners[0].kind.as_str(),
                owners[0].name.as_str(),
                owners[0].uid.as_str()
            ),
            ("Account", "team", "uid-team")
        );
    }

    #[test]
    fn a_foreign_workspace_is_adopted_once_keeping_its_owners() {
        let team = account("team", "account");
        let other = OwnerReference {
            uid: "someone".into(),
            ..Default::default()
        };
        let patch = adoption_patch(
            &workspace(None, vec![other.clone()]),
            owner_reference(&team, "team"),
        )
        .unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        let uids: Vec<&str> = patch["metadata"]["ownerReferences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["uid"].as_str().unwrap())
            .collect();
        assert_eq!(uids, ["someone", "uid-team"]);
        let ours = workspace(None, vec![other, owner_reference(&team, "team")]);
        assert_eq!(adoption_patch(&ours, owner_reference(&team, "team")), None);
    }

    #[test]
    fn the_location_comes_from_the_workspace_and_the_parents_path() {
        let team = account("team", "account");
        let origin: ClusterName = "parent1".parse().unwrap();
        let parent_path: ClusterPath = "root:orgs:acme".parse().unwrap();
        let waiting = account_location(
            &team,
            "team",
            &workspace(None, vec![]),
            &origin,
            &parent_path,
        )
        .unwrap_err();
        assert!(
            matches!(waiting, SubroutineError::Waiting(_)),
            "{waiting:?}"
        );
        let (cluster, me) = account_location(
            &team,
            "team",
            &workspace(Some("child1"), vec![]),
            &origin,
            &parent_path,
        )
        .unwrap();
        assert_eq!(cluster.as_str(), "child1");
        assert_eq!(me.path, "root:orgs:acme:team");
        assert_eq!(me.generated_cluster_id, "child1");
        assert_eq!(me.origin_cluster_id, "parent1");
        assert_eq!(me.url, "https://kcp/clusters/child1");
        assert_eq!(me.type_, "account");
    }

    fn location(name: &str) -> AccountLocation {
        AccountLocation {
            name: name.into(),
            path: format!("root:orgs:{name}"),
            ..Default::default()
        }
    }

    #[test]
    fn an_org_info_names_itself_and_its_patch_leaves_fga_and_oidc_alone() {
        let desired = org_account_info(location("acme"), "CA".into());
        assert_eq!(desired.organization, desired.account);
        assert_eq!(desired.parent_account, None);
        assert_eq!(desired.cluster_info.ca, "CA");

        let mut existing = AccountInfo::new(ACCOUNT_INFO_NAME, desired.clone());
        existing.metadata.resource_version = Some("3".into());
        existing.spec.fga.store.id = "store-1".into();
        assert_eq!(
            org_account_info_patch(&existing, &desired),
            None,
            "up to date"
        );

        existing.spec.cluster_info.ca = "OLD".into();
        let patch = org_account_info_patch(&existing, &desired).unwrap();
        assert_eq!(patch["spec"]["clusterInfo"]["ca"], "CA");
        assert_eq!(patch["metadata"]["resourceVersion"], "3");
        assert!(patch["spec"].get("fga").is_none() && patch["spec"].get("oidc").is_none());
    }

    #[test]
    fn a_child_info_copies_its_parent_and_is_patched_whole() {
        let mut parent = org_account_info(location("acme"), "CA".into());
        parent.fga.store.id = "store-1".into();
        let desired = child_account_info(location("team"), &parent, "CA".into());
        assert_eq!(desired.parent_account.as_ref(), Some(&parent.account));
        assert_eq!(desired.organization, parent.account);
        assert_eq!(desired.fga, parent.fga);
        assert_eq!(desired.account.name, "team");

        let existing = AccountInfo::new(ACCOUNT_INFO_NAME, desired.clone());
        assert_eq!(child_account_info_patch(&existing, &desired), None);
        let stale = AccountInfo::new(ACCOUNT_INFO_NAME, parent.clone());
        let patch = child_account_info_patch(&stale, &desired).unwrap();
        assert_eq!(patch["spec"]["account"]["name"], "team");
        assert_eq!(patch["spec"]["fga"]["store"]["id"], "store-1");
    }

    #[test]
    fn a_new_workspace_maps_to_the_account_in_its_parent() {
        let parent: ClusterName = "parent1".parse().unwrap();
        let known =
            |path: &ClusterPath| (path.as_str() == "root:orgs:acme").then(|| parent.clone());
        assert_eq!(
            account_at(&"root:orgs:acme:team".parse().unwrap(), known),
            Some(ObjectKey::cluster_scoped(parent.clone(), "team"))
        );
        assert_eq!(
            account_at(&"root:elsewhere:x".parse().unwrap(), known),
            None
        );
        assert_eq!(account_at(&ClusterPath::root(), known), None);
    }
}
