//! The admission decisions for Accounts, without any I/O: what the mutating webhook patches and
//! what the validating webhook refuses.

use kit::admission::json_patch::jsonptr::PointerBuf;
use kit::admission::json_patch::{AddOperation, Patch, PatchOperation, ReplaceOperation};
use kit::admission::{bad_request, forbidden, patched};
use kube::core::DynamicObject;
use kube::core::admission::{self, AdmissionRequest, AdmissionResponse};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::controllers::workspace_type_name;

/// The API group of `Account`.
pub const ACCOUNT_GROUP: &str = "core.platform-mesh.io";
/// The kind the webhooks act on.
pub const ACCOUNT_KIND: &str = "Account";

/// The operation label of a validation, as in `account_operator_webhook_validations_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A CREATE request.
    Create,
    /// An UPDATE request.
    Update,
}

impl Operation {
    /// `create` or `update`, the metric's label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
        }
    }
}

/// The outcome of a validation that ran (CREATE or UPDATE of an Account), for the metric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    /// CREATE or UPDATE.
    pub operation: Operation,
    /// Whether the Account was admitted.
    pub allowed: bool,
    /// The Account's `spec.type` (empty if absent).
    pub account_type: String,
}

/// The rules both webhooks apply, built from the operator's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    allowed_types: Vec<String>,
    deny_list: Vec<String>,
    creator_only_when_empty: bool,
}

impl Policy {
    /// The rules for these flag values. The allow-list is `org` plus `additional_account_types`;
    /// list items are trimmed and empty items dropped (as the comma-separated flags are parsed
    /// upstream).
    pub fn new(
        deny_list: &[String],
        additional_account_types: &[String],
        creator_only_when_empty: bool,
    ) -> Self {
        let clean = |items: &[String]| -> Vec<String> {
            items
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut allowed_types = vec![crds::account::TYPE_ORG.to_owned()];
        allowed_types.extend(clean(additional_account_types));
        Self {
            allowed_types,
            deny_list: clean(deny_list),
            creator_only_when_empty,
        }
    }

    /// The account types the validating webhook admits.
    pub fn allowed_types(&self) -> &[String] {
        &self.allowed_types
    }

    /// The mutating webhook: on CREATE of an Account, set `spec.creator` to the requesting
    /// user (overwriting any value, or only when empty with `creator_only_when_empty`). Other
    /// requests are admitted unchanged.
    pub fn mutate(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        if !is_account(request) || request.operation != admission::Operation::Create {
            return AdmissionResponse::from(request);
        }
        let Some(object) = &request.object else {
            return bad_request(request, "CREATE request without an object");
        };
        let Some(username) = request
            .user_info
            .username
            .as_deref()
            .filter(|u| !u.is_empty())
        else {
            // Nothing to record; an authenticated request always has a user name.
            return AdmissionResponse::from(request);
        };
        match creator_patch(object, username, self.creator_only_when_empty) {
            Ok(Some(operation)) => patched(request, Patch(vec![operation])),
            Ok(None) => AdmissionResponse::from(request),
            Err(message) => bad_request(request, message),
        }
    }

    /// The validating webhook: on CREATE and UPDATE of an Account, check the new object's type
    /// against the allow-list and, for organisations, the name's length and the deny-list; on
    /// CREATE, also that the name can become a workspace (and an organisation's WorkspaceTypes).
    /// Returns the answer and, when a validation ran, its outcome for the metric.
    pub fn validate(
        &self,
        request: &AdmissionRequest<DynamicObject>,
    ) -> (AdmissionResponse, Option<Validation>) {
        let (operation, verb) = match request.operation {
            admission::Operation::Create => (Operation::Create, "CREATE"),
            admission::Operation::Update => (Operation::Update, "UPDATE"),
            _ => return (AdmissionResponse::from(request), None),
        };
        if !is_account(request) {
            return (AdmissionResponse::from(request), None);
        }
        let Some(object) = &request.object else {
            let message = format!("{verb} request without an object");
            return (bad_request(request, message), None);
        };
        let account_type = match account_type(object) {
            Ok(account_type) => account_type,
            Err(e) => {
                let message = format!("decoding the Account: {e}");
                return (bad_request(request, message), None);
            }
        };
        let name = object
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| request.name.clone());
        let refusal = self.refusal(&name, &account_type).or_else(|| {
            // A name never changes, so an UPDATE is not refused for it: that would only block
            // changes (a finalizer's removal among them) of an Account stored before this check.
            (operation == Operation::Create)
                .then(|| unworkable_name(&name, &account_type))
                .flatten()
        });
        let validation = Validation {
            operation,
            allowed: refusal.is_none(),
            account_type,
        };
        let response = match refusal {
            None => AdmissionResponse::from(request),
            Some(message) => forbidden(request, message),
        };
        (response, Some(validation))
    }

    /// Why an Account named `name` of type `account_type` is refused, if it is, by upstream's
    /// rules: the allow-list; for organisations the length and the deny-list.
    pub fn refusal(&self, name: &str, account_type: &str) -> Option<String> {
        if !self.allowed_types.iter().any(|t| t == account_type) {
            return Some(format!("account type {account_type} not in allowlist"));
        }
        if account_type != crds::account::TYPE_ORG {
            return None;
        }
        if name.trim().chars().count() < 3 {
            return Some(format!(
                "organization name {name:?} is too short, must be at least 3 characters"
            ));
        }
        if self.deny_list.iter().any(|denied| denied == name) {
            return Some(format!("organization name {name:?} is not allowed"));
        }
        None
    }
}

/// Why a new Account named `name` of type `account_type` could never become what the operator
/// makes of it (a Workspace; for an organisation, also its WorkspaceTypes), if so. Refusing it
/// at admission beats an Account that is stored and then fails for good.
fn unworkable_name(name: &str, account_type: &str) -> Option<String> {
    if let Some(why) = workspace_name_problem(name) {
        return Some(format!(
            "account name {name:?} cannot name a kcp workspace: {why}"
        ));
    }
    if account_type != crds::account::TYPE_ORG {
        return None;
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Some(format!(
            "organization name {name:?} must start with a lowercase letter: the \
             organization's WorkspaceTypes are named after it, and kcp requires a \
             WorkspaceType name to start with a letter"
        ));
    }
    let longest = workspace_type_name(name, crds::account::TYPE_ACCOUNT);
    if longest.len() > MAX_WORKSPACE_NAME {
        return Some(format!(
            "organization name {name:?} is {} characters long, at most {} are allowed: the \
             organization's WorkspaceType {longest:?} must fit kcp's limit of {MAX_WORKSPACE_NAME}",
            name.len(),
            MAX_WORKSPACE_NAME - (longest.len() - name.len()),
        ));
    }
    None
}

/// The longest name kcp accepts for a Workspace or a WorkspaceType.
const MAX_WORKSPACE_NAME: usize = 63;

/// Why `name` cannot name a kcp Workspace, if it cannot: kcp requires an RFC 1123 label (at
/// most 63 lowercase letters, digits and `-`, starting and ending with a letter or digit),
/// while an Account's name may be any DNS subdomain (with dots, up to 253 characters).
fn workspace_name_problem(name: &str) -> Option<String> {
    if name.len() > MAX_WORKSPACE_NAME {
        return Some(format!(
            "it is {} characters long, at most {MAX_WORKSPACE_NAME} are allowed",
            name.len()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Some(format!(
            "it contains {bad:?}; only lowercase letters, digits and '-' are allowed"
        ));
    }
    if name.is_empty() || name.starts_with('-') || name.ends_with('-') {
        return Some("it must start and end with a lowercase letter or a digit".to_owned());
    }
    None
}

fn is_account(request: &AdmissionRequest<DynamicObject>) -> bool {
    request.kind.group == ACCOUNT_GROUP && request.kind.kind == ACCOUNT_KIND
}

/// The JSON patch operation setting `spec.creator` on `object` (none when nothing changes).
/// `add` where the field is absent and `replace` where it is present, as RFC 6902 requires.
fn creator_patch(
    object: &DynamicObject,
    username: &str,
    only_when_empty: bool,
) -> Result<Option<PatchOperation>, String> {
    let spec = match object.data.get("spec") {
        None | Some(Value::Null) => {
            let present = object.data.get("spec").is_some();
            return Ok(Some(set(
                &["spec"],
                json!({ "creator": username }),
                present,
            )));
        }
        Some(Value::Object(spec)) => spec,
        Some(_) => return Err("decoding the Account: spec is not an object".to_owned()),
    };
    let current = match spec.get("creator") {
        None | Some(Value::Null) => None,
        Some(Value::String(creator)) => Some(creator.as_str()),
        Some(_) => return Err("decoding the Account: spec.creator is not a string".to_owned()),
    };
    let keep = match current {
        Some(creator) => creator == username || (only_when_empty && !creator.trim().is_empty()),
        None => false,
    };
    if keep {
        return Ok(None);
    }
    let present = spec.contains_key("creator");
    Ok(Some(set(&["spec", "creator"], json!(username), present)))
}

/// Sets the field at `path` to `value`: `replace` if it is `present`, else `add`.
fn set(path: &[&str], value: Value, present: bool) -> PatchOperation {
    let path = PointerBuf::from_tokens(path.iter().copied());
    if present {
        PatchOperation::Replace(ReplaceOperation { path, value })
    } else {
        PatchOperation::Add(AddOperation { path, value })
    }
}

/// The Account's `spec.type` (empty if absent). Only that field is read, so an Account with
/// fields this version does not know still validates.
fn account_type(object: &DynamicObject) -> Result<String, serde_json::Error> {
    let spec = match object.data.get("spec") {
        Some(spec) => Option::<SpecView>::deserialize(spec)?,
        None => None,
    };
    Ok(spec.and_then(|spec| spec.type_).unwrap_or_default())
}

#[derive(Deserialize)]
struct SpecView {
    #[serde(default, rename = "type")]
    type_: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kube::core::Status;

    use super::*;

    fn policy(deny: &[&str], extra: &[&str]) -> Policy {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        Policy::new(&owned(deny), &owned(extra), false)
    }

    fn upstream_policy(deny: &[&str]) -> Policy {
        // The upstream tests allow `org` and `account`, as the chart does.
        policy(deny, &["account"])
    }

    fn account(name: &str, type_: &str) -> Value {
        json!({
            "apiVersion": "core.platform-mesh.io/v1alpha1",
            "kind": "Account",
            "metadata": { "name": name },
            "spec": { "type": type_, "displayName": name },
        })
    }

    type Request = AdmissionRequest<DynamicObject>;

    fn request(operation: &str, object: Option<Value>, old: Option<Value>) -> Request {
        serde_json::from_value(json!({
            "uid": "uid-1",
            "kind": { "group": ACCOUNT_GROUP, "version": "v1alpha1", "kind": ACCOUNT_KIND },
            "resource": { "group": ACCOUNT_GROUP, "version": "v1alpha1", "resource": "accounts" },
            "operation": operation,
            "userInfo": { "username": "alice@example.com" },
            "object": object,
            "oldObject": old,
        }))
        .unwrap()
    }

    /// What the webhooks answer when they admit `request` unchanged.
    fn allow(request: &Request) -> AdmissionResponse {
        AdmissionResponse::from(request)
    }

    fn create(name: &str, type_: &str) -> Request {
        request("CREATE", Some(account(name, type_)), None)
    }

    fn update(old: (&str, &str), new: (&str, &str)) -> Request {
        request(
            "UPDATE",
            Some(account(new.0, new.1)),
            Some(account(old.0, old.1)),
        )
    }

    fn message(response: &AdmissionResponse) -> &str {
        &response.result.message
    }

    const DENY: &[&str] = &["admin", "root", "system"];

    // The upstream webhook tests (api/v1alpha1/account_webhook_test.go), create cases.

    #[test]
    fn create_denied_organization_name() {
        let (response, _) = upstream_policy(DENY).validate(&create("admin", "org"));
        assert!(!response.allowed);
        assert_eq!(
            message(&response),
            r#"organization name "admin" is not allowed"#
        );
        assert_eq!(response.result.code, 403);
        assert_eq!(response.uid, "uid-1");
    }

    #[test]
    fn create_allowed_organization_name() {
        let (response, _) = upstream_policy(DENY).validate(&create("my-org", "org"));
        assert!(response.allowed, "{response:?}");
        assert_eq!(response.result, Status::default());
    }

    #[test]
    fn create_non_organization_account_with_denied_name() {
        let (response, _) = upstream_policy(DENY).validate(&create("admin", "account"));
        assert!(response.allowed, "{response:?}");
    }

    #[test]
    fn create_empty_deny_list() {
        let (response, _) = upstream_policy(&[]).validate(&create("admin", "org"));
        assert!(response.allowed, "{response:?}");
    }

    #[test]
    fn create_deny_less_than_3_characters() {
        let (response, _) = upstream_policy(DENY).validate(&create("ab", "org"));
        assert!(!response.allowed);
        assert_eq!(
            message(&response),
            r#"organization name "ab" is too short, must be at least 3 characters"#
        );
    }

    // Update cases: the checks apply to the new object only.

    #[test]
    fn update_organization_name_in_deny_list() {
        let (response, _) =
            upstream_policy(DENY).validate(&update(("admin", "org"), ("admin", "org")));
        assert!(!response.allowed);
        assert_eq!(
            message(&response),
            r#"organization name "admin" is not allowed"#
        );
    }

    #[test]
    fn update_allowed_organization_name() {
        let (response, _) =
            upstream_policy(DENY).validate(&update(("my-org", "org"), ("my-org", "org")));
        assert!(response.allowed, "{response:?}");
    }

    #[test]
    fn update_changing_from_account_to_organization_with_denied_name() {
        let (response, _) =
            upstream_policy(DENY).validate(&update(("admin", "account"), ("admin", "org")));
        assert!(!response.allowed);
        assert_eq!(
            message(&response),
            r#"organization name "admin" is not allowed"#
        );
    }

    #[test]
    fn update_changing_from_account_to_organization_with_allowed_name() {
        let (response, _) =
            upstream_policy(DENY).validate(&update(("my-org", "account"), ("my-org", "org")));
        assert!(response.allowed, "{response:?}");
    }

    #[test]
    fn update_changing_from_organization_to_account_with_denied_name() {
        let (response, _) =
            upstream_policy(DENY).validate(&update(("admin", "org"), ("admin", "account")));
        assert!(response.allowed, "{response:?}");
    }

    #[test]
    fn update_account_with_denied_name() {
        let (response, _) =
            upstream_policy(DENY).validate(&update(("admin", "account"), ("admin", "account")));
        assert!(response.allowed, "{response:?}");
    }

    #[test]
    fn update_empty_deny_list() {
        let (response, _) =
            upstream_policy(&[]).validate(&update(("admin", "org"), ("admin", "org")));
        assert!(response.allowed, "{response:?}");
    }

    #[test]
    fn update_deny_less_than_3_characters() {
        let (response, _) = upstream_policy(DENY).validate(&update(("ab", "org"), ("ab", "org")));
        assert!(!response.allowed);
        assert_eq!(
            message(&response),
            r#"organization name "ab" is too short, must be at least 3 characters"#
        );
    }

    // The allow-list.

    #[test]
    fn only_org_is_allowed_without_additional_types() {
        let policy = policy(&[], &[]);
        assert_eq!(policy.allowed_types(), ["org"]);
        let (response, validation) = policy.validate(&create("team", "account"));
        assert!(!response.allowed);
        assert_eq!(message(&response), "account type account not in allowlist");
        assert_eq!(
            validation,
            Some(Validation {
                operation: Operation::Create,
                allowed: false,
                account_type: "account".to_owned(),
            })
        );
    }

    #[test]
    fn additional_types_are_allowed_and_trimmed() {
        let policy = policy(&[], &[" account ", "", "project"]);
        assert_eq!(policy.allowed_types(), ["org", "account", "project"]);
        assert!(policy.validate(&create("x", "project")).0.allowed);
        let (response, _) = policy.validate(&create("x", "Project"));
        assert_eq!(message(&response), "account type Project not in allowlist");
    }

    #[test]
    fn type_is_checked_before_the_name() {
        let (response, _) = upstream_policy(DENY).validate(&create("ab", "team"));
        assert_eq!(message(&response), "account type team not in allowlist");
    }

    #[test]
    fn missing_type_is_not_in_the_allowlist() {
        let object = json!({ "metadata": { "name": "acme" }, "spec": { "displayName": "A" } });
        let (response, validation) =
            upstream_policy(DENY).validate(&request("CREATE", Some(object), None));
        assert_eq!(message(&response), "account type  not in allowlist");
        assert_eq!(validation.unwrap().account_type, "");
    }

    #[test]
    fn deny_list_is_exact_and_case_sensitive() {
        let policy = upstream_policy(&[" admin ", "www"]);
        assert!(!policy.validate(&create("admin", "org")).0.allowed);
        // Not deny-listed, though no kcp workspace can have the name.
        let (response, _) = policy.validate(&create("Admin", "org"));
        assert!(message(&response).contains("cannot name a kcp workspace"));
        assert!(policy.validate(&create("admins", "org")).0.allowed);
        assert!(policy.validate(&create("wwww", "org")).0.allowed);
    }

    #[test]
    fn names_that_can_never_become_a_workspace_are_refused_saying_why() {
        let policy = upstream_policy(DENY);
        let (long, longest) = ("a".repeat(64), "a".repeat(63));
        let (long_org, longest_org) = ("o".repeat(56), "o".repeat(55));
        for (name, type_) in [
            (longest.as_str(), "account"),
            ("1team", "account"),
            ("a", "account"),
            ("a-b", "account"),
            (longest_org.as_str(), "org"),
            ("acme-2", "org"),
        ] {
            let (response, _) = policy.validate(&create(name, type_));
            assert!(
                response.allowed,
                "{name} ({type_}) was refused: {response:?}"
            );
        }
        let workspace = |name: &str, why: &str| {
            format!("account name {name:?} cannot name a kcp workspace: {why}")
        };
        let only = "only lowercase letters, digits and '-' are allowed";
        for (name, type_, expected) in [
            (
                long.as_str(),
                "account",
                workspace(&long, "it is 64 characters long, at most 63 are allowed"),
            ),
            (
                long.as_str(),
                "org",
                workspace(&long, "it is 64 characters long, at most 63 are allowed"),
            ),
            (
                "team.a",
                "account",
                workspace("team.a", &format!("it contains '.'; {only}")),
            ),
            (
                "acme.io",
                "org",
                workspace("acme.io", &format!("it contains '.'; {only}")),
            ),
            (
                "Team",
                "account",
                workspace("Team", &format!("it contains 'T'; {only}")),
            ),
            (
                "tëam",
                "account",
                workspace("tëam", &format!("it contains 'ë'; {only}")),
            ),
            (
                "team_a",
                "account",
                workspace("team_a", &format!("it contains '_'; {only}")),
            ),
            (
                "-team",
                "account",
                workspace(
                    "-team",
                    "it must start and end with a lowercase letter or a digit",
                ),
            ),
            (
                "team-",
                "account",
                workspace(
                    "team-",
                    "it must start and end with a lowercase letter or a digit",
                ),
            ),
            (
                "1acme",
                "org",
                "organization name \"1acme\" must start with a lowercase letter: the \
                 organization's WorkspaceTypes are named after it, and kcp requires a \
                 WorkspaceType name to start with a letter"
                    .to_owned(),
            ),
            (
                long_org.as_str(),
                "org",
                format!(
                    "organization name {long_org:?} is 56 characters long, at most 55 are \
                     allowed: the organization's WorkspaceType \"{long_org}-account\" must fit \
                     kcp's limit of 63"
                ),
            ),
        ] {
            let (response, validation) = policy.validate(&create(name, type_));
            assert!(!response.allowed, "{name} ({type_}) was admitted");
            assert_eq!(message(&response), expected);
            assert_eq!(response.result.code, 403);
            assert!(!validation.unwrap().allowed);
        }
    }

    #[test]
    fn an_update_is_not_refused_for_a_name_already_stored() {
        let (response, _) =
            upstream_policy(DENY).validate(&update(("team.a", "account"), ("team.a", "account")));
        assert!(response.allowed, "{response:?}");
    }

    #[test]
    fn name_length_is_measured_after_trimming() {
        let policy = upstream_policy(&[]);
        let (response, _) = policy.validate(&create(" ab ", "org"));
        assert_eq!(
            message(&response),
            r#"organization name " ab " is too short, must be at least 3 characters"#
        );
        assert!(policy.validate(&create("abc", "org")).0.allowed);
    }

    #[test]
    fn delete_and_connect_are_allowed_without_a_validation() {
        let policy = upstream_policy(DENY);
        let delete = request("DELETE", None, Some(account("admin", "org")));
        assert_eq!(policy.validate(&delete), (allow(&delete), None));
        let connect = request("CONNECT", None, None);
        assert_eq!(policy.validate(&connect), (allow(&connect), None));
        assert_eq!(policy.mutate(&delete), allow(&delete));
    }

    #[test]
    fn other_kinds_are_allowed_untouched() {
        let policy = upstream_policy(DENY);
        let mut other = create("admin", "org");
        other.kind.kind = "AccountInfo".to_owned();
        assert_eq!(policy.validate(&other), (allow(&other), None));
        assert_eq!(policy.mutate(&other), allow(&other));
        let mut other_group = create("admin", "org");
        other_group.kind.group = "example.com".to_owned();
        assert_eq!(policy.validate(&other_group).1, None);
    }

    #[test]
    fn undecodable_objects_are_a_bad_request() {
        let policy = upstream_policy(DENY);
        let object = json!({ "metadata": { "name": "acme" }, "spec": { "type": 7 } });
        let (response, validation) = policy.validate(&request("CREATE", Some(object), None));
        assert!(!response.allowed);
        let status = response.result;
        assert_eq!(status.code, 400);
        assert!(
            status.message.starts_with("decoding the Account:"),
            "{status:?}"
        );
        assert_eq!(validation, None);

        let (response, _) = policy.validate(&request("UPDATE", None, None));
        assert_eq!(response.result.message, "UPDATE request without an object");

        // An object that is not a JSON object never reaches the policy: kit's
        // `parse_request` refuses the review (tested there).
        let response = policy.mutate(&request("CREATE", Some(json!({ "spec": [] })), None));
        assert_eq!(response.result.code, 400);
        let object = json!({ "spec": { "creator": 1 } });
        let response = policy.mutate(&request("CREATE", Some(object), None));
        assert_eq!(response.result.code, 400);
    }

    #[test]
    fn validation_outcomes_carry_operation_and_type() {
        let policy = upstream_policy(DENY);
        let (_, validation) = policy.validate(&update(("acme", "org"), ("acme", "org")));
        assert_eq!(
            validation,
            Some(Validation {
                operation: Operation::Update,
                allowed: true,
                account_type: "org".to_owned(),
            })
        );
    }

    // The mutating webhook.

    /// `patchType` as sent (kube keeps the field private).
    fn patch_type(response: &AdmissionResponse) -> Value {
        serde_json::to_value(response).unwrap()["patchType"].clone()
    }

    fn patch_of(response: &AdmissionResponse) -> Value {
        assert!(response.allowed, "{response:?}");
        match &response.patch {
            Some(patch) => {
                assert_eq!(patch_type(response), "JSONPatch");
                serde_json::from_slice(patch).unwrap()
            }
            None => json!([]),
        }
    }

    fn with_creator(creator: Value) -> Value {
        let mut object = account("acme", "org");
        object["spec"]["creator"] = creator;
        object
    }

    #[test]
    fn create_sets_the_creator_when_absent() {
        for only_when_empty in [false, true] {
            let policy = Policy::new(&[], &[], only_when_empty);
            let response = policy.mutate(&create("acme", "org"));
            assert_eq!(
                patch_of(&response),
                json!([{ "op": "add", "path": "/spec/creator", "value": "alice@example.com" }])
            );
        }
    }

    #[test]
    fn create_overwrites_the_creator_by_default() {
        let policy = Policy::new(&[], &[], false);
        let request = request("CREATE", Some(with_creator(json!("mallory"))), None);
        assert_eq!(
            patch_of(&policy.mutate(&request)),
            json!([{ "op": "replace", "path": "/spec/creator", "value": "alice@example.com" }])
        );
    }

    #[test]
    fn create_keeps_a_given_creator_when_only_defaulting() {
        let policy = Policy::new(&[], &[], true);
        let request = request("CREATE", Some(with_creator(json!("bob"))), None);
        let response = policy.mutate(&request);
        assert!(response.allowed);
        assert_eq!(response.patch, None);
        assert_eq!(patch_type(&response), Value::Null);
    }

    #[test]
    fn create_fills_an_empty_creator_when_only_defaulting() {
        let policy = Policy::new(&[], &[], true);
        for empty in [json!(""), json!("  "), Value::Null] {
            let request = request("CREATE", Some(with_creator(empty.clone())), None);
            assert_eq!(
                patch_of(&policy.mutate(&request)),
                json!([{ "op": "replace", "path": "/spec/creator", "value": "alice@example.com" }]),
                "creator {empty}"
            );
        }
    }

    #[test]
    fn create_with_the_same_creator_needs_no_patch() {
        let policy = Policy::new(&[], &[], false);
        let request = request(
            "CREATE",
            Some(with_creator(json!("alice@example.com"))),
            None,
        );
        assert_eq!(policy.mutate(&request).patch, None);
    }

    #[test]
    fn create_without_spec_adds_it() {
        let policy = Policy::new(&[], &[], false);
        let object = json!({ "metadata": { "name": "acme" } });
        assert_eq!(
            patch_of(&policy.mutate(&request("CREATE", Some(object), None))),
            json!([{ "op": "add", "path": "/spec", "value": { "creator": "alice@example.com" } }])
        );
    }

    #[test]
    fn update_is_not_mutated() {
        let policy = Policy::new(&[], &[], false);
        let request = request(
            "UPDATE",
            Some(with_creator(json!("bob"))),
            Some(with_creator(json!("bob"))),
        );
        assert_eq!(policy.mutate(&request), allow(&request));
    }

    #[test]
    fn create_without_a_username_is_left_alone() {
        let policy = Policy::new(&[], &[], false);
        let mut request = request("CREATE", Some(with_creator(json!("bob"))), None);
        request.user_info.username = None;
        assert_eq!(policy.mutate(&request), allow(&request));
    }

    #[test]
    fn mutation_does_not_validate() {
        // The mutating webhook admits what the validating webhook refuses: they are separate.
        let policy = upstream_policy(DENY);
        assert!(policy.mutate(&create("admin", "team")).allowed);
    }
}
