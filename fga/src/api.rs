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
