//! Least privilege (issue 14): the platform-mesh-operator runs as a plain user of its own
//! with a client certificate (not `system:masters`, no admin token), bound to `cluster-admin`
//! in `root` and nowhere else. On a fresh kcp that is enough: kcp makes the creator of a
//! workspace its `workspace-admin`, so the operator is admin of `root:platform-mesh-system`,
//! `root:orgs` and `root:providers` because it creates them. The PlatformMesh becomes Ready,
//! and the account-operator and security-operator, started with the kubeconfigs it wrote
//! (whose admin connections carry the same user's certificate), turn an org Ready.
//!
//! Without the binding in `root`, the PlatformMesh's condition names kcp's 403. And a second
//! user with the same binding, on the tree the first one made, is not admin of the workspaces
//! it did not create: it fails on its first read in `root:platform-mesh-system`, then, bound
//! there too, on its first read in `root:orgs`, and works once bound in both.
//!
//! It starts a kcp that trusts the test's client CA, so it runs in its own test binary.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use crds::{PlatformMesh, Store};
use harness::scoped::{CertificateUser, ClientCa, kcp_trusting};
use harness::{Kcp, OpenFga, SYSTEM_PATH, TestWorkspace, wait_for};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kcp::ClusterPath;
use kcp::types::apis::ApiResourceSchema;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use support::{AccountWebhooks, Host, condition, platform_mesh, start_operator_until, start_suite};
use tokio_util::sync::CancellationToken;

fn is_ready(pm: &PlatformMesh) -> bool {
    condition(pm, "Ready").is_some_and(|(status, _, _)| status == "True")
}

/// The workspaces the operator creates in `root`.
fn tree() -> [ClusterPath; 3] {
    [SYSTEM_PATH, "root:orgs", "root:providers"].map(|path| path.parse().unwrap())
}

/// Binds user `name` to the ClusterRole `cluster-admin` in `workspace`, as kcp's admin.
async fn bind_cluster_admin(kcp: &Kcp, name: &str, workspace: &ClusterPath) {
    let client = kcp.admin().await.for_path(workspace).unwrap();
    let binding_name = format!("{name}-cluster-admin");
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(binding_name.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: "cluster-admin".to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "User".to_owned(),
            name: name.to_owned(),
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            namespace: None,
        }]),
    };
    Api::<ClusterRoleBinding>::all(client)
        .patch(
            &binding_name,
            &PatchParams::apply("platform-mesh-rs-tests").force(),
            &Patch::Apply(&binding),
        )
        .await
        .unwrap();
}

/// An operator running in this process as user `user` (its PlatformMeshes labelled and in
/// namespace `namespace`), with the PlatformMesh `platform` created for it.
struct Running {
    user: String,
    namespace: String,
    platform_meshes: Api<PlatformMesh>,
    /// Stops the operator.
    stop: CancellationToken,
}

/// The kcp, the hosting cluster, and what every operator here is started with.
struct Fixture {
    kcp: Kcp,
    host: Host,
    ca: ClientCa,
    /// Where the account-operator's admission webhooks are served.
    webhooks: AccountWebhooks,
    /// The CA of the webhooks' serving certificate.
    serving_ca: String,
}

impl Fixture {
    /// Starts an operator as user `user`, bound to `cluster-admin` in `root` when
    /// `bound_in_root`, and creates its PlatformMesh in `namespace`, with the CA Secrets
    /// there as cert-manager would write them.
    async fn start(&self, user: &str, namespace: &str, bound_in_root: bool) -> Running {
        let (kcp, host) = (&self.kcp, &self.host);
        host.namespace(namespace).await;
        for secret in [
            "account-operator-webhook-server-cert",
            "rebac-authz-webhook-cert",
        ] {
            host.ca_secret(namespace, secret, &self.serving_ca).await;
        }
        if bound_in_root {
            bind_cluster_admin(kcp, user, &ClusterPath::root()).await;
        }
        let kubeconfig =
            CertificateUser::new(&self.ca, user).kubeconfig(kcp, &ClusterPath::root(), "root");
        let stop = CancellationToken::new();
        start_operator_until(
            host,
            &kubeconfig,
            namespace,
            &[
                format!(
                    "--account-operator-webhook-url=https://127.0.0.1:{}",
                    self.webhooks.port
                ),
                "--authorization-webhook-url=https://127.0.0.1:9443/authz".to_owned(),
            ],
            stop.clone(),
        );
        let platform_meshes = host.platform_meshes(namespace);
        platform_meshes
            .create(
                &PostParams::default(),
                &platform_mesh("platform", namespace, serde_json::json!({})),
            )
            .await
            .unwrap();
        Running {
            user: user.to_owned(),
            namespace: namespace.to_owned(),
            platform_meshes,
            stop,
        }
    }
}

impl Running {
    async fn ready(&self) -> PlatformMesh {
        wait_for(&self.platform_meshes, "platform", "Ready", is_ready).await
    }

    /// Waits until the kcp setup fails with a 403; returns the condition's message, after
    /// checking that `Ready` says the same.
    async fn forbidden(&self) -> String {
        let pm = wait_for(&self.platform_meshes, "platform", "refused by kcp", |pm| {
            condition(pm, "KcpsetupSubroutine")
                .is_some_and(|(status, _, message)| status == "False" && message.contains("403"))
        })
        .await;
        let (_, reason, message) = condition(&pm, "KcpsetupSubroutine").unwrap();
        assert_eq!(reason, "Error");
        assert_eq!(
            condition(&pm, "Ready"),
            Some((
                "False".to_owned(),
                "Error".to_owned(),
                format!("KcpsetupSubroutine process failed: {message}")
            ))
        );
        eprintln!("least-privilege: {}: {message}", self.user);
        message
    }
}

/// Asserts that `message` is the condition of a failed read: `what`, kcp's 403 to `user`
/// for `verb` on `resource` (named `name`) in `group`, kube's rendering of the Status, and
/// that it is retried.
fn assert_forbidden(message: &str, what: &str, user: &str, resource: &str, name: &str) {
    let start = format!(
        "{what}: ApiError: {resource}.apis.kcp.io \"{name}\" is forbidden: User \"{user}\" \
         cannot get resource \"{resource}\" in API group \"apis.kcp.io\" at the cluster scope: \
         access denied: Forbidden (Status {{ "
    );
    assert!(message.starts_with(&start), "{message}\nexpected:\n{start}");
    assert!(message.ends_with(" }) (will retry)"), "{message}");
}

fn secs(since: Instant) -> String {
    format!("{:.1} s", since.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_works_as_a_user_bound_to_cluster_admin_in_root() {
    let started = Instant::now();
    let ca = ClientCa::new();
    let kcp = kcp_trusting(&ca).await;
    let host = Host::on(&kcp).await;
    let cert_dir: PathBuf = kcp.state_dir().join("account-operator-certs");
    let serving_ca = support::serving_cert(&cert_dir);
    // The account-operator serves its admission webhooks only once the PlatformMesh is
    // Ready; until then the port is held here, so that no server started meanwhile takes it.
    let reserved = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let webhooks = AccountWebhooks {
        port: reserved.local_addr().unwrap().port(),
        cert_dir,
    };
    let fixture = Fixture {
        kcp,
        host,
        ca,
        webhooks,
        serving_ca,
    };
    let (kcp, host) = (&fixture.kcp, &fixture.host);
    eprintln!("least-privilege: kcp up after {}", secs(started));

    // (a) cluster-admin in root only, and (b) no binding at all, side by side.
    let step = Instant::now();
    let operator = fixture
        .start("platform-mesh-operator", "pm-user", true)
        .await;
    let unbound = fixture
        .start("platform-mesh-operator-unbound", "pm-unbound", false)
        .await;

    // (a) The whole tree, every step True.
    let pm = operator.ready().await;
    eprintln!("least-privilege: PlatformMesh Ready after {}", secs(step));
    let expect = |status: &str, reason: &str, message: &str| {
        Some((status.to_owned(), reason.to_owned(), message.to_owned()))
    };
    for step in [
        "KcpsetupSubroutine",
        "ProvidersecretSubroutine",
        "AuthorizationwebhookSubroutine",
    ] {
        let completed = format!("{step} completed");
        assert_eq!(condition(&pm, step), expect("True", "Complete", &completed));
    }
    assert_eq!(
        condition(&pm, "DeploymentSubroutine"),
        expect(
            "True",
            "Skipped",
            "rendering HelmReleases is off (--subroutines-deployment-enabled=false)"
        )
    );
    assert_eq!(
        condition(&pm, "Ready"),
        expect("True", "Complete", "all subroutines completed successfully")
    );
    // It is admin of the workspaces it made because kcp made it their workspace-admin.
    let admin = kcp.admin().await;
    for path in tree() {
        let binding: ClusterRoleBinding = Api::all(admin.for_path(&path).unwrap())
            .get("workspace-admin")
            .await
            .unwrap();
        let subjects: Vec<String> = binding
            .subjects
            .unwrap_or_default()
            .into_iter()
            .map(|s| format!("{} {}", s.kind, s.name))
            .collect();
        assert_eq!(
            (binding.role_ref.name.as_str(), subjects),
            ("cluster-admin", vec![format!("User {}", operator.user)]),
            "{path}"
        );
    }
    // The admin connections carry its own certificate: the account-operator and the
    // security-operator run as the same user, and an org becomes Ready with its store.
    let written = host
        .kubeconfig_file(&operator.namespace, "account-operator-kubeconfig")
        .await;
    let written = kube::config::Kubeconfig::read_from(&written).unwrap();
    let auth = written.auth_infos[0].auth_info.as_ref().unwrap();
    assert!(auth.client_certificate_data.is_some() && auth.token.is_none());
    let openfga = OpenFga::shared().await;
    drop(reserved);
    start_suite(
        host,
        &operator.namespace,
        &openfga.grpc_endpoint(),
        Some(&fixture.webhooks),
        &CancellationToken::new(),
    )
    .await;
    let orgs: TestWorkspace = support::orgs(&admin).await;
    harness::ready_account(&orgs, "acme", "org", "alice").await;
    let store = wait_for(
        &Api::<Store>::all(orgs.client()),
        "acme",
        "with alice's tuples",
        |s| {
            s.status
                .as_ref()
                .is_some_and(|s| s.managed_tuples.iter().any(|t| t.user == "user:alice"))
        },
    )
    .await;
    assert!(store.status.unwrap().store_id.is_some());
    eprintln!(
        "least-privilege: the org Ready, as the same user, after {}",
        secs(step)
    );

    // (b) Without the binding in root: the first read in root is refused, and the
    // PlatformMesh says so.
    let message = unbound.forbidden().await;
    assert_forbidden(
        &message,
        "reading root's tenancy.kcp.io APIExport",
        &unbound.user,
        "apiexports",
        "tenancy.kcp.io",
    );

    // (c) The identity changes on an existing tree: another user, cluster-admin in root,
    // takes over the tree the first one made. It is not admin of root:platform-mesh-system,
    // and its first read there is refused.
    operator.stop.cancel();
    let step = Instant::now();
    let [system, orgs_path, _] = tree();
    let second = fixture
        .start("platform-mesh-operator-second", "pm-second", true)
        .await;
    let message = second.forbidden().await;
    let schema = message
        .strip_prefix(&format!("reading APIResourceSchema {SYSTEM_PATH}/"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(name, _)| name.to_owned())
        .unwrap_or_else(|| panic!("{message}"));
    let schemas: BTreeSet<String> = Api::<ApiResourceSchema>::all(admin.for_path(&system).unwrap())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.name_any())
        .collect();
    assert!(schemas.contains(&schema), "{schema} not in {schemas:?}");
    assert_forbidden(
        &message,
        &format!("reading APIResourceSchema {SYSTEM_PATH}/{schema}"),
        &second.user,
        "apiresourceschemas",
        &schema,
    );
    // cluster-admin in root:platform-mesh-system too: its next read, in root:orgs, is
    // refused.
    bind_cluster_admin(kcp, &second.user, &system).await;
    let pm = wait_for(&second.platform_meshes, "platform", "to move on", |pm| {
        condition(pm, "KcpsetupSubroutine").is_some_and(|(_, _, m)| m != message)
    })
    .await;
    let (status, reason, message) = condition(&pm, "KcpsetupSubroutine").unwrap();
    eprintln!("least-privilege: {}: {message}", second.user);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Error"));
    assert_forbidden(
        &message,
        "reading APIBinding root:orgs/core.platform-mesh.io",
        &second.user,
        "apibindings",
        "core.platform-mesh.io",
    );
    // And in root:orgs: Ready (root:providers, whose content it does not read, needs
    // nothing).
    bind_cluster_admin(kcp, &second.user, &orgs_path).await;
    second.ready().await;
    eprintln!(
        "least-privilege: a second user Ready, bound in {system} and {orgs_path} too, after {}",
        secs(step)
    );
    eprintln!("least-privilege: whole test {}", secs(started));
}
