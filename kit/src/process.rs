//! The process an operator binary runs: it connects to kcp, hands the binary what its
//! controllers are built with ([`Setup`]), then [`Process::run`] owns the ops servers, the
//! readiness, leader election, the controllers, any extra servers (webhooks) and shutdown.
//!
//! A process tells the truth about itself: when a controller, a server or the leader elector
//! ends with an error (a port taken, a certificate missing, the lease lost), everything else
//! stops and `run` returns that error, naming the component, so the binary exits non-zero;
//! `/readyz` is 503 while a controller's watches have not synced or one has been failing for
//! longer than [`WATCH_FAILURE_GRACE`].

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use kcp::ClientFactory;
use kcp::client::RequestCounter;
use kcp::runtime::{ControllerConfig, EndpointSource, Health, RuntimeMetrics};
use kube::Client;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::OperatorArgs;
use crate::controller::{Runnable, Setup};
use crate::leader::{LeaderElector, LeaseConfig};
use crate::ops::{OpsServer, Readiness};

/// How long a watch may fail (kcp restarting, a 403 after an RBAC change) before `/readyz`
/// turns false; shorter outages are ridden out by the watch's own retries.
pub const WATCH_FAILURE_GRACE: Duration = Duration::from_secs(15);

/// What identifies a binary.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// Its name: in logs, errors, and the field manager of every write it makes.
    pub name: &'static str,
    /// The prefix of its flags' environment variables (`ACCOUNT_OPERATOR`).
    pub env_prefix: &'static str,
    /// The leader-election Lease name (upstream's ID, e.g. `8c290d9a.platform-mesh.io`).
    pub leader_election_id: &'static str,
}

/// Why the process could not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The kubeconfig cannot be read or used.
    #[error("--kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    /// No kubeconfig given and none found.
    #[error("no kubeconfig: pass --kubeconfig or set KUBECONFIG ({0})")]
    NoKubeconfig(String),
    /// A client cannot be built.
    #[error(transparent)]
    Client(#[from] kcp::ClientError),
    /// A kube client cannot be built.
    #[error("kube client: {0}")]
    Kube(#[from] kube::Error),
    /// An ops server cannot bind.
    #[error(transparent)]
    Ops(#[from] crate::ops::OpsError),
    /// The leader election is misconfigured.
    #[error(transparent)]
    Leader(#[from] crate::leader::LeaderError),
    /// A component ended with an error (or ended at all, before shutdown).
    #[error("{component}: {error}")]
    Failed { component: String, error: String },
}

type Task = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Server = Box<dyn FnOnce(CancellationToken) -> Task + Send>;

/// An operator process being assembled.
pub struct Process {
    binary: Binary,
    args: OperatorArgs,
    kube: kube::Config,
    factory: ClientFactory,
    registry: Registry,
    runtime_metrics: RuntimeMetrics,
    lifecycle_metrics: lifecycle::Metrics,
    requests: RequestCounter,
    controllers: Vec<(String, Box<dyn Runnable>)>,
    servers: Vec<(String, Server)>,
    checks: Vec<Check>,
}

/// A readiness check besides the controllers' watches.
type Check = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

impl std::fmt::Debug for Process {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Process")
            .field("binary", &self.binary.name)
            .finish_non_exhaustive()
    }
}

impl Process {
    /// Loads the kcp connection from `--kubeconfig`/`$KUBECONFIG` (or in-cluster) and
    /// `--kubeconfig-context`, and creates the shared metric families.
    pub async fn connect(binary: Binary, args: &OperatorArgs) -> Result<Self, ProcessError> {
        kcp::client::install_crypto_provider();
        let kube = kube_config(args).await?;
        let mut registry = Registry::default();
        let runtime_metrics = RuntimeMetrics::new(&mut registry);
        let lifecycle_metrics = lifecycle::Metrics::register(&mut registry);
        let requests = kcp::client::register_request_counter(&mut registry);
        let factory =
            ClientFactory::new(kube.clone())?.counting_requests("--kubeconfig", requests.clone());
        Ok(Self {
            binary,
            args: args.clone(),
            kube,
            factory,
            registry,
            runtime_metrics,
            lifecycle_metrics,
            requests,
            controllers: Vec::new(),
            servers: Vec::new(),
            checks: Vec::new(),
        })
    }

    /// The loaded kubeconfig (its CA, for one).
    pub fn kube_config(&self) -> &kube::Config {
        &self.kube
    }

    /// A client for the kubeconfig's own server: the workspace holding the endpoint source.
    pub fn client(&self) -> Result<Client, ProcessError> {
        Ok(Client::try_from(self.kube.clone())?)
    }

    /// The counter of requests sent, for the clients of a second kubeconfig.
    pub fn request_counter(&self) -> RequestCounter {
        self.requests.clone()
    }

    /// The registry `/metrics` serves, to register the binary's own families.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// What a controller reading `source` is built with.
    pub fn setup(&self, source: EndpointSource) -> Setup {
        Setup {
            factory: self.factory.clone(),
            source,
            config: ControllerConfig {
                concurrency: usize::from(self.args.max_concurrent_reconciles),
                shutdown_timeout: self.args.shutdown_timeout,
                resync: Some(self.args.resync_period).filter(|period| !period.is_zero()),
                ..ControllerConfig::default()
            },
            runtime_metrics: self.runtime_metrics.clone(),
            lifecycle_metrics: self.lifecycle_metrics.clone(),
            field_manager: self.binary.name.to_owned(),
            debug_label_value: self.args.debug_label_value.clone(),
        }
    }

    /// Adds a controller, run while this replica leads (always, without leader election).
    pub fn add_controller(&mut self, name: &str, controller: impl Runnable + 'static) {
        self.controllers
            .push((name.to_owned(), Box::new(controller)));
    }

    /// Adds a server that runs on every replica (admission webhooks) until the token it is
    /// given is cancelled. It ending before that, with or without an error, stops the process.
    pub fn add_server<F, Fut, E>(&mut self, name: &str, serve: F)
    where
        F: FnOnce(CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display,
    {
        let server: Server = Box::new(move |stop| {
            let serving = serve(stop);
            Box::pin(async move { serving.await.map_err(|e| e.to_string()) })
        });
        self.servers.push((name.to_owned(), server));
    }

    /// Adds a service the process cannot work without (OpenFGA): `probe` runs on every replica
    /// for the process's lifetime, keeping what `check` reads, and `/readyz` is 503 with
    /// `check`'s reason while it fails.
    pub fn add_dependency(
        &mut self,
        name: &str,
        probe: impl Future<Output = ()> + Send + 'static,
        check: impl Fn() -> Result<(), String> + Send + Sync + 'static,
    ) {
        let ended = format!("the probe of {name} ended");
        self.add_server(name, move |stop| async move {
            tokio::select! {
                () = stop.cancelled() => Ok(()),
                () = probe => Err(ended),
            }
        });
        self.checks.push(Box::new(check));
    }

    /// Runs until `stop` is cancelled (then shuts down in order and returns `Ok`), or until a
    /// component fails (then stops the rest and returns its error).
    pub async fn run(self, stop: CancellationToken) -> Result<(), ProcessError> {
        let Self {
            binary,
            args,
            registry,
            controllers,
            servers,
            checks,
            ..
        } = self;
        // Cancelled by the caller, or by the first component that fails.
        let stop = stop.child_token();
        let elector = match args.leader_elect {
            true => Some(leader_elector(&binary, &args).await?),
            false => None,
        };
        let leading = match &elector {
            Some(elector) => elector.subscribe(),
            None => watch::channel(true).1,
        };

        let readiness = Readiness::default();
        let healths: Vec<(String, Health)> = controllers
            .iter()
            .map(|(name, c)| (name.clone(), c.health()))
            .collect();
        readiness.add_check(move || {
            // A standby replica runs no controller: it is ready to take over.
            if !*leading.borrow() {
                return Ok(());
            }
            healths
                .iter()
                .try_for_each(|(name, health)| check(name, health))
        });
        for check in checks {
            readiness.add_check(check);
        }
        let registry = Arc::new(registry);
        let mut tasks: JoinSet<(String, Result<(), String>)> = JoinSet::new();
        for (what, address) in [
            ("metrics server", args.metrics_bind_address),
            ("health server", args.health_probe_bind_address),
        ] {
            let server = OpsServer::bind(address, registry.clone(), readiness.clone()).await?;
            let stop = stop.clone();
            tasks.spawn(async move {
                let served = server.serve(stop.cancelled_owned()).await;
                (what.to_owned(), served.map_err(|e| e.to_string()))
            });
        }
        for (name, serve) in servers {
            let serving = serve(stop.clone());
            tasks.spawn(async move { (name, serving.await) });
        }
        let work = move |token: CancellationToken| run_controllers(controllers, token);
        match elector {
            Some(elector) => {
                let stop = stop.clone();
                tasks.spawn(async move {
                    let result = match elector.run(stop, work).await {
                        Ok(Some(worked)) => worked,
                        Ok(None) => Ok(()),
                        Err(lost) => Err(lost.to_string()),
                    };
                    ("leader election".to_owned(), result)
                });
            }
            None => {
                let stop = stop.clone();
                tasks.spawn(async move { ("controllers".to_owned(), work(stop).await) });
            }
        }
        readiness.set_ready();

        let mut failed = None;
        while let Some(joined) = tasks.join_next().await {
            let (component, result) = joined
                .unwrap_or_else(|panic| ("a task".to_owned(), Err(format!("panicked: {panic}"))));
            let error = match result {
                Ok(()) if stop.is_cancelled() => continue,
                Ok(()) => "stopped on its own".to_owned(),
                Err(error) => error,
            };
            tracing::error!(binary = binary.name, %component, %error, "stopping the process");
            readiness.set_not_ready();
            stop.cancel();
            failed.get_or_insert(ProcessError::Failed { component, error });
        }
        failed.map_or(Ok(()), Err)
    }
}

/// Why a controller cannot work, if it cannot.
fn check(name: &str, health: &Health) -> Result<(), String> {
    // A watch failing since the start (kcp unreachable, a permission missing) is named, not
    // hidden behind "not synced".
    if let Some(why) = health.failing_longer_than(WATCH_FAILURE_GRACE) {
        return Err(format!("{name}: {why}"));
    }
    if !health.is_synced() {
        return Err(format!("{name}: the watches have not synced yet"));
    }
    Ok(())
}

/// Runs every controller until `token` is cancelled. Dropping this future (a lost lease)
/// aborts them, with their running reconciles.
async fn run_controllers(
    controllers: Vec<(String, Box<dyn Runnable>)>,
    token: CancellationToken,
) -> Result<(), String> {
    let mut running = JoinSet::new();
    for (name, controller) in controllers {
        let run = controller.run(token.clone());
        running.spawn(async move {
            run.await;
            name
        });
    }
    while let Some(done) = running.join_next().await {
        match done {
            Ok(_) if token.is_cancelled() => {}
            Ok(name) => return Err(format!("controller {name} stopped on its own")),
            Err(panic) => return Err(format!("a controller panicked: {panic}")),
        }
    }
    Ok(())
}

/// The elector on the hosting cluster's Lease (in-cluster config, or `$KUBECONFIG`).
async fn leader_elector(
    binary: &Binary,
    args: &OperatorArgs,
) -> Result<LeaderElector, ProcessError> {
    let client = Client::try_default().await?;
    let identity = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("{}-{}", binary.name, std::process::id()));
    let lease = LeaseConfig::new(
        args.leader_election_namespace.clone(),
        binary.leader_election_id,
        identity,
    );
    Ok(LeaderElector::new(client, lease)?)
}

/// Loads the kcp connection from `--kubeconfig`/`$KUBECONFIG` and `--kubeconfig-context`.
async fn kube_config(args: &OperatorArgs) -> Result<kube::Config, ProcessError> {
    let options = kube::config::KubeConfigOptions {
        context: args.kubeconfig_context.clone(),
        ..Default::default()
    };
    let Some(path) = &args.kubeconfig else {
        return kube::Config::infer()
            .await
            .map_err(|e| ProcessError::NoKubeconfig(e.to_string()));
    };
    let invalid = |reason: String| ProcessError::Kubeconfig {
        path: path.display().to_string(),
        reason,
    };
    let kubeconfig =
        kube::config::Kubeconfig::read_from(path).map_err(|e| invalid(e.to_string()))?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| invalid(e.to_string()))
}

/// The whole `main` of an operator binary, after parsing its flags: logging, SIGTERM, `run`,
/// and an exit status that says whether it failed (with the error on stderr and in the log).
pub async fn main<F, Fut, E>(binary: Binary, args: &OperatorArgs, run: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: Display,
{
    let name = binary.name;
    if let Err(e) = crate::telemetry::init_tracing(&args.log_level, !args.no_json) {
        eprintln!("{name}: {e}");
        return ExitCode::FAILURE;
    }
    if args.upstream.tracing_enabled {
        tracing::warn!(
            "--tracing-enabled is accepted for upstream's charts, but traces are not exported"
        );
    }
    let stop = CancellationToken::new();
    if let Err(e) = crate::shutdown::cancel_on_signal(stop.clone()) {
        eprintln!("{name}: cannot listen for SIGTERM: {e}");
        return ExitCode::FAILURE;
    }
    match run(stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "{name} failed");
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
