//! Benchmark (run by `cargo xtask bench`, printed, never asserted): on one real kcp and one
//! real OpenFGA, in one run,
//!
//! * A: the account-operator alone (WorkspaceTypes without the `root:security` initializer):
//!   an org Account's and an account Account's time from creation to Ready, median of 20 each;
//! * B: the same two series with the security-operator serving the initializer and terminator
//!   of every org and account workspace; the difference of the medians is the time the
//!   initializer adds to an org's and an account's path to Ready;
//! * C: the terminator's time to delete an org with 50 accounts directly below it, until its
//!   Account, its Workspace and its Store are gone.
//!
//! `cargo run --example` builds the package's library, not its binaries, so the example builds
//! the security-operator binary into its own profile directory first
//! ([`harness::build_binary`]), where `tests/support`'s [`support::binary`] finds it.

#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use crds::{Account, Store};
use fga::sync::{SyncOptions, read_tuples};
use futures::{StreamExt, TryStreamExt};
use harness::{
    Kcp, OpenFga, ServerProcess, TestWorkspace, free_port, run_detached, set_up_platform,
    unique_suffix, wait_for, wait_for_within,
};
use kcp::types::tenancy::Workspace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use tokio_util::sync::CancellationToken;

/// Samples per series.
const ROUNDS: usize = 20;
/// Accounts below the org that phase C deletes.
const TEARDOWN_ACCOUNTS: usize = 50;
/// How many of those are created at once.
const CREATE_CONCURRENCY: usize = 10;
/// Generous deadlines for bulk work on two shared cores.
const BULK_TIMEOUT: Duration = Duration::from_secs(900);
const CREATOR: &str = "alice@example.com";
const KUBECONFIG: &str = "bench.kubeconfig";

type BenchResult<T> = Result<T, String>;

/// Creates Account `name` in `parent`, waits for it to be Ready; returns the time that took.
async fn time_to_ready(parent: &TestWorkspace, name: &str, account_type: &str) -> Duration {
    let accounts: Api<Account> = Api::all(parent.client());
    let started = Instant::now();
    accounts
        .create(
            &PostParams::default(),
            &harness::new_account(name, account_type, CREATOR),
        )
        .await
        .unwrap_or_else(|e| panic!("creating Account {name} in {}: {e}", parent.path));
    wait_for(&accounts, name, "Ready", harness::is_ready).await;
    started.elapsed()
}

/// `ROUNDS` Accounts of `account_type` in `parent`, one after the other.
async fn series(parent: &TestWorkspace, prefix: &str, account_type: &str) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        samples.push(time_to_ready(parent, &format!("{prefix}{i}"), account_type).await);
    }
    samples
}

/// Waits until `name` no longer exists, within `BULK_TIMEOUT`.
async fn gone<K>(api: &Api<K>, kind: &str, name: &str) -> BenchResult<()>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let condition = |object: Option<&K>| object.is_none();
    match tokio::time::timeout(BULK_TIMEOUT, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("watching {kind} {name}: {e}")),
        Err(_) => Err(format!(
            "{kind} {name} still exists after {BULK_TIMEOUT:?}: {:#?}",
            api.get_opt(name).await
        )),
    }
}

/// Median (the upper one of an even count) and maximum.
fn stats(samples: &[Duration]) -> (Duration, Duration) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    (sorted[sorted.len() / 2], sorted[sorted.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Teardown {
    accounts_ready: Duration,
    account_gone: Duration,
    workspace_gone: Duration,
    store_gone: Duration,
}

async fn bench() -> BenchResult<()> {
    let binary = harness::build_binary("security-operator", "security-operator")?;
    let kcp = Kcp::shared().await;
    // Started before phase A, so that both phases run next to the same servers.
    let openfga = OpenFga::shared().await;
    let sfx = unique_suffix();

    // Phase A: the account-operator alone.
    let (orgs, kubeconfig) = set_up_platform(kcp, false, KUBECONFIG).await;
    let config = account_operator::config::Config::try_parse_from([
        "account-operator".to_owned(),
        format!("--kubeconfig={}", kubeconfig.display()),
        "--kubeconfig-context=root".into(),
        "--metrics-bind-address=127.0.0.1:0".into(),
        "--health-probe-bind-address=127.0.0.1:0".into(),
        "--no-json".into(),
    ])
    .map_err(|e| format!("account-operator flags: {e}"))?;
    run_detached(move || async move {
        if let Err(e) = account_operator::app::run(config, CancellationToken::new()).await {
            eprintln!("the account-operator stopped: {e}");
            std::process::exit(1);
        }
    });
    eprintln!("phase A: the account-operator alone");
    let a_orgs = series(&orgs, &format!("a{sfx}-org"), "org").await;
    let a_host = support::ready_account(&orgs, &format!("a{sfx}-host"), "org", CREATOR).await;
    let a_accounts = series(&a_host, "acct", "account").await;

    // Phase B: org and account extend the `security` type; the security-operator serves it.
    set_up_platform(kcp, true, KUBECONFIG).await;
    let state_dir = kubeconfig
        .parent()
        .ok_or("the kubeconfig has no directory")?
        .to_path_buf();
    let health_port = free_port();
    let operator = ServerProcess::start(
        "security-operator",
        &binary,
        &support::security_args(&kubeconfig, &openfga.grpc_endpoint(), health_port),
        &state_dir,
        false,
    )
    .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    let log = state_dir.join("security-operator.log");
    install_log_on_panic(log.clone());
    eprintln!(
        "phase B: with the security-operator (log {}, removed with kcp's state at exit)",
        log.display()
    );
    support::until_ready(&operator, health_port).await;

    let b_orgs = series(&orgs, &format!("b{sfx}-org"), "org").await;
    let b_host_name = format!("b{sfx}-host");
    let b_host = support::ready_account(&orgs, &b_host_name, "org", CREATOR).await;
    let b_accounts = series(&b_host, "acct", "account").await;
    check_initialized(&orgs, &b_host_name, &format!("b{sfx}-org"), &operator).await?;

    // Phase C: an org with 50 accounts, deleted.
    eprintln!("phase C: deleting an org with {TEARDOWN_ACCOUNTS} accounts");
    let teardown = teardown(&orgs, &format!("c{sfx}-org")).await?;

    if operator.exited() {
        return Err(format!(
            "the security-operator exited during the run:\n{}",
            operator.log_tail(40)
        ));
    }
    report([(&a_orgs, &b_orgs), (&a_accounts, &b_accounts)], &teardown);
    operator.stop();
    Ok(())
}

/// Checks that phase B really ran through the initializer: every org has a Store, and the
/// host org's store holds the owner and parent tuples of its 20 accounts.
async fn check_initialized(
    orgs: &TestWorkspace,
    host: &str,
    org_prefix: &str,
    operator: &ServerProcess,
) -> BenchResult<()> {
    let stores: Api<Store> = Api::all(orgs.client());
    for i in 0..ROUNDS {
        let name = format!("{org_prefix}{i}");
        let store = stores
            .get_opt(&name)
            .await
            .map_err(|e| format!("reading Store {name}: {e}"))?;
        if store.is_none() {
            return Err(format!(
                "org {name} became Ready without a Store: the initializer did not run\n{}",
                operator.log_tail(40)
            ));
        }
    }
    let store = wait_for(&stores, host, "a store id", |s| {
        s.status.as_ref().is_some_and(|s| s.store_id.is_some())
    })
    .await;
    let store_id = store.status.and_then(|s| s.store_id).unwrap_or_default();
    let mut client = OpenFga::shared().await.client().await;
    let tuples = read_tuples(&mut client, &store_id, None, &SyncOptions::default())
        .await
        .map_err(|e| format!("reading the tuples of store {store_id}: {e}"))?;
    // The org's two owner tuples; per account two owner tuples and one parent tuple.
    let expected = 2 + 3 * ROUNDS;
    if tuples.len() != expected {
        return Err(format!(
            "org {host}'s store holds {} tuples, not {expected}: the initializer did not run \
             for every account\n{}",
            tuples.len(),
            operator.log_tail(40)
        ));
    }
    Ok(())
}

async fn teardown(orgs: &TestWorkspace, org: &str) -> BenchResult<Teardown> {
    let org_ws = support::ready_account(orgs, org, "org", CREATOR).await;
    let accounts: Api<Account> = Api::all(org_ws.client());
    let started = Instant::now();
    futures::stream::iter(0..TEARDOWN_ACCOUNTS)
        .map(|i| {
            let accounts = accounts.clone();
            async move {
                let name = format!("acct{i}");
                accounts
                    .create(
                        &PostParams::default(),
                        &harness::new_account(&name, "account", CREATOR),
                    )
                    .await
                    .map_err(|e| format!("creating Account {name} in org {org}: {e}"))?;
                wait_for_within(BULK_TIMEOUT, &accounts, &name, "Ready", harness::is_ready).await;
                Ok::<_, String>(())
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    let accounts_ready = started.elapsed();

    let org_accounts: Api<Account> = Api::all(orgs.client());
    let started = Instant::now();
    org_accounts
        .delete(org, &DeleteParams::default())
        .await
        .map_err(|e| format!("deleting Account {org}: {e}"))?;
    gone(&org_accounts, "Account", org).await?;
    let account_gone = started.elapsed();
    gone(&Api::<Workspace>::all(orgs.client()), "Workspace", org).await?;
    let workspace_gone = started.elapsed();
    gone(&Api::<Store>::all(orgs.client()), "Store", org).await?;
    let store_gone = started.elapsed();
    Ok(Teardown {
        accounts_ready,
        account_gone,
        workspace_gone,
        store_gone,
    })
}

fn report(series: [(&Vec<Duration>, &Vec<Duration>); 2], teardown: &Teardown) {
    println!("security-operator bench: Account created -> Ready, {ROUNDS} rounds per series (ms)");
    println!(
        "  {:<10} {:>22} {:>22} {:>16}",
        "", "account-operator alone", "with the initializer", "added by the"
    );
    println!(
        "  {:<10} {:>10} {:>11} {:>10} {:>11} {:>16}",
        "series", "median", "max", "median", "max", "initializer"
    );
    for (label, (alone, secured)) in ["org", "account"].iter().zip(series) {
        let (a_median, a_max) = stats(alone);
        let (b_median, b_max) = stats(secured);
        println!(
            "  {:<10} {:>10.0} {:>11.0} {:>10.0} {:>11.0} {:>+16.0}",
            label,
            ms(a_median),
            ms(a_max),
            ms(b_median),
            ms(b_max),
            ms(b_median) - ms(a_median)
        );
    }
    println!(
        "  deleting an org with {TEARDOWN_ACCOUNTS} accounts: Account gone after {:.0} ms, \
         Workspace after {:.0} ms, Store after {:.0} ms (its {TEARDOWN_ACCOUNTS} accounts were \
         made Ready in {:.1} s, {CREATE_CONCURRENCY} at a time)",
        ms(teardown.account_gone),
        ms(teardown.workspace_gone),
        ms(teardown.store_gone),
        teardown.accounts_ready.as_secs_f64()
    );
}

/// On a panic (the harness panics on timeouts), prints the security-operator's log tail too:
/// the log lives in kcp's state directory, which is removed when this process exits.
fn install_log_on_panic(log: PathBuf) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!(
            "initializer_latency failed; last lines of {}:\n{}",
            log.display(),
            lines[lines.len().saturating_sub(40)..].join("\n")
        );
    }));
}

#[tokio::main]
async fn main() -> ExitCode {
    match bench().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("initializer_latency failed: {e}");
            ExitCode::FAILURE
        }
    }
}
