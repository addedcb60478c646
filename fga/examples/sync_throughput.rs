//! Benchmark: tuple-sync throughput against a real OpenFGA (run by `cargo xtask bench`).
//!
//! Starts `openfga run` (memory datastore) through the test harness, then, on
//! the same server, each into its own fresh store with the same model:
//!
//! 1. `fga::sync::sync_tuples` writing N new tuples (read of the empty store,
//!    diff, requests of 100, `on_duplicate: ignore`);
//! 2. a direct loop with the plain `openfga-client` service client: `write`
//!    calls of 100 tuples each, sequential;
//! 3. a 10 percent change (N/20 removed, N/20 added) synced into store 1,
//!    which reads all N tuples back first.
//!
//! N defaults to 10,000; set `SYNC_TUPLES` to change it. Prints figures, asserts nothing.

use std::time::{Duration, Instant};

use fga::Tuple;
use fga::store::{StoreOptions, find_or_create_store, write_model};
use fga::sync::{Current, SyncOptions, sync_tuples};
use openfga_client::client::{OpenFgaServiceClient, TupleKey, WriteRequest, WriteRequestWrites};
use tonic::transport::Channel;

const MODEL: &str = "model
  schema 1.1
type user
type doc
  relations
    define viewer: [user]
";

fn tuples(prefix: &str, range: std::ops::Range<usize>) -> Vec<Tuple> {
    range
        .map(|i| {
            Tuple::new(
                format!("doc:{prefix}{i:06}"),
                "viewer",
                format!("user:u{}", i % 997),
            )
        })
        .collect()
}

async fn fresh_store(
    service: &mut OpenFgaServiceClient<Channel>,
    label: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let name = format!("bench-{label}-{}", harness::unique_suffix());
    let store = find_or_create_store(service, &name, &StoreOptions::default()).await?;
    let model = fga::dsl::parse_model(MODEL)?;
    write_model(service, &store.store.id, &model, &StoreOptions::default()).await?;
    Ok(store.store.id)
}

fn rate(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::var("SYNC_TUPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let fga = harness::OpenFga::shared().await;
    println!(
        "fga sync: OpenFGA (memory datastore) serving after {:?}",
        fga.startup
    );
    let mut service = fga.client().await;
    let options = SyncOptions::default();
    let desired = tuples("a", 0..n);

    // 1. Our sync, into an empty store.
    let store_sync = fresh_store(&mut service, "sync").await?;
    let started = Instant::now();
    let report = sync_tuples(
        &mut service,
        &store_sync,
        &desired,
        Current::Store(None),
        &options,
    )
    .await?;
    let sync_elapsed = started.elapsed();
    assert_eq!(report.written.len(), n, "sync wrote every tuple");

    // 2. The plain client: write calls of 100 tuples, sequential.
    let store_direct = fresh_store(&mut service, "direct").await?;
    let started = Instant::now();
    let mut calls = 0usize;
    for chunk in desired.chunks(100) {
        service
            .write(WriteRequest {
                store_id: store_direct.clone(),
                writes: Some(WriteRequestWrites {
                    tuple_keys: chunk.iter().map(TupleKey::from).collect(),
                    on_duplicate: String::new(),
                }),
                deletes: None,
                authorization_model_id: String::new(),
            })
            .await?;
        calls += 1;
    }
    let direct_elapsed = started.elapsed();

    // 3. A 10 percent change: every 20th tuple removed, n/20 new ones added.
    let mut changed: Vec<Tuple> = desired
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 20 != 0)
        .map(|(_, t)| t.clone())
        .collect();
    changed.extend(tuples("b", 0..n.div_ceil(20)));
    let started = Instant::now();
    let change = sync_tuples(
        &mut service,
        &store_sync,
        &changed,
        Current::Store(None),
        &options,
    )
    .await?;
    let change_elapsed = started.elapsed();

    println!(
        "fga sync [sync_tuples, {n} new tuples]: {sync_elapsed:.2?}, {:.0} tuples/s ({} write requests, {} read pages)",
        rate(n, sync_elapsed),
        report.write_requests,
        report.read_pages
    );
    println!(
        "fga sync [plain openfga-client write loop, {n} tuples]: {direct_elapsed:.2?}, {:.0} tuples/s ({calls} write calls of <= 100)",
        rate(n, direct_elapsed)
    );
    println!(
        "fga sync [10% change of {n}: {} deleted, {} written]: {change_elapsed:.2?} (read {} tuples in {} pages, {} write requests)",
        change.deleted.len(),
        change.written.len(),
        change.current,
        change.read_pages,
        change.write_requests
    );
    if let Some(rss) = fga.rss_mib() {
        println!("fga sync: OpenFGA RSS after the runs: {rss:.0} MiB");
    }
    Ok(())
}
