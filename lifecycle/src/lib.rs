//! The subroutine engine every Platform Mesh controller uses. The process around it (ops
//! server, leader election, flags, shutdown) is in the `kit` crate.
//!
//! - [`Lifecycle`] runs a chain of [`Subroutine`]s against one object: finalizers first, then
//!   the subroutines in order (in reverse, `finalize`, while deleting), conditions named after
//!   the subroutines plus `Ready`, and a status write only when something changed. The
//!   decisions are pure functions in [`plan`]; [`Lifecycle::reconcile`] only does the I/O.
//! - [`Metrics`]: engine metrics in a shared prometheus-client registry.
//!
//! # How a reconcile ends
//!
//! [`Lifecycle::reconcile`] returns:
//! - `Ok(Reconciled)` for everything the caller need not back off from. `requeue_after` is the
//!   smallest requeue a subroutine asked for (`OkRequeue`, `Pending` with a duration,
//!   `StopRequeue`), or [`CONFLICT_REQUEUE`] after a 409 on any write; `None` means wait for
//!   the next watch event. `completed` says every subroutine returned Ok or Skip without a
//!   requeue (an initializer or terminator controller releases its kcp marker then).
//!   A [`SubroutineError::Permanent`] also ends here, with `permanent_error` set and no
//!   requeue.
//! - `Err(Error)` for a [`SubroutineError::Transient`] (after its condition was written) and
//!   for failed writes: the caller retries with per-object exponential backoff.
//!
//! # How the status is diffed
//!
//! The conditions are read from the object's JSON (`status.conditions`, metav1 Condition
//! shape), so any CRD works without a trait impl. [`plan::plan`] seeds missing conditions,
//! applies the step results with `meta.SetStatusCondition` semantics (`lastTransitionTime`
//! moves only when the status flips; times are whole seconds, as the API server stores them),
//! and compares the resulting list and `observedGeneration` with what was read, after both
//! went through the same serialization. Only a difference produces a status patch, a JSON
//! merge patch of `status.conditions` and `status.observedGeneration` carrying
//! `metadata.resourceVersion` as a precondition.

pub mod conditions;
mod lifecycle;
pub mod metrics;
pub mod plan;
mod subroutine;

#[cfg(test)]
mod fake;

pub use lifecycle::{CONFLICT_REQUEUE, Error, Lifecycle, Mode, Reconciled};
pub use metrics::Metrics;
pub use subroutine::{BoxError, Method, Outcome, Subroutine, SubroutineError, Wait};

/// Re-exported so subroutine authors need not depend on it themselves.
pub use async_trait::async_trait;
