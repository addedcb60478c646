//! Command-line flags, with upstream's names and defaults where upstream has the flag. Every
//! flag also reads an environment variable, `PLATFORM_MESH_OPERATOR_<FLAG>` (see
//! [`kit::cli::parse`]), except `--kubeconfig` (`KUBECONFIG`) and
//! `--leader-election-namespace` (`POD_NAMESPACE`).
//!
//! Two clusters are involved: the kit's `--kubeconfig` is the cluster hosting the operators,
//! where `PlatformMesh` objects and the Secrets this operator writes live; `--kcp-kubeconfig`
//! is kcp, with the admin credentials the setup needs.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use kit::cli::OperatorArgs;

/// What the binary does (upstream's subcommand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Command {
    /// Run the operator.
    Operator,
}

/// platform-mesh-operator: sets up kcp for the Platform Mesh suite from one PlatformMesh
/// resource and writes every component's kubeconfig.
#[derive(Debug, Clone, Parser)]
#[command(name = "platform-mesh-operator", version, about)]
pub struct Config {
    /// `operator`, as upstream's subcommand.
    pub command: Command,

    #[command(flatten)]
    pub operator: OperatorArgs,

    /// kcp's admin kubeconfig: the credentials of the setup, and of every kubeconfig written
    /// in admin mode. Its server may point at any workspace; only the server's address is
    /// used.
    #[arg(long)]
    pub kcp_kubeconfig: PathBuf,

    /// The context of `--kcp-kubeconfig` to use; default: its current context.
    #[arg(long)]
    pub kcp_kubeconfig_context: Option<String>,

    /// The kcp address written into the kubeconfigs (`https://host:port`), as the components
    /// reach kcp; default: the server of `--kcp-kubeconfig`.
    #[arg(long)]
    pub kcp_url: Option<url::Url>,

    /// Apply the kcp tree (workspaces, WorkspaceTypes, schemas, exports, bindings, the
    /// `orgs` Store, webhook configurations).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_kcp_setup_enabled: bool,

    /// Write the provider kubeconfig Secrets.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_provider_secret_enabled: bool,

    /// Write the kubeconfig Secret with which kcp's authorizer calls the rebac-authz-webhook.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub subroutines_authorization_webhook_enabled: bool,

    /// Render a Flux HelmRelease per enabled component (the chart's
    /// `subroutines.deployment.enabled`; it needs Flux in the hosting cluster).
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub subroutines_deployment_enabled: bool,

    /// Set up the welcome realm, in which a person without an organisation logs in to make
    /// one: IdentityProviderConfiguration `welcome` in root:platform-mesh-system, and
    /// `orgs-authentication` for the `orgs` WorkspaceType. It needs `spec.exposure.baseDomain`
    /// and a security-operator with Keycloak (which makes the realm); the PlatformMesh is Ready
    /// only once the realm's clients are registered.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    pub subroutines_welcome_enabled: bool,

    /// People may register themselves in the welcome realm.
    #[arg(long)]
    pub idp_registration_allowed: bool,

    /// More redirect URIs of the welcome realm's portal client (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub idp_welcome_additional_redirect_uris: Vec<String>,

    /// More post-logout redirect URIs of the welcome realm's portal client (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub idp_welcome_additional_post_logout_redirect_uris: Vec<String>,

    /// The Secret (in the PlatformMesh's namespace) holding the CA kcp is to trust for the
    /// welcome realm's issuer; unset: the system's roots. Upstream always read
    /// `domain-certificate`.
    #[arg(long)]
    pub domain_certificate_ca_secret_name: Option<String>,

    /// The key of that CA in the Secret.
    #[arg(long, default_value = "ca.crt")]
    pub domain_certificate_ca_secret_key: String,

    /// How often the kcp tree is compared with what it should be, so that an object deleted
    /// or edited in kcp is put back. A comparison only reads.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    pub kcp_drift_check_interval: Duration,

    /// The Secret (in the PlatformMesh's namespace) holding, under `ca.crt`, the CA of the
    /// account-operator's admission webhook, written into its webhook configurations in kcp.
    #[arg(long, default_value = "account-operator-webhook-server-cert")]
    pub account_operator_webhook_ca_secret: String,

    /// The account-operator webhook's base URL as kcp reaches it; default
    /// `https://account-operator-webhook.<PlatformMesh namespace>.svc:9443`.
    #[arg(long)]
    pub account_operator_webhook_url: Option<url::Url>,

    /// Do not register the account-operator's admission webhooks in kcp.
    #[arg(long)]
    pub no_account_operator_webhooks: bool,

    /// Register the security-operator's IdentityProviderConfiguration validating webhook in
    /// kcp, trusting the CA under `ca.crt` of this Secret (in the PlatformMesh's namespace).
    /// Only a security-operator with Keycloak serves it (its chart's `keycloak.baseUrl`), so it
    /// is not registered unless this is given. Upstream's fixed name is
    /// `security-operator-ca-secret`; the security-operator chart writes
    /// `security-operator-webhook-server-cert`.
    #[arg(long)]
    pub security_operator_webhook_ca_secret: Option<String>,

    /// The security-operator webhook's base URL as kcp reaches it; default
    /// `https://security-operator-webhook.<PlatformMesh namespace>.svc:9443`.
    #[arg(long, requires = "security_operator_webhook_ca_secret")]
    pub security_operator_webhook_url: Option<url::Url>,

    /// The Secret (in the PlatformMesh's namespace) this operator writes: the kubeconfig kcp's
    /// authorizer uses to call the rebac-authz-webhook (mount it into kcp and pass
    /// `--authorization-webhook-config-file`).
    #[arg(long, default_value = "kcp-webhook-secret")]
    pub authorization_webhook_secret_name: String,

    /// The Secret holding, under `ca.crt`, the CA of the rebac-authz-webhook's serving
    /// certificate.
    #[arg(long, default_value = "rebac-authz-webhook-cert")]
    pub authorization_webhook_secret_ca_name: String,

    /// The rebac-authz-webhook's URL as kcp reaches it; default
    /// `https://rebac-authz-webhook.<PlatformMesh namespace>.svc:9443/authz`.
    #[arg(long)]
    pub authorization_webhook_url: Option<url::Url>,

    /// How long a token of a scoped kubeconfig is valid. It is renewed when a third of this
    /// is left.
    #[arg(long, default_value = "168h", value_parser = humantime::parse_duration)]
    pub scoped_token_lifetime: Duration,

    /// The OCI Helm repository the HelmReleases install the charts from.
    #[arg(long, default_value = "oci://ghcr.io/platform-mesh-rs/charts")]
    pub chart_repository: String,

    /// The chart version the HelmReleases install; default: this operator's version.
    #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
    pub chart_version: String,

    /// When a PlatformMesh is deleted, also delete the workspaces it created (and with them
    /// everything in them). Off by default: kcp's tree outlives the resource.
    #[arg(long)]
    pub delete_workspaces_on_delete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        kit::cli::parse_from(
            crate::app::BINARY.env_prefix,
            std::iter::once("platform-mesh-operator").chain(args.iter().copied()),
        )
    }

    #[test]
    fn upstreams_invocation_and_defaults() {
        let config = parse(&["operator", "--kcp-kubeconfig=/kcp"]).unwrap();
        assert_eq!(config.command, Command::Operator);
        assert!(config.subroutines_kcp_setup_enabled);
        assert!(config.subroutines_provider_secret_enabled);
        assert!(config.subroutines_authorization_webhook_enabled);
        assert!(!config.subroutines_deployment_enabled);
        assert_eq!(
            config.authorization_webhook_secret_name,
            "kcp-webhook-secret"
        );
        assert_eq!(
            config.authorization_webhook_secret_ca_name,
            "rebac-authz-webhook-cert"
        );
        assert_eq!(
            config.scoped_token_lifetime,
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(config.kcp_drift_check_interval, Duration::from_secs(60));
        assert!(!config.delete_workspaces_on_delete);
        assert_eq!(config.security_operator_webhook_ca_secret, None);
        assert!(!config.subroutines_welcome_enabled);
        assert!(!config.idp_registration_allowed);
        assert_eq!(config.domain_certificate_ca_secret_name, None);
        assert_eq!(config.domain_certificate_ca_secret_key, "ca.crt");
    }

    #[test]
    fn a_security_webhook_url_needs_its_ca_secret() {
        let error = parse(&[
            "operator",
            "--kcp-kubeconfig=/k",
            "--security-operator-webhook-url=https://127.0.0.1:9443",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("--security-operator-webhook-ca-secret"),
            "{error}"
        );
        let config = parse(&[
            "operator",
            "--kcp-kubeconfig=/k",
            "--security-operator-webhook-ca-secret=ca",
            "--security-operator-webhook-url=https://127.0.0.1:9443",
        ])
        .unwrap();
        assert_eq!(
            config.security_operator_webhook_ca_secret.as_deref(),
            Some("ca")
        );
    }

    #[test]
    fn bad_input_names_the_flag() {
        let error = parse(&["operator"]).unwrap_err().to_string();
        assert!(error.contains("--kcp-kubeconfig"), "{error}");
        for (flag, value) in [
            ("--kcp-url", "not a url"),
            ("--scoped-token-lifetime", "a week"),
            ("--subroutines-deployment-enabled", "maybe"),
        ] {
            let error = parse(&[
                "operator",
                "--kcp-kubeconfig=/k",
                &format!("{flag}={value}"),
            ])
            .unwrap_err()
            .to_string();
            assert!(error.contains(flag), "{flag}: {error}");
        }
    }
}
