#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use kcp::types::core::{LogicalClusterOwner, LogicalClusterSpec};
use kube::core::ObjectMeta;

use super::*;

fn orgs() -> ClusterPath {
    "root:orgs".parse().unwrap()
}

fn logical(path: Option<&str>, owner: Option<(&str, &str)>) -> LogicalCluster {
    LogicalCluster {
        metadata: ObjectMeta {
            name: Some(LOGICAL_CLUSTER_NAME.into()),
            annotations: path.map(|p| BTreeMap::from([(PATH_ANNOTATION.to_owned(), p.to_owned())])),
            ..ObjectMeta::default()
        },
        spec: LogicalClusterSpec {
            owner: owner.map(|(cluster, name)| LogicalClusterOwner {
                cluster: cluster.into(),
                name: name.into(),
                ..LogicalClusterOwner::default()
            }),
            ..LogicalClusterSpec::default()
        },
        status: None,
    }
}

fn stores(org: &str) -> Result<String, String> {
    match org {
        "acme" => Ok("store-acme".into()),
        other => Err(format!("there is no Store {other} in root:orgs")),
    }
}

#[test]
fn an_org_workspace_has_its_orgs_store_and_its_account_in_the_parent() {
    let team = logical(Some("root:orgs:acme:team"), Some(("acmecluster", "team")));
    assert_eq!(
        classify(Some(&team), &orgs(), stores),
        Workspace::Tenant(Tenant {
            store: "store-acme".into(),
            account: "core_platform-mesh_io_account:acmecluster/team".into(),
        })
    );
    let org = logical(Some("root:orgs:acme"), Some(("orgscluster", "acme")));
    assert_eq!(
        classify(Some(&org), &orgs(), stores),
        Workspace::Tenant(Tenant {
            store: "store-acme".into(),
            account: "core_platform-mesh_io_account:orgscluster/acme".into(),
        })
    );
}

#[test]
fn what_is_missing_is_said() {
    assert_eq!(classify(None, &orgs(), stores), Workspace::Unknown);
    for (path, expected) in [
        ("root:orgs", Workspace::Outside),
        ("root:orgsx:acme", Workspace::Outside),
        ("root:providers:p", Workspace::Outside),
        (
            "root:orgs:globex:team",
            Workspace::Pending("there is no Store globex in root:orgs".into()),
        ),
    ] {
        let cluster = logical(Some(path), Some(("parent", "team")));
        assert_eq!(
            classify(Some(&cluster), &orgs(), stores),
            expected,
            "{path}"
        );
    }
    let no_owner = logical(Some("root:orgs:acme:team"), None);
    assert_eq!(
        classify(Some(&no_owner), &orgs(), stores),
        Workspace::Pending("root:orgs:acme:team has no owner".into())
    );
    let no_path = logical(None, Some(("parent", "team")));
    assert_eq!(
        classify(Some(&no_path), &orgs(), stores),
        Workspace::Pending("its LogicalCluster has no kcp.io/path".into())
    );
}

#[test]
fn retries_are_counted_per_workspace_per_period() {
    let limits = RetryLimits {
        max_retries: 2,
        ttl: Duration::from_secs(300),
        cleanup_interval: Duration::from_secs(120),
    };
    let mut misses = Misses::new(limits);
    let (a, b): (ClusterName, ClusterName) = ("a".parse().unwrap(), "b".parse().unwrap());
    let start = Instant::now();
    assert!(misses.allow(&a, start));
    assert!(misses.allow(&a, start));
    assert!(!misses.allow(&a, start + Duration::from_secs(10)));
    // Another workspace counts on its own.
    assert!(misses.allow(&b, start + Duration::from_secs(10)));
    // A hit does not extend the period: it ends 300 s after the first retry.
    assert!(!misses.allow(&a, start + Duration::from_secs(299)));
    assert!(misses.allow(&a, start + Duration::from_secs(300)));

    assert!(misses.clean(start + Duration::from_secs(300)));
    assert!(
        !misses.clean(start + Duration::from_secs(301)),
        "once per interval"
    );
    // b's period (from 10 s) expires at 310 s; a's restarted at 300 s.
    assert!(misses.clean(start + Duration::from_secs(420)));
    assert_eq!(misses.counts.len(), 1);
    assert!(misses.counts.contains_key(&a));
}
