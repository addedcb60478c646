#![allow(clippy::unwrap_used)]
//! With `--delete-workspaces-on-delete`, deleting the PlatformMesh deletes the kcp tree it made,
//! and the PlatformMesh goes only once the workspaces are gone. In a test binary of its own:
//! it removes `root:orgs` and the other shared workspaces.

mod support;

use harness::{Kcp, wait_for, wait_gone};
use kcp::ClusterPath;
use kcp::types::tenancy::Workspace;
use kube::api::{Api, DeleteParams, PostParams};
use support::{Host, condition, platform_mesh, start_operator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_platform_mesh_deletes_the_tree_when_asked_to() {
    const NS: &str = "teardown";
    const LABEL: &str = "teardown";
    let kcp = Kcp::shared().await;
    let host = Host::new().await;
    host.namespace(NS).await;
    start_operator(
        &host,
        kcp.kubeconfig(),
        LABEL,
        &[
            "--no-account-operator-webhooks".to_owned(),
            "--subroutines-authorization-webhook-enabled=false".to_owned(),
            "--delete-workspaces-on-delete".to_owned(),
        ],
    );
    let pms = host.platform_meshes(NS);
    let spec = serde_json::json!({"kcp": {"extraWorkspaces": [
        {"path": "root:providers:extra", "type": {"name": "provider", "path": "root"}}]}});
    pms.create(
        &PostParams::default(),
        &platform_mesh("platform", LABEL, spec),
    )
    .await
    .unwrap();
    wait_for(&pms, "platform", "Ready", |pm| {
        condition(pm, "Ready").is_some_and(|(status, _, _)| status == "True")
    })
    .await;
    let admin = kcp.admin().await;
    let root: Api<Workspace> = Api::all(admin.for_path(&ClusterPath::root()).unwrap());
    let providers: Api<Workspace> =
        Api::all(admin.for_path(&"root:providers".parse().unwrap()).unwrap());
    providers.get("extra").await.unwrap();

    pms.delete("platform", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pms, "platform").await;
    for name in ["orgs", "providers", "platform-mesh-system"] {
        assert!(
            root.get_opt(name).await.unwrap().is_none(),
            "root:{name} left behind"
        );
    }
    for secret in [
        "account-operator-kubeconfig",
        "security-operator-kubeconfig",
        "rebac-authz-webhook-kubeconfig",
    ] {
        assert!(
            host.secrets(NS).get_opt(secret).await.unwrap().is_none(),
            "{secret} left behind"
        );
    }
}
