//! Hostile input through real Stores, on real kcp and OpenFGA, with the security-operator
//! binary: "DSL bombs" in `spec.coreModule` (thousands of types, a chain of thousands of
//! relations, nesting, cycles, a huge condition, unicode names, models over OpenFGA's size
//! limits) each end in a condition with its reason, nothing of them reaches OpenFGA but the
//! empty store, and the operator keeps serving; 5,000 tuples land exactly and a shrunk list
//! deletes exactly the rest; tuple lists too large to keep are refused before anything is
//! written, and larger ones at admission.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::time::Instant;

use crds::{Store, StoreSpec};
use fga::compose::{ModuleFile, compose};
use fga::platform_mesh::{CoreModuleVariant, builtin_modules, core_module};
use fga::store::{StoreOptions, latest_model, list_stores_named};
use harness::{OpenFga, ServerProcess, unique_suffix, wait_for};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, PostParams};
use support::{Platform, base, tuples};
use tokio::sync::OnceCell;

/// The platform and this binary's own security-operator, to ask whether it is still running.
async fn platform() -> (&'static Platform, &'static ServerProcess) {
    static OPERATOR: OnceCell<ServerProcess> = OnceCell::const_new();
    let platform = base().await;
    let operator = OPERATOR
        .get_or_init(|| platform.start_operator("security-operator-hostile"))
        .await;
    (platform, operator)
}

/// The operator still runs and never panicked nor overflowed its stack.
fn still_serving(operator: &ServerProcess) {
    let log = operator.log_tail(usize::MAX);
    assert!(
        !operator.exited(),
        "the operator exited:\n{}",
        operator.log_tail(20)
    );
    for sign in ["panicked", "overflowed its stack"] {
        assert!(!log.contains(sign), "the operator's log says {sign:?}");
    }
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

/// Tuple `i`: `role:r<i>#assignee@user:u<i>@example.com`.
fn tuple(i: usize) -> crds::Tuple {
    crds::Tuple {
        object: format!("role:r{i}"),
        relation: "assignee".into(),
        user: format!("user:u{i}@example.com"),
    }
}

fn as_strings(tuples: &[crds::Tuple]) -> BTreeSet<String> {
    tuples
        .iter()
        .map(|t| format!("{}#{}@{}", t.object, t.relation, t.user))
        .collect()
}

fn condition<'a>(store: &'a Store, type_: &str) -> Option<&'a Condition> {
    store
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// Waits until the Store's condition `type_` is False with `reason`; returns the Store.
async fn refused(stores: &Api<Store>, name: &str, type_: &str, reason: &str) -> Store {
    wait_for(stores, name, reason, |s| {
        condition(s, type_).is_some_and(|c| c.status == "False" && c.reason == reason)
    })
    .await
}

/// Waits until the Store is Ready for its current generation; returns it.
async fn ready(stores: &Api<Store>, name: &str) -> Store {
    wait_for(stores, name, "Ready", |s| {
        s.status.as_ref().and_then(|s| s.observed_generation) == s.metadata.generation
            && condition(s, "Ready").is_some_and(|c| c.status == "True")
    })
    .await
}

/// `spec.coreModule` with `body` after the built-in core module.
fn core_with(body: &str) -> String {
    format!("{}\n{body}", core())
}

/// How many types the built-in core module composes into, with the built-in API modules.
fn builtin_types() -> usize {
    let mut files = vec![ModuleFile::new("core.fga", core())];
    files.extend(
        builtin_modules()
            .iter()
            .map(|m| m.to_file(&m.name).unwrap()),
    );
    compose(&files).0.type_definitions.len()
}

/// A type `name` with `count` directly assignable relations `r0` … .
fn relations(name: &str, count: usize) -> String {
    let mut text = format!("type {name}\n  relations\n");
    for i in 0..count {
        text.push_str(&format!("    define r{i}: [user]\n"));
    }
    text
}

/// Whether a condition's message (of the Store given) is the one expected.
type MessageCheck = Box<dyn Fn(&str, &Store) -> bool>;

/// One bomb: a core module and the condition the Store must end in.
struct Bomb {
    /// What it is, for messages and the figures.
    what: &'static str,
    core_module: String,
    /// The condition's type; it must be False with `reason` and a message `message` accepts.
    condition: &'static str,
    reason: &'static str,
    message: MessageCheck,
}

const NOT_RETRIED: &str = " (not retried until the object changes)";
const DOES_NOT_COMPOSE: &str = "spec.coreModule does not compose: ";

fn bombs() -> Vec<Bomb> {
    let mut bombs = Vec::new();

    let types = 4_000;
    let mut text = String::new();
    for i in 0..types {
        text.push_str(&format!("type t{i}\n  relations\n    define r: [user]\n"));
    }
    let expected = format!(
        "{DOES_NOT_COMPOSE}core.fga (module core): the number of type definitions in an \
         authorization model ({}) exceeds the allowed limit of 100{NOT_RETRIED}",
        types + builtin_types()
    );
    bombs.push(Bomb {
        what: "4,000 types",
        core_module: core_with(&text),
        condition: "AuthorizationModelSubroutine",
        reason: "InvalidCoreModule",
        message: Box::new(move |m, _| m == expected),
    });

    // Before the search depth had a limit, this aborted the operator (stack overflow).
    let chain = 3_000;
    let mut text = "type chain\n  relations\n    define r0: [user]\n".to_owned();
    for i in 1..chain {
        text.push_str(&format!("    define r{i}: r{}\n", i - 1));
    }
    bombs.push(Bomb {
        what: "a chain of 3,000 relations",
        core_module: core_with(&text),
        condition: "AuthorizationModelSubroutine",
        reason: "InvalidCoreModule",
        message: Box::new(move |m, _| {
            let too_deep = "in object type 'chain' is invalid: it leads through more than 256 \
                            relations and operators in a row";
            m.starts_with(&format!(
                "{DOES_NOT_COMPOSE}core.fga (module core): the definition of relation 'r1000' \
                 {too_deep} (at line "
            )) && m.matches(too_deep).count() == 10
                // Every relation from r256 on is too deep: ten are listed, the rest counted.
                && m.ends_with(&format!("; and {} more{NOT_RETRIED}", chain - 256 - 10))
        }),
    });

    let depth = 100;
    let nested = format!(
        "type deep\n  relations\n    define a: [user]\n    define x: {}a{}\n",
        "(a or ".repeat(depth),
        ")".repeat(depth)
    );
    bombs.push(Bomb {
        what: "an expression nested 100 levels deep",
        core_module: core_with(&nested),
        condition: "AuthorizationModelSubroutine",
        reason: "InvalidCoreModule",
        message: Box::new(|m, _| {
            m.starts_with(&format!("{DOES_NOT_COMPOSE}core.fga: line "))
                && m.ends_with(&format!(
                    ": expression nested deeper than 64 levels{NOT_RETRIED}"
                ))
        }),
    });

    let cyclic = "type loop\n  relations\n    define a: b\n    define b: a\n    define c: c\n";
    bombs.push(Bomb {
        what: "relations defined by each other and by themselves",
        core_module: core_with(cyclic),
        condition: "AuthorizationModelSubroutine",
        reason: "InvalidCoreModule",
        message: Box::new(|m, _| {
            let of = |relation: &str, what: &str| {
                format!(
                    "core.fga (module core): the definition of relation '{relation}' in \
                     object type 'loop' is invalid: {what} (at line "
                )
            };
            m.starts_with(DOES_NOT_COMPOSE)
                && m.matches("core.fga (module core)").count() == 3
                && m.contains(&of("a", "potential loop"))
                && m.contains(&of("b", "potential loop"))
                && m.contains(&of("c", "invalid userset rewrite definition"))
        }),
    });

    let terms: Vec<String> = (0..3_000).map(|i| format!("x == {i}")).collect();
    let expression = terms.join(" || ");
    let bytes = expression.len();
    let big = format!(
        "type doc\n  relations\n    define viewer: [user with big]\n\ncondition big(x: int) {{\n  \
         {expression}\n}}\n"
    );
    bombs.push(Bomb {
        what: "a condition of 37,886 bytes",
        core_module: core_with(&big),
        condition: "AuthorizationModelSubroutine",
        reason: "InvalidCoreModule",
        message: Box::new(move |m, _| {
            m.starts_with(&format!(
                "{DOES_NOT_COMPOSE}core.fga (module core): condition 'big' expression is \
                 {bytes} bytes long, at most 512 allowed (at line "
            )) && m.matches("core.fga").count() == 1
        }),
    });

    bombs.push(Bomb {
        what: "a unicode type name",
        core_module: core_with("type ünïcödé_☃\n  relations\n    define viewer: [user]\n"),
        condition: "AuthorizationModelSubroutine",
        reason: "InvalidCoreModule",
        message: Box::new(|m, _| {
            m.starts_with(&format!("{DOES_NOT_COMPOSE}core.fga: line "))
                && m.ends_with(&format!(
                    ", column 6: unrecognized input \"ü\"{NOT_RETRIED}"
                ))
        }),
    });

    // Longer than any model OpenFGA accepts: refused before composing.
    let long = core_with(&relations("long", 12_000));
    let length = long.len();
    bombs.push(Bomb {
        what: "a core module of 300 KB",
        core_module: long,
        condition: "AuthorizationModelSubroutine",
        reason: "InvalidCoreModule",
        message: Box::new(move |m, _| {
            m == format!(
                "{DOES_NOT_COMPOSE}core.fga is {length} bytes long; at most 262144 are \
                 accepted (OpenFGA's limit on the size of a model){NOT_RETRIED}"
            )
        }),
    });

    // Valid, and shorter than that as text, but over OpenFGA's limit once encoded.
    bombs.push(Bomb {
        what: "a valid model over OpenFGA's size limit",
        core_module: core_with(&relations("big", 8_000)),
        condition: "AuthorizationModelSubroutine",
        reason: "RejectedByOpenFGA",
        message: Box::new(|m, store| {
            let id = store.status.as_ref().unwrap().store_id.clone().unwrap();
            m.starts_with(&format!(
                "writing the authorization model: writing an authorization model to OpenFGA \
                 store {id} failed: Unknown: model exceeds size limit: "
            )) && m.ends_with(&format!(" bytes vs 262144 bytes{NOT_RETRIED}"))
        }),
    });
    bombs
}

#[tokio::test]
async fn dsl_bombs_end_in_a_condition_and_nothing_of_them_reaches_openfga() {
    let started = Instant::now();
    let (platform, operator) = platform().await;
    let began = Instant::now();
    let orgs = platform.orgs().await;
    let stores: Api<Store> = Api::all(orgs.client());
    let sfx = unique_suffix();
    let post = PostParams::default();
    let bombs = bombs();
    let listed = vec![tuple(0)];

    // All at once: the operator works on them side by side.
    let names: Vec<String> = (0..bombs.len()).map(|i| format!("bomb{i}-{sfx}")).collect();
    let near = format!("near-{sfx}");
    let near_module = core_with(&relations("near", 5_000));
    for (bomb, name) in bombs.iter().zip(&names) {
        stores
            .create(&post, &store(name, &bomb.core_module, listed.clone()))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", bomb.what));
    }
    stores
        .create(&post, &store(&near, &near_module, listed.clone()))
        .await
        .unwrap();

    let mut fga = OpenFga::shared().await.client().await;
    for (bomb, name) in bombs.iter().zip(&names) {
        let refused = refused(&stores, name, bomb.condition, bomb.reason).await;
        let message = &condition(&refused, bomb.condition).unwrap().message;
        assert!(
            (bomb.message)(message, &refused),
            "{}: {}",
            bomb.what,
            message.chars().take(2_000).collect::<String>()
        );
        // Ready says the same, and both stay small however many problems there are.
        let ready = condition(&refused, "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Error")
        );
        assert!(ready.message.ends_with(message.as_str()), "{}", bomb.what);
        assert!(
            message.len() < 10_000,
            "{}: {} bytes",
            bomb.what,
            message.len()
        );

        // Nothing partial: the store the first step created, without a model or a tuple.
        let status = refused.status.unwrap();
        assert_eq!(status.authorization_model_id, None, "{}", bomb.what);
        assert_eq!(status.managed_tuples, Vec::new(), "{}", bomb.what);
        let named = list_stores_named(&mut fga, name, &StoreOptions::default())
            .await
            .unwrap();
        assert_eq!(named.len(), 1, "{}: {named:?}", bomb.what);
        assert_eq!(
            Some(&named[0].id),
            status.store_id.as_ref(),
            "{}",
            bomb.what
        );
        let model = latest_model(&mut fga, &named[0].id, &StoreOptions::default())
            .await
            .unwrap();
        assert!(model.is_none(), "{}: a model was written", bomb.what);
        assert_eq!(tuples(&named[0].id).await, BTreeSet::new(), "{}", bomb.what);
    }

    // A model near OpenFGA's limit (5,000 relations in one type) is written whole.
    let near_store = ready(&stores, &near).await;
    let id = near_store.status.unwrap().store_id.unwrap();
    let model = latest_model(&mut fga, &id, &StoreOptions::default())
        .await
        .unwrap()
        .unwrap();
    let near_type = model
        .model
        .type_definitions
        .iter()
        .find(|t| t.type_name == "near")
        .unwrap();
    assert_eq!(near_type.relations.len(), 5_000);
    assert_eq!(tuples(&id).await, as_strings(&listed));

    // The operator kept serving: a good Store created after them is Ready, its tuples written.
    let good = format!("good-{sfx}");
    let good_tuples = vec![tuple(1), tuple(2)];
    stores
        .create(&post, &store(&good, &core(), good_tuples.clone()))
        .await
        .unwrap();
    let good_store = ready(&stores, &good).await;
    let id = good_store.status.unwrap().store_id.unwrap();
    assert_eq!(tuples(&id).await, as_strings(&good_tuples));
    still_serving(operator);
    eprintln!(
        "{} DSL bombs refused, a model of 5,000 relations written, a good Store Ready in {:?} \
         (the platform was there after {:?})",
        bombs.len(),
        began.elapsed(),
        began - started
    );
}

#[tokio::test]
async fn five_thousand_tuples_land_exactly_and_a_shrunk_list_deletes_exactly_the_rest() {
    let started = Instant::now();
    let (platform, operator) = platform().await;
    let began = Instant::now();
    let orgs = platform.orgs().await;
    let stores: Api<Store> = Api::all(orgs.client());
    let name = format!("many-{}", unique_suffix());
    let many: Vec<crds::Tuple> = (0..5_000).map(tuple).collect();
    stores
        .create(&PostParams::default(), &store(&name, &core(), many.clone()))
        .await
        .unwrap();
    let landed = ready(&stores, &name).await;
    let status = landed.status.clone().unwrap();
    let id = status.store_id.unwrap();
    assert_eq!(status.managed_tuples.len(), 5_000);
    assert_eq!(tuples(&id).await, as_strings(&many));
    let written = began.elapsed();

    // Two of them kept, one new: the other 4,998 go.
    let few = vec![tuple(0), tuple(4_999), tuple(5_000)];
    let mut shrunk = landed;
    shrunk.spec.tuples = Some(few.clone());
    stores
        .replace(&name, &PostParams::default(), &shrunk)
        .await
        .unwrap();
    let after = ready(&stores, &name).await;
    assert_eq!(after.status.unwrap().managed_tuples.len(), 3);
    assert_eq!(tuples(&id).await, as_strings(&few));
    still_serving(operator);
    eprintln!(
        "5,000 tuples written in {written:?}, then 4,998 deleted and 1 written in {:?} (the \
         platform was there after {:?})",
        began.elapsed() - written,
        began - started
    );
}

#[tokio::test]
async fn tuple_lists_too_large_to_keep_are_refused_before_anything_is_written() {
    let started = Instant::now();
    let (platform, operator) = platform().await;
    let began = Instant::now();
    let orgs = platform.orgs().await;
    let stores: Api<Store> = Api::all(orgs.client());
    let sfx = unique_suffix();
    let post = PostParams::default();

    // Admitted, but status.managedTuples could not record it next to the spec (kcp's storage
    // takes 2 MiB in one object): refused whole. Before, every tuple was written to OpenFGA,
    // recording them failed, and the reconcile retried forever.
    let name = format!("toomany-{sfx}");
    let too_many: Vec<crds::Tuple> = (0..14_000).map(tuple).collect();
    let bytes = serde_json::to_vec(&too_many).unwrap().len();
    stores
        .create(&post, &store(&name, &core(), too_many))
        .await
        .unwrap();
    let refused = refused(&stores, &name, "TupleSubroutine", "TooManyTuples").await;
    assert_eq!(
        condition(&refused, "TupleSubroutine").unwrap().message,
        format!(
            "spec.tuples lists 14000 tuples in {bytes} bytes of JSON; at most 524288 bytes are \
             accepted, because status.managedTuples records them again and the object would \
             outgrow what the API server stores; no tuple was written or deleted{NOT_RETRIED}"
        )
    );
    let status = refused.status.clone().unwrap();
    assert_eq!(status.managed_tuples, Vec::new());
    let id = status.store_id.unwrap();
    assert_eq!(tuples(&id).await, BTreeSet::new());
    // Cut down, it is kept.
    let few = vec![tuple(7), tuple(13_999)];
    let mut shrunk = refused;
    shrunk.spec.tuples = Some(few.clone());
    stores.replace(&name, &post, &shrunk).await.unwrap();
    ready(&stores, &name).await;
    assert_eq!(tuples(&id).await, as_strings(&few));

    // Refused at admission: more than kcp's storage takes in one object, and more than the
    // API server reads in one request. Nothing of either is stored.
    let refusals = [(30_000, 500, ""), (45_000, 413, "RequestEntityTooLarge")];
    for (count, code, reason) in refusals {
        let name = format!("huge{count}-{sfx}");
        let huge: Vec<crds::Tuple> = (0..count).map(tuple).collect();
        let error = stores
            .create(&post, &store(&name, &core(), huge))
            .await
            .unwrap_err();
        let kube::Error::Api(status) = error else {
            panic!("{count} tuples: {error}");
        };
        assert_eq!(
            (status.code, status.reason.as_str()),
            (code, reason),
            "{status:?}"
        );
        let clear = match code {
            413 => status.message == "Request entity too large: limit is 3145728",
            _ => {
                status.message.starts_with(
                    "rpc error: code = ResourceExhausted desc = trying to send message larger \
                     than max (",
                ) && status.message.ends_with(" vs. 2097152)")
            }
        };
        assert!(clear, "{count} tuples: {}", status.message);
        assert!(stores.get_opt(&name).await.unwrap().is_none());
    }
    still_serving(operator);
    eprintln!(
        "14,000 tuples ({bytes} bytes) refused by the operator, 30,000 and 45,000 at admission, \
         in {:?} (the platform was there after {:?})",
        began.elapsed(),
        began - started
    );
}
