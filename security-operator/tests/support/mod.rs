//! The platform the security-operator scenarios run on: real kcp and OpenFGA, set up by the
//! platform-mesh-operator (the WorkspaceTypes with the `root:security` initializer and
//! terminator, the exports, `root:orgs`), the account-operator in-process and the
//! security-operator binary as a child process, once per test binary.

#![allow(clippy::unwrap_used, dead_code)] // each test binary uses part of it

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Parser;
use crds::Store;
use fga::sync::{SyncOptions, read_tuples};
use harness::{Kcp, OpenFga, ServerProcess, TestWorkspace, wait_for};
use kube::api::Api;
use openfga_client::client::{CheckRequest, CheckRequestTupleKey};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// The platform, as plain data: clients belong to the runtime that made them, and every test
/// has its own.
pub struct Platform {
    pub orgs_path: kcp::ClusterPath,
    pub orgs_cluster: kcp::ClusterName,
    pub kubeconfig: PathBuf,
    /// The account-operator's kubeconfig, as the platform-mesh-operator wrote it.
    pub accounts_kubeconfig: PathBuf,
    pub fga_target: String,
}

impl Platform {
    /// `root:orgs`, with clients for the calling test.
    pub async fn orgs(&self) -> TestWorkspace {
        self.orgs_on(Kcp::shared().await).await
    }

    /// `root:orgs` of a platform set up on `kcp` ([`set_up_on`]).
    pub async fn orgs_on(&self, kcp: &Kcp) -> TestWorkspace {
        TestWorkspace {
            factory: kcp.admin().await,
            path: self.orgs_path.clone(),
            cluster: self.orgs_cluster.clone(),
        }
    }
}

/// The security-operator's flags for the test platform, every role in one process, its
/// probes on `health_port`.
pub fn security_args(kubeconfig: &Path, fga_target: &str, health_port: u16) -> Vec<String> {
    vec![
        "fga,initializer,terminator,model-generator,system".into(),
        format!("--kubeconfig={}", kubeconfig.display()),
        format!("--fga-target={fga_target}"),
        "--metrics-bind-address=127.0.0.1:0".into(),
        format!("--health-probe-bind-address=127.0.0.1:{health_port}"),
        "--no-json".into(),
    ]
}

/// Waits until the operator answers `/readyz` with 200; fails with its log if it exits.
pub async fn until_ready(operator: &ServerProcess, health_port: u16) {
    loop {
        if operator.exited() {
            panic!("the security-operator exited:\n{}", operator.log_tail(20));
        }
        if harness::http_get(health_port, "/readyz")
            .await
            .is_some_and(|(code, _)| code == 200)
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The security-operator binary (see [`harness::binary`]).
pub fn binary() -> PathBuf {
    harness::binary(
        "security-operator",
        option_env!("CARGO_BIN_EXE_security-operator"),
    )
}

/// Starts the security-operator binary under the harness's watchdog (it cannot outlive the
/// test binary), logging to `<state_dir>/<name>.log`.
pub fn start_security_operator(name: &str, args: &[String], state_dir: &Path) -> ServerProcess {
    ServerProcess::start(name, &binary(), args, state_dir, false).unwrap()
}

/// The platform-mesh-operator's test support: a hosting workspace and the operator.
#[path = "../../../platform-mesh-operator/tests/support/mod.rs"]
mod platform_mesh;

/// The platform, set up on first use by the real platform-mesh-operator from one
/// PlatformMesh, with the account-operator running in-process on the kubeconfig it wrote;
/// the security-operator is the caller's to start (see [`platform`]), on its kubeconfig.
pub async fn base() -> &'static Platform {
    static BASE: OnceCell<Platform> = OnceCell::const_new();
    BASE.get_or_init(|| async {
        let platform = set_up().await;
        platform.run_account_operator();
        platform
    })
    .await
}

/// The platform set up by the real platform-mesh-operator from one PlatformMesh, with no
/// operator of the suite running: a scenario that kills them starts its own.
pub async fn set_up() -> Platform {
    set_up_on(Kcp::shared().await).await
}

/// [`set_up`] on `kcp` (one a test started itself) instead of the shared one.
pub async fn set_up_on(kcp: &Kcp) -> Platform {
    const NS: &str = "platform-mesh-system";
    const LABEL: &str = "security-operator-tests";
    let openfga = OpenFga::shared().await;
    let host = platform_mesh::Host::on(kcp).await;
    host.namespace(NS).await;
    platform_mesh::start_operator(
        &host,
        kcp.kubeconfig(),
        LABEL,
        &[
            "--no-account-operator-webhooks".to_owned(),
            "--subroutines-authorization-webhook-enabled=false".to_owned(),
        ],
    );
    let pms = host.platform_meshes(NS);
    pms.create(
        &kube::api::PostParams::default(),
        &platform_mesh::platform_mesh("platform", LABEL, serde_json::json!({})),
    )
    .await
    .unwrap();
    wait_for(&pms, "platform", "Ready", |pm| {
        platform_mesh::condition(pm, "Ready").is_some_and(|(status, _, _)| status == "True")
    })
    .await;
    let accounts_kubeconfig = host
        .kubeconfig_file(NS, "account-operator-kubeconfig")
        .await;
    let kubeconfig = host
        .kubeconfig_file(NS, "security-operator-kubeconfig")
        .await;
    let orgs = platform_mesh::orgs(&kcp.admin().await).await;
    Platform {
        orgs_path: orgs.path,
        orgs_cluster: orgs.cluster,
        kubeconfig,
        accounts_kubeconfig,
        fga_target: openfga.grpc_endpoint(),
    }
}

impl Platform {
    /// Runs the account-operator in-process on the kubeconfig the platform-mesh-operator wrote
    /// for it, for the rest of the test binary's life.
    pub fn run_account_operator(&self) {
        run_account_operator(&self.accounts_kubeconfig);
    }

    /// Starts a security-operator named `name` on this platform and waits until it is ready.
    pub async fn start_operator(&self, name: &str) -> ServerProcess {
        self.start_operator_with(name, &[]).await
    }

    /// [`Platform::start_operator`] with `extra` flags.
    pub async fn start_operator_with(&self, name: &str, extra: &[&str]) -> ServerProcess {
        let health_port = harness::free_port();
        let mut args = security_args(&self.kubeconfig, &self.fga_target, health_port);
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let operator = start_security_operator(name, &args, self.kubeconfig.parent().unwrap());
        until_ready(&operator, health_port).await;
        operator
    }
}

/// Runs the account-operator in-process on `kubeconfig`, for the rest of the test binary's
/// life.
pub fn run_account_operator(kubeconfig: &Path) {
    let config = account_operator::config::Config::try_parse_from([
        "account-operator".to_owned(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--metrics-bind-address=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
    ])
    .unwrap();
    harness::run_detached(move || async move {
        account_operator::app::run(config, CancellationToken::new())
            .await
            .unwrap();
    });
}

/// The platform with both operators running, set up on first use.
pub async fn platform() -> &'static Platform {
    static PLATFORM: OnceCell<()> = OnceCell::const_new();
    let platform = base().await;
    PLATFORM
        .get_or_init(|| async {
            // Kept for the test binary's lifetime; the watchdog stops it when the binary exits.
            std::mem::forget(platform.start_operator("security-operator").await);
        })
        .await;
    platform
}

/// Creates an Account in `parent` and waits for it to be Ready; returns its workspace.
pub async fn ready_account(
    parent: &TestWorkspace,
    name: &str,
    account_type: &str,
    creator: &str,
) -> TestWorkspace {
    harness::ready_account(parent, name, account_type, creator)
        .await
        .1
}

/// The OpenFGA store id of organisation `org`'s Store.
pub async fn store_id(orgs: &TestWorkspace, org: &str) -> String {
    let stores: Api<Store> = Api::all(orgs.client());
    let store = wait_for(&stores, org, "a store id", |s| {
        s.status.as_ref().is_some_and(|s| s.store_id.is_some())
    })
    .await;
    store.status.unwrap().store_id.unwrap()
}

/// Every tuple of a store, as `object#relation@user`.
pub async fn tuples(store_id: &str) -> BTreeSet<String> {
    let mut client = OpenFga::shared().await.client().await;
    read_tuples(&mut client, store_id, None, &SyncOptions::default())
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// OpenFGA's answer to "has `user` `relation` on `object`".
pub async fn check(store_id: &str, user: &str, relation: &str, object: &str) -> bool {
    let mut client = OpenFga::shared().await.client().await;
    client
        .check(CheckRequest {
            store_id: store_id.to_owned(),
            tuple_key: Some(CheckRequestTupleKey {
                user: user.to_owned(),
                relation: relation.to_owned(),
                object: object.to_owned(),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .allowed
}
