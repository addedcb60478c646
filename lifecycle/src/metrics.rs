//! Engine metrics, registered into a registry the whole process shares.
//!
//! Names as upstream `platform-mesh/subroutines` (`lifecycle_subroutine_*`), plus per-reconcile
//! totals and durations.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::subroutine::{Method, Outcome, SubroutineError};

/// Labels of one subroutine run.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubroutineLabels {
    /// The controller name given to [`crate::Lifecycle::new`].
    pub controller: String,
    /// The subroutine name.
    pub subroutine: String,
    /// process, finalize, initialize or terminate.
    pub action: String,
    /// ok, pending, stop or error (Skip counts as ok).
    pub outcome: String,
}

/// Labels of a subroutine error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// The controller name.
    pub controller: String,
    /// The subroutine name.
    pub subroutine: String,
    /// process, finalize, initialize or terminate.
    pub action: String,
}

/// Labels of a requeue a subroutine asked for.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequeueLabels {
    /// The controller name.
    pub controller: String,
    /// The subroutine name.
    pub subroutine: String,
    /// ok, pending or stop.
    pub outcome: String,
}

/// Labels of one reconcile.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// The controller name.
    pub controller: String,
    /// success, requeue, conflict or error.
    pub result: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The engine's metric families. Cheap to clone; clones share the counters.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// `lifecycle_reconcile_total{controller,result}`.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// `lifecycle_reconcile_duration_seconds{controller,result}`.
    pub reconcile_duration: Histograms<ReconcileLabels>,
    /// `lifecycle_subroutine_duration_seconds{controller,subroutine,action,outcome}`.
    pub subroutine_duration: Histograms<SubroutineLabels>,
    /// `lifecycle_subroutine_errors_total{controller,subroutine,action}`.
    pub subroutine_errors: Family<ErrorLabels, Counter>,
    /// `lifecycle_subroutine_requeue_seconds{controller,subroutine,outcome}`.
    pub subroutine_requeue: Histograms<RequeueLabels>,
}

fn duration_histogram() -> Histogram {
    // 1 ms … ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn requeue_histogram() -> Histogram {
    // 0.5 s … ~9 h.
    Histogram::new(exponential_buckets(0.5, 2.0, 17))
}

impl Metrics {
    /// Creates the families and registers them into `registry` (names prefixed `lifecycle_`).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(duration_histogram),
            subroutine_duration: Family::new_with_constructor(duration_histogram),
            subroutine_errors: Family::default(),
            subroutine_requeue: Family::new_with_constructor(requeue_histogram),
        };
        let registry = registry.sub_registry_with_prefix("lifecycle");
        registry.register(
            "reconcile",
            "Reconciles run by the subroutine engine, by result",
            metrics.reconciles.clone(),
        );
        registry.register_with_unit(
            "reconcile_duration",
            "Duration of one reconcile (subroutines and writes)",
            Unit::Seconds,
            metrics.reconcile_duration.clone(),
        );
        registry.register_with_unit(
            "subroutine_duration",
            "Duration of one subroutine action",
            Unit::Seconds,
            metrics.subroutine_duration.clone(),
        );
        registry.register(
            "subroutine_errors",
            "Subroutine actions that returned an error",
            metrics.subroutine_errors.clone(),
        );
        registry.register_with_unit(
            "subroutine_requeue",
            "Requeue delays subroutines asked for",
            Unit::Seconds,
            metrics.subroutine_requeue.clone(),
        );
        metrics
    }

    /// Records one subroutine action.
    pub fn observe_subroutine(
        &self,
        controller: &str,
        subroutine: &str,
        action: Method,
        result: &Result<Outcome, SubroutineError>,
        took: Duration,
    ) {
        let outcome = match result {
            Ok(Outcome::Ok | Outcome::OkRequeue(_) | Outcome::Skip { .. }) => "ok",
            Ok(Outcome::Pending { .. }) => "pending",
            Ok(Outcome::Stop { .. } | Outcome::StopRequeue { .. }) => "stop",
            Err(_) => "error",
        };
        self.subroutine_duration
            .get_or_create(&SubroutineLabels {
                controller: controller.to_owned(),
                subroutine: subroutine.to_owned(),
                action: action.as_str().to_owned(),
                outcome: outcome.to_owned(),
            })
            .observe(took.as_secs_f64());
        if result.is_err() {
            self.subroutine_errors
                .get_or_create(&ErrorLabels {
                    controller: controller.to_owned(),
                    subroutine: subroutine.to_owned(),
                    action: action.as_str().to_owned(),
                })
                .inc();
        }
        if let Some(after) = result.as_ref().ok().and_then(Outcome::requeue_after) {
            self.subroutine_requeue
                .get_or_create(&RequeueLabels {
                    controller: controller.to_owned(),
                    subroutine: subroutine.to_owned(),
                    outcome: outcome.to_owned(),
                })
                .observe(after.as_secs_f64());
        }
    }

    /// Records one reconcile.
    pub fn observe_reconcile(&self, controller: &str, result: &str, took: Duration) {
        let labels = ReconcileLabels {
            controller: controller.to_owned(),
            result: result.to_owned(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_encoded_with_upstream_names() {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        metrics.observe_subroutine(
            "account",
            "WorkspaceSubroutine",
            Method::Process,
            &Err(SubroutineError::transient("x")),
            Duration::from_millis(3),
        );
        metrics.observe_subroutine(
            "account",
            "WorkspaceSubroutine",
            Method::Process,
            &Ok(Outcome::pending_for("p", Duration::from_secs(2))),
            Duration::from_millis(3),
        );
        metrics.observe_reconcile("account", "success", Duration::from_millis(9));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for expected in [
            r#"lifecycle_subroutine_errors_total{controller="account",subroutine="WorkspaceSubroutine",action="process"} 1"#,
            r#"lifecycle_subroutine_duration_seconds_count{controller="account",subroutine="WorkspaceSubroutine",action="process",outcome="error"} 1"#,
            r#"lifecycle_subroutine_requeue_seconds_count{controller="account",subroutine="WorkspaceSubroutine",outcome="pending"} 1"#,
            r#"lifecycle_reconcile_total{controller="account",result="success"} 1"#,
            r#"lifecycle_reconcile_duration_seconds_count{controller="account",result="success"} 1"#,
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}
