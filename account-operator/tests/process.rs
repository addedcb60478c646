//! The account-operator binary tells the truth about itself: `/readyz` answers 200 only once
//! its controllers' watches synced, 503 while kcp cannot be reached and 200 again when it can,
//! and a part that cannot work (here the webhook server,
//! without its certificate) ends the process with a non-zero status naming it, instead of
//! leaving a process that does nothing and answers 200.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod operator;
mod support;

use std::time::Duration;

use harness::{Kcp, TcpProxy, free_port, http_get as get};
use operator::{Operator, until_readyz};

/// How long `/readyz` may take to answer what a step expects.
const READYZ_WITHIN: Duration = Duration::from_secs(120);

#[tokio::test]
async fn readyz_answers_once_the_watches_synced() {
    let kcp = Kcp::shared().await;
    let (_, kubeconfig) = support::set_up(kcp).await;
    let port = free_port();
    let log = kubeconfig.with_file_name("account-operator-readyz.log");
    let mut operator = Operator::start_with(
        &kubeconfig,
        &log,
        &[format!("--health-probe-bind-address=127.0.0.1:{port}")],
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        match get(port, "/readyz").await {
            Some((200, body)) => {
                assert_eq!(body, "ok");
                break;
            }
            Some((503, body)) => assert!(body.starts_with("not ready: "), "{body}"),
            Some(other) => panic!("unexpected /readyz answer {other:?}"),
            None => {}
        }
        let exited = operator.0.try_wait().unwrap();
        assert!(
            exited.is_none() && tokio::time::Instant::now() < deadline,
            "never ready (exited: {exited:?}); log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(port, "/healthz").await, Some((200, "ok".to_owned())));
}

#[tokio::test]
async fn readyz_turns_false_while_kcp_is_unreachable_and_true_when_it_is_back() {
    let kcp = Kcp::shared().await;
    let (_, kubeconfig) = support::set_up(kcp).await;
    // The operator reaches its endpoint slice through the proxy.
    let proxy = TcpProxy::to_kcp(kcp).await;
    let proxied = proxy.kubeconfig(&kubeconfig, "account-operator-proxied.kubeconfig");
    let port = free_port();
    let log = kubeconfig.with_file_name("account-operator-outage.log");
    let mut operator = Operator::start_with(
        &proxied,
        &log,
        &[format!("--health-probe-bind-address=127.0.0.1:{port}")],
    );
    until_readyz(port, 200, &mut operator, &log, READYZ_WITHIN).await;

    proxy.set_cut(true);
    let why = until_readyz(port, 503, &mut operator, &log, READYZ_WITHIN).await;
    assert!(
        why.contains("AccountReconciler") && why.contains("has been failing"),
        "{why}"
    );
    // Still serving /healthz: it is alive, only not ready.
    assert_eq!(get(port, "/healthz").await, Some((200, "ok".to_owned())));

    proxy.set_cut(false);
    until_readyz(port, 200, &mut operator, &log, READYZ_WITHIN).await;
}

#[tokio::test]
async fn a_webhook_server_without_its_certificate_ends_the_process_naming_it() {
    let kcp = Kcp::shared().await;
    let (_, kubeconfig) = support::set_up(kcp).await;
    let certs = tempfile::tempdir().unwrap();
    let log = kubeconfig.with_file_name("account-operator-nocert.log");
    let mut operator = Operator::start_with(
        &kubeconfig,
        &log,
        &[
            "--webhooks-enabled".to_owned(),
            format!("--webhooks-port={}", free_port()),
            format!("--webhooks-cert-dir={}", certs.path().display()),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = operator.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running without its certificate"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status}");
    let output = std::fs::read_to_string(&log).unwrap();
    let expected = format!(
        "account-operator: webhook server: reading the webhook TLS file {}",
        certs.path().join("tls.crt").display()
    );
    assert!(output.contains(&expected), "{output}");
}
