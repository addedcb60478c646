#![allow(clippy::unwrap_used)]
//! With `--delete-workspaces-on-delete`, deleting the PlatformMesh deletes the kcp tree it made,
//! and the welcome realm (with a real Keycloak, made by a security-operator), and the
//! PlatformMesh goes only once they are gone. In a test binary of its own: it removes
//! `root:orgs` and the other shared workspaces.

mod support;

use clap::Parser;
use harness::keycloak::Keycloak;
use harness::{Kcp, OpenFga, wait_for, wait_gone};
use kcp::ClusterPath;
use kcp::types::tenancy::{Workspace, WorkspaceAuthenticationConfiguration, WorkspaceType};
use kube::api::{Api, DeleteParams, PostParams};
use support::{Host, condition, platform_mesh, start_operator};
use tokio_util::sync::CancellationToken;

/// A security-operator running the `system` role with Keycloak, on the kubeconfig the
/// platform-mesh-operator wrote: it makes the welcome realm, and deletes it with its
/// IdentityProviderConfiguration.
async fn start_security_operator(host: &Host, namespace: &str, keycloak: &Keycloak) {
    let kubeconfig = host
        .kubeconfig_file(namespace, "security-operator-kubeconfig")
        .await;
    let secret = keycloak.service_account("security-operator").await;
    let config = security_operator::config::Config::try_parse_from([
        "security-operator".to_owned(),
        "system".into(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--metrics-bind-address=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
        format!("--fga-target={}", OpenFga::shared().await.grpc_endpoint()),
        format!("--keycloak-base-url={}", keycloak.url()),
        format!("--keycloak-client-secret={secret}"),
        format!("--keycloak-ca-file={}", keycloak.ca_file().display()),
        format!("--base-domain={}", keycloak.domain()),
    ])
    .unwrap();
    harness::run_detached(move || async move {
        security_operator::app::run(config, CancellationToken::new())
            .await
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_platform_mesh_deletes_the_tree_when_asked_to() {
    const NS: &str = "teardown";
    const LABEL: &str = "teardown";
    let (kcp, keycloak) = tokio::join!(Kcp::shared(), Keycloak::shared());
    let host = Host::new().await;
    host.namespace(NS).await;
    let domain_ca = std::fs::read_to_string(keycloak.ca_file()).unwrap();
    host.ca_secret(NS, "domain-certificate", &domain_ca).await;
    start_operator(
        &host,
        kcp.kubeconfig(),
        LABEL,
        &[
            "--no-account-operator-webhooks".to_owned(),
            "--subroutines-authorization-webhook-enabled=false".to_owned(),
            "--delete-workspaces-on-delete".to_owned(),
            "--subroutines-welcome-enabled=true".to_owned(),
            "--domain-certificate-ca-secret-name=domain-certificate".to_owned(),
        ],
    );
    let pms = host.platform_meshes(NS);
    let spec = serde_json::json!({
        "exposure": {"baseDomain": "localhost", "port": keycloak.address().port()},
        "kcp": {"extraWorkspaces": [
            {"path": "root:providers:extra", "type": {"name": "provider", "path": "root"}}]},
    });
    pms.create(
        &PostParams::default(),
        &platform_mesh("platform", LABEL, spec),
    )
    .await
    .unwrap();
    // The welcome realm waits for a security-operator, which needs the kubeconfig written.
    wait_for(&pms, "platform", "its kubeconfigs", |pm| {
        condition(pm, "ProvidersecretSubroutine").is_some_and(|(status, _, _)| status == "True")
    })
    .await;
    start_security_operator(&host, NS, keycloak).await;
    wait_for(&pms, "platform", "Ready", |pm| {
        condition(pm, "Ready").is_some_and(|(status, _, _)| status == "True")
    })
    .await;
    let admin = kcp.admin().await;
    let root: Api<Workspace> = Api::all(admin.for_path(&ClusterPath::root()).unwrap());
    let providers: Api<Workspace> =
        Api::all(admin.for_path(&"root:providers".parse().unwrap()).unwrap());
    providers.get("extra").await.unwrap();
    assert!(keycloak.has_realm("welcome").await);
    let configs: Api<WorkspaceAuthenticationConfiguration> =
        Api::all(admin.for_path(&ClusterPath::root()).unwrap());
    let orgs_authentication = configs.get("orgs-authentication").await.unwrap();
    assert_eq!(
        orgs_authentication.spec.jwt[0]["issuer"]["url"],
        format!("https://{}/keycloak/realms/welcome", keycloak.domain())
    );
    let types: Api<WorkspaceType> = Api::all(admin.for_path(&ClusterPath::root()).unwrap());
    let orgs_type = types.get("orgs").await.unwrap();
    assert_eq!(
        orgs_type.spec.authentication_configurations[0].name,
        "orgs-authentication"
    );

    pms.delete("platform", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pms, "platform").await;
    // The welcome realm went first: its configuration, the type's reference, the realm.
    assert!(
        !keycloak.has_realm("welcome").await,
        "the welcome realm left behind"
    );
    assert!(
        configs
            .get_opt("orgs-authentication")
            .await
            .unwrap()
            .is_none()
    );
    let orgs_type = types.get("orgs").await.unwrap();
    assert!(
        orgs_type.spec.authentication_configurations.is_empty(),
        "{:?}",
        orgs_type.spec.authentication_configurations
    );
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
