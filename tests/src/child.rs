//! An operator binary as a child process, for the scenarios that start, kill and restart it.

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// An operator as a child process, killed when dropped (also when the test fails), and by the
/// kernel when the thread that started it ends: a SIGKILLed test binary runs no `Drop`, and
/// the operator would outlive it.
#[derive(Debug)]
pub struct OperatorChild(pub Child);

impl OperatorChild {
    /// Starts `binary` with `args`, except those `extra` replaces (same flag name), then
    /// `extra`; its output goes to `log`.
    pub fn start(binary: &str, args: Vec<String>, extra: &[String], log: &Path) -> Self {
        let log = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let output = log
            .try_clone()
            .unwrap_or_else(|e| panic!("duplicating the log handle: {e}"));
        // setpriv (util-linux) sets the parent-death signal and then execs the binary, so the
        // child is the operator itself: its pid, its exit status, a kill reaches it.
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--", binary])
            .args(args.into_iter().filter(|arg| {
                let flag = arg.split('=').next();
                !extra.iter().any(|e| e.split('=').next() == flag)
            }))
            .args(extra)
            .stdout(output)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary} under setpriv (util-linux): {e}"));
        Self(child)
    }

    /// SIGKILL: no shutdown, no cleanup, work cut off wherever it was.
    pub fn kill(mut self) {
        self.0
            .kill()
            .unwrap_or_else(|e| panic!("killing the operator: {e}"));
        self.0
            .wait()
            .unwrap_or_else(|e| panic!("reaping the operator: {e}"));
    }
}

impl Drop for OperatorChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
