//! The account-operator binary killed with SIGKILL in the middle of creating 50 accounts
//! converges after a restart, with no duplicate or orphan workspace.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod operator;
mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use crds::Account;
use harness::is_ready;
use harness::{Kcp, wait_for};
use kcp::types::tenancy::Workspace;
use kube::ResourceExt;
use kube::api::Api;
use operator::Operator;
use support::{create_accounts, ready_account};

#[tokio::test]
async fn a_killed_operator_converges_after_restart_without_duplicates_or_orphans() {
    let kcp = Kcp::shared().await;
    let (orgs, kubeconfig) = support::set_up(kcp).await;
    let log = kubeconfig.with_file_name("account-operator.log");
    let operator = Operator::start(&kubeconfig, &log);

    let (_, org_ws) = ready_account(&orgs, "killme", "org").await;
    let accounts: Api<Account> = Api::all(org_ws.client());
    let workspaces: Api<Workspace> = Api::all(org_ws.client());
    let names: Vec<String> = (0..50).map(|i| format!("acc{i}")).collect();
    create_accounts(&accounts, &names).await;

    // Kill it once it is well into the work, with workspaces half made.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let made = workspaces
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len();
        if made >= 10 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress before the kill"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    operator.kill();
    let ready_at_kill = accounts
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|a| is_ready(a))
        .count();
    eprintln!("killed with {ready_at_kill} of 50 accounts Ready");

    let _operator = Operator::start(&kubeconfig, &log.with_extension("restarted.log"));
    for name in &names {
        wait_for(&accounts, name, "Ready", is_ready).await;
    }

    // Exactly one workspace per account, each owned by its account.
    let listed = workspaces.list(&Default::default()).await.unwrap().items;
    let account_uids: std::collections::BTreeMap<String, String> = accounts
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|a| (a.name_any(), a.uid().unwrap()))
        .collect();
    let workspace_names: BTreeSet<String> = listed.iter().map(ResourceExt::name_any).collect();
    let expected: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(workspace_names, expected, "no orphan or missing workspace");
    for ws in &listed {
        let owners: Vec<String> = ws
            .owner_references()
            .iter()
            .map(|o| o.uid.clone())
            .collect();
        assert_eq!(
            owners,
            [account_uids[&ws.name_any()].clone()],
            "{} has one owner",
            ws.name_any()
        );
    }
}
