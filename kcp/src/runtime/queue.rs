//! A deduplicating work queue with per-key exponential backoff.
//!
//! - A key added while it waits is not added twice; the earlier due time wins.
//! - A key is never handed out while it is being processed; one added meanwhile is marked
//!   dirty and handed out again as soon as the current run is done.
//! - Failures back a key off exponentially (`base * 2^n`, capped), reset by a success.
//!
//! Concurrency is bounded by the number of workers calling [`WorkQueue::next`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Backoff after failures: `base * 2^(failures-1)`, at most `cap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after the `failures`-th consecutive failure (1-based).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }
}

#[derive(Debug)]
struct State<K> {
    /// Waiting keys by due time; `due` indexes it.
    by_due: BTreeSet<(Instant, u64, K)>,
    due: HashMap<K, (Instant, u64)>,
    running: HashSet<K>,
    /// Keys added while running: re-added when their run is done.
    dirty: HashMap<K, Instant>,
    failures: HashMap<K, u32>,
    sequence: u64,
    shut_down: bool,
}

/// The work queue; share it in an `Arc`.
#[derive(Debug)]
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    changed: Notify,
    backoff: Backoff,
}

/// What to do with a key after processing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Done; forget its failures. Requeue after the duration, if any.
    Success(Option<Duration>),
    /// Failed; retry after the key's backoff.
    Failure,
}

impl<K: Clone + Eq + Hash + Ord> WorkQueue<K> {
    pub fn new(backoff: Backoff) -> Self {
        Self {
            state: Mutex::new(State {
                by_due: BTreeSet::new(),
                due: HashMap::new(),
                running: HashSet::new(),
                dirty: HashMap::new(),
                failures: HashMap::new(),
                sequence: 0,
                shut_down: false,
            }),
            changed: Notify::new(),
            backoff,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Adds `key`, due now.
    pub fn add(&self, key: K) {
        self.add_after(key, Duration::ZERO);
    }

    /// Adds `key`, due after `delay` (or earlier, if it is already due earlier).
    pub fn add_after(&self, key: K, delay: Duration) {
        let at = Instant::now() + delay;
        let mut state = self.lock();
        if state.shut_down {
            return;
        }
        if state.running.contains(&key) {
            let entry = state.dirty.entry(key).or_insert(at);
            *entry = (*entry).min(at);
            return;
        }
        Self::schedule(&mut state, key, at);
        drop(state);
        self.changed.notify_waiters();
    }

    fn schedule(state: &mut State<K>, key: K, at: Instant) {
        if let Some(&(current, seq)) = state.due.get(&key) {
            if current <= at {
                return;
            }
            state.by_due.remove(&(current, seq, key.clone()));
        }
        state.sequence += 1;
        let seq = state.sequence;
        state.due.insert(key.clone(), (at, seq));
        state.by_due.insert((at, seq, key));
    }

    /// Removes a waiting key (e.g. its object is gone). A running key finishes its run.
    pub fn remove(&self, key: &K) {
        let mut state = self.lock();
        if let Some((at, seq)) = state.due.remove(key) {
            state.by_due.remove(&(at, seq, key.clone()));
        }
        state.dirty.remove(key);
        state.failures.remove(key);
    }

    /// Waits for the next due key and marks it running; `None` once shut down.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.changed.notified();
            let wait_until = {
                let mut state = self.lock();
                if state.shut_down {
                    return None;
                }
                match state.by_due.first().cloned() {
                    Some((at, seq, key)) if at <= Instant::now() => {
                        state.by_due.remove(&(at, seq, key.clone()));
                        state.due.remove(&key);
                        state.running.insert(key.clone());
                        return Some(key);
                    }
                    Some((at, _, _)) => Some(at),
                    None => None,
                }
            };
            match wait_until {
                Some(at) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks a run of `key` finished and schedules what follows; returns the delay applied
    /// when the key was requeued.
    pub fn done(&self, key: K, outcome: Completion) -> Option<Duration> {
        let mut state = self.lock();
        state.running.remove(&key);
        let requeue = match outcome {
            Completion::Success(after) => {
                state.failures.remove(&key);
                after
            }
            Completion::Failure => {
                let failures = state.failures.entry(key.clone()).or_insert(0);
                *failures = failures.saturating_add(1);
                Some(self.backoff.delay(*failures))
            }
        };
        let dirty = state.dirty.remove(&key);
        let now = Instant::now();
        let next = match (dirty, requeue) {
            // A change arrived during the run: look again now (a failure still backs off).
            (Some(at), Some(delay)) if outcome == Completion::Failure => Some(at.max(now + delay)),
            (Some(at), _) => Some(at),
            (None, Some(delay)) => Some(now + delay),
            (None, None) => None,
        };
        if let Some(at) = next
            && !state.shut_down
        {
            Self::schedule(&mut state, key, at);
        }
        drop(state);
        self.changed.notify_waiters();
        next.map(|at| at.saturating_duration_since(now))
    }

    /// Keys waiting (not running).
    pub fn len(&self) -> usize {
        self.lock().due.len()
    }

    /// Whether no key waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Consecutive failures recorded for `key`.
    pub fn failures(&self, key: &K) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Stops handing out keys; every waiting `next` returns `None`.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn queue() -> WorkQueue<&'static str> {
        WorkQueue::new(Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn adding_a_waiting_key_again_does_not_duplicate_it() {
        let q = queue();
        q.add("a");
        q.add("a");
        q.add_after("a", Duration::from_secs(10));
        q.add("b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.next().await, Some("b"));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_running_key_is_not_handed_out_until_done_then_runs_again_if_dirty() {
        let q = queue();
        q.add("a");
        assert_eq!(q.next().await, Some("a"));
        q.add("a"); // changed while running
        assert!(q.is_empty(), "a running key must not wait as well");
        let second = tokio::time::timeout(Duration::from_secs(5), q.next()).await;
        assert!(second.is_err(), "a running key was handed out twice");
        assert_eq!(q.done("a", Completion::Success(None)), Some(Duration::ZERO));
        assert_eq!(q.next().await, Some("a"));
        assert_eq!(q.done("a", Completion::Success(None)), None);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn workers_never_run_one_key_concurrently() {
        let q = Arc::new(queue());
        let running = Arc::new(AtomicUsize::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let (q, running, runs) = (q.clone(), running.clone(), runs.clone());
            workers.push(tokio::spawn(async move {
                while let Some(key) = q.next().await {
                    assert_eq!(running.fetch_add(1, Ordering::SeqCst), 0, "concurrent run");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                    runs.fetch_add(1, Ordering::SeqCst);
                    q.done(key, Completion::Success(None));
                }
            }));
        }
        for _ in 0..20 {
            q.add("same");
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        q.shut_down();
        for w in workers {
            w.await.unwrap();
        }
        let runs = runs.load(Ordering::SeqCst);
        assert!(
            (2..20).contains(&runs),
            "changes during runs coalesce: {runs} runs"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_back_off_exponentially_up_to_the_cap_and_reset_on_success() {
        let q = queue();
        let mut delays = Vec::new();
        q.add("a");
        for _ in 0..6 {
            let key = q.next().await.unwrap();
            delays.push(q.done(key, Completion::Failure).unwrap());
        }
        let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(q.failures(&"a"), 6);

        let key = q.next().await.unwrap();
        assert_eq!(q.done(key, Completion::Success(None)), None);
        assert_eq!(q.failures(&"a"), 0);
        q.add("a");
        let key = q.next().await.unwrap();
        assert_eq!(
            q.done(key, Completion::Failure),
            Some(Duration::from_millis(100))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_backed_off_key_is_handed_out_only_when_due() {
        let q = queue();
        q.add("a");
        let key = q.next().await.unwrap();
        q.done(key, Completion::Failure);
        let started = Instant::now();
        assert_eq!(q.next().await, Some("a"));
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn shutting_down_releases_waiting_workers() {
        let q = Arc::new(queue());
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.next().await }
        });
        tokio::task::yield_now().await;
        q.shut_down();
        assert_eq!(waiter.await.unwrap(), None);
    }

    #[test]
    fn backoff_saturates_instead_of_overflowing() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(200), b.cap);
    }
}
