//! One wildcard watch of one kind on one endpoint, turned into applies and deletes keyed by
//! [`ObjectKey`], with re-lists reconciled (an object missing from a re-list is deleted).

use std::collections::HashSet;
use std::fmt::Debug;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::store::ObjectKey;

/// What a watch saw.
#[derive(Debug)]
pub(crate) enum Seen<'a, R> {
    /// Added or changed.
    Apply(ObjectKey, &'a R),
    /// Deleted (the object is `None` when a re-list no longer contained it).
    Delete(ObjectKey, Option<&'a R>),
    /// The first complete list arrived.
    Synced,
}

/// Runs the watch until `stop` is cancelled, calling `on` for every change. Errors are
/// logged and retried with kube-runtime's default backoff.
pub(crate) async fn run<R>(
    api: Api<R>,
    config: watcher::Config,
    what: &str,
    stop: CancellationToken,
    mut on: impl FnMut(Seen<'_, R>),
) where
    R: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut known: HashSet<ObjectKey> = HashSet::new();
    let mut relisted: Option<HashSet<ObjectKey>> = None;
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
                continue;
            }
            None => return,
        };
        match event {
            Event::Init => relisted = Some(HashSet::new()),
            Event::InitApply(object) => {
                if let Some(key) = ObjectKey::of(&object) {
                    relisted
                        .get_or_insert_with(HashSet::new)
                        .insert(key.clone());
                    on(Seen::Apply(key, &object));
                }
            }
            Event::InitDone => {
                let listed = relisted.take().unwrap_or_default();
                for gone in known.difference(&listed) {
                    on(Seen::Delete(gone.clone(), None));
                }
                known = listed;
                if !synced {
                    synced = true;
                    on(Seen::Synced);
                }
            }
            Event::Apply(object) => {
                if let Some(key) = ObjectKey::of(&object) {
                    tracing::trace!(watch = what, %key, deleting = object.meta().deletion_timestamp.is_some(), "applied");
                    known.insert(key.clone());
                    on(Seen::Apply(key, &object));
                }
            }
            Event::Delete(object) => {
                if let Some(key) = ObjectKey::of(&object) {
                    tracing::trace!(watch = what, %key, "deleted");
                    known.remove(&key);
                    on(Seen::Delete(key, Some(&object)));
                }
            }
        }
    }
}
