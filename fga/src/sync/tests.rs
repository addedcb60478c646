//! Unit tests of the pure diff and chunking, and of the sync logic against an
//! in-memory fake of the OpenFGA write semantics (openfga.md §3.3).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use openfga_client::client::{
    CreateStoreRequest, CreateStoreResponse, DeleteStoreRequest, ListStoresRequest,
    ListStoresResponse, ReadAuthorizationModelsRequest, ReadAuthorizationModelsResponse,
    ReadResponse, WriteAuthorizationModelRequest, WriteAuthorizationModelResponse,
};

use super::*;

fn t(object: &str, relation: &str, user: &str) -> Tuple {
    Tuple::new(object, relation, user)
}

fn numbered(prefix: &str, n: usize) -> Vec<Tuple> {
    (0..n)
        .map(|i| t(&format!("doc:{prefix}{i:05}"), "viewer", "user:anne"))
        .collect()
}

#[test]
fn diff_writes_missing_and_deletes_extra_tuples_sorted() {
    let desired = vec![
        t("doc:2", "viewer", "user:b"),
        t("doc:1", "viewer", "user:a"),
    ];
    let current = vec![
        t("doc:3", "viewer", "user:c"),
        t("doc:1", "viewer", "user:a"),
    ];
    let plan = diff("s", &desired, &current).unwrap();
    assert_eq!(plan.writes, vec![t("doc:2", "viewer", "user:b")]);
    assert_eq!(plan.deletes, vec![t("doc:3", "viewer", "user:c")]);

    let mut many = numbered("a", 5);
    many.reverse();
    let plan = diff("s", &many, &[]).unwrap();
    assert_eq!(plan.writes, numbered("a", 5), "writes are sorted");
}

#[test]
fn diff_ignores_duplicates_and_equal_sets() {
    let desired = vec![
        t("doc:1", "viewer", "user:a"),
        t("doc:1", "viewer", "user:a"),
    ];
    let current = vec![
        t("doc:1", "viewer", "user:a"),
        t("doc:1", "viewer", "user:a"),
    ];
    assert!(diff("s", &desired, &current).unwrap().is_empty());
    assert!(diff("s", &[], &[]).unwrap().is_empty());
}

#[test]
fn diff_replaces_a_tuple_whose_condition_changed() {
    let old = t("doc:1", "viewer", "user:a").with_condition("weekdays");
    let new = t("doc:1", "viewer", "user:a");
    let plan = diff("s", [&new], [&old]).unwrap();
    assert_eq!(plan.writes, vec![new]);
    assert_eq!(plan.deletes, vec![old]);
}

#[test]
fn diff_rejects_one_key_with_two_conditions() {
    let a = t("doc:1", "viewer", "user:a");
    let b = a.clone().with_condition("c");
    let error = diff("store-1", [&a, &b], []).unwrap_err();
    assert!(matches!(error, FgaError::ConflictingTuples { .. }));
    let message = error.to_string();
    assert!(
        message.contains("store-1") && message.contains("doc:1#viewer@user:a"),
        "{message}"
    );
}

fn sizes(chunks: &[Chunk]) -> Vec<(usize, usize)> {
    chunks
        .iter()
        .map(|c| (c.deletes.len(), c.writes.len()))
        .collect()
}

#[test]
fn chunks_respect_the_limit() {
    let plan = TupleDiff {
        writes: numbered("w", 250),
        deletes: vec![],
    };
    assert_eq!(
        sizes(&plan_chunks(&plan, 100)),
        [(0, 100), (0, 100), (0, 50)]
    );
    assert_eq!(sizes(&plan_chunks(&plan, 250)), [(0, 250)]);
    assert_eq!(plan_chunks(&plan, 1).len(), 250);
    assert_eq!(plan_chunks(&plan, 0).len(), 250, "a limit of 0 means 1");
    assert!(plan_chunks(&TupleDiff::default(), 100).is_empty());
}

#[test]
fn chunks_mix_deletes_then_writes_in_order() {
    let plan = TupleDiff {
        writes: numbered("w", 150),
        deletes: numbered("d", 30),
    };
    let chunks = plan_chunks(&plan, 100);
    assert_eq!(sizes(&chunks), [(30, 70), (0, 80)]);
    let deletes: Vec<Tuple> = chunks.iter().flat_map(|c| c.deletes.clone()).collect();
    let writes: Vec<Tuple> = chunks.iter().flat_map(|c| c.writes.clone()).collect();
    assert_eq!(deletes, plan.deletes);
    assert_eq!(writes, plan.writes);

    let plan = TupleDiff {
        writes: numbered("w", 10),
        deletes: numbered("d", 205),
    };
    assert_eq!(
        sizes(&plan_chunks(&plan, 100)),
        [(100, 0), (100, 0), (5, 10)]
    );
}

#[test]
fn a_replaced_key_is_deleted_in_an_earlier_request_than_it_is_written() {
    let old = t("doc:1", "viewer", "user:a").with_condition("c");
    let new = t("doc:1", "viewer", "user:a");
    let plan = TupleDiff {
        writes: vec![t("doc:0", "viewer", "user:a"), new.clone()],
        deletes: vec![old.clone()],
    };
    let chunks = plan_chunks(&plan, 100);
    assert_eq!(sizes(&chunks), [(1, 1), (0, 1)]);
    assert_eq!(chunks[0].deletes, vec![old]);
    assert_eq!(chunks[1].writes, vec![new]);
}

#[test]
fn split_keeps_deletes_before_writes() {
    let chunk = Chunk {
        deletes: numbered("d", 3),
        writes: numbered("w", 5),
    };
    let (a, b) = chunk.clone().split();
    assert_eq!(sizes(&[a.clone(), b.clone()]), [(3, 1), (0, 4)]);
    let (c, d) = Chunk {
        deletes: numbered("d", 5),
        writes: numbered("w", 1),
    }
    .split();
    assert_eq!(sizes(&[c, d]), [(3, 0), (2, 1)]);
    let rejoined: Vec<Tuple> = a.writes.into_iter().chain(b.writes).collect();
    assert_eq!(rejoined, chunk.writes);
}

/// An in-memory OpenFGA: transactional writes, the per-request limit, the
/// duplicate-key rule, and (optionally) the `on_duplicate`/`on_missing` options.
#[derive(Debug, Default)]
struct Fake {
    tuples: BTreeMap<(String, String, String), Tuple>,
    honours_options: bool,
    max: usize,
    /// Errors returned by the next write calls, before looking at them.
    fail_writes: VecDeque<Status>,
    /// Errors returned by the next read calls.
    fail_reads: VecDeque<Status>,
    write_calls: usize,
}

impl Fake {
    fn new(honours_options: bool) -> Self {
        Self {
            honours_options,
            max: 100,
            ..Self::default()
        }
    }

    fn contents(&self) -> Vec<Tuple> {
        self.tuples.values().cloned().collect()
    }

    fn seed(&mut self, tuples: &[Tuple]) {
        for tuple in tuples {
            self.tuples.insert(owned_key(tuple), tuple.clone());
        }
    }
}

/// How OpenFGA refuses a duplicate write or a missing delete: its own error
/// code 2017 (`write_failed_due_to_invalid_input`), which tonic reads as `Unknown`.
fn refused(what: String) -> Status {
    Status::new(
        Code::Unknown,
        format!(
            "{what}: tuple to be written already existed or the tuple to be deleted did not exist"
        ),
    )
}

fn owned_key(tuple: &Tuple) -> (String, String, String) {
    (
        tuple.object.clone(),
        tuple.relation.clone(),
        tuple.user.clone(),
    )
}

impl FgaApi for Fake {
    async fn read(&mut self, request: ReadRequest) -> Result<ReadResponse, Status> {
        if let Some(status) = self.fail_reads.pop_front() {
            return Err(status);
        }
        let all: Vec<Tuple> = self
            .tuples
            .values()
            .filter(|t| {
                request.tuple_key.as_ref().is_none_or(|f| {
                    t.object == f.object
                        && (f.relation.is_empty() || t.relation == f.relation)
                        && (f.user.is_empty() || t.user == f.user)
                })
            })
            .cloned()
            .collect();
        let start: usize = request.continuation_token.parse().unwrap_or(0);
        let size = usize::try_from(request.page_size.unwrap_or(50)).unwrap();
        let end = (start + size).min(all.len());
        Ok(ReadResponse {
            tuples: all[start..end]
                .iter()
                .map(|t| openfga_client::client::Tuple {
                    key: Some(t.into()),
                    timestamp: None,
                })
                .collect(),
            continuation_token: if end < all.len() {
                end.to_string()
            } else {
                String::new()
            },
        })
    }

    async fn write(&mut self, request: WriteRequest) -> Result<(), Status> {
        self.write_calls += 1;
        if let Some(status) = self.fail_writes.pop_front() {
            return Err(status);
        }
        let writes = request.writes.unwrap_or_default();
        let deletes = request.deletes.unwrap_or_default();
        if writes.tuple_keys.len() + deletes.tuple_keys.len() > self.max {
            return Err(Status::invalid_argument("exceeded_entity_limit"));
        }
        let mut seen = std::collections::HashSet::new();
        let keys = writes
            .tuple_keys
            .iter()
            .map(|k| (k.object.clone(), k.relation.clone(), k.user.clone()))
            .chain(
                deletes
                    .tuple_keys
                    .iter()
                    .map(|k| (k.object.clone(), k.relation.clone(), k.user.clone())),
            );
        for key in keys {
            if !seen.insert(key) {
                return Err(Status::invalid_argument(
                    "cannot_allow_duplicate_tuples_in_one_request",
                ));
            }
        }
        let mut next = self.tuples.clone();
        for key in deletes.tuple_keys {
            let tuple = Tuple::from(key);
            if next.remove(&owned_key(&tuple)).is_none()
                && !(self.honours_options && deletes.on_missing == "ignore")
            {
                return Err(refused(format!(
                    "cannot delete a tuple which does not exist: {tuple}"
                )));
            }
        }
        for key in writes.tuple_keys {
            let tuple = Tuple::from(key);
            match next.get(&owned_key(&tuple)) {
                None => {
                    next.insert(owned_key(&tuple), tuple);
                }
                Some(existing) if self.honours_options && writes.on_duplicate == "ignore" => {
                    if *existing != tuple {
                        return Err(Status::aborted("transactional write failed"));
                    }
                }
                Some(_) => {
                    return Err(refused(format!(
                        "cannot write a tuple which already exists: {tuple}"
                    )));
                }
            }
        }
        self.tuples = next;
        Ok(())
    }

    async fn list_stores(&mut self, _: ListStoresRequest) -> Result<ListStoresResponse, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn create_store(&mut self, _: CreateStoreRequest) -> Result<CreateStoreResponse, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn delete_store(&mut self, _: DeleteStoreRequest) -> Result<(), Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn read_authorization_models(
        &mut self,
        _: ReadAuthorizationModelsRequest,
    ) -> Result<ReadAuthorizationModelsResponse, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn write_authorization_model(
        &mut self,
        _: WriteAuthorizationModelRequest,
    ) -> Result<WriteAuthorizationModelResponse, Status> {
        Err(Status::unimplemented("fake"))
    }
}

fn fast_options() -> SyncOptions {
    SyncOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
        },
        ..SyncOptions::default()
    }
}

#[test]
fn refusals_are_classified_by_message() {
    assert_eq!(
        classify(&refused(
            "cannot write a tuple which already exists: x".into()
        )),
        Refusal::Conflict
    );
    assert_eq!(
        classify(&Status::invalid_argument(
            "cannot delete a tuple which does not exist: x"
        )),
        Refusal::Conflict
    );
    assert_eq!(
        classify(&Status::invalid_argument(
            "invalid WriteRequestDeletes.OnMissing: value must be in list"
        )),
        Refusal::OptionsRejected
    );
    assert_eq!(
        classify(&Status::unknown("type 'doc' not found")),
        Refusal::Other
    );
    assert_eq!(classify(&Status::aborted("already exists")), Refusal::Other);
}

#[tokio::test]
async fn sync_against_the_store_applies_exactly_the_difference() {
    let mut fake = Fake::new(true);
    let options = fast_options();
    let first = numbered("a", 250);
    let report = sync_tuples(&mut fake, "s", &first, Current::Store(None), &options)
        .await
        .unwrap();
    assert_eq!(report.written, first);
    assert!(report.deleted.is_empty());
    assert_eq!(report.write_requests, 3);
    assert_eq!(fake.contents(), first);

    // Remove 20, add 30.
    let mut second: Vec<Tuple> = first[20..].to_vec();
    second.extend(numbered("b", 30));
    let report = sync_tuples(&mut fake, "s", &second, Current::Store(None), &options)
        .await
        .unwrap();
    assert_eq!(report.deleted, first[..20].to_vec());
    assert_eq!(report.written, numbered("b", 30));
    assert_eq!(report.current, 250);
    assert_eq!(report.read_pages, 3);
    assert_eq!(fake.contents(), second);

    let again = sync_tuples(&mut fake, "s", &second, Current::Store(None), &options)
        .await
        .unwrap();
    assert!(again.is_noop() && again.write_requests == 0);
}

#[tokio::test]
async fn a_filtered_read_only_deletes_inside_the_filter() {
    let mut fake = Fake::new(true);
    fake.seed(&[
        t("doc:1", "viewer", "user:a"),
        t("doc:2", "viewer", "user:a"),
    ]);
    let filter = ReadFilter::object("doc:1");
    let report = sync_tuples(
        &mut fake,
        "s",
        &[],
        Current::Store(Some(&filter)),
        &fast_options(),
    )
    .await
    .unwrap();
    assert_eq!(report.deleted, vec![t("doc:1", "viewer", "user:a")]);
    assert_eq!(fake.contents(), vec![t("doc:2", "viewer", "user:a")]);
}

#[tokio::test]
async fn a_changed_condition_is_replaced() {
    let old = t("doc:1", "viewer", "user:a").with_condition("c");
    let new = t("doc:1", "viewer", "user:a");
    let mut fake = Fake::new(true);
    fake.seed(std::slice::from_ref(&old));
    let report = sync_tuples(
        &mut fake,
        "s",
        std::slice::from_ref(&new),
        Current::Store(None),
        &fast_options(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.deleted, report.written),
        (vec![old], vec![new.clone()])
    );
    assert_eq!(fake.contents(), vec![new]);
}

#[tokio::test]
async fn a_stale_managed_set_is_harmless_with_ignore_options() {
    let mut fake = Fake::new(true);
    fake.seed(&numbered("a", 10));
    // The caller believes it manages a0..a4 and b0..b4; the store has a0..a9.
    let managed: Vec<Tuple> = numbered("a", 5)
        .into_iter()
        .chain(numbered("b", 5))
        .collect();
    let desired = numbered("a", 10);
    let report = sync_tuples(
        &mut fake,
        "s",
        &desired,
        Current::Managed(&managed),
        &fast_options(),
    )
    .await
    .unwrap();
    assert_eq!(
        report.written,
        desired[5..].to_vec(),
        "sent, ignored as duplicates"
    );
    assert_eq!(report.deleted, numbered("b", 5), "sent, ignored as missing");
    assert!(!report.fell_back_to_tolerate);
    assert_eq!(fake.contents(), desired);
}

#[tokio::test]
async fn falls_back_to_tolerating_conflicts_on_a_server_without_the_options() {
    let mut fake = Fake::new(false);
    fake.seed(&numbered("a", 10));
    let managed: Vec<Tuple> = numbered("a", 5)
        .into_iter()
        .chain(numbered("b", 5))
        .collect();
    let mut desired = numbered("a", 10);
    desired.extend(numbered("c", 300));
    let report = sync_tuples(
        &mut fake,
        "s",
        &desired,
        Current::Managed(&managed),
        &fast_options(),
    )
    .await
    .unwrap();
    assert!(report.fell_back_to_tolerate);
    assert_eq!(report.already_present, desired[5..10].to_vec());
    assert_eq!(report.already_absent, numbered("b", 5));
    assert_eq!(report.written, numbered("c", 300));
    assert!(report.deleted.is_empty());
    let mut expected = desired.clone();
    expected.sort();
    assert_eq!(fake.contents(), expected);
}

#[tokio::test]
async fn tolerate_mode_from_the_start_sends_no_options() {
    let mut fake = Fake::new(true);
    fake.seed(&numbered("a", 3));
    let options = SyncOptions {
        conflict_mode: ConflictMode::Tolerate,
        ..fast_options()
    };
    let report = sync_tuples(
        &mut fake,
        "s",
        &numbered("a", 4),
        Current::Managed(&[]),
        &options,
    )
    .await
    .unwrap();
    assert!(!report.fell_back_to_tolerate);
    assert_eq!(report.already_present, numbered("a", 3));
    assert_eq!(report.written, vec![numbered("a", 4)[3].clone()]);
}

#[tokio::test]
async fn a_server_rejecting_the_options_triggers_the_fallback() {
    let mut fake = Fake::new(false);
    fake.fail_writes.push_back(Status::invalid_argument(
        "invalid WriteRequestWrites.OnDuplicate: value must be in list [error]",
    ));
    let report = sync_tuples(
        &mut fake,
        "s",
        &numbered("a", 3),
        Current::Managed(&[]),
        &fast_options(),
    )
    .await
    .unwrap();
    assert!(report.fell_back_to_tolerate);
    assert_eq!(report.written, numbered("a", 3));
}

#[tokio::test]
async fn transient_errors_are_retried() {
    let mut fake = Fake::new(true);
    fake.fail_writes
        .push_back(Status::unavailable("connection reset"));
    fake.fail_writes
        .push_back(Status::resource_exhausted("rate limited"));
    fake.fail_reads.push_back(Status::deadline_exceeded("slow"));
    let report = sync_tuples(
        &mut fake,
        "s",
        &numbered("a", 3),
        Current::Store(None),
        &fast_options(),
    )
    .await
    .unwrap();
    assert_eq!(report.retries, 3);
    assert_eq!(report.written, numbered("a", 3));
    assert_eq!(fake.contents(), numbered("a", 3));
}

#[tokio::test]
async fn retries_are_bounded_and_the_error_names_the_store() {
    let mut fake = Fake::new(true);
    for _ in 0..3 {
        fake.fail_writes.push_back(Status::unavailable("down"));
    }
    let error = sync_tuples(
        &mut fake,
        "store-7",
        &numbered("a", 3),
        Current::Managed(&[]),
        &fast_options(),
    )
    .await
    .unwrap_err();
    assert_eq!(fake.write_calls, 3, "max_attempts");
    assert_eq!(error.status().map(Status::code), Some(Code::Unavailable));
    let message = error.to_string();
    assert!(
        message.contains("store-7") && message.contains("Unavailable"),
        "{message}"
    );
}

#[tokio::test]
async fn a_permanent_error_stops_the_sync_and_counts_what_was_applied() {
    /// Fails every write after the first `ok` ones, like a validation error.
    struct FailAfter {
        inner: Fake,
        ok: usize,
    }
    impl FgaApi for FailAfter {
        async fn read(&mut self, r: ReadRequest) -> Result<ReadResponse, Status> {
            self.inner.read(r).await
        }
        async fn write(&mut self, r: WriteRequest) -> Result<(), Status> {
            if self.inner.write_calls >= self.ok {
                self.inner.write_calls += 1;
                return Err(Status::invalid_argument("type 'doc' not found"));
            }
            self.inner.write(r).await
        }
        async fn list_stores(
            &mut self,
            r: ListStoresRequest,
        ) -> Result<ListStoresResponse, Status> {
            self.inner.list_stores(r).await
        }
        async fn create_store(
            &mut self,
            r: CreateStoreRequest,
        ) -> Result<CreateStoreResponse, Status> {
            self.inner.create_store(r).await
        }
        async fn delete_store(&mut self, r: DeleteStoreRequest) -> Result<(), Status> {
            self.inner.delete_store(r).await
        }
        async fn read_authorization_models(
            &mut self,
            r: ReadAuthorizationModelsRequest,
        ) -> Result<ReadAuthorizationModelsResponse, Status> {
            self.inner.read_authorization_models(r).await
        }
        async fn write_authorization_model(
            &mut self,
            r: WriteAuthorizationModelRequest,
        ) -> Result<WriteAuthorizationModelResponse, Status> {
            self.inner.write_authorization_model(r).await
        }
    }
    let mut client = FailAfter {
        inner: Fake::new(true),
        ok: 1,
    };
    let error = sync_tuples(
        &mut client,
        "s",
        &numbered("a", 150),
        Current::Managed(&[]),
        &fast_options(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            FgaError::WriteTuples {
                writes: 50,
                deletes: 0,
                requests_done: 1,
                written: 100,
                deleted: 0,
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(client.inner.write_calls, 2, "not retried");
    assert_eq!(client.inner.contents(), numbered("a", 100));
}

#[tokio::test]
async fn a_smaller_server_limit_is_respected_when_configured() {
    let mut fake = Fake::new(true);
    fake.max = 10;
    let options = SyncOptions {
        max_tuples_per_write: 10,
        ..fast_options()
    };
    let report = sync_tuples(
        &mut fake,
        "s",
        &numbered("a", 95),
        Current::Managed(&[]),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(report.write_requests, 10);
    assert_eq!(fake.contents().len(), 95);
}
