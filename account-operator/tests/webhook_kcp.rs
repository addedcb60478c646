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
async fn kcp_calls_the_webhooks_registered_next_to_the_export_and_hostile_accounts_are_refused() {
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

    refuses_every_hostile_account(&ws).await;
}

/// One hostile or malformed Account: what it is, its JSON, and what kcp must answer: `Err`
/// with a substring of the refusal, or `Ok` for the controls at the edge of each rule.
struct Hostile {
    what: &'static str,
    object: serde_json::Value,
    expected: Result<(), String>,
}

fn hostile(what: &'static str, object: serde_json::Value, refusal: &str) -> Hostile {
    Hostile {
        what,
        object,
        expected: Err(refusal.to_owned()),
    }
}

fn admitted(what: &'static str, object: serde_json::Value) -> Hostile {
    Hostile {
        what,
        object,
        expected: Ok(()),
    }
}

fn raw(name: &str, spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "core.platform-mesh.io/v1alpha1", "kind": "Account",
        "metadata": {"name": name}, "spec": spec,
    })
}

fn typed(name: &str, type_: &str) -> serde_json::Value {
    raw(name, serde_json::json!({"type": type_, "displayName": "x"}))
}

fn with_metadata(name: &str, metadata: serde_json::Value) -> serde_json::Value {
    let mut object = typed(name, "account");
    let meta = object["metadata"].as_object_mut().unwrap();
    meta.extend(metadata.as_object().unwrap().clone());
    object
}

/// The catalogue of hostile Accounts: each is refused by kcp's own validation (names, the
/// schema, the CEL rule on `spec.type`) or by our validating webhook, saying why, and nothing
/// of a refused one is stored; the controls next to each limit are admitted.
async fn refuses_every_hostile_account(ws: &harness::TestWorkspace) {
    use kube::api::DynamicObject;
    use kube::discovery::ApiResource;
    use serde_json::json;

    let names_only = "only lowercase letters, digits and '-' are allowed";
    let subdomain = "a lowercase RFC 1123 subdomain";
    let long = |n: usize| "a".repeat(n);
    let dotted = format!("{}.{}", long(126), long(126));
    let too_long_subdomain = format!("{}.{}", long(126), long(127));
    let catalogue = vec![
        hostile("org name of 2", typed("ab", "org"), "is too short"),
        hostile(
            "org name deny-listed: admin",
            typed("admin", "org"),
            "is not allowed",
        ),
        hostile(
            "org name deny-listed: root",
            typed("root", "org"),
            "is not allowed",
        ),
        hostile(
            "org name deny-listed: system",
            typed("system", "org"),
            "is not allowed",
        ),
        hostile(
            "org name deny-listed: www",
            typed("www", "org"),
            "is not allowed",
        ),
        hostile(
            "org name starting with a digit",
            typed("1acme", "org"),
            "must start with a lowercase letter",
        ),
        hostile(
            "org name of 56",
            typed(&"o".repeat(56), "org"),
            "at most 55 are allowed",
        ),
        hostile("org name with a dot", typed("acme.io", "org"), names_only),
        hostile(
            "account name of 64",
            typed(&long(64), "account"),
            "at most 63 are allowed",
        ),
        hostile(
            "account name of 253 with a dot",
            typed(&dotted, "account"),
            "at most 63 are allowed",
        ),
        hostile(
            "account name of 254",
            typed(&too_long_subdomain, "account"),
            "must be no more than 253",
        ),
        hostile(
            "account name with a dot",
            typed("team.a", "account"),
            names_only,
        ),
        hostile("upper case", typed("Team", "account"), subdomain),
        hostile("unicode", typed("tëam", "account"), subdomain),
        hostile("underscore", typed("team_a", "account"), subdomain),
        hostile("leading hyphen", typed("-team", "account"), subdomain),
        hostile("trailing hyphen", typed("team-", "account"), subdomain),
        hostile(
            "empty name",
            typed("", "account"),
            "name or generateName is required",
        ),
        hostile(
            "type outside the allow-list",
            typed("team", "team"),
            "account type team not in allowlist",
        ),
        hostile(
            "type in upper case",
            typed("team", "Org"),
            "account type Org not in allowlist",
        ),
        hostile(
            "type with a space",
            typed("team", " org"),
            "not in allowlist",
        ),
        hostile("empty type", typed("team", ""), "not in allowlist"),
        hostile(
            "no type",
            raw("team", json!({"displayName": "x"})),
            "spec.type: Required value",
        ),
        hostile(
            "no spec",
            json!({"apiVersion": "core.platform-mesh.io/v1alpha1", "kind": "Account", "metadata": {"name": "team"}}),
            "spec.displayName: Required value, spec.type: Required value",
        ),
        hostile(
            "spec a string",
            raw("team", json!("org")),
            "decoding the Account: spec is not an object",
        ),
        hostile(
            "type a number",
            raw("team", json!({"type": 5, "displayName": "x"})),
            "spec.type: Invalid value",
        ),
        hostile(
            "creator a number",
            raw(
                "team",
                json!({"type": "account", "displayName": "x", "creator": 42}),
            ),
            "decoding the Account: spec.creator is not a string",
        ),
        hostile(
            "display name of 256",
            raw("team", json!({"type": "account", "displayName": long(256)})),
            "spec.displayName: Too long",
        ),
        hostile(
            "another API version",
            json!({"apiVersion": "core.platform-mesh.io/v2", "kind": "Account", "metadata": {"name": "team"}, "spec": {"type": "account", "displayName": "x"}}),
            "does not match the expected API version",
        ),
        hostile(
            "a workspace path as the name",
            typed("root:orgs", "account"),
            subdomain,
        ),
        hostile(
            "label key with a space",
            with_metadata("team", json!({"labels": {"bad key": "x"}})),
            "metadata.labels: Invalid value",
        ),
        hostile(
            "label value of 64",
            with_metadata("team", json!({"labels": {"k": long(64)}})),
            "metadata.labels: Invalid value",
        ),
        hostile(
            "finalizer without a domain",
            with_metadata("team", json!({"finalizers": ["no slash!"]})),
            "metadata.finalizers",
        ),
        hostile(
            "owner reference without a uid",
            with_metadata(
                "team",
                json!({"ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": ""}]}),
            ),
            "metadata.ownerReferences.uid",
        ),
        hostile(
            "annotations over 256 KiB",
            with_metadata("team", json!({"annotations": {"big": long(300 * 1024)}})),
            "metadata.annotations: Too long",
        ),
        admitted("account name of 63", typed(&long(63), "account")),
        admitted("org name of 55", typed(&"o".repeat(55), "org")),
        admitted(
            "account name starting with a digit",
            typed("1team", "account"),
        ),
        admitted("org name with a double hyphen", typed("acme--eu", "org")),
        admitted("account named like a denied org", typed("admin", "account")),
        admitted(
            "unicode display name",
            raw("uni", json!({"type": "account", "displayName": "Ärger 🚀"})),
        ),
    ];
    assert!(catalogue.len() >= 40, "{} entries", catalogue.len());

    let resource = ApiResource::erase::<crds::Account>(&());
    let api: Api<DynamicObject> = Api::all_with(ws.client(), &resource);
    let mut failures = Vec::new();
    let mut admitted_names = std::collections::BTreeSet::new();
    for entry in &catalogue {
        let object: DynamicObject = serde_json::from_value(entry.object.clone()).unwrap();
        let answer = api.create(&PostParams::default(), &object).await;
        match (&entry.expected, answer) {
            (Ok(()), Ok(created)) => {
                admitted_names.insert(created.metadata.name.unwrap());
            }
            (Err(expected), Err(kube::Error::Api(status)))
                if status.message.contains(expected.as_str()) =>
            {
                eprintln!(
                    "refused: {}: {} {}",
                    entry.what, status.code, status.message
                );
            }
            (expected, answer) => failures.push(format!(
                "{}: expected {expected:?}, got {:?}",
                entry.what,
                answer.map(|o| o.metadata.name).map_err(|e| e.to_string())
            )),
        }
    }

    // A type change is refused by the CEL rule, whoever asks.
    let change = json!({"spec": {"type": "org"}});
    match api
        .patch("1team", &PatchParams::default(), &Patch::Merge(&change))
        .await
    {
        Err(kube::Error::Api(status)) if status.message.contains("spec.type is immutable") => {}
        other => failures.push(format!("type change: {:?}", other.map(|o| o.metadata.name))),
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing of a refused Account was stored: only the controls (and the accounts the test
    // above made) exist.
    let stored: std::collections::BTreeSet<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .filter(|name| !["acme", "ab"].contains(&name.as_str()))
        .collect();
    assert_eq!(stored, admitted_names);
    assert_eq!(admitted_names.len(), 6);
}
