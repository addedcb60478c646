//! The platform the account-operator scenarios run on, shared by the test binaries.

#![allow(clippy::unwrap_used, dead_code)] // each test binary uses part of it

use account_operator::config::Config;
use clap::Parser;
use crds::Account;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use harness::{Kcp, TestWorkspace};
use kube::api::Api;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// The test platform without the security initializer: see [`harness::set_up_platform`].
pub async fn set_up(kcp: &Kcp) -> (TestWorkspace, std::path::PathBuf) {
    harness::set_up_platform(kcp, false, "account-operator.kubeconfig").await
}

/// The operator's flags for the test platform.
pub fn operator_args(kubeconfig: &std::path::Path) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--kubeconfig-context=root".into(),
        "--metrics-bind-address=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
        "--no-json".into(),
    ]
}

/// An Account created by alice.
pub fn new_account(name: &str, account_type: &str) -> Account {
    harness::new_account(name, account_type, CREATOR)
}

/// The creator of every Account these scenarios make.
pub const CREATOR: &str = "alice@example.com";

/// Creates Accounts of type `account` named `names`, all at once.
pub async fn create_accounts(accounts: &Api<Account>, names: &[String]) {
    harness::create_accounts(accounts, names, "account", CREATOR).await;
}

/// Creates an Account in `parent` and waits for it to be Ready; returns it and its workspace.
pub async fn ready_account(
    parent: &TestWorkspace,
    name: &str,
    account_type: &str,
) -> (Account, TestWorkspace) {
    harness::ready_account(parent, name, account_type, CREATOR).await
}

pub async fn account_info(ws: &TestWorkspace) -> AccountInfo {
    Api::<AccountInfo>::all(ws.client())
        .get(ACCOUNT_INFO_NAME)
        .await
        .unwrap()
}

/// The test platform, with an account-operator running in-process, once per test binary.
/// Only plain data is kept: clients belong to the Tokio runtime that made them, and every
/// test has its own runtime, so each test builds its clients itself.
pub struct Platform {
    pub orgs_path: kcp::ClusterPath,
    pub orgs_cluster: kcp::ClusterName,
}

impl Platform {
    /// `root:orgs`, with clients for the calling test.
    pub async fn orgs(&self) -> TestWorkspace {
        TestWorkspace {
            factory: Kcp::shared().await.admin().await,
            path: self.orgs_path.clone(),
            cluster: self.orgs_cluster.clone(),
        }
    }
}

pub async fn platform() -> &'static Platform {
    static PLATFORM: OnceCell<Platform> = OnceCell::const_new();
    PLATFORM
        .get_or_init(|| async {
            let kcp = Kcp::shared().await;
            let (orgs, kubeconfig) = set_up(kcp).await;
            let mut args = vec!["account-operator".to_owned()];
            args.extend(operator_args(&kubeconfig));
            let config = Config::try_parse_from(args).unwrap();
            harness::run_detached(move || async move {
                account_operator::app::run(config, CancellationToken::new())
                    .await
                    .unwrap();
            });
            Platform {
                orgs_path: orgs.path,
                orgs_cluster: orgs.cluster,
            }
        })
        .await
}
