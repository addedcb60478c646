//! Both operators killed with SIGKILL at once, at a random point while 100 accounts are created
//! in an org and again while 30 of them are deleted, converge after each restart: every
//! account Ready, every deleted one gone, and in OpenFGA exactly one store for the org holding
//! exactly the tuples of what is left, none of a deleted account (no orphan), none twice.
//!
//! Each kill is shown to have landed mid-work for both. The account-operator alone marks an
//! Account Ready, and the security-operator alone writes an account's tuples (its initializer)
//! and removes them (its terminator, before kcp lets the workspace, and so the Account, go):
//! the test counts what each had left undone. The security-operator initializes a workspace
//! within moments of kcp handing it over (the workspace then waits for kcp's own
//! `system:apibindings`), so a kill lands between workspaces rather than inside one.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use crds::{Account, Store};
use fga::platform_mesh::owner_tuples;
use fga::store::{StoreOptions, list_stores_named};
use harness::{
    OpenFga, OperatorChild, ServerProcess, assert_one_workspace_each, create_accounts, is_ready,
    random_in, ready_account, until_count, wait_for_within, wait_gone,
};
use kcp::types::tenancy::Workspace;
use kube::api::{Api, DeleteParams};
use support::{Platform, set_up, store_id, tuples};

const CREATED: usize = 100;
const DELETED: usize = 30;
const CREATOR: &str = "alice@example.com";

/// The account-operator binary as a plain child (its pid is what the kill needs), on the
/// kubeconfig the platform-mesh-operator wrote for it.
fn start_account_operator(platform: &Platform, log: &str) -> OperatorChild {
    let binary =
        harness::next_to_this_program("account-operator").unwrap_or_else(|e| panic!("{e}"));
    let args = vec![
        format!("--kubeconfig={}", platform.accounts_kubeconfig.display()),
        "--metrics-bind-address=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
        "--no-json".into(),
    ];
    let log = platform.kubeconfig.with_file_name(log);
    OperatorChild::start(binary.to_str().unwrap(), args, &[], &log)
}

/// SIGKILL to both operators.
fn kill_both(accounts: OperatorChild, security: &ServerProcess) {
    accounts.kill();
    let pid = security.pid().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success(), "killing the security-operator ({pid})");
}

#[tokio::test]
async fn both_operators_killed_mid_work_converge_without_orphans_or_duplicates() {
    let platform = set_up().await;
    let orgs = platform.orgs().await;
    let account_operator = start_account_operator(&platform, "account-operator.log");
    let security = platform.start_operator("security-operator").await;

    let org = format!("kills-{}", harness::unique_suffix());
    let (_, org_ws) = ready_account(&orgs, &org, "org", CREATOR).await;
    let store = store_id(&orgs, &org).await;
    let accounts: Api<Account> = Api::all(org_ws.client());
    let workspaces: Api<Workspace> = Api::all(org_ws.client());
    let names: Vec<String> = (0..CREATED).map(|i| format!("acc{i}")).collect();
    let listed = || async { accounts.list(&Default::default()).await.unwrap().items };
    let listed_workspaces = || async { workspaces.list(&Default::default()).await.unwrap().items };
    // How many of `names` have their owner tuple in the org's store. Only the security-operator
    // writes it (its initializer) and removes it (its terminator).
    let with_tuples = |names: &[String]| {
        let (store, cluster) = (store.clone(), org_ws.cluster.to_string());
        let names = names.to_vec();
        async move {
            let present = tuples(&store).await;
            names
                .iter()
                .filter(|name| {
                    present
                        .iter()
                        .any(|t| t.contains(&format!("{cluster}/{name}#owner@")))
                })
                .count()
        }
    };

    // 1. Both killed while creating, once a random number of workspaces exist.
    let kill_at = random_in(5..=60);
    eprintln!("creating {CREATED} accounts; the kill comes at {kill_at} workspaces");
    create_accounts(&accounts, &names, "account", CREATOR).await;
    until_count("workspaces", kill_at, Duration::from_secs(300), || async {
        listed_workspaces().await.len()
    })
    .await;
    kill_both(account_operator, &security);
    let ready_at_kill = listed().await.iter().filter(|a| is_ready(a)).count();
    let with_tuples_at_kill = with_tuples(&names).await;
    eprintln!(
        "killed with {ready_at_kill} of {CREATED} accounts Ready, {with_tuples_at_kill} with \
         their tuples"
    );
    assert!(
        ready_at_kill < CREATED,
        "the kill came after the accounts were Ready"
    );
    assert!(
        with_tuples_at_kill < CREATED,
        "the kill came after the security-operator had written every account's tuples"
    );

    let account_operator = start_account_operator(&platform, "account-operator.restarted.log");
    let security = platform.start_operator("security-operator-restarted").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    for name in &names {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        wait_for_within(left, &accounts, name, "Ready", is_ready).await;
    }

    // 2. Both killed while 30 are deleted. The security-operator's terminator removes the
    // tuples of all 30 within seconds of their workspaces being deleted, long before kcp has
    // finished deleting those, so the kill comes once a random few of them are removed.
    let (doomed, kept) = names.split_at(DELETED);
    let kill_at = random_in(1..=3);
    eprintln!("deleting {DELETED} accounts; the kill comes at {kill_at} with their tuples removed");
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
    let removed = || async { DELETED - with_tuples(doomed).await };
    until_count(
        "deleted accounts' tuples removed",
        kill_at,
        Duration::from_secs(300),
        removed,
    )
    .await;
    kill_both(account_operator, &security);
    let left_at_kill = listed().await.len() - kept.len();
    let with_tuples_at_kill = with_tuples(doomed).await;
    eprintln!(
        "killed with {left_at_kill} of {DELETED} deleted accounts still there, \
         {with_tuples_at_kill} of them with their tuples"
    );
    assert!(
        left_at_kill > 0,
        "the kill came after the deletions were done"
    );
    assert!(
        with_tuples_at_kill > 0,
        "the kill came after the security-operator had removed every deleted account's tuples"
    );

    let _account_operator = start_account_operator(&platform, "account-operator.again.log");
    let _security = platform.start_operator("security-operator-again").await;
    for name in doomed {
        wait_gone(&accounts, name).await;
    }

    // Every kept account Ready, with exactly one workspace owned by it alone.
    let remaining = assert_one_workspace_each(&org_ws, kept).await;

    // One store for the org, the one its Store names, and exactly the tuples of what is left.
    let mut client = OpenFga::shared().await.client().await;
    let named = list_stores_named(&mut client, &org, &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        named.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&store),
        "exactly one OpenFGA store for the org"
    );
    let stores: Api<Store> = Api::all(orgs.client());
    assert_eq!(
        stores.get(&org).await.unwrap().status.unwrap().store_id,
        Some(store.clone())
    );
    let (orgs_c, org_c) = (orgs.cluster.as_str(), org_ws.cluster.as_str());
    let mut expected_tuples: BTreeSet<String> = owner_tuples(orgs_c, &org, CREATOR, None)
        .iter()
        .map(ToString::to_string)
        .collect();
    for name in kept {
        expected_tuples.extend(
            owner_tuples(org_c, name, CREATOR, Some((orgs_c, &org)))
                .iter()
                .map(ToString::to_string),
        );
    }
    assert_eq!(
        tuples(&store).await,
        expected_tuples,
        "exactly the tuples of what is left"
    );
    eprintln!(
        "converged: {} accounts, each with its one workspace, 1 store, {} tuples",
        remaining.len(),
        expected_tuples.len()
    );
}
