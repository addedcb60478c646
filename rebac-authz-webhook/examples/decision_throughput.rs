//! Benchmark (run by `cargo xtask bench`, printed, never asserted): the webhook's decisions
//! per second and latency (p50, p99) over HTTPS, against the real OpenFGA, for workspaces it
//! has cached, next to OpenFGA's own Check of the same questions (the Check each decision
//! makes, sent straight to OpenFGA over gRPC), in the same run, interleaved (webhook, OpenFGA,
//! webhook, …) so machine noise hits both.
//!
//! The platform is the scenarios' (`tests/support`): kcp, OpenFGA, both operators, the webhook
//! binary (built into this example's profile first). The questions: alice (owner) and bob
//! (nobody) listing Accounts, reading Accounts and ConfigMaps of an org's account workspace.

#![allow(clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, Request};
use futures::StreamExt;
use harness::AuthorizingKcp;
use kcp::ClusterName;
use kube::client::Body;
use rebac_authz_webhook::decide::{self, Plan, ResourceInfo, Rules, Tenant, View, Workspace};
use rebac_authz_webhook::review::decode;
use rebac_authz_webhook::server::check_request;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

/// Requests per round and contender.
const REQUESTS: usize = 4000;
/// Rounds per contender.
const ROUNDS: usize = 3;
/// Requests in flight at once: one (the latency a single request sees), and loads of a busy
/// kcp asking over many connections.
const CONCURRENCY: [usize; 3] = [1, 8, 32];

/// The one workspace the questions are about, as the webhook's directory knows it.
struct Known {
    tenant: Tenant,
}

impl View for Known {
    fn orgs_cluster(&self) -> Option<ClusterName> {
        None
    }
    fn orgs_store(&self) -> Option<String> {
        None
    }
    fn workspace(&self, _: &ClusterName) -> Workspace {
        Workspace::Tenant(self.tenant.clone())
    }
    fn resource(&self, _: &ClusterName, group: &str, resource: &str) -> Option<ResourceInfo> {
        let (singular, scope) = match (group, resource) {
            ("core.platform-mesh.io", "accounts") => {
                ("account", fga::platform_mesh::ResourceScope::Cluster)
            }
            ("", "configmaps") => ("configmap", fga::platform_mesh::ResourceScope::Namespaced),
            _ => return None,
        };
        Some(ResourceInfo {
            singular: singular.into(),
            scope,
        })
    }
    fn may_retry(&self, _: &ClusterName) -> bool {
        false
    }
}

/// `(decisions per second, p50, p99)` of one contender over its rounds.
fn summary(samples: &mut [Duration], elapsed: Duration) -> (f64, Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (
        samples.len() as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
    )
}

/// Runs `REQUESTS` calls of `call` over the questions, `concurrency` at once: each latency,
/// and the wall time.
async fn round<F, Fut>(count: usize, concurrency: usize, call: F) -> (Vec<Duration>, Duration)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let latencies = futures::stream::iter(0..REQUESTS)
        .map(|i| {
            let call = call(i % count);
            async move {
                let at = Instant::now();
                call.await;
                at.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
    (latencies, started.elapsed())
}

async fn bench() -> Result<(), String> {
    println!("building the webhook binary …");
    harness::build_binary("rebac-authz-webhook", "rebac-authz-webhook")?;
    println!("starting kcp, OpenFGA, the operators and the webhook …");
    support::platform().await;
    let orgs = support::orgs_workspace().await;
    let (acme, team) = support::acme_with_team(&orgs).await;
    let authz = AuthorizingKcp::shared().await;
    let cluster = team.cluster.as_str();
    let group = "core.platform-mesh.io";
    let mut reviews: Vec<Value> = Vec::new();
    for i in 0..16 {
        reviews.push(support::review(
            "alice", cluster, "list", group, "accounts", "",
        ));
        reviews.push(support::review(
            "bob", cluster, "list", group, "accounts", "",
        ));
        reviews.push(support::review(
            "alice",
            cluster,
            "get",
            group,
            "accounts",
            &format!("a{i}"),
        ));
        let mut configmap =
            support::review("alice", cluster, "get", "", "configmaps", &format!("cm{i}"));
        configmap["spec"]["resourceAttributes"]["namespace"] = "default".into();
        reviews.push(configmap);
    }
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        reviews
            .iter()
            .map(|r| serde_json::to_vec(r).unwrap())
            .collect(),
    );

    // The same Checks, planned as the webhook plans them for this workspace.
    let known = Known {
        tenant: Tenant {
            store: support::store_id(&orgs, acme.path.base()).await,
            account: fga::platform_mesh::account_object(acme.cluster.as_str(), "team"),
        },
    };
    let rules = Rules {
        cluster_key: support::CLUSTER_KEY.into(),
        allowed_nonresource_prefixes: Vec::new(),
        retry_after: Duration::from_secs(1),
        deny_unpermitted_binds: false,
    };
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        axum::http::header::CONTENT_TYPE,
        "application/json".parse().unwrap(),
    );
    let checks: Arc<Vec<_>> = Arc::new(
        bodies
            .iter()
            .map(|body| {
                let review = decode(&headers, body).unwrap();
                match decide::plan(&review.question, &rules, &known) {
                    (_, Plan::Check(check)) => check_request(&check),
                    other => panic!("no check for {review:?}: {other:?}"),
                }
            })
            .collect(),
    );

    // One HTTPS client with a connection pool, as kcp's webhook client keeps one.
    kcp::client::install_crypto_provider();
    let mut config = kube::Config::new(
        format!("https://{}", authz.webhook_address())
            .parse()
            .unwrap(),
    );
    config.root_cert = Some(vec![
        CertificateDer::from_pem_slice(authz.ca_pem().as_bytes())
            .unwrap()
            .to_vec(),
    ]);
    config.default_retry = false;
    let https = kube::Client::try_from(config).map_err(|e| e.to_string())?;
    let answer = |i: usize| {
        let (https, bodies) = (https.clone(), bodies.clone());
        async move {
            let request = Request::builder()
                .method(Method::POST)
                .uri("/authz")
                .header("content-type", "application/json")
                .body(Body::from(bodies[i].clone()))
                .unwrap();
            let response = https.send(request).await.unwrap();
            assert_eq!(response.status(), 200);
            response.into_body().collect_bytes().await.unwrap();
        }
    };
    // Until the webhook has engaged the workspace, its first answers are retries.
    harness::eventually("the webhook to allow alice", || async {
        let (_, body) = support::post(authz.webhook_address(), "/authz", &bodies[0]).await;
        body.contains("\"allowed\":true").then_some(())
    })
    .await;
    let fga = harness::OpenFga::shared().await.client().await;
    let check = |i: usize| {
        let (mut fga, checks) = (fga.clone(), checks.clone());
        async move {
            fga.check(checks[i].clone()).await.unwrap();
        }
    };
    // Warm both paths once.
    round(bodies.len(), 8, answer).await;
    round(bodies.len(), 8, check).await;

    let mut table = Vec::new();
    for concurrency in CONCURRENCY {
        let (mut webhook, mut openfga) = (Vec::new(), Vec::new());
        let (mut webhook_time, mut openfga_time) = (Duration::ZERO, Duration::ZERO);
        for r in 1..=ROUNDS {
            println!(
                "{concurrency} in flight, round {r}/{ROUNDS}: {REQUESTS} decisions through the \
                 webhook, {REQUESTS} Checks"
            );
            let (samples, took) = round(bodies.len(), concurrency, answer).await;
            webhook.extend(samples);
            webhook_time += took;
            let (samples, took) = round(bodies.len(), concurrency, check).await;
            openfga.extend(samples);
            openfga_time += took;
        }
        table.push((
            concurrency,
            summary(&mut webhook, webhook_time),
            summary(&mut openfga, openfga_time),
        ));
    }
    println!();
    println!(
        "{} questions, {} samples per row and contender:",
        bodies.len(),
        REQUESTS * ROUNDS
    );
    println!(
        "{:>9} {:<27} {:>10} {:>10} {:>10} {:>12}",
        "in flight", "", "per second", "p50", "p99", "p99 - FGA's"
    );
    for (concurrency, (w_rate, w50, w99), (o_rate, o50, o99)) in table {
        println!(
            "{concurrency:>9} {:<27} {w_rate:>10.0} {w50:>10.2?} {w99:>10.2?} {:>12.2?}",
            "webhook (HTTPS, decision)",
            w99.saturating_sub(o99)
        );
        println!(
            "{:>9} {:<27} {o_rate:>10.0} {o50:>10.2?} {o99:>10.2?}",
            "", "OpenFGA Check (gRPC)"
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    match runtime.block_on(bench()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("decision_throughput: {e}");
            ExitCode::FAILURE
        }
    }
}
