//! The Account controller: WorkspaceType → Workspace → AccountInfo → WorkspaceReady.
//!
//! Every wait is a watch: Workspaces (phase changes) and LogicalClusters (a new workspace
//! became visible) in the Account's cluster, WorkspaceTypes in `root:orgs` (Ready), and
//! AccountInfos (the parent's, including OIDC changes, which then flow down the tree).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crds::Account;
use crds::account::{ACCOUNT_FINALIZER, TYPE_ORG, WORKSPACE_TYPE_FINALIZER};
use crds::account_info::{
    ACCOUNT_INFO_NAME, AccountInfo, AccountInfoSpec, AccountLocation, ClusterInfo, FgaInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kcp::runtime::{Context, Controller, ControllerConfig, EndpointSource, ObjectKey, Store};
use kcp::types::core::{LogicalCluster, LogicalClusterPhase};
use kcp::types::tenancy::{
    Workspace, WorkspaceSpec, WorkspaceType, WorkspaceTypeExtension, WorkspaceTypeReference,
    WorkspaceTypeSelector, WorkspaceTypeSpec,
};
use kcp::{ClientFactory, ClusterName};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{Client, Resource, ResourceExt};
use lifecycle::{Lifecycle, Outcome, Subroutine, SubroutineError, async_trait};

use super::{Ctx, Settings, reconcile_with};

/// Field manager of the operator's server-side applies.
const MANAGER: &str = "account-operator";
/// Label on an org's WorkspaceTypes naming the org.
pub const ORG_LABEL: &str = "core.platform-mesh.io/org";

/// Which subroutines run (each can be switched off by flag, as upstream).
#[derive(Debug, Clone, Copy)]
pub struct Steps {
    pub workspace_type: bool,
    pub workspace: bool,
    pub account_info: bool,
    pub workspace_ready: bool,
}

/// The Account controller: the runtime controller and the lifecycle it runs.
pub struct AccountController {
    controller: Controller<Account>,
    lifecycle: Arc<Lifecycle<Account, Ctx>>,
    settings: Arc<Settings>,
}

impl std::fmt::Debug for AccountController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountController").finish_non_exhaustive()
    }
}

/// Builds the Account controller with the subroutines `steps` enables.
pub fn account_controller(
    factory: ClientFactory,
    source: EndpointSource,
    config: ControllerConfig,
    runtime_metrics: Option<kcp::runtime::RuntimeMetrics>,
    lifecycle_metrics: Option<lifecycle::Metrics>,
    settings: Arc<Settings>,
    steps: Steps,
) -> AccountController {
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
    let mut lifecycle = Lifecycle::new("AccountReconciler", subroutines);
    if let Some(metrics) = lifecycle_metrics {
        lifecycle = lifecycle.with_metrics(metrics);
    }

    let controller = Controller::new(
        "AccountReconciler",
        factory,
        source,
        config,
        runtime_metrics,
    )
    // The Workspace of an Account has the Account's name, in the Account's cluster.
    .watches::<Workspace>(|ws, key, _| vec![same_name(key, ws.name_any())])
    // A new workspace's LogicalCluster becomes visible once it binds the export: its owner
    // is the Workspace, i.e. the Account, in the parent cluster.
    .watches::<LogicalCluster>(|lc, _, _| owner_account(lc).into_iter().collect())
    // A WorkspaceType `<org>-<type>` turning Ready wakes the Accounts of that type.
    .watches::<WorkspaceType>(waiting_for_type)
    // An AccountInfo change (the parent's appears, OIDC clients change) reaches every
    // Account in its workspace, which copy it into their own workspaces.
    .watches::<AccountInfo>(|_, key, store: &Store<Account>| {
        store
            .in_cluster(&key.cluster)
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    });
    AccountController {
        controller,
        lifecycle: Arc::new(lifecycle),
        settings,
    }
}

impl AccountController {
    /// Whether every watch has synced.
    pub fn readiness(&self) -> kcp::runtime::Readiness {
        self.controller.readiness()
    }

    /// The engaged clusters.
    pub fn clusters(&self) -> kcp::runtime::ClusterSet {
        self.controller.clusters()
    }

    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: tokio_util::sync::CancellationToken) {
        let Self {
            controller,
            lifecycle,
            settings,
        } = self;
        let reconcile = move |account: Arc<Account>, runtime: Context| {
            let lifecycle = lifecycle.clone();
            let settings = settings.clone();
            async move {
                let account_type = account.spec.type_.clone();
                let metrics = settings.metrics.clone();
                let result = reconcile_with(&lifecycle, account, Ctx { runtime, settings }).await;
                let label = match &result {
                    Ok(kcp::runtime::Action::Done) => "success",
                    Ok(kcp::runtime::Action::RequeueAfter(_)) => "requeue",
                    Err(_) => "error",
                };
                metrics.reconciled(&account_type, label);
                result
            }
        };
        controller.run(reconcile, stop).await;
    }
}

fn same_name(key: &ObjectKey, name: String) -> ObjectKey {
    ObjectKey::cluster_scoped(key.cluster.clone(), name)
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

/// The Accounts a WorkspaceType `<org>-<type>` may unblock: those of that type whose
/// workspace step has not completed yet.
fn waiting_for_type(wt: &WorkspaceType, _: &ObjectKey, store: &Store<Account>) -> Vec<ObjectKey> {
    let name = wt.name_any();
    let Some((_, account_type)) = name.rsplit_once('-') else {
        return Vec::new();
    };
    let waiting = |account: &Account| {
        account.spec.type_ == account_type
            && !account.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "WorkspaceSubroutine" && c.status == "True")
            })
    };
    store
        .keys()
        .into_iter()
        .filter(|key| store.get(key).is_some_and(|a| waiting(&a)))
        .collect()
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

/// (1) Orgs only: the org's WorkspaceTypes `<org>-org` and `<org>-account` in `root:orgs`.
#[derive(Debug)]
struct WorkspaceTypeSubroutine;

impl WorkspaceTypeSubroutine {
    fn types(org: &str, orgs_path: &str) -> [(String, &'static str, WorkspaceTypeSpec); 2] {
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
        [
            (
                org_type.clone(),
                "org",
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
            (
                account_type.clone(),
                "account",
                WorkspaceTypeSpec {
                    extend: Some(WorkspaceTypeExtension {
                        with: vec![r("account".into(), "root")],
                    }),
                    default_child_workspace_type: Some(r(account_type.clone(), orgs_path)),
                    limit_allowed_parents: Some(WorkspaceTypeSelector {
                        none: false,
                        types: vec![r(org_type, orgs_path), r(account_type, orgs_path)],
                    }),
                    limit_allowed_children: Some(children),
                    ..Default::default()
                },
            ),
        ]
    }
}

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
        let orgs = match ctx.orgs() {
            Ok(client) => client,
            Err(wait) => return Ok(wait),
        };
        let api: Api<WorkspaceType> = Api::all(orgs);
        for (name, kind, spec) in Self::types(&org, ctx.settings.orgs_path.as_str()) {
            // Server-side apply owns only these fields and our label: everything else, such as
            // the security-operator's authenticationConfigurations, is kept.
            let before = api
                .get_opt(&name)
                .await?
                .and_then(|w| w.metadata.resource_version);
            let desired = WorkspaceType {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    labels: Some(BTreeMap::from([(ORG_LABEL.to_owned(), org.clone())])),
                    ..Default::default()
                },
                spec,
                status: None,
            };
            let applied = api
                .patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&desired),
                )
                .await?;
            let operation = match before {
                None => "created",
                Some(rv) if Some(&rv) == applied.metadata.resource_version.as_ref() => "unchanged",
                Some(_) => "updated",
            };
            ctx.settings
                .metrics
                .workspacetype_operations
                .get_or_create(&super::metrics::WorkspaceTypeOperation {
                    operation: operation.to_owned(),
                    wst_kind: kind.to_owned(),
                })
                .inc();
        }
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, account: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let org = account_name(account)?;
        let orgs = match ctx.orgs() {
            Ok(client) => client,
            Err(wait) => return Ok(wait),
        };
        let api: Api<WorkspaceType> = Api::all(orgs);
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
    /// The WorkspaceType the account's workspace gets, or why it cannot be known yet.
    async fn type_name(
        account: &Account,
        ctx: &Ctx,
    ) -> Result<Result<String, Outcome>, SubroutineError> {
        let name = account_name(account)?;
        if account.spec.type_ == TYPE_ORG {
            return Ok(Ok(workspace_type_name(&name, "org")));
        }
        let infos: Api<AccountInfo> = Api::all(ctx.origin()?);
        let Some(parent) = infos.get_opt(ACCOUNT_INFO_NAME).await? else {
            return Ok(Err(Outcome::pending(format!(
                "waiting for the parent workspace's AccountInfo {ACCOUNT_INFO_NAME:?}"
            ))));
        };
        let org = &parent.spec.organization.name;
        if org.is_empty() {
            return Ok(Err(Outcome::pending(
                "waiting for the parent AccountInfo to name its organization",
            )));
        }
        Ok(Ok(workspace_type_name(org, &account.spec.type_)))
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
        let type_name = match Self::type_name(account, ctx).await? {
            Ok(name) => name,
            Err(wait) => return Ok(wait),
        };
        let orgs_path = ctx.settings.orgs_path.to_string();
        let orgs = match ctx.orgs() {
            Ok(client) => client,
            Err(wait) => return Ok(wait),
        };
        match Api::<WorkspaceType>::all(orgs).get_opt(&type_name).await? {
            None if ![TYPE_ORG, crds::account::TYPE_ACCOUNT]
                .contains(&account.spec.type_.as_str()) =>
            {
                return Ok(Outcome::pending(format!(
                    "WorkspaceType {orgs_path}:{type_name} does not exist: account type {:?} needs it \
                     created by an administrator (the operator creates only the org and account types)",
                    account.spec.type_
                )));
            }
            None => {
                return Ok(Outcome::pending(format!(
                    "waiting for WorkspaceType {orgs_path}:{type_name} to be created"
                )));
            }
            Some(wt) if !wt.is_ready() => {
                return Ok(Outcome::pending(format!(
                    "waiting for WorkspaceType {orgs_path}:{type_name} to become Ready"
                )));
            }
            Some(_) => {}
        }

        let name = account_name(account)?;
        let workspaces: Api<Workspace> = Api::all(ctx.origin()?);
        let owner = OwnerReference {
            api_version: Account::api_version(&()).into_owned(),
            kind: Account::kind(&()).into_owned(),
            name: name.clone(),
            uid: account.meta().uid.clone().unwrap_or_default(),
            ..Default::default()
        };
        match workspaces.get_opt(&name).await? {
            None => {
                let workspace = Workspace {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        owner_references: Some(vec![owner]),
                        ..Default::default()
                    },
                    spec: WorkspaceSpec {
                        type_: Some(WorkspaceTypeReference {
                            name: type_name,
                            path: orgs_path,
                        }),
                        ..Default::default()
                    },
                    status: None,
                };
                match workspaces.create(&PostParams::default(), &workspace).await {
                    Ok(_) => {}
                    // Created meanwhile (a rerun after a crash): adopted on the next pass.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Some(existing) => {
                let owners = existing
                    .metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default();
                if !owners.iter().any(|o| o.uid == owner.uid) {
                    // Adopt a pre-created Workspace; its other fields (location …) are kept.
                    let mut all = owners;
                    all.push(owner);
                    let patch = serde_json::json!({"metadata": {
                        "ownerReferences": all,
                        "resourceVersion": existing.metadata.resource_version,
                    }});
                    workspaces
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await?;
                }
            }
        }
        Ok(Outcome::Ok)
    }

    async fn finalize(&self, account: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let name = account_name(account)?;
        let workspaces: Api<Workspace> = Api::all(ctx.origin()?);
        match workspaces.get_opt(&name).await? {
            None => Ok(Outcome::Ok),
            Some(ws) if ws.metadata.deletion_timestamp.is_some() => Ok(Outcome::pending(format!(
                "waiting for Workspace {name} to be deleted"
            ))),
            Some(_) => {
                match workspaces.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(e) if not_found(&e) => return Ok(Outcome::Ok),
                    Err(e) => return Err(e.into()),
                }
                Ok(Outcome::pending(format!(
                    "waiting for Workspace {name} to be deleted"
                )))
            }
        }
    }
}

/// Gets the Account's Workspace, or the wait to report.
async fn workspace_of(
    account: &Account,
    ctx: &Ctx,
) -> Result<Result<Workspace, Outcome>, SubroutineError> {
    let name = account_name(account)?;
    Ok(Api::<Workspace>::all(ctx.origin()?)
        .get_opt(&name)
        .await?
        .ok_or_else(|| Outcome::pending(format!("waiting for Workspace {name} to be created"))))
}

/// (3) AccountInfo `account` in the new workspace, written while it is Initializing or Ready.
#[derive(Debug)]
struct ManageAccountInfoSubroutine;

/// How long to look again while a new workspace is not served through the virtual workspace
/// yet: its engagement is another cluster's event, which no watch of ours maps to this
/// Account before the workspace's own phase changes.
const ENGAGE_RECHECK: Duration = Duration::from_secs(1);

#[async_trait]
impl Subroutine<Account, Ctx> for ManageAccountInfoSubroutine {
    fn name(&self) -> &str {
        "ManageAccountInfoSubroutine"
    }

    async fn process(&self, account: &Account, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        let workspace = match workspace_of(account, ctx).await? {
            Ok(ws) => ws,
            Err(wait) => return Ok(wait),
        };
        let name = account_name(account)?;
        let phase = workspace.phase();
        if !matches!(
            phase,
            Some(LogicalClusterPhase::Initializing | LogicalClusterPhase::Ready)
        ) {
            return Ok(Outcome::pending(format!(
                "waiting for Workspace {name} to start initializing (phase {phase:?})"
            )));
        }
        let (Some(cluster), Some(url)) =
            (workspace.spec.cluster.clone(), workspace.spec.url.clone())
        else {
            return Ok(Outcome::pending(format!(
                "waiting for Workspace {name} to be scheduled"
            )));
        };
        let cluster: ClusterName = cluster
            .parse()
            .map_err(|e| SubroutineError::permanent("InvalidWorkspace", format!("{e}")))?;
        // The path comes from kcp (the parent's canonical path), not from splitting the URL.
        let origin = &ctx.runtime.key.cluster;
        let Some(parent_path) = ctx.runtime.clusters().path_of(origin) else {
            return Ok(Outcome::pending_for(
                format!("waiting for the path of cluster {origin}"),
                ENGAGE_RECHECK,
            ));
        };
        let path = parent_path
            .join(&name)
            .map_err(|e| SubroutineError::permanent("InvalidName", e.to_string()))?;
        let me = AccountLocation {
            name: name.clone(),
            generated_cluster_id: cluster.to_string(),
            origin_cluster_id: origin.to_string(),
            path: path.to_string(),
            url,
            type_: account.spec.type_.clone(),
        };
        let Some(Ok(child)) = ctx.runtime.client_for(&cluster) else {
            return Ok(Outcome::pending_for(
                format!("waiting for workspace {path} to bind core.platform-mesh.io"),
                ENGAGE_RECHECK,
            ));
        };

        let ca = ctx.settings.ca_pem.clone();
        if account.spec.type_ == TYPE_ORG {
            write_org_info(child, me, ca).await?;
            if let Some(created) = &account.meta().creation_timestamp {
                let age = jiff_age(created);
                ctx.settings.metrics.org_provisioning_duration.observe(age);
            }
            return Ok(Outcome::Ok);
        }
        let parents: Api<AccountInfo> = Api::all(ctx.origin()?);
        let Some(parent) = parents.get_opt(ACCOUNT_INFO_NAME).await? else {
            return Ok(Outcome::pending(
                "waiting for the parent workspace's AccountInfo",
            ));
        };
        let spec = AccountInfoSpec {
            account: me,
            parent_account: Some(parent.spec.account.clone()),
            organization: parent.spec.organization.clone(),
            fga: parent.spec.fga.clone(),
            cluster_info: ClusterInfo { ca },
            oidc: parent.spec.oidc.clone(),
        };
        write_child_info(child, spec).await?;
        Ok(Outcome::Ok)
    }
}

fn jiff_age(created: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Time) -> f64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    (now - created.0.as_second() as f64).max(0.0)
}

/// An org's AccountInfo: itself as account and organization; `fga` and `oidc`, which the
/// security-operator writes, are left alone.
async fn write_org_info(
    client: Client,
    me: AccountLocation,
    ca: String,
) -> Result<(), SubroutineError> {
    let api: Api<AccountInfo> = Api::all(client);
    match api.get_opt(ACCOUNT_INFO_NAME).await? {
        None => {
            let info = AccountInfo::new(
                ACCOUNT_INFO_NAME,
                AccountInfoSpec {
                    account: me.clone(),
                    parent_account: None,
                    organization: me,
                    fga: FgaInfo::default(),
                    cluster_info: ClusterInfo { ca },
                    oidc: None,
                },
            );
            match api.create(&PostParams::default(), &info).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => Err(SubroutineError::transient(
                    "AccountInfo appeared meanwhile; retrying",
                )),
                Err(e) => Err(e.into()),
            }
        }
        Some(existing) => {
            let s = &existing.spec;
            if s.account == me
                && s.organization == me
                && s.parent_account.is_none()
                && s.cluster_info.ca == ca
            {
                return Ok(());
            }
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": existing.metadata.resource_version},
                "spec": {"account": me, "organization": me, "parentAccount": null, "clusterInfo": {"ca": ca}},
            });
            api.patch(
                ACCOUNT_INFO_NAME,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            Ok(())
        }
    }
}

/// A non-org AccountInfo: everything copied from the parent, written only when it differs.
async fn write_child_info(client: Client, spec: AccountInfoSpec) -> Result<(), SubroutineError> {
    let api: Api<AccountInfo> = Api::all(client);
    match api.get_opt(ACCOUNT_INFO_NAME).await? {
        None => match api
            .create(
                &PostParams::default(),
                &AccountInfo::new(ACCOUNT_INFO_NAME, spec),
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Err(SubroutineError::transient(
                "AccountInfo appeared meanwhile; retrying",
            )),
            Err(e) => Err(e.into()),
        },
        Some(existing) if existing.spec == spec => Ok(()),
        Some(existing) => {
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": existing.metadata.resource_version},
                "spec": {
                    "account": spec.account,
                    "parentAccount": spec.parent_account,
                    "organization": spec.organization,
                    "fga": spec.fga,
                    "clusterInfo": spec.cluster_info,
                    "oidc": spec.oidc,
                },
            });
            api.patch(
                ACCOUNT_INFO_NAME,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            Ok(())
        }
    }
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
        let workspace = match workspace_of(account, ctx).await? {
            Ok(ws) => ws,
            Err(wait) => return Ok(wait),
        };
        if !workspace.is_ready() {
            return Ok(Outcome::pending(format!(
                "waiting for Workspace {} to become Ready (phase {:?})",
                workspace.name_any(),
                workspace.phase()
            )));
        }
        if let Some(created) = &account.meta().creation_timestamp {
            ctx.settings
                .metrics
                .workspace_ready_duration
                .get_or_create(&super::metrics::TypeLabel {
                    r#type: account.spec.type_.clone(),
                })
                .observe(jiff_age(created));
        }
        Ok(Outcome::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crds::AccountSpec;

    #[test]
    fn org_workspace_types_chain_as_upstream() {
        let [(org, org_kind, org_spec), (acc, acc_kind, acc_spec)] =
            WorkspaceTypeSubroutine::types("acme", "root:orgs");
        assert_eq!((org.as_str(), org_kind), ("acme-org", "org"));
        assert_eq!((acc.as_str(), acc_kind), ("acme-account", "account"));
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
}
