//! Benchmark (run by `cargo xtask bench`): on a real kcp, the time from creating an org
//! Account to its Ready condition (median of 20), next to the time kcp alone takes to make a
//! Workspace of the same WorkspaceType Ready, measured in the same run.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use account_operator::config::Config;
use clap::Parser;
use crds::Account;
use harness::{Kcp, wait_for};
use kcp::types::tenancy::{Workspace, WorkspaceSpec, WorkspaceTypeReference};
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 20;

fn median(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kcp = Kcp::shared().await;
    let (orgs, kubeconfig) = support::set_up(kcp).await;
    let mut args = vec!["account-operator".to_owned()];
    args.extend(support::operator_args(&kubeconfig));
    let stop = CancellationToken::new();
    tokio::spawn(account_operator::app::run(
        Config::try_parse_from(args)?,
        stop.clone(),
    ));

    let accounts: Api<Account> = Api::all(orgs.client());
    let mut operator = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("bench{i}");
        let started = Instant::now();
        accounts
            .create(&PostParams::default(), &support::new_account(&name, "org"))
            .await?;
        wait_for(&accounts, &name, "Ready", harness::is_ready).await;
        operator.push(started.elapsed());
    }

    // kcp alone: a Workspace of an org's WorkspaceType, created directly.
    let workspaces: Api<Workspace> = Api::all(orgs.client());
    let mut kcp_alone = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("plain{i}");
        let workspace = Workspace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            spec: WorkspaceSpec {
                type_: Some(WorkspaceTypeReference {
                    name: format!("bench{i}-org"),
                    path: "root:orgs".into(),
                }),
                ..Default::default()
            },
            status: None,
        };
        let started = Instant::now();
        workspaces
            .create(&PostParams::default(), &workspace)
            .await?;
        wait_for(&workspaces, &name, "Ready", Workspace::is_ready).await;
        kcp_alone.push(started.elapsed());
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (op_median, op_worst) = median(operator);
    let (kcp_median, kcp_worst) = median(kcp_alone);
    println!(
        "account-operator bench: org Account -> Ready over {ROUNDS}: median {:.0} ms (worst {:.0} ms); \
         kcp alone, Workspace of the same type -> Ready: median {:.0} ms (worst {:.0} ms)",
        ms(op_median),
        ms(op_worst),
        ms(kcp_median),
        ms(kcp_worst)
    );
    stop.cancel();
    Ok(())
}
