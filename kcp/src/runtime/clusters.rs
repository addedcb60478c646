//! The engaged logical clusters: which endpoint (shard) each was seen on, and the path index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use crate::name::{ClusterName, ClusterPath};

#[derive(Debug, Default)]
struct State {
    /// Engaged cluster → the endpoint URL it is served on.
    endpoint: BTreeMap<ClusterName, String>,
    /// Cluster → the objects that keep it engaged (bindings, or LogicalClusters).
    holders: HashMap<ClusterName, BTreeSet<String>>,
    /// Workspace path → cluster, from `kcp.io/path` of the engaging objects.
    paths: HashMap<ClusterPath, ClusterName>,
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
        let holders = state.holders.entry(cluster.clone()).or_default();
        let first = holders.is_empty();
        holders.insert(holder.to_owned());
        state.endpoint.insert(cluster.clone(), endpoint.to_owned());
        if let Some(path) = path {
            state.paths.insert(path, cluster.clone());
        }
        if first {
            Change::Engaged
        } else {
            Change::Unchanged
        }
    }

    /// Records that `holder` no longer engages `cluster`; the cluster leaves with its last
    /// holder.
    pub(crate) fn release(&self, cluster: &ClusterName, holder: &str) -> Change {
        let mut state = self.write();
        let Some(holders) = state.holders.get_mut(cluster) else {
            return Change::Unchanged;
        };
        holders.remove(holder);
        if !holders.is_empty() {
            return Change::Unchanged;
        }
        Self::forget(&mut state, cluster);
        Change::Disengaged
    }

    fn forget(state: &mut State, cluster: &ClusterName) {
        state.holders.remove(cluster);
        state.endpoint.remove(cluster);
        state.paths.retain(|_, c| c != cluster);
    }

    /// Disengages every cluster served on `endpoint` (the endpoint went away); returns them.
    pub(crate) fn drop_endpoint(&self, endpoint: &str) -> Vec<ClusterName> {
        let mut state = self.write();
        let gone: Vec<ClusterName> = state
            .endpoint
            .iter()
            .filter(|(_, e)| e.as_str() == endpoint)
            .map(|(c, _)| c.clone())
            .collect();
        for cluster in &gone {
            Self::forget(&mut state, cluster);
        }
        gone
    }

    /// Whether `cluster` is engaged.
    pub fn is_engaged(&self, cluster: &ClusterName) -> bool {
        self.read().endpoint.contains_key(cluster)
    }

    /// The endpoint URL `cluster` is served on, if engaged: writes for it go there.
    pub fn endpoint_of(&self, cluster: &ClusterName) -> Option<String> {
        self.read().endpoint.get(cluster).cloned()
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
        self.read().endpoint.keys().cloned().collect()
    }

    /// How many clusters are engaged.
    pub fn len(&self) -> usize {
        self.read().endpoint.len()
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
        assert_eq!(set.release(&c, "b1"), Change::Unchanged);
        assert!(set.is_engaged(&c));
        assert_eq!(set.release(&c, "b2"), Change::Disengaged);
        assert!(!set.is_engaged(&c));
        assert_eq!(set.release(&c, "b2"), Change::Unchanged);
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
