//! The account-operator, assembled from the kit: its settings, its two controllers on the
//! `core.platform-mesh.io` endpoint slice, and its webhooks.

use std::sync::Arc;

use kcp::runtime::EndpointSource;
use kit::process::{Binary, Process, ProcessError};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::controllers::{
    ACCOUNT_INFO_RECONCILER, ACCOUNT_RECONCILER, AccountMetrics, CreationSlots, Settings, Steps,
    account_controller, account_info_controller,
};
use crate::webhooks::{WebhookConfig, WebhookMetrics};

/// The binary: its name (the field manager of its writes), its flags' environment prefix and
/// its leader-election Lease, as upstream.
pub const BINARY: Binary = Binary {
    name: "account-operator",
    env_prefix: "ACCOUNT_OPERATOR",
    leader_election_id: "8c290d9a.platform-mesh.io",
};

/// Why the operator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("--kcp-ca-file {path}: {source}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no CA for kcp in the kubeconfig; pass --kcp-ca-file")]
    NoCa,
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// kcp's CA as PEM: from `--kcp-ca-file`, else from the kubeconfig (inline data or file,
/// which kube resolves; upstream read only inline data and wrote an empty CA otherwise).
pub fn ca_pem(config: &Config, kube: &kube::Config) -> Result<String, AppError> {
    if let Some(path) = &config.kcp_ca_file {
        return std::fs::read_to_string(path).map_err(|source| AppError::CaFile {
            path: path.display().to_string(),
            source,
        });
    }
    let certs = kube
        .root_cert
        .as_ref()
        .filter(|c| !c.is_empty())
        .ok_or(AppError::NoCa)?;
    Ok(pem::encode_many(
        &certs
            .iter()
            .map(|der| pem::Pem::new("CERTIFICATE", der.clone()))
            .collect::<Vec<_>>(),
    ))
}

/// Runs the operator until `stop` is cancelled or a part of it fails.
pub async fn run(config: Config, stop: CancellationToken) -> Result<(), AppError> {
    let mut process = Process::connect(BINARY, &config.operator).await?;
    let settings = Arc::new(Settings {
        orgs_path: config.kcp_orgs_path.clone(),
        ca_pem: ca_pem(&config, process.kube_config())?,
        metrics: AccountMetrics::register(process.registry()),
        creation_slots: CreationSlots::new(config.max_workspaces_in_creation),
    });
    // The kubeconfig's server is the workspace holding the endpoint slice.
    let setup = process.setup(EndpointSource::ApiExport {
        client: process.client()?,
        slice: config.kcp_api_export_endpoint_slice_name.clone(),
    });
    let steps = Steps {
        workspace_type: config.subroutines_workspace_type_enabled,
        workspace: config.subroutines_workspace_enabled,
        account_info: config.subroutines_account_info_enabled,
        workspace_ready: config.subroutines_workspace_ready_enabled,
    };
    process.add_controller(
        ACCOUNT_RECONCILER,
        account_controller(&setup, settings.clone(), steps),
    );
    if config.controllers_account_info_enabled {
        process.add_controller(
            ACCOUNT_INFO_RECONCILER,
            account_info_controller(&setup, settings),
        );
    }
    if config.webhooks.webhooks_enabled {
        let metrics = WebhookMetrics::register(process.registry());
        let webhooks = WebhookConfig {
            port: config.webhooks.webhooks_port,
            cert_dir: config.webhooks.webhooks_cert_dir.clone(),
            deny_list: config.webhooks_deny_list.clone(),
            additional_account_types: config.webhooks_additional_account_types.clone(),
            creator_only_when_empty: config.webhooks_creator_only_when_empty,
        };
        process.add_server("webhook server", move |stop| {
            crate::webhooks::serve(webhooks, metrics, stop)
        });
    }
    Ok(process.run(stop).await?)
}
