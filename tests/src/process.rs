//! Server processes that cannot outlive the test binary.
//!
//! The server runs under a small `bash` watchdog whose stdin is a pipe from the test binary.
//! Shared servers live in statics, which Rust never drops, so cleanup cannot rely on `Drop`:
//! when the test binary exits for any reason (pass, panic, a signal, SIGKILL) the kernel closes
//! the pipe, the watchdog's `read` returns, and it stops the server's whole process group and
//! removes its state directory.
//!
//! A signal sent to the test's whole process group (Ctrl-C on `cargo test`, a CI timeout's
//! SIGTERM or SIGKILL) must not reach the watchdog, or the server would outlive the test: the
//! watchdog leads a process group of its own (and ignores SIGINT, SIGTERM and SIGHUP besides),
//! so the pipe closing is the one thing that ends it. The server leads a session of its own
//! (`setsid`) and starts with the default signal dispositions, so that it stops on SIGTERM.
//!
//! Only the state directory is removed after a SIGKILL, when no `Drop` runs: files that must
//! not be left behind belong in it.

use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WATCHDOG: &str = r#"
# Its own process group keeps the test group's signals away; this is for a signal sent to the
# watchdog's group anyway, such as the SIGHUP the kernel sends a stopped group orphaned by the
# test's exit.
trap '' INT TERM HUP
# The subshell gives the server the default dispositions back, which `setsid … &` alone would
# not (it would inherit the ignored signals, and bash ignores INT and QUIT in a background
# command), so that it stops on SIGTERM; setsid makes it lead a session and process group of
# its own, so that the whole group can be stopped.
( trap - INT TERM HUP; exec setsid "$@" ) >"$SERVER_LOG" 2>&1 &
server=$!
echo "$server" >"$SERVER_PID_FILE"
read -r _ || true           # returns when the test binary closes the pipe (exit or drop)
kill -TERM -- "-$server" 2>/dev/null
i=0
while kill -0 "$server" 2>/dev/null && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL -- "-$server" 2>/dev/null
# A server killed just now may still be creating files, which would make `rm -rf` fail.
wait "$server" 2>/dev/null
[ -n "$SERVER_CLEANUP_DIR" ] && rm -rf "$SERVER_CLEANUP_DIR"
"#;

/// A server process under a watchdog; see the module docs.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    watchdog: Mutex<Child>,
    lifeline: Mutex<Option<ChildStdin>>,
    log: PathBuf,
    pid_file: PathBuf,
    started: Instant,
}

impl ServerProcess {
    /// Starts `program args…`, logging to `state_dir/<name>.log`. With `remove_state_dir`, the
    /// watchdog deletes `state_dir` after stopping the server.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[String],
        state_dir: &Path,
        remove_state_dir: bool,
    ) -> std::io::Result<Self> {
        let log = state_dir.join(format!("{name}.log"));
        let pid_file = state_dir.join(format!("{name}.pid"));
        let cleanup = if remove_state_dir {
            state_dir.as_os_str()
        } else {
            "".as_ref()
        };
        let watchdog = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(program)
            .args(args)
            .env("SERVER_LOG", &log)
            .env("SERVER_PID_FILE", &pid_file)
            .env("SERVER_CLEANUP_DIR", cleanup)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Out of the test's process group: see the module docs.
            .process_group(0)
            .spawn()?;
        let mut watchdog = watchdog;
        let lifeline = watchdog.stdin.take();
        Ok(Self {
            name: name.to_owned(),
            watchdog: Mutex::new(watchdog),
            lifeline: Mutex::new(lifeline),
            log,
            pid_file,
            started: Instant::now(),
        })
    }

    /// When the process was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The server's process id, once the watchdog has started it.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Resident memory of the server in MiB, from `/proc`.
    pub fn rss_mib(&self) -> Option<f64> {
        memory_mib(self.pid()?, "VmRSS:")
    }

    /// The most resident memory the server has had so far, in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        memory_mib(self.pid()?, "VmHWM:")
    }

    /// Whether the server was started and has exited. One read of the pid file: the watchdog
    /// creates it empty before writing the pid, so two reads could disagree.
    pub fn exited(&self) -> bool {
        self.pid()
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    }

    /// The last `lines` lines of the server's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until the server answers `GET /readyz` on loopback `port` with 200 (an operator's
    /// health port). A server that exits first, or is not ready `within`, is an error naming it,
    /// with the end of its log.
    pub async fn until_ready(&self, port: u16, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            if self.exited() {
                return Err(self.failed_to_start(within, "it exited"));
            }
            if let Some((200, _)) = crate::http_get(port, "/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(self.failed_to_start(within, "/readyz never answered 200"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A panic message for a server that did not come up.
    pub fn failed_to_start(&self, waited: Duration, why: &str) -> String {
        format!(
            "{} did not become ready within {waited:?} ({why}); log {}:\n{}",
            self.name,
            self.log.display(),
            self.log_tail(40)
        )
    }

    /// Stops the server now and waits for the watchdog to finish.
    pub fn stop(&self) {
        let lifeline = self.lifeline.lock().map(|mut l| l.take());
        if let Ok(Some(mut stdin)) = lifeline {
            let _ = stdin.write_all(b"stop\n");
        }
        if let Ok(mut watchdog) = self.watchdog.lock() {
            let _ = watchdog.wait();
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A failing test's own message rarely says what the server saw; CI keeps only the
        // output, not the state directory the log is in.
        if std::thread::panicking() {
            eprintln!(
                "--- the last lines of {} ({}):\n{}",
                self.name,
                self.log.display(),
                self.log_tail(60)
            );
        }
        self.stop();
    }
}

/// A memory figure of process `pid` from `/proc/<pid>/status` (`VmRSS:`, `VmHWM:` …), in MiB.
pub fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// A free TCP port on 127.0.0.1. The port is released before the server binds it, so another
/// process could take it in between; the servers fail loudly if that happens.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// The server under a [`Supervisor`]: the program as a child of a shell that starts it again,
/// with the same arguments, each time the start file appears. The watchdog's SIGTERM to the
/// process group reaches both; the trap waits for the program, so that the watchdog's wait for
/// its server covers the program too and the state directory is removed only after it is gone.
/// `$1` is the pid file, `$2` the start file, the rest the program's command line.
const SUPERVISOR: &str = r#"
pid_file=$1 start_file=$2
shift 2
server=
trap 'if [ -n "$server" ]; then kill -TERM "$server" 2>/dev/null; wait "$server"; fi; exit 0' TERM
while :; do
    rm -f "$start_file"
    "$@" &
    server=$!
    echo "$server" >"$pid_file"
    wait "$server"
    echo "supervisor: the server exited with status $?; waiting to start it again" >&2
    server=
    until [ -e "$start_file" ]; do sleep 0.1; done
done
"#;

/// How a test stops a server (a kcp, a kcp shard) and starts it again on the same state,
/// ports and flags: the [`ServerProcess`] runs the program under a supervising shell, and
/// these are the files through which the test and that shell talk.
#[derive(Debug)]
pub struct Supervisor {
    /// The pid of the program started last, written by the supervisor at each start; removed
    /// by [`Supervisor::stop`] once that program has exited, so that no later signal reaches
    /// a reused pid.
    pid_file: PathBuf,
    /// Created by the test to have the program started again.
    start_file: PathBuf,
}

impl Supervisor {
    /// A supervisor keeping its files in `state_dir`, and the program and arguments to give
    /// [`ServerProcess::start`] to run `program args…` under it.
    pub fn wrap(
        state_dir: &Path,
        program: &Path,
        args: Vec<String>,
    ) -> (Self, PathBuf, Vec<String>) {
        let supervisor = Supervisor {
            pid_file: state_dir.join("supervised.pid"),
            start_file: state_dir.join("supervised.start"),
        };
        let supervised = [
            vec![
                "-c".to_owned(),
                SUPERVISOR.to_owned(),
                "supervisor".to_owned(),
                supervisor.pid_file.display().to_string(),
                supervisor.start_file.display().to_string(),
                program.display().to_string(),
            ],
            args,
        ]
        .concat();
        (supervisor, PathBuf::from("bash"), supervised)
    }

    /// The program's process id; `None` while it is stopped.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the program was started and has exited. One read of the pid file: see
    /// [`ServerProcess::exited`].
    pub fn exited(&self) -> bool {
        self.pid()
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
    }

    /// Stops the program with SIGTERM, as its watchdog would, and waits until it has exited,
    /// for at most `timeout`; panics with `server`'s log after that, or when it is not running.
    pub async fn stop(&self, server: &ServerProcess, timeout: Duration) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running: {}", server.name, server.log_tail(20)));
        let killed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap_or_else(|e| panic!("running kill: {e}"));
        assert!(killed.success(), "kill -TERM {pid}: {killed}");
        let stopping = Instant::now();
        // The supervisor, waiting for the program, reaps it at once: no zombie keeps /proc/<pid>.
        while !self.exited() {
            assert!(
                stopping.elapsed() < timeout,
                "{} (pid {pid}) still running {timeout:?} after SIGTERM; log:\n{}",
                server.name,
                server.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        std::fs::remove_file(&self.pid_file)
            .unwrap_or_else(|e| panic!("removing {}: {e}", self.pid_file.display()));
    }

    /// Has the supervisor start the stopped program again.
    pub fn start_again(&self) {
        std::fs::write(&self.start_file, "")
            .unwrap_or_else(|e| panic!("writing {}: {e}", self.start_file.display()));
    }
}
