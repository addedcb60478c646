//! The whole platform on one machine, as `cargo xtask demo` shows it to a newcomer: kcp (asking
//! the authorization webhook, with users alice, bob and carol), OpenFGA, the
//! platform-mesh-operator setting kcp up from one PlatformMesh, then the account-operator,
//! security-operator and rebac-authz-webhook on the kubeconfigs it wrote; an organisation and a
//! nested account made with `kubectl apply` by alice; Keycloak, where a second organisation's
//! creator, dana, is invited by e-mail, sets her password and logs in, her token then working
//! with `kubectl` in her organisation; the workspace tree, the Ready conditions and a few
//! authorization decisions.
//!
//! There is no Kubernetes cluster here: a kcp workspace, `root:demo-host`, stands in for the
//! cluster hosting the operators (it serves CRDs, namespaces and Secrets as one does). Every
//! process runs under the harness's watchdog, so none outlives the demo, however it ends.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crds::identity_provider::IdentityProviderConfiguration;
use crds::{Account, PlatformMesh};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kcp::types::tenancy::Workspace;
use kcp::{ClientFactory, ClusterPath};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use serde_json::json;
use tokio::signal::unix::{Signal, SignalKind};

use crate::keycloak::Keycloak;
use crate::smtp::SmtpSink;
use crate::{AuthorizingKcp, OpenFga, ServerProcess, create_workspace, free_port, universal};

/// The namespace of the hosting cluster the operators run in.
const NAMESPACE: &str = "platform-mesh-system";
/// The workspace standing in for the hosting cluster.
const HOST: &str = "demo-host";
/// The organisation alice creates, and the account she creates in it.
const ORG: &str = "acme";
const TEAM: &str = "team-a";
/// The organisation made for dana, who logs in through its Keycloak realm, and an account in
/// it.
const DANA_ORG: &str = "beta";
const DANA_TEAM: &str = "dev";
const DANA: &str = "dana@example.com";
/// The password dana sets when she follows her invitation.
const DANA_PASSWORD: &str = "dana-demo-password";
/// The person in no organisation who logs in to the welcome realm and makes her own.
const ERIN: &str = "erin@example.com";
const ERIN_PASSWORD: &str = "erin-demo-password";
const ERIN_ORG: &str = "gamma";
/// Where a `kubectl` OIDC login returns to (the `kubectl` client's first redirect URL).
const KUBECTL_REDIRECT: &str = "http://localhost:8000";
/// The Secrets with the CAs of the operators' admission webhooks, as their charts name them.
const ACCOUNT_WEBHOOK_CA: &str = "account-operator-webhook-server-cert";
const SECURITY_WEBHOOK_CA: &str = "security-operator-webhook-server-cert";
/// The Secret with the CA of the portal domain (Keycloak's), for the welcome realm's issuer.
const DOMAIN_CA: &str = "domain-certificate";
/// How long one step may wait for the platform before the demo gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

/// What the demo was asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Run to the end and stop, instead of staying up until Ctrl-C.
    pub check: bool,
}

/// Why the demo stopped before the end.
type DemoResult<T> = Result<T, String>;

/// Runs the demo; `Err` names the step that did not hold and why.
pub async fn run(options: Options) -> DemoResult<()> {
    let mut demo = Demo::new();
    sample_total_memory(demo.peak_total_kib.clone());
    let dir = tempfile::Builder::new()
        .prefix("platform-mesh-demo-")
        .tempdir()
        .map_err(|e| format!("creating the demo's directory: {e}"))?;
    let dir = dir.path().to_owned();
    let result = walk(&mut demo, &dir, options).await;
    let stopped = demo.stop_all();
    let _ = std::fs::remove_dir_all(&dir);
    result.and(stopped)
}

/// The running processes, in the order they were started, and the clock.
struct Demo {
    started: Instant,
    step: std::cell::Cell<usize>,
    operators: Vec<(&'static str, ServerProcess)>,
    kcp: Option<AuthorizingKcp>,
    openfga: Option<OpenFga>,
    keycloak: Option<Keycloak>,
    smtp: Option<SmtpSink>,
    /// The most resident memory this program and every process below it had at one time.
    peak_total_kib: Arc<AtomicU64>,
}

/// How often the demo's total memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Samples, until the program ends, the resident memory of this program and every process
/// below it (watchdogs, servers, kubectl), keeping the largest sum in `peak`.
fn sample_total_memory(peak: Arc<AtomicU64>) {
    tokio::spawn(async move {
        loop {
            peak.fetch_max(tree_rss_kib(std::process::id()), Ordering::Relaxed);
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    });
}

/// The resident memory of process `root` and its descendants, in KiB, from `/proc`.
fn tree_rss_kib(root: u32) -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    // (pid, parent) of every process; a process's stat is `pid (comm) state ppid …`, and comm
    // may hold spaces and parentheses, so the fields are counted after the last `)`.
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut tree = vec![root];
    let mut i = 0;
    while let Some(&pid) = tree.get(i) {
        tree.extend(parents.iter().filter(|(_, p)| *p == pid).map(|(c, _)| *c));
        i += 1;
    }
    tree.into_iter()
        .filter_map(|pid| crate::memory_mib(pid, "VmRSS:"))
        .map(|mib| (mib * 1024.0) as u64)
        .sum()
}

/// Steps the demo shows, for the `[n/N]` counter.
const STEPS: usize = 11;

impl Demo {
    fn new() -> Self {
        Demo {
            started: Instant::now(),
            step: std::cell::Cell::new(0),
            operators: Vec::new(),
            kcp: None,
            openfga: None,
            keycloak: None,
            smtp: None,
            peak_total_kib: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Runs one step: its title, its work (which prints details indented), the time it took.
    async fn step<T>(
        &self,
        title: &str,
        work: impl Future<Output = DemoResult<T>>,
    ) -> DemoResult<T> {
        let step = self.step.get() + 1;
        self.step.set(step);
        println!("\n[{step}/{STEPS}] {title}");
        let started = Instant::now();
        let result = work.await;
        match &result {
            Ok(_) => println!("      ✓ {:.1} s", started.elapsed().as_secs_f64()),
            Err(e) => println!("      ✗ {e}"),
        }
        result.map_err(|e| format!("step {step} ({title}): {e}"))
    }

    fn kcp(&self) -> &AuthorizingKcp {
        self.kcp
            .as_ref()
            .expect("kcp is started in the first steps")
    }

    fn openfga(&self) -> &OpenFga {
        self.openfga
            .as_ref()
            .expect("OpenFGA is started in the first step")
    }

    /// Every process's id and the most resident memory it has had, in MiB.
    fn memory(&self) -> Vec<(&'static str, u32, f64)> {
        let mut pids = vec![("demo (this program)", Some(std::process::id()))];
        pids.push(("kcp", self.kcp.as_ref().and_then(|k| k.kcp.pid())));
        pids.push(("openfga", self.openfga.as_ref().and_then(OpenFga::pid)));
        pids.push((
            "keycloak",
            self.keycloak.as_ref().and_then(Keycloak::jvm_pid),
        ));
        pids.extend(self.operators.iter().map(|(name, p)| (*name, p.pid())));
        pids.into_iter()
            .filter_map(|(name, pid)| {
                let pid = pid?;
                Some((name, pid, crate::memory_mib(pid, "VmHWM:")?))
            })
            .collect()
    }

    /// Stops every process, the last started first; `Err` names the ones still alive.
    fn stop_all(&mut self) -> DemoResult<()> {
        let pids: Vec<(&str, u32)> = self
            .memory()
            .into_iter()
            .skip(1)
            .map(|(name, pid, _)| (name, pid))
            .collect();
        println!("\nStopping everything the demo started …");
        while let Some((_, process)) = self.operators.pop() {
            process.stop();
        }
        self.kcp = None;
        self.openfga = None;
        self.keycloak = None;
        self.smtp = None;
        let alive: Vec<String> = pids
            .iter()
            .filter(|(_, pid)| Path::new(&format!("/proc/{pid}")).exists())
            .map(|(name, pid)| format!("{name} (pid {pid})"))
            .collect();
        if alive.is_empty() {
            println!("Stopped {} processes.", pids.len());
            Ok(())
        } else {
            Err(format!(
                "still running after stopping: {}",
                alive.join(", ")
            ))
        }
    }
}

async fn walk(demo: &mut Demo, dir: &Path, options: Options) -> DemoResult<()> {
    println!(
        "Platform Mesh on this machine; details and logs in {}",
        dir.display()
    );
    let binaries = demo
        .step("Find the binaries", async {
            let mut paths = BTreeMap::new();
            for name in [
                "platform-mesh-operator",
                "account-operator",
                "security-operator",
                "rebac-authz-webhook",
            ] {
                // `cargo xtask demo` builds them next to this program.
                let path = crate::binaries::next_to_this_program(name)?;
                println!("      {name}: {}", path.display());
                paths.insert(name, path);
            }
            let kubectl = xtask::binary("kubectl").map_err(|e| e.to_string())?;
            println!("      kubectl: {}", kubectl.display());
            Ok((paths, kubectl))
        })
        .await?;
    let (binaries, kubectl) = binaries;
    let kubectl = Kubectl {
        binary: kubectl,
        cache: dir.join("kubectl-cache"),
        runs: std::cell::Cell::new(0),
    };

    let openfga = demo
        .step("Start OpenFGA (in-memory datastore)", async {
            let openfga = OpenFga::fresh().await;
            println!("      gRPC {}", openfga.grpc_endpoint());
            Ok(openfga)
        })
        .await?;
    demo.openfga = Some(openfga);

    let (kcp, keycloak, smtp) = demo
        .step(
            "Start kcp (asking the authorization webhook; users alice, bob, carol) and, side by \
             side, Keycloak (every organisation's identity provider) with a mail sink",
            async {
                let (kcp, keycloak) = tokio::join!(AuthorizingKcp::fresh(), Keycloak::fresh());
                let smtp = SmtpSink::start().await;
                println!(
                    "      kcp ready after {:.1} s; kcp asks https://{}/authz",
                    kcp.kcp.startup.as_secs_f64(),
                    kcp.webhook_address()
                );
                println!(
                    "      {} ready after {:.1} s; admin console {}/admin (admin / {})",
                    keycloak.url(),
                    keycloak.startup.as_secs_f64(),
                    keycloak.url(),
                    keycloak.admin_password()
                );
                println!("      mail sink smtp://127.0.0.1:{}", smtp.port());
                Ok((kcp, keycloak, smtp))
            },
        )
        .await?;
    demo.kcp = Some(kcp);
    let keycloak_secret = keycloak.service_account("security-operator").await;
    let keycloak_port = keycloak.address().port();
    let keycloak_ca = std::fs::read_to_string(keycloak.ca_file())
        .map_err(|e| format!("reading {}: {e}", keycloak.ca_file().display()))?;
    demo.keycloak = Some(keycloak);
    demo.smtp = Some(smtp);

    let admin = demo.kcp().kcp.admin().await;
    let account_webhook = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let account_certs = dir.join("account-operator-certs");
    let security_webhook = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
    let security_certs = dir.join("security-operator-certs");
    let host_path = ClusterPath::root().join(HOST).map_err(|e| e.to_string())?;
    let host = demo
        .step(
            "Prepare the hosting cluster (workspace root:demo-host)",
            prepare_host(
                demo.kcp(),
                &admin,
                &host_path,
                &kubectl,
                &[
                    (ACCOUNT_WEBHOOK_CA, account_certs.as_path()),
                    (SECURITY_WEBHOOK_CA, security_certs.as_path()),
                ],
                &keycloak_ca,
            ),
        )
        .await?;

    let pm_health = free_port();
    let pmo_args = vec![
        "operator".to_owned(),
        format!("--kubeconfig={}", host.display()),
        "--kubeconfig-context=root".to_owned(),
        format!("--kcp-kubeconfig={}", demo.kcp().kcp.kubeconfig().display()),
        "--kcp-kubeconfig-context=root".to_owned(),
        format!("--account-operator-webhook-url=https://{account_webhook}"),
        format!("--security-operator-webhook-ca-secret={SECURITY_WEBHOOK_CA}"),
        format!("--security-operator-webhook-url=https://{security_webhook}"),
        "--subroutines-welcome-enabled=true".to_owned(),
        format!("--domain-certificate-ca-secret-name={DOMAIN_CA}"),
        format!(
            "--authorization-webhook-url=https://{}/authz",
            demo.kcp().webhook_address()
        ),
    ];
    let operator = start(
        dir,
        "platform-mesh-operator",
        &binaries["platform-mesh-operator"],
        pmo_args,
        pm_health,
    )?;
    demo.operators.push(("platform-mesh-operator", operator));
    let host_client = admin.for_path(&host_path).map_err(|e| e.to_string())?;
    let platform_meshes: Api<PlatformMesh> = Api::namespaced(host_client.clone(), NAMESPACE);
    demo.step(
        "platform-mesh-operator: kubectl apply a PlatformMesh; it sets up kcp",
        async {
            let (name, operator) = &demo.operators[0];
            ready(operator, pm_health, name).await?;
            let manifest = format!(
                "apiVersion: core.platform-mesh.io/v1alpha1\nkind: PlatformMesh\n\
                 metadata:\n  name: platform-mesh\n  namespace: {NAMESPACE}\n\
                 spec:\n  exposure:\n    baseDomain: localhost\n    port: {keycloak_port}\n"
            );
            kubectl
                .apply(&host, "root", &manifest, "the PlatformMesh")
                .await?;
            // Everything but the welcome realm, which waits for the security-operator.
            let pm = until(
                "PlatformMesh platform-mesh's kcp and kubeconfigs",
                || async {
                    let pm = platform_meshes.get_opt("platform-mesh").await.ok()??;
                    let conditions = pm.status.as_ref()?.conditions.clone();
                    let done = [
                        "KcpsetupSubroutine",
                        "ProvidersecretSubroutine",
                        "AuthorizationwebhookSubroutine",
                    ];
                    done.iter()
                        .all(|c| is_true(&conditions, c))
                        .then_some(conditions)
                },
            )
            .await?;
            print_conditions("PlatformMesh platform-mesh", &pm);
            Ok(())
        },
    )
    .await?;

    let kubeconfig = demo
        .step(
            "Read the kubeconfigs it wrote for the operators and the webhook",
            async {
                let secrets: Api<Secret> = Api::namespaced(host_client.clone(), NAMESPACE);
                let mut kubeconfig = BTreeMap::new();
                for component in [
                    "account-operator",
                    "security-operator",
                    "rebac-authz-webhook",
                ] {
                    let secret = format!("{component}-kubeconfig");
                    let text = secrets
                        .get(&secret)
                        .await
                        .ok()
                        .and_then(|s| s.data?.remove("kubeconfig"))
                        .ok_or_else(|| format!("Secret {NAMESPACE}/{secret} has no kubeconfig"))?;
                    let path = dir.join(format!("{component}.kubeconfig"));
                    write(&path, &text.0)?;
                    println!("      Secret {NAMESPACE}/{secret} → {}", path.display());
                    kubeconfig.insert(component, path);
                }
                Ok(kubeconfig)
            },
        )
        .await?;
    let fga = demo.openfga().grpc_endpoint();
    let webhook = demo.kcp().webhook_address();
    let webhook_certs = demo.kcp().cert_dir();
    let flag = |name: &str, path: &Path| format!("--{name}={}", path.display());
    let keycloak = demo.keycloak.as_ref().ok_or("Keycloak was not started")?;
    let (keycloak_url, keycloak_domain) = (keycloak.url().to_owned(), keycloak.domain());
    let keycloak_ca = keycloak.ca_file().to_owned();
    let smtp_port = demo.smtp.as_ref().map(SmtpSink::port).unwrap_or_default();
    let components = [
        (
            "account-operator",
            vec![
                "operator".to_owned(),
                flag("kubeconfig", &kubeconfig["account-operator"]),
                "--webhooks-enabled".to_owned(),
                format!("--webhooks-port={}", account_webhook.port()),
                flag("webhooks-cert-dir", &account_certs),
                "--webhooks-additional-account-types=account".to_owned(),
                "--webhooks-deny-list=admin,root,system,www".to_owned(),
                // The admin makes dana's organisation for her, naming her its creator.
                "--webhooks-creator-only-when-empty".to_owned(),
            ],
        ),
        (
            "security-operator",
            vec![
                "fga,initializer,terminator,model-generator,system".to_owned(),
                flag("kubeconfig", &kubeconfig["security-operator"]),
                format!("--fga-target={fga}"),
                format!("--keycloak-base-url={}", keycloak_url),
                format!("--keycloak-client-secret={keycloak_secret}"),
                flag("keycloak-ca-file", &keycloak_ca),
                flag("idp-issuer-ca-file", &keycloak_ca),
                format!("--base-domain={keycloak_domain}"),
                "--idp-smtp-server=127.0.0.1".to_owned(),
                format!("--idp-smtp-port={smtp_port}"),
                "--idp-from-address=platform@example.com".to_owned(),
                "--webhooks-enabled".to_owned(),
                format!("--webhooks-port={}", security_webhook.port()),
                flag("webhooks-cert-dir", &security_certs),
            ],
        ),
        (
            "rebac-authz-webhook",
            vec![
                "serve".to_owned(),
                flag("kubeconfig", &kubeconfig["rebac-authz-webhook"]),
                format!("--openfga-addr={fga}"),
                flag("webhook-cert-dir", &webhook_certs),
                format!("--webhook-bind-address={webhook}"),
            ],
        ),
    ];
    let mut health = Vec::new();
    for (name, args) in components {
        let port = free_port();
        let process = start(dir, name, &binaries[name], args, port)?;
        demo.operators.push((name, process));
        health.push((name, port));
    }
    demo.step(
        "Start them; wait until each is ready (/readyz), and the PlatformMesh with its welcome \
         realm",
        async {
            for (name, port) in &health {
                let (_, process) = demo
                    .operators
                    .iter()
                    .find(|(started, _)| started == name)
                    .ok_or_else(|| format!("{name} was not started"))?;
                ready(process, *port, name).await?;
            }
            until("PlatformMesh platform-mesh Ready", || async {
                let pm = platform_meshes.get_opt("platform-mesh").await.ok()??;
                is_true(&pm.status.as_ref()?.conditions, "Ready").then_some(())
            })
            .await?;
            println!(
                "      PlatformMesh platform-mesh Ready: the security-operator made the welcome \
                 realm, root:orgs takes its tokens"
            );
            Ok(())
        },
    )
    .await?;

    let users = dir.join("demo.kubeconfig");
    write_user_kubeconfig(demo.kcp(), &users, None)?;
    let accounts_in = |path: &str| -> DemoResult<Api<Account>> {
        let path: ClusterPath = path.parse().map_err(|e| format!("{path}: {e}"))?;
        Ok(Api::all(admin.for_path(&path).map_err(|e| e.to_string())?))
    };
    let orgs = accounts_in("root:orgs")?;
    let org_accounts = accounts_in(&format!("root:orgs:{ORG}"))?;
    let started = demo.started;
    demo.step(
        "alice: kubectl apply an organisation, then an account in it",
        async {
            let org = account(ORG, "org");
            kubectl
                .apply(&users, "alice@orgs", &org, "alice's organisation")
                .await?;
            let acme = until(&format!("Account {ORG} Ready"), || async {
                let a = orgs.get_opt(ORG).await.ok()??;
                is_true(&a.status.as_ref()?.conditions, "Ready").then_some(a)
            })
            .await?;
            println!(
                "      first Ready account {:.1} s after the demo started (creator {})",
                started.elapsed().as_secs_f64(),
                acme.spec.creator.as_deref().unwrap_or("?")
            );
            let team = account(TEAM, "account");
            kubectl
                .apply(&users, &format!("alice@{ORG}"), &team, "alice's account")
                .await?;
            until(&format!("Account {TEAM} Ready"), || async {
                let a = org_accounts.get_opt(TEAM).await.ok()??;
                is_true(&a.status.as_ref()?.conditions, "Ready").then_some(())
            })
            .await?;
            for (path, api, name) in [
                ("root:orgs", &orgs, ORG),
                ("root:orgs:acme", &org_accounts, TEAM),
            ] {
                let a = api.get(name).await.map_err(|e| e.to_string())?;
                let conditions = a.status.map(|s| s.conditions).unwrap_or_default();
                print_conditions(&format!("Account {name} in {path}"), &conditions);
            }
            Ok(())
        },
    )
    .await?;

    let dana_token = demo
        .step(
            "dana@example.com: an organisation made for her; invited by e-mail, she sets a \
             password and logs in with its Keycloak realm",
            dana_logs_in(demo, &admin),
        )
        .await?;
    write_user_kubeconfig(demo.kcp(), &users, Some(&dana_token))?;

    demo.step(
        "erin@example.com, in no organisation yet: logs in to the welcome realm and creates her \
         own with her token",
        erin_creates_an_org(demo, &admin),
    )
    .await?;

    demo.step(
        "The workspace tree, and who may do what",
        show_tree_and_decisions(demo.kcp(), &admin),
    )
    .await?;

    let memory = demo.memory();
    println!("\nPeak resident memory (VmHWM) of each process:");
    for (name, pid, mib) in &memory {
        println!("  {name:<24} pid {pid:<8} {mib:>7.0} MiB");
    }
    println!(
        "  {:<24} {:>20.0} MiB (the most at one time, sampled every {SAMPLE_EVERY:?})",
        "all together",
        demo.peak_total_kib.load(Ordering::Relaxed) as f64 / 1024.0
    );
    println!(
        "\nThe platform is up ({:.1} s).",
        demo.started.elapsed().as_secs_f64()
    );
    if options.check {
        println!("Check mode: every step held.");
        return Ok(());
    }
    // Listening before the prompt: a Ctrl-C right after it would otherwise find no handler
    // yet and kill the demo with its processes left running (seen under load in CI).
    let stop = StopSignals::listen()?;
    println!(
        "Try it (kubectl is kcp's, {}):\n  export KUBECONFIG={}\n  kubectl --context alice@{ORG} get accounts\n  \
         kubectl --context bob@{ORG} get accounts        # Forbidden: bob has no role in {ORG}\n  \
         kubectl --context dana@{DANA_TEAM} get accounts  # dana's Keycloak token, realm {DANA_ORG}\n  \
         kubectl --context admin get workspaces\n  \
         kubectl --context host -n {NAMESPACE} get platformmesh\n\
         Log in as dana: {}/realms/{DANA_ORG}/account ({DANA} / {DANA_PASSWORD})\n\
         Log in as erin, to the welcome realm: {}/realms/welcome/account ({ERIN} / {ERIN_PASSWORD})\n\
         Logs: {}/*.log\nPress Ctrl-C to stop everything.",
        kubectl.binary.display(),
        users.display(),
        keycloak_url,
        keycloak_url,
        dir.display()
    );
    stop.wait().await;
    Ok(())
}

/// The hosting cluster: workspace `root:demo-host` with the PlatformMesh CRD, the operators'
/// namespace, and the CA Secrets the platform-mesh-operator reads (cert-manager's job on a real
/// cluster): the authorization webhook's (kcp's test CA), the portal domain's (`domain_ca`),
/// and one per `webhook_certs` entry, whose serving certificate is written into its directory;
/// returns its kubeconfig.
async fn prepare_host(
    kcp: &AuthorizingKcp,
    admin: &ClientFactory,
    path: &ClusterPath,
    kubectl: &Kubectl,
    webhook_certs: &[(&str, &Path)],
    domain_ca: &str,
) -> DemoResult<PathBuf> {
    create_workspace(admin, &ClusterPath::root(), HOST, universal()).await;
    let kubeconfig = kcp.kcp.pointed_kubeconfig(path, "host");
    let crd = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crds/generated/crds/platformmeshes.core.platform-mesh.io.yaml");
    let text =
        std::fs::read_to_string(&crd).map_err(|e| format!("reading {}: {e}", crd.display()))?;
    kubectl
        .apply(&kubeconfig, "root", &text, "the PlatformMesh CRD")
        .await?;
    let client = admin.for_path(path).map_err(|e| e.to_string())?;
    let served: Api<PlatformMesh> = Api::all(client.clone());
    until("the PlatformMesh CRD served", || async {
        served.list(&ListParams::default()).await.ok().map(|_| ())
    })
    .await?;
    let apply = PatchParams::apply("platform-mesh-demo").force();
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.to_owned()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .patch(NAMESPACE, &apply, &Patch::Apply(&namespace))
        .await
        .map_err(|e| format!("namespace {NAMESPACE}: {e}"))?;
    let mut cas = vec![
        ("rebac-authz-webhook-cert", kcp.ca_pem().to_owned()),
        (DOMAIN_CA, domain_ca.to_owned()),
    ];
    for (name, certs) in webhook_certs {
        cas.push((name, crate::serving_cert(certs)?));
    }
    let secrets: Api<Secret> = Api::namespaced(client, NAMESPACE);
    for (name, pem) in cas {
        secrets
            .patch(name, &apply, &Patch::Apply(crate::ca_secret(name, &pem)))
            .await
            .map_err(|e| format!("Secret {name}: {e}"))?;
        println!("      Secret {NAMESPACE}/{name} (ca.crt)");
    }
    println!("      kubeconfig {}", kubeconfig.display());
    Ok(kubeconfig)
}

/// Prints the workspaces below `root` and asks kcp, as each user, whether they may list the
/// Accounts of a few workspaces; every answer must be the expected one.
async fn show_tree_and_decisions(kcp: &AuthorizingKcp, admin: &ClientFactory) -> DemoResult<()> {
    print_tree(admin, ClusterPath::root(), 1).await?;
    let questions = [
        (
            "alice",
            format!("root:orgs:{ORG}"),
            true,
            "owner of the org",
        ),
        (
            "alice",
            format!("root:orgs:{ORG}:{TEAM}"),
            true,
            "owner of its parent",
        ),
        (
            "carol",
            "root:orgs".to_owned(),
            true,
            "every user is a member of root:orgs",
        ),
        (
            "bob",
            format!("root:orgs:{ORG}"),
            false,
            "no role in the org",
        ),
        (
            "bob",
            format!("root:orgs:{ORG}:{TEAM}"),
            false,
            "no role in the org",
        ),
    ];
    println!("      may list accounts (kubectl get accounts, through kcp and the webhook):");
    for (user, path, expected, why) in questions {
        let clients = kcp.as_user(user).await;
        let path: ClusterPath = path.parse().map_err(|e| format!("{e}"))?;
        let accounts: Api<Account> = Api::all(clients.for_path(&path).map_err(|e| e.to_string())?);
        // kcp caches answers for a second and the webhook learns a new workspace from its
        // watch: an expected answer may take a moment, a wrong one stays.
        let answer = until_answer(&accounts, expected).await;
        let shown = if answer { "allowed" } else { "forbidden" };
        println!(
            "        {user:<6} {:<28} {shown:<10} ({why})",
            path.as_str()
        );
        if answer != expected {
            return Err(format!(
                "{user} listing Accounts in {path}: {shown}, expected the opposite ({why})"
            ));
        }
    }
    Ok(())
}

/// Whether listing is allowed; polls until it is `expected` or 30 s have passed.
async fn until_answer(accounts: &Api<Account>, expected: bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let allowed = match accounts.list(&ListParams::default()).await {
            Ok(_) => true,
            Err(kube::Error::Api(status)) if status.code == 403 => false,
            Err(_) => !expected,
        };
        if allowed == expected || Instant::now() > deadline {
            return allowed;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// dana's organisation and an account in it, made by the admin with her as their creator; her
/// invitation, read from the mail sink and followed as she would (a password of her own); her
/// login through the organisation's `kubectl` client, as kubectl's OIDC plugin does; and her
/// token listing the account's Accounts through kcp. Returns her ID token.
async fn dana_logs_in(demo: &Demo, admin: &ClientFactory) -> DemoResult<String> {
    let keycloak = demo.keycloak.as_ref().ok_or("Keycloak was not started")?;
    let smtp = demo.smtp.as_ref().ok_or("the mail sink was not started")?;
    let orgs_path = ClusterPath::root()
        .join("orgs")
        .map_err(|e| e.to_string())?;
    let org_path = orgs_path.join(DANA_ORG).map_err(|e| e.to_string())?;
    let team_path = org_path.join(DANA_TEAM).map_err(|e| e.to_string())?;
    for (parent, name, type_) in [
        (&orgs_path, DANA_ORG, "org"),
        (&org_path, DANA_TEAM, "account"),
    ] {
        let accounts: Api<Account> = Api::all(admin.for_path(parent).map_err(|e| e.to_string())?);
        until(&format!("Account {name} created in {parent}"), || async {
            let account = crate::new_account(name, type_, DANA);
            accounts.create(&Default::default(), &account).await.ok()
        })
        .await?;
        until(&format!("Account {name} Ready"), || async {
            let a = accounts.get_opt(name).await.ok()??;
            is_true(&a.status.as_ref()?.conditions, "Ready").then_some(())
        })
        .await?;
        println!("      admin: Account {name} in {parent}, creator {DANA}: Ready");
    }
    let mail = until("the invitation e-mail to dana", || async {
        smtp.messages()
            .into_iter()
            .find(|m| m.to.iter().any(|to| to == DANA))
    })
    .await?;
    let realm_actions = format!("/realms/{DANA_ORG}/login-actions/action-token");
    let link = mail
        .links()
        .into_iter()
        .find(|l| l.contains(&realm_actions))
        .ok_or_else(|| {
            format!(
                "no link into realm {DANA_ORG} in the e-mail:\n{}",
                mail.body()
            )
        })?;
    println!(
        "      e-mail to {DANA}: \"{}\"",
        mail.header("Subject").unwrap_or_default()
    );
    let page = keycloak
        .browser()
        .accept_invitation(&link, DANA_PASSWORD)
        .await;
    if !page.contains("account has been updated") {
        return Err(format!("following the invitation ended at:\n{page}"));
    }
    println!("      dana follows its link: password set, address verified");
    let info: crds::account_info::AccountInfo =
        Api::all(admin.for_path(&org_path).map_err(|e| e.to_string())?)
            .get(crds::account_info::ACCOUNT_INFO_NAME)
            .await
            .map_err(|e| format!("the AccountInfo of {org_path}: {e}"))?;
    let oidc = info
        .spec
        .oidc
        .ok_or_else(|| format!("the AccountInfo of {org_path} names no OIDC clients"))?;
    let client = oidc
        .clients
        .get("kubectl")
        .ok_or("the organisation has no kubectl client")?;
    let tokens = keycloak
        .browser()
        .login(
            &oidc.issuer_url,
            &client.client_id,
            KUBECTL_REDIRECT,
            DANA,
            DANA_PASSWORD,
        )
        .await?;
    println!(
        "      dana logs in to {} through client kubectl ({})",
        oidc.issuer_url, client.client_id
    );
    let as_dana = demo.kcp().with_token("dana", &tokens.id_token).await;
    let accounts: Api<Account> = Api::all(as_dana.for_path(&team_path).map_err(|e| e.to_string())?);
    // kcp builds a WorkspaceType's authenticators on first use, and retries after 10 s.
    until(
        &format!("dana's token to list Accounts in {team_path}"),
        || async { accounts.list(&ListParams::default()).await.ok() },
    )
    .await?;
    println!("      with her token, kcp lets her list Accounts in {team_path}");
    let refusal = master_realm_refused(admin, &orgs_path).await?;
    println!(
        "      an IdentityProviderConfiguration \"master\" is refused at admission: {refusal}"
    );
    Ok(tokens.id_token)
}

/// erin, a user of the welcome realm (the admin makes her, as self-registration would), logs
/// in through its `kubectl` client; with her ID token she creates an organisation in
/// `root:orgs`, which kcp admits through `orgs-authentication` and the rebac-authz-webhook
/// through the `orgs` Store (every user is a member of `root:orgs`); she becomes its creator.
async fn erin_creates_an_org(demo: &Demo, admin: &ClientFactory) -> DemoResult<()> {
    let keycloak = demo.keycloak.as_ref().ok_or("Keycloak was not started")?;
    keycloak
        .admin_send(
            reqwest::Method::POST,
            "realms/welcome/users",
            &json!({
                "username": ERIN, "email": ERIN, "emailVerified": true, "enabled": true,
                "firstName": "Erin", "lastName": "Example",
                "credentials": [{"type": "password", "value": ERIN_PASSWORD, "temporary": false}],
            }),
        )
        .await;
    let system = ClusterPath::root()
        .join("platform-mesh-system")
        .map_err(|e| e.to_string())?;
    let idp: IdentityProviderConfiguration =
        Api::all(admin.for_path(&system).map_err(|e| e.to_string())?)
            .get("welcome")
            .await
            .map_err(|e| format!("the welcome IdentityProviderConfiguration: {e}"))?;
    let clients = idp.client_ids()?;
    let client = clients
        .get("welcome-kubectl")
        .ok_or("the welcome realm has no kubectl client")?;
    let issuer = keycloak.issuer("welcome");
    let tokens = keycloak
        .browser()
        .login(&issuer, client, KUBECTL_REDIRECT, ERIN, ERIN_PASSWORD)
        .await?;
    println!("      {ERIN} logs in to {issuer} through client welcome-kubectl ({client})");
    let orgs_path = ClusterPath::root()
        .join("orgs")
        .map_err(|e| e.to_string())?;
    let as_erin = demo.kcp().with_token("erin", &tokens.id_token).await;
    let accounts: Api<Account> = Api::all(as_erin.for_path(&orgs_path).map_err(|e| e.to_string())?);
    // No creator: the account-operator's webhook names the one who creates it.
    let mut org = crate::new_account(ERIN_ORG, "org", "");
    org.spec.creator = None;
    // kcp builds a WorkspaceType's authenticators on first use, and retries after 10 s.
    until(
        &format!("erin's token to create Account {ERIN_ORG}"),
        || async { accounts.create(&Default::default(), &org).await.ok() },
    )
    .await?;
    let created = until(&format!("Account {ERIN_ORG} Ready"), || async {
        let a = accounts.get_opt(ERIN_ORG).await.ok()??;
        is_true(&a.status.as_ref()?.conditions, "Ready").then_some(a)
    })
    .await?;
    println!(
        "      with her welcome token she creates Account {ERIN_ORG} in {orgs_path}: Ready, \
         creator {}",
        created.spec.creator.as_deref().unwrap_or("?")
    );
    Ok(())
}

/// Asks kcp to create (dry run) an IdentityProviderConfiguration for Keycloak's `master` realm
/// in `orgs`: the security-operator's webhook, registered by the platform-mesh-operator,
/// refuses it. Returns the refusal.
async fn master_realm_refused(admin: &ClientFactory, orgs: &ClusterPath) -> DemoResult<String> {
    let idps: Api<IdentityProviderConfiguration> =
        Api::all(admin.for_path(orgs).map_err(|e| e.to_string())?);
    let master = IdentityProviderConfiguration::new("master", Default::default());
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    // kcp starts calling a new webhook configuration's webhook within seconds; until then
    // the dry run passes.
    until(
        "kcp to refuse an IdentityProviderConfiguration named master",
        || async {
            match idps.create(&params, &master).await {
                Ok(_) => None,
                Err(kube::Error::Api(status))
                    if status.message.contains("administration realm") =>
                {
                    Some(Ok(status.message))
                }
                Err(e) => Some(Err(format!("creating it failed otherwise: {e}"))),
            }
        },
    )
    .await?
}

/// Prints the workspaces under `path`, recursively, with their type and phase.
fn print_tree<'a>(
    admin: &'a ClientFactory,
    path: ClusterPath,
    depth: usize,
) -> std::pin::Pin<Box<dyn Future<Output = DemoResult<()>> + 'a>> {
    Box::pin(async move {
        if depth == 1 {
            println!("      {path}");
        }
        let client = admin.for_path(&path).map_err(|e| e.to_string())?;
        let list = Api::<Workspace>::all(client)
            .list(&ListParams::default())
            .await
            .map_err(|e| format!("listing workspaces in {path}: {e}"))?;
        for workspace in list.items {
            let name = workspace.metadata.name.clone().unwrap_or_default();
            let type_ = workspace
                .spec
                .type_
                .as_ref()
                .map(|t| format!("{}:{}", t.path, t.name))
                .unwrap_or_default();
            let phase = workspace
                .status
                .as_ref()
                .and_then(|s| s.phase.as_ref())
                .map(|p| format!("{p:?}"))
                .unwrap_or_default();
            println!(
                "      {}└─ {name}  (type {type_}, {phase})",
                "   ".repeat(depth - 1)
            );
            let child = path.join(&name).map_err(|e| e.to_string())?;
            print_tree(admin, child, depth + 1).await?;
        }
        Ok(())
    })
}

/// kubectl, as a user runs it.
struct Kubectl {
    binary: PathBuf,
    /// kubectl caches discovery per server (not per workspace) for hours: a CRD or an APIBinding
    /// just made would be "no matches for kind" to the next kubectl. Every run gets its own.
    cache: PathBuf,
    runs: std::cell::Cell<usize>,
}

impl Kubectl {
    /// `kubectl apply -f -` of `manifest` with `kubeconfig`'s `context`. Two refusals are
    /// tried again for a minute, since they pass on their own: "no matches for kind" (kcp's
    /// discovery lists a new CRD or binding a moment after it serves it) and "forbidden" for
    /// a user (the webhook answers for a new workspace once its watch has seen it).
    async fn apply(
        &self,
        kubeconfig: &Path,
        context: &str,
        manifest: &str,
        what: &str,
    ) -> DemoResult<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (ok, output) = self.try_apply(kubeconfig, context, manifest)?;
            if ok {
                return Ok(());
            }
            let passing = output.contains("no matches for kind")
                || output.to_lowercase().contains("forbidden");
            if !passing || Instant::now() > deadline {
                return Err(format!("kubectl apply of {what}: {output}"));
            }
            println!("        (not yet: {}; trying again)", first_line(&output));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn try_apply(
        &self,
        kubeconfig: &Path,
        context: &str,
        manifest: &str,
    ) -> DemoResult<(bool, String)> {
        println!("      $ kubectl --context {context} apply -f -");
        self.runs.set(self.runs.get() + 1);
        let cache = self.cache.join(self.runs.get().to_string());
        let mut child = Command::new(&self.binary)
            .arg(format!("--cache-dir={}", cache.display()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--context={context}"))
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("running {}: {e}", self.binary.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(manifest.as_bytes())
                .map_err(|e| format!("writing to kubectl: {e}"))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| format!("waiting for kubectl: {e}"))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if output.status.success() {
            for line in text.lines() {
                println!("        {line}");
            }
        }
        Ok((output.status.success(), text.trim().to_owned()))
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// An Account manifest.
fn account(name: &str, type_: &str) -> String {
    format!(
        "apiVersion: core.platform-mesh.io/v1alpha1\nkind: Account\nmetadata:\n  name: {name}\n\
         spec:\n  type: {type_}\n  displayName: {name}\n"
    )
}

/// Starts an operator binary under the watchdog with its ops servers on loopback (metrics on
/// any free port, health on `health`), logging to `dir/<name>.log`.
fn start(
    dir: &Path,
    name: &str,
    binary: &Path,
    mut args: Vec<String>,
    health: u16,
) -> DemoResult<ServerProcess> {
    args.extend([
        "--no-json".to_owned(),
        format!("--metrics-bind-address=127.0.0.1:{}", free_port()),
        format!("--health-probe-bind-address=127.0.0.1:{health}"),
    ]);
    let process = ServerProcess::start(name, binary, &args, dir, false)
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    println!(
        "      started {name}; log {}",
        dir.join(format!("{name}.log")).display()
    );
    Ok(process)
}

/// Waits until `process`, with health port `port`, answers `/readyz` with 200.
/// A process that exits instead is an error carrying the end of its log.
async fn ready(process: &ServerProcess, port: u16, name: &str) -> DemoResult<()> {
    process.until_ready(port, STEP_TIMEOUT).await?;
    println!("      {name} ready");
    Ok(())
}

/// Polls `probe` every 250 ms until it returns `Some`, for at most [`STEP_TIMEOUT`].
async fn until<T, F, Fut>(what: &str, mut probe: F) -> DemoResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {STEP_TIMEOUT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn print_conditions(what: &str, conditions: &[Condition]) {
    println!("      {what}:");
    for c in conditions {
        println!("        {:<34} {:<6} {}", c.type_, c.status, c.reason);
    }
}

/// A kubeconfig with a context per user and workspace the demo talks about: `admin` (root),
/// `host` (the hosting cluster), `<user>@orgs`, `<user>@<org>` for alice, bob and carol, and
/// with dana's ID token, `dana@<her account>`.
fn write_user_kubeconfig(
    kcp: &AuthorizingKcp,
    path: &Path,
    dana_token: Option<&str>,
) -> DemoResult<()> {
    let admin = kube::config::Kubeconfig::read_from(kcp.kcp.kubeconfig())
        .map_err(|e| format!("reading kcp's kubeconfig: {e}"))?;
    let root = admin
        .clusters
        .iter()
        .find(|c| c.name == "root")
        .and_then(|c| c.cluster.clone())
        .ok_or("kcp's kubeconfig has no cluster root")?;
    let server = root.server.clone().unwrap_or_default();
    let base = server.trim_end_matches("/clusters/root");
    // The token is a secrecy::SecretString; its serialized form is the token itself.
    let token = admin
        .auth_infos
        .iter()
        .find(|a| a.name == "kcp-admin")
        .and_then(|a| serde_json::to_value(a.auth_info.as_ref()?).ok())
        .and_then(|user| user.get("token").cloned())
        .ok_or("kcp's kubeconfig has no user kcp-admin with a token")?;
    let ca = root.certificate_authority_data.clone();
    let places = [
        ("admin", "root".to_owned()),
        ("host", format!("root:{HOST}")),
        ("orgs", "root:orgs".to_owned()),
        (ORG, format!("root:orgs:{ORG}")),
        (DANA_TEAM, format!("root:orgs:{DANA_ORG}:{DANA_TEAM}")),
    ];
    let clusters: Vec<_> = places
        .iter()
        .map(|(name, path)| {
            json!({"name": name, "cluster": {
                "server": format!("{base}/clusters/{path}"),
                "certificate-authority-data": ca,
            }})
        })
        .collect();
    let mut users = vec![json!({"name": "admin", "user": {"token": token}})];
    let mut contexts = vec![
        json!({"name": "admin", "context": {"cluster": "admin", "user": "admin"}}),
        json!({"name": "host", "context": {"cluster": "host", "user": "admin"}}),
    ];
    for user in crate::USERS {
        users.push(json!({"name": user, "user": {"token": format!("{user}-token")}}));
        for place in ["orgs", ORG] {
            contexts.push(json!({"name": format!("{user}@{place}"),
                "context": {"cluster": place, "user": user}}));
        }
    }
    if let Some(token) = dana_token {
        users.push(json!({"name": "dana", "user": {"token": token}}));
        contexts.push(json!({"name": format!("dana@{DANA_TEAM}"),
            "context": {"cluster": DANA_TEAM, "user": "dana"}}));
    }
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": clusters, "users": users, "contexts": contexts,
        "current-context": format!("alice@{ORG}"),
    });
    write(path, kubeconfig.to_string().as_bytes())
}

fn write(path: &Path, bytes: &[u8]) -> DemoResult<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Ctrl-C and SIGTERM, each caught from [`StopSignals::listen`] on.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn listen() -> DemoResult<Self> {
        let listen = |kind| {
            tokio::signal::unix::signal(kind).map_err(|e| format!("listening for {kind:?}: {e}"))
        };
        Ok(Self {
            interrupt: listen(SignalKind::interrupt())?,
            terminate: listen(SignalKind::terminate())?,
        })
    }

    /// Returns on the first of them.
    async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
