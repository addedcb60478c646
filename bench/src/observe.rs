//! One watch per kind and workspace, shared by every wait on it: a scenario with hundreds of
//! objects in flight must not open hundreds of watches (that would load kcp more than the
//! contenders do).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Instant;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::BenchError;

/// The objects of one kind in one workspace, as a watch last showed them.
#[derive(Debug)]
pub struct Watched<K> {
    objects: watch::Receiver<BTreeMap<String, K>>,
    task: tokio::task::JoinHandle<()>,
}

impl<K> Watched<K>
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    /// Starts watching `api` and returns once the first list is in.
    pub async fn start(api: Api<K>, what: &str) -> Result<Self, BenchError> {
        let (sender, objects) = watch::channel(BTreeMap::new());
        let (synced, first_list) = tokio::sync::oneshot::channel();
        let what_owned = what.to_owned();
        let task = tokio::spawn(async move {
            let mut synced = Some(synced);
            let mut listing = BTreeMap::new();
            let mut events = watcher::watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(Event::Init) => listing.clear(),
                    Ok(Event::InitApply(object)) => {
                        listing.insert(object.name_any(), object);
                    }
                    Ok(Event::InitDone) => {
                        // A relist replaces the whole picture: objects deleted while the
                        // watch was down must not linger.
                        sender.send_replace(std::mem::take(&mut listing));
                        if let Some(synced) = synced.take() {
                            let _ = synced.send(());
                        }
                    }
                    Ok(Event::Apply(object)) => sender.send_modify(|map| {
                        map.insert(object.name_any(), object);
                    }),
                    Ok(Event::Delete(object)) => sender.send_modify(|map| {
                        map.remove(&object.name_any());
                    }),
                    Err(e) => eprintln!("bench: watching {what_owned}: {e} (retrying)"),
                }
            }
        });
        tokio::time::timeout(std::time::Duration::from_secs(60), first_list)
            .await
            .map_err(|_| BenchError(format!("no first list of {what} within 60 s")))?
            .map_err(|_| BenchError(format!("the watch of {what} ended")))?;
        Ok(Self { objects, task })
    }

    /// Waits until `done` holds for object `name` (`None`: it does not exist) and returns
    /// when that was seen, or `None` at `deadline`.
    pub async fn until(
        &self,
        name: &str,
        deadline: tokio::time::Instant,
        done: impl Fn(Option<&K>) -> bool,
    ) -> Option<Instant> {
        let mut objects = self.objects.clone();
        loop {
            if done(objects.borrow_and_update().get(name)) {
                return Some(Instant::now());
            }
            match tokio::time::timeout_at(deadline, objects.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// [`until`](Self::until), for as long as `progress` says work goes on; counts as
    /// progress when it returns `Some`.
    pub async fn until_progressing(
        &self,
        name: &str,
        progress: &Progress,
        done: impl Fn(Option<&K>) -> bool,
    ) -> Option<Instant> {
        loop {
            let deadline = progress.deadline();
            if let Some(seen) = self.until(name, deadline, &done).await {
                progress.tick();
                return Some(seen);
            }
            // Another wait may have made progress meanwhile, moving the deadline on.
            if progress.deadline() <= tokio::time::Instant::now() {
                return None;
            }
        }
    }

    /// The object `name` as last seen.
    pub fn get(&self, name: &str) -> Option<K> {
        self.objects.borrow().get(name).cloned()
    }
}

impl<K> Drop for Watched<K> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// When a contender's waits give up: at a hard deadline, or once nothing it does has finished
/// for `stall` (a contender that leaves work stuck for good is not waited for until the hard
/// deadline).
#[derive(Debug)]
pub struct Progress {
    hard: tokio::time::Instant,
    stall: std::time::Duration,
    last: std::sync::Mutex<tokio::time::Instant>,
}

impl Progress {
    pub fn new(hard: tokio::time::Instant, stall: std::time::Duration) -> Self {
        Self {
            hard,
            stall,
            last: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// The hard deadline.
    pub fn hard(&self) -> tokio::time::Instant {
        self.hard
    }

    /// The earlier of the hard deadline and `stall` after the last progress.
    pub fn deadline(&self) -> tokio::time::Instant {
        let last = *self.last.lock().unwrap_or_else(|p| p.into_inner());
        self.hard.min(last + self.stall)
    }

    /// Something finished.
    pub fn tick(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = tokio::time::Instant::now();
    }
}
