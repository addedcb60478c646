//! The one error type of the OpenFGA I/O in this crate ([`crate::sync`], [`crate::store`]).

use tonic::Status;

use crate::tuple::Tuple;

/// What failed, for which store, and the server's answer.
///
/// gRPC statuses are boxed to keep the error small.
#[derive(Debug, thiserror::Error)]
pub enum FgaError {
    /// Listing stores named `name` failed.
    #[error("listing OpenFGA stores named {name:?} failed: {}", status_text(.source))]
    ListStores {
        /// The store name looked up.
        name: String,
        /// The server's answer.
        source: Box<Status>,
    },
    /// Creating the store `name` failed.
    #[error("creating OpenFGA store {name:?} failed: {}", status_text(.source))]
    CreateStore {
        /// The store name.
        name: String,
        /// The server's answer.
        source: Box<Status>,
    },
    /// Deleting a store failed.
    #[error("deleting OpenFGA store {store_id} failed: {}", status_text(.source))]
    DeleteStore {
        /// The store.
        store_id: String,
        /// The server's answer.
        source: Box<Status>,
    },
    /// Reading tuples of a store failed.
    #[error("reading tuples of OpenFGA store {store_id} failed after {pages} page(s): {}", status_text(.source))]
    ReadTuples {
        /// The store.
        store_id: String,
        /// Pages read successfully before the failure.
        pages: usize,
        /// The server's answer.
        source: Box<Status>,
    },
    /// A write request of a tuple sync failed (after retries, where retryable).
    /// Earlier requests of the same sync were applied.
    #[error(
        "writing tuples to OpenFGA store {store_id} failed ({writes} writes and {deletes} deletes \
         in the failed request, {requests_done} earlier request(s) applied: {written} written, \
         {deleted} deleted): {}",
        status_text(.source)
    )]
    WriteTuples {
        /// The store.
        store_id: String,
        /// Writes in the failed request.
        writes: usize,
        /// Deletes in the failed request.
        deletes: usize,
        /// Requests of this sync that succeeded before.
        requests_done: usize,
        /// Tuples written by those requests.
        written: usize,
        /// Tuples deleted by those requests.
        deleted: usize,
        /// The server's answer.
        source: Box<Status>,
    },
    /// The desired tuple set names one key twice with different conditions.
    #[error(
        "the desired tuples for OpenFGA store {store_id} contain {first} and {second}: one object#relation@user may have only one condition"
    )]
    ConflictingTuples {
        /// The store.
        store_id: String,
        /// One tuple.
        first: Box<Tuple>,
        /// The other tuple with the same key.
        second: Box<Tuple>,
    },
    /// Reading the authorization models of a store failed.
    #[error("reading authorization models of OpenFGA store {store_id} failed: {}", status_text(.source))]
    ReadModels {
        /// The store.
        store_id: String,
        /// The server's answer.
        source: Box<Status>,
    },
    /// Writing an authorization model failed (for example, the server found it invalid).
    #[error("writing an authorization model to OpenFGA store {store_id} failed: {}", status_text(.source))]
    WriteModel {
        /// The store.
        store_id: String,
        /// The server's answer.
        source: Box<Status>,
    },
    /// A model could not be converted between this crate's JSON types and the proto types.
    #[error(
        "converting the authorization model {direction} for OpenFGA store {store_id} failed: {source}"
    )]
    ModelConversion {
        /// The store.
        store_id: String,
        /// `"to the proto type"` or `"from the proto type"`.
        direction: &'static str,
        /// The serde error.
        source: serde_json::Error,
    },
}

/// `Code: message`, the parts of a status worth showing.
fn status_text(status: &Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}

impl FgaError {
    /// The gRPC status behind this error, if it came from the server.
    pub fn status(&self) -> Option<&Status> {
        match self {
            FgaError::ListStores { source, .. }
            | FgaError::CreateStore { source, .. }
            | FgaError::DeleteStore { source, .. }
            | FgaError::ReadTuples { source, .. }
            | FgaError::WriteTuples { source, .. }
            | FgaError::ReadModels { source, .. }
            | FgaError::WriteModel { source, .. } => Some(source),
            FgaError::ConflictingTuples { .. } | FgaError::ModelConversion { .. } => None,
        }
    }
}
