//! The security-operator killed (SIGKILL) while it initializes 20 orgs converges after a
//! restart: every org Ready, exactly one OpenFGA store each, exactly its owner tuples.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use crds::{Account, Store};
use fga::platform_mesh::owner_tuples;
use fga::store::{StoreOptions, list_stores_named};
use harness::{OpenFga, is_ready, new_account, unique_suffix, wait_for_within};
use kube::api::{Api, ListParams, PostParams};
use support::{base, tuples};

const ORGS: usize = 20;

#[tokio::test]
async fn killed_mid_initialization_it_converges_after_a_restart() {
    let platform = base().await;
    let orgs = platform.orgs().await;
    let operator = platform.start_operator("security-operator-1").await;

    let sfx = unique_suffix();
    let names: Vec<String> = (0..ORGS).map(|i| format!("k{i}-{sfx}")).collect();
    let accounts: Api<Account> = Api::all(orgs.client());
    futures::future::join_all(names.iter().map(|name| {
        let accounts = accounts.clone();
        async move {
            accounts
                .create(
                    &PostParams::default(),
                    &new_account(name, "org", &format!("owner@{name}.example")),
                )
                .await
                .unwrap()
        }
    }))
    .await;

    // Kill it once the first org's Store has its OpenFGA store, while orgs are still waiting.
    let stores: Api<Store> = Api::all(orgs.client());
    let with_store = |list: &[Store]| {
        list.iter()
            .filter(|s| names.contains(&s.metadata.name.clone().unwrap_or_default()))
            .filter(|s| s.status.as_ref().is_some_and(|s| s.store_id.is_some()))
            .count()
    };
    loop {
        let list = stores.list(&ListParams::default()).await.unwrap().items;
        if with_store(&list) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = operator.pid().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let ready_at_kill = accounts
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|a| names.contains(&a.metadata.name.clone().unwrap_or_default()) && is_ready(a))
        .count();
    assert!(
        ready_at_kill < ORGS,
        "the kill came too late: all {ORGS} orgs were already Ready"
    );

    let _restarted = platform.start_operator("security-operator-2").await;
    let mut client = OpenFga::shared().await.client().await;
    for name in &names {
        wait_for_within(Duration::from_secs(300), &accounts, name, "Ready", is_ready).await;
        let named = list_stores_named(&mut client, name, &StoreOptions::default())
            .await
            .unwrap();
        assert_eq!(named.len(), 1, "{name}: {named:?}");
        let creator = format!("owner@{name}.example");
        let expected: BTreeSet<String> = owner_tuples(orgs.cluster.as_str(), name, &creator, None)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(tuples(&named[0].id).await, expected, "{name}");
    }
    eprintln!("killed with {ready_at_kill} of {ORGS} orgs Ready; all {ORGS} converged");
}
