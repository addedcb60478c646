//! A sharded kcp: a cache server, a root shard, further shards and a front-proxy, each a child
//! process on free loopback ports under the watchdog of [`crate::process`], as Platform Mesh
//! runs kcp in production (and as kcp's own `sharded-test-server` runs it for its e2e tests,
//! whose flags these follow; that program itself binds fixed ports, 6443, 6444+n, 8012, 2379…,
//! and ends everything when one shard exits, so it serves neither parallel test binaries nor an
//! outage test).
//!
//! Every component authenticates with client certificates from one in-memory PKI made at
//! start: a serving CA (every server's certificate, for 127.0.0.1), a client CA (users and the
//! components' own identities), and the front-proxy's request-header CA (the proxy asserts the
//! user it forwards to a shard). No token is involved, so a shard that is stopped and started
//! again is trusted by, and trusts, everything as before.
//!
//! Each component has a state directory of its own, which its watchdog removes after stopping
//! it, so that no two watchdogs race over one directory when the test binary exits. A shard
//! runs under a supervisor shell (as [`crate::Kcp::restartable`] does) so that a test can stop
//! it and start it again on the same directory, ports and flags.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kcp::types::tenancy::{Workspace, WorkspaceLocation, WorkspaceSpec};
use kcp::{ClientFactory, ClusterPath};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{GroupVersionKind, ObjectMeta};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use serde_json::json;

use crate::kcp::{TestWorkspace, server_ready, universal, wait_for, when_served};
use crate::pki::{Ca, Creds, ca, key, leaf, serving, write};
use crate::process::{ServerProcess, Supervisor, free_port, memory_mib};

/// How long one component may take to become ready (two kcp shards and a cache server starting
/// at once on two cores take about a minute).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(240);
/// How long a shard may take to shut down on SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(90);
/// The shards' feature gates, as Platform Mesh runs its shards (and [`crate::Kcp`] its kcp).
const FEATURE_GATES: &str = "--feature-gates=WorkspaceAuthentication=true,CacheAPIs=true";
/// The label kcp puts on every Shard with the shard's name; a Workspace's
/// `spec.location.selector` matches it to place the workspace on that shard.
pub const SHARD_NAME_LABEL: &str = "name";
/// The annotation with which kcp records on a Workspace (and its LogicalCluster) the shard that
/// hosts it.
pub const SHARD_ANNOTATION: &str = "core.kcp.io/shard";
/// The annotation that keeps kcp from placing new workspaces on a Shard (any value).
pub const UNSCHEDULABLE_ANNOTATION: &str = "experimental.core.kcp.io/unschedulable";

/// A running sharded kcp. Stopped, and every state directory removed, when dropped or when the
/// test binary exits.
#[derive(Debug)]
pub struct ShardedKcp {
    /// Time from the first spawn until the front-proxy served every shard.
    pub startup: Duration,
    /// Time from the first spawn until each component was first seen ready, in the order
    /// they were checked (cache server, shards, front-proxy).
    pub ready: Vec<(String, Duration)>,
    /// Fields drop in order: the servers stop before the directories holding their files go.
    proxy: ServerProcess,
    shards: Vec<Shard>,
    cache: ServerProcess,
    proxy_url: String,
    kubeconfig: PathBuf,
    proxy_state: tempfile::TempDir,
    cache_state: tempfile::TempDir,
}

/// One kcp shard of a [`ShardedKcp`].
#[derive(Debug)]
pub struct Shard {
    name: String,
    base_url: String,
    process: ServerProcess,
    /// How the shard is stopped and started again.
    supervisor: Supervisor,
    /// A client factory as `shard-admin` (`system:masters`) on this shard's base URL.
    admin_context: String,
    state: tempfile::TempDir,
}

impl Shard {
    /// The shard's name (`root`, `shard-1` …), also its Shard object's name in `root`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shard's own URL (`https://127.0.0.1:<port>`), its Shard's `spec.baseURL`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The URL of the shard's virtual workspaces (run in the shard's process), its Shard's
    /// `spec.virtualWorkspaceURL`: the prefix of its endpoints in an APIExportEndpointSlice.
    pub fn virtual_workspace_url(&self) -> &str {
        &self.base_url
    }

    /// The shard's state directory (its log is `shard.log` there).
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// The last `lines` lines of the shard's log (its supervisor's and every start's output).
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(lines)
    }

    /// The shard's process id; `None` while it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.supervisor.pid()
    }

    /// The shard's resident memory now, in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        memory_mib(self.pid()?, "VmRSS:")
    }
}

impl ShardedKcp {
    /// Starts a cache server, the root shard, `shards - 1` more shards (`shard-1` …) and a
    /// front-proxy, and waits until the front-proxy serves every shard. Panics, with the
    /// command that builds them, when a kcp binary is missing, and with a component's log when
    /// it does not start.
    pub async fn start(shards: usize) -> ShardedKcp {
        assert!(shards >= 1, "a sharded kcp has at least the root shard");
        crate::init_logging();
        let binary = |name: &str| xtask::binary(name).unwrap_or_else(|e| panic!("{e}"));
        let (kcp, cache_server, front_proxy) = (
            binary("kcp"),
            binary("cache-server"),
            binary("kcp-front-proxy"),
        );
        let pki = Pki::new();
        let started = Instant::now();

        let proxy_state = state_dir("proxy");
        let cache_state = state_dir("cache");
        let proxy_port = free_port();
        let proxy_url = format!("https://127.0.0.1:{proxy_port}");
        let names: Vec<String> = (0..shards)
            .map(|i| match i {
                0 => "root".to_owned(),
                i => format!("shard-{i}"),
            })
            .collect();
        let shard_ports: Vec<u16> = names.iter().map(|_| free_port()).collect();
        let root_url = format!("https://127.0.0.1:{}", shard_ports[0]);

        // The admin kubeconfig: kcp-admin through the front-proxy (`root`, `base`), and
        // shard-admin (system:masters) directly on each shard (`shard-<name>`) and on the cache.
        let proxy_dir = proxy_state.path();
        let serving_ca = write(proxy_dir, "serving-ca.crt", &pki.serving_ca.pem());
        let kcp_admin = pki.client(proxy_dir, "kcp-admin", "kcp-admin", "system:kcp:admin");
        let shard_admin = pki.client(proxy_dir, "shard-admin", "shard-admin", "system:masters");
        let cache_port = free_port();
        let cache_url = format!("https://127.0.0.1:{cache_port}");
        let mut contexts = vec![
            (
                "root".to_owned(),
                format!("{proxy_url}/clusters/root"),
                &kcp_admin,
            ),
            ("base".to_owned(), proxy_url.clone(), &kcp_admin),
            ("cache".to_owned(), cache_url.clone(), &shard_admin),
        ];
        for (name, port) in names.iter().zip(&shard_ports) {
            contexts.push((
                format!("shard-{name}"),
                format!("https://127.0.0.1:{port}"),
                &shard_admin,
            ));
        }
        let kubeconfig = proxy_dir.join("admin.kubeconfig");
        write_kubeconfig(&kubeconfig, &serving_ca, &contexts, "root");

        // The cache server.
        let cache = {
            let dir = cache_state.path();
            let (cert, key) = pki.serving(dir, "serving");
            let client_ca = write(dir, "client-ca.crt", &pki.client_ca.pem());
            let args = vec![
                format!("--root-directory={}", dir.join("cache").display()),
                "--bind-address=127.0.0.1".to_owned(),
                format!("--secure-port={cache_port}"),
                format!("--embedded-etcd-client-port={}", free_port()),
                format!("--embedded-etcd-peer-port={}", free_port()),
                format!("--tls-cert-file={}", cert.display()),
                format!("--tls-private-key-file={}", key.display()),
                format!("--client-ca-file={}", client_ca.display()),
            ];
            ServerProcess::start("cache-server", &cache_server, &args, dir, true)
                .unwrap_or_else(|e| panic!("starting {}: {e}", cache_server.display()))
        };

        // The shards, all at once: a shard waits for the cache server and the root shard by
        // itself.
        let started_shards: Vec<Shard> = names
            .iter()
            .zip(&shard_ports)
            .map(|(name, port)| {
                start_shard(
                    &kcp,
                    &pki,
                    ShardSpec {
                        name,
                        port: *port,
                        root_url: &root_url,
                        proxy_url: &proxy_url,
                        cache_url: &cache_url,
                    },
                )
            })
            .collect();

        // The front-proxy.
        let proxy = {
            let dir = proxy_dir;
            let (cert, key) = pki.serving(dir, "serving");
            let client_ca = write(dir, "client-ca.crt", &pki.client_ca.pem());
            let requestheader_ca = write(dir, "requestheader-ca.crt", &pki.requestheader_ca.pem());
            let forwarder = pki.requestheader_client(dir, "requestheader", "kcp-front-proxy");
            let mapping = json!([{
                "path": "/clusters/",
                // Not used: the proxy routes by the Shard objects' URLs.
                "backend": root_url,
                "backend_server_ca": serving_ca,
                "proxy_client_cert": forwarder.cert,
                "proxy_client_key": forwarder.key,
            }]);
            let mapping_file = write(dir, "mapping.yaml", &mapping.to_string());
            let root_kubeconfig = dir.join("root.kubeconfig");
            write_kubeconfig(
                &root_kubeconfig,
                &serving_ca,
                &[("shard-base".to_owned(), root_url.clone(), &shard_admin)],
                "shard-base",
            );
            // The server is replaced with each shard's base URL.
            let shards_kubeconfig = dir.join("shards.kubeconfig");
            write_kubeconfig(
                &shards_kubeconfig,
                &serving_ca,
                &[("base".to_owned(), root_url.clone(), &shard_admin)],
                "base",
            );
            let args = vec![
                "--bind-address=127.0.0.1".to_owned(),
                format!("--secure-port={proxy_port}"),
                format!("--root-directory={}", dir.join("front-proxy").display()),
                format!("--mapping-file={}", mapping_file.display()),
                format!("--root-kubeconfig={}", root_kubeconfig.display()),
                format!("--shards-kubeconfig={}", shards_kubeconfig.display()),
                format!("--client-ca-file={}", client_ca.display()),
                format!(
                    "--requestheader-client-ca-file={}",
                    requestheader_ca.display()
                ),
                "--requestheader-username-headers=X-Remote-User".to_owned(),
                "--requestheader-group-headers=X-Remote-Group".to_owned(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_owned(),
                "--requestheader-allowed-names=kcp-front-proxy,kcp-mounts-proxy".to_owned(),
                format!("--tls-cert-file={}", cert.display()),
                format!("--tls-private-key-file={}", key.display()),
                "--feature-gates=WorkspaceAuthentication=true".to_owned(),
            ];
            ServerProcess::start("front-proxy", &front_proxy, &args, dir, true)
                .unwrap_or_else(|e| panic!("starting {}: {e}", front_proxy.display()))
        };

        let mut ready = Vec::new();
        until_ready(&kubeconfig, "cache", started, &cache, || false).await;
        ready.push(("cache-server".to_owned(), started.elapsed()));
        for shard in &started_shards {
            until_shard_ready(&kubeconfig, shard, started).await;
            ready.push((format!("shard {}", shard.name), started.elapsed()));
        }
        until_ready(&kubeconfig, "base", started, &proxy, || false).await;
        ready.push(("front-proxy".to_owned(), started.elapsed()));

        let mut sharded = ShardedKcp {
            startup: Duration::ZERO,
            ready,
            proxy,
            shards: started_shards,
            cache,
            proxy_url,
            kubeconfig,
            proxy_state,
            cache_state,
        };
        sharded.until_proxy_knows_every_shard(started).await;
        sharded.startup = started.elapsed();
        sharded
    }

    /// Waits until the front-proxy lists every shard's Shard object in `root`.
    async fn until_proxy_knows_every_shard(&self, started: Instant) {
        let want: BTreeSet<String> = self.shards.iter().map(|s| s.name.clone()).collect();
        loop {
            let listed = self.shard_objects().await.ok();
            let have: BTreeSet<String> = listed
                .iter()
                .flatten()
                .filter_map(|s| s.metadata.name.clone())
                .collect();
            if have == want {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "the front-proxy lists shards {listed:?}, not {want:?}, after {STARTUP_TIMEOUT:?}; log:\n{}",
                self.proxy.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The Shard objects in `root`, through the front-proxy.
    pub async fn shard_objects(&self) -> Result<Vec<DynamicObject>, kube::Error> {
        let client = self
            .admin()
            .await
            .for_path(&ClusterPath::root())
            .unwrap_or_else(|e| panic!("client for root: {e}"));
        let api: Api<DynamicObject> = Api::all_with(client, &shard_resource());
        Ok(api.list(&Default::default()).await?.items)
    }

    /// The admin kubeconfig: contexts `root` (the front-proxy's `/clusters/root`) and `base`
    /// (the front-proxy) as `kcp-admin` (group `system:kcp:admin`), and `shard-<name>` (each
    /// shard's base URL) and `cache` (the cache server) as `shard-admin` (group
    /// `system:masters`). Client certificates, all trusted by every component.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The front-proxy's URL (`https://127.0.0.1:<port>`), every shard's `spec.externalURL`.
    pub fn proxy_url(&self) -> &str {
        &self.proxy_url
    }

    /// The shards, the root shard first.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// The shard `name`; panics when there is none.
    pub fn shard(&self, name: &str) -> &Shard {
        self.shards
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no shard {name}"))
    }

    fn shard_mut(&mut self, name: &str) -> &mut Shard {
        self.shards
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no shard {name}"))
    }

    /// Clients as `kcp-admin` through the front-proxy; with the same certificate,
    /// [`ClientFactory::for_url`] reaches a shard (and its virtual workspaces) directly.
    pub async fn admin(&self) -> ClientFactory {
        factory(&self.kubeconfig, "root").await
    }

    /// Clients as `shard-admin` (`system:masters`) directly on shard `name`: the identity that
    /// may list and watch across all its logical clusters with `/clusters/*`.
    pub async fn shard_admin(&self, name: &str) -> ClientFactory {
        factory(&self.kubeconfig, &self.shard(name).admin_context).await
    }

    /// The resident memory of every running component together (shards, cache server,
    /// front-proxy), in MiB.
    pub fn rss_mib(&self) -> f64 {
        let servers = [&self.proxy, &self.cache]
            .into_iter()
            .filter_map(ServerProcess::rss_mib);
        servers
            .chain(self.shards.iter().filter_map(Shard::rss_mib))
            .sum()
    }

    /// The front-proxy's and the cache server's state directories.
    pub fn state_dirs(&self) -> [&Path; 2] {
        [self.proxy_state.path(), self.cache_state.path()]
    }

    /// Stops shard `name` with SIGTERM and waits until it has exited; its state directory
    /// stays. `&mut` so that no shared instance is stopped under other tests.
    pub async fn stop_shard(&mut self, name: &str) {
        let shard = self.shard_mut(name);
        shard.supervisor.stop(&shard.process, STOP_TIMEOUT).await;
    }

    /// Starts the stopped shard `name` again with the same state directory, ports and flags,
    /// and waits until it is ready; returns the time that took.
    pub async fn start_shard(&mut self, name: &str) -> Duration {
        let kubeconfig = self.kubeconfig.clone();
        let shard = self.shard_mut(name);
        shard.supervisor.start_again();
        let started = Instant::now();
        until_shard_ready(&kubeconfig, shard, started).await;
        started.elapsed()
    }

    /// Marks shard `name` unschedulable (`cordoned`) or schedulable again: kcp places no new
    /// workspace on a shard with [`UNSCHEDULABLE_ANNOTATION`], as an administrator keeps new
    /// work off a shard that is down or about to be. Workspaces without a location go to the
    /// other shards; those already there stay.
    ///
    /// Returns once the cache server holds the change: every shard's scheduler reads Shards
    /// from there, so a workspace created right after a cordon that only reached the root
    /// shard could still land on the cordoned shard (seen: `root:platform-mesh-system` on
    /// `shard-1`).
    pub async fn cordon(&self, name: &str, cordoned: bool) {
        let client = self
            .admin()
            .await
            .for_path(&ClusterPath::root())
            .unwrap_or_else(|e| panic!("client for root: {e}"));
        let shards: Api<DynamicObject> = Api::all_with(client, &shard_resource());
        let value = cordoned.then_some("true");
        let patch = json!({"metadata": {"annotations": {UNSCHEDULABLE_ANNOTATION: value}}});
        shards
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap_or_else(|e| panic!("cordoning shard {name} ({cordoned}): {e}"));
        // The root shard's Shards, as the cache server replicates them.
        let cache = factory(&self.kubeconfig, "cache").await;
        let base = cache.server().as_str().trim_end_matches('/');
        let url = format!("{base}/services/cache/shards/root/clusters/root");
        let client = cache
            .for_url(&url)
            .unwrap_or_else(|e| panic!("client for {url}: {e}"));
        let replicated: Api<DynamicObject> = Api::all_with(client, &shard_resource());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = replicated.get(name).await;
            let holds = seen.as_ref().is_ok_and(|shard| {
                shard.annotations().contains_key(UNSCHEDULABLE_ANNOTATION) == cordoned
            });
            if holds {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cache server did not show shard {name} cordoned={cordoned} within 30 s: \
                 {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates workspace `name` of type `universal` under `parent`, placed on shard `shard`
    /// (`spec.location.selector` on the Shard's `name` label), and waits until it is Ready.
    pub async fn workspace_on(
        &self,
        shard: &str,
        parent: &ClusterPath,
        name: &str,
    ) -> TestWorkspace {
        let factory = self.admin().await;
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
                type_: Some(universal()),
                location: Some(WorkspaceLocation {
                    selector: Some(LabelSelector {
                        match_labels: Some(
                            [(SHARD_NAME_LABEL.to_owned(), shard.to_owned())].into(),
                        ),
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            },
            status: None,
        };
        let post = PostParams::default();
        when_served(|| api.create(&post, &workspace))
            .await
            .unwrap_or_else(|e| panic!("creating workspace {name} in {parent} on {shard}: {e}"));
        let ready = wait_for(&api, name, "to be Ready", Workspace::is_ready).await;
        let path = parent.join(name).unwrap_or_else(|e| panic!("{e}"));
        let cluster = ready
            .spec
            .cluster
            .as_deref()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("Ready workspace {path} has no spec.cluster"));
        TestWorkspace {
            factory,
            path,
            cluster,
        }
    }
}

/// What makes one shard's command line.
struct ShardSpec<'a> {
    name: &'a str,
    port: u16,
    root_url: &'a str,
    proxy_url: &'a str,
    cache_url: &'a str,
}

/// Starts a shard under its supervisor and watchdog, with its files in a state directory of
/// its own; does not wait for it.
fn start_shard(kcp: &Path, pki: &Pki, spec: ShardSpec<'_>) -> Shard {
    let state = state_dir(&format!("shard-{}", spec.name));
    let dir = state.path();
    let base_url = format!("https://127.0.0.1:{}", spec.port);
    let (cert, key) = pki.serving(dir, "serving");
    let serving_ca = write(dir, "serving-ca.crt", &pki.serving_ca.pem());
    let client_ca = write(dir, "client-ca.crt", &pki.client_ca.pem());
    let requestheader_ca = write(dir, "requestheader-ca.crt", &pki.requestheader_ca.pem());
    let service_account_public = write(
        dir,
        "service-account.pub",
        &pki.service_account.public_key_pem(),
    );
    let service_account_key = write(
        dir,
        "service-account.key",
        &pki.service_account.serialize_pem(),
    );
    let shard_client = pki.client(
        dir,
        "shard-client",
        &format!("kcp-shard-{}", spec.name),
        "system:masters",
    );
    let mounts_proxy = pki.requestheader_client(dir, "mounts-proxy", "kcp-mounts-proxy");
    let logical_cluster_admin = pki.client(
        dir,
        "logical-cluster-admin",
        "logical-cluster-admin",
        "system:kcp:logical-cluster-admin",
    );
    let external_logical_cluster_admin = pki.client(
        dir,
        "external-logical-cluster-admin",
        "external-logical-cluster-admin",
        "system:kcp:external-logical-cluster-admin",
    );
    let kubeconfig = |file: &str, server: &str, creds: &Creds, context: &str| {
        let path = dir.join(file);
        write_kubeconfig(
            &path,
            &serving_ca,
            &[(context.to_owned(), server.to_owned(), creds)],
            context,
        );
        path
    };
    let cache_kubeconfig = kubeconfig("cache.kubeconfig", spec.cache_url, &shard_client, "cache");
    // Other shards are reached with the same credentials at their own URLs.
    let logical_cluster_admin = kubeconfig(
        "logical-cluster-admin.kubeconfig",
        spec.root_url,
        &logical_cluster_admin,
        "base",
    );
    let external_logical_cluster_admin = kubeconfig(
        "external-logical-cluster-admin.kubeconfig",
        spec.proxy_url,
        &external_logical_cluster_admin,
        "base",
    );
    let mut args = vec![
        "start".to_owned(),
        format!("--root-directory={}", dir.join("kcp").display()),
        "--bind-address=127.0.0.1".to_owned(),
        format!("--secure-port={}", spec.port),
        format!("--embedded-etcd-client-port={}", free_port()),
        format!("--embedded-etcd-peer-port={}", free_port()),
        FEATURE_GATES.to_owned(),
        format!("--shard-name={}", spec.name),
        format!("--shard-base-url={base_url}"),
        format!("--shard-external-url={}", spec.proxy_url),
        format!("--tls-cert-file={}", cert.display()),
        format!("--tls-private-key-file={}", key.display()),
        format!("--client-ca-file={}", client_ca.display()),
        format!(
            "--requestheader-client-ca-file={}",
            requestheader_ca.display()
        ),
        "--requestheader-username-headers=X-Remote-User".to_owned(),
        "--requestheader-group-headers=X-Remote-Group".to_owned(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_owned(),
        format!(
            "--service-account-key-file={}",
            service_account_public.display()
        ),
        format!(
            "--service-account-private-key-file={}",
            service_account_key.display()
        ),
        format!(
            "--service-account-signing-key-file={}",
            service_account_key.display()
        ),
        format!(
            "--logical-cluster-admin-kubeconfig={}",
            logical_cluster_admin.display()
        ),
        format!(
            "--external-logical-cluster-admin-kubeconfig={}",
            external_logical_cluster_admin.display()
        ),
        format!("--shard-client-cert-file={}", shard_client.cert.display()),
        format!("--shard-client-key-file={}", shard_client.key.display()),
        format!("--shard-virtual-workspace-ca-file={}", serving_ca.display()),
        format!(
            "--mount-proxy-client-cert-file={}",
            mounts_proxy.cert.display()
        ),
        format!(
            "--mount-proxy-client-key-file={}",
            mounts_proxy.key.display()
        ),
        format!("--cache-kubeconfig={}", cache_kubeconfig.display()),
    ];
    if spec.name != "root" {
        let root_shard = kubeconfig(
            "root-shard.kubeconfig",
            spec.root_url,
            &shard_client,
            // kcp reads this context of the root shard's kubeconfig.
            "shard-base",
        );
        args.push(format!(
            "--root-shard-kubeconfig-file={}",
            root_shard.display()
        ));
    }
    let (supervisor, program, supervised) = Supervisor::wrap(dir, kcp, args);
    let process = ServerProcess::start("shard", &program, &supervised, dir, true)
        .unwrap_or_else(|e| panic!("starting shard {} ({}): {e}", spec.name, kcp.display()));
    Shard {
        name: spec.name.to_owned(),
        base_url,
        process,
        supervisor,
        admin_context: format!("shard-{}", spec.name),
        state,
    }
}

/// Waits until `shard` answers `/readyz` with `ok`; panics with its log when it exits first or
/// takes longer than [`STARTUP_TIMEOUT`] from `started`.
async fn until_shard_ready(kubeconfig: &Path, shard: &Shard, started: Instant) {
    until_ready(
        kubeconfig,
        &shard.admin_context,
        started,
        &shard.process,
        || shard.supervisor.exited(),
    )
    .await;
}

/// Waits until `context` of `kubeconfig` answers `/readyz` with `ok`; panics with `process`'s
/// log when it (or what `exited` watches) exits first, or after [`STARTUP_TIMEOUT`] from
/// `started`.
async fn until_ready(
    kubeconfig: &Path,
    context: &str,
    started: Instant,
    process: &ServerProcess,
    exited: impl Fn() -> bool,
) {
    let factory = factory(kubeconfig, context).await;
    loop {
        if exited() || process.exited() {
            panic!(
                "{}",
                process.failed_to_start(started.elapsed(), "it exited")
            );
        }
        if started.elapsed() > STARTUP_TIMEOUT {
            panic!(
                "{}",
                process.failed_to_start(STARTUP_TIMEOUT, "/readyz never answered ok")
            );
        }
        if server_ready(&factory).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn factory(kubeconfig: &Path, context: &str) -> ClientFactory {
    ClientFactory::from_kubeconfig(kubeconfig, Some(context))
        .await
        .unwrap_or_else(|e| panic!("{} context {context}: {e}", kubeconfig.display()))
}

/// `core.kcp.io/v1alpha1` Shard, which the kcp crate has no type for.
fn shard_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk("core.kcp.io", "v1alpha1", "Shard"))
}

/// A state directory `pm-sharded-<component>-…`, removed by the component's watchdog.
fn state_dir(component: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("pm-sharded-{component}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("creating the {component} state directory: {e}"))
}

/// Writes a kubeconfig (JSON, which is YAML) with one context per `(name, server, creds)`, all
/// trusting `ca`.
fn write_kubeconfig(path: &Path, ca: &Path, contexts: &[(String, String, &Creds)], current: &str) {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": contexts.iter().map(|(name, server, _)| json!({
            "name": name,
            "cluster": {"server": server, "certificate-authority": ca},
        })).collect::<Vec<_>>(),
        "users": contexts.iter().map(|(name, _, creds)| json!({
            "name": name,
            "user": {"client-certificate": creds.cert, "client-key": creds.key},
        })).collect::<Vec<_>>(),
        "contexts": contexts.iter().map(|(name, _, _)| json!({
            "name": name,
            "context": {"cluster": name, "user": name},
        })).collect::<Vec<_>>(),
        "current-context": current,
    });
    write(
        path.parent().unwrap_or(Path::new(".")),
        &path.file_name().unwrap_or_default().to_string_lossy(),
        &serde_json::to_string_pretty(&config).unwrap_or_default(),
    );
}

/// The certificate authorities of one sharded kcp, in memory; only certificates and the keys
/// of leaf certificates are written, each into the directory of the component that uses it.
struct Pki {
    serving_ca: Ca,
    client_ca: Ca,
    requestheader_ca: Ca,
    /// Signs and verifies ServiceAccount tokens on every shard.
    service_account: KeyPair,
}

impl Pki {
    fn new() -> Self {
        Self {
            serving_ca: ca("kcp-serving-ca"),
            client_ca: ca("kcp-client-ca"),
            requestheader_ca: ca("kcp-front-proxy-requestheader-ca"),
            service_account: key(),
        }
    }

    /// A serving certificate for 127.0.0.1 and localhost, written as `<stem>.crt` and
    /// `<stem>.key` into `dir`.
    fn serving(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let creds = serving(dir, stem, "kcp", &self.serving_ca);
        (creds.cert, creds.key)
    }

    /// A client certificate of the client CA for `user` in `group`.
    fn client(&self, dir: &Path, stem: &str, user: &str, group: &str) -> Creds {
        leaf(
            dir,
            stem,
            &client_params(user, Some(group)),
            &self.client_ca,
        )
    }

    /// A client certificate of the request-header CA, for a proxy that asserts the user.
    fn requestheader_client(&self, dir: &Path, stem: &str, user: &str) -> Creds {
        leaf(
            dir,
            stem,
            &client_params(user, None),
            &self.requestheader_ca,
        )
    }
}

/// A client certificate's parameters: Kubernetes takes the user from the common name and the
/// group from the organization.
fn client_params(user: &str, group: Option<&str>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, user);
    if let Some(group) = group {
        params
            .distinguished_name
            .push(DnType::OrganizationName, group);
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}
