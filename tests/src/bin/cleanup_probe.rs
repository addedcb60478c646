//! platform-mesh-cleanup-probe, for `tests/cleanup.rs`: starts a kcp, an OpenFGA and the
//! operator binary given as its argument, each under the harness's watchdog, and the operator
//! once more as an [`OperatorChild`] (as the kill and restart scenarios run it), prints one line
//! `process <name> <pid> <state directory>` for each, then `running`, and waits to be killed.

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use harness::{Kcp, OpenFga, OperatorChild, ServerProcess, free_port};

/// How long the watchdog may take to write the operator's pid file.
const PID_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("platform-mesh-cleanup-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<Infallible, String> {
    let operator = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: platform-mesh-cleanup-probe <operator binary>")?;
    let (kcp, openfga) = tokio::join!(Kcp::fresh(), OpenFga::fresh());
    let state = tempfile::Builder::new()
        .prefix("pm-cleanup-probe-")
        .tempdir()
        .map_err(|e| format!("creating the operator's state directory: {e}"))?;
    let args = vec![
        format!("--kubeconfig={}", kcp.kubeconfig().display()),
        "--kubeconfig-context=root".to_owned(),
        format!("--metrics-bind-address=127.0.0.1:{}", free_port()),
        format!("--health-probe-bind-address=127.0.0.1:{}", free_port()),
        "--no-json".to_owned(),
    ];
    let process = ServerProcess::start("operator", &operator, &args, state.path(), true)
        .map_err(|e| format!("starting {}: {e}", operator.display()))?;
    let operator_pid = pid_of(&process).await?;
    // The scenarios that kill and restart an operator run it as a plain child instead; its
    // log goes into the watched operator's state directory, which the watchdog removes.
    let child_args: Vec<String> = args
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some((flag, _)) if flag.ends_with("-bind-address") => {
                format!("{flag}=127.0.0.1:{}", free_port())
            }
            _ => arg.clone(),
        })
        .collect();
    let child = OperatorChild::start(
        &operator.to_string_lossy(),
        child_args,
        &[],
        &state.path().join("operator-child.log"),
    );

    let kcp_pid = kcp.pid().ok_or("kcp has no pid")?;
    let openfga_pid = openfga.pid().ok_or("OpenFGA has no pid")?;
    for (name, pid, dir) in [
        ("kcp", kcp_pid, kcp.state_dir()),
        ("openfga", openfga_pid, openfga.state_dir()),
        ("operator", operator_pid, state.path()),
        ("operator-child", child.0.id(), state.path()),
    ] {
        println!("process {name} {pid} {}", dir.display());
    }
    println!("running");
    std::future::pending().await
}

/// The pid of `process`, once its watchdog has written it.
async fn pid_of(process: &ServerProcess) -> Result<u32, String> {
    let deadline = Instant::now() + PID_TIMEOUT;
    loop {
        if let Some(pid) = process.pid() {
            return Ok(pid);
        }
        if Instant::now() > deadline {
            return Err(format!("the operator has no pid after {PID_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
