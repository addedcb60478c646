//! Tuple sync, store helpers and the Platform Mesh model against a real
//! `openfga run` (memory datastore), one server for this test binary and one
//! store per test.

// A failed unwrap in a test is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use fga::Tuple;
use fga::compose::{ModuleFile, compose};
use fga::model::AuthorizationModel;
use fga::platform_mesh::{
    CoreModuleVariant, ResourceModule, ResourceScope, core_module, orgs_module,
};
use fga::store::{
    StoreOptions, choose_store, find_or_create_store, find_store, latest_model, list_stores_named,
    write_model, write_model_if_changed,
};
use fga::sync::{ConflictMode, Current, SyncOptions, read_tuples, sync_tuples};
use fga::tuple::ReadFilter;
use openfga_client::client::{
    CheckRequest, CheckRequestTupleKey, CreateStoreRequest, OpenFgaServiceClient,
};
use support::{client, data_dir, new_store, sorted_entries};
use tonic::transport::Channel;

const DOC_MODEL: &str = "model
  schema 1.1
type user
type doc
  relations
    define viewer: [user]
";

async fn store_with_doc_model(service: &mut OpenFgaServiceClient<Channel>, prefix: &str) -> String {
    let store_id = new_store(service, prefix).await;
    let model = fga::dsl::parse_model(DOC_MODEL).unwrap();
    write_model(service, &store_id, &model, &StoreOptions::default())
        .await
        .unwrap();
    store_id
}

fn doc_tuples(prefix: &str, range: std::ops::Range<usize>) -> Vec<Tuple> {
    range
        .map(|i| {
            Tuple::new(
                format!("doc:{prefix}{i:05}"),
                "viewer",
                format!("user:u{}", i % 97),
            )
        })
        .collect()
}

async fn contents(service: &mut OpenFgaServiceClient<Channel>, store_id: &str) -> BTreeSet<Tuple> {
    read_tuples(service, store_id, None, &SyncOptions::default())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn sorted(tuples: &[Tuple]) -> Vec<Tuple> {
    let mut tuples = tuples.to_vec();
    tuples.sort();
    tuples
}

#[tokio::test]
async fn sync_of_ten_thousand_tuples_then_a_ten_percent_change() {
    let mut service = client().await;
    let store_id = store_with_doc_model(&mut service, "sync-10k").await;
    let options = SyncOptions::default();

    let first = doc_tuples("a", 0..10_000);
    let report = sync_tuples(
        &mut service,
        &store_id,
        &first,
        Current::Store(None),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(report.current, 0);
    assert_eq!(report.written, sorted(&first));
    assert!(report.deleted.is_empty());
    assert_eq!(report.write_requests, 100);
    let stored = contents(&mut service, &store_id).await;
    assert_eq!(stored, first.iter().cloned().collect());

    // 10 percent: drop 500, add 500.
    let removed: Vec<Tuple> = first.iter().step_by(20).cloned().collect();
    let added = doc_tuples("b", 0..500);
    let removed_set: BTreeSet<&Tuple> = removed.iter().collect();
    let mut second: Vec<Tuple> = first
        .iter()
        .filter(|t| !removed_set.contains(t))
        .cloned()
        .collect();
    second.extend(added.iter().cloned());
    let report = sync_tuples(
        &mut service,
        &store_id,
        &second,
        Current::Store(None),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(report.current, 10_000);
    assert_eq!(report.deleted, sorted(&removed));
    assert_eq!(report.written, sorted(&added));
    assert_eq!(report.write_requests, 10, "1000 changes in requests of 100");
    assert!(!report.fell_back_to_tolerate);
    let stored = contents(&mut service, &store_id).await;
    assert_eq!(stored, second.iter().cloned().collect());

    // Idempotent: nothing to do the second time.
    let again = sync_tuples(
        &mut service,
        &store_id,
        &second,
        Current::Store(None),
        &options,
    )
    .await
    .unwrap();
    assert!(again.is_noop(), "{again:?}");
    assert_eq!(again.write_requests, 0);
}

#[tokio::test]
async fn writing_existing_and_deleting_missing_tuples_does_not_fail() {
    let mut service = client().await;
    let store_id = store_with_doc_model(&mut service, "sync-idem").await;
    let existing = doc_tuples("a", 0..150);
    let options = SyncOptions::default();
    sync_tuples(
        &mut service,
        &store_id,
        &existing,
        Current::Managed(&[]),
        &options,
    )
    .await
    .unwrap();

    // A stale managed set: it misses a0..a149 (so all are written again) and
    // claims z0..z49 (never written, so their deletes are of missing tuples).
    let stale = doc_tuples("z", 0..50);
    let report = sync_tuples(
        &mut service,
        &store_id,
        &existing,
        Current::Managed(&stale),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(report.written, sorted(&existing));
    assert_eq!(report.deleted, sorted(&stale));
    assert!(
        !report.fell_back_to_tolerate,
        "the server honours on_duplicate/on_missing"
    );
    assert_eq!(
        contents(&mut service, &store_id).await,
        existing.iter().cloned().collect()
    );

    // The same without the options: the server's own "already exists" /
    // "does not exist" answers are recognised and the offending tuples skipped.
    let tolerate = SyncOptions {
        conflict_mode: ConflictMode::Tolerate,
        ..SyncOptions::default()
    };
    let mut desired = existing.clone();
    desired.extend(doc_tuples("c", 0..7));
    let report = sync_tuples(
        &mut service,
        &store_id,
        &desired,
        Current::Managed(&stale),
        &tolerate,
    )
    .await
    .unwrap();
    assert_eq!(report.already_present, sorted(&existing));
    assert_eq!(report.already_absent, sorted(&stale));
    assert_eq!(report.written, doc_tuples("c", 0..7));
    assert!(report.deleted.is_empty());
    assert_eq!(
        contents(&mut service, &store_id).await,
        desired.iter().cloned().collect()
    );
}

#[tokio::test]
async fn a_filtered_sync_only_touches_its_object() {
    let mut service = client().await;
    let store_id = store_with_doc_model(&mut service, "sync-filter").await;
    let all = doc_tuples("a", 0..5);
    sync_tuples(
        &mut service,
        &store_id,
        &all,
        Current::Managed(&[]),
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    let filter = ReadFilter::object("doc:a00001");
    let report = sync_tuples(
        &mut service,
        &store_id,
        &[],
        Current::Store(Some(&filter)),
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.deleted, vec![all[1].clone()]);
    let mut expected: BTreeSet<Tuple> = all.iter().cloned().collect();
    expected.remove(&all[1]);
    assert_eq!(contents(&mut service, &store_id).await, expected);
}

#[tokio::test]
async fn an_invalid_tuple_fails_with_the_store_named() {
    let mut service = client().await;
    let store_id = store_with_doc_model(&mut service, "sync-invalid").await;
    let error = sync_tuples(
        &mut service,
        &store_id,
        &[Tuple::new("folder:x", "viewer", "user:a")],
        Current::Managed(&[]),
        &SyncOptions::default(),
    )
    .await
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&store_id), "{message}");
    assert!(message.contains("folder"), "{message}");
    assert!(!fga::api::is_transient(error.status().unwrap()));
}

#[tokio::test]
async fn find_or_create_pages_through_duplicates_and_chooses_deterministically() {
    let mut service = client().await;
    let name = format!("dup-{}", harness::unique_suffix());
    let small_pages = StoreOptions {
        list_page_size: 2,
        ..StoreOptions::default()
    };
    assert!(
        find_store(&mut service, &name, &small_pages)
            .await
            .unwrap()
            .is_none()
    );
    let first = find_or_create_store(&mut service, &name, &small_pages)
        .await
        .unwrap();
    assert!(first.created);

    // Names are not unique: make four more stores of the same name, and
    // others with similar names.
    for _ in 0..4 {
        service
            .create_store(CreateStoreRequest { name: name.clone() })
            .await
            .unwrap();
    }
    service
        .create_store(CreateStoreRequest {
            name: format!("{name}-other"),
        })
        .await
        .unwrap();
    let all = list_stores_named(&mut service, &name, &small_pages)
        .await
        .unwrap();
    assert_eq!(all.len(), 5, "every page read");
    assert!(all.iter().all(|s| s.name == name));

    let again = find_or_create_store(&mut service, &name, &small_pages)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.store.id, first.store.id, "the oldest store");
    assert_eq!(choose_store(all.clone(), &name).unwrap().id, first.store.id);
    let mut reversed = all;
    reversed.reverse();
    assert_eq!(choose_store(reversed, &name).unwrap().id, first.store.id);
    let default_pages = find_store(&mut service, &name, &StoreOptions::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(default_pages.id, first.store.id);
}

fn platform_mesh_files(extra: bool) -> Vec<ModuleFile> {
    use ResourceScope::{Cluster, Namespaced};
    let mut modules = vec![
        ("acme", core_module(CoreModuleVariant::HelmChart)),
        (
            "internal_core_types_namespaces",
            ResourceModule::new("", "namespaces", "namespace", Cluster).build(),
        ),
        (
            "internal_core_types_apiexports",
            ResourceModule::new("apis.kcp.io", "apiexports", "apiexport", Cluster).build(),
        ),
        (
            "internal_core_types_configmaps",
            ResourceModule::new("", "configmaps", "configmap", Namespaced).build(),
        ),
    ];
    if extra {
        modules.push((
            "internal_core_types_roles",
            ResourceModule::new("rbac.authorization.k8s.io", "roles", "role", Namespaced)
                .privileged()
                .build(),
        ));
    }
    modules
        .into_iter()
        .map(|(stem, module)| module.to_file(stem).unwrap())
        .collect()
}

fn platform_mesh_model(extra: bool) -> AuthorizationModel {
    let (model, errors) = compose(&platform_mesh_files(extra));
    assert!(errors.is_empty(), "{errors:?}");
    model
}

#[tokio::test]
async fn a_model_is_written_once_and_again_only_when_it_changes() {
    let mut service = client().await;
    let store_id = new_store(&mut service, "model").await;
    let options = StoreOptions::default();
    assert!(
        latest_model(&mut service, &store_id, &options)
            .await
            .unwrap()
            .is_none()
    );

    let model = platform_mesh_model(false);
    let first = write_model_if_changed(&mut service, &store_id, &model, &options)
        .await
        .unwrap();
    assert!(first.written);
    assert_eq!(first.reason.as_deref(), Some("the store has no model"));
    let latest = latest_model(&mut service, &store_id, &options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.id, first.id);
    assert!(fga::diff::semantically_equal(&latest.model, &model));

    // Reordered: types reversed, and the module files composed in another order.
    let mut reordered = model.clone();
    reordered.type_definitions.reverse();
    let same = write_model_if_changed(&mut service, &store_id, &reordered, &options)
        .await
        .unwrap();
    assert!(!same.written);
    assert_eq!(same.id, first.id);
    let mut files = platform_mesh_files(false);
    files[1..].reverse();
    let (recomposed, errors) = compose(&files);
    assert!(errors.is_empty());
    let same = write_model_if_changed(&mut service, &store_id, &recomposed, &options)
        .await
        .unwrap();
    assert!(!same.written);

    // Changed: one more generated module.
    let changed = write_model_if_changed(
        &mut service,
        &store_id,
        &platform_mesh_model(true),
        &options,
    )
    .await
    .unwrap();
    assert!(changed.written);
    assert_ne!(changed.id, first.id);
    assert!(
        changed
            .reason
            .unwrap()
            .contains("rbac_authorization_k8s_io_role")
    );
    let latest = latest_model(&mut service, &store_id, &options)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.id, changed.id);
}

fn account(cluster: &str, name: &str) -> String {
    format!("core_platform-mesh_io_account:{cluster}/{name}")
}

fn role(cluster: &str, account: &str, role: &str) -> String {
    format!("role:core_platform-mesh_io_account/{cluster}/{account}/{role}")
}

/// The tuples the security-operator writes for an account (openfga.md §6.4):
/// the owner role's assignee, the account's owner, and the parent link.
fn account_tuples(
    cluster: &str,
    name: &str,
    creator: &str,
    parent: Option<(&str, &str)>,
) -> Vec<Tuple> {
    let owner_role = role(cluster, name, "owner");
    let mut tuples = vec![
        Tuple::new(&owner_role, "assignee", format!("user:{creator}")),
        Tuple::new(
            account(cluster, name),
            "owner",
            format!("{owner_role}#assignee"),
        ),
    ];
    if let Some((parent_cluster, parent_name)) = parent {
        tuples.push(Tuple::new(
            account(cluster, name),
            "parent",
            account(parent_cluster, parent_name),
        ));
    }
    tuples
}

async fn check(
    service: &mut OpenFgaServiceClient<Channel>,
    store_id: &str,
    user: &str,
    relation: &str,
    object: &str,
) -> bool {
    service
        .check(CheckRequest {
            store_id: store_id.to_owned(),
            tuple_key: Some(CheckRequestTupleKey {
                user: format!("user:{user}"),
                relation: relation.to_owned(),
                object: object.to_owned(),
            }),
            ..CheckRequest::default()
        })
        .await
        .unwrap_or_else(|e| panic!("check {user} {relation} {object}: {e}"))
        .into_inner()
        .allowed
}

#[tokio::test]
async fn the_platform_mesh_model_behaves_on_the_server() {
    let mut service = client().await;
    let store_id = new_store(&mut service, "pm").await;
    write_model_if_changed(
        &mut service,
        &store_id,
        &platform_mesh_model(false),
        &StoreOptions::default(),
    )
    .await
    .unwrap();

    // Org acme (in the orgs cluster), its child team, its grandchild sub;
    // another org globex. Workspace cluster ids: acme's is "acmec", team's "teamc".
    let mut tuples = account_tuples("orgsc", "acme", "alice", None);
    tuples.extend(account_tuples(
        "acmec",
        "team",
        "bob",
        Some(("orgsc", "acme")),
    ));
    tuples.extend(account_tuples(
        "teamc",
        "sub",
        "bob",
        Some(("acmec", "team")),
    ));
    tuples.extend(account_tuples("orgsc", "globex", "dave", None));
    // carol is a member of team through a member role.
    let member_role = role("acmec", "team", "member");
    tuples.push(Tuple::new(&member_role, "assignee", "user:carol"));
    tuples.push(Tuple::new(
        account("acmec", "team"),
        "member",
        format!("{member_role}#assignee"),
    ));
    // A namespace in team's workspace (a generated type).
    tuples.push(Tuple::new(
        "core_namespace:teamc/default",
        "parent",
        account("acmec", "team"),
    ));
    let report = sync_tuples(
        &mut service,
        &store_id,
        &tuples,
        Current::Store(None),
        &SyncOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.written.len(), tuples.len());

    let (acme, team, sub, globex) = (
        account("orgsc", "acme"),
        account("acmec", "team"),
        account("teamc", "sub"),
        account("orgsc", "globex"),
    );
    let namespace = "core_namespace:teamc/default";
    let s = &mut service;
    let id = store_id.as_str();

    // The org owner owns (and is a member of) every account below.
    for object in [&acme, &team, &sub] {
        for relation in ["owner", "member", "get", "delete", "manage_iam_roles"] {
            assert!(
                check(s, id, "alice", relation, object).await,
                "alice {relation} {object}"
            );
        }
    }
    assert!(check(s, id, "alice", "get", namespace).await);
    assert!(check(s, id, "alice", "delete", namespace).await);
    // The child's owner owns the child and grandchild, not the org.
    assert!(check(s, id, "bob", "owner", &team).await);
    assert!(check(s, id, "bob", "owner", &sub).await);
    assert!(!check(s, id, "bob", "owner", &acme).await);
    assert!(!check(s, id, "bob", "get", &acme).await);
    // A member may get but not delete, and membership is not inherited downward.
    assert!(check(s, id, "carol", "member", &team).await);
    assert!(check(s, id, "carol", "get", &team).await);
    assert!(check(s, id, "carol", "list_core_platform-mesh_io_accounts", &team).await);
    assert!(!check(s, id, "carol", "delete", &team).await);
    assert!(!check(s, id, "carol", "owner", &team).await);
    assert!(!check(s, id, "carol", "manage_iam_roles", &team).await);
    assert!(!check(s, id, "carol", "member", &sub).await);
    assert!(!check(s, id, "carol", "get", &sub).await);
    assert!(!check(s, id, "carol", "get", &acme).await);
    // Generated namespaced types do inherit membership from their parent.
    assert!(check(s, id, "carol", "get", namespace).await);
    assert!(!check(s, id, "carol", "delete", "core_namespace:teamc/other").await);
    // Nobody has access across orgs.
    for relation in ["owner", "member", "get", "delete"] {
        assert!(!check(s, id, "dave", relation, &acme).await);
        assert!(!check(s, id, "dave", relation, &team).await);
        assert!(!check(s, id, "dave", relation, &sub).await);
        assert!(!check(s, id, "alice", relation, &globex).await);
        assert!(!check(s, id, "bob", relation, &globex).await);
        assert!(!check(s, id, "carol", relation, &globex).await);
    }
    assert!(check(s, id, "dave", "owner", &globex).await);
    assert!(!check(s, id, "dave", "get", namespace).await);
}

/// Models of tests/data that are valid DSL (the official transformer takes
/// them too) but that the server's semantic validation rejects, with the
/// reason it gives.
const REJECTED: &[(&str, &str)] = &[
    // CEL type check: `x < limit` compares int with uint.
    (
        "models/conditions.fga",
        "failed to compile expression on condition 'in_range'",
    ),
    // `$expression` is behind an experimental flag the test server does not set.
    (
        "models/dollar-expression.fga",
        "requires the \"inline_expressions\" experimental feature flag",
    ),
    (
        "models/duplicate-types.fga",
        "an authorization model cannot contain duplicate types",
    ),
    // `module: relation from model`, but `model: [type#relation]`: a tupleset
    // relation (the `from` side) may not take usersets.
    (
        "models/keyword-names.fga",
        "the relation type 'type#relation' on 'model' in object type 'type' is not valid",
    ),
];

fn is_error_case(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("err-"))
}

/// Every valid model in tests/data: single-file models, module directories,
/// and the Platform Mesh reference modules (core plus generated; orgs).
fn valid_data_models() -> Vec<(String, AuthorizationModel)> {
    let mut models = Vec::new();
    for path in sorted_entries(&data_dir().join("models")) {
        if is_error_case(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let model = fga::dsl::parse_model(&text)
            .unwrap_or_else(|e| panic!("{}: a valid model fails to parse: {e}", path.display()));
        models.push((path.display().to_string(), model));
    }
    let read_files = |paths: &[std::path::PathBuf]| -> Vec<ModuleFile> {
        paths
            .iter()
            .map(|p| {
                ModuleFile::new(
                    p.file_name().unwrap().to_string_lossy(),
                    std::fs::read_to_string(p).unwrap(),
                )
            })
            .collect()
    };
    let mut compose_case = |case: String, paths: Vec<std::path::PathBuf>| {
        let (model, errors) = compose(&read_files(&paths));
        assert!(errors.is_empty(), "{case}: {errors:?}");
        models.push((case, model));
    };
    for dir in sorted_entries(&data_dir().join("modules")) {
        if is_error_case(&dir) {
            continue;
        }
        compose_case(dir.display().to_string(), sorted_entries(&dir));
    }
    let platform_mesh = data_dir().join("platform-mesh");
    let generated: Vec<_> = sorted_entries(&platform_mesh)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("generated-")
        })
        .collect();
    for core in ["core-helm.fga", "core-idp.fga"] {
        let mut paths = vec![platform_mesh.join(core)];
        paths.extend(generated.iter().cloned());
        compose_case(format!("platform-mesh/{core} + generated-*"), paths);
    }
    compose_case(
        "platform-mesh/orgs.fga".to_owned(),
        vec![platform_mesh.join("orgs.fga")],
    );
    models
}

#[tokio::test]
async fn every_valid_data_model_is_accepted_by_the_server() {
    let mut service = client().await;
    let store_id = new_store(&mut service, "data-models").await;
    let models = valid_data_models();
    assert!(models.len() > 40, "found {} models", models.len());
    let mut failures = Vec::new();
    for (case, model) in &models {
        let result = write_model(&mut service, &store_id, model, &StoreOptions::default()).await;
        let expected = REJECTED.iter().find(|(name, _)| case.ends_with(name));
        match (result, expected) {
            (Ok(_), None) => {}
            (Ok(_), Some((_, reason))) => {
                failures.push(format!("{case}: accepted, expected rejection ({reason})"));
            }
            (Err(error), Some((_, reason))) if error.to_string().contains(reason) => {}
            (Err(error), _) => failures.push(format!("{case}: {error}")),
        }
    }
    // The orgs module also works on its own through the builder.
    let (orgs, errors) = compose(&[orgs_module().to_file("orgs").unwrap()]);
    assert!(errors.is_empty());
    write_model(&mut service, &store_id, &orgs, &StoreOptions::default())
        .await
        .unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
