//! The account-operator binary as a child process, for the scenarios that start, kill and
//! restart it (not in `support`, which the examples share and which cannot name the binary).

#![allow(dead_code)] // each test binary uses part of it

use harness::OperatorChild;

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
