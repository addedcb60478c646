//! What a subroutine is, what it may return, and how it fails.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

/// One step of a controller's reconcile chain.
///
/// The engine names a condition after [`Subroutine::name`] (and `<name>Finalize` while the
/// object is being deleted), so the name is user-visible: keep it stable, e.g.
/// `WorkspaceSubroutine`.
///
/// Every method but `name` and `process` has a default, so a subroutine implements only what
/// it needs: `finalizers` plus `finalize` for cleanup on deletion, `initialize` for a kcp
/// initializer controller, `terminate` for a kcp terminator controller.
#[async_trait]
pub trait Subroutine<K, C>: Send + Sync
where
    K: Send + Sync,
    C: Send + Sync,
{
    /// The condition type this subroutine reports under.
    fn name(&self) -> &str;

    /// The finalizers this subroutine holds on `obj`. The engine adds them before any
    /// subroutine runs, and removes them after this subroutine's `finalize` returned
    /// [`Outcome::Ok`] (or [`Outcome::Skip`]). Default: none.
    fn finalizers(&self, _obj: &K) -> Vec<String> {
        Vec::new()
    }

    /// Brings the world towards `obj`'s spec. Must be idempotent.
    async fn process(&self, obj: &K, ctx: &C) -> Result<Outcome, SubroutineError>;

    /// Cleans up for a deleted `obj`. Called, in reverse chain order, only while one of this
    /// subroutine's finalizers is still on the object. Default: nothing to clean up.
    async fn finalize(&self, _obj: &K, _ctx: &C) -> Result<Outcome, SubroutineError> {
        Ok(Outcome::Ok)
    }

    /// The work of a kcp initializer controller (see [`crate::Mode::Initializer`]).
    async fn initialize(&self, _obj: &K, _ctx: &C) -> Result<Outcome, SubroutineError> {
        Ok(Outcome::Ok)
    }

    /// The work of a kcp terminator controller (see [`crate::Mode::Terminator`]).
    async fn terminate(&self, _obj: &K, _ctx: &C) -> Result<Outcome, SubroutineError> {
        Ok(Outcome::Ok)
    }
}

/// What a subroutine reports when it did not fail.
///
/// | outcome | chain | condition | requeue |
/// |---|---|---|---|
/// | `Ok` | continue | True / `Complete` | none |
/// | `OkRequeue(d)` | continue | True / `Complete` | `d` |
/// | `Pending` | **stop** | Unknown / `Pending` / message | `requeue_after` |
/// | `Skip` | continue | True / `Skipped` / message | none |
/// | `Stop` | **stop** | False / `Stopped` / message | none |
/// | `StopRequeue` | **stop** | False / `Stopped` / message | `after` |
///
/// The smallest requeue of all subroutines that ran wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done; continue with the next subroutine.
    Ok,
    /// Done, but look again after the given time (e.g. to refresh a credential).
    OkRequeue(Duration),
    /// Waiting for something outside this object. Prefer `requeue_after: None` plus a watch
    /// on the thing waited for; a duration is a polling fallback.
    Pending {
        /// What is awaited, e.g. "waiting for workspace acme to become Ready".
        message: String,
        /// When to look again, if no watch event will arrive.
        requeue_after: Option<Duration>,
    },
    /// Nothing to do for this object; continue.
    Skip {
        /// Why, e.g. "not an organization".
        message: String,
    },
    /// Deliberately end the chain here (the condition turns False).
    Stop {
        /// Why the chain stopped.
        message: String,
    },
    /// End the chain here and look again after `after`.
    StopRequeue {
        /// Why the chain stopped.
        message: String,
        /// When to look again.
        after: Duration,
    },
}

impl Outcome {
    /// [`Outcome::Pending`] without a requeue: a watch event will bring the object back.
    pub fn pending(message: impl Into<String>) -> Self {
        Self::Pending {
            message: message.into(),
            requeue_after: None,
        }
    }

    /// [`Outcome::Pending`] with a polling requeue.
    pub fn pending_for(message: impl Into<String>, requeue_after: Duration) -> Self {
        Self::Pending {
            message: message.into(),
            requeue_after: Some(requeue_after),
        }
    }

    /// [`Outcome::Skip`].
    pub fn skip(message: impl Into<String>) -> Self {
        Self::Skip {
            message: message.into(),
        }
    }

    /// [`Outcome::Stop`].
    pub fn stop(message: impl Into<String>) -> Self {
        Self::Stop {
            message: message.into(),
        }
    }

    /// [`Outcome::StopRequeue`].
    pub fn stop_requeue(message: impl Into<String>, after: Duration) -> Self {
        Self::StopRequeue {
            message: message.into(),
            after,
        }
    }

    /// Whether the chain goes on to the next subroutine.
    pub fn continues(&self) -> bool {
        matches!(self, Self::Ok | Self::OkRequeue(_) | Self::Skip { .. })
    }

    /// The requeue this outcome asks for.
    pub fn requeue_after(&self) -> Option<Duration> {
        match self {
            Self::OkRequeue(after) | Self::StopRequeue { after, .. } => Some(*after),
            Self::Pending { requeue_after, .. } => *requeue_after,
            Self::Ok | Self::Skip { .. } | Self::Stop { .. } => None,
        }
    }
}

/// A wait for something outside the object, returned through `?` like an error: helpers that
/// find something missing return `Err(Wait::new("waiting for …"))?` and every caller up to the
/// subroutine propagates it, instead of nesting `Result<Result<T, Outcome>, _>`. The engine
/// treats it exactly as [`Outcome::Pending`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wait {
    /// What is awaited, e.g. "waiting for workspace acme to become Ready".
    pub message: String,
    /// When to look again, if no watch event will arrive.
    pub requeue_after: Option<Duration>,
}

impl Wait {
    /// A wait that a watch event ends.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            requeue_after: None,
        }
    }
}

impl From<Wait> for Outcome {
    fn from(wait: Wait) -> Self {
        Self::Pending {
            message: wait.message,
            requeue_after: wait.requeue_after,
        }
    }
}

/// A boxed error cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a subroutine failed.
///
/// Both kinds turn the subroutine's condition False with reason `Error` and end the chain.
/// They differ in what happens next:
/// - [`SubroutineError::Transient`]: the engine writes the status and returns
///   [`crate::Error::Subroutine`], so the caller retries with per-object backoff;
/// - [`SubroutineError::Permanent`]: retrying cannot help (invalid spec …). The engine writes
///   the status and returns `Ok` without a requeue; the object is looked at again only when a
///   watch event arrives, typically a spec change (a new generation). Since a rerun would write
///   the same status, there is no write loop.
#[derive(Debug, thiserror::Error)]
pub enum SubroutineError {
    /// A failure that may go away by itself (API unavailable, conflict, timeout …).
    #[error("{message}")]
    Transient {
        /// What failed, in words a user understands.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A failure only a change of the object can fix.
    #[error("{reason}: {message}")]
    Permanent {
        /// A CamelCase machine-readable cause, e.g. `InvalidSpec`.
        reason: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// Not a failure: a [`Wait`] on its way up through `?`. The engine turns it into
    /// [`Outcome::Pending`] as soon as the subroutine returns.
    #[error("{}", .0.message)]
    Waiting(Wait),
}

impl From<Wait> for SubroutineError {
    fn from(wait: Wait) -> Self {
        Self::Waiting(wait)
    }
}

impl SubroutineError {
    /// A transient error with a message.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            source: None,
        }
    }

    /// A transient error with a message and its cause; the condition shows both.
    pub fn transient_from(message: impl fmt::Display, source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Self::Transient {
            message: format!("{message}: {source}"),
            source: Some(source),
        }
    }

    /// A permanent error.
    pub fn permanent(reason: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// Whether the caller should retry with backoff.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// A subroutine's result with a [`Wait`] turned into the [`Outcome::Pending`] it stands for.
    pub fn settle(result: Result<Outcome, Self>) -> Result<Outcome, Self> {
        match result {
            Err(Self::Waiting(wait)) => Ok(wait.into()),
            other => other,
        }
    }

    /// The text the subroutine's condition shows.
    pub fn condition_message(&self) -> String {
        match self {
            Self::Waiting(wait) => wait.message.clone(),
            Self::Transient { message, .. } => format!("{message} (will retry)"),
            Self::Permanent { reason, message } => {
                format!("{reason}: {message} (not retried until the object changes)")
            }
        }
    }
}

impl SubroutineError {
    /// A failed Kubernetes API call, saying `what` failed: 400 Bad Request and 422 Invalid are
    /// permanent (the request this subroutine built is wrong, retrying sends the same one);
    /// everything else (409 conflict, 429, 5xx, timeouts, connection errors, 403 until RBAC is
    /// fixed, 404 until the thing appears) is transient.
    pub fn kube(what: impl fmt::Display, error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status) if status.code == 400 || status.code == 422 => {
                Self::permanent(
                    if status.reason.is_empty() {
                        "Invalid".to_owned()
                    } else {
                        status.reason.clone()
                    },
                    format!("{what}: {}", status.message),
                )
            }
            _ => Self::transient_from(what, error),
        }
    }
}

/// A Kubernetes API error without more context: see [`SubroutineError::kube`].
impl From<kube::Error> for SubroutineError {
    fn from(error: kube::Error) -> Self {
        Self::kube("a Kubernetes API call failed", error)
    }
}

/// Which subroutine method ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// [`Subroutine::process`].
    Process,
    /// [`Subroutine::finalize`].
    Finalize,
    /// [`Subroutine::initialize`].
    Initialize,
    /// [`Subroutine::terminate`].
    Terminate,
}

impl Method {
    /// The metric label value (as upstream: process, finalize, initialize, terminate).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Finalize => "finalize",
            Self::Initialize => "initialize",
            Self::Terminate => "terminate",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_continuation_and_requeue_per_outcome() {
        let d = Duration::from_secs(5);
        let cases = [
            (Outcome::Ok, true, None),
            (Outcome::OkRequeue(d), true, Some(d)),
            (Outcome::pending("x"), false, None),
            (Outcome::pending_for("x", d), false, Some(d)),
            (Outcome::skip("x"), true, None),
            (Outcome::stop("x"), false, None),
            (Outcome::stop_requeue("x", d), false, Some(d)),
        ];
        for (outcome, continues, requeue) in cases {
            assert_eq!(outcome.continues(), continues, "{outcome:?}");
            assert_eq!(outcome.requeue_after(), requeue, "{outcome:?}");
        }
    }

    #[test]
    fn kube_errors_are_classified() {
        let api = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: "boom".into(),
                reason: String::new(),
                ..Default::default()
            }))
        };
        assert!(!SubroutineError::from(api(422)).is_transient());
        assert!(!SubroutineError::from(api(400)).is_transient());
        for code in [403, 404, 409, 429, 500, 503] {
            assert!(SubroutineError::from(api(code)).is_transient(), "{code}");
        }
        let message = SubroutineError::from(api(503)).condition_message();
        assert!(
            message.contains("boom") && message.contains("will retry"),
            "{message}"
        );
        let message =
            SubroutineError::permanent("InvalidSpec", "type is empty").condition_message();
        assert_eq!(
            message,
            "InvalidSpec: type is empty (not retried until the object changes)"
        );
    }
}
