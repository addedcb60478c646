//! A deduplicating work queue with per-key exponential backoff, fair across groups.
//!
//! - A key added while it waits is not added twice; the earlier due time wins.
//! - A key is never handed out while it is being processed; one added meanwhile is marked
//!   dirty and handed out again as soon as the current run is done.
//! - Failures back a key off exponentially (`base * 2^n`, capped), reset by a success.
//! - Due keys are handed out round-robin across their [fairness groups](FairnessGroup) (for
//!   an [`ObjectKey`], its logical cluster: one workspace), and within a group by due time,
//!   then by when they were added. A due key thus waits behind at most one key of each
//!   other group with due keys, not behind a whole burst in one of them (issue 14: one org's
//!   200 new Accounts in one workspace held another org's deletion back for 71 s).
//!
//! Concurrency is bounded by the number of workers calling [`WorkQueue::next`].
//!
//! Each group keeps its waiting keys ordered by due time. A group whose earliest key is due
//! takes its turn in a ring of ready groups; the others wait in an index by their earliest
//! key's due time, and join the back of the ring when it comes due. So every operation is
//! O(log n) (amortized), whatever the number of keys or groups.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::cache::ObjectKey;
use crate::name::ClusterName;

/// What a key shares its turns with: due keys are handed out round-robin across groups.
pub trait FairnessGroup {
    type Group: Clone + Eq + Hash + Ord;

    /// The key's group.
    fn fairness_group(&self) -> Self::Group;
}

/// Objects share their logical cluster's turns: a busy workspace cannot starve the others.
impl FairnessGroup for ObjectKey {
    type Group = ClusterName;

    fn fairness_group(&self) -> ClusterName {
        self.cluster.clone()
    }
}

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

/// The waiting keys of one fairness group.
struct Group<K> {
    /// By due time, then by when they were scheduled.
    waiting: BTreeSet<(Instant, u64, K)>,
    /// Whether the group is in the ring; otherwise its earliest key is in `pending`.
    in_ring: bool,
}

struct State<K: FairnessGroup> {
    /// Every waiting key: its due time and sequence number, its entry in its group.
    due: HashMap<K, (Instant, u64)>,
    /// The groups with waiting keys, and those in the ring.
    groups: HashMap<K::Group, Group<K>>,
    /// Groups whose earliest key was due when they joined, in turn order. A group that lost
    /// its due keys meanwhile (removed) stays until its turn, and then goes to `pending`, or
    /// is forgotten when it has no keys left: a ring entry is always a group in `groups`
    /// with `in_ring` set, and appears once.
    ring: VecDeque<K::Group>,
    /// The groups with waiting keys that are not in the ring, by their earliest key.
    pending: BTreeSet<(Instant, u64, K::Group)>,
    running: HashSet<K>,
    /// Keys added while running: re-added when their run is done.
    dirty: HashMap<K, Instant>,
    failures: HashMap<K, u32>,
    sequence: u64,
    shut_down: bool,
}

impl<K: FairnessGroup + Clone + Eq + Hash + Ord> State<K> {
    /// Waits `key` until `at`, unless it already waits until then or earlier.
    fn schedule(&mut self, key: K, at: Instant) {
        let group = key.fairness_group();
        if let Some(&(current, seq)) = self.due.get(&key) {
            if current <= at {
                return;
            }
            self.unwait(&group, &key, current, seq);
        }
        self.sequence += 1;
        let seq = self.sequence;
        self.due.insert(key.clone(), (at, seq));
        let entry = self.groups.entry(group.clone()).or_insert_with(|| Group {
            waiting: BTreeSet::new(),
            in_ring: false,
        });
        let earliest = entry.waiting.first().map(|(at, seq, _)| (*at, *seq));
        entry.waiting.insert((at, seq, key));
        if entry.in_ring {
            return;
        }
        // Not in the ring: its index entry follows its earliest key.
        if let Some((old_at, old_seq)) = earliest {
            if (old_at, old_seq) < (at, seq) {
                return;
            }
            self.pending.remove(&(old_at, old_seq, group.clone()));
        }
        self.pending.insert((at, seq, group));
    }

    /// Takes a waiting key out of its group (not out of `due`).
    fn unwait(&mut self, group: &K::Group, key: &K, at: Instant, seq: u64) {
        let Some(entry) = self.groups.get_mut(group) else {
            return;
        };
        let was_earliest = entry
            .waiting
            .first()
            .is_some_and(|(a, s, _)| (*a, *s) == (at, seq));
        entry.waiting.remove(&(at, seq, key.clone()));
        if entry.in_ring || !was_earliest {
            // A ring entry is settled when its turn comes.
            return;
        }
        self.pending.remove(&(at, seq, group.clone()));
        match entry.waiting.first() {
            Some((next_at, next_seq, _)) => {
                self.pending.insert((*next_at, *next_seq, group.clone()));
            }
            None => {
                self.groups.remove(group);
            }
        }
    }

    /// The next due key, taken out of the queue and marked running; otherwise when the next
    /// key comes due, if any waits.
    fn take_due(&mut self, now: Instant) -> Result<K, Option<Instant>> {
        // Groups whose earliest key came due join the back of the ring, earliest first.
        while let Some((at, _, _)) = self.pending.first()
            && *at <= now
        {
            let Some((_, _, group)) = self.pending.pop_first() else {
                break;
            };
            if let Some(entry) = self.groups.get_mut(&group) {
                entry.in_ring = true;
                self.ring.push_back(group);
            }
        }
        while let Some(group) = self.ring.pop_front() {
            let Some(entry) = self.groups.get_mut(&group) else {
                continue;
            };
            let Some((at, seq, _)) = entry.waiting.first() else {
                self.groups.remove(&group);
                continue;
            };
            if *at > now {
                // Its due keys were removed while it waited for its turn.
                let (at, seq) = (*at, *seq);
                entry.in_ring = false;
                self.pending.insert((at, seq, group));
                continue;
            }
            let Some((_, _, key)) = entry.waiting.pop_first() else {
                continue;
            };
            match entry.waiting.first() {
                // Still has a due key: its next turn comes after every other ready group's.
                Some((at, _, _)) if *at <= now => self.ring.push_back(group),
                Some((at, seq, _)) => {
                    let (at, seq) = (*at, *seq);
                    entry.in_ring = false;
                    self.pending.insert((at, seq, group));
                }
                None => {
                    self.groups.remove(&group);
                }
            }
            self.due.remove(&key);
            self.running.insert(key.clone());
            return Ok(key);
        }
        Err(self.pending.first().map(|(at, _, _)| *at))
    }
}

/// The work queue; share it in an `Arc`.
pub struct WorkQueue<K: FairnessGroup> {
    state: Mutex<State<K>>,
    changed: Notify,
    backoff: Backoff,
}

impl<K: FairnessGroup + Clone + Eq + Hash + Ord> std::fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue")
            .field("waiting", &self.len())
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// What to do with a key after processing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// Done; forget its failures. Requeue after the duration, if any.
    Success(Option<Duration>),
    /// Failed; retry after the key's backoff.
    Failure,
}

impl<K: FairnessGroup + Clone + Eq + Hash + Ord> WorkQueue<K> {
    pub fn new(backoff: Backoff) -> Self {
        Self {
            state: Mutex::new(State {
                due: HashMap::new(),
                groups: HashMap::new(),
                ring: VecDeque::new(),
                pending: BTreeSet::new(),
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
        state.schedule(key, at);
        drop(state);
        self.changed.notify_waiters();
    }

    /// Removes a waiting key (e.g. its object is gone). A running key finishes its run.
    pub fn remove(&self, key: &K) {
        let mut state = self.lock();
        if let Some((at, seq)) = state.due.remove(key) {
            state.unwait(&key.fairness_group(), key, at, seq);
        }
        state.dirty.remove(key);
        state.failures.remove(key);
    }

    /// Waits for the next due key and marks it running; `None` once shut down. Due keys are
    /// handed out round-robin across groups.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.changed.notified();
            let wait_until = {
                let mut state = self.lock();
                if state.shut_down {
                    return None;
                }
                match state.take_due(Instant::now()) {
                    Ok(key) => return Some(key),
                    Err(wait_until) => wait_until,
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
            state.schedule(key, at);
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

    /// A test key's group: what comes before its `/`, or the whole key.
    impl<'a> FairnessGroup for &'a str {
        type Group = &'a str;

        fn fairness_group(&self) -> &'a str {
            let key: &'a str = self;
            key.split_once('/').map_or(key, |(group, _)| group)
        }
    }

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

    /// A key of cluster `.0`, object `.1`.
    type Key = (char, u32);

    impl FairnessGroup for Key {
        type Group = char;

        fn fairness_group(&self) -> char {
            self.0
        }
    }

    fn fair_queue() -> WorkQueue<Key> {
        WorkQueue::new(Backoff {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
        })
    }

    impl<K: FairnessGroup + Clone + Eq + Hash + Ord> WorkQueue<K> {
        /// Checks the bookkeeping: every waiting key is in its group once, every group with
        /// keys is either in the ring once or indexed by its earliest key in `pending`.
        fn assert_consistent(&self) {
            let state = self.lock();
            let in_groups: usize = state.groups.values().map(|g| g.waiting.len()).sum();
            assert_eq!(
                in_groups,
                state.due.len(),
                "keys in groups vs. waiting keys"
            );
            for (key, (at, seq)) in &state.due {
                let group = &state.groups[&key.fairness_group()];
                assert!(group.waiting.contains(&(*at, *seq, key.clone())));
                assert!(!state.running.contains(key), "a running key also waits");
            }
            let ring: HashSet<&K::Group> = state.ring.iter().collect();
            assert_eq!(ring.len(), state.ring.len(), "a group is in the ring twice");
            let mut pending = 0;
            for (name, group) in &state.groups {
                assert_eq!(group.in_ring, ring.contains(name));
                if !group.in_ring {
                    let (at, seq, _) = group.waiting.first().expect("an empty pending group");
                    assert!(state.pending.contains(&(*at, *seq, name.clone())));
                    pending += 1;
                }
            }
            assert_eq!(pending, state.pending.len(), "stale entries in pending");
            assert!(ring.iter().all(|g| state.groups.contains_key(*g)));
        }
    }

    async fn take(q: &WorkQueue<Key>, n: usize) -> Vec<Key> {
        let mut keys = Vec::new();
        for _ in 0..n {
            let key = q.next().await.unwrap();
            q.assert_consistent();
            keys.push(key);
        }
        keys
    }

    /// Issue 14: one org's 200 new Accounts in one workspace delayed another org's deletion
    /// by 71 s. The other workspace's key now waits behind at most one of the burst.
    #[tokio::test(start_paused = true)]
    async fn a_burst_in_one_cluster_does_not_delay_another_clusters_key() {
        let q = fair_queue();
        for i in 0..200 {
            q.add(('a', i));
        }
        q.add(('b', 0));
        assert_eq!(q.len(), 201);
        let first = take(&q, 2).await;
        assert!(first.contains(&('b', 0)), "{first:?}");
        // The burst itself keeps its order.
        let rest = take(&q, 199).await;
        let a: Vec<Key> = first
            .into_iter()
            .chain(rest)
            .filter(|k| k.0 == 'a')
            .collect();
        assert_eq!(a, (0..200).map(|i| ('a', i)).collect::<Vec<_>>());
        assert!(q.is_empty());
    }

    /// A key of a cluster that comes due while another cluster's burst is being worked off
    /// also waits behind at most one key of the burst.
    #[tokio::test(start_paused = true)]
    async fn a_key_coming_due_during_a_burst_gets_the_next_turn_but_one() {
        let q = fair_queue();
        for i in 0..50 {
            q.add(('a', i));
        }
        take(&q, 10).await;
        q.add_after(('b', 0), Duration::from_secs(1));
        take(&q, 5).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let next = take(&q, 2).await;
        assert!(next.contains(&('b', 0)), "{next:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn due_keys_are_handed_out_round_robin_across_clusters() {
        let q = fair_queue();
        for cluster in ['a', 'b', 'c'] {
            for i in 0..3 {
                q.add((cluster, i));
            }
        }
        // `c` has one more; `b` runs out first.
        q.add(('c', 3));
        q.remove(&('b', 2));
        let order = take(&q, 9).await;
        assert_eq!(
            order,
            [
                ('a', 0),
                ('b', 0),
                ('c', 0),
                ('a', 1),
                ('b', 1),
                ('c', 1),
                ('a', 2),
                ('c', 2),
                ('c', 3),
            ]
        );
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn within_a_cluster_keys_go_by_due_time_and_a_cluster_with_none_due_has_no_turn() {
        let q = fair_queue();
        q.add_after(('a', 0), Duration::from_secs(10));
        q.add(('a', 1));
        q.add_after(('a', 2), Duration::from_secs(5));
        q.add_after(('b', 0), Duration::from_secs(20));
        q.add(('a', 3));
        let started = Instant::now();
        assert_eq!(take(&q, 2).await, [('a', 1), ('a', 3)]);
        assert_eq!(take(&q, 1).await, [('a', 2)]);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        // Moved earlier: it is due now.
        q.add(('a', 0));
        assert_eq!(take(&q, 1).await, [('a', 0)]);
        assert_eq!(take(&q, 1).await, [('b', 0)]);
        assert_eq!(started.elapsed(), Duration::from_secs(20));
    }

    #[tokio::test(start_paused = true)]
    async fn a_cluster_whose_due_keys_were_removed_loses_its_turn_and_gets_it_back() {
        let q = fair_queue();
        q.add(('a', 0));
        q.add(('a', 1));
        q.add(('b', 0));
        q.add(('b', 1));
        assert_eq!(take(&q, 1).await, [('a', 0)]);
        // `a` waits for its next turn with nothing due.
        q.remove(&('a', 1));
        q.assert_consistent();
        assert_eq!(take(&q, 2).await, [('b', 0), ('b', 1)]);
        q.add_after(('a', 2), Duration::from_secs(1));
        q.add(('a', 1));
        q.assert_consistent();
        assert_eq!(take(&q, 2).await, [('a', 1), ('a', 2)]);
        assert!(q.is_empty());
    }

    /// Adds, removes, failures, dirty re-adds and requeues in a pseudo-random mix: the
    /// bookkeeping stays consistent, nothing is handed out twice at once, nothing is lost.
    #[tokio::test(start_paused = true)]
    async fn the_bookkeeping_holds_under_a_random_mix_of_operations() {
        let q = fair_queue();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut random = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut running: Vec<Key> = Vec::new();
        let mut removed = HashSet::new();
        for _ in 0..5000 {
            let key: Key = (['a', 'b', 'c', 'd'][random(4) as usize], random(8) as u32);
            match random(6) {
                0 => q.add(key),
                1 => q.add_after(key, Duration::from_millis(random(300))),
                2 => {
                    q.remove(&key);
                    removed.insert(key);
                }
                3 if !running.is_empty() => {
                    let key = running.swap_remove(random(running.len() as u64) as usize);
                    let outcome = match random(3) {
                        0 => Completion::Failure,
                        1 => Completion::Success(Some(Duration::from_millis(random(300)))),
                        _ => Completion::Success(None),
                    };
                    q.done(key, outcome);
                }
                _ => {
                    if let Ok(Some(key)) =
                        tokio::time::timeout(Duration::from_millis(random(50)), q.next()).await
                    {
                        assert!(!running.contains(&key), "{key:?} handed out twice");
                        running.push(key);
                    }
                }
            }
            q.assert_consistent();
        }
        // Everything left is handed out in the end.
        for key in running.drain(..) {
            q.done(key, Completion::Success(None));
        }
        while !q.is_empty() {
            let key = q.next().await.unwrap();
            q.assert_consistent();
            q.done(key, Completion::Success(None));
        }
        q.assert_consistent();
        assert!(q.lock().groups.is_empty() && q.lock().pending.is_empty());
        assert!(!removed.is_empty());
    }

    #[test]
    fn backoff_saturates_instead_of_overflowing() {
        let b = Backoff::default();
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(200), b.cap);
    }
}
