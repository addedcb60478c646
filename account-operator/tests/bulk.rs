//! 200 Accounts created at once in one org all become Ready. It floods kcp and the operator,
//! so it runs in its own test binary, with its own kcp and operator: a scenario sharing them
//! would wait behind the burst.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use crds::Account;
use harness::is_ready;
use harness::wait_for_within;
use kcp::types::tenancy::Workspace;
use kube::api::Api;
use support::{create_accounts, platform, ready_account};

#[tokio::test]
async fn two_hundred_accounts_created_at_once_all_become_ready() {
    let platform = platform().await;
    let org = format!("many{}", harness::unique_suffix());
    let (_, org_ws) = ready_account(&platform.orgs().await, &org, "org").await;
    let accounts: Api<Account> = Api::all(org_ws.client());
    let names: Vec<String> = (0..200).map(|i| format!("a{i}")).collect();
    create_accounts(&accounts, &names).await;
    // kcp initialises the 200 workspaces at its own pace (minutes on two cores, next to the
    // other tests); the deadline is for the whole set, measured from now.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(600);
    for name in &names {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        wait_for_within(left, &accounts, name, "Ready", is_ready).await;
    }
    let workspaces = Api::<Workspace>::all(org_ws.client())
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(workspaces.items.len(), 200);
}
