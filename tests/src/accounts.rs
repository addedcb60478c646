//! Accounts as the scenarios create them: built, created, and waited for until Ready.

use crds::Account;
use crds::AccountSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kcp::types::tenancy::Workspace;
use kube::api::{Api, PostParams};

use crate::kcp::{TestWorkspace, wait_for};

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
