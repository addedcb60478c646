//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it.
//!
//! - A candidate takes the Lease when it does not exist, has no holder (released), or its
//!   holder has not renewed it for `leaseDurationSeconds`. "Not renewed" is measured with the
//!   candidate's own clock, from when it first saw the Lease's current `resourceVersion`, so
//!   clock skew between machines cannot make two leaders.
//! - Every write (take over, renew, release) is a replace carrying the `resourceVersion` last
//!   read: of two candidates racing, one gets 409 Conflict. There is never more than one
//!   holder.
//! - The leader renews every `retry_period`. Every Lease API call has a deadline of its own
//!   (the client's read timeout is minutes long): a renewal must answer within what is left of
//!   `renew_deadline` since the last successful renewal, any other call within
//!   `renew_deadline`. When the leader sees another holder, or has not renewed for
//!   `renew_deadline`, it has lost the lease at that moment: the work's token is cancelled, the
//!   work future is dropped (not drained) and [`LeaderElector::run`] returns
//!   [`LeaderError::Lost`] (the process should exit, as controller-runtime does). The leader
//!   measures the deadline from when it *sent* its last successful renewal, and the other
//!   candidates count the lease duration from when they first see that renewal, so the old
//!   leader has stopped `lease_duration - renew_deadline` before anyone may take over.
//! - When the work ends (e.g. on shutdown), the lease is released (holder cleared) so another
//!   candidate takes over at once.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where the lease lives and how it is timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name (upstream operators use an ID such as `8c290d9a.platform-mesh.io`).
    pub name: String,
    /// This candidate's identity, unique per process (e.g. pod name plus a random suffix).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// A config with controller-runtime's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks that the timings can work: retry < renew deadline < lease duration, whole
    /// seconds of at least 1 for the lease, and a non-empty identity.
    pub fn validate(&self) -> Result<(), LeaderError> {
        let invalid = |message: String| Err(LeaderError::InvalidConfig(message));
        if self.identity.is_empty() || self.name.is_empty() || self.namespace.is_empty() {
            return invalid("namespace, name and identity must not be empty".to_owned());
        }
        if self.lease_duration < Duration::from_secs(1) {
            return invalid(format!(
                "the lease duration ({:?}) must be at least 1s",
                self.lease_duration
            ));
        }
        if self.renew_deadline >= self.lease_duration {
            return invalid(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return invalid(format!(
                "the retry period ({:?}) must be positive and shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        Ok(())
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Why leader election failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The config cannot work.
    #[error("invalid leader election config: {0}")]
    InvalidConfig(String),
    /// Reading or writing the Lease failed.
    #[error("leader election on Lease {namespace}/{name}: {source}")]
    Api {
        /// The Lease namespace.
        namespace: String,
        /// The Lease name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A Lease API call got no answer in time (a hung connection or API server).
    #[error("leader election on Lease {namespace}/{name}: no answer within {after:?}")]
    TimedOut {
        /// The Lease namespace.
        namespace: String,
        /// The Lease name.
        name: String,
        /// How long the call was given.
        after: Duration,
    },
    /// Leadership was lost while the work ran.
    #[error("lost leadership of Lease {namespace}/{name}: {why}")]
    Lost {
        /// The Lease namespace.
        namespace: String,
        /// The Lease name.
        name: String,
        /// Another holder, or the renew deadline passed.
        why: String,
    },
}

/// The result of one acquire-or-renew attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This candidate holds the lease now.
    Leading,
    /// Another candidate holds a valid lease.
    HeldBy(String),
    /// Someone wrote the Lease between our read and write; try again.
    Conflict,
}

#[derive(Debug)]
struct Observed {
    resource_version: Option<String>,
    since: Instant,
}

/// One candidate for one Lease.
#[derive(Debug)]
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Mutex<Option<Observed>>,
    leading: watch::Sender<bool>,
}

impl LeaderElector {
    /// A candidate using `client` (the Lease's cluster or kcp workspace).
    pub fn new(client: Client, config: LeaseConfig) -> Result<Self, LeaderError> {
        config.validate()?;
        Ok(Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: Mutex::new(None),
            leading: watch::Sender::new(false),
        })
    }

    /// The config.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// Leadership as it changes (`true` while this candidate leads).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.leading.subscribe()
    }

    fn api_error(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    fn timed_out(&self, after: Duration) -> LeaderError {
        LeaderError::TimedOut {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            after,
        }
    }

    /// `call`, given `within` to answer.
    async fn bounded<T>(
        &self,
        within: Duration,
        call: impl Future<Output = Result<T, LeaderError>>,
    ) -> Result<T, LeaderError> {
        tokio::time::timeout(within, call)
            .await
            .unwrap_or_else(|_| Err(self.timed_out(within)))
    }

    fn observe(&self, resource_version: Option<String>) -> Instant {
        let mut observed = self
            .observed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*observed {
            Some(o) if o.resource_version == resource_version => o.since,
            _ => {
                let since = Instant::now();
                *observed = Some(Observed {
                    resource_version,
                    since,
                });
                since
            }
        }
    }

    /// One attempt: create, take over, or renew the lease. It is given the renew deadline to
    /// answer, after which it fails with [`LeaderError::TimedOut`].
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, LeaderError> {
        self.bounded(self.config.renew_deadline, self.attempt())
            .await
    }

    /// One attempt, unbounded: the caller bounds it.
    async fn attempt(&self) -> Result<Attempt, LeaderError> {
        let now = MicroTime(Timestamp::now());
        let me = &self.config.identity;
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error(e))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(self.config.lease_seconds()),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.resource_version());
                    Ok(Attempt::Leading)
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
                Err(e) => Err(self.api_error(e)),
            };
        };

        let since = self.observe(lease.resource_version());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let valid_for = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        if let Some(holder) = &holder
            && holder != me
            && since.elapsed() < valid_for
        {
            return Ok(Attempt::HeldBy(holder.clone()));
        }
        if holder.as_deref() != Some(me.as_str()) {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
            tracing::info!(lease = %self.config.name, identity = %me, previous = ?holder, "taking the lease");
        }
        spec.holder_identity = Some(me.clone());
        spec.lease_duration_seconds = Some(self.config.lease_seconds());
        spec.renew_time = Some(now);
        // `lease` still carries the resourceVersion read above: the replace is conditional.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(updated.resource_version());
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::Conflict),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Gives the lease up if this candidate holds it (clears the holder), so another candidate
    /// can take it without waiting for it to expire. It is given the renew deadline to answer,
    /// after which it fails with [`LeaderError::TimedOut`] (the lease then simply expires).
    pub async fn release(&self) -> Result<(), LeaderError> {
        self.leading.send_replace(false);
        self.bounded(self.config.renew_deadline, self.release_unbounded())
            .await
    }

    async fn release_unbounded(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.api_error(e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                tracing::info!(lease = %self.config.name, identity = %self.config.identity, "released the lease");
                Ok(())
            }
            // Someone else wrote it: it is no longer ours to release.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(self.api_error(e)),
        }
    }

    /// Waits until this candidate leads, runs `work` with a token that is cancelled when
    /// leadership is lost or `shutdown` is cancelled, keeps renewing meanwhile, and releases
    /// the lease when `work` returns.
    ///
    /// Returns `Ok(None)` when `shutdown` came before leadership, `Ok(Some(output))` when the
    /// work finished while leading, and [`LeaderError::Lost`] when leadership was lost.
    ///
    /// # After a loss, the work is dropped, not drained
    ///
    /// The moment leadership is lost (another holder seen, or no successful renewal for
    /// `renew_deadline`), `run` stops leading, cancels the work's token and returns
    /// [`LeaderError::Lost`] at once, *dropping* the work future without awaiting it: another
    /// candidate may take the lease as soon as `lease_duration - renew_deadline` later, and
    /// the old leader must not write any more by then. Whatever the work future owns (tasks in a `JoinSet`,
    /// requests in flight) is aborted with it; tasks it detached with `tokio::spawn` are not,
    /// and must stop on the token themselves. A graceful drain (on `shutdown`, while still
    /// leading) is the normal path: the lease is renewed until the work returns.
    pub async fn run<F, Fut, T>(
        &self,
        shutdown: CancellationToken,
        work: F,
    ) -> Result<Option<T>, LeaderError>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = T>,
    {
        // Acquire: each attempt is bounded (by the renew deadline), so a hung API server delays
        // shutdown by at most that much.
        let renewed = loop {
            let sent = Instant::now();
            let attempt = self.try_acquire_or_renew().await;
            if shutdown.is_cancelled() {
                // Shutdown came while the attempt was in flight: do not start the work.
                if matches!(attempt, Ok(Attempt::Leading)) {
                    self.release().await?;
                }
                return Ok(None);
            }
            match attempt {
                Ok(Attempt::Leading) => break sent,
                Ok(Attempt::HeldBy(holder)) => {
                    tracing::debug!(lease = %self.config.name, %holder, "lease held by another candidate");
                }
                Ok(Attempt::Conflict) => {}
                Err(e) => tracing::warn!("{e}; retrying"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        };
        tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
        self.leading.send_replace(true);

        // Lead and renew.
        let token = shutdown.child_token();
        let mut work = Box::pin(work(token.clone()));
        let why = tokio::select! {
            output = &mut work => Ok(output),
            why = self.keep_renewed(renewed) => Err(why),
        };
        let why = match why {
            Ok(output) => {
                drop(work);
                self.release().await?;
                return Ok(Some(output));
            }
            Err(why) => why,
        };
        tracing::error!(lease = %self.config.name, "lost leadership: {why}; dropping the work");
        self.leading.send_replace(false);
        token.cancel();
        drop(work);
        Err(LeaderError::Lost {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            why,
        })
    }

    /// Renews every retry period until leadership is lost; returns why. `renewed` is when the
    /// last successful acquire or renewal was sent. Each renewal gets only what is left of the
    /// renew deadline, and the deadline passing ends leadership at once.
    async fn keep_renewed(&self, mut renewed: Instant) -> String {
        let deadline_passed = || {
            format!(
                "could not renew it within the renew deadline of {:?}",
                self.config.renew_deadline
            )
        };
        loop {
            let deadline = renewed + self.config.renew_deadline;
            let next = Instant::now() + self.config.retry_period;
            tokio::time::sleep_until(next.min(deadline)).await;
            let sent = Instant::now();
            if sent >= deadline {
                return deadline_passed();
            }
            match tokio::time::timeout_at(deadline, self.attempt()).await {
                Ok(Ok(Attempt::Leading)) => renewed = sent,
                Ok(Ok(Attempt::HeldBy(holder))) => return format!("{holder} holds it now"),
                Ok(Ok(Attempt::Conflict)) => {}
                Ok(Err(e)) => tracing::warn!("renewing: {e}"),
                Err(_) => {
                    tracing::warn!(lease = %self.config.name, "renewing: no answer before the renew deadline");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{Method, StatusCode};
    use axum::response::{IntoResponse, Response};

    use super::*;

    /// An API server holding one Lease, with conditional writes, that hangs every request
    /// forever once `hang` is set (a partition, or a stuck API server).
    #[derive(Default)]
    struct FakeApiServer {
        hang: AtomicBool,
        state: Mutex<FakeState>,
    }

    #[derive(Default)]
    struct FakeState {
        lease: Option<Lease>,
        version: u64,
        /// When the server last accepted a write of the Lease.
        written: Option<Instant>,
    }

    impl FakeState {
        fn write(&mut self, mut lease: Lease) -> axum::Json<Lease> {
            self.version += 1;
            lease.metadata.resource_version = Some(self.version.to_string());
            self.lease = Some(lease.clone());
            self.written = Some(Instant::now());
            axum::Json(lease)
        }
    }

    fn status(code: StatusCode, reason: &str) -> Response {
        let body = serde_json::json!({
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": reason,
            "message": reason,
            "code": code.as_u16(),
        });
        (code, axum::Json(body)).into_response()
    }

    async fn serve_lease(
        State(fake): State<Arc<FakeApiServer>>,
        method: Method,
        body: Bytes,
    ) -> Response {
        if fake.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let mut state = fake.state.lock().unwrap();
        match method {
            Method::GET => match &state.lease {
                Some(lease) => axum::Json(lease.clone()).into_response(),
                None => status(StatusCode::NOT_FOUND, "NotFound"),
            },
            Method::POST if state.lease.is_some() => status(StatusCode::CONFLICT, "AlreadyExists"),
            Method::POST | Method::PUT => {
                let Ok(lease) = serde_json::from_slice::<Lease>(&body) else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest");
                };
                let current = state
                    .lease
                    .as_ref()
                    .and_then(|l| l.metadata.resource_version.clone());
                if method == Method::PUT && lease.metadata.resource_version != current {
                    return status(StatusCode::CONFLICT, "Conflict");
                }
                let created = method == Method::POST;
                let lease = state.write(lease);
                if created {
                    (StatusCode::CREATED, lease).into_response()
                } else {
                    lease.into_response()
                }
            }
            _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
        }
    }

    async fn fake_api_server() -> (Arc<FakeApiServer>, Client) {
        kcp::client::install_crypto_provider();
        let fake = Arc::new(FakeApiServer::default());
        let app = axum::Router::new()
            .fallback(serve_lease)
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = kube::Config::new(url.parse().unwrap());
        (fake, Client::try_from(config).unwrap())
    }

    /// Sets its flag when dropped.
    struct DropFlag(Arc<AtomicBool>);

    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Guards against hangs only.
    const PATIENCE: Duration = Duration::from_secs(30);

    fn short_config() -> LeaseConfig {
        LeaseConfig {
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(200),
            ..LeaseConfig::new("ns", "lease", "leader")
        }
    }

    /// A leader whose renewals hang gives up leadership (and drops its work, which here never
    /// stops on its own) before its lease can expire for anyone else.
    #[tokio::test]
    async fn a_hung_api_server_ends_leadership_before_the_lease_expires() {
        let (fake, client) = fake_api_server().await;
        let config = short_config();
        let elector = Arc::new(LeaderElector::new(client, config.clone()).unwrap());
        let dropped = Arc::new(AtomicBool::new(false));
        let run = tokio::spawn({
            let (elector, dropped) = (elector.clone(), dropped.clone());
            async move {
                elector
                    .run(CancellationToken::new(), move |_token| async move {
                        let _guard = DropFlag(dropped);
                        // Work that ignores its token: only dropping it stops it.
                        std::future::pending::<()>().await;
                    })
                    .await
            }
        });
        let mut leading = elector.subscribe();
        tokio::time::timeout(PATIENCE, leading.wait_for(|l| *l))
            .await
            .unwrap()
            .unwrap();
        // Renew a few times, then hang every request.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let renewals = fake.state.lock().unwrap().version;
        assert!(renewals >= 2, "the leader renewed only {renewals} times");
        fake.hang.store(true, Ordering::SeqCst);

        let result = tokio::time::timeout(PATIENCE, run).await.unwrap().unwrap();
        let lost_at = Instant::now();
        assert!(
            matches!(&result, Err(LeaderError::Lost { why, .. }) if why.contains("renew deadline")),
            "{result:?}"
        );
        assert!(dropped.load(Ordering::SeqCst), "the work was not dropped");
        assert!(!*elector.subscribe().borrow());
        // Another candidate counts the lease duration from when it sees the last renewal, which
        // is after the server accepted it: leadership must have ended before then.
        let written = fake.state.lock().unwrap().written.unwrap();
        assert!(
            lost_at < written + config.lease_duration,
            "leadership ended {:?} after the last renewal, the lease lasts {:?}",
            lost_at - written,
            config.lease_duration
        );
    }

    /// A hung API server cannot block acquisition, release or shutdown forever: every call is
    /// bounded by the renew deadline.
    #[tokio::test]
    async fn calls_to_a_hung_api_server_time_out() {
        let (fake, client) = fake_api_server().await;
        fake.hang.store(true, Ordering::SeqCst);
        let elector = LeaderElector::new(client, short_config()).unwrap();

        let attempt = tokio::time::timeout(PATIENCE, elector.try_acquire_or_renew())
            .await
            .unwrap();
        assert!(
            matches!(attempt, Err(LeaderError::TimedOut { .. })),
            "{attempt:?}"
        );
        let released = tokio::time::timeout(PATIENCE, elector.release())
            .await
            .unwrap();
        assert!(
            matches!(released, Err(LeaderError::TimedOut { .. })),
            "{released:?}"
        );

        let shutdown = CancellationToken::new();
        let run = elector.run(shutdown.clone(), |_| async { panic!("never leads") });
        let cancel = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            shutdown.cancel();
        };
        let (result, ()) = tokio::time::timeout(PATIENCE, async { tokio::join!(run, cancel) })
            .await
            .unwrap();
        assert!(matches!(result, Ok(None)), "{result:?}");
    }

    #[test]
    fn defaults_are_valid_and_bad_timings_are_explained() {
        let config = LeaseConfig::new("ns", "lease", "me");
        config.validate().unwrap();

        let mut bad = config.clone();
        bad.renew_deadline = bad.lease_duration;
        let message = bad.validate().unwrap_err().to_string();
        assert!(message.contains("renew deadline"), "{message}");

        let mut bad = config.clone();
        bad.retry_period = Duration::ZERO;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("retry period")
        );

        let mut bad = config;
        bad.identity = String::new();
        assert!(bad.validate().is_err());
    }
}
