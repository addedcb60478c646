//! kcp restarted (same root directory, same ports) while the account-operator binary runs:
//! `/readyz` turns 503 naming the failing watch while kcp is down and 200 once the watches are
//! back; an Account created the moment kcp is back is reconciled to Ready; the org made
//! before the restart is still Ready in the same workspace, and no workspace is duplicated.
//! The requests the operator sent from kcp being back to that Account being Ready are
//! printed by verb and resource, next to what one full list of every watch would be.
//!
//! It stops and starts its kcp, so it runs in its own test binary with a kcp of its own.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod operator;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::time::{Duration, Instant};

use crds::Account;
use crds::account_info::AccountInfo;
use harness::{Kcp, PlatformExport, free_port, http_get, is_ready, names, wait_for};
use kcp::types::apis::ApiBinding;
use kcp::types::core::LogicalCluster;
use kcp::types::tenancy::{Workspace, WorkspaceType};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, Resource};
use operator::{Operator, until_readyz};

/// How long `/readyz` may take to answer what a step expects: after kcp is back, a watch
/// waits out its retry backoff (at most 10 s) twice, once to resume and once to re-list.
const READYZ_WITHIN: Duration = Duration::from_secs(120);
use serde::de::DeserializeOwned;

/// Requests by verb and resource, summed over the operator's kubeconfigs.
type Requests = BTreeMap<(String, String), u64>;

#[tokio::test]
async fn a_kcp_restart_under_the_running_operator_is_ridden_out() {
    let mut kcp = Kcp::restartable().await;
    let (orgs, kubeconfig) = support::set_up(&kcp).await;
    let (health, metrics) = (free_port(), free_port());
    let log = kubeconfig.with_file_name("account-operator-kcp-restart.log");
    let mut operator = Operator::start_with(
        &kubeconfig,
        &log,
        &[
            format!("--health-probe-bind-address=127.0.0.1:{health}"),
            format!("--metrics-bind-address=127.0.0.1:{metrics}"),
        ],
    );
    until_readyz(health, 200, &mut operator, &log, READYZ_WITHIN).await;
    let (_, org) = support::ready_account(&orgs, "acme", "org").await;
    let first_pid = kcp.pid().unwrap();

    let stopped = Instant::now();
    let before = requests(metrics).await;
    kcp.stop().await;
    let why = until_readyz(health, 503, &mut operator, &log, READYZ_WITHIN).await;
    assert!(
        why.contains("AccountReconciler: the watch of") && why.contains("has been failing"),
        "{why}"
    );
    let restart = kcp.start_again().await;
    let back = requests(metrics).await;
    let outage = stopped.elapsed();
    assert_ne!(
        kcp.pid(),
        Some(first_pid),
        "the same kcp process is running"
    );

    // A change made the moment kcp is back, before the operator's watches have reconnected
    // (their backoff keeps them away for tens of seconds): what they missed, a re-list finds.
    let recovering = Instant::now();
    let accounts: Api<Account> = Api::all(org.client());
    accounts
        .create(
            &PostParams::default(),
            &support::new_account("during", "account"),
        )
        .await
        .unwrap();
    let readyz_at_change = http_get(health, "/readyz")
        .await
        .map_or("nothing".to_owned(), |(code, _)| code.to_string());
    until_readyz(health, 200, &mut operator, &log, READYZ_WITHIN).await;
    let ready_again = recovering.elapsed();
    wait_for(&accounts, "during", "Ready", is_ready).await;
    let reconciled = recovering.elapsed();
    let after = requests(metrics).await;

    // Nothing was made twice, and the org made before the restart kept its workspace.
    let org_accounts: Api<Account> = Api::all(orgs.client());
    assert!(is_ready(&org_accounts.get("acme").await.unwrap()));
    assert_eq!(
        names::<Workspace>(&orgs).await,
        BTreeSet::from(["acme".to_owned()])
    );
    assert_eq!(
        names::<Workspace>(&org).await,
        BTreeSet::from(["during".to_owned()])
    );
    let acme: Workspace = Api::all(orgs.client()).get("acme").await.unwrap();
    assert_eq!(acme.spec.cluster.as_deref(), Some(org.cluster.as_str()));

    // One full list: one list request per wildcard watch, returning every object of its kind
    // the export's virtual workspace serves.
    let url = PlatformExport::core(&kcp).await.endpoint_url(&kcp).await;
    let wildcard = kcp.admin().await.for_virtual_wildcard(&url).unwrap();
    let watches = wildcard_watches(metrics).await;
    let mut objects = 0;
    for (controller, kind) in &watches {
        let listed = listed(kind, wildcard.clone()).await;
        eprintln!("kcp-restart: watch of {kind} by {controller}: {listed} objects");
        objects += listed;
    }
    let recovery = since(&after, &back);
    let of = |verbs: &[&str]| -> u64 {
        recovery
            .iter()
            .filter(|((verb, _), _)| verbs.contains(&verb.as_str()))
            .map(|(_, n)| n)
            .sum()
    };
    let (lists, watch_requests) = (of(&["list"]), of(&["watch"]));
    let writes = of(&["create", "update", "patch", "delete"]);
    eprintln!("kcp-restart: /readyz while kcp was down: 503 {why}");
    eprintln!(
        "kcp-restart: kcp stopped and ready again after {outage:?} (its start took \
         {restart:?}); after kcp was back, the operator's /readyz answered 200 after \
         {ready_again:?} and the new account was Ready after {reconciled:?} (created while \
         /readyz answered {readyz_at_change})"
    );
    print_requests("while kcp was down", &since(&back, &before));
    print_requests("from kcp back to the new account Ready", &recovery);
    eprintln!(
        "kcp-restart: one full list: {} list requests (one per wildcard watch) returning \
         {objects} objects; the recovery sent {lists} list requests, {watch_requests} watch \
         requests and {writes} writes (the endpoint slice's watch is not counted: its client \
         does not count requests)",
        watches.len()
    );
    // Every watch resumed from a resourceVersion the restarted kcp no longer serves (410
    // Gone) and re-listed once; a re-list that failed would be sent again, so the bound is
    // the goal, not the one list per watch seen.
    assert!(
        lists <= 2 * watches.len() as u64,
        "the recovery sent {lists} list requests, more than twice one full list ({})",
        watches.len()
    );
}

/// The value of label `name` in a sample line of `/metrics`.
fn label<'a>(line: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=\"");
    let start = line.find(&key).unwrap() + key.len();
    let len = line[start..].find('"').unwrap();
    &line[start..start + len]
}

/// The samples of metric `name` on the operator's `/metrics`: each line and its value.
async fn samples(port: u16, name: &str) -> Vec<(String, u64)> {
    let (status, body) = http_get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200, "{body}");
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .map(|l| {
            let (line, value) = l.rsplit_once(' ').unwrap();
            (line.to_owned(), value.parse().unwrap())
        })
        .collect()
}

/// Every request the operator has sent so far (`platform_mesh_client_requests_total`).
async fn requests(port: u16) -> Requests {
    let mut requests = Requests::new();
    for (line, n) in samples(port, "platform_mesh_client_requests_total").await {
        let key = (
            label(&line, "verb").to_owned(),
            label(&line, "resource").to_owned(),
        );
        *requests.entry(key).or_default() += n;
    }
    requests
}

/// The requests in `after` that were not yet in `before`.
fn since(after: &Requests, before: &Requests) -> Requests {
    after
        .iter()
        .map(|(key, n)| (key.clone(), n - before.get(key).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn print_requests(phase: &str, requests: &Requests) {
    let total: u64 = requests.values().sum();
    eprintln!("kcp-restart: requests {phase}: {total}");
    for ((verb, resource), n) in requests {
        eprintln!("kcp-restart:   {verb} {resource}: {n}");
    }
}

/// The operator's open wildcard watches, as (controller, kind): one per kind per endpoint.
async fn wildcard_watches(port: u16) -> Vec<(String, String)> {
    let mut watches = Vec::new();
    for (line, open) in samples(port, "kcp_wildcard_watches").await {
        let watch = (
            label(&line, "controller").to_owned(),
            label(&line, "kind").to_owned(),
        );
        watches.extend(std::iter::repeat_n(watch, open as usize));
    }
    watches
}

/// How many objects of `kind` (a plural) a list through `wildcard` returns.
async fn listed(kind: &str, wildcard: Client) -> usize {
    match kind {
        "accounts" => count::<Account>(wildcard).await,
        "apibindings" => count::<ApiBinding>(wildcard).await,
        "accountinfos" => count::<AccountInfo>(wildcard).await,
        "workspaces" => count::<Workspace>(wildcard).await,
        "workspacetypes" => count::<WorkspaceType>(wildcard).await,
        "logicalclusters" => count::<LogicalCluster>(wildcard).await,
        other => panic!("the operator watches {other}, which this test does not count"),
    }
}

async fn count<K>(client: Client) -> usize
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    Api::<K>::all(client)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len()
}
