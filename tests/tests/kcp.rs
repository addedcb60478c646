//! Foundation scenarios against a real kcp: workspaces, exports, bindings, virtual workspaces,
//! and the Account CRD's validation.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use crds::{Account, AccountSpec};
use harness::{Kcp, PlatformExport, create_workspace, universal};
use kcp::types::core::{LOGICAL_CLUSTER_NAME, LogicalCluster};
use kcp::{CLUSTER_ANNOTATION, ClusterPath, PATH_ANNOTATION};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

#[tokio::test]
async fn workspace_tree_reports_path_and_cluster() {
    let kcp = Kcp::shared().await;
    eprintln!(
        "kcp ready after {:.1}s, RSS {:.0} MiB",
        kcp.startup.as_secs_f64(),
        kcp.rss_mib().unwrap_or_default()
    );
    let admin = kcp.admin().await;
    let mut parent = ClusterPath::root();
    let mut workspace = None;
    for name in ["orgs", "acme", "team"] {
        workspace = Some(create_workspace(&admin, &parent, name, universal()).await);
        parent = parent.join(name).unwrap();
    }
    let team = workspace.unwrap();
    assert_eq!(parent.as_str(), "root:orgs:acme:team");
    let cluster = team
        .spec
        .cluster
        .clone()
        .expect("a Ready workspace has spec.cluster");
    assert!(
        team.spec
            .url
            .as_deref()
            .is_some_and(|u| u.ends_with("/clusters/root:orgs:acme:team")),
        "{:?}",
        team.spec.url
    );

    // By path and by cluster name, the workspace's LogicalCluster is the same object, and it
    // carries the canonical path and its own cluster name.
    let by_path: Api<LogicalCluster> = Api::all(admin.for_path(&parent).unwrap());
    let by_name: Api<LogicalCluster> =
        Api::all(admin.for_cluster(&cluster.parse().unwrap()).unwrap());
    let lc = by_path.get(LOGICAL_CLUSTER_NAME).await.unwrap();
    assert_eq!(
        lc.annotations().get(PATH_ANNOTATION).map(String::as_str),
        Some("root:orgs:acme:team")
    );
    assert_eq!(lc.annotations().get(CLUSTER_ANNOTATION), Some(&cluster));
    assert_eq!(
        by_name.get(LOGICAL_CLUSTER_NAME).await.unwrap().uid(),
        lc.uid()
    );

    // The shard admin may list across every logical cluster with the wildcard; kcp-admin may not.
    let shard: Api<LogicalCluster> = Api::all(
        kcp.shard_admin()
            .await
            .for_url(&format!("{}clusters/*", admin.server()))
            .unwrap(),
    );
    let clusters: BTreeSet<String> = shard
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .filter_map(|lc| lc.annotations().get(CLUSTER_ANNOTATION).cloned())
        .collect();
    assert!(clusters.contains(&cluster), "{cluster} not in {clusters:?}");
    let as_kcp_admin: Api<LogicalCluster> = Api::all(
        admin
            .for_url(&format!("{}clusters/*", admin.server()))
            .unwrap(),
    );
    assert!(as_kcp_admin.list(&ListParams::default()).await.is_err());
}

fn org_account(name: &str, display_name: &str) -> Account {
    Account::new(
        name,
        AccountSpec {
            type_: "org".to_owned(),
            display_name: display_name.to_owned(),
            ..Default::default()
        },
    )
}

#[tokio::test]
async fn bound_workspaces_are_listed_together_through_the_virtual_workspace() {
    let kcp = Kcp::shared().await;
    let core = PlatformExport::core(kcp).await;
    let admin = kcp.admin().await;

    let tenant = kcp.private_workspace("export").await;
    let a = tenant.child("consumer-a", universal()).await;
    let b = tenant.child("consumer-b", universal()).await;
    for consumer in [&a, &b] {
        core.bind(consumer).await;
        let accounts: Api<Account> = Api::all(consumer.client());
        let account = org_account("same-name", &format!("in {}", consumer.path));
        accounts
            .create(&PostParams::default(), &account)
            .await
            .unwrap();
    }

    let url = core.endpoint_url(kcp).await;
    assert!(url.contains("/services/apiexport/"), "{url}");
    let all: Api<Account> = Api::all(admin.for_virtual_wildcard(&url).unwrap());
    let listed = all.list(&ListParams::default()).await.unwrap();
    let ours: BTreeSet<(String, String)> = listed
        .iter()
        .filter(|acc| acc.name_any() == "same-name")
        .filter_map(|acc| {
            let cluster = acc.annotations().get(CLUSTER_ANNOTATION)?.clone();
            Some((cluster, acc.spec.display_name.clone()))
        })
        .filter(|(cluster, _)| [a.cluster.as_str(), b.cluster.as_str()].contains(&cluster.as_str()))
        .collect();
    let expected: BTreeSet<(String, String)> = [&a, &b]
        .iter()
        .map(|w| (w.cluster.to_string(), format!("in {}", w.path)))
        .collect();
    assert_eq!(ours, expected);

    // A write through the virtual workspace goes to the named cluster only.
    let in_a: Api<Account> = Api::all(admin.for_virtual_cluster(&url, &a.cluster).unwrap());
    let mut account = in_a.get("same-name").await.unwrap();
    account.spec.description = Some("changed through the virtual workspace".into());
    in_a.replace("same-name", &PostParams::default(), &account)
        .await
        .unwrap();
    let read_b: Account = Api::all(b.client()).get("same-name").await.unwrap();
    assert_eq!(read_b.spec.description, None);
    let read_a: Account = Api::all(a.client()).get("same-name").await.unwrap();
    assert_eq!(
        read_a.spec.description.as_deref(),
        Some("changed through the virtual workspace")
    );
}

#[tokio::test]
async fn changing_an_account_type_is_refused_by_kcp() {
    let kcp = Kcp::shared().await;
    let tenant = kcp.private_workspace("immutable").await;
    PlatformExport::core(kcp).await.bind(&tenant).await;

    let accounts: Api<Account> = Api::all(tenant.client());
    accounts
        .create(&PostParams::default(), &org_account("acme", "Acme"))
        .await
        .unwrap();
    let patch = serde_json::json!({"spec": {"type": "account"}});
    let err = accounts
        .patch("acme", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect_err("kcp must refuse a change of spec.type");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains("spec.type is immutable"),
                "{}",
                status.message
            );
        }
        other => panic!("expected an API error, got {other}"),
    }
    // Other fields still change.
    let patch = serde_json::json!({"spec": {"displayName": "Acme Inc."}});
    let updated = accounts
        .patch("acme", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(updated.spec.display_name, "Acme Inc.");
    assert_eq!(updated.spec.type_, "org");
}
