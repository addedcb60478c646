//! The security-operator with the account-operator, on real kcp and OpenFGA: org and account
//! workspaces are initialized with exactly the reference tuples, OpenFGA answers as the model
//! says, deletion tears down in order, and bad input ends in conditions that say why.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use crds::authorization_model::{AuthorizationModel, AuthorizationModelSpec, StoreRef};
use crds::{Account, Store, StoreSpec};
use fga::platform_mesh::{CoreModuleVariant, account_object, core_module};
use fga::store::{StoreOptions, list_stores_named};
use harness::{OpenFga, TestWorkspace, unique_suffix, wait_for, wait_gone};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kcp::types::core::{LOGICAL_CLUSTER_NAME, LogicalCluster};
use kcp::types::tenancy::Workspace;
use kube::api::{Api, DeleteParams, PostParams};
use support::{check, platform, ready_account, store_id, tuples};

const ACCOUNT: &str = "core_platform-mesh_io_account";

fn owner_tuples(cluster: &str, name: &str, user: &str) -> Vec<String> {
    let role = format!("role:{ACCOUNT}/{cluster}/{name}/owner");
    vec![
        format!("{role}#assignee@user:{user}"),
        format!("{ACCOUNT}:{cluster}/{name}#owner@{role}#assignee"),
    ]
}

fn parent_tuple(cluster: &str, name: &str, parent: &str) -> String {
    format!("{ACCOUNT}:{cluster}/{name}#parent@{parent}")
}

#[tokio::test]
async fn an_org_and_a_three_level_tree_get_exactly_the_reference_tuples() {
    let platform = platform().await;
    let orgs = platform.orgs().await;
    let org = format!("acme-{}", unique_suffix());
    let acme = ready_account(&orgs, &org, "org", "alice@example.com").await;
    // Ready means kcp released the workspace: our initializer is gone from it.
    let logical: LogicalCluster = Api::all(acme.client())
        .get(LOGICAL_CLUSTER_NAME)
        .await
        .unwrap();
    let initializers = logical.status.unwrap().initializers;
    assert!(
        !initializers.iter().any(|i| i == "root:security"),
        "{initializers:?}"
    );

    let team = ready_account(&acme, "team", "account", "bob@example.com").await;
    ready_account(&team, "dev", "account", "carol:ops").await;
    let store = store_id(&orgs, &org).await;

    let (orgs_c, acme_c, team_c) = (
        orgs.cluster.as_str(),
        acme.cluster.as_str(),
        team.cluster.as_str(),
    );
    let mut expected: BTreeSet<String> = BTreeSet::new();
    expected.extend(owner_tuples(orgs_c, &org, "alice@example.com"));
    expected.extend(owner_tuples(acme_c, "team", "bob@example.com"));
    expected.insert(parent_tuple(acme_c, "team", &account_object(orgs_c, &org)));
    // A ':' in a user name becomes '.', the one escaping the webhook uses too.
    expected.extend(owner_tuples(team_c, "dev", "carol.ops"));
    expected.insert(parent_tuple(team_c, "dev", &account_object(acme_c, "team")));
    assert_eq!(tuples(&store).await, expected);

    // The model decides: ownership flows down the tree, not up, and not across orgs.
    let team_obj = account_object(acme_c, "team");
    let dev_obj = account_object(team_c, "dev");
    let acme_obj = account_object(orgs_c, &org);
    assert!(check(&store, "user:alice@example.com", "get", &team_obj).await);
    assert!(check(&store, "user:alice@example.com", "delete", &dev_obj).await);
    assert!(check(&store, "user:bob@example.com", "get", &dev_obj).await);
    assert!(!check(&store, "user:bob@example.com", "get", &acme_obj).await);
    assert!(!check(&store, "user:carol.ops", "get", &team_obj).await);

    let globex = format!("globex-{}", unique_suffix());
    ready_account(&orgs, &globex, "org", "gina@example.com").await;
    let globex_store = store_id(&orgs, &globex).await;
    assert_ne!(globex_store, store);
    assert!(!check(&store, "user:gina@example.com", "get", &team_obj).await);
    assert!(
        check(
            &globex_store,
            "user:gina@example.com",
            "get",
            &account_object(orgs_c, &globex)
        )
        .await
    );
}

#[tokio::test]
async fn deleting_an_account_and_then_an_org_with_descendants_leaves_nothing() {
    let platform = platform().await;
    let orgs = platform.orgs().await;
    let org = format!("initech-{}", unique_suffix());
    let initech = ready_account(&orgs, &org, "org", "peter@example.com").await;
    let team = ready_account(&initech, "team", "account", "peter@example.com").await;
    ready_account(&team, "dev", "account", "milton@example.com").await;
    let store = store_id(&orgs, &org).await;
    assert_eq!(tuples(&store).await.len(), 8);

    // An account: its tuples go, then its workspace.
    let team_accounts: Api<Account> = Api::all(team.client());
    team_accounts
        .delete("dev", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&team_accounts, "dev").await;
    let team_workspaces: Api<Workspace> = Api::all(team.client());
    wait_gone(&team_workspaces, "dev").await;
    let left = tuples(&store).await;
    assert_eq!(left.len(), 5, "{left:#?}");
    assert!(left.iter().all(|t| !t.contains("/dev")), "{left:#?}");

    // The org with a descendant: completes, and leaves no store, no tuple, no workspace.
    let org_accounts: Api<Account> = Api::all(orgs.client());
    org_accounts
        .delete(&org, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&org_accounts, &org).await;
    wait_gone(&Api::<Workspace>::all(orgs.client()), &org).await;
    wait_gone(&Api::<Store>::all(orgs.client()), &org).await;
    let mut client = OpenFga::shared().await.client().await;
    let left = list_stores_named(&mut client, &org, &StoreOptions::default())
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");

    // Re-created under the same name, it starts clean: the old owner has no access.
    ready_account(&orgs, &org, "org", "joanna@example.com").await;
    let fresh = store_id(&orgs, &org).await;
    assert_ne!(fresh, store);
    let org_obj = account_object(orgs.cluster.as_str(), &org);
    assert!(!check(&fresh, "user:peter@example.com", "get", &org_obj).await);
    assert!(check(&fresh, "user:joanna@example.com", "get", &org_obj).await);
    assert_eq!(tuples(&fresh).await.len(), 2);
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Waits until the Store's condition `type_` is False with `reason`; returns its message.
async fn store_refused(stores: &Api<Store>, name: &str, type_: &str, reason: &str) -> String {
    let store = wait_for(stores, name, reason, |s| {
        s.status
            .as_ref()
            .and_then(|s| condition(&s.conditions, type_))
            .is_some_and(|c| c.status == "False" && c.reason == reason)
    })
    .await;
    condition(&store.status.unwrap().conditions, type_)
        .unwrap()
        .message
        .clone()
}

fn store(name: &str, core: &str, tuples: Vec<crds::Tuple>) -> Store {
    Store::new(
        name,
        StoreSpec {
            core_module: core.into(),
            tuples: Some(tuples),
        },
    )
}

fn core() -> String {
    core_module(CoreModuleVariant::HelmChart).to_dsl().unwrap()
}

#[tokio::test]
async fn bad_input_ends_in_a_condition_with_a_reason_and_nothing_else_breaks() {
    let platform = platform().await;
    let orgs = platform.orgs().await;
    let stores: Api<Store> = Api::all(orgs.client());
    let sfx = unique_suffix();
    let post = PostParams::default();

    let bad_core = format!("bad-core-{sfx}");
    stores
        .create(&post, &store(&bad_core, "module core\n\ntype", vec![]))
        .await
        .unwrap();
    let message = store_refused(
        &stores,
        &bad_core,
        "AuthorizationModelSubroutine",
        "InvalidCoreModule",
    )
    .await;
    assert!(message.contains("core.fga"), "{message}");

    let bad_tuple = format!("bad-tuple-{sfx}");
    let tuple = crds::Tuple {
        object: format!("{ACCOUNT}:c/x"),
        relation: "owner".into(),
        user: "not a user".into(),
    };
    stores
        .create(&post, &store(&bad_tuple, &core(), vec![tuple]))
        .await
        .unwrap();
    let message = store_refused(&stores, &bad_tuple, "TupleSubroutine", "InvalidTuple").await;
    assert!(message.contains("not a user"), "{message}");

    let long = format!("long-{sfx}-{}", "x".repeat(64));
    stores
        .create(&post, &store(&long, &core(), vec![]))
        .await
        .unwrap();
    let message = store_refused(&stores, &long, "StoreSubroutine", "RejectedByOpenFGA").await;
    assert!(message.contains(&long), "{message}");

    let models: Api<AuthorizationModel> = Api::all(orgs.client());
    let orphan = format!("orphan-{sfx}");
    let model = AuthorizationModel::new(
        &orphan,
        AuthorizationModelSpec {
            store_ref: StoreRef {
                name: format!("nowhere-{sfx}"),
                cluster: "root:orgs".into(),
                path: None,
            },
            model: "module orphan\n\ntype orphan_thing\n".into(),
            tuples: None,
        },
    );
    models.create(&post, &model).await.unwrap();
    wait_for(&models, &orphan, "StoreNotFound", |m| {
        m.status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "ModuleSubroutine"))
            .is_some_and(|c| c.status == "False" && c.reason == "StoreNotFound")
    })
    .await;

    // Nothing else broke: a good Store next to them works.
    let good = format!("good-{sfx}");
    stores
        .create(&post, &store(&good, &core(), vec![]))
        .await
        .unwrap();
    wait_for(&stores, &good, "Ready", |s| {
        s.status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "Ready"))
            .is_some_and(|c| c.status == "True")
    })
    .await;
}

#[tokio::test]
async fn a_store_in_a_tenant_workspace_has_no_effect() {
    let platform = platform().await;
    let orgs = platform.orgs().await;
    let org = format!("umbrella-{}", unique_suffix());
    let tenant: TestWorkspace = ready_account(&orgs, &org, "org", "albert@example.com").await;
    let store_id = store_id(&orgs, &org).await;
    let before = tuples(&store_id).await;

    // The tenant names a Store after its org and lists a tuple making mallory the owner.
    let role = format!("role:{ACCOUNT}/{}/{org}/owner", orgs.cluster.as_str());
    let grab = crds::Tuple {
        object: role,
        relation: "assignee".into(),
        user: "user:mallory@example.com".into(),
    };
    let stores: Api<Store> = Api::all(tenant.client());
    stores
        .create(&PostParams::default(), &store(&org, &core(), vec![grab]))
        .await
        .unwrap();
    let message = store_refused(&stores, &org, "StoreSubroutine", "NotInOrgsWorkspace").await;
    assert!(message.contains("root:orgs"), "{message}");

    let mut client = OpenFga::shared().await.client().await;
    let named = list_stores_named(&mut client, &org, &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(tuples(&store_id).await, before);
    let org_obj = account_object(orgs.cluster.as_str(), &org);
    assert!(!check(&store_id, "user:mallory@example.com", "get", &org_obj).await);

    // Nor does an AuthorizationModel there: not composed, its tuple not written.
    let role = format!("role:{ACCOUNT}/{}/{org}/owner", orgs.cluster.as_str());
    let models: Api<AuthorizationModel> = Api::all(tenant.client());
    let sneaky = AuthorizationModel::new(
        "sneaky",
        AuthorizationModelSpec {
            store_ref: StoreRef {
                name: org.clone(),
                cluster: "root:orgs".into(),
                path: None,
            },
            model: "module sneaky\n\ntype sneaky_thing\n".into(),
            tuples: Some(vec![crds::Tuple {
                object: role,
                relation: "assignee".into(),
                user: "user:mallory@example.com".into(),
            }]),
        },
    );
    models
        .create(&PostParams::default(), &sneaky)
        .await
        .unwrap();
    wait_for(&models, "sneaky", "InTenantWorkspace", |m| {
        m.status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "ModuleSubroutine"))
            .is_some_and(|c| c.status == "False" && c.reason == "InTenantWorkspace")
    })
    .await;
    assert_eq!(tuples(&store_id).await, before);
    assert!(
        !model_types(&store_id)
            .await
            .contains(&"sneaky_thing".to_owned())
    );
}

/// The type names of a store's latest model.
async fn model_types(store_id: &str) -> Vec<String> {
    let mut client = OpenFga::shared().await.client().await;
    fga::store::latest_model(&mut client, store_id, &StoreOptions::default())
        .await
        .unwrap()
        .map(|m| {
            m.model
                .type_definitions
                .into_iter()
                .map(|t| t.type_name)
                .collect()
        })
        .unwrap_or_default()
}

fn module_condition(model: &AuthorizationModel) -> Option<&Condition> {
    condition(&model.status.as_ref()?.conditions, "ModuleSubroutine")
}

#[tokio::test]
async fn a_provider_export_bound_in_two_orgs_gets_a_module_per_org_and_a_clash_stays_contained() {
    let platform = platform().await;
    let orgs = platform.orgs().await;
    let provider = harness::widget_provider(harness::Kcp::shared().await).await;
    let sfx = unique_suffix();
    let (one, two) = (format!("wone-{sfx}"), format!("wtwo-{sfx}"));
    let org_one = ready_account(&orgs, &one, "org", "alice@example.com").await;
    let org_two = ready_account(&orgs, &two, "org", "bob@example.com").await;
    harness::bind_widgets(&provider, &org_one).await;
    harness::bind_widgets(&provider, &org_two).await;

    // One module per org, in the provider's workspace, each extending its org's store.
    let models: Api<AuthorizationModel> = Api::all(provider.client());
    for org in [&one, &two] {
        let name = format!("example-io-widgets-{org}");
        let model = wait_for(&models, &name, "its module in force", |m| {
            module_condition(m).is_some_and(|c| c.status == "True")
        })
        .await;
        assert_eq!(model.spec.store_ref.name, *org);
        assert_eq!(model.spec.store_ref.cluster, orgs.cluster.as_str());
        let store = store_id(&orgs, org).await;
        harness::eventually("the widget type in the model", || async {
            model_types(&store)
                .await
                .contains(&"example_io_widget".to_owned())
                .then_some(())
        })
        .await;
    }

    // The generated module works: alice owns org one, so she may get its widgets.
    let store_one = store_id(&orgs, &one).await;
    let widget = format!("example_io_widget:{}/w1", org_one.cluster.as_str());
    let mut client = OpenFga::shared().await.client().await;
    let parent = fga::Tuple::new(
        &widget,
        "parent",
        account_object(orgs.cluster.as_str(), &one),
    );
    fga::sync::apply(
        &mut client,
        &store_one,
        &fga::sync::TupleDiff {
            writes: vec![parent],
            deletes: Vec::new(),
        },
        &fga::sync::SyncOptions::default(),
    )
    .await
    .unwrap();
    assert!(check(&store_one, "user:alice@example.com", "get", &widget).await);
    assert!(!check(&store_one, "user:bob@example.com", "get", &widget).await);

    // A newer module that redefines the widget type is left out and says so; the org keeps
    // its model and its checks.
    let clash = format!("clash-{sfx}");
    let clashing = AuthorizationModel::new(
        &clash,
        AuthorizationModelSpec {
            store_ref: StoreRef {
                name: one.clone(),
                cluster: "root:orgs".into(),
                path: None,
            },
            model: "module clash\n\ntype example_io_widget\n".into(),
            tuples: None,
        },
    );
    models
        .create(&PostParams::default(), &clashing)
        .await
        .unwrap();
    let refused = wait_for(&models, &clash, "ModuleRejected", |m| {
        module_condition(m).is_some_and(|c| c.status == "False" && c.reason == "ModuleRejected")
    })
    .await;
    let message = &module_condition(&refused).unwrap().message;
    assert!(message.contains("example_io_widget"), "{message}");
    let stores: Api<Store> = Api::all(orgs.client());
    wait_for(&stores, &one, "the clash in its status", |s| {
        s.status
            .as_ref()
            .is_some_and(|s| s.rejected_modules.iter().any(|r| r.name == clash))
    })
    .await;
    assert!(check(&store_one, "user:alice@example.com", "get", &widget).await);
    let generated = models
        .get(&format!("example-io-widgets-{one}"))
        .await
        .unwrap();
    assert_eq!(module_condition(&generated).unwrap().status, "True");

    // The org's last binding goes: so does its module; the other org's stays.
    let bindings: Api<kcp::types::apis::ApiBinding> = Api::all(org_two.client());
    bindings
        .delete("widgets", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&models, &format!("example-io-widgets-{two}")).await;
    assert!(
        models
            .get_opt(&format!("example-io-widgets-{one}"))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn a_tuple_deleted_behind_the_operators_back_comes_back() {
    let platform = platform().await;
    let orgs = platform.orgs().await;
    let org = format!("hooli-{}", unique_suffix());
    let hooli = ready_account(&orgs, &org, "org", "gavin@example.com").await;
    let team = ready_account(&hooli, "team", "account", "gavin@example.com").await;
    let store = store_id(&orgs, &org).await;
    let before = tuples(&store).await;
    assert_eq!(before.len(), 5);

    let parent = fga::Tuple::new(
        account_object(hooli.cluster.as_str(), "team"),
        "parent",
        account_object(orgs.cluster.as_str(), &org),
    );
    // Deleted until it is seen gone: a reconcile still under way from the account's creation
    // (a late change of its LogicalCluster) may write it back at once, as a CI run saw.
    let client = OpenFga::shared().await.client().await;
    let without: BTreeSet<String> = before
        .iter()
        .filter(|t| **t != parent.to_string())
        .cloned()
        .collect();
    assert_eq!(without.len(), 4);
    harness::eventually("the parent tuple deleted", || async {
        fga::sync::apply(
            &mut client.clone(),
            &store,
            &fga::sync::TupleDiff {
                writes: Vec::new(),
                deletes: vec![parent.clone()],
            },
            &fga::sync::SyncOptions::default(),
        )
        .await
        .unwrap();
        (tuples(&store).await == without).then_some(())
    })
    .await;

    // Any change to the account's LogicalCluster brings the operator back to it.
    let clusters: Api<LogicalCluster> = Api::all(team.client());
    let poke =
        serde_json::json!({"metadata": {"annotations": {"test.platform-mesh.io/poke": "1"}}});
    clusters
        .patch(
            LOGICAL_CLUSTER_NAME,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&poke),
        )
        .await
        .unwrap();
    harness::eventually("the parent tuple back", || async {
        (tuples(&store).await == before).then_some(())
    })
    .await;
}

fn policy(name: &str, provider: &TestWorkspace, expressions: &[String]) -> crds::ApiExportPolicy {
    crds::ApiExportPolicy::new(
        name,
        crds::ApiExportPolicySpec {
            api_export_ref: crds::api_export_policy::ApiExportRef {
                name: "widgets.example.io".into(),
                cluster_path: provider.path.to_string(),
            },
            allow_path_expressions: expressions.to_vec(),
        },
    )
}

#[tokio::test]
async fn an_api_export_policy_grants_bind_to_the_accounts_it_names() {
    let platform = platform().await;
    let orgs = platform.orgs().await;
    let provider = harness::widget_provider(harness::Kcp::shared().await).await;
    let org = format!("pol-{}", unique_suffix());
    let pol = ready_account(&orgs, &org, "org", "ada@example.com").await;
    ready_account(&pol, "team", "account", "ada@example.com").await;
    let store = store_id(&orgs, &org).await;
    let exporter = format!(
        "apis_kcp_io_apiexport:{}/widgets.example.io",
        provider.cluster.as_str()
    );
    let org_obj = account_object(orgs.cluster.as_str(), &org);
    let team_obj = account_object(pol.cluster.as_str(), "team");
    let grants = || async {
        tuples(&store)
            .await
            .into_iter()
            .filter(|t| t.ends_with(&exporter))
            .collect::<BTreeSet<String>>()
    };

    // Exactly the org: bind on it, not on its team.
    let policies: Api<crds::ApiExportPolicy> = Api::all(orgs.client());
    let name = format!("widgets-{org}");
    let exact = vec![format!("root:orgs:{org}")];
    policies
        .create(&PostParams::default(), &policy(&name, &provider, &exact))
        .await
        .unwrap();
    let bind = format!("{org_obj}#bind@{exporter}");
    harness::eventually("the bind tuple", || async {
        (grants().await == BTreeSet::from([bind.clone()])).then_some(())
    })
    .await;
    assert!(check(&store, &exporter, "bind", &org_obj).await);
    assert!(!check(&store, &exporter, "bind", &team_obj).await);

    // The org and everything below it: the old tuple goes, the team may bind too.
    let mut subtree = policies.get(&name).await.unwrap();
    subtree.spec.allow_path_expressions = vec![format!("root:orgs:{org}:*")];
    policies
        .replace(&name, &PostParams::default(), &subtree)
        .await
        .unwrap();
    let inherited = format!("{org_obj}#bind_inherited@{exporter}");
    harness::eventually("the bind_inherited tuple alone", || async {
        (grants().await == BTreeSet::from([inherited.clone()])).then_some(())
    })
    .await;
    assert!(check(&store, &exporter, "bind", &team_obj).await);

    // Deleted: no grant is left.
    policies
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&policies, &name).await;
    assert!(grants().await.is_empty());
    assert!(!check(&store, &exporter, "bind", &team_obj).await);

    // An expression outside root:orgs is refused with a reason.
    let bad = format!("bad-{org}");
    policies
        .create(
            &PostParams::default(),
            &policy(&bad, &provider, &["root:elsewhere:x".to_owned()]),
        )
        .await
        .unwrap();
    wait_for(&policies, &bad, "InvalidPathExpression", |p| {
        p.status
            .as_ref()
            .and_then(|s| condition(&s.conditions, "ApiExportPolicySubroutine"))
            .is_some_and(|c| c.status == "False" && c.reason == "InvalidPathExpression")
    })
    .await;

    // A policy naming an account that does not exist yet: the account has its grant the
    // moment it is Ready, from the initializer.
    let later = format!("later-{org}");
    let expression = vec![format!("root:orgs:{org}:newteam")];
    policies
        .create(
            &PostParams::default(),
            &policy(&later, &provider, &expression),
        )
        .await
        .unwrap();
    wait_for(&policies, &later, "its expressions managed", |p| {
        p.status
            .as_ref()
            .is_some_and(|s| s.managed_allow_expressions == expression)
    })
    .await;
    ready_account(&pol, "newteam", "account", "ada@example.com").await;
    let newteam_obj = account_object(pol.cluster.as_str(), "newteam");
    assert_eq!(
        grants().await,
        BTreeSet::from([format!("{newteam_obj}#bind@{exporter}")])
    );
    assert!(check(&store, &exporter, "bind", &newteam_obj).await);
}

#[tokio::test]
async fn the_built_in_modules_cover_exactly_what_an_org_workspace_serves() {
    use fga::platform_mesh::{BUILTIN_PRIVILEGED_RESOURCES, BUILTIN_RESOURCES, ResourceScope};
    use kube::discovery::{Discovery, Scope};
    let platform = platform().await;
    let orgs = platform.orgs().await;
    let org = format!("disco-{}", unique_suffix());
    let workspace = ready_account(&orgs, &org, "org", "dora@example.com").await;
    let versions = [
        ("", "v1"),
        ("authentication.k8s.io", "v1"),
        ("authorization.k8s.io", "v1"),
        ("apis.kcp.io", "v1alpha1"),
        ("rbac.authorization.k8s.io", "v1"),
    ];
    let groups: Vec<&str> = versions.iter().map(|(g, _)| *g).collect();
    let discovery = Discovery::new(workspace.client())
        .filter(&groups)
        .run()
        .await
        .unwrap();
    let mut served = BTreeSet::new();
    for group in discovery.groups() {
        let Some((_, version)) = versions.iter().find(|(g, _)| *g == group.name()) else {
            continue;
        };
        for (resource, capabilities) in group.versioned_resources(version) {
            let namespaced = capabilities.scope == Scope::Namespaced;
            served.insert((resource.group.clone(), resource.plural.clone(), namespaced));
        }
    }
    let modelled: BTreeSet<(String, String, bool)> = BUILTIN_RESOURCES
        .iter()
        .chain(BUILTIN_PRIVILEGED_RESOURCES)
        .map(|(group, plural, _, scope)| {
            (
                (*group).to_owned(),
                (*plural).to_owned(),
                *scope == ResourceScope::Namespaced,
            )
        })
        .collect();
    assert_eq!(modelled, served);
}
