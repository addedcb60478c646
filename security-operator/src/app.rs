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
    #[error(transparent)]
    Process(#[from] ProcessError),
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
            idp: config.initializer_idp_enabled,
            invite: config.initializer_invite_enabled,
            workspace_auth: config.initializer_workspace_auth_enabled,
            base_domain: config.base_domain.clone(),
            registration_allowed: config.idp_registration_allowed,
            additional_redirect_urls: config.idp_additional_redirect_urls.clone(),
            kubectl_redirect_urls: config.idp_kubectl_client_redirect_urls.clone(),
            user_claim: config.user_claim.clone(),
            group_claim: config.group_claim.clone(),
            additional_audiences: config.additional_audiences.clone(),
            allow_unverified_emails: config.development_allow_unverified_emails,
        },
    });
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
