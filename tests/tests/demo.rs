//! The demo as a newcomer runs it: `--check` to the end, and the interactive mode stopped with
//! Ctrl-C, which a terminal sends to the whole foreground process group.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long one run of the demo may take before the test gives up (a warm run takes about a
/// minute; kcp's start on a busy machine several).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The processes the demo starts: OpenFGA, kcp, Keycloak and the four binaries.
const PROCESSES: usize = 7;

fn demo(args: &[&str]) -> Child {
    harness::build_demo_binaries().unwrap();
    // setpriv (util-linux) execs the demo with a parent-death signal: a SIGKILLed test
    // binary runs no Drop, and the demo would run on (its watchdogs clean up when it ends).
    let mut command = Command::new("setpriv");
    command
        .args([
            "--pdeathsig",
            "KILL",
            "--",
            env!("CARGO_BIN_EXE_platform-mesh-demo"),
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        // A group of its own, as a shell gives a foreground job: Ctrl-C signals all of it.
        .process_group(0);
    command.spawn().unwrap()
}

/// The demo's output lines as they come, on a channel (the reader ends with the output).
fn lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("demo| {line}");
            if send.send(line).is_err() {
                break;
            }
        }
    });
    receive
}

/// Reads lines until one contains `marker`; returns every line read.
fn read_until(lines: &mpsc::Receiver<String>, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(RUN_TIMEOUT) {
            Ok(line) => {
                let found = line.contains(marker);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(e) => panic!(
                "no line with {marker:?} ({e}); output:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// The process ids the demo's memory table names, besides its own.
fn started_pids(output: &[String]) -> Vec<u32> {
    output
        .iter()
        .filter(|l| !l.contains("this program"))
        .filter_map(|l| {
            l.split(" pid ")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn check_mode_holds_to_the_end_and_ctrl_c_stops_everything() {
    // --check: every step, then everything stopped, exit 0.
    let mut check = demo(&["--check"]);
    let output = lines(&mut check);
    let seen = read_until(&output, "Check mode: every step held.");
    let rest: Vec<String> = output.iter().collect();
    assert!(check.wait().unwrap().success(), "{}", rest.join("\n"));
    for step in 1..=11 {
        assert!(
            seen.iter().any(|l| l.starts_with(&format!("[{step}/11]"))),
            "step {step} missing"
        );
    }
    assert!(seen.iter().any(|l| l.contains("first Ready account")));
    assert!(
        seen.iter()
            .any(|l| l.contains("with her token, kcp lets her list Accounts")),
        "dana's Keycloak login did not work with kcp"
    );
    assert!(
        seen.iter()
            .any(|l| l
                .contains("an IdentityProviderConfiguration \"master\" is refused at admission")),
        "the security-operator's webhook, registered by the platform-mesh-operator, did not refuse"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("with her welcome token she creates Account gamma")),
        "erin's welcome-realm token did not let her create an organisation"
    );
    let pids = started_pids(&seen);
    assert_eq!(pids.len(), PROCESSES, "{seen:?}");
    assert!(
        rest.contains(&format!("Stopped {PROCESSES} processes.")),
        "{rest:?}"
    );
    assert!(pids.iter().all(|pid| !alive(*pid)));

    // Interactive: up until Ctrl-C, then everything stopped, exit 0.
    let mut interactive = demo(&[]);
    let output = lines(&mut interactive);
    let seen = read_until(&output, "Press Ctrl-C to stop everything.");
    let pids = started_pids(&seen);
    assert_eq!(pids.len(), PROCESSES, "{seen:?}");
    assert!(pids.iter().all(|pid| alive(*pid)), "all up before Ctrl-C");
    let group = format!("-{}", interactive.id());
    let sent = Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .unwrap();
    assert!(sent.success());
    let rest: Vec<String> = output.iter().collect();
    assert!(interactive.wait().unwrap().success(), "{rest:?}");
    assert!(
        rest.contains(&format!("Stopped {PROCESSES} processes.")),
        "{rest:?}"
    );
    let left: Vec<u32> = pids.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "still running after Ctrl-C: {left:?}");
}
