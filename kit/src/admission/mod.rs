//! The admission webhook server every webhook binary shares, on kube's admission types
//! ([`AdmissionRequest`], [`AdmissionResponse`]), so that a binary holds only its decisions
//! and its paths.
//!
//! - [`WebhookServer`]: HTTPS on a [`BindAddress`] for an axum
//!   [`Router`](axum::Router), with the serving certificate from a cert dir, reloaded when
//!   cert-manager rotates it.
//! - [`review`]: a route that parses the AdmissionReview, asks the webhook's decision and
//!   answers in the review's version; a body that is not a review gets HTTP 400.
//!   [`review_async`] for a decision that has to ask something first.
//! - [`forbidden`], [`bad_request`], [`patched`]: the answers, with the status code and
//!   reason controller-runtime gives them.
//!
//! ```no_run
//! # use tokio_util::sync::CancellationToken;
//! # async fn demo(shutdown: CancellationToken) -> Result<(), kit::admission::WebhookError> {
//! use kit::admission::{WebhookServer, forbidden, review};
//! use kube::core::admission::AdmissionResponse;
//!
//! let routes = axum::Router::new().route(
//!     "/validate-widgets",
//!     review(|request| match request.name.as_str() {
//!         "forbidden-widget" => forbidden(request, "this name is reserved"),
//!         _ => AdmissionResponse::from(request),
//!     }),
//! );
//! let address = kit::net::BindAddress::AnyInterface(9443);
//! let server = WebhookServer::bind(address, "certs".as_ref(), routes).await?;
//! server.run(shutdown).await
//! # }
//! ```
//!
//! [`AdmissionRequest`]: kube::core::admission::AdmissionRequest
//! [`AdmissionResponse`]: kube::core::admission::AdmissionResponse

mod review;
mod server;
pub mod testing;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;

/// The JSON patch crate kube's responses carry (see [`patched`]), so that a webhook builds its
/// patches with exactly the version kube accepts.
pub use json_patch;
pub use review::{
    ADMISSION_V1BETA1, ReviewError, bad_request, forbidden, parse_request, patched, respond,
    review, review_async,
};
pub use server::WebhookServer;
pub use tls::{CERT_FILE, KEY_FILE};

use crate::net::BindAddress;

/// Why a webhook server cannot start or stopped. A bad certificate names the file, so the
/// fix (the Secret's key, the mount path) is obvious from the log line alone.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A certificate or key file cannot be read.
    #[error("reading the webhook TLS file {}: {source}", path.display())]
    ReadTls {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A certificate or key file is not usable.
    #[error("invalid webhook TLS file {}: {reason}", path.display())]
    InvalidTls {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS configuration cannot be built.
    #[error("configuring webhook TLS: {0}")]
    Tls(String),
    /// The address cannot be bound.
    #[error("binding the webhook server to {address}: {source}")]
    Bind {
        /// The address as configured (`:9443`).
        address: BindAddress,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving the webhooks on {address}: {source}")]
    Serve {
        /// The bound address.
        address: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}
