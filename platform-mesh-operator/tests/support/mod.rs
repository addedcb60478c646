//! The platform-mesh-operator's end-to-end scenarios run on a fresh kcp (this test binary's
//! own) and OpenFGA. A kcp workspace stands in for the hosting cluster: it serves CRDs,
//! namespaces and Secrets as a Kubernetes cluster does.

#![allow(clippy::unwrap_used, dead_code)] // each test binary uses part of it

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use crds::PlatformMesh;
use harness::{Kcp, TestWorkspace};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use kube::{CustomResourceExt, ResourceExt};
use tokio_util::sync::CancellationToken;

/// The hosting cluster: a workspace with the PlatformMesh CRD, and a kubeconfig for it.
pub struct Host {
    pub workspace: TestWorkspace,
    pub kubeconfig: PathBuf,
    state_dir: PathBuf,
}

impl Host {
    /// A fresh hosting workspace in this test binary's kcp.
    pub async fn new() -> Host {
        Self::on(Kcp::shared().await).await
    }

    /// A fresh hosting workspace in `kcp` with the PlatformMesh CRD installed.
    pub async fn on(kcp: &Kcp) -> Host {
        let workspace = kcp.private_workspace("hosting").await;
        let crds: Api<CustomResourceDefinition> = Api::all(workspace.client());
        crds.patch(
            &PlatformMesh::crd().name_any(),
            &PatchParams::apply("tests").force(),
            &Patch::Apply(PlatformMesh::crd()),
        )
        .await
        .unwrap();
        let served: Api<PlatformMesh> = Api::all(workspace.client());
        let list = kube::api::ListParams::default();
        harness::when_served(|| served.list(&list)).await.unwrap();
        // One file per host: tests run side by side.
        let kubeconfig = kcp.pointed_kubeconfig(&workspace.path, workspace.path.base());
        Host {
            workspace,
            kubeconfig,
            state_dir: kcp.state_dir().to_owned(),
        }
    }

    /// Creates `namespace`.
    pub async fn namespace(&self, namespace: &str) {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.workspace.client())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }

    pub fn secrets(&self, namespace: &str) -> Api<Secret> {
        Api::namespaced(self.workspace.client(), namespace)
    }

    pub fn platform_meshes(&self, namespace: &str) -> Api<PlatformMesh> {
        Api::namespaced(self.workspace.client(), namespace)
    }

    /// Writes Secret `name` with `ca.crt` = `pem` (a certificate's Secret, as cert-manager
    /// makes it).
    pub async fn ca_secret(&self, namespace: &str, name: &str, pem: &str) {
        self.secrets(namespace)
            .patch(
                name,
                &PatchParams::apply("tests").force(),
                &Patch::Apply(&harness::ca_secret(name, pem)),
            )
            .await
            .unwrap();
    }

    /// The kubeconfig Secret `name`'s content written to a file, for a component to use.
    pub async fn kubeconfig_file(&self, namespace: &str, name: &str) -> PathBuf {
        let secret = self.secrets(namespace).get(name).await.unwrap();
        let text = secret.data.unwrap().remove("kubeconfig").unwrap();
        let path = self
            .state_dir
            .join(format!("{namespace}-{name}.kubeconfig"));
        std::fs::write(&path, text.0).unwrap();
        path
    }
}

/// kcp's admin kubeconfig with every server replaced by `server` (a kcp that is not there).
pub fn unreachable_kubeconfig(kcp: &Kcp, server: &str) -> PathBuf {
    let text = std::fs::read_to_string(kcp.kubeconfig()).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        match line.split_once("server: ") {
            Some((indent, _)) => out.push_str(&format!("{indent}server: {server}\n")),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    let file = kcp.state_dir().join("unreachable.kubeconfig");
    std::fs::write(&file, out).unwrap();
    file
}

/// A self-signed serving certificate for 127.0.0.1 in `dir` (`tls.crt`, `tls.key`); returns
/// its PEM (its own CA).
pub fn serving_cert(dir: &Path) -> String {
    harness::serving_cert(dir).unwrap()
}

/// A platform-mesh-operator running in this test binary until it exits, reconciling the
/// PlatformMeshes labelled `debug.platform-mesh.io=<label>`; returns its metrics address.
pub fn start_operator(host: &Host, kcp_kubeconfig: &Path, label: &str, extra: &[String]) -> u16 {
    start_operator_until(host, kcp_kubeconfig, label, extra, CancellationToken::new())
}

/// [`start_operator`], stopped when `stop` is cancelled.
pub fn start_operator_until(
    host: &Host,
    kcp_kubeconfig: &Path,
    label: &str,
    extra: &[String],
    stop: CancellationToken,
) -> u16 {
    let metrics = harness::free_port();
    let mut args = vec![
        "platform-mesh-operator".to_owned(),
        "operator".to_owned(),
        format!("--kubeconfig={}", host.kubeconfig.display()),
        "--kubeconfig-context=root".to_owned(),
        format!("--kcp-kubeconfig={}", kcp_kubeconfig.display()),
        "--kcp-kubeconfig-context=root".to_owned(),
        format!("--debug-label-value={label}"),
        format!("--metrics-bind-address=127.0.0.1:{metrics}"),
        "--health-probe-bind-address=127.0.0.1:0".to_owned(),
    ];
    args.extend(extra.iter().cloned());
    let config = platform_mesh_operator::config::Config::try_parse_from(args).unwrap();
    harness::run_detached(move || async move {
        platform_mesh_operator::app::run(config, stop)
            .await
            .unwrap();
    });
    metrics
}

/// A hosting workspace with `namespace`, and an operator on it for PlatformMeshes labelled
/// `label` that leaves the kcp tree alone (another test's) and writes no webhook kubeconfig:
/// for scenarios about provider kubeconfigs and HelmReleases.
pub async fn host_without_setup(namespace: &str, label: &str, extra: &[&str]) -> Host {
    let host = Host::new().await;
    host.namespace(namespace).await;
    let mut flags = vec![
        "--subroutines-kcp-setup-enabled=false".to_owned(),
        "--subroutines-authorization-webhook-enabled=false".to_owned(),
    ];
    flags.extend(extra.iter().map(|f| (*f).to_owned()));
    start_operator(&host, Kcp::shared().await.kubeconfig(), label, &flags);
    host
}

/// The account-operator's admission webhooks: its port and certificate directory.
pub struct AccountWebhooks {
    pub port: u16,
    pub cert_dir: PathBuf,
}

/// Starts the account-operator and the security-operator in this process with the
/// kubeconfigs the platform-mesh-operator wrote in `namespace`, until `stop` is cancelled.
pub async fn start_suite(
    host: &Host,
    namespace: &str,
    fga_target: &str,
    webhooks: Option<&AccountWebhooks>,
    stop: &CancellationToken,
) {
    let accounts_kubeconfig = host
        .kubeconfig_file(namespace, "account-operator-kubeconfig")
        .await;
    let security_kubeconfig = host
        .kubeconfig_file(namespace, "security-operator-kubeconfig")
        .await;
    let mut account_args = vec![
        "account-operator".to_owned(),
        format!("--kubeconfig={}", accounts_kubeconfig.display()),
        "--metrics-bind-address=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
    ];
    if let Some(webhooks) = webhooks {
        account_args.extend([
            "--webhooks-enabled".into(),
            format!("--webhooks-port={}", webhooks.port),
            format!("--webhooks-cert-dir={}", webhooks.cert_dir.display()),
            "--webhooks-additional-account-types=account".into(),
            // kcp may or may not call the webhook yet (it activates within 90 s); either way
            // the creator stays the one the Account names.
            "--webhooks-creator-only-when-empty".into(),
        ]);
    }
    let accounts = account_operator::config::Config::try_parse_from(account_args).unwrap();
    let security = security_operator::config::Config::try_parse_from([
        "security-operator".to_owned(),
        "fga,initializer,terminator,system".into(),
        format!("--kubeconfig={}", security_kubeconfig.display()),
        "--metrics-bind-address=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
        format!("--fga-target={fga_target}"),
    ])
    .unwrap();
    let stop_accounts = stop.clone();
    harness::run_detached(move || async move {
        account_operator::app::run(accounts, stop_accounts)
            .await
            .unwrap();
    });
    let stop_security = stop.clone();
    harness::run_detached(move || async move {
        security_operator::app::run(security, stop_security)
            .await
            .unwrap();
    });
}

/// `root:orgs`, with clients from `factory`.
pub async fn orgs(factory: &kcp::ClientFactory) -> TestWorkspace {
    let root = factory.for_path(&kcp::ClusterPath::root()).unwrap();
    let cluster = Api::<kcp::types::tenancy::Workspace>::all(root)
        .get("orgs")
        .await
        .unwrap()
        .spec
        .cluster
        .unwrap();
    TestWorkspace {
        factory: factory.clone(),
        path: "root:orgs".parse().unwrap(),
        cluster: cluster.parse().unwrap(),
    }
}

/// A PlatformMesh `name` for the operator started with `label`.
pub fn platform_mesh(name: &str, label: &str, spec: serde_json::Value) -> PlatformMesh {
    let pm: PlatformMesh = serde_json::from_value(serde_json::json!({
        "apiVersion": "core.platform-mesh.io/v1alpha1",
        "kind": "PlatformMesh",
        "metadata": {"name": name, "labels": {"debug.platform-mesh.io": label}},
        "spec": spec,
    }))
    .unwrap();
    pm
}

/// The condition `type_` of `pm`, as (status, reason, message).
pub fn condition(pm: &PlatformMesh, type_: &str) -> Option<(String, String, String)> {
    pm.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The sum of one metric's samples whose labels contain every `labels` pair, from the
/// operator's `/metrics`.
pub async fn metric(port: u16, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (_, body) = harness::http_get(port, "/metrics").await.unwrap();
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Write requests the operator sent (every kubeconfig), by counting its client.
pub async fn writes(port: u16) -> f64 {
    let mut sum = 0.0;
    for verb in ["create", "update", "patch", "delete", "deletecollection"] {
        sum += metric(
            port,
            "platform_mesh_client_requests_total",
            &[("verb", verb)],
        )
        .await;
    }
    sum
}

/// Read requests the operator sent to kcp.
pub async fn kcp_reads(port: u16) -> f64 {
    let mut sum = 0.0;
    for verb in ["get", "list"] {
        sum += metric(
            port,
            "platform_mesh_client_requests_total",
            &[("kubeconfig", "--kcp-kubeconfig"), ("verb", verb)],
        )
        .await;
    }
    sum
}

/// Reconciles of PlatformMeshes the operator finished.
pub async fn reconciles(port: u16) -> f64 {
    metric(
        port,
        "controller_runtime_reconcile_total",
        &[("controller", "PlatformMeshReconciler")],
    )
    .await
}

/// The address of a free loopback port, for a server started later.
pub fn free_address() -> SocketAddr {
    ([127, 0, 0, 1], harness::free_port()).into()
}
