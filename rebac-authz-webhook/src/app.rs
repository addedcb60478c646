//! The webhook, assembled from the kit: two reflectors (LogicalClusters, Stores) on the
//! export's endpoint slice feed the [`Directory`]; the HTTPS server answers from it and
//! OpenFGA. Every replica serves, from a view of its own; there is no leader.

use std::sync::Arc;

use crds::Store;
use fga::api::{Reachability, UNREACHABLE_GRACE};
use kcp::runtime::EndpointSource;
use kcp::types::core::LogicalCluster;
use kit::admission::WebhookServer;
use kit::controller::Reflector;
use kit::process::{Binary, Process, ProcessError};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::decide::Rules;
use crate::directory::{Directory, RetryLimits, Sources};
use crate::metrics::Metrics;
use crate::server::{Authorizer, routes};

/// The binary. (Its Lease name is unused: it refuses `--leader-elect`.)
pub const BINARY: Binary = Binary {
    name: "rebac-authz-webhook",
    env_prefix: "REBAC_AUTHZ_WEBHOOK",
    leader_election_id: "rebac-authz-webhook.platform-mesh.io",
};

/// Why the webhook could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(
        "--leader-elect: every replica of the webhook answers kcp from its own view of the \
         workspaces; there is no leader to elect"
    )]
    LeaderElect,
    #[error("--openfga-addr: {0}")]
    OpenFga(#[from] fga::api::AddressError),
    #[error(transparent)]
    Webhook(#[from] kit::admission::WebhookError),
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// Runs the webhook until `stop` is cancelled or a part of it fails.
pub async fn run(config: Config, stop: CancellationToken) -> Result<(), AppError> {
    if config.operator.leader_elect {
        return Err(AppError::LeaderElect);
    }
    let fga = fga::api::connect(&config.openfga_addr)?;
    let mut process = Process::connect(BINARY, &config.operator).await?;
    let reachability = Reachability::new(&config.openfga_addr, UNREACHABLE_GRACE);
    process.add_dependency(
        "OpenFGA",
        reachability.clone().probe(fga.clone()),
        move || reachability.check(),
    );
    // The kubeconfig's server is the workspace holding the endpoint slice.
    let setup = process.setup(EndpointSource::ApiExport {
        client: process.client()?,
        slice: config.kcp_api_export_endpoint_slice_name.clone(),
    });
    let logical_clusters = Reflector::<LogicalCluster>::new("logicalclusters", &setup);
    let stores = Reflector::<Store>::new("stores", &setup);
    let directory = Directory::new(
        Sources {
            clusters: logical_clusters.clusters(),
            logical_clusters: logical_clusters.cache(),
            stores: stores.cache(),
            factory: setup.factory.clone(),
        },
        config.kcp_orgs_path.clone(),
        config.openfga_timeout,
        RetryLimits {
            max_retries: config.webhook_cache_miss_max_retries,
            ttl: config.webhook_cache_miss_ttl,
            cleanup_interval: config.webhook_cache_miss_cleanup_interval,
        },
    );
    let authorizer = Arc::new(Authorizer {
        rules: Rules {
            cluster_key: config.webhook_cluster_key.clone(),
            allowed_nonresource_prefixes: config.webhook_allowed_nonresource_prefixes.clone(),
            retry_after: config.webhook_cache_miss_retry_after,
            deny_unpermitted_binds: config.deny_unpermitted_binds,
        },
        directory,
        fga,
        check_timeout: config.openfga_timeout,
        metrics: Metrics::register(process.registry()),
    });
    process.add_controller("logicalclusters", logical_clusters);
    process.add_controller("stores", stores);
    let server = WebhookServer::bind(
        config.webhook_bind_address,
        &config.webhook_cert_dir,
        routes(authorizer),
    )
    .await?;
    process.add_server("authorization webhook", move |stop| server.run(stop));
    Ok(process.run(stop).await?)
}
