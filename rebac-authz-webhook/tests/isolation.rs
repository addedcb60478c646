//! Isolation between organisations (issue 14): alice, owner of one org, is refused every read,
//! create, bind and delete in bob's org, and nothing she creates or tries to create in her own
//! org or in `root:orgs` (Accounts, Stores, AuthorizationModels, APIExportPolicies, a binding
//! of the system export) gives her anything in bob's. Every request goes through kcp's
//! authorizer chain (RBAC, which grants these users nothing, then the webhook), as a user's
//! `kubectl` would. The test prints a table of the requests: kcp's status and reasons (its
//! message quotes the webhook's), the webhook's decision on the same question asked
//! directly, and for each attempt to escalate what alice gets in bob's org afterwards.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;

use axum::http;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use crds::api_export_policy::{ApiExportPolicy, ApiExportPolicySpec, ApiExportRef};
use crds::authorization_model::{AuthorizationModel, AuthorizationModelSpec, StoreRef};
use crds::export::SYSTEM_EXPORT;
use crds::{Account, Store, StoreSpec};
use fga::platform_mesh::{ASSIGNEE, CoreModuleVariant, OWNER, core_module, role_object, user};
use harness::{
    AuthorizingKcp, OpenFga, SYSTEM_PATH, TestWorkspace, eventually, names, new_account,
    ready_account, unique_suffix, wait_for,
};
use kcp::ClientFactory;
use kcp::types::apis::{ApiBinding, ApiBindingSpec, BindingReference, ExportBindingReference};
use kcp::types::tenancy::Workspace;
use kube::Resource;
use kube::api::{Api, DeleteParams, GetParams, ListParams, PostParams, WatchParams};
use kube::client::Body;
use kube::core::Request;
use serde::Serialize;
use serde_json::Value;
use support::{ask, orgs_workspace, review, store_id};

/// A request's verb, with the object it creates or the name it reads or deletes.
enum Verb {
    List,
    Watch,
    Get(String),
    Create(Value),
    Delete(String),
}

/// One request for a cluster-scoped kind (every kind here is), with a note for the table.
struct Attempt {
    kind: String,
    group: String,
    plural: String,
    url: String,
    verb: Verb,
    note: String,
}

impl Attempt {
    fn new<K: Resource<DynamicType = ()>>(verb: Verb) -> Attempt {
        Attempt {
            kind: K::kind(&()).into_owned(),
            group: K::group(&()).into_owned(),
            plural: K::plural(&()).into_owned(),
            url: K::url_path(&(), None),
            verb,
            note: String::new(),
        }
    }

    fn create<K: Resource<DynamicType = ()> + Serialize>(object: &K) -> Attempt {
        Attempt::new::<K>(Verb::Create(serde_json::to_value(object).unwrap()))
    }

    fn note(self, note: &str) -> Attempt {
        Attempt {
            note: format!("({note})"),
            ..self
        }
    }

    /// The verb as in a SubjectAccessReview, and the object's name.
    fn verb(&self) -> (&'static str, &str) {
        match &self.verb {
            Verb::List => ("list", ""),
            Verb::Watch => ("watch", ""),
            Verb::Get(name) => ("get", name),
            Verb::Create(object) => ("create", object["metadata"]["name"].as_str().unwrap()),
            Verb::Delete(name) => ("delete", name),
        }
    }

    fn describe(&self) -> String {
        let (verb, name) = self.verb();
        let described = [verb, &self.kind, name, &self.note];
        described
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn request(&self) -> http::Request<Vec<u8>> {
        let request = Request::new(&self.url);
        match &self.verb {
            Verb::List => request.list(&ListParams::default()),
            Verb::Watch => request.watch(&WatchParams::default(), "0"),
            Verb::Get(name) => request.get(name, &GetParams::default()),
            Verb::Create(object) => {
                request.create(&PostParams::default(), serde_json::to_vec(object).unwrap())
            }
            Verb::Delete(name) => request.delete(name, &DeleteParams::default()),
        }
        .unwrap()
    }
}

/// Every tuple of the OpenFGA store `store`.
async fn tuples(store: &str) -> BTreeSet<fga::tuple::Tuple> {
    let mut client = OpenFga::shared().await.client().await;
    fga::sync::read_tuples(&mut client, store, None, &Default::default())
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// One request and the answers to it.
struct Row {
    request: String,
    who: &'static str,
    place: &'static str,
    expected: u16,
    status: u16,
    /// Why kcp refused, when it did.
    reason: String,
    /// The webhook's decision on the same question, asked directly.
    webhook: &'static str,
    /// For an attempt to escalate: what alice gets in bob's org afterwards, and whether that
    /// is nothing.
    then: String,
    then_nothing: bool,
}

/// The requests of the test and their answers: printed as a table, then checked, so that
/// one unexpected answer does not hide the others.
struct Table {
    users: Vec<(&'static str, ClientFactory)>,
    /// The workspaces, by the short names the table gives them.
    places: Vec<(&'static str, TestWorkspace)>,
    rows: Vec<Row>,
}

impl Table {
    async fn new(places: Vec<(&'static str, TestWorkspace)>) -> Table {
        let authz = AuthorizingKcp::shared().await;
        Table {
            users: vec![
                ("alice", authz.as_user("alice").await),
                ("bob", authz.as_user("bob").await),
            ],
            places,
            rows: Vec::new(),
        }
    }

    fn place(&self, place: &str) -> &TestWorkspace {
        &self
            .places
            .iter()
            .find(|(name, _)| *name == place)
            .unwrap()
            .1
    }

    /// Sends `attempt` as `who` to the workspace `place`: the status, and why kcp refused.
    async fn send(&self, who: &str, place: &str, attempt: &Attempt) -> (u16, String) {
        let factory = &self.users.iter().find(|(name, _)| *name == who).unwrap().1;
        let client = factory.for_path(&self.place(place).path).unwrap();
        let request = attempt.request().map(Body::from);
        let response = client.send(request).await.unwrap();
        let status = response.status().as_u16();
        if status < 400 {
            // Only the status: the body of an admitted watch would stream until its timeout.
            return (status, String::new());
        }
        let body = response.into_body().collect_bytes().await.unwrap();
        let message = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|status| Some(status["message"].as_str()?.to_owned()))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        // kcp's message repeats the request, then gives the reasons, one a line: its
        // authorizers' (the webhook's among them), or its admission's.
        let reason = message
            .split_once(" at the cluster scope: ")
            .or_else(|| message.split_once(" is forbidden: "))
            .map_or(message.as_str(), |(_, reason)| reason)
            .replace('\n', " / ");
        (status, reason)
    }

    /// The webhook's decision on the SubjectAccessReview kcp sends for `attempt` (kcp's
    /// message quotes the reason of a refusal, not whether the webhook allowed).
    async fn webhook(&self, who: &str, place: &str, attempt: &Attempt) -> &'static str {
        let (verb, name) = attempt.verb();
        let cluster = self.place(place).cluster.as_str();
        let question = review(who, cluster, verb, &attempt.group, &attempt.plural, name);
        let address = AuthorizingKcp::shared().await.webhook_address();
        match ask(address, &question).await {
            (true, _, _) => "allow",
            (_, true, _) => "deny",
            _ => "no opinion",
        }
    }

    /// Sends `attempt` and records the answers against `expected`; returns kcp's status.
    async fn ask(
        &mut self,
        who: &'static str,
        place: &'static str,
        attempt: Attempt,
        expected: u16,
    ) -> u16 {
        let (status, reason) = self.send(who, place, &attempt).await;
        let webhook = self.webhook(who, place, &attempt).await;
        self.rows.push(Row {
            request: attempt.describe(),
            who,
            place,
            expected,
            status,
            reason,
            webhook,
            then: String::new(),
            then_nothing: true,
        });
        status
    }

    /// After an attempt to escalate: alice still gets 403 listing Accounts in bob's org b,
    /// and b's store still holds exactly `before`, none naming alice; recorded on the
    /// attempt's row.
    async fn b_untouched(&mut self, store: &str, before: &BTreeSet<fga::tuple::Tuple>) {
        let (status, _) = self
            .send("alice", "b", &Attempt::new::<Account>(Verb::List))
            .await;
        let after = tuples(store).await;
        let naming_alice = after.iter().filter(|t| t.user == user("alice")).count();
        let row = self.rows.last_mut().unwrap();
        let tuples = if &after == before {
            "unchanged"
        } else {
            "CHANGED"
        };
        row.then = format!(
            "list Accounts in b: {status}; b's tuples {tuples}, {naming_alice} naming alice"
        );
        // Whatever kcp answered to the attempt, it must not have reached bob's org.
        row.then_nothing = status == 403 && &after == before && naming_alice == 0;
    }

    /// Prints the table; returns the rows whose answers are not the expected ones.
    fn print(&self) -> Vec<String> {
        let mut table = String::new();
        for (name, workspace) in &self.places {
            table.push_str(&format!("{name} = {}\n", workspace.path));
        }
        table.push_str(
            "\n| request | who | where | expected | kcp's answer | webhook | afterwards |\n\
             |---|---|---|---|---|---|---|\n",
        );
        let mut unexpected = Vec::new();
        for row in &self.rows {
            let kcp = format!("{} {}", row.status, row.reason);
            let kcp = kcp.trim_end();
            let as_expected = row.status == row.expected && row.then_nothing;
            let mark = if as_expected { "" } else { " ✗" };
            table.push_str(&format!(
                "| {} | {} | {} | {}{mark} | {kcp} | {} | {} |\n",
                row.request, row.who, row.place, row.expected, row.webhook, row.then
            ));
            if !as_expected {
                unexpected.push(format!(
                    "{} as {} in {}: {kcp} (expected {}); webhook: {}; {}",
                    row.request, row.who, row.place, row.expected, row.webhook, row.then
                ));
            }
        }
        eprintln!("{table}");
        unexpected
    }
}

/// The binding of `system.platform-mesh.io` (which serves APIExportPolicies): what an org
/// would need to make policies of its own.
fn system_binding() -> ApiBinding {
    ApiBinding {
        metadata: kube::core::ObjectMeta {
            name: Some("system".into()),
            ..Default::default()
        },
        spec: ApiBindingSpec {
            reference: BindingReference {
                export: Some(ExportBindingReference {
                    path: SYSTEM_PATH.into(),
                    name: SYSTEM_EXPORT.into(),
                }),
            },
            permission_claims: Vec::new(),
        },
        status: None,
    }
}

#[tokio::test]
async fn a_user_of_one_org_can_neither_reach_nor_escalate_into_another() {
    let orgs = orgs_workspace().await;
    let suffix = unique_suffix();
    let (a_name, b_name) = (format!("alices-{suffix}"), format!("bobs-{suffix}"));
    // Created by kcp's admin with the creator named, as the account-operator's mutating
    // webhook (not registered with this kcp) would set it: alice owns a, bob owns b and
    // b:team.
    let (_, a) = ready_account(&orgs, &a_name, "org", "alice").await;
    let (_, b) = ready_account(&orgs, &b_name, "org", "bob").await;
    let (_, team) = ready_account(&b, "team", "account", "bob").await;
    let mut table = Table::new(vec![
        ("a", a.clone()),
        ("b", b.clone()),
        ("b:team", team.clone()),
        ("root:orgs", orgs.clone()),
    ])
    .await;

    // The owners are let in (the webhook may not have engaged the new workspaces yet): a 403
    // below is a refusal, not a workspace the webhook does not know.
    let owners = [("alice", "a"), ("bob", "b"), ("bob", "b:team")];
    for (who, place) in owners {
        eventually(&format!("{who} listing Accounts in {place}"), || async {
            let list = Attempt::new::<Account>(Verb::List);
            (table.send(who, place, &list).await.0 == 200).then_some(())
        })
        .await;
    }
    for (who, place) in owners {
        let list = Attempt::new::<Account>(Verb::List);
        table.ask(who, place, list, 200).await;
    }

    let store = store_id(&orgs, &b_name).await;
    let before = tuples(&store).await;
    assert!(
        !before.iter().any(|t| t.user == user("alice")),
        "{before:?}"
    );
    let bindings = (names::<ApiBinding>(&a).await, names::<ApiBinding>(&b).await);
    let in_orgs = (
        names::<Account>(&orgs).await,
        names::<Store>(&orgs).await,
        names::<AuthorizationModel>(&orgs).await,
        names::<ApiExportPolicy>(&orgs).await,
    );

    // What alice would write to own b: its owner role assigned to her.
    let grab = crds::Tuple {
        object: role_object(orgs.cluster.as_str(), &b_name, OWNER),
        relation: ASSIGNEE.into(),
        user: user("alice"),
    };
    let grab_store = |name: &str| {
        let spec = StoreSpec {
            core_module: core_module(CoreModuleVariant::HelmChart).to_dsl().unwrap(),
            tuples: Some(vec![grab.clone()]),
        };
        Attempt::create(&Store::new(name, spec)).note("alice owner of b")
    };
    let grab_model = || {
        let spec = AuthorizationModelSpec {
            store_ref: StoreRef {
                name: b_name.clone(),
                cluster: orgs.path.to_string(),
                path: None,
            },
            model: "module grab\n\ntype grab_thing\n".into(),
            tuples: Some(vec![grab.clone()]),
        };
        Attempt::create(&AuthorizationModel::new("grab", spec)).note("b's store, alice owner of b")
    };
    // A policy letting a bind the system export, and so serve APIExportPolicies of its own.
    let policy = || {
        let spec = ApiExportPolicySpec {
            api_export_ref: ApiExportRef {
                name: SYSTEM_EXPORT.into(),
                cluster_path: SYSTEM_PATH.into(),
            },
            allow_path_expressions: vec![a.path.to_string()],
        };
        Attempt::create(&ApiExportPolicy::new("grab", spec)).note("a may bind the system export")
    };
    let system = || Attempt::create(&system_binding()).note("the system export");
    let intruder = || Attempt::create(&new_account("intruder", "account", "alice"));
    let get = |name: &str| Verb::Get(name.into());
    let delete = |name: &str| Verb::Delete(name.into());
    let account_info = || Attempt::new::<AccountInfo>(get(ACCOUNT_INFO_NAME));

    // alice in bob's org b, in its account b:team, and about b in root:orgs.
    let crossing = [
        ("b", Attempt::new::<Account>(Verb::List)),
        ("b", Attempt::new::<Account>(Verb::Watch)),
        ("b", Attempt::new::<Account>(get("team"))),
        ("b", intruder()),
        ("b", Attempt::new::<Account>(delete("team"))),
        ("b", account_info()),
        ("b", Attempt::new::<Workspace>(get("team"))),
        ("b", system()),
        ("b", grab_store(&b_name)),
        ("b", grab_model()),
        ("b", policy().note("not served in b")),
        ("b:team", Attempt::new::<Account>(Verb::List)),
        ("b:team", intruder()),
        ("b:team", account_info()),
        ("root:orgs", Attempt::new::<Account>(get(&b_name))),
        ("root:orgs", Attempt::new::<Account>(delete(&b_name))),
        ("root:orgs", Attempt::new::<Workspace>(get(&b_name))),
    ];
    for (place, attempt) in crossing {
        table.ask("alice", place, attempt, 403).await;
    }

    // alice in her own org a, which she owns, and in root:orgs, where she is nobody:
    // whatever kcp answers, b is untouched afterwards.
    let mine = Attempt::create(&new_account("mine", "account", "alice"));
    if table.ask("alice", "a", mine, 201).await == 201 {
        // Ready: the security-operator has written mine's tuples (into a's store).
        let accounts = Api::<Account>::all(a.client());
        wait_for(&accounts, "mine", "Ready", harness::is_ready).await;
    }
    table.b_untouched(&store, &before).await;
    let grab_org = format!("grab-{suffix}");
    let new_org = Attempt::create(&new_account(&grab_org, "org", "alice"));
    let escalating = [
        ("a", grab_store(&b_name)),
        ("a", grab_model()),
        ("a", policy().note("not served in a")),
        ("a", system()),
        ("root:orgs", new_org),
        ("root:orgs", grab_store(&grab_org)),
        ("root:orgs", grab_model()),
        ("root:orgs", policy()),
    ];
    for (place, attempt) in escalating {
        table.ask("alice", place, attempt, 403).await;
        table.b_untouched(&store, &before).await;
    }

    let unexpected = table.print();

    // Nothing was created or deleted, as kcp's admin sees it.
    let set = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(names::<Account>(&b).await, set(&["team"]));
    assert_eq!(names::<Account>(&team).await, set(&[]));
    assert_eq!(names::<Account>(&a).await, set(&["mine"]));
    for workspace in [&a, &b] {
        let place = &workspace.path;
        assert_eq!(names::<Store>(workspace).await, set(&[]), "{place}");
        assert_eq!(
            names::<AuthorizationModel>(workspace).await,
            set(&[]),
            "{place}"
        );
    }
    assert_eq!(
        (names::<ApiBinding>(&a).await, names::<ApiBinding>(&b).await),
        bindings
    );
    assert_eq!(
        (
            names::<Account>(&orgs).await,
            names::<Store>(&orgs).await,
            names::<AuthorizationModel>(&orgs).await,
            names::<ApiExportPolicy>(&orgs).await,
        ),
        in_orgs
    );
    let org_b: Account = Api::all(orgs.client()).get(&b_name).await.unwrap();
    assert!(org_b.metadata.deletion_timestamp.is_none());
    Api::<Workspace>::all(b.client()).get("team").await.unwrap();
    assert_eq!(tuples(&store).await, before);

    assert!(
        unexpected.is_empty(),
        "unexpected answers:\n{}",
        unexpected.join("\n")
    );
}
