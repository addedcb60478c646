//! The ops server: `/metrics` (the shared registry, OpenMetrics text), `/healthz` (200 while
//! the process serves), `/readyz` (200 while [`Readiness::set_ready`] was called and every
//! check added with [`Readiness::add_check`] passes; 503 with the reason otherwise).
//!
//! ```no_run
//! # async fn demo() -> Result<(), kit::ops::OpsError> {
//! use std::sync::Arc;
//! use kit::ops::{OpsServer, Readiness};
//! let mut registry = prometheus_client::registry::Registry::default();
//! let metrics = lifecycle::Metrics::register(&mut registry);
//! let readiness = Readiness::default();
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! let address = kit::net::BindAddress::AnyInterface(8090);
//! let server = OpsServer::bind(address, Arc::new(registry), readiness.clone()).await?;
//! tokio::spawn(server.serve(shutdown.clone().cancelled_owned()));
//! // … once the watches have synced:
//! readiness.set_ready();
//! # drop(metrics); Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::net::BindAddress;

/// The content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A readiness check: `Err(why)` while its component cannot work.
type Check = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Whether the process is ready to serve: a flag the process sets once it has started, and
/// checks of its components (a controller whose watches have not synced or keep failing).
/// Clones share the flag and the checks.
#[derive(Clone, Default)]
pub struct Readiness {
    started: Arc<AtomicBool>,
    checks: Arc<Mutex<Vec<Check>>>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// Marks the process started: `/readyz` answers 200 while every check passes.
    pub fn set_ready(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    /// Marks the process not ready (e.g. while shutting down): `/readyz` answers 503.
    pub fn set_not_ready(&self) {
        self.started.store(false, Ordering::SeqCst);
    }

    /// Adds a check that `/readyz` runs on every request.
    pub fn add_check(&self, check: impl Fn() -> Result<(), String> + Send + Sync + 'static) {
        self.checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(check));
    }

    /// `Ok` when ready, else why not.
    pub fn check(&self) -> Result<(), String> {
        if !self.started.load(Ordering::SeqCst) {
            return Err("the controllers have not finished starting (caches syncing)".to_owned());
        }
        let checks = self
            .checks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        checks.iter().try_for_each(|check| check())
    }

    /// Whether the process is ready.
    pub fn is_ready(&self) -> bool {
        self.check().is_ok()
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
    match state.readiness.check() {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}")).into_response(),
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
    /// Binds `address` (`:8090` listens on every interface, IPv6 and IPv4; port 0 picks a
    /// free port).
    pub async fn bind(
        address: BindAddress,
        registry: Arc<Registry>,
        readiness: Readiness,
    ) -> Result<Self, OpsError> {
        let bind_error = |source| OpsError::Bind {
            address: address.to_string(),
            source,
        };
        let listener = address.listen().await.map_err(bind_error)?;
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
