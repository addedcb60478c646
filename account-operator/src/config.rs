//! Command-line flags, with the upstream names and defaults so existing charts keep working;
//! every flag also reads an environment variable (`ACCOUNT_OPERATOR_<FLAG>`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// account-operator: Accounts become kcp workspaces.
#[derive(Debug, Clone, Parser)]
#[command(name = "account-operator", version, about)]
pub struct Config {
    /// kubeconfig for kcp; its server is the workspace holding the APIExportEndpointSlice
    /// (upstream: `root:platform-mesh-system`). Defaults to $KUBECONFIG.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Context in the kubeconfig to use (default: the current context).
    #[arg(long, env = "ACCOUNT_OPERATOR_KUBECONFIG_CONTEXT")]
    pub kubeconfig_context: Option<String>,

    /// The APIExportEndpointSlice whose virtual workspaces serve Accounts.
    #[arg(
        long,
        env = "ACCOUNT_OPERATOR_KCP_API_EXPORT_ENDPOINT_SLICE_NAME",
        default_value = "core.platform-mesh.io"
    )]
    pub kcp_api_export_endpoint_slice_name: String,

    /// The workspace holding organisations and their WorkspaceTypes.
    #[arg(
        long,
        env = "ACCOUNT_OPERATOR_KCP_ORGS_PATH",
        default_value = "root:orgs"
    )]
    pub kcp_orgs_path: kcp::ClusterPath,

    /// PEM file of kcp's CA, written into every AccountInfo (default: the kubeconfig's CA).
    #[arg(long, env = "ACCOUNT_OPERATOR_KCP_CA_FILE")]
    pub kcp_ca_file: Option<PathBuf>,

    /// Only reconcile objects whose `debug.platform-mesh.io` label has this value.
    #[arg(long, env = "ACCOUNT_OPERATOR_DEBUG_LABEL_VALUE", default_value = "")]
    pub debug_label_value: String,

    /// Reconciles running at once, per controller.
    #[arg(
        long,
        env = "ACCOUNT_OPERATOR_MAX_CONCURRENT_RECONCILES",
        default_value_t = 10
    )]
    pub max_concurrent_reconciles: usize,

    /// Log level: error, warn, info, debug or trace (or a tracing filter).
    #[arg(long, env = "ACCOUNT_OPERATOR_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log text instead of JSON.
    #[arg(long, env = "ACCOUNT_OPERATOR_NO_JSON")]
    pub no_json: bool,

    /// How long shutdown waits for running reconciles.
    #[arg(long, env = "ACCOUNT_OPERATOR_SHUTDOWN_TIMEOUT", default_value = "1m", value_parser = humantime::parse_duration)]
    pub shutdown_timeout: Duration,

    /// Address of the metrics endpoint (`/metrics`).
    #[arg(long, env = "ACCOUNT_OPERATOR_METRICS_BIND_ADDRESS", default_value = "0.0.0.0:9090", value_parser = parse_bind_address)]
    pub metrics_bind_address: SocketAddr,

    /// Address of the health endpoints (`/healthz`, `/readyz`).
    #[arg(long, env = "ACCOUNT_OPERATOR_HEALTH_PROBE_BIND_ADDRESS", default_value = "0.0.0.0:8090", value_parser = parse_bind_address)]
    pub health_probe_bind_address: SocketAddr,

    /// Elect a leader on a Lease in the hosting cluster (in-cluster config).
    #[arg(long, env = "ACCOUNT_OPERATOR_LEADER_ELECT")]
    pub leader_elect: bool,

    /// Namespace of the leader-election Lease (default: the pod's namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "platform-mesh-system")]
    pub leader_election_namespace: String,

    /// Serve the admission webhooks.
    #[arg(long, env = "ACCOUNT_OPERATOR_WEBHOOKS_ENABLED")]
    pub webhooks_enabled: bool,

    /// Directory holding the webhook serving certificate (`tls.crt`, `tls.key`).
    #[arg(
        long,
        env = "ACCOUNT_OPERATOR_WEBHOOKS_CERT_DIR",
        default_value = "certs"
    )]
    pub webhooks_cert_dir: PathBuf,

    /// Port of the webhook server.
    #[arg(long, env = "ACCOUNT_OPERATOR_WEBHOOKS_PORT", default_value_t = 9443)]
    pub webhooks_port: u16,

    /// Organisation names refused by the validating webhook (comma-separated).
    #[arg(
        long,
        env = "ACCOUNT_OPERATOR_WEBHOOKS_DENY_LIST",
        value_delimiter = ',',
        default_value = ""
    )]
    pub webhooks_deny_list: Vec<String>,

    /// Account types allowed besides `org` (comma-separated).
    #[arg(
        long,
        env = "ACCOUNT_OPERATOR_WEBHOOKS_ADDITIONAL_ACCOUNT_TYPES",
        value_delimiter = ','
    )]
    pub webhooks_additional_account_types: Vec<String>,

    /// Set `spec.creator` only when the request leaves it empty (default: always overwrite, as
    /// upstream does).
    #[arg(long, env = "ACCOUNT_OPERATOR_WEBHOOKS_CREATOR_ONLY_WHEN_EMPTY")]
    pub webhooks_creator_only_when_empty: bool,

    /// Run the WorkspaceType step (org WorkspaceTypes).
    #[arg(long, env = "ACCOUNT_OPERATOR_SUBROUTINES_WORKSPACE_TYPE_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_workspace_type_enabled: bool,

    /// Run the Workspace step.
    #[arg(long, env = "ACCOUNT_OPERATOR_SUBROUTINES_WORKSPACE_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_workspace_enabled: bool,

    /// Run the AccountInfo step.
    #[arg(long, env = "ACCOUNT_OPERATOR_SUBROUTINES_ACCOUNT_INFO_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_account_info_enabled: bool,

    /// Run the WorkspaceReady step.
    #[arg(long, env = "ACCOUNT_OPERATOR_SUBROUTINES_WORKSPACE_READY_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_workspace_ready_enabled: bool,

    /// Run the AccountInfo controller (holds AccountInfos while Accounts remain).
    #[arg(long, env = "ACCOUNT_OPERATOR_CONTROLLERS_ACCOUNT_INFO_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub controllers_account_info_enabled: bool,
}

/// Accepts `:9090` (all interfaces, as upstream writes it) and full `host:port` addresses.
fn parse_bind_address(value: &str) -> Result<SocketAddr, String> {
    let full = if value.starts_with(':') {
        format!("0.0.0.0{value}")
    } else {
        value.to_owned()
    };
    full.parse()
        .map_err(|e| format!("{value:?} is not an address like :9090 or 127.0.0.1:9090 ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_upstream() {
        let c = Config::try_parse_from(["account-operator"]).unwrap();
        assert_eq!(
            c.kcp_api_export_endpoint_slice_name,
            "core.platform-mesh.io"
        );
        assert_eq!(c.metrics_bind_address.port(), 9090);
        assert_eq!(c.health_probe_bind_address.port(), 8090);
        assert_eq!(c.webhooks_port, 9443);
        assert_eq!(c.max_concurrent_reconciles, 10);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(60));
        assert!(c.subroutines_workspace_type_enabled && c.controllers_account_info_enabled);
    }

    #[test]
    fn flags_parse_lists_durations_and_upstream_addresses() {
        let c = Config::try_parse_from([
            "account-operator",
            "--webhooks-deny-list=admin,root,www",
            "--webhooks-additional-account-types=account,folder",
            "--metrics-bind-address=:9091",
            "--shutdown-timeout=30s",
            "--subroutines-workspace-ready-enabled=false",
        ])
        .unwrap();
        assert_eq!(c.webhooks_deny_list, ["admin", "root", "www"]);
        assert_eq!(c.webhooks_additional_account_types, ["account", "folder"]);
        assert_eq!(c.metrics_bind_address.to_string(), "0.0.0.0:9091");
        assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
        assert!(!c.subroutines_workspace_ready_enabled);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = Config::try_parse_from(["account-operator", "--metrics-bind-address=nine"])
            .unwrap_err();
        assert!(err.to_string().contains("--metrics-bind-address"), "{err}");
        let err = Config::try_parse_from(["account-operator", "--kcp-orgs-path=Root"]).unwrap_err();
        assert!(err.to_string().contains("--kcp-orgs-path"), "{err}");
    }
}
