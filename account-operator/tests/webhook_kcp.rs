#![allow(clippy::unwrap_used)]
//! The Account admission webhooks against a real kcp: the configurations are registered in
//! `root:platform-mesh-system`, next to the `core.platform-mesh.io` APIExport, as
//! platform-mesh-operator does, and kcp calls them for Accounts in a workspace that binds the
//! export. Requests go through a real `kubectl apply`, so the user-facing reasons are checked
//! as the user sees them.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use account_operator::webhooks::{MUTATE_PATH, VALIDATE_PATH, WebhookConfig, WebhookMetrics};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use prometheus_client::registry::Registry;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

/// The names platform-mesh-operator gives the configurations and webhooks.
use crds::account::webhook::{
    MUTATING_CONFIG, MUTATING_WEBHOOK, VALIDATING_CONFIG, VALIDATING_WEBHOOK,
};

/// How long kcp may take to start calling newly registered webhooks.
const ACTIVATION_TIMEOUT: Duration = Duration::from_secs(90);

/// Starts the webhook server on 127.0.0.1 with a fresh self-signed certificate; returns its
/// address and the CA bundle (the certificate's PEM).
async fn start_webhooks(
    metrics: WebhookMetrics,
    shutdown: CancellationToken,
) -> (SocketAddr, String, tempfile::TempDir) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let certs = tempfile::tempdir().unwrap();
    std::fs::write(certs.path().join("tls.crt"), cert.cert.pem()).unwrap();
    std::fs::write(
        certs.path().join("tls.key"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    let config = WebhookConfig {
        port: 0,
        cert_dir: certs.path().to_owned(),
        // The chart's defaults.
        deny_list: ["admin", "root", "system", "www"]
            .map(str::to_owned)
            .to_vec(),
        additional_account_types: vec!["account".to_owned()],
        creator_only_when_empty: false,
    };
    let loopback = kit::net::BindAddress::Exact(([127, 0, 0, 1], 0).into());
    let server = account_operator::webhooks::bind(loopback, &config, metrics)
        .await
        .unwrap();
    let addr = server.local_addr();
    tokio::spawn(async move {
        if let Err(e) = server.run(shutdown).await {
            panic!("webhook server: {e}");
        }
    });
    (addr, cert.cert.pem(), certs)
}

fn client_config(addr: SocketAddr, path: &str, ca_pem: &str) -> WebhookClientConfig {
    WebhookClientConfig {
        url: Some(format!("https://{addr}{path}")),
        ca_bundle: Some(ByteString(ca_pem.as_bytes().to_vec())),
        service: None,
    }
}

fn account_rule(operations: &[&str]) -> Vec<RuleWithOperations> {
    vec![RuleWithOperations {
        api_groups: Some(vec!["core.platform-mesh.io".to_owned()]),
        api_versions: Some(vec!["v1alpha1".to_owned()]),
        operations: Some(operations.iter().map(|o| (*o).to_owned()).collect()),
        resources: Some(vec!["accounts".to_owned()]),
        scope: None,
    }]
}

/// Registers both configurations in `system`, as platform-mesh-operator does.
async fn register_webhooks(system: Client, addr: SocketAddr, ca_pem: &str) {
    let apply = PatchParams::apply("webhook-kcp-test").force();
    let mutating = MutatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(MUTATING_CONFIG.to_owned()),
            ..Default::default()
        },
        webhooks: Some(vec![MutatingWebhook {
            name: MUTATING_WEBHOOK.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: client_config(addr, MUTATE_PATH, ca_pem),
            failure_policy: Some("Fail".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(30),
            rules: Some(account_rule(&["CREATE"])),
            ..Default::default()
        }]),
    };
    Api::<MutatingWebhookConfiguration>::all(system.clone())
        .patch(MUTATING_CONFIG, &apply, &Patch::Apply(&mutating))
        .await
        .unwrap();
    let validating = ValidatingWebhookConfiguration {
        metadata: ObjectMeta {
            name: Some(VALIDATING_CONFIG.to_owned()),
            ..Default::default()
        },
        webhooks: Some(vec![ValidatingWebhook {
            name: VALIDATING_WEBHOOK.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: client_config(addr, VALIDATE_PATH, ca_pem),
            failure_policy: Some("Fail".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(30),
            rules: Some(account_rule(&["CREATE", "UPDATE"])),
            ..Default::default()
        }]),
    };
    Api::<ValidatingWebhookConfiguration>::all(system)
        .patch(VALIDATING_CONFIG, &apply, &Patch::Apply(&validating))
        .await
        .unwrap();
}

fn account(name: &str, type_: &str, creator: Option<&str>) -> crds::Account {
    crds::Account::new(
        name,
        crds::AccountSpec {
            type_: type_.to_owned(),
            display_name: name.to_owned(),
            creator: creator.map(str::to_owned),
            ..Default::default()
        },
    )
}

/// Waits until kcp calls both webhooks for Accounts in the bound workspace, probing with
/// dry-run creates (nothing is stored).
async fn wait_until_active(accounts: &Api<crds::Account>) {
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + ACTIVATION_TIMEOUT;
    let mut last;
    loop {
        let validated = match accounts.create(&dry_run, &account("ab", "org", None)).await {
            Err(kube::Error::Api(status)) => {
                last = status.message.clone();
                status.message.contains("is too short")
            }
            other => {
                last = format!("{other:?}");
                false
            }
        };
        let mutated = validated
            && match accounts
                .create(&dry_run, &account("probe", "org", Some("nobody")))
                .await
            {
                Ok(created) => {
                    last = format!("creator {:?}", created.spec.creator);
                    created.spec.creator.as_deref() == Some("kcp-admin")
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            };
        if mutated {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "kcp did not call the webhooks registered next to the export within \
             {ACTIVATION_TIMEOUT:?}; last answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `kubectl apply -f -` of `manifest` against workspace `server_url`, as kcp-admin.
async fn kubectl_apply(
    kubeconfig: &std::path::Path,
    server_url: &str,
    manifest: &str,
) -> (bool, String) {
    let kubectl = xtask::binary("kubectl").unwrap_or_else(|e| panic!("{e}"));
    let mut child = tokio::process::Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--context", "root", "--server", server_url])
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e}", kubectl.display()));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(manifest.as_bytes()).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("$ kubectl apply -f - ({})\n{text}", output.status);
    (output.status.success(), text)
}

fn manifest(name: &str, type_: &str, creator: Option<&str>) -> String {
    let creator = creator.map_or(String::new(), |c| format!("  creator: {c}\n"));
    format!(
        "apiVersion: core.platform-mesh.io/v1alpha1\nkind: Account\nmetadata:\n  name: {name}\n\
         spec:\n  type: {type_}\n  displayName: {name}\n{creator}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcp_calls_the_webhooks_registered_next_to_the_export() {
    let kcp = harness::Kcp::shared().await;
    let core = harness::PlatformExport::core(kcp).await;
    let ws = kcp.private_workspace("webhooks").await;
    core.bind(&ws).await;
    let admin = kcp.admin().await;

    let mut registry = Registry::default();
    let metrics = WebhookMetrics::register(&mut registry);
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let (addr, ca_pem, _certs) = start_webhooks(metrics.clone(), shutdown.clone()).await;

    // Only in root:platform-mesh-system, next to the export; nothing in the bound workspace.
    register_webhooks(admin.for_path(&core.system).unwrap(), addr, &ca_pem).await;
    let accounts: Api<crds::Account> = Api::all(ws.client());
    wait_until_active(&accounts).await;

    let server_url = format!(
        "{}/clusters/{}",
        admin.server().as_str().trim_end_matches('/'),
        ws.path
    );
    let kubeconfig = kcp.kubeconfig();

    // The mutating webhook overwrites the given creator with the requesting user.
    let (ok, output) = kubectl_apply(
        kubeconfig,
        &server_url,
        &manifest("acme", "org", Some("someone-else")),
    )
    .await;
    assert!(ok, "kubectl apply of org acme failed: {output}");
    assert!(
        output.contains("account.core.platform-mesh.io/acme created"),
        "{output}"
    );
    let acme = accounts.get("acme").await.unwrap();
    assert_eq!(acme.spec.creator.as_deref(), Some("kcp-admin"));

    // Organisation names shorter than 3 characters are refused, with the reason.
    let (ok, output) = kubectl_apply(kubeconfig, &server_url, &manifest("ab", "org", None)).await;
    assert!(!ok, "org ab was admitted: {output}");
    assert!(
        output.contains(&format!(
            r#"admission webhook "{VALIDATING_WEBHOOK}" denied the request: organization name "ab" is too short, must be at least 3 characters"#
        )),
        "{output}"
    );

    // Deny-listed organisation names are refused.
    let (ok, output) =
        kubectl_apply(kubeconfig, &server_url, &manifest("admin", "org", None)).await;
    assert!(!ok, "org admin was admitted: {output}");
    assert!(
        output.contains(r#"denied the request: organization name "admin" is not allowed"#),
        "{output}"
    );

    // Types outside the allow-list are refused.
    let (ok, output) =
        kubectl_apply(kubeconfig, &server_url, &manifest("team", "team", None)).await;
    assert!(!ok, "type team was admitted: {output}");
    assert!(
        output.contains("denied the request: account type team not in allowlist"),
        "{output}"
    );

    // An allowed type passes; the org-only name rules do not apply to it.
    let (ok, output) =
        kubectl_apply(kubeconfig, &server_url, &manifest("ab", "account", None)).await;
    assert!(ok, "account ab was refused: {output}");
    assert!(
        output.contains("account.core.platform-mesh.io/ab created"),
        "{output}"
    );
    let ab = accounts.get("ab").await.unwrap();
    assert_eq!(ab.spec.creator.as_deref(), Some("kcp-admin"));

    // UPDATE is validated too, on the new object.
    let rename = serde_json::json!({ "spec": { "displayName": "Acme Corp" } });
    accounts
        .patch("acme", &PatchParams::default(), &Patch::Merge(&rename))
        .await
        .unwrap();
    assert!(metrics.validations("update", "allowed", "org") >= 1);

    // kcp's calls were counted (the activation probes add some of their own).
    assert!(metrics.validations("create", "denied", "org") >= 2);
    assert!(metrics.validations("create", "denied", "team") >= 1);
    assert!(metrics.validations("create", "allowed", "account") >= 1);
    assert!(metrics.validations("create", "allowed", "org") >= 1);
}
