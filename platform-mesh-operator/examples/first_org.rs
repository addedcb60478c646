//! Benchmark (run by `cargo xtask bench`, printed, never asserted): from a fresh kcp to the
//! first org Account Ready, with the platform-mesh-operator doing the setup. Each round
//! starts a kcp of its own and, in this process:
//!
//! 1. the platform-mesh-operator, and one PlatformMesh: the time until it is Ready (the kcp
//!    tree set up and the kubeconfigs written), and the requests it sent to kcp;
//! 2. the account- and security-operator with the kubeconfigs it wrote, and an org Account:
//!    the time until the Account is Ready (its workspace initialized, its store written).
//!
//! The total runs from the PlatformMesh's creation, on a kcp that has just become ready, to
//! the org Account's Ready. (The hosting workspace made in between stands in for a hosting
//! cluster, which a real installation has before kcp.)

#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use harness::{Kcp, OpenFga, wait_for_within};
use kube::api::{Api, PostParams};
use support::{Host, condition, metric, platform_mesh, start_operator_until, start_suite};
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 3;
const NS: &str = "platform-mesh-system";
const LABEL: &str = "bench";
const DEADLINE: Duration = Duration::from_secs(600);

struct Round {
    kcp_startup: Duration,
    setup: Duration,
    org: Duration,
    reads: f64,
    writes: f64,
}

async fn round(openfga: &OpenFga) -> Round {
    let kcp = Kcp::fresh().await;
    let host = Host::on(&kcp).await;
    host.namespace(NS).await;
    let stop = CancellationToken::new();
    let metrics = start_operator_until(
        &host,
        kcp.kubeconfig(),
        LABEL,
        &[
            // The account-operator's webhooks are measured by its own benchmark.
            "--no-account-operator-webhooks".to_owned(),
            "--subroutines-authorization-webhook-enabled=false".to_owned(),
        ],
        stop.clone(),
    );
    let pms = host.platform_meshes(NS);
    let created = Instant::now();
    pms.create(
        &PostParams::default(),
        &platform_mesh("platform", LABEL, serde_json::json!({})),
    )
    .await
    .unwrap();
    wait_for_within(DEADLINE, &pms, "platform", "Ready", |pm| {
        condition(pm, "Ready").is_some_and(|(status, _, _)| status == "True")
    })
    .await;
    let setup = created.elapsed();
    let requests = |verbs: &'static [&'static str]| async move {
        let mut sum = 0.0;
        for verb in verbs {
            sum += metric(
                metrics,
                "platform_mesh_client_requests_total",
                &[("kubeconfig", "--kcp-kubeconfig"), ("verb", verb)],
            )
            .await;
        }
        sum
    };
    let reads = requests(&["get", "list", "watch"]).await;
    let writes = requests(&["create", "update", "patch", "delete"]).await;

    let org_started = Instant::now();
    start_suite(&host, NS, &openfga.grpc_endpoint(), None, &stop).await;
    let orgs = support::orgs(&kcp.admin().await).await;
    let accounts: Api<crds::Account> = Api::all(orgs.client());
    accounts
        .create(
            &PostParams::default(),
            &harness::new_account("acme", "org", "alice@example.com"),
        )
        .await
        .unwrap();
    wait_for_within(DEADLINE, &accounts, "acme", "Ready", harness::is_ready).await;
    let org = org_started.elapsed();
    stop.cancel();
    // Let the operators stop before their kcp does.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Round {
        kcp_startup: kcp.startup,
        setup,
        org,
        reads,
        writes,
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let openfga = OpenFga::shared().await;
    println!(
        "fresh kcp → first org Account Ready, platform-mesh-operator doing the setup ({ROUNDS} rounds, one fresh kcp each)"
    );
    let mut rounds = Vec::new();
    for i in 1..=ROUNDS {
        let r = round(openfga).await;
        println!(
            "round {i}: kcp ready after {}; PlatformMesh Ready in {} ({} reads, {} writes to kcp); org Account Ready {} later; total {}",
            secs(r.kcp_startup),
            secs(r.setup),
            r.reads,
            r.writes,
            secs(r.org),
            secs(r.setup + r.org)
        );
        rounds.push(r);
    }
    println!("| phase | median of {ROUNDS} |");
    println!("|---|---|");
    println!(
        "| kcp spawn → ready | {} |",
        secs(median(rounds.iter().map(|r| r.kcp_startup).collect()))
    );
    println!(
        "| PlatformMesh created → Ready | {} |",
        secs(median(rounds.iter().map(|r| r.setup).collect()))
    );
    println!(
        "| operators started, org Account created → Ready | {} |",
        secs(median(rounds.iter().map(|r| r.org).collect()))
    );
    println!(
        "| **kcp ready → first org Account Ready** | **{}** |",
        secs(median(rounds.iter().map(|r| r.setup + r.org).collect()))
    );
}
