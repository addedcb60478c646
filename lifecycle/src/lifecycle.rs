//! The engine: runs a controller's subroutines against one object and writes finalizers and
//! conditions. The decisions are in [`crate::plan`]; this file only reads, calls and patches.
//!
//! One reconcile, top to bottom (normal mode):
//! 1. not deleting: add every subroutine's missing finalizers (one merge patch guarded by
//!    `resourceVersion`), then carry on with the patched object;
//! 2. run the chain in order (deleting: `finalize` in reverse order, only for subroutines whose
//!    finalizers are still on the object); stop at the first Pending, Stop or error;
//! 3. compute conditions, `Ready`, `observedGeneration` and the remaining finalizers;
//! 4. deleting: patch the finalizers away (guarded by `resourceVersion`);
//! 5. merge-patch the status subresource, guarded by `resourceVersion`, only when it changed
//!    and the object still exists (never for a lifecycle [`Lifecycle::without_conditions`]);
//! 6. a 409 on any patch means someone else wrote first: requeue quickly, no error.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::metrics::Metrics;
use crate::plan::{self, Snapshot, Step};
use crate::subroutine::{Method, Outcome, Subroutine, SubroutineError};

/// The requeue after a write conflict.
pub const CONFLICT_REQUEUE: Duration = Duration::from_secs(1);

/// What the engine is driving.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A controller of its own kind: `process`/`finalize`, finalizers, conditions and status.
    #[default]
    Normal,
    /// A kcp initializer controller: runs `initialize` in chain order and writes nothing (the
    /// LogicalCluster's status is kcp's). When [`Reconciled::completed`], the caller removes
    /// its initializer from the LogicalCluster.
    Initializer,
    /// A kcp terminator controller: runs `terminate` in reverse chain order and writes nothing.
    /// When [`Reconciled::completed`], the caller removes its terminator.
    Terminator,
}

/// What a reconcile that did not fail tells the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Reconcile again after this long (the smallest a subroutine asked for, or a quick retry
    /// after a write conflict). `None`: wait for the next watch event.
    pub requeue_after: Option<Duration>,
    /// Every subroutine ran and returned Ok or Skip without a requeue. An initializer or
    /// terminator controller may release its kcp marker now.
    pub completed: bool,
    /// A permanent subroutine error ended the chain (its condition says which and why).
    pub permanent_error: bool,
    /// A subroutine is waiting for something outside the object (it returned
    /// [`Outcome::Pending`] or a [`crate::Wait`]). The caller looks again after
    /// `requeue_after`, or, when that is `None`, on the next watch event and after a bounded
    /// safety-net recheck in case that event is missed.
    pub waiting: bool,
    /// The finalizer list was patched.
    pub finalizers_patched: bool,
    /// The status was patched.
    pub status_written: bool,
    /// A write hit a conflict; `requeue_after` is [`CONFLICT_REQUEUE`].
    pub conflict: bool,
}

/// Why a reconcile failed. The caller retries every variant with per-object backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A subroutine failed transiently; its condition was written (when the status write
    /// succeeded) before this was returned.
    #[error(
        "{controller}: {action} of {subroutine} on {object} failed (retrying with backoff): {source}"
    )]
    Subroutine {
        /// The controller name.
        controller: String,
        /// `<namespace>/<name>` or `<name>`.
        object: String,
        /// The subroutine name.
        subroutine: String,
        /// What it was doing.
        action: Method,
        /// Its error.
        #[source]
        source: SubroutineError,
    },
    /// A write to the API server failed with something other than a conflict.
    #[error("{controller}: patching the {what} of {object}: {source}")]
    Write {
        /// The controller name.
        controller: String,
        /// `<namespace>/<name>` or `<name>`.
        object: String,
        /// `finalizers` or `status`.
        what: &'static str,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The object cannot be handled at all (no name, not serializable).
    #[error("{controller}: cannot reconcile {object}: {message}")]
    InvalidObject {
        /// The controller name.
        controller: String,
        /// What is known about the object.
        object: String,
        /// What is wrong.
        message: String,
    },
}

/// A controller's chain of subroutines.
pub struct Lifecycle<K, C> {
    controller: String,
    subroutines: Vec<Box<dyn Subroutine<K, C>>>,
    mode: Mode,
    metrics: Option<Metrics>,
    field_manager: String,
    conditions: bool,
}

impl<K: Send + Sync, C: Send + Sync> Debug for Lifecycle<K, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("controller", &self.controller)
            .field(
                "subroutines",
                &self
                    .subroutines
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>(),
            )
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// A write outcome the engine handles itself.
enum Written<K> {
    Ok(K),
    Conflict,
    Gone,
}

impl<K, C> Lifecycle<K, C>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static,
    C: Send + Sync,
{
    /// A normal-mode lifecycle for `controller` (used in logs, metrics and as the field
    /// manager) running `subroutines` in order.
    pub fn new(controller: impl Into<String>, subroutines: Vec<Box<dyn Subroutine<K, C>>>) -> Self {
        let controller = controller.into();
        Self {
            field_manager: controller.clone(),
            controller,
            subroutines,
            mode: Mode::Normal,
            metrics: None,
            conditions: true,
        }
    }

    /// Writes no status: for a kind whose status belongs to someone else (a kcp APIBinding,
    /// say), where the engine manages only finalizers and the conditions would be refused.
    #[must_use]
    pub fn without_conditions(mut self) -> Self {
        self.conditions = false;
        self
    }

    /// Sets the mode (initializer or terminator controllers).
    #[must_use]
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the field manager of the engine's writes (default: the controller name). A binary
    /// uses one field manager for all its writes, its own name.
    #[must_use]
    pub fn with_field_manager(mut self, field_manager: impl Into<String>) -> Self {
        self.field_manager = field_manager.into();
        self
    }

    /// Records engine metrics.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The mode: a caller in initializer or terminator mode releases its kcp marker once a
    /// reconcile [`Reconciled::completed`].
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Reconciles `obj` (as read from the cache). `api` must address the object's scope:
    /// `Api::all` for cluster-scoped kinds, `Api::namespaced` for namespaced ones, on the
    /// object's logical cluster.
    ///
    /// Returns `Ok` for every outcome the caller need not back off from (including Pending,
    /// Stop, permanent errors and write conflicts; see [`Reconciled`]), and `Err` for transient
    /// subroutine errors and failed writes, which the caller retries with backoff.
    pub async fn reconcile(&self, api: &Api<K>, obj: Arc<K>, ctx: &C) -> Result<Reconciled, Error> {
        let started = Instant::now();
        let result = match self.mode {
            Mode::Normal => self.reconcile_normal(api, obj, ctx).await,
            Mode::Initializer | Mode::Terminator => self.reconcile_marker(&obj, ctx).await,
        };
        if let Some(metrics) = &self.metrics {
            // The runtime's result labels (`controller_runtime_reconcile_total`): a conflict
            // is a quick requeue.
            let label = match &result {
                Ok(r) if r.requeue_after.is_some() => "requeue",
                Ok(_) => "success",
                Err(_) => "error",
            };
            metrics.observe_reconcile(&self.controller, label, started.elapsed());
        }
        result
    }

    async fn reconcile_normal(
        &self,
        api: &Api<K>,
        mut obj: Arc<K>,
        ctx: &C,
    ) -> Result<Reconciled, Error> {
        let object = describe(&*obj);
        if obj.meta().name.is_none() {
            return Err(self.invalid(object, "it has no metadata.name"));
        }
        let mut before = self.snapshot(&*obj, &object)?;
        let mut reconciled = Reconciled::default();

        // 1. Finalizers first, so no external resource exists without one.
        if !before.deleting {
            let wanted: Vec<String> = self
                .subroutines
                .iter()
                .flat_map(|s| s.finalizers(&obj))
                .collect();
            if let Some(list) = plan::add_finalizers(&before.finalizers, &wanted) {
                tracing::debug!(controller = %self.controller, %object, finalizers = ?list, "adding finalizers");
                match self.patch_finalizers(api, &obj, list, &object).await? {
                    Written::Ok(updated) => {
                        obj = Arc::new(updated);
                        before = self.snapshot(&*obj, &object)?;
                        reconciled.finalizers_patched = true;
                    }
                    Written::Conflict => return Ok(conflict(reconciled)),
                    Written::Gone => return Ok(reconciled),
                }
            }
        }

        // 2. The chain.
        let mut steps = Vec::new();
        let chain: Vec<&dyn Subroutine<K, C>> = if before.deleting {
            self.subroutines.iter().rev().map(|s| s.as_ref()).collect()
        } else {
            self.subroutines.iter().map(|s| s.as_ref()).collect()
        };
        for subroutine in chain {
            let (action, finalizers) = if before.deleting {
                let held: Vec<String> = subroutine
                    .finalizers(&obj)
                    .into_iter()
                    .filter(|f| before.finalizers.contains(f))
                    .collect();
                if held.is_empty() {
                    continue;
                }
                (Method::Finalize, held)
            } else {
                (Method::Process, Vec::new())
            };
            let step = self.run(subroutine, action, &obj, ctx, finalizers).await;
            let continues = step.continues();
            steps.push(step);
            if !continues {
                break;
            }
        }
        if before.deleting && steps.is_empty() {
            // None of our finalizers is left: nothing of ours to do or report.
            reconciled.completed = true;
            return Ok(reconciled);
        }

        // 3. Decide.
        let names: Vec<&str> = self.subroutines.iter().map(|s| s.name()).collect();
        // Every step but a chain-ending one continued, so "all that ran completed" is "all done".
        let ran = steps.len();
        let plan = plan::plan(&before, &names, &steps, ran, &crate::conditions::now());
        reconciled.requeue_after = plan.requeue_after;
        reconciled.completed = plan.completed;
        reconciled.waiting = steps.iter().any(Step::waits);

        // 4. Release finalizers.
        let mut exists = true;
        if let Some(list) = plan.finalizers {
            tracing::debug!(controller = %self.controller, %object, finalizers = ?list, "releasing finalizers");
            exists = !list.is_empty();
            match self.patch_finalizers(api, &obj, list, &object).await? {
                Written::Ok(updated) => {
                    obj = Arc::new(updated);
                    reconciled.finalizers_patched = true;
                }
                Written::Conflict => return Ok(conflict(reconciled)),
                Written::Gone => exists = false,
            }
        }

        // 5. Status, only when it changed (and is ours to write).
        if let (Some(patch), true, true) = (plan.status_patch, exists, self.conditions) {
            match self.patch_status(api, &obj, patch, &object).await? {
                Written::Ok(_) => reconciled.status_written = true,
                Written::Conflict => return Ok(conflict(reconciled)),
                Written::Gone => {}
            }
        }

        // Report a failure last, once its condition is written.
        for step in steps {
            match step.result {
                Err(source @ SubroutineError::Transient { .. }) => {
                    return Err(Error::Subroutine {
                        controller: self.controller.clone(),
                        object,
                        subroutine: step.subroutine,
                        action: step.action,
                        source,
                    });
                }
                Err(SubroutineError::Permanent { reason, message }) => {
                    tracing::warn!(controller = %self.controller, %object, subroutine = %step.subroutine, %reason, %message, "permanent error; not retrying until the object changes");
                    reconciled.permanent_error = true;
                }
                // A `Wait` was settled into `Pending` when the subroutine returned.
                Ok(_) | Err(SubroutineError::Waiting(_)) => {}
            }
        }
        Ok(reconciled)
    }

    /// Initializer and terminator modes: call the hooks, write nothing.
    async fn reconcile_marker(&self, obj: &K, ctx: &C) -> Result<Reconciled, Error> {
        let object = describe(obj);
        let (action, chain): (Method, Vec<&dyn Subroutine<K, C>>) = match self.mode {
            Mode::Terminator => (
                Method::Terminate,
                self.subroutines.iter().rev().map(|s| s.as_ref()).collect(),
            ),
            _ => (
                Method::Initialize,
                self.subroutines.iter().map(|s| s.as_ref()).collect(),
            ),
        };
        let mut steps = Vec::new();
        for subroutine in chain {
            let step = self.run(subroutine, action, obj, ctx, Vec::new()).await;
            let continues = step.continues();
            steps.push(step);
            if !continues {
                break;
            }
        }
        let mut reconciled = Reconciled {
            requeue_after: plan::min_requeue(&steps),
            completed: plan::completed(&steps, self.subroutines.len()),
            waiting: steps.iter().any(Step::waits),
            ..Reconciled::default()
        };
        for step in steps {
            match step.result {
                Err(source @ SubroutineError::Transient { .. }) => {
                    return Err(Error::Subroutine {
                        controller: self.controller.clone(),
                        object,
                        subroutine: step.subroutine,
                        action,
                        source,
                    });
                }
                Err(SubroutineError::Permanent { reason, message }) => {
                    tracing::warn!(controller = %self.controller, %object, subroutine = %step.subroutine, %action, %reason, %message, "permanent error");
                    reconciled.permanent_error = true;
                }
                Ok(Outcome::Pending { message, .. })
                | Ok(Outcome::Stop { message } | Outcome::StopRequeue { message, .. }) => {
                    tracing::info!(controller = %self.controller, %object, subroutine = %step.subroutine, %action, %message, "chain ended early");
                }
                Ok(_) | Err(SubroutineError::Waiting(_)) => {}
            }
        }
        Ok(reconciled)
    }

    async fn run(
        &self,
        subroutine: &dyn Subroutine<K, C>,
        action: Method,
        obj: &K,
        ctx: &C,
        finalizers: Vec<String>,
    ) -> Step {
        let started = Instant::now();
        let result = SubroutineError::settle(match action {
            Method::Process => subroutine.process(obj, ctx).await,
            Method::Finalize => subroutine.finalize(obj, ctx).await,
            Method::Initialize => subroutine.initialize(obj, ctx).await,
            Method::Terminate => subroutine.terminate(obj, ctx).await,
        });
        tracing::debug!(controller = %self.controller, subroutine = subroutine.name(), %action, ?result, "subroutine ran");
        if let Some(metrics) = &self.metrics {
            metrics.observe_subroutine(
                &self.controller,
                subroutine.name(),
                action,
                &result,
                started.elapsed(),
            );
        }
        Step {
            subroutine: subroutine.name().to_owned(),
            action,
            result,
            finalizers,
        }
    }

    fn snapshot(&self, obj: &K, object: &str) -> Result<Snapshot, Error> {
        let json = serde_json::to_value(obj)
            .map_err(|e| self.invalid(object.to_owned(), &format!("serializing it: {e}")))?;
        Ok(Snapshot::from_json(&json))
    }

    fn invalid(&self, object: String, message: &str) -> Error {
        Error::InvalidObject {
            controller: self.controller.clone(),
            object,
            message: message.to_owned(),
        }
    }

    async fn patch_finalizers(
        &self,
        api: &Api<K>,
        obj: &K,
        finalizers: Vec<String>,
        object: &str,
    ) -> Result<Written<K>, Error> {
        let patch = json!({
            "metadata": {"finalizers": finalizers, "resourceVersion": obj.resource_version()}
        });
        let result = api
            .patch(&obj.name_any(), &self.patch_params(), &Patch::Merge(&patch))
            .await;
        self.written(result, "finalizers", object)
    }

    async fn patch_status(
        &self,
        api: &Api<K>,
        obj: &K,
        mut patch: serde_json::Value,
        object: &str,
    ) -> Result<Written<K>, Error> {
        patch["metadata"] = json!({"resourceVersion": obj.resource_version()});
        let result = api
            .patch_status(&obj.name_any(), &self.patch_params(), &Patch::Merge(&patch))
            .await;
        self.written(result, "status", object)
    }

    fn patch_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.field_manager.clone()),
            ..PatchParams::default()
        }
    }

    fn written(
        &self,
        result: Result<K, kube::Error>,
        what: &'static str,
        object: &str,
    ) -> Result<Written<K>, Error> {
        match result {
            Ok(updated) => Ok(Written::Ok(updated)),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::debug!(controller = %self.controller, %object, what, "write conflict; requeueing");
                Ok(Written::Conflict)
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Written::Gone),
            Err(source) => Err(Error::Write {
                controller: self.controller.clone(),
                object: object.to_owned(),
                what,
                source: Box::new(source),
            }),
        }
    }
}

fn conflict(mut reconciled: Reconciled) -> Reconciled {
    reconciled.conflict = true;
    reconciled.requeue_after = Some(CONFLICT_REQUEUE);
    reconciled.completed = false;
    reconciled
}

fn describe<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or("<unnamed>");
    match &meta.namespace {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::conditions;
    use crate::fake::{Fake, Widget};

    /// Records which subroutine actions ran, in order.
    #[derive(Debug, Default)]
    struct Log(Mutex<Vec<String>>);

    impl Log {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().unwrap())
        }
    }

    type Script = Box<dyn Fn(&Widget) -> Result<Outcome, SubroutineError> + Send + Sync>;

    struct Scripted {
        name: &'static str,
        finalizer: Option<&'static str>,
        process: Script,
        finalize: Script,
    }

    fn ok() -> Script {
        Box::new(|_| Ok(Outcome::Ok))
    }

    fn sub(name: &'static str, finalizer: Option<&'static str>, process: Script) -> Box<Scripted> {
        Box::new(Scripted {
            name,
            finalizer,
            process,
            finalize: ok(),
        })
    }

    #[async_trait]
    impl Subroutine<Widget, Log> for Scripted {
        fn name(&self) -> &str {
            self.name
        }
        fn finalizers(&self, _obj: &Widget) -> Vec<String> {
            self.finalizer.iter().map(|f| (*f).to_owned()).collect()
        }
        async fn process(&self, obj: &Widget, log: &Log) -> Result<Outcome, SubroutineError> {
            log.0.lock().unwrap().push(format!("{}.process", self.name));
            (self.process)(obj)
        }
        async fn finalize(&self, obj: &Widget, log: &Log) -> Result<Outcome, SubroutineError> {
            log.0
                .lock()
                .unwrap()
                .push(format!("{}.finalize", self.name));
            (self.finalize)(obj)
        }
        async fn initialize(&self, obj: &Widget, log: &Log) -> Result<Outcome, SubroutineError> {
            log.0
                .lock()
                .unwrap()
                .push(format!("{}.initialize", self.name));
            (self.process)(obj)
        }
        async fn terminate(&self, obj: &Widget, log: &Log) -> Result<Outcome, SubroutineError> {
            log.0
                .lock()
                .unwrap()
                .push(format!("{}.terminate", self.name));
            (self.finalize)(obj)
        }
    }

    fn widget(name: &str) -> serde_json::Value {
        json!({"metadata": {"name": name, "generation": 1}, "spec": {"size": 1}})
    }

    fn condition<'a>(
        w: &'a Widget,
        type_: &str,
    ) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
        let status = w.status.as_ref().expect("status written");
        conditions::find(&status.conditions, type_)
            .unwrap_or_else(|| panic!("no {type_} in {:#?}", status.conditions))
    }

    const PATCH_OBJECT: &str = "PATCH /apis/test.platform-mesh.io/v1/widgets/w";
    const PATCH_STATUS: &str = "PATCH /apis/test.platform-mesh.io/v1/widgets/w/status";

    #[tokio::test]
    async fn without_conditions_only_finalizers_are_written() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let lifecycle = Lifecycle::new(
            "widget",
            vec![sub("A", Some("a.test/finalizer"), ok()) as Box<dyn Subroutine<Widget, Log>>],
        )
        .without_conditions();
        let log = Log::default();
        let obj = fake.put(widget("w"));
        let r = lifecycle
            .reconcile(&api, Arc::new(obj), &log)
            .await
            .unwrap();
        assert_eq!(fake.requests(), [PATCH_OBJECT]);
        assert!(r.completed && r.finalizers_patched && !r.status_written);
        assert_eq!(log.take(), ["A.process"]);
        assert!(fake.get("w").unwrap().status.is_none());
    }

    #[tokio::test]
    async fn finalizers_first_then_conditions_then_nothing_when_unchanged() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let lifecycle = Lifecycle::new(
            "widget",
            vec![
                sub("A", Some("a.test/finalizer"), ok()) as Box<dyn Subroutine<Widget, Log>>,
                sub("B", Some("b.test/finalizer"), ok()),
            ],
        );
        let log = Log::default();
        let obj = fake.put(widget("w"));

        let r = lifecycle
            .reconcile(&api, Arc::new(obj), &log)
            .await
            .unwrap();
        assert_eq!(fake.requests(), [PATCH_OBJECT, PATCH_STATUS]);
        assert_eq!(log.take(), ["A.process", "B.process"]);
        assert!(r.completed && r.finalizers_patched && r.status_written);
        assert_eq!(r.requeue_after, None);

        let stored = fake.get("w").unwrap();
        assert_eq!(
            stored.metadata.finalizers.as_deref().unwrap(),
            ["a.test/finalizer", "b.test/finalizer"]
        );
        for type_ in ["A", "B", "Ready"] {
            let c = condition(&stored, type_);
            assert_eq!((&*c.status, &*c.reason), ("True", "Complete"), "{type_}");
            assert_eq!(c.observed_generation, Some(1));
        }
        assert_eq!(stored.status.as_ref().unwrap().observed_generation, Some(1));

        // Nothing changed: no write at all.
        fake.clear_requests();
        let r = lifecycle
            .reconcile(&api, Arc::new(stored.clone()), &log)
            .await
            .unwrap();
        assert!(fake.requests().is_empty(), "{:?}", fake.requests());
        assert!(r.completed && !r.status_written && !r.finalizers_patched);
        assert_eq!(
            serde_json::to_value(fake.get("w").unwrap()).unwrap(),
            serde_json::to_value(&stored).unwrap()
        );
    }

    #[tokio::test]
    async fn pending_ends_the_chain_and_keeps_later_conditions_unknown() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let lifecycle = Lifecycle::new(
            "widget",
            vec![
                sub(
                    "A",
                    None,
                    Box::new(|_| {
                        Ok(Outcome::pending_for(
                            "waiting for the workspace",
                            Duration::from_secs(7),
                        ))
                    }),
                ) as Box<dyn Subroutine<Widget, Log>>,
                sub("B", None, ok()),
            ],
        );
        let log = Log::default();
        let obj = fake.put(widget("w"));
        let r = lifecycle
            .reconcile(&api, Arc::new(obj), &log)
            .await
            .unwrap();
        assert_eq!(log.take(), ["A.process"]);
        assert_eq!(r.requeue_after, Some(Duration::from_secs(7)));
        assert!(!r.completed);
        assert_eq!(fake.requests(), [PATCH_STATUS], "no finalizers to add");
        let stored = fake.get("w").unwrap();
        let a = condition(&stored, "A");
        assert_eq!(
            (&*a.status, &*a.reason, &*a.message),
            ("Unknown", "Pending", "waiting for the workspace")
        );
        let b = condition(&stored, "B");
        assert_eq!((&*b.status, &*b.reason), ("Unknown", "Unknown"));
        let ready = condition(&stored, "Ready");
        assert_eq!((&*ready.status, &*ready.reason), ("Unknown", "Pending"));
    }

    #[tokio::test]
    async fn a_wait_returned_through_question_mark_is_pending_not_an_error() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        fn dereference() -> Result<(), SubroutineError> {
            Err(crate::Wait::new("waiting for the store"))?
        }
        let lifecycle = Lifecycle::new(
            "widget",
            vec![
                sub(
                    "A",
                    None,
                    Box::new(|_| {
                        dereference()?;
                        Ok(Outcome::Ok)
                    }),
                ) as Box<dyn Subroutine<Widget, Log>>,
                sub("B", None, ok()),
            ],
        );
        let log = Log::default();
        let obj = fake.put(widget("w"));
        let r = lifecycle
            .reconcile(&api, Arc::new(obj), &log)
            .await
            .unwrap();
        assert_eq!(log.take(), ["A.process"]);
        assert!(r.waiting && !r.completed && !r.permanent_error);
        assert_eq!(r.requeue_after, None);
        let stored = fake.get("w").unwrap();
        let a = condition(&stored, "A");
        assert_eq!(
            (&*a.status, &*a.reason, &*a.message),
            ("Unknown", "Pending", "waiting for the store")
        );
    }

    #[tokio::test]
    async fn transient_errors_write_the_condition_and_return_err() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let lifecycle = Lifecycle::new(
            "widget",
            vec![
                sub(
                    "A",
                    None,
                    Box::new(|_| Err(SubroutineError::transient("kcp is unavailable"))),
                ) as Box<dyn Subroutine<Widget, Log>>,
                sub("B", None, ok()),
            ],
        );
        let log = Log::default();
        let obj = fake.put(widget("w"));
        let err = lifecycle
            .reconcile(&api, Arc::new(obj), &log)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::Subroutine { subroutine, action: Method::Process, .. } if subroutine == "A"),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "widget: process of A on w failed (retrying with backoff): kcp is unavailable"
        );
        assert_eq!(log.take(), ["A.process"]);
        let stored = fake.get("w").unwrap();
        let a = condition(&stored, "A");
        assert_eq!((&*a.status, &*a.reason), ("False", "Error"));
        assert_eq!(a.message, "kcp is unavailable (will retry)");
        assert_eq!(condition(&stored, "Ready").reason, "Error");
    }

    #[tokio::test]
    async fn permanent_errors_return_ok_without_requeue() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let lifecycle = Lifecycle::new(
            "widget",
            vec![sub(
                "A",
                None,
                Box::new(|_| {
                    Err(SubroutineError::permanent(
                        "InvalidSpec",
                        "size must be positive",
                    ))
                }),
            ) as Box<dyn Subroutine<Widget, Log>>],
        );
        let log = Log::default();
        let obj = fake.put(widget("w"));
        let r = lifecycle
            .reconcile(&api, Arc::new(obj), &log)
            .await
            .unwrap();
        assert!(r.permanent_error && !r.completed);
        assert_eq!(r.requeue_after, None);
        let stored = fake.get("w").unwrap();
        let a = condition(&stored, "A");
        assert_eq!(
            (&*a.reason, &*a.message),
            (
                "InvalidSpec",
                "size must be positive (not retried until the object changes)"
            )
        );
        // A rerun writes nothing: no loop.
        fake.clear_requests();
        lifecycle
            .reconcile(&api, Arc::new(stored), &log)
            .await
            .unwrap();
        assert!(fake.requests().is_empty());
    }

    #[tokio::test]
    async fn conflicts_requeue_quickly_without_error() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let lifecycle = Lifecycle::new(
            "widget",
            vec![sub("A", Some("a.test/finalizer"), ok()) as Box<dyn Subroutine<Widget, Log>>],
        );
        let log = Log::default();
        let obj = fake.put(widget("w"));

        // The finalizer patch conflicts: nothing runs.
        fake.inject_conflicts(1);
        let r = lifecycle
            .reconcile(&api, Arc::new(obj.clone()), &log)
            .await
            .unwrap();
        assert!(r.conflict && !r.completed);
        assert_eq!(r.requeue_after, Some(CONFLICT_REQUEUE));
        assert!(log.take().is_empty());

        // A stale resourceVersion conflicts through the precondition.
        let mut stale = obj.clone();
        stale.metadata.resource_version = Some("0".into());
        let r = lifecycle
            .reconcile(&api, Arc::new(stale), &log)
            .await
            .unwrap();
        assert!(r.conflict);

        // The status patch conflicts.
        let r = lifecycle
            .reconcile(&api, Arc::new(obj), &log)
            .await
            .unwrap();
        assert!(r.finalizers_patched && r.status_written);
        let mut current = fake.get("w").unwrap();
        current.metadata.generation = Some(2);
        let current = fake.put(serde_json::to_value(&current).unwrap());
        fake.inject_conflicts(1);
        fake.clear_requests();
        let r = lifecycle
            .reconcile(&api, Arc::new(current), &log)
            .await
            .unwrap();
        assert_eq!(fake.requests(), [PATCH_STATUS]);
        assert!(r.conflict && !r.status_written);
        assert_eq!(r.requeue_after, Some(CONFLICT_REQUEUE));
    }

    #[tokio::test]
    async fn deletion_finalizes_in_reverse_and_releases_only_after_ok() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let a_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let a_flag = a_done.clone();
        let lifecycle = Lifecycle::new(
            "widget",
            vec![
                Box::new(Scripted {
                    name: "A",
                    finalizer: Some("a.test/finalizer"),
                    process: ok(),
                    finalize: Box::new(move |_| {
                        if a_flag.load(std::sync::atomic::Ordering::SeqCst) {
                            Ok(Outcome::Ok)
                        } else {
                            Ok(Outcome::pending("waiting for the workspace to be deleted"))
                        }
                    }),
                }) as Box<dyn Subroutine<Widget, Log>>,
                sub("B", None, ok()),
                sub("C", Some("c.test/finalizer"), ok()),
            ],
        );
        let log = Log::default();
        let mut deleted = widget("w");
        deleted["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z".into();
        deleted["metadata"]["finalizers"] = json!(["a.test/finalizer", "c.test/finalizer"]);
        let obj = fake.put(deleted);

        let r = lifecycle
            .reconcile(&api, Arc::new(obj), &log)
            .await
            .unwrap();
        assert_eq!(
            log.take(),
            ["C.finalize", "A.finalize"],
            "reverse order; B holds no finalizer"
        );
        assert!(!r.completed);
        assert_eq!(fake.requests(), [PATCH_OBJECT, PATCH_STATUS]);
        let stored = fake.get("w").unwrap();
        assert_eq!(
            stored.metadata.finalizers.as_deref().unwrap(),
            ["a.test/finalizer"]
        );
        assert_eq!(condition(&stored, "CFinalize").reason, "Complete");
        assert_eq!(condition(&stored, "AFinalize").reason, "Pending");
        assert_eq!(condition(&stored, "Ready").reason, "Pending");

        // A finishes: the last finalizer goes, the object disappears, no status write.
        a_done.store(true, std::sync::atomic::Ordering::SeqCst);
        fake.clear_requests();
        let r = lifecycle
            .reconcile(&api, Arc::new(stored), &log)
            .await
            .unwrap();
        assert_eq!(log.take(), ["A.finalize"]);
        assert!(r.completed && r.finalizers_patched && !r.status_written);
        assert_eq!(fake.requests(), [PATCH_OBJECT]);
        assert!(fake.get("w").is_none());
    }

    #[tokio::test]
    async fn deletion_keeps_foreign_finalizers_and_writes_status() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let lifecycle = Lifecycle::new(
            "widget",
            vec![sub("A", Some("a.test/finalizer"), ok()) as Box<dyn Subroutine<Widget, Log>>],
        );
        let log = Log::default();
        let mut deleted = widget("w");
        deleted["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z".into();
        deleted["metadata"]["finalizers"] = json!(["a.test/finalizer", "someone.else/finalizer"]);
        let obj = fake.put(deleted);
        let r = lifecycle
            .reconcile(&api, Arc::new(obj), &log)
            .await
            .unwrap();
        assert!(r.completed && r.status_written);
        assert_eq!(log.take(), ["A.finalize"]);
        let stored = fake.get("w").unwrap();
        assert_eq!(
            stored.metadata.finalizers.as_deref().unwrap(),
            ["someone.else/finalizer"]
        );
        assert_eq!(condition(&stored, "AFinalize").reason, "Complete");

        // Nothing of ours left: nothing runs, nothing is written.
        fake.clear_requests();
        let r = lifecycle
            .reconcile(&api, Arc::new(stored), &log)
            .await
            .unwrap();
        assert!(r.completed);
        assert!(log.take().is_empty());
        assert!(fake.requests().is_empty());
    }

    #[tokio::test]
    async fn initializer_and_terminator_modes_call_hooks_and_write_nothing() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let chain = || {
            vec![
                sub("A", Some("a.test/finalizer"), ok()) as Box<dyn Subroutine<Widget, Log>>,
                sub("B", None, ok()),
            ]
        };
        let log = Log::default();
        let obj = Arc::new(fake.put(widget("w")));

        let init = Lifecycle::new("init", chain()).with_mode(Mode::Initializer);
        let r = init.reconcile(&api, obj.clone(), &log).await.unwrap();
        assert_eq!(log.take(), ["A.initialize", "B.initialize"]);
        assert!(r.completed);

        let term = Lifecycle::new("term", chain()).with_mode(Mode::Terminator);
        let r = term.reconcile(&api, obj.clone(), &log).await.unwrap();
        assert_eq!(log.take(), ["B.terminate", "A.terminate"]);
        assert!(r.completed);
        assert!(fake.requests().is_empty(), "{:?}", fake.requests());

        // Pending: not completed, so the marker must stay.
        let pending = Lifecycle::new(
            "init",
            vec![
                sub(
                    "A",
                    None,
                    Box::new(|_| Ok(Outcome::pending("store not ready"))),
                ) as Box<dyn Subroutine<Widget, Log>>,
                sub("B", None, ok()),
            ],
        )
        .with_mode(Mode::Initializer);
        let r = pending.reconcile(&api, obj, &log).await.unwrap();
        assert_eq!(log.take(), ["A.initialize"]);
        assert!(!r.completed);
    }

    #[tokio::test]
    async fn metrics_count_reconciles_and_subroutines() {
        let (fake, client) = Fake::start().await;
        let api: Api<Widget> = Api::all(client);
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Metrics::register(&mut registry);
        let lifecycle = Lifecycle::new(
            "widget",
            vec![sub(
                "A",
                None,
                Box::new(|_| Err(SubroutineError::transient("down"))),
            ) as Box<dyn Subroutine<Widget, Log>>],
        )
        .with_metrics(metrics);
        let obj = fake.put(widget("w"));
        let _ = lifecycle
            .reconcile(&api, Arc::new(obj), &Log::default())
            .await;
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"lifecycle_reconcile_total{controller="widget",result="error"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"lifecycle_subroutine_errors_total{controller="widget",subroutine="A",action="process"} 1"#), "{text}");
    }
}
