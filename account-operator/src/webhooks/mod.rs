//! The Account admission webhooks, served over HTTPS at the upstream paths so that
//! platform-mesh-operator's kcp webhook configurations keep working:
//!
//! * mutating [`MUTATE_PATH`]: on CREATE, `spec.creator` becomes the requesting user's name
//!   (overwriting any value, as upstream does, or only filling an empty one with
//!   [`WebhookConfig::creator_only_when_empty`]);
//! * validating [`VALIDATE_PATH`]: on CREATE and UPDATE, `spec.type` must be `org` or one of
//!   the additional account types, and an organisation's name must be at least 3 characters
//!   (after trimming) and not on the deny-list (exact, case-sensitive).
//!
//! DELETE, CONNECT and other kinds are admitted untouched. Validations are counted in
//! `account_operator_webhook_validations_total{operation,result,account_type}`.
//!
//! The configurations live in kcp, next to the `core.platform-mesh.io` APIExport
//! (`root:platform-mesh-system`); kcp calls them for Accounts in every workspace that binds
//! the export.

mod metrics;
mod policy;
mod server;

use std::path::PathBuf;

use kit::net::BindAddress;
use tokio_util::sync::CancellationToken;

pub use kit::admission::WebhookError;
pub use metrics::{ValidationLabels, WebhookMetrics};
pub use policy::{ACCOUNT_GROUP, ACCOUNT_KIND, Operation, Policy, Validation};
pub use server::{MUTATE_PATH, VALIDATE_PATH, Webhooks, bind};

/// The webhook server's settings (the `--webhooks-*` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// The HTTPS port, on every interface, IPv6 and IPv4 (upstream default 9443).
    pub port: u16,
    /// Directory with `tls.crt` and `tls.key` (upstream default `certs`; `/certs` in the chart).
    pub cert_dir: PathBuf,
    /// Organisation names to refuse, compared exactly.
    pub deny_list: Vec<String>,
    /// Account types allowed besides `org` (the chart adds `account`).
    pub additional_account_types: Vec<String>,
    /// Only fill `spec.creator` when it is empty, instead of overwriting it (upstream issue
    /// platform-mesh/platform-mesh#72). Off by default, as upstream.
    pub creator_only_when_empty: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            port: 9443,
            cert_dir: PathBuf::from("certs"),
            deny_list: Vec::new(),
            additional_account_types: Vec::new(),
            creator_only_when_empty: false,
        }
    }
}

/// Serves the webhooks on `:<config.port>` (every interface, so an IPv6-only pod network
/// reaches them too) until `shutdown` is cancelled. Fails at start, naming the file, when the
/// certificate or key is missing or invalid.
pub async fn serve(
    config: WebhookConfig,
    metrics: WebhookMetrics,
    shutdown: CancellationToken,
) -> Result<(), WebhookError> {
    bind(BindAddress::AnyInterface(config.port), &config, metrics)
        .await?
        .run(shutdown)
        .await
}
