//! The floors: what kcp costs with no operator. The full path issues exactly the writes the
//! operator makes (built by the operator's own functions), each the moment a watch shows its
//! precondition; the narrow floor creates a Workspace of a type that already exists.

use std::time::Instant;

use account_operator::controllers::{
    child_account_info, org_account_info, org_workspace_types, workspace_type_name,
};
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo, AccountInfoSpec, AccountLocation};
use harness::{TestWorkspace, when_served};
use kcp::types::core::LogicalClusterPhase;
use kcp::types::tenancy::{Workspace, WorkspaceSpec, WorkspaceType, WorkspaceTypeReference};
use kube::api::{Api, DeleteParams, PostParams};
use kube::core::ObjectMeta;
use tokio::time::Instant as Deadline;

use crate::observe::Watched;
use crate::scenarios::{Bench, ORGS_PATH};

/// Why a floor's piece of work did not finish.
pub type Unfinished = String;

/// The org whose `<org>-org` WorkspaceType the narrow floor's workspaces are of.
pub const NARROW_ORG: &str = "nf";

/// Creates the narrow floor's WorkspaceTypes once, before anything is timed.
pub async fn prepare_narrow(bench: &Bench, deadline: Deadline) -> Result<(), Unfinished> {
    create_types(bench, NARROW_ORG).await?;
    ready_type(bench, NARROW_ORG, deadline).await
}

/// Narrow floor: Workspace `name` of the existing type, to Ready.
pub async fn workspace_only(
    bench: &Bench,
    name: &str,
    deadline: Deadline,
) -> Result<Instant, Unfinished> {
    create_workspace(&bench.orgs, name, &workspace_type_name(NARROW_ORG, "org")).await?;
    bench
        .workspaces
        .until(name, deadline, |w| w.is_some_and(Workspace::is_ready))
        .await
        .ok_or_else(|| format!("Workspace {name} was not Ready by the deadline"))
}

/// Full path, an org: its two WorkspaceTypes, then (type Ready) its Workspace, then
/// (workspace initializing) its AccountInfo, until the workspace is Ready. Returns when, and
/// the AccountInfo its accounts copy.
pub async fn org(
    bench: &Bench,
    name: &str,
    deadline: Deadline,
) -> Result<(Instant, AccountInfoSpec), Unfinished> {
    create_types(bench, name).await?;
    ready_type(bench, name, deadline).await?;
    let ca = bench.ca.clone();
    account_workspace(
        bench,
        &bench.workspaces,
        &bench.orgs,
        name,
        ("org", &workspace_type_name(name, "org")),
        deadline,
        |me| org_account_info(me, ca),
    )
    .await
}

/// Full path, an account of org `org_name` in the org's workspace `org`, whose Workspaces
/// `watched` follows.
pub async fn account(
    bench: &Bench,
    org: &TestWorkspace,
    watched: &Watched<Workspace>,
    (org_name, org_info): (&str, &AccountInfoSpec),
    name: &str,
    deadline: Deadline,
) -> Result<Instant, Unfinished> {
    let ca = bench.ca.clone();
    account_workspace(
        bench,
        watched,
        org,
        name,
        ("account", &workspace_type_name(org_name, "account")),
        deadline,
        |me| child_account_info(me, org_info, ca),
    )
    .await
    .map(|(done, _)| done)
}

/// Full path, deleting an org: its Workspace until gone (kcp takes the workspaces beneath
/// with it), then its WorkspaceTypes, as the operator's finalizers do.
pub async fn delete_org(
    bench: &Bench,
    name: &str,
    deadline: Deadline,
) -> Result<Instant, Unfinished> {
    let workspaces: Api<Workspace> = Api::all(bench.orgs.client());
    workspaces
        .delete(name, &DeleteParams::default())
        .await
        .map_err(|e| format!("deleting Workspace {name}: {e}"))?;
    bench
        .workspaces
        .until(name, deadline, |w| w.is_none())
        .await
        .ok_or_else(|| format!("Workspace {name} was not gone by the deadline"))?;
    let types: Api<WorkspaceType> = Api::all(bench.orgs.client());
    for kind in ["org", "account"] {
        match types
            .delete(&workspace_type_name(name, kind), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => return Err(format!("deleting the {kind} WorkspaceType of {name}: {e}")),
        }
    }
    Ok(Instant::now())
}

async fn create_types(bench: &Bench, org: &str) -> Result<(), Unfinished> {
    let types: Api<WorkspaceType> = Api::all(bench.orgs.client());
    let post = PostParams::default();
    futures::future::try_join_all(
        org_workspace_types(org, ORGS_PATH)
            .into_iter()
            .map(|(_, wt)| {
                let (types, post) = (&types, &post);
                async move { types.create(post, &wt).await }
            }),
    )
    .await
    .map(drop)
    .map_err(|e| format!("creating the WorkspaceTypes of {org}: {e}"))
}

async fn ready_type(bench: &Bench, org: &str, deadline: Deadline) -> Result<(), Unfinished> {
    let name = workspace_type_name(org, "org");
    bench
        .types
        .until(&name, deadline, |t| t.is_some_and(WorkspaceType::is_ready))
        .await
        .map(drop)
        .ok_or_else(|| format!("WorkspaceType {name} was not Ready by the deadline"))
}

async fn create_workspace(
    parent: &TestWorkspace,
    name: &str,
    type_name: &str,
) -> Result<(), Unfinished> {
    let api: Api<Workspace> = Api::all(parent.client());
    let workspace = Workspace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: WorkspaceSpec {
            type_: Some(WorkspaceTypeReference {
                name: type_name.to_owned(),
                path: ORGS_PATH.to_owned(),
            }),
            ..Default::default()
        },
        status: None,
    };
    // An org that turned Ready a moment ago may not serve its APIs yet.
    let post = PostParams::default();
    when_served(|| api.create(&post, &workspace))
        .await
        .map(drop)
        .map_err(|e| format!("creating Workspace {name} in {}: {e}", parent.path))
}

/// Workspace `name` of `type_name` in `parent`, its AccountInfo `info(itself)` written as soon
/// as it initializes, until Ready.
async fn account_workspace(
    bench: &Bench,
    watched: &Watched<Workspace>,
    parent: &TestWorkspace,
    name: &str,
    (account_type, type_name): (&str, &str),
    deadline: Deadline,
    info: impl FnOnce(AccountLocation) -> AccountInfoSpec,
) -> Result<(Instant, AccountInfoSpec), Unfinished> {
    create_workspace(parent, name, type_name).await?;
    let initializing = |w: Option<&Workspace>| {
        w.is_some_and(|w| {
            matches!(
                w.phase(),
                Some(LogicalClusterPhase::Initializing | LogicalClusterPhase::Ready)
            )
        })
    };
    watched
        .until(name, deadline, initializing)
        .await
        .ok_or_else(|| format!("Workspace {name} did not initialize by the deadline"))?;
    let workspace = watched
        .get(name)
        .ok_or_else(|| format!("Workspace {name} vanished"))?;
    let (Some(cluster), Some(url)) = (workspace.spec.cluster, workspace.spec.url) else {
        return Err(format!(
            "Workspace {name} initializes with no cluster or URL"
        ));
    };
    let path = parent.path.join(name).map_err(|e| e.to_string())?;
    let spec = info(AccountLocation {
        name: name.to_owned(),
        generated_cluster_id: cluster.clone(),
        origin_cluster_id: parent.cluster.to_string(),
        path: path.to_string(),
        url,
        type_: account_type.to_owned(),
    });
    // By cluster: a path resolves only once the workspace is Ready.
    let cluster: kcp::ClusterName = cluster.parse().map_err(|e| format!("{e}"))?;
    let client = bench
        .factory
        .for_cluster(&cluster)
        .map_err(|e| e.to_string())?;
    let infos: Api<AccountInfo> = Api::all(client);
    let object = AccountInfo::new(ACCOUNT_INFO_NAME, spec.clone());
    // The AccountInfo API is served once the workspace's binding of the export is.
    let post = PostParams::default();
    when_served(|| infos.create(&post, &object))
        .await
        .map_err(|e| format!("creating the AccountInfo of {path}: {e}"))?;
    let done = watched
        .until(name, deadline, |w| w.is_some_and(Workspace::is_ready))
        .await
        .ok_or_else(|| format!("Workspace {name} was not Ready by the deadline"))?;
    Ok((done, spec))
}
