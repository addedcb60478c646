//! Tuple sync: bring a store's tuples to a desired set.
//!
//! The pure part, [`diff`] and [`plan_chunks`], computes what to write and
//! delete and how to split it into requests. The I/O part, [`sync_tuples`],
//! [`apply`] and [`read_tuples`], talks to the server through [`FgaApi`].
//!
//! # Semantics
//!
//! * The *current* set is either read from the store (every page, optionally
//!   under a server-side [`ReadFilter`]), or supplied by the caller, typically
//!   the tuples it wrote last time (`status.managedTuples`). See [`Current`].
//! * Tuples are identified by object, relation and user ([`Tuple::key`]). A
//!   tuple whose condition changed is deleted and written again; its delete is
//!   always sent in the same or an earlier request than its write, because the
//!   server rejects one key twice in one request.
//! * Requests hold at most [`SyncOptions::max_tuples_per_write`] writes plus
//!   deletes (the server's `--max-tuples-per-write`, default 100). Deletes go
//!   first, then writes, in sorted order. Each request is one transaction; the
//!   sync as a whole is not.
//! * Writes carry `on_duplicate: ignore`, deletes `on_missing: ignore`
//!   ([`ConflictMode::IgnoreOptions`]). A server older than OpenFGA v1.10 does not
//!   know these fields and drops them; it then answers "cannot write a tuple
//!   which already exists" or "cannot delete a tuple which does not exist", as
//!   it also does when it rejects the options outright. Either answer switches
//!   the sync to [`ConflictMode::Tolerate`] for the rest of the run: the failed
//!   request is split in halves and resent until the offending single tuples
//!   are found, which are then reported as already present or already absent.
//! * Transient errors ([`crate::api::is_transient`]) are retried with
//!   [`RetryPolicy`]; any other error ends the sync with
//!   [`FgaError::WriteTuples`], which counts what was applied before.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};

use openfga_client::client::{
    ConsistencyPreference, ReadRequest, TupleKey, TupleKeyWithoutCondition, WriteRequest,
    WriteRequestDeletes, WriteRequestWrites,
};
use tonic::{Code, Status};

use crate::api::{FgaApi, RetryPolicy, retrying};
use crate::error::FgaError;
use crate::tuple::{ReadFilter, Tuple};

/// The server's default `--max-tuples-per-write`.
pub const DEFAULT_MAX_TUPLES_PER_WRITE: usize = 100;
/// The largest Read page the server accepts.
pub const MAX_READ_PAGE_SIZE: i32 = 100;

/// What to write and delete to turn the current set into the desired one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TupleDiff {
    /// Desired tuples not in the current set, sorted.
    pub writes: Vec<Tuple>,
    /// Current tuples not in the desired set, sorted.
    pub deletes: Vec<Tuple>,
}

impl TupleDiff {
    /// True when nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty() && self.deletes.is_empty()
    }
}

/// Compares desired and current tuples. Duplicates in either input are
/// ignored. A key whose condition differs is both deleted (the current
/// tuple) and written (the desired one).
///
/// # Errors
/// [`FgaError::ConflictingTuples`] when `desired` holds one key with two
/// different conditions (`store_id` only labels the error).
pub fn diff<'a>(
    store_id: &str,
    desired: impl IntoIterator<Item = &'a Tuple>,
    current: impl IntoIterator<Item = &'a Tuple>,
) -> Result<TupleDiff, FgaError> {
    let mut by_key: BTreeMap<(&str, &str, &str), &Tuple> = BTreeMap::new();
    for tuple in desired {
        if let Some(previous) = by_key.insert(tuple.key(), tuple)
            && previous != tuple
        {
            return Err(FgaError::ConflictingTuples {
                store_id: store_id.to_owned(),
                first: Box::new(previous.clone()),
                second: Box::new(tuple.clone()),
            });
        }
    }
    let desired: BTreeSet<&Tuple> = by_key.into_values().collect();
    let current: BTreeSet<&Tuple> = current.into_iter().collect();
    Ok(TupleDiff {
        writes: desired.difference(&current).map(|t| (*t).clone()).collect(),
        deletes: current.difference(&desired).map(|t| (*t).clone()).collect(),
    })
}

/// One write request: deletes (applied first by the server) and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunk {
    /// Tuples to delete.
    pub deletes: Vec<Tuple>,
    /// Tuples to write.
    pub writes: Vec<Tuple>,
}

impl Chunk {
    /// Writes plus deletes.
    pub fn len(&self) -> usize {
        self.deletes.len() + self.writes.len()
    }

    /// True when the chunk holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Splits the sequence "deletes, then writes" in two halves, keeping order
    /// (so a delete never moves after the write of the same key).
    fn split(mut self) -> (Chunk, Chunk) {
        let half = self.len() / 2;
        if half <= self.deletes.len() {
            let tail = self.deletes.split_off(half);
            let second = Chunk {
                deletes: tail,
                writes: std::mem::take(&mut self.writes),
            };
            (self, second)
        } else {
            let tail = self.writes.split_off(half - self.deletes.len());
            (
                self,
                Chunk {
                    deletes: Vec::new(),
                    writes: tail,
                },
            )
        }
    }
}

/// Splits a diff into requests of at most `max_tuples_per_write` (at least 1)
/// writes plus deletes: deletes first, then writes, each in diff order. A
/// request ends early before a write whose key is deleted in that same
/// request, because the server rejects one key twice in one request.
pub fn plan_chunks(diff: &TupleDiff, max_tuples_per_write: usize) -> Vec<Chunk> {
    let max = max_tuples_per_write.max(1);
    let mut chunks = Vec::new();
    let mut chunk = Chunk::default();
    let mut deleted_keys: HashSet<(&str, &str, &str)> = HashSet::new();
    for tuple in &diff.deletes {
        if chunk.len() == max {
            chunks.push(std::mem::take(&mut chunk));
            deleted_keys.clear();
        }
        deleted_keys.insert(tuple.key());
        chunk.deletes.push(tuple.clone());
    }
    for tuple in &diff.writes {
        if chunk.len() == max || deleted_keys.contains(&tuple.key()) {
            chunks.push(std::mem::take(&mut chunk));
            deleted_keys.clear();
        }
        chunk.writes.push(tuple.clone());
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

/// How writes of existing tuples and deletes of missing ones are made harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictMode {
    /// Send `on_duplicate: ignore` and `on_missing: ignore` (OpenFGA ≥ v1.10);
    /// switch to [`ConflictMode::Tolerate`] if the server turns out not to honour them.
    #[default]
    IgnoreOptions,
    /// Send no options; on "already exists" / "does not exist", split the
    /// request until the single offending tuples are found, and skip them.
    Tolerate,
}

/// Where the current tuple set comes from.
#[derive(Debug, Clone, Copy)]
pub enum Current<'a> {
    /// Read from the store, every page. With a filter, only tuples matching it
    /// are current, so only those can be deleted; without, the whole store is.
    /// Desired tuples outside the filter are written (and ignored by the
    /// server if already there).
    Store(Option<&'a ReadFilter>),
    /// The caller's previously managed set (e.g. `status.managedTuples`).
    /// Tuples not in it are never deleted, even if the store holds them.
    Managed(&'a [Tuple]),
}

/// Tuning of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOptions {
    /// Writes plus deletes per request; the server's `--max-tuples-per-write`.
    pub max_tuples_per_write: usize,
    /// Page size for reading the current set (1..=100).
    pub read_page_size: i32,
    /// Retries of transient errors, per request.
    pub retry: RetryPolicy,
    /// How duplicates and missing deletes are handled.
    pub conflict_mode: ConflictMode,
    /// The model to validate writes against; `None` means the latest.
    pub authorization_model_id: Option<String>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            max_tuples_per_write: DEFAULT_MAX_TUPLES_PER_WRITE,
            read_page_size: MAX_READ_PAGE_SIZE,
            retry: RetryPolicy::default(),
            conflict_mode: ConflictMode::IgnoreOptions,
            authorization_model_id: None,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Tuples sent as writes in requests the server accepted, in send order.
    /// With [`ConflictMode::IgnoreOptions`] the server does not say whether an
    /// identical tuple was already there; when the current set was read from
    /// the store it was not (barring concurrent writers).
    pub written: Vec<Tuple>,
    /// Tuples sent as deletes in requests the server accepted, in send order
    /// (same caveat as `written`).
    pub deleted: Vec<Tuple>,
    /// Writes the server refused as "already exists" ([`ConflictMode::Tolerate`] only).
    pub already_present: Vec<Tuple>,
    /// Deletes the server refused as "does not exist" ([`ConflictMode::Tolerate`] only).
    pub already_absent: Vec<Tuple>,
    /// Tuples in the current set (read or supplied).
    pub current: usize,
    /// Read pages requested.
    pub read_pages: usize,
    /// Write requests the server accepted.
    pub write_requests: usize,
    /// Retries after transient errors (reads and writes).
    pub retries: usize,
    /// True when the sync switched from `IgnoreOptions` to `Tolerate`.
    pub fell_back_to_tolerate: bool,
}

impl SyncReport {
    /// True when nothing was written or deleted.
    pub fn is_noop(&self) -> bool {
        self.written.is_empty() && self.deleted.is_empty()
    }
}

/// Brings the store's tuples (as seen through `current`) to `desired`.
///
/// # Errors
/// [`FgaError::ReadTuples`] when reading the current set fails,
/// [`FgaError::ConflictingTuples`] for an inconsistent desired set, and
/// [`FgaError::WriteTuples`] when a request fails for good.
pub async fn sync_tuples<C: FgaApi>(
    client: &mut C,
    store_id: &str,
    desired: &[Tuple],
    current: Current<'_>,
    options: &SyncOptions,
) -> Result<SyncReport, FgaError> {
    let mut report = SyncReport::default();
    let read;
    let current: &[Tuple] = match current {
        Current::Managed(tuples) => tuples,
        Current::Store(filter) => {
            read = read_tuples_into(client, store_id, filter, options, &mut report).await?;
            &read
        }
    };
    report.current = current.len();
    let plan = diff(store_id, desired, current)?;
    apply_into(client, store_id, &plan, options, &mut report).await?;
    Ok(report)
}

/// Sends a precomputed diff (see [`sync_tuples`] for the semantics).
///
/// # Errors
/// [`FgaError::WriteTuples`] when a request fails for good.
pub async fn apply<C: FgaApi>(
    client: &mut C,
    store_id: &str,
    diff: &TupleDiff,
    options: &SyncOptions,
) -> Result<SyncReport, FgaError> {
    let mut report = SyncReport::default();
    apply_into(client, store_id, diff, options, &mut report).await?;
    Ok(report)
}

/// Every tuple of the store (or under `filter`), all pages, with retries.
///
/// # Errors
/// [`FgaError::ReadTuples`] when a page cannot be read.
pub async fn read_tuples<C: FgaApi>(
    client: &mut C,
    store_id: &str,
    filter: Option<&ReadFilter>,
    options: &SyncOptions,
) -> Result<Vec<Tuple>, FgaError> {
    read_tuples_into(
        client,
        store_id,
        filter,
        options,
        &mut SyncReport::default(),
    )
    .await
}

async fn read_tuples_into<C: FgaApi>(
    client: &mut C,
    store_id: &str,
    filter: Option<&ReadFilter>,
    options: &SyncOptions,
    report: &mut SyncReport,
) -> Result<Vec<Tuple>, FgaError> {
    let mut tuples = Vec::new();
    let mut continuation_token = String::new();
    loop {
        let request = ReadRequest {
            store_id: store_id.to_owned(),
            tuple_key: filter.map(Into::into),
            page_size: Some(options.read_page_size.clamp(1, MAX_READ_PAGE_SIZE)),
            continuation_token: continuation_token.clone(),
            consistency: ConsistencyPreference::HigherConsistency.into(),
        };
        let response = retrying!(
            &options.retry,
            &mut report.retries,
            format_args!("read of store {store_id}"),
            client.read(request.clone())
        )
        .map_err(|status| FgaError::ReadTuples {
            store_id: store_id.to_owned(),
            pages: report.read_pages,
            source: Box::new(status),
        })?;
        report.read_pages += 1;
        tuples.extend(
            response
                .tuples
                .into_iter()
                .filter_map(|t| t.key)
                .map(Tuple::from),
        );
        if response.continuation_token.is_empty() {
            return Ok(tuples);
        }
        continuation_token = response.continuation_token;
    }
}

/// How a failed request relates to duplicates and missing deletes.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// "cannot write a tuple which already exists" / "cannot delete a tuple which does not exist".
    Conflict,
    /// The server rejected `on_duplicate` / `on_missing` themselves.
    OptionsRejected,
    Other,
}

/// OpenFGA answers with its own numeric error codes (e.g. 2017,
/// `write_failed_due_to_invalid_input`) in the gRPC status, which tonic
/// surfaces as `Unknown`; proto validation errors come as `InvalidArgument`.
/// The message decides.
fn classify(status: &Status) -> Refusal {
    if !matches!(status.code(), Code::InvalidArgument | Code::Unknown) {
        return Refusal::Other;
    }
    let message = status.message().to_ascii_lowercase();
    if message.contains("already exists") || message.contains("does not exist") {
        Refusal::Conflict
    } else if ["on_duplicate", "onduplicate", "on_missing", "onmissing"]
        .iter()
        .any(|option| message.contains(option))
    {
        Refusal::OptionsRejected
    } else {
        Refusal::Other
    }
}

fn write_request(
    store_id: &str,
    chunk: &Chunk,
    mode: ConflictMode,
    options: &SyncOptions,
) -> WriteRequest {
    let ignore = match mode {
        ConflictMode::IgnoreOptions => "ignore",
        ConflictMode::Tolerate => "",
    };
    WriteRequest {
        store_id: store_id.to_owned(),
        writes: (!chunk.writes.is_empty()).then(|| WriteRequestWrites {
            tuple_keys: chunk.writes.iter().map(TupleKey::from).collect(),
            on_duplicate: ignore.to_owned(),
        }),
        deletes: (!chunk.deletes.is_empty()).then(|| WriteRequestDeletes {
            tuple_keys: chunk
                .deletes
                .iter()
                .map(TupleKeyWithoutCondition::from)
                .collect(),
            on_missing: ignore.to_owned(),
        }),
        authorization_model_id: options.authorization_model_id.clone().unwrap_or_default(),
    }
}

async fn apply_into<C: FgaApi>(
    client: &mut C,
    store_id: &str,
    diff: &TupleDiff,
    options: &SyncOptions,
    report: &mut SyncReport,
) -> Result<(), FgaError> {
    let mut mode = options.conflict_mode;
    let mut queue: VecDeque<Chunk> = plan_chunks(diff, options.max_tuples_per_write).into();
    while let Some(chunk) = queue.pop_front() {
        let request = write_request(store_id, &chunk, mode, options);
        let result = retrying!(
            &options.retry,
            &mut report.retries,
            format_args!("write to store {store_id}"),
            client.write(request.clone())
        );
        let status = match result {
            Ok(()) => {
                report.write_requests += 1;
                report.deleted.extend(chunk.deletes);
                report.written.extend(chunk.writes);
                continue;
            }
            Err(status) => status,
        };
        let refusal = classify(&status);
        if refusal != Refusal::Other && mode == ConflictMode::IgnoreOptions {
            tracing::warn!(
                store_id,
                code = ?status.code(),
                message = status.message(),
                "OpenFGA does not honour on_duplicate/on_missing; tolerating conflicts instead"
            );
            mode = ConflictMode::Tolerate;
            report.fell_back_to_tolerate = true;
            queue.push_front(chunk);
            continue;
        }
        match refusal {
            Refusal::Conflict if chunk.len() == 1 => {
                report.already_absent.extend(chunk.deletes);
                report.already_present.extend(chunk.writes);
            }
            Refusal::Conflict => {
                let (first, second) = chunk.split();
                queue.push_front(second);
                queue.push_front(first);
            }
            Refusal::OptionsRejected | Refusal::Other => {
                return Err(FgaError::WriteTuples {
                    store_id: store_id.to_owned(),
                    writes: chunk.writes.len(),
                    deletes: chunk.deletes.len(),
                    requests_done: report.write_requests,
                    written: report.written.len(),
                    deleted: report.deleted.len(),
                    source: Box::new(status),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
