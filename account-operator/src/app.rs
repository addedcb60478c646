//! Starts everything the flags ask for and runs until stopped.

use std::sync::Arc;

use kcp::ClientFactory;
use kcp::runtime::{ControllerConfig, EndpointSource, RuntimeMetrics};
use kube::{Client, Config as KubeConfig};
use kit::ops::{OpsServer, Readiness};
use prometheus_client::registry::Registry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::controllers::{
    AccountMetrics, Settings, Steps, account_controller, account_info_controller,
};
use crate::webhooks::{WebhookConfig, WebhookMetrics};

/// Leader-election Lease name, as upstream.
pub const LEADER_ELECTION_ID: &str = "8c290d9a.platform-mesh.io";

/// Why the operator could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("--kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("no kubeconfig: pass --kubeconfig or set KUBECONFIG ({0})")]
    NoKubeconfig(String),
    #[error("--kcp-ca-file {path}: {source}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no CA for kcp in the kubeconfig; pass --kcp-ca-file")]
    NoCa,
    #[error(transparent)]
    Client(#[from] kcp::ClientError),
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
    #[error(transparent)]
    Ops(#[from] kit::ops::OpsError),
    #[error(transparent)]
    Webhooks(#[from] crate::webhooks::WebhookError),
    #[error(transparent)]
    Leader(#[from] kit::leader::LeaderError),
}

/// Loads the kcp connection from `--kubeconfig`/`$KUBECONFIG` and `--kubeconfig-context`.
pub async fn kube_config(config: &Config) -> Result<KubeConfig, AppError> {
    let options = kube::config::KubeConfigOptions {
        context: config.kubeconfig_context.clone(),
        ..Default::default()
    };
    match &config.kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| AppError::Kubeconfig {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
            KubeConfig::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| AppError::Kubeconfig {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })
        }
        None => KubeConfig::infer()
            .await
            .map_err(|e| AppError::NoKubeconfig(e.to_string())),
    }
}

/// kcp's CA as PEM: from `--kcp-ca-file`, else from the kubeconfig (inline data or file,
/// which kube resolves; upstream read only inline data and wrote an empty CA otherwise).
pub fn ca_pem(config: &Config, kube: &KubeConfig) -> Result<String, AppError> {
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

/// Runs the operator until `stop` is cancelled.
pub async fn run(config: Config, stop: CancellationToken) -> Result<(), AppError> {
    kcp::client::install_crypto_provider();
    let kube = kube_config(&config).await?;
    let ca_pem = ca_pem(&config, &kube)?;
    // The kubeconfig's server is the workspace holding the endpoint slice.
    let source_client = Client::try_from(kube.clone())?;
    let factory = ClientFactory::new(kube)?;

    let mut registry = Registry::default();
    let runtime_metrics = RuntimeMetrics::new(&mut registry);
    let lifecycle_metrics = lifecycle::Metrics::register(&mut registry);
    let settings = Arc::new(Settings {
        orgs_path: config.kcp_orgs_path.clone(),
        ca_pem,
        debug_label_value: config.debug_label_value.clone(),
        metrics: AccountMetrics::register(&mut registry),
    });
    let webhook_metrics = config
        .webhooks_enabled
        .then(|| WebhookMetrics::register(&mut registry));
    let registry = Arc::new(registry);

    let source = EndpointSource::ApiExport {
        client: source_client,
        slice: config.kcp_api_export_endpoint_slice_name.clone(),
    };
    let controller_config = ControllerConfig {
        concurrency: config.max_concurrent_reconciles,
        shutdown_timeout: config.shutdown_timeout,
        ..Default::default()
    };
    let accounts = account_controller(
        factory.clone(),
        source.clone(),
        controller_config.clone(),
        Some(runtime_metrics.clone()),
        Some(lifecycle_metrics.clone()),
        settings.clone(),
        Steps {
            workspace_type: config.subroutines_workspace_type_enabled,
            workspace: config.subroutines_workspace_enabled,
            account_info: config.subroutines_account_info_enabled,
            workspace_ready: config.subroutines_workspace_ready_enabled,
        },
    );
    let infos = config.controllers_account_info_enabled.then(|| {
        account_info_controller(
            factory,
            source,
            controller_config,
            Some(runtime_metrics),
            Some(lifecycle_metrics),
            settings,
        )
    });

    let mut tasks: JoinSet<Result<(), AppError>> = JoinSet::new();
    let readiness = Readiness::default();
    {
        let mut watches = vec![accounts.readiness()];
        watches.extend(infos.as_ref().map(|c| c.readiness()));
        let readiness = readiness.clone();
        tasks.spawn(async move {
            for mut watch in watches {
                watch.wait().await;
            }
            readiness.set_ready();
            Ok(())
        });
    }
    for address in [
        config.metrics_bind_address,
        config.health_probe_bind_address,
    ] {
        let server = OpsServer::bind(address, registry.clone(), readiness.clone()).await?;
        let stop = stop.clone();
        tasks.spawn(async move { Ok(server.serve(async move { stop.cancelled().await }).await?) });
    }
    if let Some(metrics) = webhook_metrics {
        let webhook_config = WebhookConfig {
            port: config.webhooks_port,
            cert_dir: config.webhooks_cert_dir.clone(),
            deny_list: config.webhooks_deny_list.clone(),
            additional_account_types: config.webhooks_additional_account_types.clone(),
            creator_only_when_empty: config.webhooks_creator_only_when_empty,
        };
        let stop = stop.clone();
        tasks
            .spawn(async move { Ok(crate::webhooks::serve(webhook_config, metrics, stop).await?) });
    }

    let controllers = async move {
        let stop_controllers = stop.clone();
        let work = |leading: CancellationToken| async move {
            let mut running = JoinSet::new();
            running.spawn(accounts.run(leading.clone()));
            if let Some(infos) = infos {
                running.spawn(infos.run(leading));
            }
            while running.join_next().await.is_some() {}
        };
        if config.leader_elect {
            let client = Client::try_default().await?;
            let identity = std::env::var("POD_NAME")
                .or_else(|_| std::env::var("HOSTNAME"))
                .unwrap_or_else(|_| format!("account-operator-{}", std::process::id()));
            let lease = kit::leader::LeaseConfig::new(
                config.leader_election_namespace.clone(),
                LEADER_ELECTION_ID,
                identity,
            );
            let elector = kit::leader::LeaderElector::new(client, lease)?;
            elector.run(stop_controllers, work).await?;
        } else {
            work(stop_controllers).await;
        }
        Ok::<(), AppError>(())
    };
    tasks.spawn(controllers);

    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "stopping");
                first_error.get_or_insert(e);
            }
            Err(join) => tracing::error!(error = %join, "a task panicked"),
        }
    }
    first_error.map_or(Ok(()), Err)
}
