//! The account-operator binary as a child process, for the scenarios that start, kill and
//! restart it (not in `support`, which the examples share and which cannot name the binary).

#![allow(dead_code)] // each test binary uses part of it

use std::process::{Child, Command, Stdio};

use crate::support::operator_args;

/// The operator as a child process, killed when dropped (also when the test fails).
pub struct Operator(pub Child);

impl Operator {
    pub fn start(kubeconfig: &std::path::Path, log: &std::path::Path) -> Self {
        Self::start_with(kubeconfig, log, &[])
    }

    /// Starts it with `extra` flags, which replace the platform's flags of the same name.
    pub fn start_with(
        kubeconfig: &std::path::Path,
        log: &std::path::Path,
        extra: &[String],
    ) -> Self {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_account-operator"))
            .args(operator_args(kubeconfig).into_iter().filter(|arg| {
                let flag = arg.split('=').next();
                !extra.iter().any(|e| e.split('=').next() == flag)
            }))
            .args(extra)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    /// SIGKILL: no shutdown, no cleanup, work cut off wherever it was.
    pub fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
