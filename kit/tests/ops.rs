//! The ops server over real HTTP: /healthz, /readyz before and after ready, /metrics.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kit::ops::{OpsServer, Readiness};
use lifecycle::{Method, Metrics, Outcome};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// A plain HTTP/1.1 GET; returns the status code and the body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let mut registry = Registry::default();
    let metrics = Metrics::register(&mut registry);
    // Another component's family in the same registry.
    let other = Counter::<u64>::default();
    registry.register(
        "account_operator_accounts_reconciled",
        "test",
        other.clone(),
    );
    other.inc();
    metrics.observe_reconcile("account", "success", Duration::from_millis(5));
    metrics.observe_subroutine(
        "account",
        "WorkspaceSubroutine",
        Method::Process,
        &Ok(Outcome::Ok),
        Duration::from_millis(2),
    );

    let readiness = Readiness::default();
    let server = OpsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        Arc::new(registry),
        readiness.clone(),
    )
    .await
    .unwrap();
    let addr = server.local_addr();
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(server.serve(shutdown.clone().cancelled_owned()));

    assert_eq!(get(addr, "/healthz").await, (200, "ok".to_owned()));
    let (code, body) = get(addr, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not ready"), "{body}");

    readiness.set_ready();
    assert_eq!(get(addr, "/readyz").await.0, 200);
    readiness.set_not_ready();
    assert_eq!(get(addr, "/readyz").await.0, 503);

    let (code, body) = get(addr, "/metrics").await;
    assert_eq!(code, 200);
    for name in [
        r#"lifecycle_reconcile_total{controller="account",result="success"} 1"#,
        "lifecycle_reconcile_duration_seconds_bucket",
        r#"lifecycle_subroutine_duration_seconds_count{controller="account",subroutine="WorkspaceSubroutine",action="process",outcome="ok"} 1"#,
        "account_operator_accounts_reconciled_total 1",
        "# EOF",
    ] {
        assert!(body.contains(name), "missing {name} in\n{body}");
    }
    assert_eq!(get(addr, "/nope").await.0, 404);

    shutdown.cancel();
    serving.await.unwrap().unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn a_taken_port_is_a_clear_error() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let error = OpsServer::bind(
        addr.parse().unwrap(),
        Arc::new(Registry::default()),
        Readiness::default(),
    )
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with(&format!("binding the ops server to {addr}")),
        "{error}"
    );
}
