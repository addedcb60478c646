//! The slice of the OpenFGA gRPC API that [`crate::sync`] and [`crate::store`]
//! use, as a trait, and the retry policy for transient errors.
//!
//! [`FgaApi`] is implemented for the `openfga-client` service client over a
//! tonic [`Channel`] ([`connect`] builds one); tests implement it with an
//! in-memory fake.

use std::future::Future;
use std::time::Duration;

use openfga_client::client::{
    CreateStoreRequest, CreateStoreResponse, DeleteStoreRequest, ListStoresRequest,
    ListStoresResponse, OpenFgaServiceClient, ReadAuthorizationModelsRequest,
    ReadAuthorizationModelsResponse, ReadRequest, ReadResponse, WriteAuthorizationModelRequest,
    WriteAuthorizationModelResponse, WriteRequest,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// An OpenFGA address that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{target:?} is not an OpenFGA gRPC address: {source}")]
pub struct AddressError {
    /// The address as given.
    pub target: String,
    /// Why tonic refused it.
    #[source]
    pub source: tonic::transport::Error,
}

/// A client for OpenFGA's gRPC API at `target`: `host:port` (plaintext, as upstream's
/// flags take it) or an `http(s)://` URL. It connects on first use and reconnects by
/// itself, so a server that is down at start-up is an error of the first call, not of the
/// process.
pub fn connect(target: &str) -> Result<OpenFgaServiceClient<Channel>, AddressError> {
    let url = if target.contains("://") {
        target.to_owned()
    } else {
        format!("http://{target}")
    };
    let endpoint = Endpoint::from_shared(url).map_err(|source| AddressError {
        target: target.to_owned(),
        source,
    })?;
    Ok(OpenFgaServiceClient::new(endpoint.connect_lazy()))
}

/// The OpenFGA calls this crate makes. Each returns the server's answer or its gRPC status.
pub trait FgaApi: Send {
    /// `Read` one page of tuples.
    fn read(
        &mut self,
        request: ReadRequest,
    ) -> impl Future<Output = Result<ReadResponse, Status>> + Send;
    /// `Write` one transaction of tuple writes and deletes.
    fn write(&mut self, request: WriteRequest) -> impl Future<Output = Result<(), Status>> + Send;
    /// `ListStores`, one page.
    fn list_stores(
        &mut self,
        request: ListStoresRequest,
    ) -> impl Future<Output = Result<ListStoresResponse, Status>> + Send;
    /// `CreateStore`.
    fn create_store(
        &mut self,
        request: CreateStoreRequest,
    ) -> impl Future<Output = Result<CreateStoreResponse, Status>> + Send;
    /// `DeleteStore`.
    fn delete_store(
        &mut self,
        request: DeleteStoreRequest,
    ) -> impl Future<Output = Result<(), Status>> + Send;
    /// `ReadAuthorizationModels`, one page, newest first.
    fn read_authorization_models(
        &mut self,
        request: ReadAuthorizationModelsRequest,
    ) -> impl Future<Output = Result<ReadAuthorizationModelsResponse, Status>> + Send;
    /// `WriteAuthorizationModel`.
    fn write_authorization_model(
        &mut self,
        request: WriteAuthorizationModelRequest,
    ) -> impl Future<Output = Result<WriteAuthorizationModelResponse, Status>> + Send;
}

impl FgaApi for OpenFgaServiceClient<Channel> {
    async fn read(&mut self, request: ReadRequest) -> Result<ReadResponse, Status> {
        OpenFgaServiceClient::read(self, request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn write(&mut self, request: WriteRequest) -> Result<(), Status> {
        OpenFgaServiceClient::write(self, request).await.map(|_| ())
    }

    async fn list_stores(
        &mut self,
        request: ListStoresRequest,
    ) -> Result<ListStoresResponse, Status> {
        OpenFgaServiceClient::list_stores(self, request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn create_store(
        &mut self,
        request: CreateStoreRequest,
    ) -> Result<CreateStoreResponse, Status> {
        OpenFgaServiceClient::create_store(self, request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn delete_store(&mut self, request: DeleteStoreRequest) -> Result<(), Status> {
        OpenFgaServiceClient::delete_store(self, request)
            .await
            .map(|_| ())
    }

    async fn read_authorization_models(
        &mut self,
        request: ReadAuthorizationModelsRequest,
    ) -> Result<ReadAuthorizationModelsResponse, Status> {
        OpenFgaServiceClient::read_authorization_models(self, request)
            .await
            .map(tonic::Response::into_inner)
    }

    async fn write_authorization_model(
        &mut self,
        request: WriteAuthorizationModelRequest,
    ) -> Result<WriteAuthorizationModelResponse, Status> {
        OpenFgaServiceClient::write_authorization_model(self, request)
            .await
            .map(tonic::Response::into_inner)
    }
}

/// How often [`Reachability::probe`] asks OpenFGA, and how long it waits for the answer.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// How long OpenFGA may fail every probe before the process stops counting as ready: a
/// restart of OpenFGA or a moment of lost connectivity is not worth taking a replica out of
/// service.
pub const UNREACHABLE_GRACE: Duration = Duration::from_secs(15);

/// Whether OpenFGA answers, as one probe loop sees it: the process's readiness asks it. It
/// exists because a process with no reconcile running and no request to answer makes no call,
/// and would go on counting as ready while OpenFGA is down.
#[derive(Clone, Debug)]
pub struct Reachability {
    target: String,
    grace: Duration,
    /// Since when every probe has failed, and the latest error; `None` while OpenFGA answers.
    failing: std::sync::Arc<std::sync::Mutex<Option<(std::time::Instant, String)>>>,
}

impl Reachability {
    /// OpenFGA at `target` (for messages), unreachable once every probe has failed for longer
    /// than `grace` ([`UNREACHABLE_GRACE`] in the binaries).
    pub fn new(target: &str, grace: Duration) -> Self {
        Self {
            target: target.to_owned(),
            grace,
            failing: Default::default(),
        }
    }

    /// Asks `client` for one page of one store every [`PROBE_EVERY`], forever, recording
    /// each answer. A call that gets no answer within that time counts as failed.
    pub async fn probe<C: FgaApi>(self, mut client: C) {
        loop {
            let request = ListStoresRequest {
                page_size: Some(1),
                ..Default::default()
            };
            let answer = tokio::time::timeout(PROBE_EVERY, client.list_stores(request)).await;
            self.record(match answer {
                Ok(Ok(_)) => None,
                Ok(Err(status)) => Some(format!("{:?}: {}", status.code(), status.message())),
                Err(_) => Some(format!("no answer within {}s", PROBE_EVERY.as_secs())),
            });
            tokio::time::sleep(PROBE_EVERY).await;
        }
    }

    fn record(&self, error: Option<String>) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        *failing = match (error, failing.take()) {
            (None, _) => None,
            (Some(error), Some((since, _))) => Some((since, error)),
            (Some(error), None) => Some((std::time::Instant::now(), error)),
        };
    }

    /// `Err` saying since when and why, once OpenFGA has failed every probe for longer than
    /// the grace; for a readiness check.
    pub fn check(&self) -> Result<(), String> {
        let failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match &*failing {
            Some((since, error)) if since.elapsed() > self.grace => Err(format!(
                "OpenFGA at {} has not answered for {}s: {error}",
                self.target,
                since.elapsed().as_secs()
            )),
            _ => Ok(()),
        }
    }
}

/// Bounded exponential backoff for transient gRPC errors ([`is_transient`]).
///
/// Attempt `n` (0-based) that fails transiently waits
/// `min(initial_backoff * 2^n, max_backoff)` before the next; after
/// `max_attempts` attempts in total the last error is returned. No jitter:
/// the operators retry whole reconciles with jitter of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// The wait after the first failure.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 50 ms doubling up to 2 s (at most 1.55 s of waiting in total).
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait after failed attempt `attempt` (0-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Whether a status is worth retrying unchanged: `Unavailable`,
/// `DeadlineExceeded`, `ResourceExhausted` (throttling) and `Aborted`
/// (OpenFGA's transactional write conflict between concurrent writers).
pub fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Aborted
    )
}

/// Runs `$call` (an expression producing a future of `Result<_, Status>`), and
/// again after a backoff while it fails transiently, up to the policy's bound.
/// `$retries` (a `&mut usize`) is incremented per retry.
macro_rules! retrying {
    ($policy:expr, $retries:expr, $what:expr, $call:expr) => {{
        let policy: &$crate::api::RetryPolicy = $policy;
        let retries: &mut usize = $retries;
        let mut attempt: u32 = 0;
        loop {
            match $call.await {
                Ok(value) => break Ok(value),
                Err(status)
                    if attempt.saturating_add(1) < policy.max_attempts
                        && $crate::api::is_transient(&status) =>
                {
                    let delay = policy.backoff(attempt);
                    tracing::debug!(
                        what = %$what,
                        code = ?status.code(),
                        message = status.message(),
                        ?delay,
                        "transient OpenFGA error, retrying"
                    );
                    attempt += 1;
                    *retries += 1;
                    tokio::time::sleep(delay).await;
                }
                Err(status) => break Err(status),
            }
        }
    }};
}
pub(crate) use retrying;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
        };
        let waits: Vec<u128> = (0..6).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(waits, [10, 20, 40, 80, 100, 100]);
        assert_eq!(policy.backoff(u32::MAX), Duration::from_millis(100));
    }

    #[tokio::test]
    async fn openfga_failing_every_probe_past_the_grace_is_unreachable_until_it_answers() {
        // A port nothing listens on: every probe is refused at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let target = closed.to_string();
        let reachability = Reachability::new(&target, Duration::ZERO);
        assert_eq!(reachability.check(), Ok(()), "nothing failed yet");
        let probing = tokio::spawn(reachability.clone().probe(connect(&target).unwrap()));
        let why = loop {
            if let Err(why) = reachability.check() {
                break why;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        probing.abort();
        assert!(
            why.starts_with(&format!("OpenFGA at {target} has not answered for "))
                && why.contains("Unavailable"),
            "{why}"
        );
        // The streak keeps its start through further failures, and one answer ends it.
        let since = reachability.failing.lock().unwrap().clone().unwrap().0;
        reachability.record(Some("Unavailable: again".to_owned()));
        assert_eq!(
            reachability.failing.lock().unwrap().clone().unwrap().0,
            since
        );
        reachability.record(None);
        assert_eq!(reachability.check(), Ok(()));
    }

    #[test]
    fn transient_codes() {
        assert!(is_transient(&Status::unavailable("x")));
        assert!(is_transient(&Status::deadline_exceeded("x")));
        assert!(is_transient(&Status::resource_exhausted("x")));
        assert!(is_transient(&Status::aborted("x")));
        assert!(!is_transient(&Status::invalid_argument("x")));
        assert!(!is_transient(&Status::not_found("x")));
    }
}
