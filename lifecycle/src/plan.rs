//! The pure half of the engine: from the object as read, the results of the subroutines that
//! ran and the time, compute the finalizers and the status to write. No I/O here.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde_json::{Value, json};

use crate::conditions::{self, reason, status};
use crate::subroutine::{Method, Outcome, SubroutineError};

/// What the engine needs to know about the object, read generically from its JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// Whether `metadata.deletionTimestamp` is set.
    pub deleting: bool,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// `status.conditions`.
    pub conditions: Vec<Condition>,
    /// `status.observedGeneration`.
    pub observed_generation: Option<i64>,
}

impl Snapshot {
    /// Reads the snapshot from an object serialized to JSON.
    pub fn from_json(object: &Value) -> Self {
        let meta = |field: &str| object.pointer(&format!("/metadata/{field}"));
        Self {
            generation: meta("generation").and_then(Value::as_i64),
            deleting: meta("deletionTimestamp").is_some_and(|v| !v.is_null()),
            finalizers: meta("finalizers")
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|f| f.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            conditions: conditions::from_object_json(object),
            observed_generation: object
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64),
        }
    }
}

/// One subroutine run.
#[derive(Debug)]
pub struct Step {
    /// The subroutine's name.
    pub subroutine: String,
    /// The method that ran.
    pub action: Method,
    /// Its result.
    pub result: Result<Outcome, SubroutineError>,
    /// The subroutine's finalizers present on the object when it ran (finalize only).
    pub finalizers: Vec<String>,
}

impl Step {
    /// Whether the chain goes on after this step.
    pub fn continues(&self) -> bool {
        self.result.as_ref().is_ok_and(Outcome::continues)
    }

    /// Whether this step waits for something outside the object.
    pub fn waits(&self) -> bool {
        matches!(self.result, Ok(Outcome::Pending { .. }))
    }

    /// Status, reason and message of this step's condition.
    /// The subroutine's condition: status, reason, message. A permanent error carries its own
    /// reason (`InvalidCoreModule`, say), so the condition names the cause; `Ready` says `Error`.
    fn condition(&self) -> (&'static str, &str, String) {
        match &self.result {
            Ok(Outcome::Ok | Outcome::OkRequeue(_)) => (
                status::TRUE,
                reason::COMPLETE,
                match self.action {
                    Method::Finalize => format!("{} finalized", self.subroutine),
                    _ => format!("{} completed", self.subroutine),
                },
            ),
            Ok(Outcome::Skip { message }) => (status::TRUE, reason::SKIPPED, message.clone()),
            Ok(Outcome::Pending { message, .. }) => {
                (status::UNKNOWN, reason::PENDING, message.clone())
            }
            Ok(Outcome::Stop { message } | Outcome::StopRequeue { message, .. }) => {
                (status::FALSE, reason::STOPPED, message.clone())
            }
            Err(SubroutineError::Permanent { reason, message }) => (
                status::FALSE,
                reason,
                format!("{message} (not retried until the object changes)"),
            ),
            Err(error) => (status::FALSE, reason::ERROR, error.condition_message()),
        }
    }
}

/// What the engine should write, and tell its caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The full condition list after this reconcile.
    pub conditions: Vec<Condition>,
    /// The merge patch for the status subresource, `None` when the status is unchanged.
    pub status_patch: Option<Value>,
    /// The new `metadata.finalizers`, `None` when unchanged.
    pub finalizers: Option<Vec<String>>,
    /// The smallest requeue any step asked for.
    pub requeue_after: Option<Duration>,
    /// Every subroutine of the chain ran and completed without asking for a requeue.
    pub completed: bool,
}

/// The finalizer list with every `wanted` one present (existing order kept, new ones appended
/// in chain order), or `None` when none is missing.
pub fn add_finalizers(current: &[String], wanted: &[String]) -> Option<Vec<String>> {
    let mut list = current.to_vec();
    for finalizer in wanted {
        if !list.contains(finalizer) {
            list.push(finalizer.clone());
        }
    }
    (list.len() != current.len()).then_some(list)
}

/// Computes the plan for a normal-mode reconcile.
///
/// - `names`: every subroutine of the chain in order (their conditions and `Ready` are seeded
///   Unknown/`Unknown` when missing);
/// - `steps`: the subroutines that ran, in the order they ran;
/// - `chain_len`: how many subroutines were due to run (so `completed` can tell a full run from
///   one that stopped early).
pub fn plan(
    before: &Snapshot,
    names: &[&str],
    steps: &[Step],
    chain_len: usize,
    now: &Time,
) -> Plan {
    let generation = before.generation;
    let mut conditions = before.conditions.clone();
    for name in names.iter().copied().chain([conditions::READY]) {
        conditions::seed(&mut conditions, name, generation, now);
    }
    for step in steps {
        let (status, reason, message) = step.condition();
        let type_ = conditions::condition_type(&step.subroutine, step.action == Method::Finalize);
        conditions::set(
            &mut conditions,
            &type_,
            status,
            reason,
            &message,
            generation,
            now,
        );
    }
    let (status, reason, message) = ready(steps, before.deleting);
    conditions::set(
        &mut conditions,
        conditions::READY,
        status,
        reason,
        &message,
        generation,
        now,
    );

    let changed = to_json(&conditions) != to_json(&before.conditions)
        || before.observed_generation != generation;
    let status_patch = changed
        .then(|| json!({"status": {"conditions": conditions, "observedGeneration": generation}}));

    let mut finalizers = before.finalizers.clone();
    for step in steps {
        let released = step.action == Method::Finalize
            && matches!(step.result, Ok(Outcome::Ok | Outcome::Skip { .. }));
        if released {
            finalizers.retain(|f| !step.finalizers.contains(f));
        }
    }
    let finalizers = (finalizers != before.finalizers).then_some(finalizers);

    Plan {
        conditions,
        status_patch,
        finalizers,
        requeue_after: min_requeue(steps),
        completed: completed(steps, chain_len),
    }
}

/// The smallest requeue the steps asked for.
pub fn min_requeue(steps: &[Step]) -> Option<Duration> {
    steps
        .iter()
        .filter_map(|s| s.result.as_ref().ok().and_then(Outcome::requeue_after))
        .min()
}

/// Whether all `chain_len` subroutines ran and completed (Ok or Skip, no requeue).
pub fn completed(steps: &[Step], chain_len: usize) -> bool {
    steps.len() == chain_len
        && steps
            .iter()
            .all(|s| matches!(s.result, Ok(Outcome::Ok | Outcome::Skip { .. })))
}

/// The `Ready` aggregate: Error > Stopped > Pending > Complete.
fn ready(steps: &[Step], deleting: bool) -> (&'static str, &'static str, String) {
    let first = |pick: fn(&Step) -> bool| steps.iter().find(|s| pick(s));
    if let Some(step) = first(|s| s.result.is_err()) {
        let (_, _, message) = step.condition();
        return (
            status::FALSE,
            reason::ERROR,
            format!("{} {} failed: {message}", step.subroutine, step.action),
        );
    }
    if let Some(step) = first(|s| {
        matches!(
            s.result,
            Ok(Outcome::Stop { .. } | Outcome::StopRequeue { .. })
        )
    }) {
        let (_, _, message) = step.condition();
        return (
            status::FALSE,
            reason::STOPPED,
            format!("{} stopped the chain: {message}", step.subroutine),
        );
    }
    if let Some(step) = first(|s| matches!(s.result, Ok(Outcome::Pending { .. }))) {
        let (_, _, message) = step.condition();
        return (
            status::UNKNOWN,
            reason::PENDING,
            format!("{} is pending: {message}", step.subroutine),
        );
    }
    let message = if deleting {
        "all finalizing subroutines completed"
    } else {
        "all subroutines completed successfully"
    };
    (status::TRUE, reason::COMPLETE, message.to_owned())
}

fn to_json(conditions: &[Condition]) -> Value {
    serde_json::to_value(conditions).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    const D: Duration = Duration::from_secs(30);

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(second).unwrap())
    }

    fn fresh(generation: i64) -> Snapshot {
        Snapshot {
            generation: Some(generation),
            deleting: false,
            finalizers: vec![],
            conditions: vec![],
            observed_generation: None,
        }
    }

    fn step(name: &str, result: Result<Outcome, SubroutineError>) -> Step {
        Step {
            subroutine: name.to_owned(),
            action: Method::Process,
            result,
            finalizers: vec![],
        }
    }

    fn finalize(name: &str, finalizer: &str, result: Result<Outcome, SubroutineError>) -> Step {
        Step {
            subroutine: name.to_owned(),
            action: Method::Finalize,
            result,
            finalizers: vec![finalizer.to_owned()],
        }
    }

    fn get<'a>(plan: &'a Plan, type_: &str) -> &'a Condition {
        conditions::find(&plan.conditions, type_)
            .unwrap_or_else(|| panic!("no {type_} in {:#?}", plan.conditions))
    }

    fn triple(c: &Condition) -> (&str, &str, &str) {
        (&c.status, &c.reason, &c.message)
    }

    /// An outcome, its expected condition (status, reason, message) and Ready (status, reason).
    type Case = (
        Result<Outcome, SubroutineError>,
        (&'static str, &'static str, &'static str),
        (&'static str, &'static str),
    );

    /// The condition mapping table: one outcome each, the chain `[A, B]` where A ran.
    #[test]
    fn condition_and_ready_per_outcome() {
        let cases: Vec<Case> = vec![
            (
                Ok(Outcome::Ok),
                ("True", "Complete", "A completed"),
                ("True", "Complete"),
            ),
            (
                Ok(Outcome::OkRequeue(D)),
                ("True", "Complete", "A completed"),
                ("True", "Complete"),
            ),
            (
                Ok(Outcome::skip("not an org")),
                ("True", "Skipped", "not an org"),
                ("True", "Complete"),
            ),
            (
                Ok(Outcome::pending("waiting for workspace")),
                ("Unknown", "Pending", "waiting for workspace"),
                ("Unknown", "Pending"),
            ),
            (
                Ok(Outcome::stop("workspace not ready")),
                ("False", "Stopped", "workspace not ready"),
                ("False", "Stopped"),
            ),
            (
                Ok(Outcome::stop_requeue("workspace not ready", D)),
                ("False", "Stopped", "workspace not ready"),
                ("False", "Stopped"),
            ),
            (
                Err(SubroutineError::transient("kcp unavailable")),
                ("False", "Error", "kcp unavailable (will retry)"),
                ("False", "Error"),
            ),
            (
                Err(SubroutineError::permanent("InvalidSpec", "bad type")),
                (
                    "False",
                    "InvalidSpec",
                    "bad type (not retried until the object changes)",
                ),
                ("False", "Error"),
            ),
        ];
        for (result, expected, ready) in cases {
            let label = format!("{result:?}");
            let plan = plan(&fresh(3), &["A", "B"], &[step("A", result)], 2, &at(100));
            assert_eq!(triple(get(&plan, "A")), expected, "{label}");
            let r = get(&plan, "Ready");
            assert_eq!((&*r.status, &*r.reason), ready, "{label}");
            assert!(
                r.message.contains('A') || r.status == "True",
                "{label}: {r:?}"
            );
            // B did not run: seeded.
            assert_eq!(triple(get(&plan, "B")).1, "Unknown", "{label}");
            assert!(
                plan.conditions
                    .iter()
                    .all(|c| c.observed_generation == Some(3))
            );
            assert!(plan.status_patch.is_some());
        }
    }

    #[test]
    fn ready_priority_is_error_then_stopped_then_pending() {
        let steps = [
            step("A", Ok(Outcome::pending("p"))),
            step("B", Ok(Outcome::stop("s"))),
            step("C", Err(SubroutineError::transient("e"))),
        ];
        let p = plan(&fresh(1), &["A", "B", "C"], &steps, 3, &at(1));
        assert_eq!(get(&p, "Ready").reason, "Error");
        assert_eq!(get(&p, "Ready").message, "C process failed: e (will retry)");
        let p = plan(&fresh(1), &["A", "B"], &steps[..2], 2, &at(1));
        assert_eq!(get(&p, "Ready").reason, "Stopped");
        let p = plan(&fresh(1), &["A"], &steps[..1], 1, &at(1));
        assert_eq!(get(&p, "Ready").reason, "Pending");
        assert_eq!(get(&p, "Ready").message, "A is pending: p");
    }

    #[test]
    fn requeue_minimum_and_completion() {
        let steps = [
            step("A", Ok(Outcome::OkRequeue(Duration::from_secs(60)))),
            step("B", Ok(Outcome::pending_for("p", Duration::from_secs(5)))),
        ];
        let p = plan(&fresh(1), &["A", "B", "C"], &steps, 3, &at(1));
        assert_eq!(p.requeue_after, Some(Duration::from_secs(5)));
        assert!(!p.completed);

        let steps = [
            step("A", Ok(Outcome::Ok)),
            step("B", Ok(Outcome::skip("s"))),
        ];
        let p = plan(&fresh(1), &["A", "B"], &steps, 2, &at(1));
        assert_eq!(p.requeue_after, None);
        assert!(p.completed);
        // A requeue is not "completed" (an initializer must not release yet).
        let steps = [step("A", Ok(Outcome::OkRequeue(D)))];
        assert!(!plan(&fresh(1), &["A"], &steps, 1, &at(1)).completed);
        // Errors carry no requeue; the caller backs off.
        let steps = [step("A", Err(SubroutineError::transient("x")))];
        assert_eq!(
            plan(&fresh(1), &["A"], &steps, 1, &at(1)).requeue_after,
            None
        );
    }

    #[test]
    fn unchanged_status_is_not_written_and_transition_time_kept() {
        let first = plan(
            &fresh(2),
            &["A"],
            &[step("A", Ok(Outcome::Ok))],
            1,
            &at(100),
        );
        let patch = first.status_patch.clone().unwrap();
        assert_eq!(patch["status"]["observedGeneration"], 2);
        // Read back what was written.
        let mut object = serde_json::json!({"metadata": {"generation": 2}});
        object["status"] = patch["status"].clone();
        let again = Snapshot::from_json(&object);
        let second = plan(&again, &["A"], &[step("A", Ok(Outcome::Ok))], 1, &at(200));
        assert_eq!(second.status_patch, None, "nothing changed");
        assert_eq!(second.conditions, first.conditions);

        // Same status, new message: written, lastTransitionTime kept.
        let third = plan(
            &again,
            &["A"],
            &[step("A", Ok(Outcome::skip("s")))],
            1,
            &at(300),
        );
        assert!(third.status_patch.is_some());
        assert_eq!(get(&third, "A").last_transition_time, at(100));
        // Status flips: time moves.
        let fourth = plan(
            &again,
            &["A"],
            &[step("A", Ok(Outcome::stop("s")))],
            1,
            &at(400),
        );
        assert_eq!(get(&fourth, "A").last_transition_time, at(400));
        assert_eq!(get(&fourth, "Ready").last_transition_time, at(400));

        // A new generation alone is a change (observedGeneration moves).
        object["metadata"]["generation"] = 3.into();
        let newer = plan(
            &Snapshot::from_json(&object),
            &["A"],
            &[step("A", Ok(Outcome::Ok))],
            1,
            &at(500),
        );
        let patch = newer.status_patch.clone().unwrap();
        assert_eq!(patch["status"]["observedGeneration"], 3);
        assert_eq!(get(&newer, "A").observed_generation, Some(3));
        assert_eq!(get(&newer, "A").last_transition_time, at(100));
    }

    #[test]
    fn foreign_conditions_are_kept() {
        let mut before = fresh(1);
        conditions::set(
            &mut before.conditions,
            "Other",
            "True",
            "Theirs",
            "m",
            Some(1),
            &at(5),
        );
        let p = plan(&before, &["A"], &[step("A", Ok(Outcome::Ok))], 1, &at(9));
        assert_eq!(get(&p, "Other").reason, "Theirs");
        let types: Vec<_> = p.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Other", "A", "Ready"]);
    }

    #[test]
    fn finalizers_are_added_in_chain_order_once() {
        let wanted = ["a".to_owned(), "b".to_owned()];
        assert_eq!(
            add_finalizers(&["other".to_owned()], &wanted),
            Some(vec!["other".to_owned(), "a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            add_finalizers(&["b".to_owned(), "a".to_owned()], &wanted),
            None
        );
    }

    #[test]
    fn finalizers_are_released_only_after_finalize_ok() {
        let mut before = fresh(4);
        before.deleting = true;
        before.finalizers = vec!["fa".into(), "fb".into(), "other".into()];

        // Reverse order: B first. B done, A pending: only fb goes.
        let steps = [
            finalize("B", "fb", Ok(Outcome::Ok)),
            finalize(
                "A",
                "fa",
                Ok(Outcome::pending("waiting for workspace deletion")),
            ),
        ];
        let p = plan(&before, &["A", "B"], &steps, 2, &at(1));
        assert_eq!(p.finalizers, Some(vec!["fa".into(), "other".into()]));
        assert_eq!(get(&p, "BFinalize").reason, "Complete");
        assert_eq!(get(&p, "AFinalize").reason, "Pending");
        assert_eq!(get(&p, "Ready").reason, "Pending");

        // Finalize errors, stops and requeues keep the finalizer.
        for result in [
            Err(SubroutineError::transient("x")),
            Ok(Outcome::stop("x")),
            Ok(Outcome::OkRequeue(D)),
        ] {
            let steps = [finalize("B", "fb", result)];
            assert_eq!(
                plan(&before, &["A", "B"], &steps, 2, &at(1)).finalizers,
                None
            );
        }

        // Both done: only the foreign finalizer stays.
        let steps = [
            finalize("B", "fb", Ok(Outcome::Ok)),
            finalize("A", "fa", Ok(Outcome::skip("nothing was created"))),
        ];
        let p = plan(&before, &["A", "B"], &steps, 2, &at(1));
        assert_eq!(p.finalizers, Some(vec!["other".into()]));
        assert!(p.completed);
        assert_eq!(
            get(&p, "Ready").message,
            "all finalizing subroutines completed"
        );
    }

    #[test]
    fn snapshot_reads_metadata_and_status() {
        let object = serde_json::json!({
            "metadata": {"generation": 7, "finalizers": ["x"], "deletionTimestamp": "2024-01-01T00:00:00Z"},
            "status": {"observedGeneration": 6}
        });
        let s = Snapshot::from_json(&object);
        assert_eq!(s.generation, Some(7));
        assert!(s.deleting);
        assert_eq!(s.finalizers, ["x"]);
        assert_eq!(s.observed_generation, Some(6));
        assert!(!Snapshot::from_json(&serde_json::json!({})).deleting);
    }
}
