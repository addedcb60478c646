//! What to answer a SubjectAccessReview, as pure functions over a [`View`] of the workspaces:
//! either a decision at once, or the one OpenFGA Check that decides it ([`Plan`]).
//!
//! The handlers are upstream's, tried in order, the first that has an answer deciding:
//!
//! 1. **non-resource**: a path under an allowed prefix is allowed; any other is NoOpinion.
//! 2. **orgs**: a request in the `root:orgs` workspace is checked against the `orgs` store on
//!    `tenancy_kcp_io_workspace:orgs`; not allowed is NoOpinion.
//! 3. **bind** (`bind` on `apis.kcp.io` `apiexports`): may the consumer's account bind the
//!    export? The consumer is the `system:cluster:<id>` group kcp adds.
//! 4. **contextual**: any other request in an organisation's workspace is checked in the org's
//!    store, with the hierarchy (object → namespace → account) given as contextual tuples,
//!    since it is never stored.
//!
//! Every type and relation name comes from [`fga::platform_mesh`], the functions the
//! security-operator's model generator names them with, so the two sides cannot disagree.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use fga::platform_mesh::{
    API_EXPORT_TYPE, NAMESPACE_TYPE, PARENT, ResourceModule, ResourceScope, user, verb_relation,
};
use kcp::ClusterName;

/// The group kcp adds to a `bind` review, naming the consumer's logical cluster.
pub const CONSUMER_GROUP_PREFIX: &str = "system:cluster:";
/// The object of the `orgs` workspace in the `orgs` store.
pub const ORGS_WORKSPACE_OBJECT: &str = "tenancy_kcp_io_workspace:orgs";

/// OpenFGA's limits on a tuple's parts (its API validation rules).
const MAX_USER_LEN: usize = 512;
const MAX_OBJECT_LEN: usize = 256;
const MAX_RELATION_LEN: usize = fga::platform_mesh::MAX_RELATION_NAME_LEN;

/// The verbs checked on the parent (account or namespace) as `<verb>_<group>_<resource>`.
const COLLECTION_VERBS: [&str; 3] = ["create", "list", "watch"];
/// The verbs the resource modules define as relations on an object.
const OBJECT_VERBS: [&str; 7] = [
    "get", "update", "patch", "delete", "watch", "bind", "escalate",
];

/// The answer to a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; kcp stops asking.
    Allow(String),
    /// Denied; kcp stops asking (only the optional bind mode answers this).
    Deny(String),
    /// No opinion; kcp's next authorizer (RBAC) decides.
    NoOpinion(String),
    /// Ask again after the delay: the workspace is not known yet.
    Retry(Duration),
}

impl Decision {
    /// The metric label of the decision.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Allow(_) => "allow",
            Self::Deny(_) => "deny",
            Self::NoOpinion(_) => "no_opinion",
            Self::Retry(_) => "retry",
        }
    }
}

/// The handler that decided a review (a metric label, and in the reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    /// Before any handler: the review itself is unusable.
    Review,
    /// Non-resource paths.
    NonResource,
    /// Requests in the `root:orgs` workspace.
    Orgs,
    /// `bind` on an APIExport.
    Bind,
    /// Requests in an organisation's workspaces.
    Contextual,
}

impl Handler {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Review => "review",
            Self::NonResource => "nonresource",
            Self::Orgs => "orgs",
            Self::Bind => "bind",
            Self::Contextual => "contextual",
        }
    }
}

/// One relationship tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tuple {
    pub user: String,
    pub relation: String,
    pub object: String,
}

impl Tuple {
    fn new(
        user: impl Into<String>,
        relation: impl Into<String>,
        object: impl Into<String>,
    ) -> Self {
        Self {
            user: user.into(),
            relation: relation.into(),
            object: object.into(),
        }
    }

    /// Why OpenFGA would refuse the tuple, if it would.
    fn invalid(&self) -> Option<String> {
        let parts = [
            ("user", &self.user, MAX_USER_LEN),
            ("relation", &self.relation, MAX_RELATION_LEN),
            ("object", &self.object, MAX_OBJECT_LEN),
        ];
        parts.into_iter().find_map(|(what, value, max)| {
            if value.len() > max {
                Some(format!(
                    "the {what} is {} bytes long, over OpenFGA's limit of {max}",
                    value.len()
                ))
            } else if value.chars().any(char::is_whitespace) {
                Some(format!("the {what} {value:?} contains whitespace"))
            } else {
                None
            }
        })
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}@{}", self.object, self.relation, self.user)
    }
}

/// The OpenFGA Check that decides a review, and the decision for each of its answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The OpenFGA store.
    pub store: String,
    /// The question.
    pub tuple: Tuple,
    /// The hierarchy of the request, never stored.
    pub contextual: Vec<Tuple>,
    /// When the answer is not "allowed": NoOpinion, or Deny in the strict bind mode.
    pub denied: Decision,
}

impl Check {
    /// The decision for OpenFGA's answer.
    pub fn decide(&self, allowed: bool) -> Decision {
        if allowed {
            Decision::Allow(format!("OpenFGA allows {}", self.tuple))
        } else {
            self.denied.clone()
        }
    }
}

/// What to do about a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Answer at once.
    Answer(Decision),
    /// Ask OpenFGA.
    Check(Check),
}

/// A SubjectAccessReview's question, as the handlers read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Question {
    pub user: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
    pub resource: Option<ResourceRequest>,
    pub non_resource_path: Option<String>,
}

/// A review's `resourceAttributes`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceRequest {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

/// Where a workspace stands, as the cache of LogicalClusters and Stores knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workspace {
    /// Not a workspace that binds the export (or not seen yet).
    Unknown,
    /// Bound, but not below the orgs workspace: not an organisation's.
    Outside,
    /// An organisation's workspace whose store is not known yet; the reason says what is
    /// missing.
    Pending(String),
    /// An organisation's workspace.
    Tenant(Tenant),
}

/// An organisation's workspace: its org's store and its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The org's OpenFGA store.
    pub store: String,
    /// The account object of the workspace (`core_platform-mesh_io_account:<parent>/<name>`).
    pub account: String,
}

/// How a resource is named and scoped in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub singular: String,
    pub scope: ResourceScope,
}

/// What the handlers read about the workspaces.
pub trait View {
    /// The logical cluster of the `root:orgs` workspace, once seen.
    fn orgs_cluster(&self) -> Option<ClusterName>;
    /// The store ID of the `orgs` Store, once it has one.
    fn orgs_store(&self) -> Option<String>;
    /// Where a workspace stands.
    fn workspace(&self, cluster: &ClusterName) -> Workspace;
    /// How `group`/`resource` is named and scoped in the workspace, if it serves it.
    fn resource(&self, cluster: &ClusterName, group: &str, resource: &str) -> Option<ResourceInfo>;
    /// Why the workspace's latest discovery of `group` failed, if it did (kcp's 403 when the
    /// webhook may not read the workspace's discovery).
    fn discovery_failure(&self, _cluster: &ClusterName, _group: &str) -> Option<String> {
        None
    }
    /// Whether a miss for `cluster` may still be answered with a retry (upstream's tracker:
    /// a bounded number of retries per workspace per period); counts this one.
    fn may_retry(&self, cluster: &ClusterName) -> bool;
}

/// The flags that shape the answers.
#[derive(Debug, Clone)]
pub struct Rules {
    /// The `extra` key in which kcp names the request's logical cluster.
    pub cluster_key: String,
    /// Non-resource path prefixes every user may read.
    pub allowed_nonresource_prefixes: Vec<String>,
    /// How long kcp waits before asking again about a workspace not known yet.
    pub retry_after: Duration,
    /// Answer Denied, not NoOpinion, when OpenFGA does not allow a `bind`.
    pub deny_unpermitted_binds: bool,
}

/// What to do about `question`, and which handler decided.
pub fn plan(question: &Question, rules: &Rules, view: &dyn View) -> (Handler, Plan) {
    let answer = |handler, decision| (handler, Plan::Answer(decision));
    let no_opinion = |handler, reason: String| answer(handler, Decision::NoOpinion(reason));

    if let Some(path) = &question.non_resource_path {
        return match rules
            .allowed_nonresource_prefixes
            .iter()
            .find(|prefix| path.starts_with(prefix.as_str()))
        {
            Some(prefix) => answer(
                Handler::NonResource,
                Decision::Allow(format!("{path} is under the allowed prefix {prefix}")),
            ),
            None => no_opinion(
                Handler::NonResource,
                format!("{path} is not under an allowed non-resource prefix"),
            ),
        };
    }
    let Some(resource) = &question.resource else {
        return no_opinion(
            Handler::Review,
            "the review has neither resourceAttributes nor nonResourceAttributes".into(),
        );
    };
    if question.user.is_empty() {
        return no_opinion(Handler::Review, "the review names no user".into());
    }
    let cluster = match question.extra.get(&rules.cluster_key).map(Vec::as_slice) {
        Some([cluster, ..]) => match cluster.parse::<ClusterName>() {
            Ok(cluster) => cluster,
            Err(e) => {
                return no_opinion(
                    Handler::Review,
                    format!("extra[{}] is not a logical cluster: {e}", rules.cluster_key),
                );
            }
        },
        _ => {
            return no_opinion(
                Handler::Review,
                format!("the review has no extra[{}]", rules.cluster_key),
            );
        }
    };

    if view.orgs_cluster().as_ref() == Some(&cluster) {
        return (Handler::Orgs, orgs(question, resource, view));
    }
    if resource.verb == "bind" && resource.group == "apis.kcp.io" {
        return (
            Handler::Bind,
            bind(question, resource, &cluster, rules, view),
        );
    }
    (
        Handler::Contextual,
        contextual(question, resource, &cluster, rules, view),
    )
}

/// A request in the `root:orgs` workspace: the `orgs` store decides.
fn orgs(question: &Question, resource: &ResourceRequest, view: &dyn View) -> Plan {
    let Some(store) = view.orgs_store() else {
        return Plan::Answer(Decision::NoOpinion(
            "the orgs Store has no OpenFGA store yet".into(),
        ));
    };
    let relation = verb_relation(&resource.verb, &resource.group, &resource.resource);
    check(
        store,
        Tuple::new(user(&question.user), relation, ORGS_WORKSPACE_OBJECT),
        Vec::new(),
        Decision::NoOpinion("the orgs store does not allow it".into()),
    )
}

/// `bind` on an APIExport: may the consumer's account bind it?
fn bind(
    question: &Question,
    resource: &ResourceRequest,
    provider: &ClusterName,
    rules: &Rules,
    view: &dyn View,
) -> Plan {
    let no_opinion = |reason: String| Plan::Answer(Decision::NoOpinion(reason));
    if resource.name.is_empty() {
        return no_opinion("the bind review names no APIExport".into());
    }
    let Some(consumer) = question
        .groups
        .iter()
        .find_map(|g| g.strip_prefix(CONSUMER_GROUP_PREFIX))
    else {
        return no_opinion(format!(
            "the bind review has no {CONSUMER_GROUP_PREFIX}<cluster> group"
        ));
    };
    let consumer = match consumer.parse::<ClusterName>() {
        Ok(consumer) => consumer,
        Err(e) => return no_opinion(format!("the consumer cluster {consumer:?}: {e}")),
    };
    let tenant = match tenant(&consumer, rules, view) {
        Ok(tenant) => tenant,
        Err(decision) => return Plan::Answer(decision),
    };
    let export = format!("{API_EXPORT_TYPE}:{provider}/{}", resource.name);
    let denied = format!("no APIExportPolicy lets {} bind {export}", tenant.account);
    let denied = if rules.deny_unpermitted_binds {
        Decision::Deny(denied)
    } else {
        Decision::NoOpinion(denied)
    };
    check(
        tenant.store,
        Tuple::new(export, "bind", tenant.account),
        Vec::new(),
        denied,
    )
}

/// Any other request in an organisation's workspace: the org's store decides, given the
/// request's place in the hierarchy.
fn contextual(
    question: &Question,
    resource: &ResourceRequest,
    cluster: &ClusterName,
    rules: &Rules,
    view: &dyn View,
) -> Plan {
    let no_opinion = |reason: String| Plan::Answer(Decision::NoOpinion(reason));
    let tenant = match tenant(cluster, rules, view) {
        Ok(tenant) => tenant,
        Err(decision) => return Plan::Answer(decision),
    };
    let group = &resource.group;
    let Some(info) = view.resource(cluster, group, &resource.resource) else {
        if let Some(error) = view.discovery_failure(cluster, group) {
            return no_opinion(format!(
                "workspace {cluster}: discovering the resources of group {group:?} failed: {error}"
            ));
        }
        return no_opinion(format!(
            "workspace {cluster} serves no resource {:?} in group {group:?}",
            resource.resource
        ));
    };
    let module = ResourceModule::new(group, &resource.resource, info.singular, info.scope);
    let verb = resource.verb.as_str();
    let namespace = (info.scope == ResourceScope::Namespaced)
        .then(|| format!("{NAMESPACE_TYPE}:{cluster}/{}", resource.namespace));
    let namespace_parent = |namespace: &String| Tuple::new(&tenant.account, PARENT, namespace);
    let user = user(&question.user);
    let denied = Decision::NoOpinion("the org's store does not allow it".into());

    if COLLECTION_VERBS.contains(&verb) {
        let relation = module.verb_relation(verb);
        return match &namespace {
            None => check(
                tenant.store.clone(),
                Tuple::new(user, relation, &tenant.account),
                Vec::new(),
                denied,
            ),
            Some(_) if resource.namespace.is_empty() => no_opinion(format!(
                "{verb} of {} across every namespace is not modelled",
                resource.resource
            )),
            Some(namespace) => check(
                tenant.store.clone(),
                Tuple::new(user, relation, namespace),
                vec![namespace_parent(namespace)],
                denied,
            ),
        };
    }
    if !OBJECT_VERBS.contains(&verb) {
        return no_opinion(format!("the verb {verb:?} is not modelled"));
    }
    if resource.name.is_empty() {
        return no_opinion(format!("{verb} of {} names no object", resource.resource));
    }
    let object = format!("{}:{cluster}/{}", module.type_name(), resource.name);
    let contextual = match &namespace {
        None => vec![Tuple::new(&tenant.account, PARENT, &object)],
        Some(_) if resource.namespace.is_empty() => {
            return no_opinion(format!(
                "{verb} of the namespaced {} names no namespace",
                resource.resource
            ));
        }
        Some(namespace) => vec![
            namespace_parent(namespace),
            Tuple::new(namespace, PARENT, &object),
        ],
    };
    check(
        tenant.store.clone(),
        Tuple::new(user, verb, object),
        contextual,
        denied,
    )
}

/// The organisation's workspace `cluster`, or the answer when it is not one (yet).
fn tenant(cluster: &ClusterName, rules: &Rules, view: &dyn View) -> Result<Tenant, Decision> {
    let miss = |reason: String| {
        if view.may_retry(cluster) {
            Decision::Retry(rules.retry_after)
        } else {
            Decision::NoOpinion(reason)
        }
    };
    match view.workspace(cluster) {
        Workspace::Tenant(tenant) => Ok(tenant),
        Workspace::Outside => Err(Decision::NoOpinion(format!(
            "workspace {cluster} is not an organisation's"
        ))),
        Workspace::Unknown => Err(miss(format!(
            "workspace {cluster} is not known (it does not bind the export, or is new)"
        ))),
        Workspace::Pending(reason) => Err(miss(format!("workspace {cluster}: {reason}"))),
    }
}

/// A check of `tuple`, unless OpenFGA would refuse one of its tuples.
fn check(store: String, tuple: Tuple, contextual: Vec<Tuple>, denied: Decision) -> Plan {
    if let Some(reason) = std::iter::once(&tuple)
        .chain(&contextual)
        .find_map(Tuple::invalid)
    {
        return Plan::Answer(Decision::NoOpinion(format!("cannot be checked: {reason}")));
    }
    Plan::Check(Check {
        store,
        tuple,
        contextual,
        denied,
    })
}

#[cfg(test)]
mod tests;
