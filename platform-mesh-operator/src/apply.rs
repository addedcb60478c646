//! Making one object match what it should be, writing only when it does not: the object is
//! read, and server-side applied (one field manager, forced, so an edit by someone else is
//! put back) only when a field this operator owns differs or is missing. A reconcile of a
//! tree that is already right therefore only reads.

use kube::Api;
use kube::api::{DynamicObject, Patch, PatchParams};
use lifecycle::SubroutineError;
use serde_json::Value;

use crate::bootstrap::{Desired, Readiness};

/// Whether every field of `desired` is in `live` with the same value: objects may have more
/// keys in `live` (defaults, status, metadata the server adds), arrays must match element by
/// element, anything else must be equal.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want
            .iter()
            .all(|(key, value)| have.get(key).is_some_and(|h| is_subset(value, h))),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        _ => desired == live,
    }
}

/// `object` as the JSON an apply sends, with its apiVersion and kind.
pub fn typed_value<K: kube::Resource<DynamicType = ()> + serde::Serialize>(
    object: &K,
) -> Result<Value, SubroutineError> {
    let mut value = serde_json::to_value(object)
        .map_err(|e| SubroutineError::transient(format!("encoding: {e}")))?;
    value["apiVersion"] = K::api_version(&()).into();
    value["kind"] = K::kind(&()).into();
    Ok(value)
}

/// Whether `object` shows what `readiness` asks for.
pub fn is_ready(readiness: Readiness, object: &Value) -> bool {
    let status = &object["status"];
    match readiness {
        Readiness::Exists => true,
        Readiness::WorkspaceReady => status["phase"] == "Ready",
        Readiness::ConditionReady => status["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        }),
        Readiness::IdentityHash => status["identityHash"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
    }
}

/// What [`ensure`] found and did.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensured {
    /// Whether it wrote.
    pub written: bool,
    /// The object as the server has it now.
    pub live: Value,
}

/// Reads the object `desired` names through `api` and applies `desired` when it differs.
pub async fn ensure_value(
    api: &Api<DynamicObject>,
    desired: &Value,
    what: &str,
    field_manager: &str,
) -> Result<Ensured, SubroutineError> {
    let name = desired["metadata"]["name"].as_str().unwrap_or_default();
    let live = match api.get_opt(name).await {
        Ok(live) => live,
        // The kind is not served yet: a binding just turned Ready, kcp serves its resources
        // a moment later.
        Err(kube::Error::Api(s)) if s.code == 404 && s.message.contains("page not found") => {
            return Err(lifecycle::Wait {
                message: format!("waiting for the server to serve the kind of {what}"),
                requeue_after: Some(crate::controller::KCP_WAIT_POLL),
            }
            .into());
        }
        Err(e) => return Err(SubroutineError::kube(format!("reading {what}"), e)),
    };
    let live = live
        .map(serde_json::to_value)
        .transpose()
        .map_err(|e| SubroutineError::transient(format!("decoding {what}: {e}")))?;
    apply_unless_same(api, desired, live, what, field_manager).await
}

/// The write half of [`ensure_value`], for a caller that already read the object (`live`,
/// `None` when missing): applies `desired` only when it is not a subset of `live`.
pub async fn apply_unless_same(
    api: &Api<DynamicObject>,
    desired: &Value,
    live: Option<Value>,
    what: &str,
    field_manager: &str,
) -> Result<Ensured, SubroutineError> {
    if let Some(live) = live
        && is_subset(desired, &live)
    {
        return Ok(Ensured {
            written: false,
            live,
        });
    }
    let name = desired["metadata"]["name"].as_str().unwrap_or_default();
    let applied = api
        .patch(
            name,
            &PatchParams::apply(field_manager).force(),
            &Patch::Apply(desired),
        )
        .await
        .map_err(|e| SubroutineError::kube(format!("applying {what}"), e))?;
    tracing::info!(object = what, "applied");
    let live = serde_json::to_value(applied)
        .map_err(|e| SubroutineError::transient(format!("decoding {what}: {e}")))?;
    Ok(Ensured {
        written: true,
        live,
    })
}

/// [`ensure_value`] for an object of the kcp tree, through `workspace`, a client for its
/// workspace (every kind of the tree is cluster-scoped).
pub async fn ensure(
    workspace: kube::Client,
    desired: &Desired,
    field_manager: &str,
) -> Result<Ensured, SubroutineError> {
    let api = Api::all_with(workspace, &desired.resource);
    ensure_value(&api, &desired.object, &desired.describe(), field_manager).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_subset_ignores_what_the_server_adds_but_not_what_differs() {
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}},
                             "spec": {"list": [{"a": 1}], "flag": true}});
        let live = json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "1", "y": "2"}},
                          "spec": {"list": [{"a": 1, "b": 2}], "flag": true, "extra": 0},
                          "status": {}});
        assert!(is_subset(&desired, &live));
        for changed in [
            json!({"metadata": {"name": "a", "labels": {"x": "2"}}, "spec": {"list": [{"a": 1}], "flag": true}}),
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"list": [{"a": 1}, {"a": 2}], "flag": true}}),
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"list": [{"a": 1}], "flag": false}}),
            json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"list": [{"a": 1}], "flag": true, "new": 1}}),
        ] {
            assert!(!is_subset(&changed, &live), "{changed}");
        }
    }

    #[test]
    fn readiness_reads_phase_conditions_and_identity() {
        let ready = json!({"status": {"phase": "Ready", "identityHash": "h",
            "conditions": [{"type": "Ready", "status": "True"}]}});
        let not = json!({"status": {"phase": "Initializing", "identityHash": "",
            "conditions": [{"type": "Ready", "status": "False"}]}});
        for readiness in [
            Readiness::WorkspaceReady,
            Readiness::ConditionReady,
            Readiness::IdentityHash,
        ] {
            assert!(is_ready(readiness, &ready), "{readiness:?}");
            assert!(!is_ready(readiness, &not), "{readiness:?}");
            assert!(!is_ready(readiness, &json!({})), "{readiness:?}");
        }
        assert!(is_ready(Readiness::Exists, &json!({})));
    }
}
