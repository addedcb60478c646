//! One real OpenFGA server per test binary (memory datastore), and OpenFGAs of their own: on
//! the memory datastore, or on a SQLite database that outlives the server, for tests that stop
//! OpenFGA and start it again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openfga_client::client::{ListStoresRequest, OpenFgaServiceClient};
use openfga_client::tonic::transport::Channel;
use tokio::sync::OnceCell;

use crate::process::{ServerProcess, free_port};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `openfga run`, gRPC and HTTP on free ports and metrics off (so instances never
/// collide on the default metrics port), on the in-memory datastore unless made with
/// [`OpenFga::sqlite`].
#[derive(Debug)]
pub struct OpenFga {
    // Declared before `datastore`: dropped first, so the server is stopped before a SQLite
    // datastore's keeper removes the state directory under it.
    process: ServerProcess,
    datastore: Datastore,
    binary: PathBuf,
    /// How many times the server was started; names each run's log and database.
    runs: u32,
    grpc_port: u16,
    http_port: u16,
    /// Time from spawn to the first answered gRPC request (of the latest start).
    pub startup: Duration,
    state: tempfile::TempDir,
}

/// Where an OpenFGA keeps its data.
#[derive(Debug)]
enum Datastore {
    /// In memory: gone when the server stops.
    Memory,
    /// A SQLite database in the state directory, which outlives the server.
    Sqlite {
        database: PathBuf,
        /// `sleep` under the watchdog, held for its cleanup alone: the servers run with
        /// `remove_state_dir` off so that stopping one keeps the database, and this one's
        /// watchdog removes the state directory when the test binary exits, even on SIGKILL.
        _keeper: ServerProcess,
    },
}

static SHARED: OnceCell<OpenFga> = OnceCell::const_new();

impl OpenFga {
    /// The OpenFGA of this test binary, started on first use. Panics, with the command that
    /// builds it, when the openfga binary is missing.
    pub async fn shared() -> &'static OpenFga {
        SHARED.get_or_init(|| Self::start(false)).await
    }

    /// An OpenFGA of its own, stopped (its state removed) when dropped.
    pub async fn fresh() -> OpenFga {
        Self::start(false).await
    }

    /// An OpenFGA of its own on a SQLite database in its state directory, stopped (its state
    /// removed) when dropped. It can be stopped ([`OpenFga::stop`]) and started again on the
    /// same ports, with the same database ([`OpenFga::start_again`]) or a new empty one
    /// ([`OpenFga::start_empty`]).
    pub async fn sqlite() -> OpenFga {
        Self::start(true).await
    }

    async fn start(sqlite: bool) -> OpenFga {
        let binary = xtask::binary("openfga").unwrap_or_else(|e| panic!("{e}"));
        let state = tempfile::Builder::new()
            .prefix("pm-openfga-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating OpenFGA's state directory: {e}"));
        let (grpc_port, http_port) = (free_port(), free_port());
        let datastore = if sqlite {
            let keeper = ServerProcess::start(
                "openfga-state",
                Path::new("sleep"),
                &["infinity".to_owned()],
                state.path(),
                true,
            )
            .unwrap_or_else(|e| panic!("starting the keeper of OpenFGA's state: {e}"));
            let database = state.path().join("openfga.sqlite");
            migrate(&binary, &database).await;
            Datastore::Sqlite {
                database,
                _keeper: keeper,
            }
        } else {
            Datastore::Memory
        };
        let args = run_args(&datastore, grpc_port, http_port);
        // The memory datastore's server takes its state directory with it; a SQLite one's is
        // the keeper's to remove.
        let process = ServerProcess::start("openfga", &binary, &args, state.path(), !sqlite)
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let startup = until_answers(&process, grpc_port).await;
        OpenFga {
            process,
            datastore,
            binary,
            runs: 1,
            grpc_port,
            http_port,
            startup,
            state,
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and waits until it is gone. A SQLite
    /// database stays for [`OpenFga::start_again`]; the memory datastore is lost, and with it
    /// the state directory.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts a stopped SQLite OpenFGA again (a running one is stopped first) on the same ports
    /// and database; returns when it answers. Panics for the memory datastore, which cannot be
    /// started again.
    pub async fn start_again(&mut self) {
        self.restart().await;
    }

    /// Starts a stopped SQLite OpenFGA again (a running one is stopped first) on the same ports
    /// with a new, empty database: every store is lost, as when a datastore is lost entirely.
    /// Returns when it answers. Panics for the memory datastore.
    pub async fn start_empty(&mut self) {
        let Datastore::Sqlite { database, .. } = &mut self.datastore else {
            panic!("only an OpenFGA on SQLite can be started again");
        };
        // A new file rather than the old one removed: nothing of the old database (its
        // journal files) can leak into the new one.
        *database = self
            .state
            .path()
            .join(format!("openfga-{}.sqlite", self.runs + 1));
        migrate(&self.binary, database).await;
        self.restart().await;
    }

    async fn restart(&mut self) {
        assert!(
            matches!(self.datastore, Datastore::Sqlite { .. }),
            "only an OpenFGA on SQLite can be started again"
        );
        // Stopped already, normally; a running one would hold the ports.
        self.process.stop();
        self.runs += 1;
        let args = run_args(&self.datastore, self.grpc_port, self.http_port);
        // Each run logs to a file of its own, so the earlier runs' logs stay readable.
        let name = format!("openfga-{}", self.runs);
        self.process = ServerProcess::start(&name, &self.binary, &args, self.state.path(), false)
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.binary.display()));
        self.startup = until_answers(&self.process, self.grpc_port).await;
    }

    /// Its state directory (its logs, a SQLite database), which the watchdog removes with it.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// The gRPC endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// The gRPC address.
    pub fn grpc_address(&self) -> std::net::SocketAddr {
        (std::net::Ipv4Addr::LOCALHOST, self.grpc_port).into()
    }

    /// The HTTP API base URL.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// OpenFGA's resident memory now, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        self.process.rss_mib()
    }

    /// OpenFGA's process id.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// A gRPC client connected to this server.
    pub async fn client(&self) -> OpenFgaServiceClient<Channel> {
        OpenFgaServiceClient::connect(self.grpc_endpoint())
            .await
            .unwrap_or_else(|e| panic!("connecting to OpenFGA at {}: {e}", self.grpc_endpoint()))
    }
}

/// The arguments of `openfga run` on `datastore`.
fn run_args(datastore: &Datastore, grpc_port: u16, http_port: u16) -> Vec<String> {
    let mut args = vec!["run".to_owned()];
    match datastore {
        Datastore::Memory => args.push("--datastore-engine=memory".to_owned()),
        Datastore::Sqlite { database, .. } => args.extend([
            "--datastore-engine=sqlite".to_owned(),
            format!("--datastore-uri=file:{}", database.display()),
        ]),
    }
    args.extend([
        format!("--grpc-addr=127.0.0.1:{grpc_port}"),
        format!("--http-addr=127.0.0.1:{http_port}"),
        "--metrics-enabled=false".to_owned(),
        "--playground-enabled=false".to_owned(),
        "--log-level=warn".to_owned(),
    ]);
    args
}

/// Creates OpenFGA's schema in a SQLite database (`openfga run` does not).
async fn migrate(binary: &Path, database: &Path) {
    let output = tokio::process::Command::new(binary)
        .args([
            "migrate".to_owned(),
            "--datastore-engine=sqlite".to_owned(),
            format!("--datastore-uri=file:{}", database.display()),
        ])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {} migrate: {e}", binary.display()));
    assert!(
        output.status.success(),
        "openfga migrate of {} failed ({}):\n{}{}",
        database.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Waits until the server answers gRPC on `grpc_port`; returns the time since it was spawned.
/// Panics, with the end of its log, when it exits first or does not answer in time.
async fn until_answers(process: &ServerProcess, grpc_port: u16) -> Duration {
    let started = process.started();
    let endpoint = format!("http://127.0.0.1:{grpc_port}");
    loop {
        if started.elapsed() > STARTUP_TIMEOUT {
            panic!("{}", process.failed_to_start(STARTUP_TIMEOUT, "timeout"));
        }
        if process.exited() {
            panic!(
                "{}",
                process.failed_to_start(started.elapsed(), "openfga exited")
            );
        }
        if answers(&endpoint).await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn answers(endpoint: &str) -> bool {
    let Ok(mut client) = OpenFgaServiceClient::connect(endpoint.to_owned()).await else {
        return false;
    };
    client
        .list_stores(ListStoresRequest::default())
        .await
        .is_ok()
}
