//! metav1 Conditions: the names, reasons and `lastTransitionTime` rule the engine uses, and
//! reading them from any object's JSON.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// The aggregate condition type.
pub const READY: &str = "Ready";
/// Suffix of the condition type a subroutine reports under while finalizing.
pub const FINALIZE_SUFFIX: &str = "Finalize";

/// Condition status strings.
pub mod status {
    /// The condition holds.
    pub const TRUE: &str = "True";
    /// The condition does not hold.
    pub const FALSE: &str = "False";
    /// Not known (yet).
    pub const UNKNOWN: &str = "Unknown";
}

/// Condition reasons (as upstream `platform-mesh/subroutines`).
pub mod reason {
    /// The subroutine (or, for `Ready`, every subroutine) completed.
    pub const COMPLETE: &str = "Complete";
    /// The subroutine failed.
    pub const ERROR: &str = "Error";
    /// The subroutine waits for something.
    pub const PENDING: &str = "Pending";
    /// The subroutine stopped the chain.
    pub const STOPPED: &str = "Stopped";
    /// The subroutine had nothing to do.
    pub const SKIPPED: &str = "Skipped";
    /// Not reconciled yet.
    pub const UNKNOWN: &str = "Unknown";
}

/// The condition type a subroutine reports under for an action.
pub fn condition_type(subroutine: &str, finalizing: bool) -> String {
    if finalizing {
        format!("{subroutine}{FINALIZE_SUFFIX}")
    } else {
        subroutine.to_owned()
    }
}

/// The current time, truncated to whole seconds as the API server stores `metav1.Time`, so a
/// freshly computed condition compares equal to the one read back.
pub fn now() -> Time {
    let now = Timestamp::now();
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// Reads `status.conditions` from an object's JSON. Entries that are not metav1 Conditions are
/// ignored (they cannot be ours).
pub fn from_object_json(object: &serde_json::Value) -> Vec<Condition> {
    object
        .pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| serde_json::from_value(item.clone()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Sets a condition with `meta.SetStatusCondition` semantics: a new type is appended with
/// `lastTransitionTime = now`; an existing one keeps its `lastTransitionTime` unless its status
/// flips, and always takes the new reason, message and observedGeneration.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    observed_generation: Option<i64>,
    now: &Time,
) {
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != status {
            existing.status = status.to_owned();
            existing.last_transition_time = now.clone();
        }
        reason.clone_into(&mut existing.reason);
        message.clone_into(&mut existing.message);
        existing.observed_generation = observed_generation;
    } else {
        conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: message.to_owned(),
            observed_generation,
            last_transition_time: now.clone(),
        });
    }
}

/// Adds `type_` as Unknown/`Unknown` when it is missing.
pub fn seed(
    conditions: &mut Vec<Condition>,
    type_: &str,
    observed_generation: Option<i64>,
    now: &Time,
) {
    if find(conditions, type_).is_none() {
        set(
            conditions,
            type_,
            status::UNKNOWN,
            reason::UNKNOWN,
            &format!("awaiting the first reconciliation of {type_}"),
            observed_generation,
            now,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    #[test]
    fn transition_time_changes_only_when_status_flips() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            "A",
            "Unknown",
            "Unknown",
            "m0",
            Some(1),
            &at(10),
        );
        assert_eq!(conditions[0].last_transition_time, at(10));

        set(
            &mut conditions,
            "A",
            "Unknown",
            "Pending",
            "m1",
            Some(2),
            &at(20),
        );
        assert_eq!(conditions[0].last_transition_time, at(10), "same status");
        assert_eq!(conditions[0].reason, "Pending");
        assert_eq!(conditions[0].message, "m1");
        assert_eq!(conditions[0].observed_generation, Some(2));

        set(
            &mut conditions,
            "A",
            "True",
            "Complete",
            "",
            Some(2),
            &at(30),
        );
        assert_eq!(conditions[0].last_transition_time, at(30), "flipped");
        assert_eq!(conditions.len(), 1);
    }

    #[test]
    fn seed_only_adds_missing() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            "A",
            "True",
            "Complete",
            "",
            Some(1),
            &at(10),
        );
        seed(&mut conditions, "A", Some(2), &at(20));
        seed(&mut conditions, "B", Some(2), &at(20));
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].observed_generation, Some(1));
        assert_eq!(conditions[1].type_, "B");
        assert_eq!(conditions[1].reason, "Unknown");
        assert_eq!(conditions[1].status, "Unknown");
        assert_eq!(
            conditions[1].message,
            "awaiting the first reconciliation of B"
        );
    }

    #[test]
    fn reads_conditions_from_json_and_ignores_foreign_shapes() {
        let object = serde_json::json!({
            "status": {"conditions": [
                {"type": "Ready", "status": "True", "reason": "Complete", "message": "",
                 "lastTransitionTime": "2024-01-01T00:00:00Z"},
                {"type": "Weird"}
            ]}
        });
        let conditions = from_object_json(&object);
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].type_, "Ready");
        assert!(from_object_json(&serde_json::json!({})).is_empty());
    }

    #[test]
    fn now_has_whole_seconds() {
        let now = now();
        assert_eq!(now.0.subsec_nanosecond(), 0);
    }

    #[test]
    fn finalize_condition_type() {
        assert_eq!(
            condition_type("WorkspaceSubroutine", false),
            "WorkspaceSubroutine"
        );
        assert_eq!(
            condition_type("WorkspaceSubroutine", true),
            "WorkspaceSubroutineFinalize"
        );
    }
}
