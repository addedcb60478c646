//! Benchmark (run by `cargo xtask bench`): on a real kcp, the time from sending a change of an
//! object to the runtime handing the changed object to the reconciler (the write's commit, the
//! watch event through the virtual workspace, the queue and the dispatch), over 100 sequential
//! changes, next to the write's own round trip; and the watches 50 bound workspaces cost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crds::{Account, AccountSpec};
use harness::{Kcp, PlatformExport, universal};
use kcp::runtime::{Action, Context, Controller, ControllerConfig, EndpointSource, RuntimeMetrics};
use kube::api::{Api, Patch, PatchParams, PostParams};
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const CHANGES: usize = 100;
const WORKSPACES: usize = 50;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kcp = Kcp::shared().await;
    println!(
        "runtime bench: kcp ready after {:.1}s, RSS {:.0} MiB",
        kcp.startup.as_secs_f64(),
        kcp.rss_mib().unwrap_or_default()
    );
    let core = PlatformExport::core(kcp).await;
    let tenant = kcp.private_workspace("bench").await;
    let mut workspaces = Vec::new();
    for i in 0..WORKSPACES {
        let ws = tenant.child(&format!("w{i}"), universal()).await;
        core.bind(&ws).await;
        workspaces.push(ws);
    }
    let target = &workspaces[0];
    let accounts: Api<Account> = Api::all(target.client());
    let spec = AccountSpec {
        type_: "account".into(),
        display_name: "bench".into(),
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &Account::new("bench", spec))
        .await?;

    // The reconciler reports which change it saw (the value of spec.description) and when.
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(String, Instant)>();
    let seen_tx = Arc::new(seen_tx);
    let admin = kcp.admin().await;
    let mut registry = Registry::default();
    let source = EndpointSource::ApiExport {
        client: admin.for_path(&core.system)?,
        slice: crds::export::CORE_EXPORT.to_owned(),
    };
    let controller: Controller<Account> = Controller::new(
        "bench",
        admin,
        source,
        ControllerConfig::default(),
        Some(RuntimeMetrics::new(&mut registry)),
    );
    let mut health = controller.health();
    let stop = CancellationToken::new();
    let running = tokio::spawn(controller.run(
        move |account: Arc<Account>, _ctx: Context| {
            let seen_tx = seen_tx.clone();
            async move {
                if let Some(change) = &account.spec.description {
                    let _ = seen_tx.send((change.clone(), Instant::now()));
                }
                Ok::<_, std::convert::Infallible>(Action::Done)
            }
        },
        stop.clone(),
    ));
    health.wait_synced().await;

    let mut latencies = Vec::with_capacity(CHANGES);
    let mut round_trips = Vec::with_capacity(CHANGES);
    for i in 0..CHANGES {
        let change = format!("change-{i}");
        let patch = serde_json::json!({"spec": {"description": change}});
        let sent = Instant::now();
        accounts
            .patch("bench", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        round_trips.push(sent.elapsed());
        loop {
            let (value, at) = tokio::time::timeout(Duration::from_secs(30), seen.recv())
                .await?
                .ok_or("controller stopped")?;
            if value == change {
                latencies.push(at.saturating_duration_since(sent));
                break;
            }
        }
    }
    latencies.sort();
    round_trips.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "runtime bench: change sent -> reconcile over {CHANGES} changes: median {:.1} ms, p90 {:.1} ms, \
         worst {:.1} ms (the write's own round trip: median {:.1} ms)",
        ms(latencies[CHANGES / 2]),
        ms(latencies[CHANGES * 9 / 10]),
        ms(latencies[CHANGES - 1]),
        ms(round_trips[CHANGES / 2])
    );

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    let watches: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("kcp_watch_requests_total{") || l.starts_with("kcp_engaged_clusters{")
        })
        .collect();
    println!("runtime bench: with {WORKSPACES} bound workspaces (plus any others): {watches:?}");
    stop.cancel();
    running.await?;
    Ok(())
}
