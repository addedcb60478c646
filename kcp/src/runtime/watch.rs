//! One wildcard watch of one kind on one endpoint, turned into applies and deletes keyed by
//! [`ObjectKey`], with re-lists reconciled (an object missing from a re-list is deleted), and
//! its health: whether it is failing, and since when.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cache::ObjectKey;
use crate::name::ClusterName;

/// What a watch saw.
#[derive(Debug)]
pub(crate) enum Seen<'a, R> {
    /// Added or changed.
    Apply(ObjectKey, &'a R),
    /// Deleted: the object as last seen. A delete noticed only by a re-list (the watch was
    /// down when it happened) carries the last version the watch saw, so related-kind mappers
    /// still learn which primary objects it concerned.
    Delete(ObjectKey, &'a R),
    /// The first complete list arrived.
    Synced,
}

/// How long after its latest error a watch still counts as failing when nothing has arrived
/// since. A failing watch is retried at least every [`RETRY_AT_MOST_AFTER`], so one that is
/// still down errs again well within this; one that came back but has nothing to deliver (it
/// resumed from its resourceVersion) goes quiet, and is healthy again after this.
const ERRORS_FADE_AFTER: Duration = Duration::from_secs(60);

/// The first retry of a failed watch comes after this; each further one after twice the last.
const RETRY_FIRST_AFTER: Duration = Duration::from_millis(500);

/// The longest wait between retries of a failed watch. kube's default is 30 s, and it waits
/// twice after an outage: once to find the server back (which answers 410 Gone to the old
/// resourceVersion) and once more before the re-list, since no event came in between to reset
/// it. That made an operator ready again a minute after kcp was. At 10 s it is 20 s at most,
/// for one request per watch every 10 s while the server is down.
const RETRY_AT_MOST_AFTER: Duration = Duration::from_secs(10);

/// Exponential backoff between retries of a failed watch, from [`RETRY_FIRST_AFTER`] to
/// [`RETRY_AT_MOST_AFTER`], started over by any event the watch delivers except the `Init`
/// that opens each attempt to list: a list refused every time (a 403) would otherwise be
/// retried every 0.5 s forever, as kube's own `StreamBackoff`, which resets on every event,
/// does.
#[derive(Debug)]
struct RetryBackoff(Duration);

impl Default for RetryBackoff {
    fn default() -> Self {
        Self(RETRY_FIRST_AFTER)
    }
}

impl Iterator for RetryBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.0;
        self.0 = (self.0 * 2).min(RETRY_AT_MOST_AFTER);
        Some(wait)
    }
}

impl RetryBackoff {
    fn reset(&mut self) {
        self.0 = RETRY_FIRST_AFTER;
    }
}

#[derive(Debug)]
struct Streak {
    since: Instant,
    last: Instant,
    error: String,
}

/// Whether a watch is failing, and since when: from its first error until it delivers an event
/// or stays free of errors for [`ERRORS_FADE_AFTER`].
#[derive(Debug, Default)]
pub(crate) struct Failing(Mutex<Option<Streak>>);

impl Failing {
    fn set(&self, error: String) {
        let now = Instant::now();
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match &mut *state {
            Some(streak) if now.duration_since(streak.last) < ERRORS_FADE_AFTER => {
                streak.last = now;
                streak.error = error;
            }
            _ => {
                *state = Some(Streak {
                    since: now,
                    last: now,
                    error,
                })
            }
        }
    }

    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Since when the watch has been failing, and its latest error; `None` when healthy.
    pub(crate) fn since(&self) -> Option<(Instant, String)> {
        let state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        state
            .as_ref()
            .filter(|s| s.last.elapsed() < ERRORS_FADE_AFTER)
            .map(|s| (s.since, s.error.clone()))
    }
}

/// What one watch watches.
pub(crate) struct Target<'a, R> {
    pub api: Api<R>,
    pub config: watcher::Config,
    /// The kind, for logs.
    pub what: &'a str,
    /// Where objects without kcp's cluster annotation belong, if anywhere.
    pub unannotated: Option<&'a ClusterName>,
}

/// Runs the watch until `stop` is cancelled, calling `on` for every change and `failed` for
/// every error. Errors are retried with [`RetryBackoff`]. Objects are keyed by
/// kcp's cluster annotation; without one they belong to `unannotated`, or are skipped when
/// that is `None` (every object a kcp endpoint serves is annotated).
pub(crate) async fn run<R>(
    target: Target<'_, R>,
    stop: CancellationToken,
    failing: &Failing,
    mut failed: impl FnMut(&watcher::Error),
    mut on: impl FnMut(Seen<'_, R>),
) where
    R: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let Target {
        api,
        config,
        what,
        unannotated,
    } = target;
    let key_of = |object: &R| {
        ObjectKey::of(object).or_else(|| {
            unannotated.map(|cluster| ObjectKey {
                cluster: cluster.clone(),
                namespace: object.meta().namespace.clone(),
                name: object.meta().name.clone().unwrap_or_default(),
            })
        })
    };
    // Nothing here reads managedFields (writes are server-side applies or merge patches), and
    // they are often the largest part of an object: not keeping them is most of a watch's
    // memory.
    let mut stream = watcher::watcher(api, config)
        .modify(|object| object.meta_mut().managed_fields = None)
        .boxed();
    let mut backoff = RetryBackoff::default();
    // The last version of every object the watch delivered, to reconcile re-lists against.
    let mut known: HashMap<ObjectKey, R> = HashMap::new();
    let mut relisted: Option<HashMap<ObjectKey, R>> = None;
    let mut synced = false;
    loop {
        let event = tokio::select! {
            () = stop.cancelled() => return,
            event = stream.next() => event,
        };
        let event = match event {
            Some(Ok(event)) => event,
            Some(Err(error)) => {
                tracing::warn!(watch = what, %error, "watch failed; retrying");
                failing.set(error.to_string());
                failed(&error);
                // The watcher tries again when it is polled next.
                let wait = backoff.next().unwrap_or(RETRY_AT_MOST_AFTER);
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
            None => return,
        };
        // `Init` only says a list is being tried; the watch works again once it delivers.
        if !matches!(event, Event::Init) {
            failing.clear();
            backoff.reset();
        }
        match event {
            Event::Init => relisted = Some(HashMap::new()),
            Event::InitApply(object) => {
                if let Some(key) = key_of(&object) {
                    // A re-list (after a 410, or a watch that ended empty) delivers every
                    // object again; one at the version last delivered has not changed, and
                    // reconciling every object at every re-list is what the resync is for.
                    let version = object.meta().resource_version.as_ref();
                    let unchanged = version.is_some()
                        && known
                            .get(&key)
                            .is_some_and(|last| last.meta().resource_version.as_ref() == version);
                    if !unchanged {
                        on(Seen::Apply(key.clone(), &object));
                    }
                    relisted
                        .get_or_insert_with(HashMap::new)
                        .insert(key, object);
                }
            }
            Event::InitDone => {
                let listed = relisted.take().unwrap_or_default();
                for (gone, object) in &known {
                    if !listed.contains_key(gone) {
                        on(Seen::Delete(gone.clone(), object));
                    }
                }
                known = listed;
                if !synced {
                    synced = true;
                    on(Seen::Synced);
                }
            }
            Event::Apply(object) => {
                if let Some(key) = key_of(&object) {
                    tracing::trace!(watch = what, %key, deleting = object.meta().deletion_timestamp.is_some(), "applied");
                    on(Seen::Apply(key.clone(), &object));
                    known.insert(key, object);
                }
            }
            Event::Delete(object) => {
                if let Some(key) = key_of(&object) {
                    tracing::trace!(watch = what, %key, "deleted");
                    known.remove(&key);
                    on(Seen::Delete(key, &object));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::Router;
    use axum::extract::State;
    use axum::http::Uri;
    use axum::response::{IntoResponse, Response};
    use axum::routing::get;
    use k8s_openapi::api::core::v1::ConfigMap;
    use serde_json::{Value, json};

    use super::super::expiry::{expire_if_empty, is_watch};
    use super::*;

    fn config_map(name: &str, data: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "1",
                         "annotations": {"kcp.io/cluster": "abc"}},
            "data": {"v": data},
        })
    }

    /// A kube client of a fake API server serving `app` on a free loopback port.
    async fn fake_server(app: Router) -> kube::Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let config = kube::Config::new(format!("http://{address}").parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    /// A watch of every ConfigMap, those without kcp's cluster annotation skipped.
    fn configmaps(client: kube::Client) -> Target<'static, ConfigMap> {
        Target {
            api: Api::all(client),
            config: watcher::Config::default(),
            what: "configmaps",
            unannotated: None,
        }
    }

    #[derive(Clone, Default)]
    struct Calls {
        lists: Arc<AtomicUsize>,
        watches: Arc<AtomicUsize>,
    }

    /// A list of `a` and `b`; the first watch ends with 410 Gone, so the watcher lists
    /// again, and that list no longer has `b`; later watches stay open with nothing to say.
    async fn serve(State(calls): State<Calls>, uri: Uri) -> Response {
        let watch = uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true"));
        if watch {
            if calls.watches.fetch_add(1, Ordering::SeqCst) == 0 {
                let gone = json!({"type": "ERROR", "object": {"apiVersion": "v1", "kind": "Status",
                    "status": "Failure", "code": 410, "reason": "Expired", "message": "too old"}});
                return format!("{gone}\n").into_response();
            }
            let forever = futures::stream::pending::<Result<String, std::io::Error>>();
            return axum::body::Body::from_stream(forever).into_response();
        }
        let items = match calls.lists.fetch_add(1, Ordering::SeqCst) {
            0 => vec![config_map("a", "1"), config_map("b", "last seen")],
            _ => vec![config_map("a", "1")],
        };
        axum::Json(json!({"apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "2"}, "items": items}))
        .into_response()
    }

    /// kcp's terminating virtual workspace after a restart: every watch answers `200 OK` with
    /// nothing in it; only a new list shows what changed (`b`, created since the first).
    async fn serve_empty_watches(State(calls): State<Calls>, uri: Uri) -> Response {
        if is_watch(&uri) {
            calls.watches.fetch_add(1, Ordering::SeqCst);
            return String::new().into_response();
        }
        let items = match calls.lists.fetch_add(1, Ordering::SeqCst) {
            0 => vec![config_map("a", "1")],
            _ => vec![config_map("a", "1"), config_map("b", "1")],
        };
        axum::Json(json!({"apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "2"}, "items": items}))
        .into_response()
    }

    #[tokio::test]
    async fn a_watch_that_ends_empty_lists_again_and_sees_what_changed() {
        let calls = Calls::default();
        let app = Router::new()
            .route("/api/v1/configmaps", get(serve_empty_watches))
            .with_state(calls.clone());
        let plain = fake_server(app).await;
        // The runtime's wrapping, as `watch_client` does it.
        let client = kube::Client::new(
            tower::service_fn(move |request: http::Request<kube::client::Body>| {
                let watch = is_watch(request.uri());
                let plain = plain.clone();
                async move { Ok::<_, kube::Error>(expire_if_empty(plain.send(request).await?, watch)) }
            }),
            "default",
        );

        let stop = CancellationToken::new();
        let failing = Failing::default();
        let mut seen = Vec::new();
        let watching = run(
            configmaps(client),
            stop.clone(),
            &failing,
            |_| {},
            |event| {
                if let Seen::Apply(key, _) = event {
                    seen.push(key.to_string());
                    if key.name == "b" {
                        stop.cancel();
                    }
                }
            },
        );
        tokio::time::timeout(Duration::from_secs(30), watching)
            .await
            .expect("the second list's b arrives");
        // `a`, unchanged in the second list, is not delivered again.
        assert_eq!(seen, ["abc|default/a", "abc|default/b"]);
        assert_eq!(calls.lists.load(Ordering::SeqCst), 2);
        assert_eq!(calls.watches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn retries_double_to_ten_seconds_and_start_over_after_an_event() {
        let mut backoff = RetryBackoff::default();
        let waits: Vec<u64> = backoff
            .by_ref()
            .take(7)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(RETRY_FIRST_AFTER));
    }

    #[tokio::test]
    async fn a_relist_delivers_what_changed_and_a_delete_with_the_last_object_seen() {
        let calls = Calls::default();
        let app = Router::new()
            .route("/api/v1/configmaps", get(serve))
            .with_state(calls.clone());
        let client = fake_server(app).await;

        let stop = CancellationToken::new();
        let failing = Failing::default();
        let mut errors = 0;
        let mut seen = Vec::new();
        let watching = run(
            configmaps(client),
            stop.clone(),
            &failing,
            |_| errors += 1,
            |event| {
                let entry = match event {
                    Seen::Apply(key, _) => format!("apply {key}"),
                    Seen::Delete(key, cm) => {
                        let data = cm.data.as_ref().and_then(|d| d.get("v")).cloned();
                        format!("delete {key} {}", data.unwrap_or_default())
                    }
                    Seen::Synced => "synced".to_owned(),
                };
                let deleted = entry.starts_with("delete");
                seen.push(entry);
                if deleted {
                    stop.cancel();
                }
            },
        );
        tokio::time::timeout(Duration::from_secs(30), watching)
            .await
            .expect("the re-list's delete arrives");
        assert_eq!(
            seen,
            [
                "apply abc|default/a",
                "apply abc|default/b",
                "synced",
                "delete abc|default/b last seen",
            ]
        );
        assert_eq!(errors, 1, "the 410 is counted");
        assert_eq!(calls.lists.load(Ordering::SeqCst), 2);
    }

    /// A plain Kubernetes server: one object without kcp's cluster annotation, one with it.
    async fn serve_plain(uri: Uri) -> Response {
        if uri
            .query()
            .is_some_and(|q| q.split('&').any(|p| p == "watch=true"))
        {
            let forever = futures::stream::pending::<Result<String, std::io::Error>>();
            return axum::body::Body::from_stream(forever).into_response();
        }
        let mut plain = config_map("plain", "1");
        plain["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("annotations");
        axum::Json(json!({"apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": "2"}, "items": [plain, config_map("kcp", "1")]}))
        .into_response()
    }

    #[tokio::test]
    async fn objects_without_a_cluster_annotation_belong_to_the_fallback_cluster_or_are_skipped() {
        let app = Router::new().route("/api/v1/configmaps", get(serve_plain));
        let client = fake_server(app).await;
        let host = ClusterName::host();
        for (unannotated, expected) in [
            (None, vec!["apply abc|default/kcp"]),
            (
                Some(&host),
                vec!["apply host|default/plain", "apply abc|default/kcp"],
            ),
        ] {
            let stop = CancellationToken::new();
            let failing = Failing::default();
            let mut seen = Vec::new();
            let watching = run(
                Target {
                    unannotated,
                    ..configmaps(client.clone())
                },
                stop.clone(),
                &failing,
                |_| {},
                |event| match event {
                    Seen::Apply(key, _) => seen.push(format!("apply {key}")),
                    Seen::Delete(..) => {}
                    Seen::Synced => stop.cancel(),
                },
            );
            tokio::time::timeout(Duration::from_secs(30), watching)
                .await
                .expect("the list arrives");
            assert_eq!(seen, expected, "unannotated objects go to {unannotated:?}");
        }
    }

    #[tokio::test]
    async fn a_list_refused_every_time_backs_off_and_stays_failing_since_its_first_error() {
        let lists: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
        let app = Router::new()
            .route(
                "/api/v1/configmaps",
                get(
                    |State(lists): State<Arc<std::sync::Mutex<Vec<Instant>>>>| async move {
                        lists.lock().unwrap().push(Instant::now());
                        let forbidden = json!({"apiVersion": "v1", "kind": "Status",
                        "status": "Failure", "code": 403, "reason": "Forbidden",
                        "message": "configmaps is forbidden"});
                        (axum::http::StatusCode::FORBIDDEN, axum::Json(forbidden)).into_response()
                    },
                ),
            )
            .with_state(lists.clone());
        let client = fake_server(app).await;

        let stop = CancellationToken::new();
        let failing = Failing::default();
        let mut since = Vec::new();
        let watching = run(
            configmaps(client),
            stop.clone(),
            &failing,
            |_| {
                since.push(failing.since().map(|(at, _)| at));
                if since.len() == 4 {
                    stop.cancel();
                }
            },
            |_| panic!("nothing is delivered"),
        );
        tokio::time::timeout(Duration::from_secs(30), watching)
            .await
            .expect("four refusals");
        // `failed` runs right after `set`, so each entry is the streak after that error.
        let first = since[0].expect("failing after the first refusal");
        assert_eq!(
            since,
            [Some(first); 4],
            "one streak, from the first refusal on"
        );
        let lists = lists.lock().unwrap();
        assert_eq!(lists.len(), 4);
        // A wait can only come out longer than asked (a busy machine), never shorter.
        let gaps: Vec<Duration> = lists.windows(2).map(|w| w[1] - w[0]).collect();
        for (gap, asked) in gaps.iter().zip([500, 1000, 2000]) {
            assert!(
                *gap >= Duration::from_millis(asked),
                "retries waited {gaps:?}, at least 0.5, 1 and 2 s expected"
            );
        }
    }
}
