//! The APIExportPolicy controller (role `system`): grants the kcp `bind` verb on an APIExport
//! to the accounts its path expressions name, as tuples in each account's organisation store:
//! `root:orgs:<path>` gives `bind` on exactly that account, `root:orgs:<path>:*` gives
//! `bind_inherited` (that account and every descendant), `root:orgs:*` gives
//! `bind_inherited` on every organisation. Tuples of expressions that left the spec are
//! deleted. An organisation or account created later gets its tuples from the initializer,
//! before it turns Ready ([`tuples_for_new_workspace`]); upstream re-evaluated only policies
//! in `root:orgs`, and only for new orgs.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use crds::Account;
use crds::account_info::{ACCOUNT_INFO_NAME, AccountInfo};
use crds::api_export_policy::{API_EXPORT_POLICY_FINALIZER, ApiExportPolicy};
use fga::platform_mesh::{API_EXPORT_TYPE, account_object};
use fga::sync::TupleDiff;
use kcp::CLUSTER_ANNOTATION;
use kit::controller::{LifecycleController, Setup};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch};
use lifecycle::{Outcome, Subroutine, SubroutineError};
use serde_json::json;

use super::{Ctx, FgaOperation, Settings, annotation, merge_params, new_controller, poll};

/// The controller's name, as upstream.
pub const API_EXPORT_POLICY_RECONCILER: &str = "apiexportpolicy";

/// Builds the APIExportPolicy controller.
pub fn api_export_policy_controller(
    setup: &Setup,
    settings: Arc<Settings>,
) -> LifecycleController<ApiExportPolicy, Ctx> {
    new_controller(
        API_EXPORT_POLICY_RECONCILER,
        setup,
        vec![Box::new(ApiExportPolicySubroutine)],
        settings,
    )
}

/// What one path expression grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Grant {
    /// The account's workspace path, or `root:orgs` itself for every organisation.
    pub path: String,
    /// `bind` or `bind_inherited`.
    pub relation: &'static str,
}

/// Parses `[:]root:orgs:<path>[:*]`.
pub(super) fn parse_expression(expression: &str, orgs_path: &str) -> Result<Grant, String> {
    let trimmed = expression.strip_prefix(':').unwrap_or(expression);
    let (path, relation) = match trimmed.strip_suffix(":*") {
        Some(path) => (path, "bind_inherited"),
        None => (trimmed, "bind"),
    };
    let below = path
        .strip_prefix(orgs_path)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'));
    let valid_segments = path.split(':').all(|s| !s.is_empty() && s != "*");
    if !below || !valid_segments || (path == orgs_path && relation == "bind") {
        return Err(format!(
            "{expression:?} is not {orgs_path}:<path> or {orgs_path}:<path>:* (or {orgs_path}:* for every organization)"
        ));
    }
    Ok(Grant {
        path: path.to_owned(),
        relation,
    })
}

/// The tuples of one grant, per organisation store name.
async fn grant_tuples(
    settings: &Settings,
    grant: &Grant,
    principal: &str,
) -> Result<BTreeMap<String, Vec<fga::Tuple>>, SubroutineError> {
    let mut by_org: BTreeMap<String, Vec<fga::Tuple>> = BTreeMap::new();
    if grant.path == settings.orgs_path.as_str() {
        let orgs_cluster = settings.orgs_cluster().await?;
        let accounts = Api::<Account>::all(settings.workspace(&settings.orgs_path)?)
            .list(&ListParams::default())
            .await
            .map_err(|e| SubroutineError::kube("listing organizations", e))?;
        for org in accounts.items.iter().filter(|a| a.spec.type_ == "org") {
            let name = org.name_any();
            by_org
                .entry(name.clone())
                .or_default()
                .push(fga::Tuple::new(
                    account_object(&orgs_cluster, &name),
                    grant.relation,
                    principal,
                ));
        }
        return Ok(by_org);
    }
    // The account's AccountInfo says where its Account object lives; none yet: no tuple yet.
    let Some(info) = Api::<AccountInfo>::all(settings.cluster(&grant.path)?)
        .get_opt(ACCOUNT_INFO_NAME)
        .await
        .map_err(|e| {
            SubroutineError::kube(format!("reading the AccountInfo of {}", grant.path), e)
        })?
    else {
        return Ok(by_org);
    };
    let account = &info.spec.account;
    by_org
        .entry(info.spec.organization.name.clone())
        .or_default()
        .push(fga::Tuple::new(
            account_object(&account.origin_cluster_id, &account.name),
            grant.relation,
            principal,
        ));
    Ok(by_org)
}

/// The policy's principal: `apis_kcp_io_apiexport:<provider cluster>/<export>`.
async fn principal(
    settings: &Settings,
    policy: &ApiExportPolicy,
) -> Result<String, SubroutineError> {
    let reference = &policy.spec.api_export_ref;
    let provider = settings
        .logical_cluster(&reference.cluster_path)
        .await
        .map_err(|_| {
            poll(format!(
                "waiting for the provider workspace {}",
                reference.cluster_path
            ))
        })?;
    let provider = annotation(&provider, CLUSTER_ANNOTATION).ok_or_else(|| {
        poll(format!(
            "waiting for {} to have a cluster name",
            reference.cluster_path
        ))
    })?;
    Ok(format!("{API_EXPORT_TYPE}:{provider}/{}", reference.name))
}

/// The tuples of `expressions`, per organisation store name.
async fn policy_tuples(
    settings: &Settings,
    policy: &ApiExportPolicy,
    expressions: &[String],
) -> Result<BTreeMap<String, Vec<fga::Tuple>>, SubroutineError> {
    let principal = principal(settings, policy).await?;
    let mut all: BTreeMap<String, Vec<fga::Tuple>> = BTreeMap::new();
    for expression in expressions {
        let grant = parse_expression(expression, settings.orgs_path.as_str())
            .map_err(|e| SubroutineError::permanent("InvalidPathExpression", e))?;
        for (org, tuples) in grant_tuples(settings, &grant, &principal).await? {
            all.entry(org).or_default().extend(tuples);
        }
    }
    Ok(all)
}

/// Whether `grant` names the workspace at `path` itself (an org is also named by
/// `root:orgs:*`); descendants of a named account need no tuple of their own, the model's
/// `bind_inherited from parent` covers them.
pub(super) fn names_workspace(grant: &Grant, path: &str, is_org: bool, orgs_path: &str) -> bool {
    grant.path == path || (is_org && grant.path == orgs_path)
}

/// The bind tuples existing policies give a workspace that is being initialized, so a new org
/// or account has them before it turns Ready; `object` is its account object. None when the
/// system export is not installed.
pub(super) async fn tuples_for_new_workspace(
    settings: &Settings,
    path: &str,
    is_org: bool,
    object: &str,
) -> Result<Vec<fga::Tuple>, SubroutineError> {
    let Some(policies) = settings
        .list_everywhere::<ApiExportPolicy>(&settings.system_slice)
        .await?
    else {
        return Ok(Vec::new());
    };
    let orgs_path = settings.orgs_path.as_str();
    let mut tuples = Vec::new();
    for (_, policy) in policies {
        let grants: Vec<Grant> = policy
            .spec
            .allow_path_expressions
            .iter()
            .filter_map(|e| parse_expression(e, orgs_path).ok())
            .filter(|g| names_workspace(g, path, is_org, orgs_path))
            .collect();
        if grants.is_empty() {
            continue;
        }
        let principal = principal(settings, &policy).await?;
        tuples.extend(
            grants
                .iter()
                .map(|g| fga::Tuple::new(object, g.relation, &principal)),
        );
    }
    Ok(tuples)
}

/// Writes or deletes tuples in each organisation's store; an organisation without a store
/// has nothing to delete and gets its tuples on a later evaluation.
async fn change(
    ctx: &Ctx,
    tuples: BTreeMap<String, Vec<fga::Tuple>>,
    operation: FgaOperation,
) -> Result<(), SubroutineError> {
    for (org, tuples) in tuples {
        let Some(store_id) = ctx
            .settings
            .org_store(&org)
            .await?
            .and_then(|s| s.status)
            .and_then(|s| s.store_id)
        else {
            continue;
        };
        let diff = match operation {
            FgaOperation::Delete => TupleDiff {
                writes: Vec::new(),
                deletes: tuples,
            },
            _ => TupleDiff {
                writes: tuples,
                deletes: Vec::new(),
            },
        };
        ctx.change_tuples(
            &store_id,
            &diff,
            operation,
            &format!("changing bind tuples of {org}"),
        )
        .await?;
    }
    Ok(())
}

/// Keeps the policy's bind tuples (condition `ApiExportPolicySubroutine`).
#[derive(Debug)]
struct ApiExportPolicySubroutine;

#[async_trait]
impl Subroutine<ApiExportPolicy, Ctx> for ApiExportPolicySubroutine {
    fn name(&self) -> &str {
        "ApiExportPolicySubroutine"
    }

    fn finalizers(&self, _: &ApiExportPolicy) -> Vec<String> {
        vec![API_EXPORT_POLICY_FINALIZER.to_owned()]
    }

    async fn process(
        &self,
        policy: &ApiExportPolicy,
        ctx: &Ctx,
    ) -> Result<Outcome, SubroutineError> {
        let spec = &policy.spec.allow_path_expressions;
        let managed = policy
            .status
            .as_ref()
            .map(|s| s.managed_allow_expressions.clone())
            .unwrap_or_default();
        let stale: Vec<String> = managed
            .iter()
            .filter(|e| !spec.contains(e))
            .cloned()
            .collect();
        // Stale expressions of an older spec may no longer parse; they wrote nothing then.
        let stale: Vec<String> = stale
            .into_iter()
            .filter(|e| parse_expression(e, ctx.settings.orgs_path.as_str()).is_ok())
            .collect();
        let desired = policy_tuples(&ctx.settings, policy, spec).await?;
        let mut outdated = policy_tuples(&ctx.settings, policy, &stale).await?;
        // A tuple still wanted by another expression stays.
        for (org, tuples) in &mut outdated {
            if let Some(wanted) = desired.get(org) {
                tuples.retain(|t| !wanted.contains(t));
            }
        }
        change(ctx, outdated, FgaOperation::Delete).await?;
        change(ctx, desired, FgaOperation::Apply).await?;
        if managed != *spec {
            let patch = json!({ "status": { "managedAllowExpressions": spec } });
            ctx.runtime
                .api::<ApiExportPolicy>()
                .map_err(|e| SubroutineError::transient_from("client", e))?
                .patch_status(&policy.name_any(), &merge_params(), &Patch::Merge(&patch))
                .await
                .map_err(|e| SubroutineError::kube("recording the managed expressions", e))?;
        }
        Ok(Outcome::Ok)
    }

    async fn finalize(
        &self,
        policy: &ApiExportPolicy,
        ctx: &Ctx,
    ) -> Result<Outcome, SubroutineError> {
        let mut expressions = policy.spec.allow_path_expressions.clone();
        if let Some(status) = &policy.status {
            expressions.extend(status.managed_allow_expressions.iter().cloned());
        }
        expressions.sort();
        expressions.dedup();
        expressions.retain(|e| parse_expression(e, ctx.settings.orgs_path.as_str()).is_ok());
        let tuples = policy_tuples(&ctx.settings, policy, &expressions).await?;
        change(ctx, tuples, FgaOperation::Delete).await?;
        Ok(Outcome::Ok)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_workspace_gets_the_grants_that_name_it() {
        let grant = |e: &str| parse_expression(e, "root:orgs").unwrap();
        let org = "root:orgs:acme";
        assert!(names_workspace(
            &grant("root:orgs:acme"),
            org,
            true,
            "root:orgs"
        ));
        assert!(names_workspace(
            &grant("root:orgs:acme:*"),
            org,
            true,
            "root:orgs"
        ));
        assert!(names_workspace(
            &grant("root:orgs:*"),
            org,
            true,
            "root:orgs"
        ));
        let team = "root:orgs:acme:team";
        assert!(!names_workspace(
            &grant("root:orgs:*"),
            team,
            false,
            "root:orgs"
        ));
        assert!(!names_workspace(
            &grant("root:orgs:acme:*"),
            team,
            false,
            "root:orgs"
        ));
        assert!(names_workspace(
            &grant("root:orgs:acme:team"),
            team,
            false,
            "root:orgs"
        ));
    }

    #[test]
    fn expressions_name_an_account_a_subtree_or_every_org() {
        let exact = parse_expression("root:orgs:acme:team", "root:orgs").unwrap();
        assert_eq!(
            (exact.path.as_str(), exact.relation),
            ("root:orgs:acme:team", "bind")
        );
        let subtree = parse_expression(":root:orgs:acme:*", "root:orgs").unwrap();
        assert_eq!(
            (subtree.path.as_str(), subtree.relation),
            ("root:orgs:acme", "bind_inherited")
        );
        let every = parse_expression("root:orgs:*", "root:orgs").unwrap();
        assert_eq!(
            (every.path.as_str(), every.relation),
            ("root:orgs", "bind_inherited")
        );
        for bad in [
            "root:other:acme",
            "root:orgs",
            "root:orgsx:a",
            "root:orgs::a",
            "root:orgs:*:a",
            "",
        ] {
            let error = parse_expression(bad, "root:orgs").unwrap_err();
            assert!(error.contains("root:orgs:<path>"), "{bad}: {error}");
        }
    }
}
