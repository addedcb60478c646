//! Command-line flags, with upstream's names and defaults where upstream has the flag. Every
//! flag also reads an environment variable, `REBAC_AUTHZ_WEBHOOK_<FLAG>` (see
//! [`kit::cli::parse`]), except `--kubeconfig` (`KUBECONFIG`) and
//! `--leader-election-namespace` (`POD_NAMESPACE`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use kit::cli::OperatorArgs;
use kit::net::BindAddress;

/// What the binary does (upstream's subcommand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Command {
    /// Serve the authorization webhook.
    Serve,
}

/// rebac-authz-webhook: answers kcp's SubjectAccessReviews from OpenFGA.
#[derive(Debug, Clone, Parser)]
#[command(name = "rebac-authz-webhook", version, about)]
pub struct Config {
    /// `serve`, as upstream's subcommand.
    pub command: Command,

    #[command(flatten)]
    pub operator: OperatorArgs,

    /// OpenFGA's gRPC address, `host:port` (plaintext, as upstream) or an `http(s)://` URL.
    #[arg(long, default_value = "openfga.platform-mesh-system:8081")]
    pub openfga_addr: String,

    /// How long an OpenFGA Check may take before the answer is NoOpinion; keep it below the
    /// timeout of kcp's AuthorizationConfiguration.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub openfga_timeout: Duration,

    /// The SubjectAccessReview `extra` key in which kcp names the request's logical cluster.
    #[arg(long, default_value = "authorization.kubernetes.io/cluster-name")]
    pub webhook_cluster_key: String,

    /// Non-resource path prefixes every user may read (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "/api,/openapi,/version")]
    pub webhook_allowed_nonresource_prefixes: Vec<String>,

    /// How many times a workspace that is not known yet is answered "retry" (HTTP 503 with
    /// Retry-After) per `--webhook-cache-miss-ttl` before it is answered NoOpinion.
    #[arg(long, default_value_t = 1)]
    pub webhook_cache_miss_max_retries: u32,

    /// How long a workspace's retries are counted.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub webhook_cache_miss_ttl: Duration,

    /// How often expired retry counts and the discovery of workspaces that are gone are
    /// dropped.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub webhook_cache_miss_cleanup_interval: Duration,

    /// The Retry-After of a "retry" answer.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub webhook_cache_miss_retry_after: Duration,

    /// Directory holding the serving certificate (`tls.crt`, `tls.key`), reloaded when it
    /// changes.
    #[arg(long, default_value = "config")]
    pub webhook_cert_dir: PathBuf,

    /// Address of the webhook server (`/authz`, `/authz/batch`); `:PORT` listens on every
    /// interface.
    #[arg(long, default_value = ":9443")]
    pub webhook_bind_address: BindAddress,

    /// The APIExportEndpointSlice whose workspaces the webhook answers for (those that bind
    /// the export), in the kubeconfig's workspace.
    #[arg(long, default_value = "core.platform-mesh.io")]
    pub kcp_api_export_endpoint_slice_name: String,

    /// The workspace holding the organisations and their Stores.
    #[arg(long, default_value = "root:orgs")]
    pub kcp_orgs_path: kcp::ClusterPath,

    /// Answer Denied, instead of NoOpinion, to a `bind` of an APIExport that no
    /// APIExportPolicy allows for the binding account, so that kcp's RBAC cannot grant it
    /// either (platform-mesh#192). Off by default, as upstream.
    #[arg(long)]
    pub deny_unpermitted_binds: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        kit::cli::parse_from(
            crate::app::BINARY.env_prefix,
            std::iter::once("rebac-authz-webhook").chain(args.iter().copied()),
        )
    }

    #[test]
    fn upstreams_invocation_and_defaults() {
        let config = parse(&["serve"]).unwrap();
        assert_eq!(config.openfga_addr, "openfga.platform-mesh-system:8081");
        assert_eq!(
            config.webhook_cluster_key,
            "authorization.kubernetes.io/cluster-name"
        );
        assert_eq!(
            config.webhook_allowed_nonresource_prefixes,
            ["/api", "/openapi", "/version"]
        );
        assert_eq!(config.webhook_cache_miss_max_retries, 1);
        assert_eq!(config.webhook_cache_miss_ttl, Duration::from_secs(300));
        assert_eq!(
            config.webhook_cache_miss_retry_after,
            Duration::from_secs(1)
        );
        assert_eq!(config.webhook_bind_address, BindAddress::AnyInterface(9443));
        assert_eq!(
            config.kcp_api_export_endpoint_slice_name,
            "core.platform-mesh.io"
        );
        assert!(!config.deny_unpermitted_binds);
    }

    #[test]
    fn bad_input_names_the_argument() {
        let error = parse(&[]).unwrap_err().to_string();
        assert!(error.contains("<COMMAND>"), "{error}");
        let error = parse(&["listen"]).unwrap_err().to_string();
        assert!(
            error.contains("listen") && error.contains("serve"),
            "{error}"
        );
        for (flag, value) in [
            ("--webhook-cache-miss-ttl", "forever"),
            ("--webhook-bind-address", "port"),
            ("--openfga-timeout", "1 fortnight"),
            ("--kcp-orgs-path", "a::b"),
        ] {
            let error = parse(&["serve", &format!("{flag}={value}")])
                .unwrap_err()
                .to_string();
            assert!(error.contains(flag), "{flag}: {error}");
        }
    }
}
