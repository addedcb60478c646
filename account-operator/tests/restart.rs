//! The account-operator binary killed with SIGKILL twice, at a random point while 100 accounts
//! are created and again while 30 of them are deleted, converges after each restart: every
//! account Ready, every deleted one gone with its workspace, no duplicate or orphan workspace.
//! Each kill is shown to have landed mid-work: the operator is the only one who marks an
//! Account Ready or releases its finalizer, so what was left undone when it died stays undone
//! until it is back, and the test counts it.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod operator;
mod support;

use std::time::Duration;

use crds::Account;
use harness::{Kcp, is_ready, random_in, until_count, wait_for_within, wait_gone};
use kcp::types::tenancy::Workspace;
use kube::api::{Api, DeleteParams};
use operator::Operator;
use support::{create_accounts, ready_account};

const CREATED: usize = 100;
const DELETED: usize = 30;

#[tokio::test]
async fn a_killed_operator_converges_after_restart_without_duplicates_or_orphans() {
    let kcp = Kcp::shared().await;
    let (orgs, kubeconfig) = support::set_up(kcp).await;
    let log = kubeconfig.with_file_name("account-operator.log");
    let operator = Operator::start(&kubeconfig, &log);

    let (_, org_ws) = ready_account(&orgs, "killme", "org").await;
    let accounts: Api<Account> = Api::all(org_ws.client());
    let workspaces: Api<Workspace> = Api::all(org_ws.client());
    let names: Vec<String> = (0..CREATED).map(|i| format!("acc{i}")).collect();
    let listed = || async { accounts.list(&Default::default()).await.unwrap().items };
    let made = || async {
        workspaces
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len()
    };

    // 1. Killed while creating, once a random number of workspaces exist.
    let kill_at = random_in(5..=60);
    eprintln!("creating {CREATED} accounts; the kill comes at {kill_at} workspaces");
    create_accounts(&accounts, &names).await;
    until_count("workspaces", kill_at, Duration::from_secs(300), made).await;
    operator.kill();
    let ready_at_kill = listed().await.iter().filter(|a| is_ready(a)).count();
    eprintln!("killed with {ready_at_kill} of {CREATED} accounts Ready");
    assert!(
        ready_at_kill < CREATED,
        "the kill came after the work was done"
    );

    let operator = Operator::start(&kubeconfig, &log.with_extension("restarted.log"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    for name in &names {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        wait_for_within(left, &accounts, name, "Ready", is_ready).await;
    }

    // 2. Killed while deleting 30, once a random number of them are gone.
    let (doomed, kept) = names.split_at(DELETED);
    let kill_at = random_in(1..=DELETED / 2);
    eprintln!("deleting {DELETED} accounts; the kill comes at {kill_at} gone");
    futures::future::join_all(doomed.iter().map(|name| {
        let accounts = accounts.clone();
        async move {
            accounts
                .delete(name, &DeleteParams::default())
                .await
                .unwrap()
        }
    }))
    .await;
    let gone = || async { CREATED - listed().await.len() };
    until_count("accounts gone", kill_at, Duration::from_secs(300), gone).await;
    operator.kill();
    let left_at_kill = DELETED - gone().await;
    eprintln!("killed with {left_at_kill} of {DELETED} deleted accounts still there");
    assert!(
        left_at_kill > 0,
        "the kill came after the deletions were done"
    );

    let _operator = Operator::start(&kubeconfig, &log.with_extension("restarted-again.log"));
    for name in doomed {
        wait_gone(&accounts, name).await;
    }

    // Exactly one workspace per remaining account, each owned by its account only; every
    // remaining account still Ready.
    harness::assert_one_workspace_each(&org_ws, kept).await;
}
