//! The engaged logical clusters: which endpoint (shard) each is served on, and the path index.
//!
//! A cluster is engaged while at least one object holds it (a Ready APIBinding of the export,
//! or a LogicalCluster an initializing or terminating virtual workspace lists), on any
//! endpoint. Holders are tracked per endpoint: a logical cluster lives on one shard, but while
//! it moves, or while a removed endpoint's last events are still arriving, two endpoints can
//! report holders of one cluster, and each endpoint's holders must come and go with their own
//! endpoint's events only. So the cluster's endpoint is that of a current holder, never one
//! that merely reported last, and dropping an endpoint disengages only the clusters no other
//! endpoint holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::name::{ClusterName, ClusterPath};

/// The objects that keep one cluster engaged.
#[derive(Debug, Default)]
struct Held {
    /// (endpoint URL, holder) → when the holder first held the cluster on that endpoint (a
    /// sequence number; later holds of the same holder do not renew it).
    holders: BTreeMap<(String, String), u64>,
    /// The endpoint of the holder that came last of those still holding: writes go there.
    /// When a cluster moves shards, its holder on the new shard appears after the old
    /// shard's, and a late update from the old shard does not move it back.
    endpoint: String,
}

impl Held {
    /// Re-derives `endpoint` from the holders; false when none is left.
    fn settle(&mut self) -> bool {
        match self.holders.iter().max_by_key(|(_, seq)| **seq) {
            Some(((endpoint, _), _)) => {
                if *endpoint != self.endpoint {
                    self.endpoint.clone_from(endpoint);
                }
                true
            }
            None => false,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    /// Engaged cluster → its holders and endpoint; a cluster is here while it has a holder.
    clusters: BTreeMap<ClusterName, Held>,
    /// Workspace path → cluster, from `kcp.io/path` of the engaging objects.
    paths: HashMap<ClusterPath, ClusterName>,
    sequence: u64,
}

/// What changed when an engaging object came or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Engaged,
    Disengaged,
    Unchanged,
}

/// The set of engaged clusters; cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct ClusterSet {
    state: Arc<RwLock<State>>,
}

impl ClusterSet {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Records that `holder` (an object name) engages `cluster` on `endpoint`.
    pub(crate) fn hold(
        &self,
        cluster: &ClusterName,
        holder: &str,
        endpoint: &str,
        path: Option<ClusterPath>,
    ) -> Change {
        let mut state = self.write();
        state.sequence += 1;
        let sequence = state.sequence;
        let held = state.clusters.entry(cluster.clone()).or_default();
        let first = held.holders.is_empty();
        held.holders
            .entry((endpoint.to_owned(), holder.to_owned()))
            .or_insert(sequence);
        held.settle();
        if let Some(path) = path {
            state.paths.insert(path, cluster.clone());
        }
        if first {
            Change::Engaged
        } else {
            Change::Unchanged
        }
    }

    /// Records that `holder` no longer engages `cluster` on `endpoint`; the cluster leaves
    /// with its last holder on any endpoint.
    pub(crate) fn release(&self, cluster: &ClusterName, holder: &str, endpoint: &str) -> Change {
        let mut state = self.write();
        let Some(held) = state.clusters.get_mut(cluster) else {
            return Change::Unchanged;
        };
        if held
            .holders
            .remove(&(endpoint.to_owned(), holder.to_owned()))
            .is_none()
        {
            return Change::Unchanged;
        }
        if held.settle() {
            return Change::Unchanged;
        }
        Self::forget(&mut state, cluster);
        Change::Disengaged
    }

    fn forget(state: &mut State, cluster: &ClusterName) {
        state.clusters.remove(cluster);
        state.paths.retain(|_, c| c != cluster);
    }

    /// Forgets every holder on `endpoint` (the endpoint went away); returns the clusters that
    /// this disengaged, those no other endpoint holds. The others stay, served by a remaining
    /// holder's endpoint.
    pub(crate) fn drop_endpoint(&self, endpoint: &str) -> Vec<ClusterName> {
        let mut state = self.write();
        let mut gone = Vec::new();
        for (cluster, held) in &mut state.clusters {
            let before = held.holders.len();
            held.holders.retain(|(e, _), _| e != endpoint);
            if held.holders.len() != before && !held.settle() {
                gone.push(cluster.clone());
            }
        }
        for cluster in &gone {
            Self::forget(&mut state, cluster);
        }
        gone
    }

    /// Whether `cluster` is engaged.
    pub fn is_engaged(&self, cluster: &ClusterName) -> bool {
        self.read().clusters.contains_key(cluster)
    }

    /// The endpoint URL `cluster` is served on, if engaged: writes for it go there.
    pub fn endpoint_of(&self, cluster: &ClusterName) -> Option<String> {
        self.read()
            .clusters
            .get(cluster)
            .map(|held| held.endpoint.clone())
    }

    /// The cluster at a workspace path, if an engaged cluster has that path.
    pub fn cluster_for_path(&self, path: &ClusterPath) -> Option<ClusterName> {
        self.read().paths.get(path).cloned()
    }

    /// The workspace path of an engaged cluster, as kcp annotated its binding.
    pub fn path_of(&self, cluster: &ClusterName) -> Option<ClusterPath> {
        self.read()
            .paths
            .iter()
            .find(|(_, c)| *c == cluster)
            .map(|(path, _)| path.clone())
    }

    /// The engaged clusters.
    pub fn clusters(&self) -> Vec<ClusterName> {
        self.read().clusters.keys().cloned().collect()
    }

    /// How many clusters are engaged.
    pub fn len(&self) -> usize {
        self.read().clusters.len()
    }

    /// Whether no cluster is engaged.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ClusterName {
        s.parse().unwrap()
    }

    #[test]
    fn a_cluster_leaves_with_its_last_holder() {
        let set = ClusterSet::default();
        let c = name("abc");
        assert_eq!(set.hold(&c, "b1", "https://s1", None), Change::Engaged);
        assert_eq!(set.hold(&c, "b2", "https://s1", None), Change::Unchanged);
        assert_eq!(set.release(&c, "b1", "https://s1"), Change::Unchanged);
        assert!(set.is_engaged(&c));
        assert_eq!(set.release(&c, "b2", "https://s1"), Change::Disengaged);
        assert!(!set.is_engaged(&c));
        assert_eq!(set.release(&c, "b2", "https://s1"), Change::Unchanged);
    }

    const S1: &str = "https://shard-1/services/apiexport/x/e";
    const S2: &str = "https://shard-2/services/apiexport/x/e";

    /// A cluster moving from shard 1 to shard 2: its binding shows up on shard 2 before it
    /// leaves shard 1, and shard 1 may still send an update of it meanwhile.
    #[test]
    fn a_cluster_held_on_two_endpoints_is_served_by_its_newest_holder_until_it_goes() {
        let set = ClusterSet::default();
        let c = name("abc");
        assert_eq!(set.hold(&c, "binding", S1, None), Change::Engaged);
        assert_eq!(set.hold(&c, "binding", S2, None), Change::Unchanged);
        assert_eq!(set.endpoint_of(&c).as_deref(), Some(S2));
        // A late update from shard 1 does not send writes back there.
        assert_eq!(set.hold(&c, "binding", S1, None), Change::Unchanged);
        assert_eq!(set.endpoint_of(&c).as_deref(), Some(S2));
        // Shard 2's holder goes first (the move was undone): back to shard 1.
        assert_eq!(set.release(&c, "binding", S2), Change::Unchanged);
        assert_eq!(set.endpoint_of(&c).as_deref(), Some(S1));
        assert_eq!(set.release(&c, "binding", S1), Change::Disengaged);
        assert!(!set.is_engaged(&c));
    }

    #[test]
    fn a_release_on_another_endpoint_does_not_release_a_holder() {
        let set = ClusterSet::default();
        let c = name("abc");
        set.hold(&c, "binding", S2, None);
        // A stale delete of the same-named binding, from the shard the cluster left.
        assert_eq!(set.release(&c, "binding", S1), Change::Unchanged);
        assert!(set.is_engaged(&c));
        assert_eq!(set.endpoint_of(&c).as_deref(), Some(S2));
    }

    #[test]
    fn dropping_an_endpoint_disengages_only_the_clusters_no_other_endpoint_holds() {
        let set = ClusterSet::default();
        let (only_1, both, only_2) = (name("one"), name("both"), name("two"));
        let path = |p: &str| -> Option<ClusterPath> { Some(p.parse().unwrap()) };
        set.hold(&only_1, "b", S1, path("root:one"));
        set.hold(&both, "b", S1, path("root:both"));
        set.hold(&only_2, "b", S2, path("root:two"));
        set.hold(&both, "b", S2, None);
        // An update from shard 1 after shard 2's holder appeared does not move `both` back.
        set.hold(&both, "b", S1, None);
        assert_eq!(set.endpoint_of(&both).as_deref(), Some(S2));

        assert_eq!(set.drop_endpoint(S2), vec![only_2.clone()]);
        assert_eq!(set.endpoint_of(&both).as_deref(), Some(S1));
        assert_eq!(set.cluster_for_path(&"root:two".parse().unwrap()), None);
        assert_eq!(set.path_of(&both), path("root:both"));
        assert_eq!(set.clusters(), vec![both.clone(), only_1.clone()]);

        assert_eq!(set.drop_endpoint(S2), vec![]);
        let mut gone = set.drop_endpoint(S1);
        gone.sort();
        assert_eq!(gone, vec![both, only_1]);
        assert!(set.is_empty());
    }

    #[test]
    fn paths_resolve_to_engaged_clusters_only() {
        let set = ClusterSet::default();
        let c = name("abc");
        let path: ClusterPath = "root:orgs".parse().unwrap();
        set.hold(&c, "b", "https://s1", Some(path.clone()));
        assert_eq!(set.cluster_for_path(&path), Some(c.clone()));
        assert_eq!(set.path_of(&c), Some(path.clone()));
        assert_eq!(set.endpoint_of(&c).as_deref(), Some("https://s1"));
        assert_eq!(set.drop_endpoint("https://s1"), vec![c]);
        assert_eq!(set.cluster_for_path(&path), None);
    }
}
