//! Two shards behind a front-proxy: workspaces land on the shard their location selects, an
//! export bound on both shards publishes one virtual-workspace URL per shard, and the root
//! shard serves on while the other is down.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use harness::sharded::{SHARD_ANNOTATION, ShardedKcp};
use harness::{TestWorkspace, WIDGETS_EXPORT, bind_widgets, wait_for};
use kcp::ClusterPath;
use kcp::types::apis::ApiExportEndpointSlice;
use kcp::types::core::{LOGICAL_CLUSTER_NAME, LogicalCluster};
use kcp::types::tenancy::Workspace;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};

#[tokio::test]
async fn workspaces_and_endpoints_span_two_shards_and_survive_an_outage() {
    let mut kcp = ShardedKcp::start(2).await;
    eprintln!(
        "sharded kcp ready after {:.1}s, RSS {:.0} MiB (all components)",
        kcp.startup.as_secs_f64(),
        kcp.rss_mib()
    );
    for (component, after) in &kcp.ready {
        eprintln!("  {component} ready after {:.1}s", after.as_secs_f64());
    }

    // The Shard objects in root carry the URLs the harness gave each shard.
    let shards: Vec<(String, String, String)> = kcp
        .shard_objects()
        .await
        .unwrap()
        .iter()
        .map(|shard| {
            let spec = &shard.data["spec"];
            let field = |name: &str| spec[name].as_str().unwrap_or_default().to_owned();
            (shard.name_any(), field("baseURL"), field("externalURL"))
        })
        .collect();
    let expected: Vec<(String, String, String)> = kcp
        .shards()
        .iter()
        .map(|s| {
            (
                s.name().to_owned(),
                s.base_url().to_owned(),
                kcp.proxy_url().to_owned(),
            )
        })
        .collect();
    assert_eq!(shards, expected);

    // A workspace on each shard, plus the provider on the root shard.
    let suffix = harness::unique_suffix();
    let root = ClusterPath::root();
    let provider = kcp
        .workspace_on("root", &root, &format!("provider-{suffix}"))
        .await;
    let on_root = kcp
        .workspace_on("root", &root, &format!("on-root-{suffix}"))
        .await;
    let on_shard_1 = kcp
        .workspace_on("shard-1", &root, &format!("on-shard-1-{suffix}"))
        .await;
    for (workspace, shard, other) in [
        (&provider, "root", "shard-1"),
        (&on_root, "root", "shard-1"),
        (&on_shard_1, "shard-1", "root"),
    ] {
        assert_placed(&kcp, workspace, shard, other).await;
    }

    // An export on the root shard, bound on both shards: its endpoint slice lists both shards'
    // virtual workspaces, each reachable directly with the admin's client certificate and
    // serving only its own shard's consumers.
    harness::create_widgets_export(&provider).await;
    for consumer in [&on_root, &on_shard_1] {
        bind_widgets(&provider, consumer).await;
        let widgets = widgets(consumer.client());
        let widget: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "example.io/v1",
            "kind": "Widget",
            "metadata": {"name": format!("in-{}", consumer.path.base())},
        }))
        .unwrap();
        let post = PostParams::default();
        harness::when_served(|| widgets.create(&post, &widget))
            .await
            .unwrap();
    }
    let expected_urls: BTreeSet<String> = kcp
        .shards()
        .iter()
        .map(|shard| {
            format!(
                "{}/services/apiexport/{}/{WIDGETS_EXPORT}",
                shard.virtual_workspace_url(),
                provider.cluster
            )
        })
        .collect();
    let slices: Api<ApiExportEndpointSlice> = Api::all(provider.client());
    let slice = wait_for(&slices, WIDGETS_EXPORT, "to list both shards", |slice| {
        slice.endpoint_urls().count() == expected_urls.len()
    })
    .await;
    let urls: BTreeSet<String> = slice.endpoint_urls().map(str::to_owned).collect();
    assert_eq!(urls, expected_urls);
    let admin = kcp.admin().await;
    for (shard, consumer) in [("root", &on_root), ("shard-1", &on_shard_1)] {
        let url = format!(
            "{}/services/apiexport/{}/{WIDGETS_EXPORT}",
            kcp.shard(shard).virtual_workspace_url(),
            provider.cluster
        );
        let listed = widgets(admin.for_virtual_wildcard(&url).unwrap())
            .list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("listing widgets at {url}: {e}"));
        let names: Vec<(String, String)> = listed
            .iter()
            .map(|w| {
                (
                    w.annotations()
                        .get("kcp.io/cluster")
                        .cloned()
                        .unwrap_or_default(),
                    w.name_any(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [(
                consumer.cluster.to_string(),
                format!("in-{}", consumer.path.base())
            )],
            "{url}"
        );
    }

    // shard-1 down: the root shard serves on through the front-proxy, shard-1's workspaces
    // do not.
    kcp.stop_shard("shard-1").await;
    let during = kcp
        .workspace_on("root", &root, &format!("during-outage-{suffix}"))
        .await;
    assert_placed_by_annotation(&kcp, &during, "root").await;
    let still = widgets(on_root.client())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(still.items.len(), 1);
    let unreachable = widgets(on_shard_1.client())
        .list(&ListParams::default())
        .await;
    eprintln!("shard-1 down, its workspace through the front-proxy: {unreachable:?}");
    assert!(unreachable.is_err(), "{unreachable:?}");
    let slice = slices.get(WIDGETS_EXPORT).await.unwrap();
    eprintln!(
        "shard-1 down, endpoint slice: {:?}",
        slice.endpoint_urls().collect::<Vec<_>>()
    );

    // shard-1 back: its workspace serves again.
    let took = kcp.start_shard("shard-1").await;
    eprintln!("shard-1 ready again after {:.1}s", took.as_secs_f64());
    let back = harness::eventually("shard-1's workspace to serve again", || async {
        widgets(on_shard_1.client())
            .list(&ListParams::default())
            .await
            .ok()
    })
    .await;
    assert_eq!(back.items.len(), 1);
}

/// Asserts that `workspace` is hosted by shard `shard`: kcp says so on the Workspace, and its
/// LogicalCluster is on that shard and not on `other`.
async fn assert_placed(kcp: &ShardedKcp, workspace: &TestWorkspace, shard: &str, other: &str) {
    let object = assert_placed_by_annotation(kcp, workspace, shard).await;
    // The Workspace's URL is the front-proxy's (every shard's external URL), not the shard's.
    assert_eq!(
        object.spec.url.as_deref(),
        Some(format!("{}/clusters/{}", kcp.proxy_url(), workspace.path).as_str())
    );
    let here = logical_cluster_on(kcp, shard, workspace).await.unwrap();
    assert!(
        here.is_some(),
        "{} has no LogicalCluster on shard {shard}",
        workspace.path
    );
    let there = logical_cluster_on(kcp, other, workspace).await;
    assert!(
        matches!(there, Ok(None) | Err(_)),
        "{} also has a LogicalCluster on shard {other}: {there:?}",
        workspace.path
    );
}

/// The LogicalCluster of `workspace`, asked directly of shard `shard` as its shard-admin.
async fn logical_cluster_on(
    kcp: &ShardedKcp,
    shard: &str,
    workspace: &TestWorkspace,
) -> Result<Option<LogicalCluster>, kube::Error> {
    let client = kcp
        .shard_admin(shard)
        .await
        .for_cluster(&workspace.cluster)
        .unwrap();
    Api::<LogicalCluster>::all(client)
        .get_opt(LOGICAL_CLUSTER_NAME)
        .await
}

/// Asserts that kcp records shard `shard` on `workspace`'s Workspace; returns the Workspace.
async fn assert_placed_by_annotation(
    kcp: &ShardedKcp,
    workspace: &TestWorkspace,
    shard: &str,
) -> Workspace {
    let parent = workspace.path.parent().unwrap();
    let client = kcp.admin().await.for_path(&parent).unwrap();
    let object = Api::<Workspace>::all(client)
        .get(workspace.path.base())
        .await
        .unwrap();
    assert_eq!(
        object
            .annotations()
            .get(SHARD_ANNOTATION)
            .map(String::as_str),
        Some(shard),
        "{}",
        workspace.path
    );
    object
}

fn widgets(client: Client) -> Api<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("example.io", "v1", "Widget"));
    Api::all_with(client, &resource)
}
