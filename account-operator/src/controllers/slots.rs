//! How many workspaces the Accounts of one workspace have in creation, capped by
//! `--max-workspaces-in-creation`.
//!
//! kcp schedules and initialises workspaces in the order they come, whoever they belong to: one
//! org's 200 new Accounts put another org's single new workspace behind all 200 (109 s against
//! 1.3 s when quiet, measured here). Handing kcp at most a few workspaces of one workspace at a
//! time keeps its queue short, so a neighbour's workspace waits behind a few, not behind a
//! burst.
//!
//! A workspace counts from the moment this process creates it until the Workspace watch shows
//! it Ready (or being deleted, or gone). The watch shows a new Workspace a little after its
//! create returns, and a burst creates many in that time: the names created but not seen yet
//! are counted here, so concurrent reconciles cannot overshoot the cap. One the watch never
//! shows (deleted before it could) stops counting after [`UNSEEN_AT_MOST`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kcp::ClusterName;
use kcp::types::tenancy::Workspace;
use kube::ResourceExt;

/// How long a created workspace counts while the watch has not shown it: the watch shows one
/// within a second or so, unless it was deleted first.
const UNSEEN_AT_MOST: Duration = Duration::from_secs(30);

/// The workspaces in creation per cluster; see the module docs.
#[derive(Debug)]
pub struct CreationSlots {
    cap: usize,
    /// Created by this process, not shown by the watch yet, per cluster: name → when.
    unseen: Mutex<HashMap<ClusterName, HashMap<String, Instant>>>,
}

/// Whether `ws` is one of an Account's workspaces that kcp is still creating.
fn in_creation(ws: &Workspace) -> bool {
    ws.metadata.deletion_timestamp.is_none()
        && !ws.is_ready()
        && ws.owner_references().iter().any(|o| o.kind == "Account")
}

impl CreationSlots {
    /// At most `cap` workspaces in creation per cluster; 0 for no cap.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            unseen: Mutex::default(),
        }
    }

    /// The cap (0: none).
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Takes a slot in `cluster` for creating workspace `name`, if one is free: fewer than the
    /// cap are in creation among `watched` (the cluster's Workspaces as the watch shows them)
    /// and those created but not shown yet. A caller that took one and then failed to create
    /// the workspace gives it back with [`release`](Self::release).
    pub fn take(
        &self,
        cluster: &ClusterName,
        name: &str,
        watched: &[impl AsRef<Workspace>],
    ) -> bool {
        if self.cap == 0 {
            return true;
        }
        let mut unseen = self.unseen.lock().unwrap_or_else(|p| p.into_inner());
        let created = unseen.entry(cluster.clone()).or_default();
        // Shown by the watch now: counted there from here on.
        created.retain(|n, at| {
            at.elapsed() < UNSEEN_AT_MOST && !watched.iter().any(|ws| ws.as_ref().name_any() == *n)
        });
        let busy = watched.iter().filter(|ws| in_creation(ws.as_ref())).count() + created.len();
        // A repeat for a name that holds a slot already keeps it.
        let free = created.contains_key(name) || busy < self.cap;
        if free {
            created.entry(name.to_owned()).or_insert_with(Instant::now);
        }
        if created.is_empty() {
            unseen.remove(cluster);
        }
        free
    }

    /// Gives back the slot taken for `name`: its create failed, so the watch will not show it.
    pub fn release(&self, cluster: &ClusterName, name: &str) {
        let mut unseen = self.unseen.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(created) = unseen.get_mut(cluster) {
            created.remove(name);
            if created.is_empty() {
                unseen.remove(cluster);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn workspace(name: &str, phase: &str, owned: bool, deleting: bool) -> Arc<Workspace> {
        let owners = if owned {
            json!([{"apiVersion": "core.platform-mesh.io/v1alpha1", "kind": "Account",
                    "name": name, "uid": format!("uid-{name}")}])
        } else {
            json!([])
        };
        let deletion = deleting.then_some("2026-11-28T00:00:00Z");
        Arc::new(
            serde_json::from_value(json!({
                "apiVersion": "tenancy.kcp.io/v1alpha1", "kind": "Workspace",
                "metadata": {"name": name, "ownerReferences": owners,
                             "deletionTimestamp": deletion},
                "spec": {}, "status": {"phase": phase},
            }))
            .unwrap(),
        )
    }

    fn cluster(name: &str) -> ClusterName {
        name.parse().unwrap()
    }

    #[test]
    fn a_burst_gets_the_cap_and_the_next_slot_when_one_is_ready() {
        let slots = CreationSlots::new(2);
        let (a, b) = (cluster("a"), cluster("b"));
        let none: [Arc<Workspace>; 0] = [];
        // Created, not shown by the watch yet: they count.
        assert!(slots.take(&a, "w1", &none));
        assert!(slots.take(&a, "w2", &none));
        assert!(!slots.take(&a, "w3", &none));
        assert!(slots.take(&a, "w2", &none), "a repeat keeps its slot");
        // Another workspace's Accounts have slots of their own.
        assert!(slots.take(&b, "v1", &none));

        // The watch shows w1 Ready and w2 still initialising: one slot is free.
        let watched = [
            workspace("w1", "Ready", true, false),
            workspace("w2", "Initializing", true, false),
        ];
        assert!(slots.take(&a, "w3", &watched));
        assert!(!slots.take(&a, "w4", &watched));
    }

    #[test]
    fn foreign_deleting_and_ready_workspaces_take_no_slot() {
        let slots = CreationSlots::new(1);
        let a = cluster("a");
        let watched = [
            workspace("foreign", "Scheduling", false, false),
            workspace("going", "Initializing", true, true),
            workspace("done", "Ready", true, false),
        ];
        assert!(slots.take(&a, "w1", &watched));
    }

    #[test]
    fn a_failed_create_gives_its_slot_back_and_no_cap_means_always() {
        let slots = CreationSlots::new(1);
        let a = cluster("a");
        let none: [Arc<Workspace>; 0] = [];
        assert!(slots.take(&a, "w1", &none));
        assert!(!slots.take(&a, "w2", &none));
        slots.release(&a, "w1");
        assert!(slots.take(&a, "w2", &none));

        let unlimited = CreationSlots::new(0);
        for i in 0..100 {
            assert!(unlimited.take(&a, &format!("w{i}"), &none));
        }
    }
}
