//! Least privilege (issue 14): the webhook binary runs as a user of its own, with a client
//! certificate and no admin credentials, holding exactly the kcp RBAC of [`Rbac::needed`].
//! With that it becomes ready (its watches of the endpoint slice, and of LogicalClusters,
//! Stores and APIBindings through the export's virtual workspace, have synced) and answers
//! reviews from what it watches: the owner of an org is allowed, a stranger gets no opinion,
//! in the org and in `root:orgs`. With one permission less, `/readyz` stays 503 and names the
//! failing watch with kcp's 403.
//!
//! One more thing it reads, as its own user: the discovery of an org's workspace, for every
//! resource outside the built-in table (Accounts among them). In production kcp asks the
//! webhook about that request, and its own non-resource rule allows it. This test's kcp does
//! not ask a webhook (the harness has no kcp that both trusts a client CA and asks one), so
//! the test shows the answer when kcp refuses the discovery, and stands in for the webhook's
//! allow with `access` to the org's workspace.
//!
//! Each identity is a fresh user: kcp's virtual workspace caches an allowed check of
//! `apiexports/content` for five minutes, so a user that had a permission keeps it that long.
//!
//! It starts a kcp that trusts the test's client CA, so it runs in its own test binary.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use axum::http::{Method, StatusCode};
use fga::platform_mesh::{account_object, user};
use harness::scoped::{CertificateUser, ClientCa, grant, kcp_trusting, rule};
use harness::{
    Kcp, OpenFga, PlatformExport, SYSTEM_PATH, ServerProcess, eventually, free_port, http_get,
};
use k8s_openapi::api::rbac::v1::PolicyRule;
use kcp::{ClusterName, ClusterPath};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;
use support::review;

/// The export, and endpoint slice, the webhook watches through.
const EXPORT: &str = "core.platform-mesh.io";

/// The webhook's RBAC in kcp: all of it in `root:platform-mesh-system`, where its kubeconfig
/// points.
#[derive(Clone)]
struct Rbac {
    /// `access` on the non-resource URL `/`: a user (not a ServiceAccount of the workspace)
    /// gets into a workspace only with it.
    access: bool,
    /// The verbs on the endpoint slice of the export.
    slice_verbs: Vec<&'static str>,
    /// The verbs on `apiexports/content` of the export: what it does through the virtual
    /// workspace.
    content_verbs: Vec<&'static str>,
}

impl Rbac {
    /// What the webhook needs in `root:platform-mesh-system`, no more: each permission is
    /// left out once below. `get` on the slice and on `apiexports/content`, which the README
    /// granted, is not needed: the slice is watched by name, and the virtual workspace is
    /// only listed and watched.
    fn needed() -> Self {
        Self {
            access: true,
            slice_verbs: vec!["list", "watch"],
            content_verbs: vec!["list", "watch"],
        }
    }

    /// [`Rbac::needed`] without `verb` on `apiexports/content`.
    fn without_content(verb: &str) -> Self {
        let mut rbac = Self::needed();
        rbac.content_verbs.retain(|v| *v != verb);
        rbac
    }

    /// [`Rbac::needed`] without `verb` on the endpoint slice.
    fn without_slice(verb: &str) -> Self {
        let mut rbac = Self::needed();
        rbac.slice_verbs.retain(|v| *v != verb);
        rbac
    }

    fn rules(&self) -> Vec<PolicyRule> {
        let mut rules = Vec::new();
        if self.access {
            rules.push(access());
        }
        if !self.slice_verbs.is_empty() {
            rules.push(rule(
                "apis.kcp.io",
                &["apiexportendpointslices"],
                &[EXPORT],
                &self.slice_verbs,
            ));
        }
        if !self.content_verbs.is_empty() {
            rules.push(rule(
                "apis.kcp.io",
                &["apiexports/content"],
                &[EXPORT],
                &self.content_verbs,
            ));
        }
        rules
    }
}

fn system() -> ClusterPath {
    SYSTEM_PATH.parse().unwrap()
}

/// The platform the webhook answers about (see [`support::run_operators`]). Returns
/// `root:orgs`.
async fn platform(kcp: &Kcp, openfga: &OpenFga) -> harness::TestWorkspace {
    support::run_operators(kcp, openfga, &[]).await.0
}

/// A webhook binary running as a user of its own.
struct Webhook {
    name: String,
    user: CertificateUser,
    process: ServerProcess,
    health: u16,
    address: SocketAddr,
}

impl Webhook {
    /// Grants user `name` the `rbac` and starts the webhook with the user's kubeconfig
    /// (pointed at `root:platform-mesh-system`), serving with the certificate in `certs`.
    async fn start(
        kcp: &Kcp,
        ca: &ClientCa,
        name: &str,
        rbac: &Rbac,
        certs: &Path,
        openfga: &OpenFga,
    ) -> Self {
        let user = CertificateUser::new(ca, name);
        grant(&kcp.admin().await, &user, &system(), rbac.rules()).await;
        let kubeconfig = user.kubeconfig(kcp, &system(), "root");
        let health = free_port();
        let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let args = vec![
            "serve".to_owned(),
            format!("--kubeconfig={}", kubeconfig.display()),
            "--kubeconfig-context=root".into(),
            format!("--openfga-addr={}", openfga.grpc_endpoint()),
            format!("--webhook-bind-address={address}"),
            format!("--webhook-cert-dir={}", certs.display()),
            "--metrics-bind-address=127.0.0.1:0".into(),
            format!("--health-probe-bind-address=127.0.0.1:{health}"),
            "--no-json".into(),
        ];
        let process =
            ServerProcess::start(name, &support::binary(), &args, kcp.state_dir(), false).unwrap();
        Self {
            name: name.to_owned(),
            user,
            process,
            health,
            address,
        }
    }

    /// `/readyz`, once the ops server answers; panics with the log when the webhook exited.
    async fn readyz(&self) -> Option<(u16, String)> {
        assert!(
            !self.process.exited(),
            "{} exited:\n{}",
            self.name,
            self.process.log_tail(40)
        );
        http_get(self.health, "/readyz").await
    }

    /// Waits until `/readyz` answers 200.
    async fn until_ready(&self) {
        let what = format!("{} to be ready", self.name);
        eventually(&what, || async {
            self.readyz().await.filter(|(code, _)| *code == 200)
        })
        .await;
    }

    /// Waits until `/readyz` answers 503 naming a failing watch (after the kit's grace of
    /// 15 s); returns the body.
    async fn until_failing(&self) -> String {
        let what = format!("{}'s /readyz naming a failing watch", self.name);
        eventually(&what, || async {
            self.readyz()
                .await
                .filter(|(code, body)| *code == 503 && body.contains(" has been failing for "))
                .map(|(_, body)| body)
        })
        .await
    }

    /// The answer to `review`: `(allowed, denied, reason)`, or `None` for a retry (503).
    async fn ask(&self, review: &Value, ca: &str) -> Option<(bool, bool, String)> {
        let ca = CertificateDer::from_pem_slice(ca.as_bytes()).unwrap();
        let body = serde_json::to_vec(review).unwrap();
        let (status, text) =
            kit::admission::testing::send(self.address, &ca, Method::POST, "/authz", &body)
                .await
                .unwrap();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            return None;
        }
        assert_eq!(status, StatusCode::OK, "{text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["metadata"]["uid"], review["metadata"]["uid"]);
        let status = &answer["status"];
        Some((
            status["allowed"].as_bool().unwrap(),
            status["denied"].as_bool().unwrap_or(false),
            status["reason"].as_str().unwrap_or("").to_owned(),
        ))
    }
}

impl Drop for Webhook {
    /// The webhook's log, when the test fails while it runs.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{} log:\n{}", self.name, self.process.log_tail(40));
        }
    }
}

fn secs(since: Instant) -> String {
    format!("{:.1} s", since.elapsed().as_secs_f64())
}

/// `/readyz`'s body with the seconds of `has been failing for <n>s` replaced by `<n>`.
fn without_seconds(body: &str) -> String {
    let marker = " has been failing for ";
    let Some(at) = body.find(marker) else {
        return body.to_owned();
    };
    let start = at + marker.len();
    let digits = body[start..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(body.len() - start);
    format!("{}<n>{}", &body[..start], &body[start + digits..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_works_with_exactly_its_rbac_and_names_what_is_missing() {
    let started = Instant::now();
    let ca = ClientCa::new();
    let kcp = kcp_trusting(&ca).await;
    let openfga = OpenFga::shared().await;
    let orgs = platform(&kcp, openfga).await;
    let endpoint = PlatformExport::core(&kcp).await.endpoint_url(&kcp).await;
    let certs: PathBuf = kcp.state_dir().join("webhook-certs");
    let serving_ca = harness::serving_cert(&certs).unwrap();
    eprintln!(
        "least-privilege: kcp and the platform up after {}",
        secs(started)
    );

    // Every identity starts now: those short of a permission fail side by side while the
    // org is created.
    let step = Instant::now();
    let webhook = Webhook::start(
        &kcp,
        &ca,
        "rebac-authz-webhook",
        &Rbac::needed(),
        &certs,
        openfga,
    )
    .await;
    let mut short = Vec::new();
    for case in Short::cases() {
        let name = format!("rebac-authz-webhook-without-{}", case.name);
        let running = Webhook::start(&kcp, &ca, &name, &case.rbac, &certs, openfga).await;
        short.push((case, running));
    }

    // (a) Exactly the RBAC it needs: ready, its watches synced through the virtual workspace.
    webhook.until_ready().await;
    eprintln!("least-privilege: ready after {}", secs(step));

    // It answers from what it watches: alice, acme's owner, is allowed in acme, bob is not.
    let (_, acme) = harness::ready_account(&orgs, "acme", "org", "alice").await;
    support::store_id(&orgs, "acme").await;
    let list = |who: &str, cluster: &ClusterName, group: &str, resource: &str| {
        review(who, cluster.as_str(), "list", group, resource, "")
    };
    let allowed = |relation: &str, who: &str| {
        let object = account_object(orgs.cluster.as_str(), "acme");
        let reason = format!("OpenFGA allows {object}#{relation}@{}", user(who));
        Some((true, false, reason))
    };
    let no_opinion = |reason: &str| Some((false, false, reason.to_owned()));
    // Namespaces are in the built-in table: no discovery needed. Its watches see the org's
    // workspace and Store a moment after kcp's admin does.
    let alice = list("alice", &acme.cluster, "", "namespaces");
    eventually("alice allowed in acme", || async {
        let answer = webhook.ask(&alice, &serving_ca).await;
        (answer == allowed("list_core_namespaces", "alice")).then_some(())
    })
    .await;
    let bob = list("bob", &acme.cluster, "", "namespaces");
    assert_eq!(
        webhook.ask(&bob, &serving_ca).await,
        no_opinion("the org's store does not allow it")
    );
    // Accounts are not: the webhook reads acme's discovery of their group, as its own user.
    // kcp asks the webhook about that request in production, and its non-resource rule allows
    // it; this kcp does not ask the webhook, so kcp's RBAC refuses.
    let alice = list("alice", &acme.cluster, "core.platform-mesh.io", "accounts");
    assert_eq!(
        webhook.ask(&alice, &serving_ca).await,
        no_opinion(&format!(
            "workspace {}: discovering the resources of group \"core.platform-mesh.io\" \
             failed: forbidden: User \"rebac-authz-webhook\" cannot get path \
             \"/apis/core.platform-mesh.io/v1alpha1\": access denied (403)",
            acme.cluster
        ))
    );
    // With `access` to acme, which lets any user read its discovery (standing in for the
    // webhook's own answer): alice is allowed, bob is not.
    grant(
        &kcp.admin().await,
        &webhook.user,
        &acme.path,
        vec![access()],
    )
    .await;
    // kcp's RBAC takes the grant a moment later (seconds on a busy machine).
    let accounts = "list_core_platform-mesh_io_accounts";
    eventually("alice allowed to list acme's accounts", || async {
        let answer = webhook.ask(&alice, &serving_ca).await;
        (answer == allowed(accounts, "alice")).then_some(())
    })
    .await;
    let bob = list("bob", &acme.cluster, "core.platform-mesh.io", "accounts");
    assert_eq!(
        webhook.ask(&bob, &serving_ca).await,
        no_opinion("the org's store does not allow it")
    );
    // In root:orgs the orgs Store answers, from the Stores it watches: carol is a member, bob
    // is not.
    let carol = list("carol", &orgs.cluster, "core.platform-mesh.io", "accounts");
    let member = Some((
        true,
        false,
        format!("OpenFGA allows tenancy_kcp_io_workspace:orgs#{accounts}@user:carol"),
    ));
    eventually("carol allowed in root:orgs", || async {
        (webhook.ask(&carol, &serving_ca).await == member).then_some(())
    })
    .await;
    let bob = list("bob", &orgs.cluster, "core.platform-mesh.io", "accounts");
    assert_eq!(
        webhook.ask(&bob, &serving_ca).await,
        no_opinion("the orgs store does not allow it")
    );
    eprintln!(
        "least-privilege: owner and member allowed, strangers no opinion after {}",
        secs(step)
    );

    // (b) One permission less: /readyz stays 503, naming the failing watch and kcp's 403.
    for (case, running) in &short {
        let body = running.until_failing().await;
        eprintln!("least-privilege: {}: {body}", running.name);
        case.assert_named(&body, &running.name, &endpoint);
    }
    eprintln!("least-privilege: whole test {}", secs(started));
}

/// `access` on the non-resource URL `/`.
fn access() -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(vec!["/".to_owned()]),
        verbs: vec!["access".to_owned()],
        ..Default::default()
    }
}

/// A webhook short of one permission, and the watch that fails for it.
struct Short {
    name: &'static str,
    rbac: Rbac,
    /// Whether the endpoint slice's watch fails (else a watch through the virtual
    /// workspace).
    slice: bool,
    /// The verb kcp refuses.
    verb: &'static str,
}

impl Short {
    fn cases() -> Vec<Short> {
        let no_access = Rbac {
            access: false,
            ..Rbac::needed()
        };
        vec![
            // Without `access`, kcp refuses every request in the workspace, the first being
            // the list of the slice.
            Short {
                name: "access",
                rbac: no_access,
                slice: true,
                verb: "list",
            },
            Short {
                name: "slice-list",
                rbac: Rbac::without_slice("list"),
                slice: true,
                verb: "list",
            },
            Short {
                name: "slice-watch",
                rbac: Rbac::without_slice("watch"),
                slice: true,
                verb: "watch",
            },
            Short {
                name: "content-list",
                rbac: Rbac::without_content("list"),
                slice: false,
                verb: "list",
            },
            Short {
                name: "content-watch",
                rbac: Rbac::without_content("watch"),
                slice: false,
                verb: "watch",
            },
        ]
    }

    /// Asserts that `/readyz`'s `body` names the watch this case breaks, with kcp's 403 for
    /// `user`. Through the virtual workspace, the first controller's watch of LogicalClusters
    /// and of APIBindings (which engage the workspaces) fail alike; either may be named.
    fn assert_named(&self, body: &str, user: &str, endpoint: &str) {
        let (what, object, resource, group) = if self.slice {
            (
                format!("APIExportEndpointSlice {EXPORT}"),
                format!("apiexportendpointslices.apis.kcp.io \"{EXPORT}\""),
                "apiexportendpointslices",
                "apis.kcp.io",
            )
        } else {
            let (resource, group) = if body.contains("the watch of apibindings on ") {
                ("apibindings", "apis.kcp.io")
            } else {
                ("logicalclusters", "core.kcp.io")
            };
            (
                format!("{resource} on {endpoint}"),
                format!("{resource}.{group}"),
                resource,
                group,
            )
        };
        let failed = match self.verb {
            "list" => "perform initial object list",
            _ => "start watching object",
        };
        let verb = self.verb;
        let expected = format!(
            "not ready: logicalclusters: the watch of {what} has been failing for <n>s: failed \
             to {failed}: ApiError: {object} is forbidden: User \"{user}\" cannot {verb} \
             resource \"{resource}\" in API group \"{group}\" at the cluster scope: access \
             denied: Forbidden (Status {{ "
        );
        let body = without_seconds(body);
        assert!(body.starts_with(&expected), "{body}\nexpected:\n{expected}");
        assert!(body.ends_with(" })"), "{body}");
    }
}
