//! The platform the webhook scenarios and its benchmark run on: a kcp that asks the webhook
//! (users known by static tokens), OpenFGA, the `orgs` Store, the account-operator and the
//! security-operator in-process, and the webhook binary where kcp expects it; once per binary.

#![allow(clippy::unwrap_used, dead_code)] // each user takes part of it

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use clap::Parser;
use crds::{Store, StoreSpec, Tuple};
use fga::platform_mesh::{ASSIGNEE, orgs_module, user};
use harness::{
    AuthorizingKcp, Kcp, OpenFga, ServerProcess, TestWorkspace, free_port, ready_account, wait_for,
};
use kit::admission::testing::send;
use kube::api::{Api, PostParams};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

pub const CLUSTER_KEY: &str = "authorization.kubernetes.io/cluster-name";

/// The webhook binary (see [`harness::binary`]).
pub fn binary() -> PathBuf {
    harness::binary(
        "rebac-authz-webhook",
        option_env!("CARGO_BIN_EXE_rebac-authz-webhook"),
    )
}

/// The platform, as plain data (clients belong to the runtime that made them).
pub struct Platform {
    pub orgs: kcp::ClusterPath,
    pub orgs_cluster: kcp::ClusterName,
    pub kubeconfig: PathBuf,
}

/// kcp (asking the webhook), OpenFGA, the `orgs` Store with carol as a member of `root:orgs`,
/// both operators in-process, and the webhook binary where kcp expects it; once per binary.
pub async fn platform() -> &'static Platform {
    static PLATFORM: OnceCell<Platform> = OnceCell::const_new();
    PLATFORM
        .get_or_init(|| async {
            let (orgs, kubeconfig, webhook) = serve_platform(&[]).await;
            // Kept for the test binary's lifetime; the watchdog stops it when the binary exits.
            std::mem::forget(webhook);
            Platform {
                orgs: orgs.path,
                orgs_cluster: orgs.cluster,
                kubeconfig,
            }
        })
        .await
}

/// The shared kcp and OpenFGA, both operators in-process (the security-operator with
/// `security_extra` flags) and the webhook binary where kcp expects it. Returns `root:orgs`,
/// the operators' kubeconfig and the webhook.
pub async fn serve_platform(security_extra: &[String]) -> (TestWorkspace, PathBuf, ServerProcess) {
    let authz = AuthorizingKcp::shared().await;
    let openfga = OpenFga::shared().await;
    let (orgs, kubeconfig) = run_operators(&authz.kcp, openfga, security_extra).await;
    let (webhook, _) = start_webhook(
        "rebac-authz-webhook",
        &kubeconfig,
        authz.webhook_address(),
        &openfga.grpc_endpoint(),
        &[],
    )
    .await;
    (orgs, kubeconfig, webhook)
}

/// The `orgs` Store, as the platform-mesh-operator creates it: the orgs module, and carol a
/// member of the `root:orgs` workspace.
pub async fn create_orgs_store(orgs: &TestWorkspace) {
    let tuple = |object: &str, relation: &str, user: &str| Tuple {
        object: object.into(),
        relation: relation.into(),
        user: user.into(),
    };
    let store = Store::new(
        "orgs",
        StoreSpec {
            core_module: orgs_module().to_dsl().unwrap(),
            tuples: Some(vec![
                tuple("role:orgs-members", ASSIGNEE, &user("carol")),
                tuple(
                    "tenancy_kcp_io_workspace:orgs",
                    "member",
                    "role:orgs-members#assignee",
                ),
            ]),
        },
    );
    let stores: Api<Store> = Api::all(orgs.client());
    stores.create(&PostParams::default(), &store).await.unwrap();
}

/// Starts the webhook binary serving on `address` with kcp's test certificate, and waits
/// until it is ready.
pub async fn start_webhook(
    name: &str,
    kubeconfig: &Path,
    address: SocketAddr,
    openfga: &str,
    extra: &[&str],
) -> (ServerProcess, u16) {
    let authz = AuthorizingKcp::shared().await;
    let (health, metrics) = (free_port(), free_port());
    let mut args = vec![
        "serve".to_owned(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--kubeconfig-context=root".into(),
        format!("--openfga-addr={openfga}"),
        format!("--webhook-bind-address={address}"),
        format!("--webhook-cert-dir={}", authz.cert_dir().display()),
        format!("--metrics-bind-address=127.0.0.1:{metrics}"),
        format!("--health-probe-bind-address=127.0.0.1:{health}"),
        "--no-json".into(),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let process =
        ServerProcess::start(name, &binary(), &args, kubeconfig.parent().unwrap(), false).unwrap();
    loop {
        if process.exited() {
            panic!("{name} exited:\n{}", process.log_tail(20));
        }
        if harness::http_get(health, "/readyz")
            .await
            .is_some_and(|(code, _)| code == 200)
        {
            return (process, metrics);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A SubjectAccessReview as kcp sends it.
pub fn review(
    user: &str,
    cluster: &str,
    verb: &str,
    group: &str,
    resource: &str,
    name: &str,
) -> Value {
    json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": { "uid": format!("review-{verb}-{resource}") },
        "spec": {
            "user": user,
            "groups": ["system:authenticated"],
            "extra": { CLUSTER_KEY: [cluster] },
            "resourceAttributes": {
                "verb": verb, "group": group, "version": "v1alpha1", "resource": resource,
                "name": name
            }
        }
    })
}

/// Posts `body` to `path` of the webhook at `address`: the status and the body.
pub async fn post(address: SocketAddr, path: &str, body: &[u8]) -> (StatusCode, String) {
    let authz = AuthorizingKcp::shared().await;
    let ca = CertificateDer::from_pem_slice(authz.ca_pem().as_bytes()).unwrap();
    send(address, &ca, Method::POST, path, body).await.unwrap()
}

/// The review's answer: `(allowed, denied, reason)`.
pub async fn ask(address: SocketAddr, review: &Value) -> (bool, bool, String) {
    let (status, body) = post(address, "/authz", &serde_json::to_vec(review).unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["metadata"]["uid"], review["metadata"]["uid"]);
    let status = &answer["status"];
    (
        status["allowed"].as_bool().unwrap(),
        status["denied"].as_bool().unwrap_or(false),
        status["reason"].as_str().unwrap_or("").to_owned(),
    )
}

/// An org `acme-…` owned by alice with an account `team` (created by someone else): alice
/// owns team through acme. Returns both workspaces.
pub async fn acme_with_team(orgs: &TestWorkspace) -> (TestWorkspace, TestWorkspace) {
    let org = format!("acme-{}", harness::unique_suffix());
    let (_, acme) = ready_account(orgs, &org, "org", "alice").await;
    let (_, team) = ready_account(&acme, "team", "account", "dave").await;
    (acme, team)
}

pub async fn orgs_workspace() -> TestWorkspace {
    let platform = platform().await;
    TestWorkspace {
        factory: AuthorizingKcp::shared().await.kcp.admin().await,
        path: platform.orgs.clone(),
        cluster: platform.orgs_cluster.clone(),
    }
}

/// The OpenFGA store ID of the `orgs` Store, once the security-operator made it.
pub async fn orgs_store_id(orgs: &TestWorkspace) -> String {
    store_id(orgs, "orgs").await
}

/// The OpenFGA store ID of Store `name` in root:orgs, once its model is written.
pub async fn store_id(orgs: &TestWorkspace, name: &str) -> String {
    wait_for(
        &Api::<Store>::all(orgs.client()),
        name,
        "a store and model",
        |s| {
            s.status
                .as_ref()
                .is_some_and(|s| s.store_id.is_some() && s.authorization_model_id.is_some())
        },
    )
    .await
    .status
    .unwrap()
    .store_id
    .unwrap()
}

/// The platform the webhook answers about, on `kcp`: the exports, `root:orgs` with the
/// `orgs` Store (carol a member), and the account-operator and security-operator in this
/// process with kcp's admin credentials, the security-operator with `security_extra` flags.
/// Returns `root:orgs` and the operators' kubeconfig.
pub async fn run_operators(
    kcp: &Kcp,
    openfga: &OpenFga,
    security_extra: &[String],
) -> (TestWorkspace, PathBuf) {
    let (orgs, kubeconfig) = harness::set_up_platform(kcp, true, "operators.kubeconfig").await;
    create_orgs_store(&orgs).await;
    let common = [
        format!("--kubeconfig={}", kubeconfig.display()),
        "--kubeconfig-context=root".into(),
        "--metrics-bind-address=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
    ];
    let accounts = account_operator::config::Config::try_parse_from(
        std::iter::once("account-operator".to_owned()).chain(common.clone()),
    )
    .unwrap();
    let security = security_operator::config::Config::try_parse_from(
        [
            "security-operator".to_owned(),
            "fga,initializer,terminator,system".into(),
        ]
        .into_iter()
        .chain(common)
        .chain([format!("--fga-target={}", openfga.grpc_endpoint())])
        .chain(security_extra.iter().cloned()),
    )
    .unwrap();
    harness::run_detached(move || async move {
        account_operator::app::run(accounts, CancellationToken::new())
            .await
            .unwrap();
    });
    harness::run_detached(move || async move {
        security_operator::app::run(security, CancellationToken::new())
            .await
            .unwrap();
    });
    (orgs, kubeconfig)
}
