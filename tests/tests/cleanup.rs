//! Nothing the harness starts outlives a signal to the whole process group of the test run:
//! Ctrl-C on `cargo test` (SIGINT), a CI timeout's SIGTERM or SIGKILL. A probe program starts
//! kcp, OpenFGA and an operator under the harness's watchdogs, and an operator as a plain
//! child (as the kill and restart scenarios start it), in a process group of its own,
//! as a shell runs a job; the test signals that group and waits for every server and every
//! state directory to be gone.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The signals, by `kill -s` name and number.
const SIGNALS: [(&str, i32); 3] = [("INT", 2), ("TERM", 15), ("KILL", 9)];

/// How long the watchdogs may take to stop everything: a server that ignores SIGTERM gets
/// SIGKILL after 5 s.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A process the probe reported: its name, pid and state directory.
#[derive(Debug)]
struct Started {
    name: String,
    pid: u32,
    dir: PathBuf,
}

/// The probe, killed with its whole group when dropped unless it has ended, so that a failing
/// test leaves nothing running either (and no reused pid is signalled).
struct Probe(Child);

impl Drop for Probe {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            signal_group(self.0.id(), "KILL");
            let _ = self.0.wait();
        }
    }
}

/// `kill -s <signal> -- -<group>`; whether it was sent.
fn signal_group(group: u32, signal: &str) -> bool {
    Command::new("kill")
        .args(["-s", signal, "--", &format!("-{group}")])
        .status()
        .is_ok_and(|status| status.success())
}

/// Whether `pid` runs (a zombie has ended: it only waits to be reaped).
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the command, which may hold spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Starts the probe, waits until it runs everything, signals its group with `signal`
/// (number `number`) and waits until every process it started and its state directory are
/// gone; `Err` names what is left, or what went wrong before.
fn leaves_nothing_behind(signal: &str, number: i32, operator: &Path) -> Result<(), String> {
    let mut probe = Command::new(env!("CARGO_BIN_EXE_platform-mesh-cleanup-probe"));
    probe
        .arg(operator)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .process_group(0);
    let mut probe = Probe(probe.spawn().unwrap());
    let group = probe.0.id();

    // The probe's startup has deadlines of its own (kcp's and OpenFGA's), after which it exits
    // and its output ends.
    let mut started = Vec::new();
    let mut output = BufReader::new(probe.0.stdout.take().unwrap()).lines();
    loop {
        let Some(Ok(line)) = output.next() else {
            return Err(format!(
                "the probe ended before it ran everything: {:?}",
                probe.0.wait()
            ));
        };
        println!("SIG{signal} probe| {line}");
        if line == "running" {
            break;
        }
        if let Some(fields) = line.strip_prefix("process ") {
            let mut fields = fields.splitn(3, ' ');
            let (Some(name), Some(pid), Some(dir)) = (fields.next(), fields.next(), fields.next())
            else {
                return Err(format!("a process line without name, pid and dir: {line}"));
            };
            started.push(Started {
                name: name.to_owned(),
                pid: pid.parse().map_err(|e| format!("{line}: {e}"))?,
                dir: PathBuf::from(dir),
            });
        }
    }
    let names: Vec<&str> = started.iter().map(|s| s.name.as_str()).collect();
    if names != ["kcp", "openfga", "operator", "operator-child"] {
        return Err(format!("the probe started {names:?}"));
    }
    for process in &started {
        if !alive(process.pid) || !process.dir.is_dir() {
            return Err(format!("{process:?} is not up before SIG{signal}"));
        }
    }

    if !signal_group(group, signal) {
        return Err(format!("kill -s {signal} -- -{group} failed"));
    }
    let status = probe.0.wait().unwrap();
    if status.signal() != Some(number) {
        return Err(format!("the probe ended with {status}, not by SIG{signal}"));
    }

    let deadline = Instant::now() + CLEANUP_TIMEOUT;
    loop {
        let left: Vec<String> = started
            .iter()
            .flat_map(|s| {
                let running = alive(s.pid).then(|| format!("{} (pid {}) runs", s.name, s.pid));
                let dir = s
                    .dir
                    .exists()
                    .then(|| format!("{}'s state directory {} exists", s.name, s.dir.display()));
                running.into_iter().chain(dir)
            })
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{CLEANUP_TIMEOUT:?} after SIG{signal}: {}",
                left.join("; ")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sigint_sigterm_and_sigkill_to_the_test_group_leave_no_server_and_no_state() {
    let operator = harness::build_binary("account-operator", "account-operator").unwrap();
    // All three at once: each waits mostly for its kcp to start.
    let runs: Vec<_> = SIGNALS
        .into_iter()
        .map(|(signal, number)| {
            let operator = operator.clone();
            let run = std::thread::spawn(move || leaves_nothing_behind(signal, number, &operator));
            (signal, run)
        })
        .collect();
    let failures: Vec<String> = runs
        .into_iter()
        .filter_map(|(signal, run)| match run.join() {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("SIG{signal}: {e}")),
            Err(_) => Some(format!("SIG{signal}: the run panicked (above)")),
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
