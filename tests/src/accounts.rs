//! Accounts as the scenarios create them: built, created, and waited for until Ready.

use std::collections::{BTreeMap, BTreeSet};

use crds::Account;
use crds::AccountSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kcp::types::tenancy::Workspace;
use kube::ResourceExt;
use kube::api::{Api, PostParams};

use crate::kcp::{TestWorkspace, wait_for, wait_gone};

/// An Account of `account_type` created by `creator`.
pub fn new_account(name: &str, account_type: &str, creator: &str) -> Account {
    Account::new(
        name,
        AccountSpec {
            type_: account_type.into(),
            display_name: name.into(),
            creator: Some(creator.into()),
            ..Default::default()
        },
    )
}

/// The Account's condition `type_`.
pub fn account_condition<'a>(account: &'a Account, type_: &str) -> Option<&'a Condition> {
    account
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Whether the Account is Ready.
pub fn is_ready(account: &Account) -> bool {
    account_condition(account, "Ready").is_some_and(|c| c.status == "True")
}

/// Creates an Account in `parent` and waits for it to be Ready; returns it and its workspace.
pub async fn ready_account(
    parent: &TestWorkspace,
    name: &str,
    account_type: &str,
    creator: &str,
) -> (Account, TestWorkspace) {
    let accounts: Api<Account> = Api::all(parent.client());
    accounts
        .create(
            &PostParams::default(),
            &new_account(name, account_type, creator),
        )
        .await
        .unwrap_or_else(|e| panic!("creating Account {name} in {}: {e}", parent.path));
    let account = wait_for(&accounts, name, "Ready", is_ready).await;
    (account, workspace_of(parent, name).await)
}

/// The workspace of Account `name` in `parent`.
pub async fn workspace_of(parent: &TestWorkspace, name: &str) -> TestWorkspace {
    let workspace: Workspace = Api::all(parent.client())
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("reading Workspace {name} in {}: {e}", parent.path));
    TestWorkspace {
        factory: parent.factory.clone(),
        path: parent.path.join(name).unwrap_or_else(|e| panic!("{e}")),
        cluster: workspace
            .spec
            .cluster
            .unwrap_or_else(|| panic!("Workspace {name} has no cluster"))
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    }
}

/// Creates Accounts of `account_type` by `creator` named `names` in one go, all at once.
pub async fn create_accounts(
    accounts: &Api<Account>,
    names: &[String],
    account_type: &str,
    creator: &str,
) {
    futures::future::try_join_all(names.iter().map(|name| async move {
        accounts
            .create(
                &PostParams::default(),
                &new_account(name, account_type, creator),
            )
            .await
    }))
    .await
    .unwrap_or_else(|e| panic!("creating {} Accounts: {e}", names.len()));
}

/// Asserts that the Accounts in `parent` are exactly `expected`, each Ready, each with exactly
/// one Workspace owned by it alone, and no other Workspace there (no orphan, no duplicate).
/// Returns the Accounts.
pub async fn assert_one_workspace_each(
    parent: &TestWorkspace,
    expected: &[String],
) -> Vec<Account> {
    let accounts = Api::<Account>::all(parent.client())
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("listing Accounts in {}: {e}", parent.path))
        .items;
    let not_ready: Vec<String> = accounts
        .iter()
        .filter(|a| !is_ready(a))
        .map(ResourceExt::name_any)
        .collect();
    assert!(not_ready.is_empty(), "not Ready: {not_ready:?}");
    let uids: BTreeMap<String, String> = accounts
        .iter()
        .map(|a| (a.name_any(), a.uid().unwrap_or_default()))
        .collect();
    let expected: BTreeSet<String> = expected.iter().cloned().collect();
    assert_eq!(uids.keys().cloned().collect::<BTreeSet<_>>(), expected);
    let workspaces = Api::<Workspace>::all(parent.client())
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("listing Workspaces in {}: {e}", parent.path))
        .items;
    let names: BTreeSet<String> = workspaces.iter().map(ResourceExt::name_any).collect();
    assert_eq!(names, expected, "no orphan or missing workspace");
    for ws in &workspaces {
        let owners: Vec<&str> = ws
            .owner_references()
            .iter()
            .map(|o| o.uid.as_str())
            .collect();
        assert_eq!(
            owners,
            [uids[&ws.name_any()].as_str()],
            "{} has one owner",
            ws.name_any()
        );
    }
    accounts
}

/// Deletes Account `name` in `parent` and waits until it and its Workspace are gone.
pub async fn delete_account(parent: &TestWorkspace, name: &str) {
    let accounts: Api<Account> = Api::all(parent.client());
    accounts
        .delete(name, &Default::default())
        .await
        .unwrap_or_else(|e| panic!("deleting Account {name} in {}: {e}", parent.path));
    wait_gone(&accounts, name).await;
    wait_gone(&Api::<Workspace>::all(parent.client()), name).await;
}
