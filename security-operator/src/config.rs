//! Command-line flags, with upstream's names and defaults where upstream has the flag. Every
//! flag also reads an environment variable, `SECURITY_OPERATOR_<FLAG>` (see
//! [`kit::cli::parse`]), except `--kubeconfig` (`KUBECONFIG`) and
//! `--leader-election-namespace` (`POD_NAMESPACE`).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use kit::cli::{OperatorArgs, WebhookArgs};

/// A part of the operator, run as upstream's subcommand of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Role {
    /// Stores, AuthorizationModels, AccountInfos, and the initializer's work re-applied to
    /// initialized workspaces, on the `core.platform-mesh.io` export (also `operator`, the
    /// name of upstream's command file).
    #[value(alias = "operator")]
    Fga,
    /// The `root:security` initializer: org Stores and account tuples.
    Initializer,
    /// The `root:security` terminator: account tuples, org Stores.
    Terminator,
    /// AuthorizationModels generated from APIBindings to provider exports.
    ModelGenerator,
    /// APIExportPolicies on the `system.platform-mesh.io` export.
    System,
}

impl Role {
    /// Upstream's leader-election ID of the role's Deployment.
    pub fn leader_election_id(self) -> &'static str {
        match self {
            Self::Fga => "security-operator.platform-mesh.io",
            Self::Initializer => "security-operator-initializer.platform-mesh.io",
            Self::Terminator => "security-operator-terminator.platform-mesh.io",
            Self::ModelGenerator => "security-operator-generator.platform-mesh.io",
            Self::System => "security-operator-system.platform-mesh.io",
        }
    }
}

/// security-operator: OpenFGA stores, models and tuples for every organisation and account.
#[derive(Debug, Clone, Parser)]
#[command(name = "security-operator", version, about)]
pub struct Config {
    /// The roles this process runs, comma-separated (`fga`, `initializer`, `terminator`,
    /// `model-generator`, `system`), e.g. `security-operator fga` as upstream's subcommand, or
    /// `security-operator fga,initializer,terminator,model-generator,system` for all in one
    /// process.
    #[arg(required = true, value_delimiter = ',')]
    pub roles: Vec<Role>,

    #[command(flatten)]
    pub operator: OperatorArgs,

    /// kcp's kubeconfig under upstream's name; when given, it takes the place of
    /// `--kubeconfig`.
    #[arg(long)]
    pub kcp_kubeconfig: Option<PathBuf>,

    /// OpenFGA's gRPC address, `host:port` (plaintext, as upstream) or an `http(s)://` URL.
    #[arg(long)]
    pub fga_target: String,

    /// The APIExportEndpointSlice whose virtual workspaces serve Stores, AuthorizationModels,
    /// AccountInfos and APIBindings.
    #[arg(long, default_value = "core.platform-mesh.io")]
    pub api_export_endpoint_slice_name: String,

    /// The APIExportEndpointSlice whose virtual workspaces serve APIExportPolicies (role
    /// `system`); in the same workspace as `--api-export-endpoint-slice-name`.
    #[arg(long, default_value = "system.platform-mesh.io")]
    pub system_api_export_endpoint_slice_name: String,

    /// File holding the core module (OpenFGA DSL, schema 1.2) of every new organisation's
    /// Store. Default: the module of the upstream Helm chart, built in.
    #[arg(long)]
    pub core_module_path: Option<PathBuf>,

    /// The workspace holding the `security` WorkspaceType (the initializer and terminator
    /// names are read from its status, not built from this).
    #[arg(long, default_value = "root")]
    pub workspace_path: kcp::ClusterPath,

    /// The WorkspaceType whose initializing and terminating virtual workspaces this operator
    /// serves.
    #[arg(long, default_value = "security")]
    pub workspace_type_name: String,

    /// The workspace holding organisations, their Stores and the `orgs` Store. Stores and
    /// AuthorizationModels in workspaces below it (tenants' workspaces) have no effect.
    #[arg(long, default_value = "root:orgs")]
    pub kcp_orgs_path: kcp::ClusterPath,

    /// Also let every authenticated user be a member of each new organisation, as upstream's
    /// flag of the same name.
    #[arg(long)]
    pub allow_member_tuples_enabled: bool,

    /// Run the org initializer step (the org's Store with its owner tuples).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub initializer_workspace_enabled: bool,

    /// Run the IdentityProviderConfiguration step of the org initializer: an
    /// IdentityProviderConfiguration `<org>` in the orgs workspace with the clients `<org>` and
    /// `kubectl`, waited for until Ready, its client ids then written into the org's
    /// AccountInfo. Default: on when `--keycloak-base-url` is given. Without a Keycloak behind
    /// the `system` role, orgs stay initializing.
    #[arg(long, action = clap::ArgAction::Set)]
    pub initializer_idp_enabled: Option<bool>,

    /// Run the Invite step of the org initializer: an Invite `<org>` for the creator in the
    /// org's workspace, waited for until Ready. Default: on when `--keycloak-base-url` is
    /// given.
    #[arg(long, action = clap::ArgAction::Set)]
    pub initializer_invite_enabled: Option<bool>,

    /// Run the WorkspaceAuthenticationConfiguration step of the org initializer: a
    /// WorkspaceAuthenticationConfiguration `<org>` trusting the org's issuer for its client
    /// ids, referenced by the org's WorkspaceTypes. Needs the OIDC clients the IdP step writes.
    /// Default: on when `--keycloak-base-url` is given.
    #[arg(long, action = clap::ArgAction::Set)]
    pub initializer_workspace_auth_enabled: Option<bool>,

    #[command(flatten)]
    pub keycloak: KeycloakArgs,

    /// The IdentityProviderConfiguration validating webhook (needs `--keycloak-base-url`).
    #[command(flatten)]
    pub webhooks: WebhookArgs,

    /// The portal's domain: issuer `https://<domain>/keycloak/realms/<org>`, redirects
    /// `https://<org>.<domain>/*`.
    #[arg(long, default_value = "portal.dev.local:8443")]
    pub base_domain: String,

    /// Let users register themselves in the org's identity provider.
    #[arg(long)]
    pub idp_registration_allowed: bool,

    /// More redirect URLs of the org's portal client (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub idp_additional_redirect_urls: Vec<String>,

    /// Redirect URLs of the `kubectl` client (comma-separated).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "http://localhost:8000,http://localhost:18000"
    )]
    pub idp_kubectl_client_redirect_urls: Vec<String>,

    /// The token claim that names the user.
    #[arg(long, default_value = "email")]
    pub user_claim: String,

    /// The token claim that lists the user's groups.
    #[arg(long, default_value = "groups")]
    pub group_claim: String,

    /// Audiences accepted besides the org's client ids (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub additional_audiences: Vec<String>,

    /// Accept tokens whose email is not verified (development only).
    #[arg(long)]
    pub development_allow_unverified_emails: bool,

    /// A PEM file with the CA kcp is to trust for the orgs' issuer (`https://<base-domain>`),
    /// written into every org's WorkspaceAuthenticationConfiguration; none: kcp uses its
    /// host's trusted CAs. Upstream read it from a Secret of the hosting cluster
    /// (`--domain-ca-lookup`).
    #[arg(long)]
    pub idp_issuer_ca_file: Option<PathBuf>,
}

/// Keycloak: where it is, how to log in to it, and what every organisation's realm gets.
#[derive(Debug, Clone, clap::Args)]
pub struct KeycloakArgs {
    /// Keycloak's base URL (`https://host[:port][/prefix]`, the part before `/realms`). With
    /// it, the `system` role keeps IdentityProviderConfigurations and the `fga` role Invites,
    /// and the org initializer's identity steps default to on.
    #[arg(long)]
    pub keycloak_base_url: Option<String>,

    /// The master-realm client whose service account (with the `admin` role) the operator
    /// logs in as.
    #[arg(long, default_value = "security-operator")]
    pub keycloak_client_id: String,

    /// That client's secret.
    #[arg(long, env = "KEYCLOAK_CLIENT_SECRET", hide_env_values = true)]
    pub keycloak_client_secret: Option<String>,

    /// A PEM file of CA certificates to trust for Keycloak, besides the system's.
    #[arg(long)]
    pub keycloak_ca_file: Option<PathBuf>,

    /// How long a request to Keycloak may take.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub http_client_timeout_seconds: u64,

    /// The access-token lifespan (and SSO session idle timeout) of every organisation's
    /// realm, in seconds.
    #[arg(long, default_value_t = 28_800, value_parser = clap::value_parser!(u64).range(1..))]
    pub idp_access_token_lifespan: u64,

    /// Realm names no IdentityProviderConfiguration may take (comma-separated); `master` never
    /// can.
    #[arg(long, value_delimiter = ',')]
    pub idp_realm_deny_list: Vec<String>,

    /// The mail server realms send invitations through; none: realms have no mail server and
    /// Invites cannot send their e-mail.
    #[arg(long)]
    pub idp_smtp_server: Option<String>,

    /// The mail server's port.
    #[arg(long, default_value_t = 25)]
    pub idp_smtp_port: u16,

    /// The sender address of the realms' e-mail.
    #[arg(long, default_value = "noreply@platform-mesh.io")]
    pub idp_from_address: String,

    /// Connect to the mail server with TLS.
    #[arg(long)]
    pub idp_smtp_ssl: bool,

    /// Upgrade the mail connection with STARTTLS.
    #[arg(long)]
    pub idp_smtp_starttls: bool,

    /// The mail server's user, when it wants a login.
    #[arg(long)]
    pub idp_smtp_user: Option<String>,

    /// The mail server user's password.
    #[arg(long, env = "IDP_SMTP_PASSWORD", hide_env_values = true)]
    pub idp_smtp_password: Option<String>,

    /// Give invited users the temporary password `password` (local use only).
    #[arg(long)]
    pub set_default_password: bool,
}

impl Config {
    /// The configuration with upstream's `--kcp-kubeconfig`, when given, in place of the kit's
    /// `--kubeconfig`.
    pub fn with_kcp_kubeconfig(mut self) -> Self {
        if let Some(path) = self.kcp_kubeconfig.take() {
            self.operator.kubeconfig = Some(path);
        }
        self
    }

    /// Whether an identity step whose flag is `flag` runs: as the flag says, else when a
    /// Keycloak is configured.
    pub fn identity_step(&self, flag: Option<bool>) -> bool {
        flag.unwrap_or(self.keycloak.keycloak_base_url.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        kit::cli::parse_from(
            crate::app::ENV_PREFIX,
            std::iter::once("security-operator").chain(args.iter().copied()),
        )
    }

    #[test]
    fn one_role_as_upstreams_subcommand_or_several_in_one_process() {
        let one = parse(&["initializer", "--fga-target=localhost:8081"]).unwrap();
        assert_eq!(one.roles, [Role::Initializer]);
        assert_eq!(one.workspace_type_name, "security");
        assert_eq!(one.kcp_orgs_path.as_str(), "root:orgs");
        let all = parse(&[
            "fga,initializer,terminator,model-generator,system",
            "--fga-target=x:1",
        ])
        .unwrap();
        assert_eq!(all.roles.len(), 5);
        assert!(!all.identity_step(all.initializer_idp_enabled));
        let with_keycloak = parse(&[
            "system",
            "--fga-target=x:1",
            "--keycloak-base-url=https://kc",
            "--initializer-invite-enabled=false",
        ])
        .unwrap();
        assert!(with_keycloak.identity_step(with_keycloak.initializer_idp_enabled));
        assert!(!with_keycloak.identity_step(with_keycloak.initializer_invite_enabled));
        assert_eq!(with_keycloak.keycloak.idp_access_token_lifespan, 28_800);
        assert_eq!(
            all.idp_kubectl_client_redirect_urls,
            ["http://localhost:8000", "http://localhost:18000"]
        );
    }

    #[test]
    fn upstreams_command_and_kubeconfig_flag_are_accepted() {
        let config = parse(&[
            "operator",
            "--fga-target=openfga:8081",
            "--kcp-kubeconfig=/api-kubeconfig/kubeconfig",
        ])
        .unwrap()
        .with_kcp_kubeconfig();
        assert_eq!(config.roles, [Role::Fga]);
        assert_eq!(
            config.operator.kubeconfig.as_deref(),
            Some(std::path::Path::new("/api-kubeconfig/kubeconfig"))
        );
    }

    #[test]
    fn bad_input_names_the_argument() {
        let error = parse(&["fga"]).unwrap_err().to_string();
        assert!(error.contains("--fga-target"), "{error}");
        let error = parse(&["gardener", "--fga-target=x:1"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("gardener") && error.contains("model-generator"),
            "{error}"
        );
        let error = parse(&["fga", "--fga-target=x:1", "--kcp-orgs-path=a::b"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--kcp-orgs-path"), "{error}");
    }
}
