//! A bounded fuzz run over the request decoder and the handlers: whatever arrives, the answer
//! is an error response or a decision, never a panic, and no Check carries a tuple OpenFGA
//! would refuse.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, header};
use fga::platform_mesh::ResourceScope;
use kcp::ClusterName;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rebac_authz_webhook::decide::{Plan, ResourceInfo, Rules, Tenant, View, Workspace, plan};
use rebac_authz_webhook::review::decode;
use serde_json::{Value, json};

const KEY: &str = "authorization.kubernetes.io/cluster-name";

/// Every workspace is an org's; every resource is known, namespaced when its name is even.
struct Everything;

impl View for Everything {
    fn orgs_cluster(&self) -> Option<ClusterName> {
        Some("orgs".parse().unwrap())
    }
    fn orgs_store(&self) -> Option<String> {
        Some("orgs-store".into())
    }
    fn workspace(&self, cluster: &ClusterName) -> Workspace {
        Workspace::Tenant(Tenant {
            store: "store".into(),
            account: format!("core_platform-mesh_io_account:parent/{cluster}"),
        })
    }
    fn resource(&self, _: &ClusterName, _: &str, resource: &str) -> Option<ResourceInfo> {
        Some(ResourceInfo {
            singular: resource.trim_end_matches('s').to_owned(),
            scope: match resource.len() % 2 {
                0 => ResourceScope::Namespaced,
                _ => ResourceScope::Cluster,
            },
        })
    }
    fn may_retry(&self, _: &ClusterName) -> bool {
        false
    }
}

fn rules() -> Rules {
    Rules {
        cluster_key: KEY.into(),
        allowed_nonresource_prefixes: vec!["/api".into()],
        retry_after: Duration::from_secs(1),
        deny_unpermitted_binds: true,
    }
}

fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

/// Decodes and plans `body`; fails if a Check carries a tuple OpenFGA would refuse.
fn answer(body: &[u8]) -> Result<(), TestCaseError> {
    let Ok(review) = decode(&headers(), body) else {
        return Ok(());
    };
    if let (_, Plan::Check(check)) = plan(&review.question, &rules(), &Everything) {
        for tuple in std::iter::once(&check.tuple).chain(&check.contextual) {
            prop_assert!(tuple.user.len() <= 512, "{tuple}");
            prop_assert!(tuple.object.len() <= 256, "{tuple}");
            prop_assert!(tuple.relation.len() <= 50, "{tuple}");
            prop_assert!(
                !tuple.to_string().chars().any(char::is_whitespace),
                "{tuple}"
            );
        }
    }
    Ok(())
}

/// Any string: unicode, whitespace, control characters, absurd lengths.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9.:@/-]{0,24}",
        1 => any::<String>(),
        1 => "\\PC{0,8}".prop_map(|s| s.repeat(200)),
        1 => Just(String::new()),
    ]
}

fn review() -> impl Strategy<Value = Value> {
    let resource = (text(), text(), text(), text(), text(), text()).prop_map(
        |(verb, group, version, resource, namespace, name)| {
            json!({ "verb": verb, "group": group, "version": version, "resource": resource,
                    "namespace": namespace, "name": name })
        },
    );
    (
        prop_oneof![
            Just("authorization.k8s.io/v1"),
            Just("authorization.k8s.io/v1beta1")
        ],
        text(),
        prop::collection::vec(text(), 0..4),
        prop_oneof![Just(KEY.to_owned()), text()],
        prop::collection::vec(text(), 0..3),
        prop::option::of(resource),
        prop::option::of(text()),
    )
        .prop_map(|(version, user, groups, key, clusters, resource, path)| {
            let mut spec = json!({ "user": user, "groups": groups, "extra": { key: clusters } });
            if let Some(resource) = resource {
                spec["resourceAttributes"] = resource;
            }
            if let Some(path) = path {
                spec["nonResourceAttributes"] = json!({ "path": path, "verb": "get" });
            }
            json!({ "apiVersion": version, "kind": "SubjectAccessReview", "spec": spec })
        })
}

#[test]
fn arbitrary_bytes_never_panic_the_decoder() {
    let mut runner = TestRunner::new(Config::with_cases(2000));
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..2048), |bytes| {
            answer(&bytes)
        })
        .unwrap();
}

#[test]
fn arbitrary_reviews_get_a_decision_and_only_valid_checks() {
    let mut runner = TestRunner::new(Config::with_cases(3000));
    runner
        .run(&review(), |review| {
            answer(&serde_json::to_vec(&review).unwrap())
        })
        .unwrap();
}

#[test]
fn ten_thousand_groups_are_answered() {
    let mut groups: Vec<String> = (0..10_000).map(|i| format!("group-{i}")).collect();
    groups.push("system:cluster:consumer".into());
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "alice",
            "groups": groups,
            "extra": { KEY: ["provider"] },
            "resourceAttributes": { "verb": "bind", "group": "apis.kcp.io",
                                    "resource": "apiexports", "name": "widgets" }
        }
    });
    let review = decode(&headers(), &serde_json::to_vec(&review).unwrap()).unwrap();
    let (_, Plan::Check(check)) = plan(&review.question, &rules(), &Everything) else {
        panic!("expected a check");
    };
    assert_eq!(check.tuple.user, "apis_kcp_io_apiexport:provider/widgets");
    assert_eq!(
        check.tuple.object,
        "core_platform-mesh_io_account:parent/consumer"
    );
}
