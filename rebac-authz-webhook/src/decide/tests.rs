#![allow(clippy::unwrap_used)]

use std::cell::Cell;
use std::collections::HashMap;

use super::*;

const ORGS: &str = "orgscluster";
const TEAM: &str = "teamcluster";
const OUTSIDE: &str = "othercluster";
const PENDING: &str = "newcluster";
const KEY: &str = "authorization.kubernetes.io/cluster-name";
const TEAM_ACCOUNT: &str = "core_platform-mesh_io_account:acmecluster/team";

/// A view with `root:orgs`, the workspace `root:orgs:acme:team` (store `acme-store`),
/// a workspace outside the orgs, and one whose store is not known yet.
struct Fake {
    orgs_store: Option<String>,
    resources: HashMap<(&'static str, &'static str), ResourceInfo>,
    retries_left: Cell<u32>,
}

impl Fake {
    fn new() -> Self {
        let info = |singular: &str, scope| ResourceInfo {
            singular: singular.to_owned(),
            scope,
        };
        Self {
            orgs_store: Some("orgs-store".into()),
            resources: [
                (
                    ("core.platform-mesh.io", "accounts"),
                    info("account", ResourceScope::Cluster),
                ),
                (
                    ("", "configmaps"),
                    info("configmap", ResourceScope::Namespaced),
                ),
                (
                    ("", "namespaces"),
                    info("namespace", ResourceScope::Cluster),
                ),
            ]
            .into(),
            retries_left: Cell::new(1),
        }
    }
}

impl View for Fake {
    fn orgs_cluster(&self) -> Option<ClusterName> {
        Some(ORGS.parse().unwrap())
    }
    fn orgs_store(&self) -> Option<String> {
        self.orgs_store.clone()
    }
    fn workspace(&self, cluster: &ClusterName) -> Workspace {
        match cluster.as_str() {
            TEAM => Workspace::Tenant(Tenant {
                store: "acme-store".into(),
                account: TEAM_ACCOUNT.into(),
            }),
            OUTSIDE => Workspace::Outside,
            PENDING => Workspace::Pending("the Store acme has no store ID yet".into()),
            _ => Workspace::Unknown,
        }
    }
    fn resource(&self, _: &ClusterName, group: &str, resource: &str) -> Option<ResourceInfo> {
        self.resources
            .iter()
            .find(|((g, r), _)| *g == group && *r == resource)
            .map(|(_, info)| info.clone())
    }
    fn may_retry(&self, _: &ClusterName) -> bool {
        let left = self.retries_left.get();
        self.retries_left.set(left.saturating_sub(1));
        left > 0
    }
}

fn rules() -> Rules {
    Rules {
        cluster_key: KEY.into(),
        allowed_nonresource_prefixes: vec!["/api".into(), "/version".into()],
        retry_after: Duration::from_secs(1),
        deny_unpermitted_binds: false,
    }
}

fn ask(
    cluster: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Question {
    Question {
        user: "alice@acme.example".into(),
        groups: vec!["system:authenticated".into()],
        extra: [(KEY.to_owned(), vec![cluster.to_owned()])].into(),
        resource: Some(ResourceRequest {
            verb: verb.into(),
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }),
        non_resource_path: None,
    }
}

fn tuple(user: &str, relation: &str, object: &str) -> Tuple {
    Tuple::new(user, relation, object)
}

fn expect_check(question: &Question, view: &Fake) -> (Handler, Check) {
    match plan(question, &rules(), view) {
        (handler, Plan::Check(check)) => (handler, check),
        other => panic!("expected a check, got {other:?}"),
    }
}

fn expect_answer(question: &Question, rules: &Rules, view: &Fake) -> (Handler, Decision) {
    match plan(question, rules, view) {
        (handler, Plan::Answer(decision)) => (handler, decision),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn non_resource_paths_are_allowed_by_prefix_and_otherwise_have_no_opinion() {
    let view = Fake::new();
    let path = |p: &str| Question {
        non_resource_path: Some(p.into()),
        ..Question::default()
    };
    let (handler, decision) = expect_answer(&path("/apis/apps/v1"), &rules(), &view);
    assert_eq!(handler, Handler::NonResource);
    assert!(matches!(decision, Decision::Allow(r) if r.contains("/api")));
    let (_, decision) = expect_answer(&path("/metrics"), &rules(), &view);
    assert!(matches!(decision, Decision::NoOpinion(r) if r.contains("/metrics")));
    let (handler, decision) = expect_answer(&Question::default(), &rules(), &view);
    assert_eq!(handler, Handler::Review);
    assert!(matches!(decision, Decision::NoOpinion(r) if r.contains("neither")));
}

#[test]
fn a_review_without_a_usable_cluster_has_no_opinion() {
    let view = Fake::new();
    let mut question = ask(TEAM, "get", "", "configmaps", "default", "x");
    question.extra.clear();
    let (_, decision) = expect_answer(&question, &rules(), &view);
    assert_eq!(
        decision,
        Decision::NoOpinion(format!("the review has no extra[{KEY}]"))
    );
    question
        .extra
        .insert(KEY.into(), vec!["Not A Cluster".into()]);
    let (_, decision) = expect_answer(&question, &rules(), &view);
    assert!(matches!(decision, Decision::NoOpinion(r) if r.contains("not a logical cluster")));
    let mut question = ask(TEAM, "get", "", "configmaps", "default", "x");
    question.user.clear();
    let (_, decision) = expect_answer(&question, &rules(), &view);
    assert_eq!(
        decision,
        Decision::NoOpinion("the review names no user".into())
    );
}

#[test]
fn requests_in_the_orgs_workspace_are_checked_in_the_orgs_store() {
    let mut view = Fake::new();
    let (handler, check) = expect_check(
        &ask(ORGS, "create", "core.platform-mesh.io", "accounts", "", ""),
        &view,
    );
    assert_eq!(handler, Handler::Orgs);
    assert_eq!(check.store, "orgs-store");
    assert_eq!(
        check.tuple,
        tuple(
            "user:alice@acme.example",
            "create_core_platform-mesh_io_accounts",
            "tenancy_kcp_io_workspace:orgs"
        )
    );
    assert!(matches!(check.decide(true), Decision::Allow(_)));
    assert!(matches!(check.decide(false), Decision::NoOpinion(_)));

    view.orgs_store = None;
    let (_, decision) = expect_answer(
        &ask(ORGS, "list", "core.platform-mesh.io", "accounts", "", ""),
        &rules(),
        &view,
    );
    assert!(matches!(decision, Decision::NoOpinion(r) if r.contains("orgs Store")));
}

#[test]
fn collection_verbs_are_checked_on_the_parent() {
    let view = Fake::new();
    let (handler, check) = expect_check(
        &ask(TEAM, "list", "core.platform-mesh.io", "accounts", "", ""),
        &view,
    );
    assert_eq!(handler, Handler::Contextual);
    assert_eq!(check.store, "acme-store");
    assert_eq!(
        check.tuple,
        tuple(
            "user:alice@acme.example",
            "list_core_platform-mesh_io_accounts",
            TEAM_ACCOUNT
        )
    );
    assert!(check.contextual.is_empty());

    let (_, check) = expect_check(&ask(TEAM, "create", "", "configmaps", "default", ""), &view);
    let namespace = "core_namespace:teamcluster/default";
    assert_eq!(
        check.tuple,
        tuple(
            "user:alice@acme.example",
            "create_core_configmaps",
            namespace
        )
    );
    assert_eq!(check.contextual, [tuple(TEAM_ACCOUNT, "parent", namespace)]);

    let (_, decision) = expect_answer(
        &ask(TEAM, "list", "", "configmaps", "", ""),
        &rules(),
        &view,
    );
    assert!(matches!(decision, Decision::NoOpinion(r) if r.contains("across every namespace")));
}

#[test]
fn object_verbs_are_checked_on_the_object_with_its_parents_as_context() {
    let view = Fake::new();
    let (_, check) = expect_check(
        &ask(
            TEAM,
            "delete",
            "core.platform-mesh.io",
            "accounts",
            "",
            "dev",
        ),
        &view,
    );
    let account = "core_platform-mesh_io_account:teamcluster/dev";
    assert_eq!(
        check.tuple,
        tuple("user:alice@acme.example", "delete", account)
    );
    assert_eq!(check.contextual, [tuple(TEAM_ACCOUNT, "parent", account)]);

    let (_, check) = expect_check(&ask(TEAM, "get", "", "configmaps", "default", "cm"), &view);
    let (namespace, object) = (
        "core_namespace:teamcluster/default",
        "core_configmap:teamcluster/cm",
    );
    assert_eq!(check.tuple, tuple("user:alice@acme.example", "get", object));
    assert_eq!(
        check.contextual,
        [
            tuple(TEAM_ACCOUNT, "parent", namespace),
            tuple(namespace, "parent", object)
        ]
    );

    for (verb, name, reason) in [
        (
            "impersonate",
            "x",
            "the verb \"impersonate\" is not modelled",
        ),
        ("get", "", "get of configmaps names no object"),
    ] {
        let (_, decision) = expect_answer(
            &ask(TEAM, verb, "", "configmaps", "default", name),
            &rules(),
            &view,
        );
        assert_eq!(decision, Decision::NoOpinion(reason.into()));
    }
    let (_, decision) = expect_answer(
        &ask(TEAM, "get", "example.io", "widgets", "", "w"),
        &rules(),
        &view,
    );
    assert!(
        matches!(decision, Decision::NoOpinion(r) if r.contains("serves no resource \"widgets\""))
    );
}

#[test]
fn a_workspace_not_known_yet_is_retried_then_has_no_opinion() {
    let view = Fake::new();
    for cluster in ["unknowncluster", PENDING] {
        let view = Fake::new();
        let question = ask(cluster, "get", "", "configmaps", "default", "x");
        let (_, first) = expect_answer(&question, &rules(), &view);
        assert_eq!(first, Decision::Retry(Duration::from_secs(1)));
        let (_, second) = expect_answer(&question, &rules(), &view);
        assert!(
            matches!(second, Decision::NoOpinion(r) if r.contains(cluster)),
            "{cluster}"
        );
    }
    let (_, decision) = expect_answer(
        &ask(OUTSIDE, "get", "", "configmaps", "default", "x"),
        &rules(),
        &view,
    );
    assert!(matches!(decision, Decision::NoOpinion(r) if r.contains("not an organisation's")));
    // An outside workspace uses no retry.
    assert_eq!(view.retries_left.get(), 1);
}

#[test]
fn binds_ask_whether_the_consumer_account_may_bind_the_export() {
    let view = Fake::new();
    let mut question = ask(
        "providercluster",
        "bind",
        "apis.kcp.io",
        "apiexports",
        "",
        "widgets.example.io",
    );
    question
        .groups
        .push(format!("{CONSUMER_GROUP_PREFIX}{TEAM}"));
    let (handler, check) = expect_check(&question, &view);
    assert_eq!(handler, Handler::Bind);
    assert_eq!(check.store, "acme-store");
    assert_eq!(
        check.tuple,
        tuple(
            "apis_kcp_io_apiexport:providercluster/widgets.example.io",
            "bind",
            TEAM_ACCOUNT
        )
    );
    assert!(matches!(check.decide(false), Decision::NoOpinion(_)));
    let strict = Rules {
        deny_unpermitted_binds: true,
        ..rules()
    };
    let (_, Plan::Check(check)) = plan(&question, &strict, &view) else {
        panic!("expected a check");
    };
    assert!(matches!(check.decide(false), Decision::Deny(r) if r.contains("APIExportPolicy")));
    assert!(matches!(check.decide(true), Decision::Allow(_)));

    let no_consumer = ask(
        "providercluster",
        "bind",
        "apis.kcp.io",
        "apiexports",
        "",
        "w",
    );
    let (_, decision) = expect_answer(&no_consumer, &rules(), &view);
    assert!(matches!(decision, Decision::NoOpinion(r) if r.contains("system:cluster:")));

    let mut unknown = no_consumer.clone();
    unknown
        .groups
        .push(format!("{CONSUMER_GROUP_PREFIX}unknowncluster"));
    let (_, decision) = expect_answer(&unknown, &rules(), &view);
    assert_eq!(decision, Decision::Retry(Duration::from_secs(1)));

    // `bind` outside apis.kcp.io is an ordinary verb.
    let (handler, _) = plan(
        &ask(
            TEAM,
            "bind",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            "x",
        ),
        &rules(),
        &view,
    );
    assert_eq!(handler, Handler::Contextual);
}

#[test]
fn tuples_openfga_would_refuse_are_not_sent() {
    let view = Fake::new();
    let mut question = ask(TEAM, "get", "", "configmaps", "default", "x");
    question.user = "a".repeat(600);
    let (_, decision) = expect_answer(&question, &rules(), &view);
    assert!(
        matches!(decision, Decision::NoOpinion(r) if r.contains("over OpenFGA's limit of 512"))
    );
    let question = ask(TEAM, "get", "", "configmaps", "default", "two words");
    let (_, decision) = expect_answer(&question, &rules(), &view);
    assert!(matches!(decision, Decision::NoOpinion(r) if r.contains("whitespace")));
    let question = ask(TEAM, "get", "", "configmaps", "default", &"n".repeat(300));
    let (_, decision) = expect_answer(&question, &rules(), &view);
    assert!(matches!(decision, Decision::NoOpinion(r) if r.contains("object")));
}
