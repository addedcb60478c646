//! One real OpenFGA server per test binary (memory datastore).

use std::time::Duration;

use openfga_client::client::{ListStoresRequest, OpenFgaServiceClient};
use openfga_client::tonic::transport::Channel;
use tokio::sync::OnceCell;

use crate::process::{ServerProcess, free_port};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `openfga run` with the in-memory datastore, gRPC and HTTP on free ports and
/// metrics off (so instances never collide on the default metrics port).
#[derive(Debug)]
pub struct OpenFga {
    process: ServerProcess,
    grpc_port: u16,
    http_port: u16,
    /// Time from spawn to the first answered gRPC request.
    pub startup: Duration,
    state: tempfile::TempDir,
}

static SHARED: OnceCell<OpenFga> = OnceCell::const_new();

impl OpenFga {
    /// The OpenFGA of this test binary, started on first use. Panics, with the command that
    /// builds it, when the openfga binary is missing.
    pub async fn shared() -> &'static OpenFga {
        SHARED.get_or_init(Self::start).await
    }

    /// An OpenFGA of its own, stopped (its state removed) when dropped.
    pub async fn fresh() -> OpenFga {
        Self::start().await
    }

    async fn start() -> OpenFga {
        let binary = xtask::binary("openfga").unwrap_or_else(|e| panic!("{e}"));
        let state = tempfile::Builder::new()
            .prefix("pm-openfga-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating OpenFGA's state directory: {e}"));
        let (grpc_port, http_port) = (free_port(), free_port());
        let args = vec![
            "run".to_owned(),
            "--datastore-engine=memory".to_owned(),
            format!("--grpc-addr=127.0.0.1:{grpc_port}"),
            format!("--http-addr=127.0.0.1:{http_port}"),
            "--metrics-enabled=false".to_owned(),
            "--playground-enabled=false".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        let process = ServerProcess::start("openfga", &binary, &args, state.path(), true)
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
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
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        OpenFga {
            startup: started.elapsed(),
            process,
            grpc_port,
            http_port,
            state,
        }
    }

    /// Its state directory (its log), which the watchdog removes with it.
    pub fn state_dir(&self) -> &std::path::Path {
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

async fn answers(endpoint: &str) -> bool {
    let Ok(mut client) = OpenFgaServiceClient::connect(endpoint.to_owned()).await else {
        return false;
    };
    client
        .list_stores(ListStoresRequest::default())
        .await
        .is_ok()
}
