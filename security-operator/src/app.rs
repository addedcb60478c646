//! The security-operator, assembled from the kit: the roles' controllers on the
//! `core.platform-mesh.io` endpoint slice and on the `security` WorkspaceType's initializing
//! and terminating virtual workspaces.

use std::sync::Arc;

use fga::api::{Reachability, UNREACHABLE_GRACE};
use fga::platform_mesh::{CoreModuleVariant, core_module};
use kcp::runtime::{EndpointSource, VirtualWorkspaceKind};
use kit::process::{Binary, Process, ProcessError};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Role};
use crate::controllers::{self, Settings};

/// The environment prefix of every flag.
pub const ENV_PREFIX: &str = "SECURITY_OPERATOR";

/// The binary running `roles`. Its Lease is upstream's for the role's Deployment; a process
/// running several roles takes the Lease of the first (in the order of [`Role`]), so run each
/// role in one place only: one Deployment per role, or one process with all of them.
pub fn binary(roles: &[Role]) -> Binary {
    let first = roles.iter().min().copied().unwrap_or(Role::Fga);
    Binary {
        name: "security-operator",
        env_prefix: ENV_PREFIX,
        leader_election_id: first.leader_election_id(),
    }
}

/// Why the operator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("--core-module-path {path}: {source}")]
    CoreModuleFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the core module is not a valid OpenFGA module: {0}")]
    CoreModule(String),
    #[error("--fga-target: {0}")]
    FgaTarget(#[from] fga::api::AddressError),
    #[error(
        "--keycloak-base-url needs the secret of --keycloak-client-id {0} (--keycloak-client-secret or KEYCLOAK_CLIENT_SECRET)"
    )]
    KeycloakSecret(String),
    #[error("--keycloak-base-url {0:?} is not an http(s) URL")]
    KeycloakUrl(String),
    #[error("--keycloak-ca-file {path}: {message}")]
    KeycloakCa { path: String, message: String },
    #[error("--idp-issuer-ca-file {path}: {source}")]
    IssuerCa {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "--webhooks-enabled needs --keycloak-base-url: the webhook asks Keycloak whether a realm exists"
    )]
    WebhookWithoutKeycloak,
    #[error("an HTTP client for Keycloak: {0}")]
    KeycloakClient(String),
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// The Keycloak of `--keycloak-*`, if one is configured. Nothing is asked of it here: one
/// that does not answer is a condition on the objects that need it, not a process that does
/// not start.
pub fn keycloak(config: &Config) -> Result<Option<Arc<controllers::KeycloakSettings>>, AppError> {
    let args = &config.keycloak;
    let Some(base_url) = &args.keycloak_base_url else {
        return Ok(None);
    };
    if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
        return Err(AppError::KeycloakUrl(base_url.clone()));
    }
    let secret = args
        .keycloak_client_secret
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| AppError::KeycloakSecret(args.keycloak_client_id.clone()))?;
    kcp::client::install_crypto_provider();
    let mut http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(
        args.http_client_timeout_seconds,
    ));
    if let Some(path) = &args.keycloak_ca_file {
        let ca_error = |message: String| AppError::KeycloakCa {
            path: path.display().to_string(),
            message,
        };
        let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
        if certificates.is_empty() {
            return Err(ca_error("holds no PEM certificate".to_owned()));
        }
        http = http.tls_certs_merge(certificates);
    }
    let http = http
        .build()
        .map_err(|e| AppError::KeycloakClient(e.to_string()))?;
    let smtp = args.idp_smtp_server.as_ref().map(|host| keycloak::Smtp {
        host: host.clone(),
        port: args.idp_smtp_port,
        from: args.idp_from_address.clone(),
        ssl: args.idp_smtp_ssl,
        starttls: args.idp_smtp_starttls,
        auth: args
            .idp_smtp_user
            .clone()
            .map(|user| (user, args.idp_smtp_password.clone().unwrap_or_default())),
    });
    Ok(Some(Arc::new(controllers::KeycloakSettings {
        api: keycloak::KeycloakApi::new(
            http,
            base_url,
            keycloak::Login::ClientCredentials {
                client_id: args.keycloak_client_id.clone(),
                secret,
            },
        ),
        access_token_lifespan: std::time::Duration::from_secs(args.idp_access_token_lifespan),
        smtp,
        set_default_password: args.set_default_password,
        realm_deny_list: args.idp_realm_deny_list.clone(),
    })))
}

/// The core module's text: the file given, else the built-in one; refused when it does not
/// compose with the built-in API modules, since every new organisation's model would then be
/// broken.
pub fn core_module_text(config: &Config) -> Result<String, AppError> {
    let text = match &config.core_module_path {
        Some(path) => std::fs::read_to_string(path).map_err(|source| AppError::CoreModuleFile {
            path: path.display().to_string(),
            source,
        })?,
        None => core_module(CoreModuleVariant::HelmChart)
            .to_dsl()
            .map_err(|e| AppError::CoreModule(e.to_string()))?,
    };
    controllers::core_module_problems(&text)
        .map(|problems| Err(AppError::CoreModule(problems)))
        .unwrap_or(Ok(text))
}

/// Runs the operator's roles until `stop` is cancelled or a part of it fails.
pub async fn run(config: Config, stop: CancellationToken) -> Result<(), AppError> {
    let core_module = core_module_text(&config)?;
    let keycloak = keycloak(&config)?;
    if config.webhooks.webhooks_enabled && keycloak.is_none() {
        return Err(AppError::WebhookWithoutKeycloak);
    }
    let issuer_ca = config
        .idp_issuer_ca_file
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).map_err(|source| AppError::IssuerCa {
                path: path.display().to_string(),
                source,
            })
        })
        .transpose()?;
    let fga = fga::api::connect(&config.fga_target)?;
    let mut process = Process::connect(binary(&config.roles), &config.operator).await?;
    let reachability = Reachability::new(&config.fga_target, UNREACHABLE_GRACE);
    process.add_dependency(
        "OpenFGA",
        reachability.clone().probe(fga.clone()),
        move || reachability.check(),
    );
    // The kubeconfig's server is the workspace holding the endpoint slice.
    let core = process.setup(EndpointSource::ApiExport {
        client: process.client()?,
        slice: config.api_export_endpoint_slice_name.clone(),
    });
    let settings = Arc::new(Settings {
        orgs_path: config.kcp_orgs_path.clone(),
        factory: core.factory.clone(),
        // The kubeconfig's server is the workspace holding the endpoint slice.
        slices: kube::Api::all(process.client()?),
        slice: config.api_export_endpoint_slice_name.clone(),
        system_slice: config.system_api_export_endpoint_slice_name.clone(),
        fga,
        core_module,
        allow_member_tuples: config.allow_member_tuples_enabled,
        initialize_org_store: config.initializer_workspace_enabled,
        metrics: controllers::SecurityMetrics::register(process.registry()),
        oidc: controllers::OidcSettings {
            idp: config.identity_step(config.initializer_idp_enabled),
            invite: config.identity_step(config.initializer_invite_enabled),
            workspace_auth: config.identity_step(config.initializer_workspace_auth_enabled),
            base_domain: config.base_domain.clone(),
            registration_allowed: config.idp_registration_allowed,
            additional_redirect_urls: config.idp_additional_redirect_urls.clone(),
            kubectl_redirect_urls: config.idp_kubectl_client_redirect_urls.clone(),
            user_claim: config.user_claim.clone(),
            group_claim: config.group_claim.clone(),
            additional_audiences: config.additional_audiences.clone(),
            allow_unverified_emails: config.development_allow_unverified_emails,
            issuer_ca,
        },
        keycloak,
    });
    if let Some(keycloak) = settings.keycloak.clone()
        && config.webhooks.webhooks_enabled
    {
        let (port, cert_dir) = (
            config.webhooks.webhooks_port,
            config.webhooks.webhooks_cert_dir.clone(),
        );
        process.add_server("webhook server", move |stop| {
            crate::admission::serve(port, cert_dir, keycloak, stop)
        });
    }
    let security_type = |kind| -> Result<EndpointSource, AppError> {
        Ok(EndpointSource::WorkspaceType {
            client: core
                .factory
                .for_path(&config.workspace_path)
                .map_err(ProcessError::from)?,
            name: config.workspace_type_name.clone(),
            kind,
        })
    };
    let mut roles = config.roles.clone();
    roles.sort();
    roles.dedup();
    for role in roles {
        match role {
            Role::Fga => {
                process.add_controller(
                    controllers::STORE_RECONCILER,
                    controllers::store_controller(&core, settings.clone()),
                );
                process.add_controller(
                    controllers::AUTHORIZATION_MODEL_RECONCILER,
                    controllers::authorization_model_controller(&core, settings.clone()),
                );
                process.add_controller(
                    controllers::ACCOUNT_INFO_RECONCILER,
                    controllers::account_info_controller(&core, settings.clone()),
                );
                process.add_controller(
                    controllers::WORKSPACE_RECONCILER,
                    controllers::workspace_controller(&core, settings.clone()),
                );
                if settings.keycloak.is_some() {
                    process.add_controller(
                        controllers::INVITE_RECONCILER,
                        controllers::invite_controller(&core, settings.clone()),
                    );
                }
            }
            Role::Initializer => {
                let setup = process.setup(security_type(VirtualWorkspaceKind::Initializing)?);
                process.add_controller(
                    controllers::INITIALIZER_RECONCILER,
                    controllers::initializer_controller(&setup, settings.clone()),
                );
            }
            Role::Terminator => {
                let setup = process.setup(security_type(VirtualWorkspaceKind::Terminating)?);
                process.add_controller(
                    controllers::TERMINATOR_RECONCILER,
                    controllers::terminator_controller(&setup, settings.clone()),
                );
            }
            Role::System => {
                let setup = process.setup(EndpointSource::ApiExport {
                    client: process.client()?,
                    slice: config.system_api_export_endpoint_slice_name.clone(),
                });
                process.add_controller(
                    controllers::API_EXPORT_POLICY_RECONCILER,
                    controllers::api_export_policy_controller(&setup, settings.clone()),
                );
                if settings.keycloak.is_some() {
                    process.add_controller(
                        controllers::IDENTITY_PROVIDER_RECONCILER,
                        controllers::identity_provider_controller(&setup, settings.clone()),
                    );
                }
            }
            Role::ModelGenerator => {
                process.add_controller(
                    controllers::MODEL_GENERATOR_RECONCILER,
                    controllers::model_generator_controller(&core, settings.clone()),
                );
            }
        }
    }
    Ok(process.run(stop).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        kit::cli::parse_from(
            ENV_PREFIX,
            ["security-operator", "system", "--fga-target=x:1"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn refusal(args: &[&str]) -> String {
        match keycloak(&config(args)) {
            Ok(_) => panic!("{args:?} was taken"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_keycloak_is_optional_and_its_flags_are_checked_without_asking_it() {
        assert!(keycloak(&config(&[])).unwrap().is_none());
        let url = "--keycloak-base-url=https://kc.example/keycloak";
        let secret = "--keycloak-client-secret=s3cret";
        assert!(keycloak(&config(&[url, secret])).unwrap().is_some());
        let missing = refusal(&[url]);
        assert!(
            missing.contains("KEYCLOAK_CLIENT_SECRET") && missing.contains("security-operator"),
            "{missing}"
        );
        let scheme = refusal(&["--keycloak-base-url=kc.example", secret]);
        assert!(scheme.contains("kc.example"), "{scheme}");
        let ca = refusal(&[url, secret, "--keycloak-ca-file=/nonexistent/ca.pem"]);
        assert!(ca.contains("/nonexistent/ca.pem"), "{ca}");
    }
}
