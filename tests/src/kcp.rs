//! One real kcp per test binary, and private workspaces for tests.

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kcp::types::tenancy::{Workspace, WorkspaceSpec, WorkspaceTypeReference};
use kcp::{ClientFactory, ClusterName, ClusterPath};
use kube::api::{Api, PostParams};
use kube::core::ObjectMeta;
use kube::runtime::wait::await_condition;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::process::{ServerProcess, Supervisor, free_port, memory_mib};

/// How long kcp may take to become ready (a cold start on two cores takes about 25 s).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a restartable kcp may take to shut down on SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a test waits for kcp to reconcile something (a workspace to turn Ready …).
const WAIT_TIMEOUT: Duration = Duration::from_secs(90);

/// A running kcp (`kcp start`, embedded etcd, in-process virtual workspaces).
#[derive(Debug)]
pub struct Kcp {
    process: ServerProcess,
    kubeconfig: PathBuf,
    /// Time from spawn to the first successful `/readyz`.
    pub startup: Duration,
    state: tempfile::TempDir,
    /// How a [`Kcp::restartable`] is stopped and started again; `None` for every other kcp.
    restarts: Option<Restarts>,
}

/// How a restartable kcp is stopped and started again.
#[derive(Debug)]
struct Restarts {
    supervisor: Supervisor,
    /// kcp's `--token-auth-file`: every `kcp-admin` token kcp has written into its kubeconfig.
    /// kcp makes a new one at each start and forgets the old; this keeps the old ones valid,
    /// so that clients, and kubeconfigs copied from kcp's, work again after a restart (an
    /// operator's ServiceAccount token or certificate outlives a restart too).
    admin_tokens: PathBuf,
}

static SHARED: OnceCell<Kcp> = OnceCell::const_new();

impl Kcp {
    /// The kcp of this test binary, started on first use. Panics, with the command that builds
    /// it, when the kcp binary is missing, and with kcp's log when it does not start.
    pub async fn shared() -> &'static Kcp {
        crate::init_logging();
        SHARED.get_or_init(Self::start).await
    }

    async fn start() -> Kcp {
        Self::start_with(|_| Vec::new()).await
    }

    /// A kcp of its own, stopped (and its state removed) when dropped: for a benchmark that
    /// measures from a fresh kcp, round after round.
    pub async fn fresh() -> Kcp {
        Self::start().await
    }

    /// A kcp of its own, as [`Kcp::fresh`], that its test can [`stop`](Self::stop) and
    /// [`start again`](Self::start_again) on the same root directory and ports, so that the
    /// kubeconfig and every client work again once it is back. It runs under a supervisor
    /// shell inside the usual watchdog, so it still cannot outlive the test binary, and its
    /// state is still removed when the binary exits.
    pub async fn restartable() -> Kcp {
        Self::launch(|_| Vec::new(), true).await
    }

    /// Starts a kcp of its own with more flags: `flags` writes what they refer to into kcp's
    /// state directory (removed with it) and returns them.
    pub(crate) async fn start_with(flags: impl FnOnce(&Path) -> Vec<String>) -> Kcp {
        Self::launch(flags, false).await
    }

    async fn launch(flags: impl FnOnce(&Path) -> Vec<String>, restartable: bool) -> Kcp {
        crate::init_logging();
        let binary = xtask::binary("kcp").unwrap_or_else(|e| panic!("{e}"));
        // The state directory outlives no test binary: the watchdog removes it, and TempDir
        // would too if the value were ever dropped.
        let state = tempfile::Builder::new()
            .prefix("pm-kcp-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating kcp's state directory: {e}"));
        let root = state.path().join("root");
        let kubeconfig = root.join("admin.kubeconfig");
        let args = vec![
            "start".to_owned(),
            format!("--root-directory={}", root.display()),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", free_port()),
            format!("--embedded-etcd-client-port={}", free_port()),
            format!("--embedded-etcd-peer-port={}", free_port()),
            // As Platform Mesh runs its root shard.
            "--feature-gates=WorkspaceAuthentication=true,CacheAPIs=true".to_owned(),
        ];
        let args = [args, flags(state.path())].concat();
        let (program, args, restarts) = if restartable {
            let admin_tokens = state.path().join("admin-tokens.csv");
            std::fs::write(&admin_tokens, "")
                .unwrap_or_else(|e| panic!("writing {}: {e}", admin_tokens.display()));
            let token_file = format!("--token-auth-file={}", admin_tokens.display());
            let (supervisor, program, args) =
                Supervisor::wrap(state.path(), &binary, [args, vec![token_file]].concat());
            let restarts = Restarts {
                supervisor,
                admin_tokens,
            };
            (program, args, Some(restarts))
        } else {
            (binary, args, None)
        };
        let process = ServerProcess::start("kcp", &program, &args, state.path(), true)
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let started = process.started();
        let mut kcp = Kcp {
            startup: Duration::ZERO,
            process,
            kubeconfig,
            state,
            restarts,
        };
        kcp.until_ready(started).await;
        kcp.startup = started.elapsed();
        if kcp.restarts.is_some() {
            kcp.keep_admin_token();
        }
        kcp
    }

    /// Adds the `kcp-admin` token of the kcp started last to the tokens its next start accepts.
    fn keep_admin_token(&self) {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        let token = kubeconfig
            .auth_infos
            .iter()
            .find(|user| user.name == "kcp-admin")
            .and_then(|user| serde_json::to_value(&user.auth_info).ok())
            .and_then(|user| Some(user.get("token")?.as_str()?.to_owned()))
            .unwrap_or_else(|| panic!("{} has no kcp-admin token", self.kubeconfig.display()));
        let file = &self.restarts().admin_tokens;
        // token,user,uid,groups: the user kcp's own token stands for.
        let line = format!("{token},kcp-admin,kcp-admin,system:kcp:admin\n");
        std::fs::OpenOptions::new()
            .append(true)
            .open(file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
            .unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    }

    /// Waits until kcp answers `/readyz` with `ok`; panics with kcp's log when it exits first
    /// or takes longer than [`STARTUP_TIMEOUT`] from `started`.
    async fn until_ready(&self, started: Instant) {
        loop {
            if started.elapsed() > STARTUP_TIMEOUT {
                panic!(
                    "{}",
                    self.process.failed_to_start(STARTUP_TIMEOUT, "timeout")
                );
            }
            if self.exited() {
                panic!(
                    "{}",
                    self.process
                        .failed_to_start(started.elapsed(), "kcp exited")
                );
            }
            if self.kubeconfig.is_file() && readyz(&self.kubeconfig).await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Whether kcp was started and has exited.
    fn exited(&self) -> bool {
        match &self.restarts {
            Some(restarts) => restarts.supervisor.exited(),
            None => self.process.exited(),
        }
    }

    fn restarts(&self) -> &Restarts {
        self.restarts
            .as_ref()
            .unwrap_or_else(|| panic!("only a Kcp::restartable() can be stopped and restarted"))
    }

    /// Stops kcp with SIGTERM, as its watchdog would, and waits until it has exited; its root
    /// directory stays. Panics unless kcp was started with [`Kcp::restartable`] and is running.
    /// `&mut` so that a shared kcp, which other tests use, cannot be stopped.
    pub async fn stop(&mut self) {
        self.restarts()
            .supervisor
            .stop(&self.process, STOP_TIMEOUT)
            .await;
    }

    /// Starts the stopped kcp again with the same root directory, ports and flags, and waits
    /// until it is ready; returns the time that took.
    pub async fn start_again(&mut self) -> Duration {
        self.restarts().supervisor.start_again();
        let started = Instant::now();
        self.until_ready(started).await;
        let took = started.elapsed();
        self.keep_admin_token();
        took
    }

    /// The admin kubeconfig kcp wrote.
    pub fn kubeconfig(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    /// kcp's state directory.
    pub fn state_dir(&self) -> &std::path::Path {
        self.state.path()
    }

    /// kcp's resident memory now, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        memory_mib(self.pid()?, "VmRSS:")
    }

    /// kcp's process id; `None` while a restartable kcp is stopped.
    pub fn pid(&self) -> Option<u32> {
        match &self.restarts {
            Some(restarts) => restarts.supervisor.pid(),
            None => self.process.pid(),
        }
    }

    /// The admin kubeconfig with its `root` context pointed at workspace `path`, written into
    /// kcp's state directory as `<file_name>.kubeconfig`: for a component whose kubeconfig's
    /// server is its workspace.
    pub fn pointed_kubeconfig(&self, path: &ClusterPath, file_name: &str) -> PathBuf {
        let file = self.state_dir().join(format!("{file_name}.kubeconfig"));
        point_kubeconfig(&self.kubeconfig, path, &file);
        file
    }

    /// Clients as `kcp-admin` (the `root` context): any workspace by path or name, and the
    /// virtual workspaces.
    pub async fn admin(&self) -> ClientFactory {
        self.factory("root").await
    }

    /// Clients as the shard admin (`shard-base`, group `system:masters`), the one identity that
    /// may list and watch across all logical clusters with `/clusters/*` on the shard.
    pub async fn shard_admin(&self) -> ClientFactory {
        self.factory("shard-base").await
    }

    async fn factory(&self, context: &str) -> ClientFactory {
        ClientFactory::from_kubeconfig(&self.kubeconfig, Some(context))
            .await
            .unwrap_or_else(|e| panic!("kcp {context} context: {e}"))
    }

    /// A fresh workspace `root:<hint>-<unique>` of type `universal`, Ready, for one test.
    pub async fn private_workspace(&self, hint: &str) -> TestWorkspace {
        let admin = self.admin().await;
        let name = format!("{hint}-{}", crate::unique_suffix());
        let workspace = create_workspace(&admin, &ClusterPath::root(), &name, universal()).await;
        TestWorkspace::new(
            admin,
            ClusterPath::root()
                .join(&name)
                .unwrap_or_else(|e| panic!("{e}")),
            &workspace,
        )
    }
}

async fn readyz(kubeconfig: &std::path::Path) -> bool {
    match ClientFactory::from_kubeconfig(kubeconfig, Some("root")).await {
        Ok(factory) => server_ready(&factory).await,
        Err(_) => false,
    }
}

/// Whether the server `factory` points at answers `/readyz` with `ok`.
pub(crate) async fn server_ready(factory: &ClientFactory) -> bool {
    let Ok(client) = factory.for_server() else {
        return false;
    };
    let Ok(request) = http::Request::get("/readyz").body(Vec::new()) else {
        return false;
    };
    client
        .request_text(request)
        .await
        .is_ok_and(|body| body.trim() == "ok")
}

/// The `universal` WorkspaceType in `root`.
/// Writes to `to` a copy of the admin kubeconfig `from` whose `root` context's server is
/// workspace `path` (`…/clusters/<path>`), as the platform-mesh-operator writes a component's
/// kubeconfig. Panics when the `root` context's server is not `…/clusters/root`.
pub fn point_kubeconfig(from: &Path, path: &ClusterPath, to: &Path) {
    let mut config = kube::config::Kubeconfig::read_from(from)
        .unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    let cluster = config
        .contexts
        .iter()
        .find(|c| c.name == "root")
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_else(|| panic!("{} has no root context", from.display()));
    let server = config
        .clusters
        .iter_mut()
        .find(|c| c.name == cluster)
        .and_then(|c| c.cluster.as_mut())
        .and_then(|c| c.server.as_mut())
        .filter(|server| server.ends_with("/clusters/root"))
        .unwrap_or_else(|| {
            panic!(
                "{}: the root context's server is not …/clusters/root",
                from.display()
            )
        });
    *server = format!("{}{path}", server.trim_end_matches("root"));
    // JSON is YAML: every kubeconfig reader takes it.
    let text = serde_json::to_string_pretty(&config).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(to, text).unwrap_or_else(|e| panic!("writing {}: {e}", to.display()));
}

pub fn universal() -> WorkspaceTypeReference {
    WorkspaceTypeReference {
        name: "universal".to_owned(),
        path: "root".to_owned(),
    }
}

/// A workspace a test owns, with clients for it.
#[derive(Debug, Clone)]
pub struct TestWorkspace {
    /// Clients for any workspace.
    pub factory: ClientFactory,
    /// The workspace path.
    pub path: ClusterPath,
    /// The workspace's logical-cluster name.
    pub cluster: ClusterName,
}

impl TestWorkspace {
    fn new(factory: ClientFactory, path: ClusterPath, workspace: &Workspace) -> Self {
        let cluster = workspace
            .spec
            .cluster
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("Ready workspace {path} has no spec.cluster"));
        Self {
            factory,
            path,
            cluster,
        }
    }

    /// A client for this workspace.
    pub fn client(&self) -> Client {
        self.factory
            .for_path(&self.path)
            .unwrap_or_else(|e| panic!("client for {}: {e}", self.path))
    }

    /// Creates a child workspace and waits until it is Ready.
    pub async fn child(&self, name: &str, type_: WorkspaceTypeReference) -> TestWorkspace {
        let workspace = create_workspace(&self.factory, &self.path, name, type_).await;
        let path = self.path.join(name).unwrap_or_else(|e| panic!("{e}"));
        TestWorkspace::new(self.factory.clone(), path, &workspace)
    }
}

/// Creates workspace `name` under `parent` (or takes the existing one) and waits, with a
/// watch, until kcp reports it Ready.
pub async fn create_workspace(
    factory: &ClientFactory,
    parent: &ClusterPath,
    name: &str,
    type_: WorkspaceTypeReference,
) -> Workspace {
    let client = factory
        .for_path(parent)
        .unwrap_or_else(|e| panic!("client for {parent}: {e}"));
    let api: Api<Workspace> = Api::all(client);
    let workspace = Workspace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: WorkspaceSpec {
            type_: Some(type_),
            ..Default::default()
        },
        status: None,
    };
    // The parent may have turned Ready a moment ago: wait until its APIs are served.
    let post = PostParams::default();
    match when_served(|| api.create(&post, &workspace)).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("creating workspace {name} in {parent}: {e}"),
    }
    wait_for(&api, name, "to be Ready", Workspace::is_ready).await
}

/// Runs `request` until the API it calls is served: a new workspace's APIs (and a new
/// binding's resources) answer a bare `404 page not found` for a moment after it turns Ready.
/// Any other result, success or error, is returned as it is.
pub async fn when_served<T, F, Fut>(request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    retry_while(request, Duration::from_secs(30), |status| {
        status.code == 404 && status.message.contains("page not found")
    })
    .await
}

/// Runs `request` until it finds what it asks for: besides a path not served yet, a virtual
/// workspace answers `404 … not found` for an object of a new cluster until its informers
/// have caught up (seconds, on a busy machine). Any other result is returned as it is.
pub async fn when_found<T, F, Fut>(request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    retry_while(request, Duration::from_secs(30), |status| {
        status.code == 404
    })
    .await
}

/// Runs `request` again, every 100 ms for up to `within`, while kcp answers it with an error
/// that `passing` says goes by itself. Any other result, success or error, is returned as it
/// is.
pub(crate) async fn retry_while<T, F, Fut>(
    mut request: F,
    within: Duration,
    passing: impl Fn(&kube::core::Status) -> bool,
) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match request().await {
            Err(kube::Error::Api(status))
                if passing(&status) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Waits, with a watch, until object `name` no longer exists (finalizers done).
pub async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let gone = |object: Option<&K>| object.is_none();
    match tokio::time::timeout(WAIT_TIMEOUT * 2, await_condition(api.clone(), name, gone)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("watching {name}: {e}"),
        Err(_) => panic!(
            "{name} still exists after {:?}: {:#?}",
            WAIT_TIMEOUT * 2,
            api.get_opt(name).await
        ),
    }
}

/// Waits, with a watch, until object `name` satisfies `ready`; panics after a timeout with
/// the object's last state.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, ready: impl Fn(&K) -> bool) -> K
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    wait_for_within(WAIT_TIMEOUT, api, name, what, ready).await
}

/// [`wait_for`] with its own deadline, for waits on kcp's bulk work (hundreds of workspaces
/// initialising at once take minutes on two cores).
pub async fn wait_for_within<K>(
    timeout: Duration,
    api: &Api<K>,
    name: &str,
    what: &str,
    ready: impl Fn(&K) -> bool,
) -> K
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let started = Instant::now();
    let condition = |object: Option<&K>| object.is_some_and(&ready);
    match tokio::time::timeout(timeout, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(Some(object))) => object,
        Ok(Ok(None)) => panic!("{name} disappeared while waiting for it {what}"),
        Ok(Err(e)) => panic!("watching {name}: {e}"),
        Err(_) => {
            let last = api.get_opt(name).await;
            panic!(
                "{name} did not become {what} within {:?}; last state: {last:#?}",
                started.elapsed()
            )
        }
    }
}

/// The names of every object of cluster-scoped kind `K` in `workspace`, as the admin sees them.
pub async fn names<K>(workspace: &TestWorkspace) -> std::collections::BTreeSet<String>
where
    K: Resource<DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    Api::<K>::all(workspace.client())
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("listing {} in {}: {e}", K::plural(&()), workspace.path))
        .items
        .iter()
        .map(|object| object.meta().name.clone().unwrap_or_default())
        .collect()
}
