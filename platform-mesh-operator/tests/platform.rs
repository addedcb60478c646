#![allow(clippy::unwrap_used)]
//! From a fresh kcp, one PlatformMesh makes the whole tree; the account-operator and the
//! security-operator, started with the kubeconfigs it wrote, turn an org Account Ready with
//! its OpenFGA store and tuples. Then the tree's drift is corrected, a reconcile of a tree
//! that is right writes nothing, a rotated CA reaches kcp, scoped tokens are renewed only
//! when due, and deletion removes what the PlatformMesh wrote.
//!
//! One test, in steps: they share one kcp tree and the operators running on it.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use clap::Parser;
use crds::Store;
use fga::sync::{SyncOptions, read_tuples};
use harness::{Kcp, OpenFga, eventually, wait_for, wait_gone};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::ConfigMap;
use kcp::ClusterPath;
use kcp::types::apis::{ApiExport, ApiExportEndpointSlice};
use kcp::types::tenancy::WorkspaceType;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use platform_mesh_operator::kubeconfig::{
    TOKEN_EXPIRES_ANNOTATION, TOKEN_ISSUED_ANNOTATION, format_time, parse_time,
};
use support::{
    AccountWebhooks, Host, condition, host_without_setup, kcp_reads, platform_mesh, reconciles,
    serving_cert, start_operator, start_suite, writes,
};
use tokio_util::sync::CancellationToken;

const NS: &str = "platform-mesh-system";
const LABEL: &str = "main";

fn is_ready(pm: &crds::PlatformMesh) -> bool {
    condition(pm, "Ready").is_some_and(|(status, _, _)| status == "True")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_platform_mesh_sets_up_kcp_for_the_suite() {
    let kcp = Kcp::shared().await;
    let openfga = OpenFga::shared().await;
    let host = Host::new().await;
    host.namespace(NS).await;
    let certs = kcp.state_dir().join("account-operator-certs");
    let ca = serving_cert(&certs);
    host.ca_secret(NS, "account-operator-webhook-server-cert", &ca)
        .await;
    // Any CA will do for the authorization webhook's kubeconfig: kcp is not restarted with it.
    host.ca_secret(NS, "rebac-authz-webhook-cert", &ca).await;
    let webhooks = harness::free_port();
    let metrics = start_operator(
        &host,
        kcp.kubeconfig(),
        LABEL,
        &[
            format!("--account-operator-webhook-url=https://127.0.0.1:{webhooks}"),
            "--authorization-webhook-url=https://127.0.0.1:9443/authz".to_owned(),
            "--kcp-drift-check-interval=2s".to_owned(),
            "--scoped-token-lifetime=1h".to_owned(),
        ],
    );

    // One PlatformMesh: the whole tree, every condition True.
    let pms = host.platform_meshes(NS);
    pms.create(
        &PostParams::default(),
        &platform_mesh("platform", LABEL, serde_json::json!({})),
    )
    .await
    .unwrap();
    let pm = wait_for(&pms, "platform", "Ready", is_ready).await;
    for step in [
        "KcpsetupSubroutine",
        "ProvidersecretSubroutine",
        "AuthorizationwebhookSubroutine",
    ] {
        assert_eq!(condition(&pm, step).unwrap().0, "True", "{step}: {pm:#?}");
    }
    let (status, reason, message) = condition(&pm, "DeploymentSubroutine").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Skipped"));
    assert!(
        message.contains("--subroutines-deployment-enabled"),
        "{message}"
    );

    let admin = kcp.admin().await;
    let root = admin.for_path(&ClusterPath::root()).unwrap();
    let types: Api<WorkspaceType> = Api::all(root.clone());
    for name in platform_mesh_operator::bootstrap::WORKSPACE_TYPES {
        assert!(types.get(name).await.unwrap().is_ready(), "{name}");
    }
    let system_path: ClusterPath = "root:platform-mesh-system".parse().unwrap();
    let system = admin.for_path(&system_path).unwrap();
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(system.clone());
    let ca_bundle = |config: MutatingWebhookConfiguration| {
        let hook = &config.webhooks.unwrap()[0];
        String::from_utf8(hook.client_config.ca_bundle.clone().unwrap().0).unwrap()
    };
    assert_eq!(
        ca_bundle(
            mutating
                .get(crds::account::webhook::MUTATING_CONFIG)
                .await
                .unwrap()
        ),
        ca
    );
    for secret in [
        "account-operator-kubeconfig",
        "security-operator-kubeconfig",
        "rebac-authz-webhook-kubeconfig",
        "kcp-webhook-secret",
    ] {
        host.secrets(NS).get(secret).await.unwrap();
    }

    // The operators, with the kubeconfigs it wrote: an org Account becomes Ready, with its
    // store, model and tuples.
    let account_webhooks = AccountWebhooks {
        port: webhooks,
        cert_dir: certs.clone(),
    };
    start_suite(
        &host,
        NS,
        &openfga.grpc_endpoint(),
        Some(&account_webhooks),
        &CancellationToken::new(),
    )
    .await;
    let orgs = support::orgs(&admin).await;
    harness::ready_account(&orgs, "acme", "org", "alice").await;
    let stores: Api<Store> = Api::all(orgs.client());
    let store = wait_for(&stores, "acme", "Ready with a model", |s| {
        s.status
            .as_ref()
            .is_some_and(|s| s.authorization_model_id.is_some() && !s.managed_tuples.is_empty())
    })
    .await;
    let status = store.status.unwrap();
    let mut client = openfga.client().await;
    let written: BTreeSet<String> = read_tuples(
        &mut client,
        status.store_id.as_deref().unwrap(),
        None,
        &SyncOptions::default(),
    )
    .await
    .unwrap()
    .iter()
    .map(ToString::to_string)
    .collect();
    let managed: BTreeSet<String> = status
        .managed_tuples
        .iter()
        .map(|t| format!("{}#{}@{}", t.object, t.relation, t.user))
        .collect();
    assert_eq!(written, managed, "the org's tuples are in OpenFGA");
    assert!(
        managed.iter().any(|t| t.ends_with("@user:alice")),
        "{managed:?}"
    );

    // Drift: a deleted WorkspaceType and an edited export are put back.
    types
        .delete("provider", &DeleteParams::default())
        .await
        .unwrap();
    let exports: Api<ApiExport> = Api::all(system.clone());
    exports
        .patch(
            crds::export::CORE_EXPORT,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({
                "metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}}
            })),
        )
        .await
        .unwrap();
    wait_for(
        &types,
        "provider",
        "recreated and Ready",
        WorkspaceType::is_ready,
    )
    .await;
    wait_for(&exports, crds::export::CORE_EXPORT, "relabelled", |e| {
        e.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app.kubernetes.io/managed-by"))
            == Some(&"platform-mesh-operator".to_owned())
    })
    .await;

    // A tree that is right costs reads only: three more reconciles (the drift check runs
    // every 2 s) send no write at all.
    let settled = eventually("the tree to settle", || async {
        let before = writes(metrics).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        (writes(metrics).await == before).then_some(before)
    })
    .await;
    let (start, reads) = (reconciles(metrics).await, kcp_reads(metrics).await);
    eventually("three more reconciles", || async {
        (reconciles(metrics).await >= start + 3.0).then_some(())
    })
    .await;
    assert_eq!(
        writes(metrics).await,
        settled,
        "reconciles of a tree that is right wrote"
    );
    assert!(
        kcp_reads(metrics).await > reads,
        "the reconciles compared the tree"
    );

    // The scoped kubeconfig works, with exactly what the export grants.
    let scoped_file = host
        .kubeconfig_file(NS, "rebac-authz-webhook-kubeconfig")
        .await;
    let scoped = kcp::ClientFactory::from_kubeconfig(&scoped_file, None)
        .await
        .unwrap();
    let scoped_system = scoped.for_path(&system_path).unwrap();
    Api::<ApiExportEndpointSlice>::all(scoped_system.clone())
        .get(crds::export::CORE_EXPORT)
        .await
        .unwrap();
    let forbidden = Api::<ConfigMap>::all(scoped_system)
        .list(&Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&forbidden, kube::Error::Api(s) if s.code == 403),
        "{forbidden}"
    );
    // The component it is for runs on it: the rebac-authz-webhook becomes ready, its watches
    // of LogicalClusters and Stores synced through the export's virtual workspace.
    let health = harness::free_port();
    let webhook = rebac_authz_webhook::config::Config::try_parse_from([
        "rebac-authz-webhook".to_owned(),
        "serve".into(),
        format!("--kubeconfig={}", scoped_file.display()),
        format!("--openfga-addr={}", openfga.grpc_endpoint()),
        format!("--webhook-cert-dir={}", certs.display()),
        format!("--webhook-bind-address=127.0.0.1:{}", harness::free_port()),
        "--metrics-bind-address=127.0.0.1:0".into(),
        format!("--health-probe-bind-address=127.0.0.1:{health}"),
    ])
    .unwrap();
    harness::run_detached(move || async move {
        rebac_authz_webhook::app::run(webhook, CancellationToken::new())
            .await
            .unwrap();
    });
    eventually(
        "the webhook on its scoped kubeconfig to be ready",
        || async {
            harness::http_get(health, "/readyz")
                .await
                .filter(|(code, _)| *code == 200)
        },
    )
    .await;

    // A token near expiry is renewed (the Secret watch brings the PlatformMesh back); the
    // one far from expiry was not rewritten by the reconciles above.
    let secrets = host.secrets(NS);
    let before = secrets.get("rebac-authz-webhook-kubeconfig").await.unwrap();
    let now = SystemTime::now();
    let patch = serde_json::json!({"metadata": {"annotations": {
        TOKEN_ISSUED_ANNOTATION: format_time(now - Duration::from_secs(3000)),
        TOKEN_EXPIRES_ANNOTATION: format_time(now + Duration::from_secs(600)),
    }}});
    secrets
        .patch(
            "rebac-authz-webhook-kubeconfig",
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    let renewed = wait_for(&secrets, "rebac-authz-webhook-kubeconfig", "renewed", |s| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(TOKEN_EXPIRES_ANNOTATION))
            .and_then(|t| parse_time(t))
            .is_some_and(|t| t > now + Duration::from_secs(3000))
    })
    .await;
    assert_ne!(renewed.data, before.data, "a new token");

    // A rotated CA reaches the webhook configurations in kcp.
    let rotated = serving_cert(&certs);
    host.ca_secret(NS, "account-operator-webhook-server-cert", &rotated)
        .await;
    wait_for(
        &mutating,
        crds::account::webhook::MUTATING_CONFIG,
        "the rotated CA",
        |c| ca_bundle(c.clone()) == rotated,
    )
    .await;

    // Deletion removes the Secrets it wrote (and leaves kcp's tree: no flag asked otherwise).
    pms.delete("platform", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pms, "platform").await;
    for secret in [
        "account-operator-kubeconfig",
        "security-operator-kubeconfig",
        "rebac-authz-webhook-kubeconfig",
        "kcp-webhook-secret",
    ] {
        assert!(
            secrets.get_opt(secret).await.unwrap().is_none(),
            "{secret} left behind"
        );
    }
    assert!(types.get_opt("org").await.unwrap().is_some());
}

/// Waits until condition `type_` of PlatformMesh `name` has `status`; returns its reason and
/// message.
async fn condition_becomes(
    pms: &Api<crds::PlatformMesh>,
    name: &str,
    type_: &str,
    status: &str,
) -> (String, String) {
    let pm = wait_for(pms, name, &format!("{type_}={status}"), |pm| {
        condition(pm, type_).is_some_and(|(s, _, _)| s == status)
    })
    .await;
    let (_, reason, message) = condition(&pm, type_).unwrap();
    (reason, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_condition_with_a_reason_and_message() {
    const NS: &str = "bad-input";
    const LABEL: &str = "bad";
    let host = host_without_setup(NS, LABEL, &["--subroutines-welcome-enabled=true"]).await;
    let pms = host.platform_meshes(NS);
    let root_admin =
        |secret: &str| serde_json::json!({"secret": secret, "path": "root", "adminAuth": true});
    let cases = [
        (
            "unknown-component",
            serde_json::json!({"values": {"services": {"nope": {}}},
                               "kcp": {"providerConnections": [root_admin("first")]}}),
            "DeploymentSubroutine",
            "InvalidValues",
            vec!["spec.values.services.nope", "account-operator"],
        ),
        (
            "malformed-values",
            serde_json::json!({"values": {"services": {"account-operator": {"enabled": "yes"}}},
                               "kcp": {"providerConnections": [root_admin("second")]}}),
            "DeploymentSubroutine",
            "InvalidValues",
            vec!["spec.values.services.account-operator.enabled", "boolean"],
        ),
        (
            "missing-export",
            serde_json::json!({"kcp": {"providerConnections": [
                {"secret": "scoped", "path": "root", "apiExportName": "does-not-exist"}]}}),
            "ProvidersecretSubroutine",
            "Error",
            vec!["APIExport root/does-not-exist does not exist"],
        ),
        (
            "neither-slice-nor-export",
            serde_json::json!({"kcp": {"providerConnections": [
                {"secret": "scoped", "path": "root"}]}}),
            "ProvidersecretSubroutine",
            "InvalidProviderConnection",
            vec![
                "\"scoped\"",
                "exactly one of endpointSliceName and apiExportName",
            ],
        ),
        (
            "welcome-without-domain",
            serde_json::json!({"kcp": {"providerConnections": [root_admin("third")]}}),
            "WelcomeSubroutine",
            "InvalidSpec",
            vec!["spec.exposure.baseDomain: required for the welcome realm"],
        ),
        (
            "welcome-with-a-url",
            serde_json::json!({"exposure": {"baseDomain": "https://portal.example"},
                               "kcp": {"providerConnections": [root_admin("fourth")]}}),
            "WelcomeSubroutine",
            "InvalidSpec",
            vec![
                "\"https://portal.example\"",
                "a host name, without scheme, port or path",
            ],
        ),
    ];
    for (name, spec, _, _, _) in &cases {
        pms.create(
            &PostParams::default(),
            &platform_mesh(name, LABEL, spec.clone()),
        )
        .await
        .unwrap();
    }
    for (name, _, step, expected_reason, fragments) in cases {
        let (reason, message) = condition_becomes(&pms, name, step, "False").await;
        assert_eq!(reason, expected_reason, "{name}: {message}");
        for fragment in fragments {
            assert!(message.contains(fragment), "{name}: {message}");
        }
        let (ready, _) = condition_becomes(&pms, name, "Ready", "False").await;
        assert_eq!(ready, "Error", "{name}");
    }

    // A Secret another PlatformMesh wrote is not taken over: the two would overwrite each
    // other forever.
    condition_becomes(
        &pms,
        "unknown-component",
        "ProvidersecretSubroutine",
        "True",
    )
    .await;
    let spec = serde_json::json!({"kcp": {"providerConnections": [root_admin("first")]}});
    pms.create(&PostParams::default(), &platform_mesh("taken", LABEL, spec))
        .await
        .unwrap();
    let (reason, message) =
        condition_becomes(&pms, "taken", "ProvidersecretSubroutine", "False").await;
    assert_eq!(reason, "OwnedByAnother", "{message}");
    assert!(
        message
            .contains("Secret bad-input/first belongs to PlatformMesh bad-input/unknown-component"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_slice_without_endpoints_is_pending_until_it_has_one() {
    const NS: &str = "empty-slice";
    const LABEL: &str = "slice";
    let kcp = Kcp::shared().await;
    let host = host_without_setup(NS, LABEL, &[]).await;
    // An export nobody binds yet, and its slice: kcp lists an endpoint per shard where the
    // export is bound, so none yet.
    let provider = kcp.private_workspace("lonely").await;
    let exports: Api<ApiExport> = Api::all(provider.client());
    let export: ApiExport = serde_json::from_value(serde_json::json!({
        "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIExport",
        "metadata": {"name": "lonely"}, "spec": {},
    }))
    .unwrap();
    exports
        .create(&PostParams::default(), &export)
        .await
        .unwrap();
    let slices: Api<ApiExportEndpointSlice> = Api::all(provider.client());
    let slice: ApiExportEndpointSlice = serde_json::from_value(serde_json::json!({
        "apiVersion": "apis.kcp.io/v1alpha1", "kind": "APIExportEndpointSlice",
        "metadata": {"name": "lonely"},
        "spec": {"export": {"path": provider.path.as_str(), "name": "lonely"}},
    }))
    .unwrap();
    // kcp admits the slice once it knows the new export: until then it is a 403. kcp also
    // makes a slice named after an export by itself; whichever is first, it is the same slice.
    eventually("the slice to be admitted", || async {
        match slices.create(&PostParams::default(), &slice).await {
            Ok(_) => Some(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Some(()),
            Err(kube::Error::Api(s)) if s.code == 403 => None,
            Err(e) => panic!("creating the slice: {e}"),
        }
    })
    .await;
    let pms = host.platform_meshes(NS);
    let spec = serde_json::json!({"kcp": {"providerConnections": [{
        "secret": "lonely", "path": provider.path.as_str(),
        "endpointSliceName": "lonely", "adminAuth": true}]}});
    pms.create(
        &PostParams::default(),
        &platform_mesh("lonely", LABEL, spec),
    )
    .await
    .unwrap();
    let (reason, message) =
        condition_becomes(&pms, "lonely", "ProvidersecretSubroutine", "Unknown").await;
    assert_eq!(reason, "Pending");
    assert!(message.contains("lists no endpoints"), "{message}");
    assert!(
        host.secrets(NS).get_opt("lonely").await.unwrap().is_none(),
        "no Secret while there is no endpoint"
    );

    // A workspace binds the export: the slice lists an endpoint, and the kubeconfig points
    // at it.
    let consumer = kcp.private_workspace("consumer").await;
    let binding: kcp::types::apis::ApiBinding = serde_json::from_value(serde_json::json!({
        "apiVersion": "apis.kcp.io/v1alpha2", "kind": "APIBinding",
        "metadata": {"name": "lonely"},
        "spec": {"reference": {"export": {"path": provider.path.as_str(), "name": "lonely"}}},
    }))
    .unwrap();
    Api::<kcp::types::apis::ApiBinding>::all(consumer.client())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    condition_becomes(&pms, "lonely", "ProvidersecretSubroutine", "True").await;
    let file = host.kubeconfig_file(NS, "lonely").await;
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("/services/apiexport/"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_kcp_is_an_error_condition() {
    const NS: &str = "unreachable";
    const LABEL: &str = "unreachable";
    let kcp = Kcp::shared().await;
    let host = Host::new().await;
    host.namespace(NS).await;
    let nowhere = format!("https://127.0.0.1:{}", harness::free_port());
    let kubeconfig = support::unreachable_kubeconfig(kcp, &nowhere);
    start_operator(&host, &kubeconfig, LABEL, &[]);
    let pms = host.platform_meshes(NS);
    pms.create(
        &PostParams::default(),
        &platform_mesh("nowhere", LABEL, serde_json::json!({})),
    )
    .await
    .unwrap();
    let (reason, message) = condition_becomes(&pms, "nowhere", "KcpsetupSubroutine", "False").await;
    assert_eq!(reason, "Error");
    assert!(
        message.contains("reading root's tenancy.kcp.io APIExport")
            && message.contains("will retry"),
        "{message}"
    );
}

/// A stand-in for one of Flux's CRDs: the kind, served, with any content (the HelmReleases
/// are checked as objects; Flux itself does not run here).
fn flux_crd(group: &str, version: &str, kind: &str, plural: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.to_lowercase(), "listKind": format!("{kind}List")},
            "versions": [{"name": version, "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flux_releases_follow_the_enabled_components_and_go_with_the_platform_mesh() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{DynamicObject, ListParams};
    use platform_mesh_operator::flux::{helm_release_resource, helm_repository_resource};

    const NS: &str = "flux";
    const LABEL: &str = "flux";
    let host = host_without_setup(
        NS,
        LABEL,
        &[
            "--subroutines-deployment-enabled=true",
            "--chart-version=1.2.3",
        ],
    )
    .await;
    let crds: Api<CustomResourceDefinition> = Api::all(host.workspace.client());
    for crd in [
        flux_crd(
            "helm.toolkit.fluxcd.io",
            "v2",
            "HelmRelease",
            "helmreleases",
        ),
        flux_crd(
            "source.toolkit.fluxcd.io",
            "v1",
            "HelmRepository",
            "helmrepositories",
        ),
    ] {
        let crd: CustomResourceDefinition = serde_json::from_value(crd).unwrap();
        crds.create(&PostParams::default(), &crd).await.unwrap();
    }
    let releases: Api<DynamicObject> =
        Api::namespaced_with(host.workspace.client(), NS, &helm_release_resource());
    let list = ListParams::default();
    harness::when_served(|| releases.list(&list)).await.unwrap();
    let pms = host.platform_meshes(NS);
    let spec = serde_json::json!({
        "kcp": {"providerConnections": [{"secret": "root-admin", "path": "root", "adminAuth": true}]},
        "values": {"services": {
            "rebac-authz-webhook": {"enabled": false},
            "security-operator": {"values": {"replicas": 2, "kcp": {"extra": true}}},
        }},
    });
    pms.create(&PostParams::default(), &platform_mesh("suite", LABEL, spec))
        .await
        .unwrap();
    condition_becomes(&pms, "suite", "Ready", "True").await;
    // Steps switched off say so.
    let pm = pms.get("suite").await.unwrap();
    let (status, reason, message) = condition(&pm, "KcpsetupSubroutine").unwrap();
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Skipped"));
    assert!(
        message.contains("--subroutines-kcp-setup-enabled=false"),
        "{message}"
    );
    let names = |list: Vec<DynamicObject>| {
        list.into_iter()
            .map(|o| o.metadata.name.unwrap())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(
        names(releases.list(&list).await.unwrap().items),
        BTreeSet::from([
            "account-operator".to_owned(),
            "security-operator".to_owned()
        ])
    );
    let security = releases.get("security-operator").await.unwrap();
    assert_eq!(security.data["spec"]["chart"]["spec"]["version"], "1.2.3");
    assert_eq!(
        security.data["spec"]["values"],
        serde_json::json!({"replicas": 2, "kcp": {"extra": true},
            "kubeconfigSecret": "security-operator-kubeconfig"})
    );
    let repositories: Api<DynamicObject> =
        Api::namespaced_with(host.workspace.client(), NS, &helm_repository_resource());
    assert_eq!(
        repositories.get("platform-mesh-rs").await.unwrap().data["spec"]["url"],
        "oci://ghcr.io/platform-mesh-rs/charts"
    );

    // A component switched off loses its HelmRelease.
    pms.patch(
        "suite",
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({"spec": {"values": {"services": {
            "security-operator": {"enabled": false}}}}})),
    )
    .await
    .unwrap();
    wait_gone(&releases, "security-operator").await;
    assert_eq!(
        names(releases.list(&list).await.unwrap().items),
        BTreeSet::from(["account-operator".to_owned()])
    );

    // Deleting the PlatformMesh deletes them all.
    pms.delete("suite", &DeleteParams::default()).await.unwrap();
    wait_gone(&pms, "suite").await;
    assert!(releases.list(&list).await.unwrap().items.is_empty());
    assert!(repositories.list(&list).await.unwrap().items.is_empty());
}
