//! The operator, assembled from the kit: the PlatformMesh controller on the hosting cluster
//! (the kit's `--kubeconfig`), kcp reached with `--kcp-kubeconfig`.

use std::sync::Arc;

use kcp::runtime::EndpointSource;
use kit::process::{Binary, Process, ProcessError};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::controller::{
    PLATFORM_MESH_RECONCILER, Settings, Steps, WebhookRegistration, platform_mesh_controller,
};
use crate::flux::ChartSource;
use crate::kubeconfig::{KubeconfigError, admin_source};
use crate::welcome::WelcomeSettings;

/// The binary: its name (the field manager of its writes), its flags' environment prefix and
/// its leader-election Lease, as upstream.
pub const BINARY: Binary = Binary {
    name: "platform-mesh-operator",
    env_prefix: "PLATFORM_MESH_OPERATOR",
    leader_election_id: "81924e50.platform-mesh.org",
};

/// Why the operator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("--kcp-kubeconfig {path}: {source}")]
    KcpKubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("--kcp-kubeconfig: {0}")]
    KcpCredentials(#[from] KubeconfigError),
    #[error("--kcp-kubeconfig: {0}")]
    KcpClient(#[from] kcp::ClientError),
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// Runs the operator until `stop` is cancelled or a part of it fails.
pub async fn run(config: Config, stop: CancellationToken) -> Result<(), AppError> {
    let path = &config.kcp_kubeconfig;
    let context = config.kcp_kubeconfig_context.as_deref();
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|source| AppError::KcpKubeconfig {
            path: path.display().to_string(),
            source,
        })?;
    let admin = admin_source(&kubeconfig, context)?;
    let mut process = Process::connect(BINARY, &config.operator).await?;
    let kcp = kcp::ClientFactory::from_kubeconfig(path, context)
        .await?
        .counting_requests("--kcp-kubeconfig", process.request_counter());
    let kcp_url = config
        .kcp_url
        .clone()
        .unwrap_or_else(|| kcp.server().clone());
    let settings = Arc::new(Settings {
        kcp,
        kcp_url,
        admin,
        field_manager: BINARY.name.to_owned(),
        drift_check_interval: config.kcp_drift_check_interval,
        account_webhooks: (!config.no_account_operator_webhooks).then(|| WebhookRegistration {
            ca_secret: config.account_operator_webhook_ca_secret.clone(),
            url: config.account_operator_webhook_url.clone(),
            service: "account-operator-webhook",
        }),
        security_webhook: config
            .security_operator_webhook_ca_secret
            .clone()
            .map(|ca_secret| WebhookRegistration {
                ca_secret,
                url: config.security_operator_webhook_url.clone(),
                service: "security-operator-webhook",
            }),
        authorization_webhook_secret: config.authorization_webhook_secret_name.clone(),
        authorization_webhook_ca_secret: config.authorization_webhook_secret_ca_name.clone(),
        authorization_webhook_url: config.authorization_webhook_url.clone(),
        scoped_token_lifetime: config.scoped_token_lifetime,
        setup_progress: Default::default(),
        charts: ChartSource {
            repository: config.chart_repository.clone(),
            version: config.chart_version.clone(),
        },
        welcome: WelcomeSettings {
            registration_allowed: config.idp_registration_allowed,
            additional_redirect_uris: config.idp_welcome_additional_redirect_uris.clone(),
            additional_post_logout_redirect_uris: config
                .idp_welcome_additional_post_logout_redirect_uris
                .clone(),
            domain_ca_secret: config
                .domain_certificate_ca_secret_name
                .clone()
                .map(|name| (name, config.domain_certificate_ca_secret_key.clone())),
        },
    });
    let steps = Steps {
        kcp_setup: config.subroutines_kcp_setup_enabled,
        provider_secrets: config.subroutines_provider_secret_enabled,
        authorization_webhook: config.subroutines_authorization_webhook_enabled,
        deployment: config.subroutines_deployment_enabled,
        delete_workspaces: config.delete_workspaces_on_delete,
        welcome: config.subroutines_welcome_enabled,
    };
    // The hosting cluster is watched directly: PlatformMesh and Secrets live there.
    let setup = process.setup(EndpointSource::Direct {
        url: process.kube_config().cluster_url.to_string(),
    });
    process.add_controller(
        PLATFORM_MESH_RECONCILER,
        platform_mesh_controller(&setup, settings, steps),
    );
    Ok(process.run(stop).await?)
}
