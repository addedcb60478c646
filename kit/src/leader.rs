//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it.
//!
//! - A candidate takes the Lease when it does not exist, has no holder (released), or its
//!   holder has not renewed it for `leaseDurationSeconds`. "Not renewed" is measured with the
//!   candidate's own clock, from when it first saw the Lease's current `resourceVersion`, so
//!   clock skew between machines cannot make two leaders.
//! - Every write (take over, renew, release) is a replace carrying the `resourceVersion` last
//!   read: of two candidates racing, one gets 409 Conflict. There is never more than one
//!   holder.
//! - The leader renews every `retry_period`. When it sees another holder, or cannot renew for
//!   `renew_deadline`, it has lost the lease: the work's token is cancelled and
//!   [`LeaderElector::run`] returns [`LeaderError::Lost`] (the process should exit, as
//!   controller-runtime does). When the work ends (e.g. on shutdown), the lease is released
//!   (holder cleared) so another candidate takes over at once.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::sync::watch;
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

    /// One attempt: create, take over, or renew the lease.
    pub async fn try_acquire_or_renew(&self) -> Result<Attempt, LeaderError> {
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
    /// can take it without waiting for it to expire.
    pub async fn release(&self) -> Result<(), LeaderError> {
        self.leading.send_replace(false);
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
    /// work finished while leading, and [`LeaderError::Lost`] when leadership was lost (after
    /// the work has returned).
    pub async fn run<F, Fut, T>(
        &self,
        shutdown: CancellationToken,
        work: F,
    ) -> Result<Option<T>, LeaderError>
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future<Output = T>,
    {
        // Acquire.
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => break,
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
        }
        tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
        self.leading.send_replace(true);

        // Lead and renew.
        let token = shutdown.child_token();
        let work = work(token.clone());
        tokio::pin!(work);
        let mut renewed = Instant::now();
        let mut lost = None;
        let output = loop {
            tokio::select! {
                output = &mut work => break output,
                () = tokio::time::sleep(self.config.retry_period), if lost.is_none() => {
                    match self.try_acquire_or_renew().await {
                        Ok(Attempt::Leading) => renewed = Instant::now(),
                        Ok(Attempt::HeldBy(holder)) => {
                            lost = Some(format!("{holder} holds it now"));
                        }
                        Ok(Attempt::Conflict) => {}
                        Err(e) => tracing::warn!("renewing: {e}"),
                    }
                    if lost.is_none() && renewed.elapsed() > self.config.renew_deadline {
                        lost = Some(format!(
                            "could not renew it within the renew deadline of {:?}",
                            self.config.renew_deadline
                        ));
                    }
                    if let Some(why) = &lost {
                        tracing::error!(lease = %self.config.name, "lost leadership: {why}; stopping the work");
                        self.leading.send_replace(false);
                        token.cancel();
                    }
                }
            }
        };
        if let Some(why) = lost {
            return Err(LeaderError::Lost {
                namespace: self.config.namespace.clone(),
                name: self.config.name.clone(),
                why,
            });
        }
        self.release().await?;
        Ok(Some(output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
