//! 200 Accounts created at once in one org all become Ready, and while they are on their way
//! another org's new account becomes Ready and a third org, two levels deep, is deleted,
//! neither waiting behind the burst (the runtime's queue is fair across workspaces). The same
//! two are timed for kcp alone, bare Workspaces with no Account, quiet and next to the burst:
//! the floor the operator's figures cannot go below. It floods kcp and the operator, so it
//! runs in its own test binary, with its own kcp and operator: a scenario sharing them would
//! wait behind the burst.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use crds::Account;
use harness::{TestWorkspace, create_workspace, is_ready, wait_for_within};
use kcp::types::tenancy::{Workspace, WorkspaceSpec, WorkspaceTypeReference};
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use support::{create_accounts, new_account, platform, ready_account};
use tokio::time::Instant;

const BURST: usize = 200;

/// A deadline for work that waits for kcp to initialise workspaces next to a burst.
const PATIENCE: Duration = Duration::from_secs(600);

/// Creates Account `name` in `parent` and returns how long it took to become Ready.
async fn time_to_ready(parent: &TestWorkspace, name: &str) -> Duration {
    let accounts: Api<Account> = Api::all(parent.client());
    let started = Instant::now();
    accounts
        .create(&PostParams::default(), &new_account(name, "account"))
        .await
        .unwrap();
    wait_for_within(PATIENCE, &accounts, name, "Ready", is_ready).await;
    started.elapsed()
}

/// An org `name` with an account and a grandchild below it, all Ready.
async fn org_two_levels_deep(orgs: &TestWorkspace, name: &str) {
    let (_, org) = ready_account(orgs, name, "org").await;
    let (_, child) = ready_account(&org, "child", "account").await;
    ready_account(&child, "grandchild", "account").await;
}

/// Deletes org `name` and returns how long it took to be gone (its whole tree first).
async fn time_to_delete(orgs: &TestWorkspace, name: &str) -> Duration {
    time_to_be_gone(&Api::<Account>::all(orgs.client()), name).await
}

/// Deletes `name` and returns how long it took to be gone.
async fn time_to_be_gone<K>(api: &Api<K>, name: &str) -> Duration
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let started = Instant::now();
    api.delete(name, &DeleteParams::default()).await.unwrap();
    while api.get_opt(name).await.unwrap().is_some() {
        assert!(
            started.elapsed() < PATIENCE,
            "{name} still exists after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    started.elapsed()
}

/// kcp's own part of the figures, with no Account and no operator: Workspaces of the types
/// the operator gave an org and an account in it.
struct Bare {
    org: WorkspaceTypeReference,
    account: WorkspaceTypeReference,
}

impl Bare {
    /// The types of org `org`'s Workspace and of its account `account`'s.
    async fn of(orgs: &TestWorkspace, org: &TestWorkspace, account: &str) -> Bare {
        let type_of = async |parent: &TestWorkspace, name: &str| {
            let api = Api::<Workspace>::all(parent.client());
            api.get(name).await.unwrap().spec.type_.unwrap()
        };
        Bare {
            org: type_of(orgs, org.path.base()).await,
            account: type_of(org, account).await,
        }
    }

    /// Creates Workspace `name` of the account type in `parent` and returns how long kcp
    /// took to make it Ready.
    async fn time_to_ready(&self, parent: &TestWorkspace, name: &str) -> Duration {
        let workspaces: Api<Workspace> = Api::all(parent.client());
        let started = Instant::now();
        workspaces
            .create(&PostParams::default(), &bare(name, &self.account))
            .await
            .unwrap();
        wait_for_within(PATIENCE, &workspaces, name, "Ready", Workspace::is_ready).await;
        started.elapsed()
    }

    /// An org Workspace `name` in `orgs` with a child and a grandchild, all Ready.
    async fn two_levels_deep(&self, orgs: &TestWorkspace, name: &str) {
        let admin = &orgs.factory;
        create_workspace(admin, &orgs.path, name, self.org.clone()).await;
        let org = orgs.path.join(name).unwrap();
        create_workspace(admin, &org, "child", self.account.clone()).await;
        let child = org.join("child").unwrap();
        create_workspace(admin, &child, "grandchild", self.account.clone()).await;
    }

    /// Deletes the org Workspace `name` and returns how long kcp took to remove it.
    async fn time_to_delete(orgs: &TestWorkspace, name: &str) -> Duration {
        time_to_be_gone(&Api::<Workspace>::all(orgs.client()), name).await
    }
}

fn bare(name: &str, type_: &WorkspaceTypeReference) -> Workspace {
    Workspace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: WorkspaceSpec {
            type_: Some(type_.clone()),
            ..Default::default()
        },
        status: None,
    }
}

#[tokio::test]
async fn two_hundred_accounts_at_once_all_become_ready_and_hold_no_other_org_back() {
    let platform = platform().await;
    let orgs = platform.orgs().await;
    let suffix = harness::unique_suffix();

    // Quiet figures: an account and a two-level deletion with nothing else going on.
    let (_, quiet) = ready_account(&orgs, &format!("quiet{suffix}"), "org").await;
    let quiet_ready = time_to_ready(&quiet, "one").await;
    org_two_levels_deep(&orgs, &format!("qgone{suffix}")).await;
    let quiet_delete = time_to_delete(&orgs, &format!("qgone{suffix}")).await;
    // The same for kcp alone: the floor of what the operator can reach.
    let bare = Bare::of(&orgs, &quiet, "one").await;
    let bare_quiet_ready = bare.time_to_ready(&quiet, "bare-quiet").await;
    bare.two_levels_deep(&orgs, &format!("bqgone{suffix}"))
        .await;
    let bare_quiet_delete = Bare::time_to_delete(&orgs, &format!("bqgone{suffix}")).await;

    // The neighbours, ready before the burst.
    let (_, neighbour) = ready_account(&orgs, &format!("near{suffix}"), "org").await;
    org_two_levels_deep(&orgs, &format!("gone{suffix}")).await;
    bare.two_levels_deep(&orgs, &format!("bgone{suffix}")).await;
    let org = format!("many{suffix}");
    let (_, busy) = ready_account(&orgs, &org, "org").await;

    let accounts: Api<Account> = Api::all(busy.client());
    let names: Vec<String> = (0..BURST).map(|i| format!("a{i}")).collect();
    create_accounts(&accounts, &names).await;
    let (gone, bare_gone) = (format!("gone{suffix}"), format!("bgone{suffix}"));
    let (busy_ready, busy_delete, bare_busy_ready, bare_busy_delete) = tokio::join!(
        time_to_ready(&neighbour, "one"),
        time_to_delete(&orgs, &gone),
        // In the quiet org, as the org's types allow only its own accounts below it.
        bare.time_to_ready(&quiet, "bare-busy"),
        Bare::time_to_delete(&orgs, &bare_gone),
    );
    let waiting = accounts
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|a| !is_ready(a))
        .count();
    let figure = |busy: Duration, quiet: Duration| {
        format!(
            "{:.1}s (quiet {:.1}s, {:.1}x)",
            busy.as_secs_f64(),
            quiet.as_secs_f64(),
            busy.as_secs_f64() / quiet.as_secs_f64()
        )
    };
    eprintln!(
        "neighbour's account Ready in {}; two-level org deleted in {}; {waiting} of the \
         burst's {BURST} not Ready yet then",
        figure(busy_ready, quiet_ready),
        figure(busy_delete, quiet_delete),
    );
    eprintln!(
        "kcp alone, no Account: a Workspace of the account type Ready in {}; a two-level \
         Workspace tree deleted in {}",
        figure(bare_busy_ready, bare_quiet_ready),
        figure(bare_busy_delete, bare_quiet_delete),
    );
    // Where the neighbour's time went: before its Workspace existed it was ours (the queue),
    // after that kcp's (scheduling and initialising the workspace) until the Account's Ready.
    let account = Api::<Account>::all(neighbour.client())
        .get("one")
        .await
        .unwrap();
    let workspace = Api::<Workspace>::all(neighbour.client())
        .get("one")
        .await
        .unwrap();
    let created = |meta: &kube::core::ObjectMeta| meta.creation_timestamp.clone().unwrap().0;
    let ready_at = harness::account_condition(&account, "Ready")
        .unwrap()
        .last_transition_time
        .0;
    eprintln!(
        "neighbour's account: workspace created after {}, Ready {} after that",
        created(&workspace.metadata).duration_since(created(&account.metadata)),
        ready_at.duration_since(created(&workspace.metadata)),
    );
    // Both finished while the burst was still being worked on: neither waited behind it.
    assert!(
        waiting > 0,
        "the burst was done before the neighbours were: they may have waited behind it"
    );

    // kcp initialises the 200 workspaces at its own pace (minutes on two cores); the deadline
    // is for the whole set, measured from now.
    let deadline = Instant::now() + PATIENCE;
    for name in &names {
        let left = deadline.saturating_duration_since(Instant::now());
        wait_for_within(left, &accounts, name, "Ready", is_ready).await;
    }
    let workspaces = Api::<Workspace>::all(busy.client())
        .list(&Default::default())
        .await
        .unwrap();
    assert_eq!(workspaces.items.len(), BURST);
}
