//! The account-operator binary as a child process, for the scenarios that start, kill and
//! restart it (not in `support`, which the examples share and which cannot name the binary).

#![allow(dead_code)] // each test binary uses part of it

use std::time::Duration;

use harness::{OperatorChild, http_get};

use crate::support::operator_args;

/// The operator with the test platform's flags.
pub struct Operator;

impl Operator {
    pub fn start(kubeconfig: &std::path::Path, log: &std::path::Path) -> OperatorChild {
        Self::start_with(kubeconfig, log, &[])
    }

    /// Starts it with `extra` flags, which replace the platform's flags of the same name.
    pub fn start_with(
        kubeconfig: &std::path::Path,
        log: &std::path::Path,
        extra: &[String],
    ) -> OperatorChild {
        OperatorChild::start(
            env!("CARGO_BIN_EXE_account-operator"),
            operator_args(kubeconfig),
            extra,
            log,
        )
    }
}

/// Polls the operator's `/readyz` on `port` until its status is `code`, within `within`; the
/// body of that answer. Fails with the operator's log when it exits or the time is up.
pub async fn until_readyz(
    port: u16,
    code: u16,
    operator: &mut OperatorChild,
    log: &std::path::Path,
    within: Duration,
) -> String {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some((status, body)) = http_get(port, "/readyz").await
            && status == code
        {
            return body;
        }
        let exited = operator.0.try_wait().unwrap();
        assert!(
            exited.is_none() && tokio::time::Instant::now() < deadline,
            "/readyz never answered {code} (exited: {exited:?}); log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
