//! The ops server: `/metrics` (the shared registry, OpenMetrics text), `/healthz` (200 while
//! the process serves), `/readyz` (503 until [`Readiness::set_ready`], then 200).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kit::ops::OpsError> {
//! use std::sync::Arc;
//! use kit::ops::{OpsServer, Readiness};
//! let mut registry = prometheus_client::registry::Registry::default();
//! let metrics = lifecycle::Metrics::register(&mut registry);
//! let readiness = Readiness::default();
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let server = OpsServer::bind("0.0.0.0:8090", Arc::new(registry), readiness.clone()).await?;
//! tokio::spawn(server.serve(shutdown.clone().cancelled_owned()));
//! // … once the watches have synced:
//! readiness.set_ready();
//! # drop(metrics); Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::{TcpListener, ToSocketAddrs};

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the process is ready to serve (e.g. its caches have synced). Clones share the flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the process ready: `/readyz` answers 200.
    pub fn set_ready(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Marks the process not ready (e.g. while shutting down): `/readyz` answers 503.
    pub fn set_not_ready(&self) {
        self.0.store(false, Ordering::SeqCst);
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why the ops server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The bind address was taken or invalid.
    #[error("binding the ops server to {address}: {source}")]
    Bind {
        /// The address as given.
        address: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving the ops endpoints on {address}: {source}")]
    Serve {
        /// The bound address.
        address: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
struct OpsState {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// The ops routes, for embedding in another server.
pub fn router(registry: Arc<Registry>, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(OpsState {
            registry,
            readiness,
        })
}

async fn metrics(State(state): State<OpsState>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &state.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding the metrics failed: {e}"),
        )
            .into_response(),
    }
}

async fn readyz(State(state): State<OpsState>) -> Response {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ok").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the controllers have not finished starting (caches syncing)",
        )
            .into_response()
    }
}

/// A bound ops server.
#[derive(Debug)]
pub struct OpsServer {
    listener: TcpListener,
    address: SocketAddr,
    router: Router,
}

impl OpsServer {
    /// Binds `address` (e.g. `:8090` is written `0.0.0.0:8090`; port 0 picks a free port).
    pub async fn bind(
        address: impl ToSocketAddrs + std::fmt::Display,
        registry: Arc<Registry>,
        readiness: Readiness,
    ) -> Result<Self, OpsError> {
        let shown = address.to_string();
        let bind_error = |source| OpsError::Bind {
            address: shown.clone(),
            source,
        };
        let listener = TcpListener::bind(address).await.map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        Ok(Self {
            listener,
            address,
            router: router(registry, readiness),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and returns.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), OpsError> {
        tracing::info!(address = %self.address, "ops server listening (/metrics, /healthz, /readyz)");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|source| OpsError::Serve {
                address: self.address,
                source,
            })
    }
}
