//! The webhook against a real kcp that asks it (users known by static tokens, no RBAC of
//! their own), real OpenFGA, and the real account-operator and security-operator: every
//! request below goes through kcp's authorizer chain, as a user's `kubectl` would.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use clap::Parser;
use crds::{Account, Store, StoreSpec, Tuple};
use fga::platform_mesh::{ASSIGNEE, OWNER, orgs_module, role_object, user};
use harness::{
    AuthorizingKcp, OpenFga, ServerProcess, TcpProxy, TestWorkspace, free_port, new_account,
    ready_account, wait_for,
};
use kit::admission::testing::send;
use kube::api::{Api, PostParams};
use rebac_authz_webhook::server::{BatchQuestion, BatchRequest, BatchResponse};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

const CLUSTER_KEY: &str = "authorization.kubernetes.io/cluster-name";

/// The platform, as plain data (clients belong to the runtime that made them).
struct Platform {
    orgs: kcp::ClusterPath,
    orgs_cluster: kcp::ClusterName,
    kubeconfig: PathBuf,
}

/// kcp (asking the webhook), OpenFGA, the `orgs` Store with carol as a member of `root:orgs`,
/// both operators in-process, and the webhook binary where kcp expects it; once per binary.
async fn platform() -> &'static Platform {
    static PLATFORM: OnceCell<Platform> = OnceCell::const_new();
    PLATFORM
        .get_or_init(|| async {
            let authz = AuthorizingKcp::shared().await;
            let openfga = OpenFga::shared().await;
            let (orgs, kubeconfig) =
                harness::set_up_platform(&authz.kcp, true, "operators.kubeconfig").await;
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
                .chain([format!("--fga-target={}", openfga.grpc_endpoint())]),
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
            let webhook = start_webhook(
                "rebac-authz-webhook",
                &kubeconfig,
                authz.webhook_address(),
                &openfga.grpc_endpoint(),
                &[],
            )
            .await;
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

/// The `orgs` Store, as the platform-mesh-operator creates it: the orgs module, and carol a
/// member of the `root:orgs` workspace.
async fn create_orgs_store(orgs: &TestWorkspace) {
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
async fn start_webhook(
    name: &str,
    kubeconfig: &std::path::Path,
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
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_rebac-authz-webhook"));
    let process =
        ServerProcess::start(name, &binary, &args, kubeconfig.parent().unwrap(), false).unwrap();
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
fn review(user: &str, cluster: &str, verb: &str, group: &str, resource: &str, name: &str) -> Value {
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
async fn post(address: SocketAddr, path: &str, body: &[u8]) -> (StatusCode, String) {
    let authz = AuthorizingKcp::shared().await;
    let ca = CertificateDer::from_pem_slice(authz.ca_pem().as_bytes()).unwrap();
    send(address, &ca, Method::POST, path, body).await.unwrap()
}

/// The review's answer: `(allowed, denied, reason)`.
async fn ask(address: SocketAddr, review: &Value) -> (bool, bool, String) {
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
async fn acme_with_team(orgs: &TestWorkspace) -> (TestWorkspace, TestWorkspace) {
    let org = format!("acme-{}", harness::unique_suffix());
    let (_, acme) = ready_account(orgs, &org, "org", "alice").await;
    let (_, team) = ready_account(&acme, "team", "account", "dave").await;
    (acme, team)
}

async fn orgs_workspace() -> TestWorkspace {
    let platform = platform().await;
    TestWorkspace {
        factory: AuthorizingKcp::shared().await.kcp.admin().await,
        path: platform.orgs.clone(),
        cluster: platform.orgs_cluster.clone(),
    }
}

/// The HTTP status of listing Accounts in `path` as `user`.
async fn list_accounts_as(user: &str, path: &kcp::ClusterPath) -> u16 {
    let factory = AuthorizingKcp::shared().await.as_user(user).await;
    let accounts: Api<Account> = Api::all(factory.for_path(path).unwrap());
    match accounts.list(&Default::default()).await {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(e) => panic!("listing Accounts in {path} as {user}: {e}"),
    }
}

#[tokio::test]
async fn the_owner_works_in_the_org_strangers_get_403_and_revoking_takes_effect() {
    let orgs = orgs_workspace().await;
    let (acme, team) = acme_with_team(&orgs).await;

    // alice owns acme, so team too: she lists and creates Accounts there.
    assert_eq!(list_accounts_as("alice", &team.path).await, 200);
    let alice = AuthorizingKcp::shared().await.as_user("alice").await;
    let accounts: Api<Account> = Api::all(alice.for_path(&team.path).unwrap());
    accounts
        .create(
            &PostParams::default(),
            &new_account("dev", "account", "alice"),
        )
        .await
        .unwrap();
    let admin_accounts: Api<Account> = Api::all(team.client());
    wait_for(&admin_accounts, "dev", "Ready", harness::is_ready).await;
    assert_eq!(list_accounts_as("alice", &acme.path).await, 200);

    // bob has nothing here, and no RBAC anywhere.
    assert_eq!(list_accounts_as("bob", &team.path).await, 403);
    assert_eq!(list_accounts_as("bob", &acme.path).await, 403);

    // Deleting alice's owner tuple revokes her access once kcp's 1 s cache expires.
    let store = store_id(&orgs, acme.path.base()).await;
    let owner_role = role_object(orgs.cluster.as_str(), acme.path.base(), OWNER);
    let owner = fga::tuple::Tuple::new(owner_role, ASSIGNEE, user("alice"));
    let mut fga = OpenFga::shared().await.client().await;
    let options = fga::sync::SyncOptions::default();
    let before = fga::sync::read_tuples(&mut fga, &store, None, &options)
        .await
        .unwrap();
    assert!(
        before.contains(&owner),
        "alice's owner tuple is not in {before:?}"
    );
    let revoke = fga::sync::TupleDiff {
        writes: Vec::new(),
        deletes: vec![owner],
    };
    fga::sync::apply(&mut fga, &store, &revoke, &options)
        .await
        .unwrap();
    let mut code = 200;
    for _ in 0..50 {
        code = list_accounts_as("alice", &team.path).await;
        if code == 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        code, 403,
        "alice still lists Accounts after her owner tuple went"
    );
}

#[tokio::test]
async fn a_member_of_the_orgs_workspace_is_answered_from_the_orgs_store() {
    let orgs = orgs_workspace().await;
    // The orgs Store's tuples are written by the security-operator; carol's answer turns 200.
    let mut code = 0;
    for _ in 0..150 {
        code = list_accounts_as("carol", &orgs.path).await;
        if code == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        code, 200,
        "carol, a member of root:orgs, cannot list organisations"
    );
    assert_eq!(list_accounts_as("bob", &orgs.path).await, 403);
}

#[tokio::test]
async fn workspaces_outside_the_orgs_and_unknown_ones_get_no_opinion() {
    let authz = AuthorizingKcp::shared().await;
    platform().await;
    // A workspace that does not bind the export: the webhook has no opinion, kcp's RBAC
    // (which grants alice nothing) refuses.
    let outside = authz.kcp.private_workspace("outside").await;
    assert_eq!(list_accounts_as("alice", &outside.path).await, 403);

    // Asked directly: an unknown workspace is retried once (503, Retry-After), then answered
    // NoOpinion, without waiting on anything.
    let unknown = format!("unknown{}", harness::unique_suffix());
    let body =
        serde_json::to_vec(&review("alice", &unknown, "list", "", "configmaps", "")).unwrap();
    let (status, text) = post(authz.webhook_address(), "/authz", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(text, "", "a retry has no body");
    let (allowed, denied, reason) = ask(
        authz.webhook_address(),
        &review("alice", &unknown, "list", "", "configmaps", ""),
    )
    .await;
    assert!(!allowed && !denied);
    assert!(reason.contains("is not known"), "{reason}");
}

#[tokio::test]
async fn openfga_down_is_no_opinion_within_the_timeout_and_counted() {
    let platform = platform().await;
    let orgs = orgs_workspace().await;
    let (_, team) = acme_with_team(&orgs).await;
    let proxy = TcpProxy::to(OpenFga::shared().await.grpc_address()).await;
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (webhook, metrics) = start_webhook(
        "rebac-authz-webhook-proxied",
        &platform.kubeconfig,
        address,
        &proxy.address.to_string(),
        &["--openfga-timeout=1s"],
    )
    .await;
    let question = review(
        "alice",
        team.cluster.as_str(),
        "list",
        "core.platform-mesh.io",
        "accounts",
        "",
    );
    // Its reflectors may still be engaging team: the first answers may be a retry.
    let mut answer = (false, false, String::new());
    for _ in 0..50 {
        answer = ask(address, &question).await;
        if answer.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(answer.0, "not allowed through the proxy: {}", answer.2);

    proxy.set_cut(true);
    let (allowed, denied, reason) = ask(address, &question).await;
    assert!(!allowed && !denied);
    assert!(reason.contains("OpenFGA"), "{reason}");
    proxy.set_cut(false);

    let (_, text) = harness::http_get(metrics, "/metrics").await.unwrap();
    let errors = text
        .lines()
        .find(|l| {
            l.starts_with(
                "rebac_authz_webhook_openfga_check_duration_seconds_count{result=\"error\"}",
            )
        })
        .unwrap_or_else(|| panic!("no error count in\n{text}"));
    assert!(errors.ends_with(" 1"), "{errors}");
    webhook.stop();
}

#[tokio::test]
async fn hostile_reviews_get_clear_answers() {
    let authz = AuthorizingKcp::shared().await;
    platform().await;
    let address = authz.webhook_address();
    let orgs = orgs_workspace().await;
    orgs_store_id(&orgs).await;
    // In the orgs workspace, whose store is known: every answer below is deterministic.
    let orgs_cluster = orgs.cluster.as_str();
    let mut many_groups = review(
        "alice",
        orgs_cluster,
        "list",
        "core.platform-mesh.io",
        "accounts",
        "",
    );
    many_groups["spec"]["groups"] = json!((0..10_000).map(|i| format!("g{i}")).collect::<Vec<_>>());
    let mut beta = review(
        "alice",
        orgs_cluster,
        "list",
        "core.platform-mesh.io",
        "accounts",
        "",
    );
    beta["apiVersion"] = json!("authorization.k8s.io/v1beta1");
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "empty",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "the body is empty",
        ),
        (
            "not json",
            b"{{{".to_vec(),
            StatusCode::BAD_REQUEST,
            "the body is not JSON",
        ),
        (
            "wrong kind",
            br#"{"apiVersion":"authorization.k8s.io/v1","kind":"TokenReview"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "kind \"TokenReview\"",
        ),
        (
            "over 1 MiB",
            vec![b' '; (1 << 20) + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is over 1048576 bytes",
        ),
    ];
    for (what, body, status, message) in cases {
        let (got, text) = post(address, "/authz", &body).await;
        assert_eq!(got, status, "{what}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["status"]["allowed"], false, "{what}");
        let error = answer["status"]["evaluationError"].as_str().unwrap();
        assert!(error.starts_with(message), "{what}: {error}");
    }
    let (got, _) = post(address, "/authz", &vec![b' '; 8 << 20]).await;
    assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE);

    for (what, question, reason) in [
        (
            "missing cluster",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                   "spec": {"user": "alice", "resourceAttributes": {"verb": "get"}}}),
            "the review has no extra",
        ),
        (
            "wrong cluster key",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                   "spec": {"user": "alice", "extra": {"cluster": ["x"]},
                            "resourceAttributes": {"verb": "get"}}}),
            "the review has no extra",
        ),
        (
            "absurd user",
            review(
                &"ü".repeat(100_000),
                orgs_cluster,
                "get",
                "",
                "configmaps",
                "x",
            ),
            "over OpenFGA's limit of 512",
        ),
        (
            "whitespace and unicode",
            review("ålice smith", orgs_cluster, "get", "", "configmaps", "x"),
            "contains whitespace",
        ),
        (
            "10,000 groups",
            many_groups,
            "the orgs store does not allow it",
        ),
        ("v1beta1", beta.clone(), "the orgs store does not allow it"),
    ] {
        let (allowed, denied, got) = ask(address, &question).await;
        assert!(!allowed && !denied, "{what}");
        assert!(got.contains(reason), "{what}: {got}");
    }
    let (_, text) = post(address, "/authz", &serde_json::to_vec(&beta).unwrap()).await;
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["apiVersion"], "authorization.k8s.io/v1beta1");
}

/// The OpenFGA store ID of the `orgs` Store, once the security-operator made it.
async fn orgs_store_id(orgs: &TestWorkspace) -> String {
    store_id(orgs, "orgs").await
}

/// The OpenFGA store ID of Store `name` in root:orgs.
async fn store_id(orgs: &TestWorkspace, name: &str) -> String {
    wait_for(&Api::<Store>::all(orgs.client()), name, "a store id", |s| {
        s.status.as_ref().is_some_and(|s| s.store_id.is_some())
    })
    .await
    .status
    .unwrap()
    .store_id
    .unwrap()
}

#[tokio::test]
async fn a_batch_answers_many_questions_for_one_user() {
    let authz = AuthorizingKcp::shared().await;
    let orgs = orgs_workspace().await;
    let (acme, team) = acme_with_team(&orgs).await;
    let question = |workspace: &kcp::ClusterPath, verb: &str, name: &str| BatchQuestion {
        workspace: workspace.to_string(),
        verb: verb.into(),
        group: "core.platform-mesh.io".into(),
        resource: "accounts".into(),
        name: name.into(),
        ..BatchQuestion::default()
    };
    let batch = BatchRequest {
        user: "alice".into(),
        groups: Vec::new(),
        questions: vec![
            question(&team.path, "list", ""),
            question(&team.path, "create", ""),
            question(&acme.path, "delete", "team"),
            question(&"root:orgs:nowhere".parse().unwrap(), "list", ""),
            BatchQuestion {
                workspace: "not a path".into(),
                ..question(&team.path, "list", "")
            },
        ],
    };
    let mut answers = Vec::new();
    // The webhook may not have engaged the new workspaces yet.
    for _ in 0..50 {
        let body = serde_json::to_vec(&batch).unwrap();
        let (status, text) = post(authz.webhook_address(), "/authz/batch", &body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        answers = serde_json::from_str::<BatchResponse>(&text)
            .unwrap()
            .answers;
        if answers[..3].iter().all(|a| a.allowed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let allowed: Vec<bool> = answers.iter().map(|a| a.allowed).collect();
    assert_eq!(allowed, [true, true, true, false, false], "{answers:#?}");
    assert!(
        answers[3].reason.contains("is not known"),
        "{}",
        answers[3].reason
    );
    assert!(
        answers[4].reason.contains("not a path"),
        "{}",
        answers[4].reason
    );

    let bob = BatchRequest {
        user: "bob".into(),
        ..batch
    };
    let (_, text) = post(
        authz.webhook_address(),
        "/authz/batch",
        &serde_json::to_vec(&bob).unwrap(),
    )
    .await;
    let answers = serde_json::from_str::<BatchResponse>(&text)
        .unwrap()
        .answers;
    assert!(answers.iter().all(|a| !a.allowed), "{answers:#?}");
}
