//! The webhook against a real kcp that asks it (users known by static tokens, no RBAC of
//! their own), real OpenFGA, and the real account-operator and security-operator: every
//! request below goes through kcp's authorizer chain, as a user's `kubectl` would.

#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use support::{
    acme_with_team, ask, orgs_store_id, orgs_workspace, platform, post, review, start_webhook,
    store_id,
};

use axum::http::StatusCode;
use crds::Account;
use fga::platform_mesh::{ASSIGNEE, OWNER, role_object, user};
use harness::{
    AuthorizingKcp, OpenFga, TcpProxy, TestWorkspace, eventually, free_port, new_account,
    ready_account, wait_for,
};
use kube::api::{Api, PostParams};
use rebac_authz_webhook::server::{BatchQuestion, BatchRequest, BatchResponse};
use serde_json::{Value, json};

/// The HTTP status of listing Accounts in `path` as `user`.
async fn list_accounts_as(user: &str, path: &kcp::ClusterPath) -> u16 {
    let factory = AuthorizingKcp::shared().await.as_user(user).await;
    let accounts: Api<Account> = Api::all(factory.for_path(path).unwrap());
    match accounts.list(&Default::default()).await {
        Ok(_) => 200,
        Err(kube::Error::Api(status)) => status.code,
        Err(e) => panic!("listing Accounts in {path} as {user}: {e}"),
    }
}

#[tokio::test]
async fn the_owner_works_in_the_org_strangers_get_403_and_revoking_takes_effect() {
    let orgs = orgs_workspace().await;
    let (acme, team) = acme_with_team(&orgs).await;

    // alice owns acme, so team too: she lists and creates Accounts there.
    assert_eq!(list_accounts_as("alice", &team.path).await, 200);
    let alice = AuthorizingKcp::shared().await.as_user("alice").await;
    let accounts: Api<Account> = Api::all(alice.for_path(&team.path).unwrap());
    accounts
        .create(
            &PostParams::default(),
            &new_account("dev", "account", "alice"),
        )
        .await
        .unwrap();
    let admin_accounts: Api<Account> = Api::all(team.client());
    wait_for(&admin_accounts, "dev", "Ready", harness::is_ready).await;
    assert_eq!(list_accounts_as("alice", &acme.path).await, 200);

    // bob has nothing here, and no RBAC anywhere.
    assert_eq!(list_accounts_as("bob", &team.path).await, 403);
    assert_eq!(list_accounts_as("bob", &acme.path).await, 403);

    // Deleting alice's owner tuple revokes her access once kcp's 1 s cache expires.
    let store = store_id(&orgs, acme.path.base()).await;
    let owner_role = role_object(orgs.cluster.as_str(), acme.path.base(), OWNER);
    let owner = fga::tuple::Tuple::new(owner_role, ASSIGNEE, user("alice"));
    let mut fga = OpenFga::shared().await.client().await;
    let options = fga::sync::SyncOptions::default();
    let before = fga::sync::read_tuples(&mut fga, &store, None, &options)
        .await
        .unwrap();
    assert!(
        before.contains(&owner),
        "alice's owner tuple is not in {before:?}"
    );
    let revoke = fga::sync::TupleDiff {
        writes: Vec::new(),
        deletes: vec![owner],
    };
    fga::sync::apply(&mut fga, &store, &revoke, &options)
        .await
        .unwrap();
    eventually("alice's access to go with her owner tuple", || async {
        (list_accounts_as("alice", &team.path).await == 403).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_member_of_the_orgs_workspace_is_answered_from_the_orgs_store() {
    let orgs = orgs_workspace().await;
    // The orgs Store's tuples are written by the security-operator; carol's answer turns 200.
    eventually(
        "carol, a member of root:orgs, to list organisations",
        || async { (list_accounts_as("carol", &orgs.path).await == 200).then_some(()) },
    )
    .await;
    assert_eq!(list_accounts_as("bob", &orgs.path).await, 403);
}

#[tokio::test]
async fn workspaces_outside_the_orgs_and_unknown_ones_get_no_opinion() {
    let authz = AuthorizingKcp::shared().await;
    platform().await;
    // A workspace that does not bind the export: the webhook has no opinion, kcp's RBAC
    // (which grants alice nothing) refuses.
    let outside = authz.kcp.private_workspace("outside").await;
    assert_eq!(list_accounts_as("alice", &outside.path).await, 403);

    // Asked directly: an unknown workspace is retried once (503, Retry-After), then answered
    // NoOpinion, without waiting on anything.
    let unknown = format!("unknown{}", harness::unique_suffix());
    let body =
        serde_json::to_vec(&review("alice", &unknown, "list", "", "configmaps", "")).unwrap();
    let (status, text) = post(authz.webhook_address(), "/authz", &body).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert_eq!(text, "", "a retry has no body");
    let (allowed, denied, reason) = ask(
        authz.webhook_address(),
        &review("alice", &unknown, "list", "", "configmaps", ""),
    )
    .await;
    assert!(!allowed && !denied);
    assert!(reason.contains("is not known"), "{reason}");
}

#[tokio::test]
async fn openfga_down_is_no_opinion_within_the_timeout_and_counted() {
    let platform = platform().await;
    let orgs = orgs_workspace().await;
    let (_, team) = acme_with_team(&orgs).await;
    let proxy = TcpProxy::to(OpenFga::shared().await.grpc_address()).await;
    let address = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let (webhook, metrics) = start_webhook(
        "rebac-authz-webhook-proxied",
        &platform.kubeconfig,
        address,
        &proxy.address.to_string(),
        &["--openfga-timeout=1s"],
    )
    .await;
    let question = review(
        "alice",
        team.cluster.as_str(),
        "list",
        "core.platform-mesh.io",
        "accounts",
        "",
    );
    // Its reflectors may still be engaging team: the first answers may be a retry.
    eventually("alice allowed through the proxied webhook", || async {
        ask(address, &question).await.0.then_some(())
    })
    .await;

    proxy.set_cut(true);
    let (allowed, denied, reason) = ask(address, &question).await;
    assert!(!allowed && !denied);
    assert!(reason.contains("OpenFGA"), "{reason}");
    proxy.set_cut(false);

    let (_, text) = harness::http_get(metrics, "/metrics").await.unwrap();
    let errors = text
        .lines()
        .find(|l| {
            l.starts_with(
                "rebac_authz_webhook_openfga_check_duration_seconds_count{result=\"error\"}",
            )
        })
        .unwrap_or_else(|| panic!("no error count in\n{text}"));
    assert!(errors.ends_with(" 1"), "{errors}");
    webhook.stop();
}

#[tokio::test]
async fn hostile_reviews_get_clear_answers() {
    let authz = AuthorizingKcp::shared().await;
    platform().await;
    let address = authz.webhook_address();
    let orgs = orgs_workspace().await;
    orgs_store_id(&orgs).await;
    // In the orgs workspace, whose store is known: every answer below is deterministic.
    let orgs_cluster = orgs.cluster.as_str();
    let list_accounts = review(
        "alice",
        orgs_cluster,
        "list",
        "core.platform-mesh.io",
        "accounts",
        "",
    );
    let mut many_groups = list_accounts.clone();
    many_groups["spec"]["groups"] = json!((0..10_000).map(|i| format!("g{i}")).collect::<Vec<_>>());
    let mut beta = list_accounts;
    beta["apiVersion"] = json!("authorization.k8s.io/v1beta1");
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "empty",
            Vec::new(),
            StatusCode::BAD_REQUEST,
            "the body is empty",
        ),
        (
            "not json",
            b"{{{".to_vec(),
            StatusCode::BAD_REQUEST,
            "the body is not JSON",
        ),
        (
            "wrong kind",
            br#"{"apiVersion":"authorization.k8s.io/v1","kind":"TokenReview"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
            "kind \"TokenReview\"",
        ),
        (
            "over 1 MiB",
            vec![b' '; (1 << 20) + 1],
            StatusCode::PAYLOAD_TOO_LARGE,
            "the body is over 1048576 bytes",
        ),
    ];
    for (what, body, status, message) in cases {
        let (got, text) = post(address, "/authz", &body).await;
        assert_eq!(got, status, "{what}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(answer["status"]["allowed"], false, "{what}");
        let error = answer["status"]["evaluationError"].as_str().unwrap();
        assert!(error.starts_with(message), "{what}: {error}");
    }

    for (what, question, reason) in [
        (
            "missing cluster",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                   "spec": {"user": "alice", "resourceAttributes": {"verb": "get"}}}),
            "the review has no extra",
        ),
        (
            "wrong cluster key",
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                   "spec": {"user": "alice", "extra": {"cluster": ["x"]},
                            "resourceAttributes": {"verb": "get"}}}),
            "the review has no extra",
        ),
        (
            "absurd user",
            review(
                &"ü".repeat(100_000),
                orgs_cluster,
                "get",
                "",
                "configmaps",
                "x",
            ),
            "over OpenFGA's limit of 512",
        ),
        (
            "whitespace and unicode",
            review("ålice smith", orgs_cluster, "get", "", "configmaps", "x"),
            "contains whitespace",
        ),
        (
            "10,000 groups",
            many_groups,
            "the orgs store does not allow it",
        ),
        ("v1beta1", beta.clone(), "the orgs store does not allow it"),
    ] {
        let (allowed, denied, got) = ask(address, &question).await;
        assert!(!allowed && !denied, "{what}");
        assert!(got.contains(reason), "{what}: {got}");
    }
    let (_, text) = post(address, "/authz", &serde_json::to_vec(&beta).unwrap()).await;
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["apiVersion"], "authorization.k8s.io/v1beta1");
}

#[tokio::test]
async fn a_batch_answers_many_questions_for_one_user() {
    let authz = AuthorizingKcp::shared().await;
    let orgs = orgs_workspace().await;
    let (acme, team) = acme_with_team(&orgs).await;
    let question = |workspace: &kcp::ClusterPath, verb: &str, name: &str| BatchQuestion {
        workspace: workspace.to_string(),
        verb: verb.into(),
        group: "core.platform-mesh.io".into(),
        resource: "accounts".into(),
        name: name.into(),
        ..BatchQuestion::default()
    };
    let batch = BatchRequest {
        user: "alice".into(),
        groups: Vec::new(),
        questions: vec![
            question(&team.path, "list", ""),
            question(&team.path, "create", ""),
            question(&acme.path, "delete", "team"),
            question(&"root:orgs:nowhere".parse().unwrap(), "list", ""),
            BatchQuestion {
                workspace: "not a path".into(),
                ..question(&team.path, "list", "")
            },
            // A group the workspace does not serve: its discovery says so.
            BatchQuestion {
                group: "example.io".into(),
                resource: "widgets".into(),
                ..question(&team.path, "get", "w")
            },
        ],
    };
    // The webhook may not have engaged the new workspaces yet.
    let body = serde_json::to_vec(&batch).unwrap();
    let answers = eventually("alice's first three answers allowed", || async {
        let (status, text) = post(authz.webhook_address(), "/authz/batch", &body).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let answers = serde_json::from_str::<BatchResponse>(&text)
            .unwrap()
            .answers;
        answers[..3].iter().all(|a| a.allowed).then_some(answers)
    })
    .await;
    let allowed: Vec<bool> = answers.iter().map(|a| a.allowed).collect();
    assert_eq!(
        allowed,
        [true, true, true, false, false, false],
        "{answers:#?}"
    );
    assert!(
        answers[3].reason.contains("is not known"),
        "{}",
        answers[3].reason
    );
    assert!(
        answers[4].reason.contains("not a path"),
        "{}",
        answers[4].reason
    );
    assert!(
        answers[5].reason.contains("serves no resource \"widgets\""),
        "{}",
        answers[5].reason
    );

    let bob = BatchRequest {
        user: "bob".into(),
        ..batch
    };
    let (_, text) = post(
        authz.webhook_address(),
        "/authz/batch",
        &serde_json::to_vec(&bob).unwrap(),
    )
    .await;
    let answers = serde_json::from_str::<BatchResponse>(&text)
        .unwrap()
        .answers;
    assert!(answers.iter().all(|a| !a.allowed), "{answers:#?}");
}

/// A service account `binder` of `workspace`, which kcp's RBAC there lets create
/// APIBindings; clients authenticated by its token.
async fn binder(workspace: &TestWorkspace) -> kcp::ClientFactory {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{
        ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
    };
    let client = workspace.client();
    let post = PostParams::default();
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    let mut account = ServiceAccount::default();
    account.metadata.name = Some("binder".into());
    accounts.create(&post, &account).await.unwrap();
    let mut role = ClusterRole::default();
    role.metadata.name = Some("binder".into());
    role.rules = Some(vec![PolicyRule {
        api_groups: Some(vec!["apis.kcp.io".into()]),
        resources: Some(vec!["apibindings".into()]),
        verbs: vec!["create".into(), "get".into()],
        ..PolicyRule::default()
    }]);
    Api::<ClusterRole>::all(client.clone())
        .create(&post, &role)
        .await
        .unwrap();
    let mut binding = ClusterRoleBinding::default();
    binding.metadata.name = Some("binder".into());
    binding.role_ref = RoleRef {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "ClusterRole".into(),
        name: "binder".into(),
    };
    binding.subjects = Some(vec![Subject {
        kind: "ServiceAccount".into(),
        name: "binder".into(),
        namespace: Some("default".into()),
        ..Subject::default()
    }]);
    Api::<ClusterRoleBinding>::all(client)
        .create(&post, &binding)
        .await
        .unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: None,
            expiration_seconds: Some(3600),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request("binder", &post, &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
        .unwrap();
    let name = format!("binder-{}", workspace.cluster);
    AuthorizingKcp::shared()
        .await
        .with_token(&name, &token)
        .await
}

#[tokio::test]
async fn binds_follow_the_api_export_policies() {
    use crds::api_export_policy::{ApiExportPolicy, ApiExportPolicySpec, ApiExportRef};
    use kcp::types::apis::ApiBinding;
    let authz = AuthorizingKcp::shared().await;
    let orgs = orgs_workspace().await;
    let (acme, team) = acme_with_team(&orgs).await;
    let (_, other) = ready_account(&acme, "other", "account", "dave").await;
    let provider = harness::widget_provider(&authz.kcp).await;

    // A policy lets acme:team, and only it, bind the widgets.
    let policy = ApiExportPolicy::new(
        &format!("widgets-{}", acme.path.base()),
        ApiExportPolicySpec {
            api_export_ref: ApiExportRef {
                name: harness::WIDGETS_EXPORT.into(),
                cluster_path: provider.path.to_string(),
            },
            allow_path_expressions: vec![team.path.to_string()],
        },
    );
    Api::<ApiExportPolicy>::all(orgs.client())
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let store = store_id(&orgs, acme.path.base()).await;
    let export = format!(
        "{}:{}/{}",
        fga::platform_mesh::API_EXPORT_TYPE,
        provider.cluster,
        harness::WIDGETS_EXPORT
    );
    let grant = fga::tuple::Tuple::new(
        fga::platform_mesh::account_object(acme.cluster.as_str(), "team"),
        "bind",
        export,
    );
    let fga = OpenFga::shared().await.client().await;
    eventually("the security-operator's bind tuple", || async {
        let tuples = fga::sync::read_tuples(&mut fga.clone(), &store, None, &Default::default())
            .await
            .unwrap();
        tuples.contains(&grant).then_some(())
    })
    .await;

    // Service accounts of the consumer workspaces bind (kcp names their workspace in the
    // review, as the group system:cluster:<cluster>); kcp's RBAC gives neither a bind.
    let binding = harness::widgets_binding(&provider);
    let team_sa = binder(&team).await;
    let bindings: Api<ApiBinding> = Api::all(team_sa.for_path(&team.path).unwrap());
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    wait_for(
        &Api::<ApiBinding>::all(team.client()),
        "widgets",
        "Ready",
        ApiBinding::is_ready,
    )
    .await;

    let other_sa = binder(&other).await;
    let bindings: Api<ApiBinding> = Api::all(other_sa.for_path(&other.path).unwrap());
    match bindings.create(&PostParams::default(), &binding).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "{status:?}");
            assert!(
                status.message.contains("no permission to bind"),
                "{}",
                status.message
            );
        }
        other => panic!("acme:other bound the widgets without a policy: {other:?}"),
    }
}

#[tokio::test]
async fn a_store_re_created_with_a_new_id_is_followed() {
    use kcp::types::core::{LOGICAL_CLUSTER_NAME, LogicalCluster};
    use kube::api::{DeleteParams, Patch, PatchParams};
    let orgs = orgs_workspace().await;
    let (acme, team) = acme_with_team(&orgs).await;
    eventually("alice listing Accounts in team", || async {
        (list_accounts_as("alice", &team.path).await == 200).then_some(())
    })
    .await;
    let old = store_id(&orgs, acme.path.base()).await;

    // The Store goes, with its OpenFGA store: no store, no answer but NoOpinion.
    let stores: Api<crds::Store> = Api::all(orgs.client());
    stores
        .delete(acme.path.base(), &DeleteParams::default())
        .await
        .unwrap();
    harness::wait_gone(&stores, acme.path.base()).await;
    eventually("alice refused while acme has no store", || async {
        (list_accounts_as("alice", &team.path).await == 403).then_some(())
    })
    .await;

    // The security-operator re-applies the initializers' work when the workspaces change:
    // a new store, with a new id, and the tuples again.
    let poke = json!({"metadata": {"annotations": {"test.platform-mesh.io/poke": "1"}}});
    for workspace in [&acme, &team] {
        Api::<LogicalCluster>::all(workspace.client())
            .patch(
                LOGICAL_CLUSTER_NAME,
                &PatchParams::default(),
                &Patch::Merge(&poke),
            )
            .await
            .unwrap();
    }
    let new = store_id(&orgs, acme.path.base()).await;
    assert_ne!(new, old);
    eventually(
        "alice listing Accounts in team through the new store",
        || async { (list_accounts_as("alice", &team.path).await == 200).then_some(()) },
    )
    .await;
}
