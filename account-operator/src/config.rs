//! Command-line flags, with the upstream names and defaults so existing charts keep working.
//! Every flag also reads an environment variable: `ACCOUNT_OPERATOR_<FLAG>` (see
//! [`kit::cli::parse`]), except `--kubeconfig` (`KUBECONFIG`) and
//! `--leader-election-namespace` (`POD_NAMESPACE`).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use kit::cli::{OperatorArgs, WebhookArgs};

/// What the binary does (upstream's subcommand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Command {
    /// Run the operator.
    Operator,
}

/// account-operator: Accounts become kcp workspaces.
#[derive(Debug, Clone, Parser)]
#[command(name = "account-operator", version, about)]
pub struct Config {
    /// `operator`, upstream's subcommand (`account-operator operator [flags]`, as upstream's
    /// chart runs it); optional, the binary has no other.
    pub command: Option<Command>,

    #[command(flatten)]
    pub operator: OperatorArgs,

    /// The APIExportEndpointSlice whose virtual workspaces serve Accounts.
    #[arg(long, default_value = "core.platform-mesh.io")]
    pub kcp_api_export_endpoint_slice_name: String,

    /// The workspace holding organisations and their WorkspaceTypes.
    #[arg(long, default_value = "root:orgs")]
    pub kcp_orgs_path: kcp::ClusterPath,

    /// PEM file of kcp's CA, written into every AccountInfo (default: the kubeconfig's CA).
    #[arg(long)]
    pub kcp_ca_file: Option<PathBuf>,

    #[command(flatten)]
    pub webhooks: WebhookArgs,

    /// Organisation names refused by the validating webhook (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "")]
    pub webhooks_deny_list: Vec<String>,

    /// Account types allowed besides `org` (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub webhooks_additional_account_types: Vec<String>,

    /// Set `spec.creator` only when the request leaves it empty (default: always overwrite, as
    /// upstream does).
    #[arg(long)]
    pub webhooks_creator_only_when_empty: bool,

    /// The most workspaces the Accounts of one workspace may have in creation (created, not
    /// Ready yet) at once; the next Account waits until one is Ready. kcp initialises
    /// workspaces in the order they come, so without a cap one tenant's burst puts every other
    /// tenant's new workspace behind all of its own. 0: no cap.
    #[arg(long, default_value_t = 10)]
    pub max_workspaces_in_creation: usize,

    /// Run the WorkspaceType step (org WorkspaceTypes).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_workspace_type_enabled: bool,

    /// Run the Workspace step.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_workspace_enabled: bool,

    /// Run the AccountInfo step.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_account_info_enabled: bool,

    /// Run the WorkspaceReady step.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_workspace_ready_enabled: bool,

    /// Run the AccountInfo controller (holds AccountInfos while Accounts remain).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub controllers_account_info_enabled: bool,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kit::net::BindAddress;

    use super::*;

    #[test]
    fn defaults_match_upstream() {
        let c = Config::try_parse_from(["account-operator"]).unwrap();
        assert_eq!(
            c.kcp_api_export_endpoint_slice_name,
            "core.platform-mesh.io"
        );
        assert_eq!(
            c.operator.metrics_bind_address,
            BindAddress::AnyInterface(9090)
        );
        assert_eq!(
            c.operator.health_probe_bind_address,
            BindAddress::AnyInterface(8090)
        );
        assert_eq!(c.webhooks.webhooks_port, 9443);
        assert_eq!(c.operator.max_concurrent_reconciles, 10);
        assert_eq!(c.operator.shutdown_timeout, Duration::from_secs(60));
        assert!(c.subroutines_workspace_type_enabled && c.controllers_account_info_enabled);
        assert_eq!(c.max_workspaces_in_creation, 10);
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
        // `:PORT` is every interface, IPv6 and IPv4.
        assert_eq!(
            c.operator.metrics_bind_address,
            BindAddress::AnyInterface(9091)
        );
        assert_eq!(c.operator.shutdown_timeout, Duration::from_secs(30));
        assert!(!c.subroutines_workspace_ready_enabled);
    }

    #[test]
    fn upstreams_invocation_is_accepted() {
        let c = Config::try_parse_from(["account-operator", "operator", "--leader-elect"]).unwrap();
        assert_eq!(c.command, Some(Command::Operator));
        assert!(c.operator.leader_elect);
        let error = Config::try_parse_from(["account-operator", "webhook"]).unwrap_err();
        assert!(error.to_string().contains("operator"), "{error}");
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
