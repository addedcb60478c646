//! SIGTERM and SIGINT complete the shutdown signal and cancel the token. Its own test binary:
//! once Tokio handles these signals they no longer kill the process.
#![allow(clippy::unwrap_used)]

use kit::shutdown::{ShutdownSignal, StopSignal, cancel_on_signal};
use tokio_util::sync::CancellationToken;

fn send(signal: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{signal}"), std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn signals_stop_the_process_gracefully() {
    let signal = ShutdownSignal::new().unwrap();
    send("TERM");
    assert_eq!(signal.recv().await, StopSignal::Terminate);

    let signal = ShutdownSignal::new().unwrap();
    send("INT");
    assert_eq!(signal.recv().await, StopSignal::Interrupt);

    let token = CancellationToken::new();
    let child = token.child_token();
    let watcher = cancel_on_signal(token.clone()).unwrap();
    send("TERM");
    child.cancelled().await;
    watcher.await.unwrap();
    assert!(token.is_cancelled());
}
