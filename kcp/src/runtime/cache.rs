//! The cache of watched objects, keyed by cluster, namespace and name. (Named a cache, not a
//! store, so it is never confused with the OpenFGA `Store` kind.)
//!
//! kube-runtime's reflector store keys by namespace and name only, so same-named objects in
//! two workspaces would overwrite each other; here the logical cluster is part of the key.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use kube::ResourceExt;

use crate::CLUSTER_ANNOTATION;
use crate::name::ClusterName;

/// The identity of an object in kcp: logical cluster, namespace (if namespaced), name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub cluster: ClusterName,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    /// The key of a cluster-scoped object.
    pub fn cluster_scoped(cluster: ClusterName, name: impl Into<String>) -> Self {
        Self {
            cluster,
            namespace: None,
            name: name.into(),
        }
    }

    /// The key of an object as returned by kcp, which annotates every object with its logical
    /// cluster; `None` when the annotation is missing or malformed.
    pub fn of<K: kube::Resource>(object: &K) -> Option<Self> {
        let cluster = object.annotations().get(CLUSTER_ANNOTATION)?.parse().ok()?;
        Some(Self {
            cluster,
            namespace: object.namespace(),
            name: object.name_any(),
        })
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "{}|{ns}/{}", self.cluster, self.name),
            None => write!(f, "{}|{}", self.cluster, self.name),
        }
    }
}

/// Objects of one kind from every engaged cluster; cheap to clone and share.
#[derive(Debug)]
pub struct Cache<K> {
    objects: Arc<RwLock<HashMap<ObjectKey, Arc<K>>>>,
}

impl<K> Clone for Cache<K> {
    fn clone(&self) -> Self {
        Self {
            objects: self.objects.clone(),
        }
    }
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Self {
            objects: Arc::default(),
        }
    }
}

impl<K> Cache<K> {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ObjectKey, Arc<K>>> {
        self.objects
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<ObjectKey, Arc<K>>> {
        self.objects
            .write()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The object with `key`, if known.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.read().get(key).cloned()
    }

    /// Every object of one cluster.
    pub fn in_cluster(&self, cluster: &ClusterName) -> Vec<(ObjectKey, Arc<K>)> {
        self.read()
            .iter()
            .filter(|(key, _)| &key.cluster == cluster)
            .map(|(key, object)| (key.clone(), object.clone()))
            .collect()
    }

    /// Every object of every cluster.
    pub fn all(&self) -> Vec<(ObjectKey, Arc<K>)> {
        self.read()
            .iter()
            .map(|(key, object)| (key.clone(), object.clone()))
            .collect()
    }

    /// The keys of every object.
    pub fn keys(&self) -> Vec<ObjectKey> {
        self.read().keys().cloned().collect()
    }

    /// How many objects the cache holds.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stores `object` under `key`; returns the object it replaces.
    pub(crate) fn insert(&self, key: ObjectKey, object: Arc<K>) -> Option<Arc<K>> {
        self.write().insert(key, object)
    }

    pub(crate) fn remove(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.write().remove(key)
    }

    /// Removes every object whose key matches, returning their keys.
    pub(crate) fn remove_where(
        &self,
        mut matches: impl FnMut(&ObjectKey) -> bool,
    ) -> Vec<ObjectKey> {
        let mut objects = self.write();
        let gone: Vec<ObjectKey> = objects.keys().filter(|k| matches(k)).cloned().collect();
        for key in &gone {
            objects.remove(key);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::core::ObjectMeta;

    fn config_map(cluster: &str, name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                annotations: Some([(CLUSTER_ANNOTATION.to_owned(), cluster.to_owned())].into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn same_named_objects_in_two_clusters_do_not_collide() {
        let cache = Cache::default();
        for cluster in ["aaa", "bbb"] {
            let cm = config_map(cluster, "same");
            cache.insert(ObjectKey::of(&cm).unwrap(), Arc::new(cm));
        }
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.in_cluster(&"aaa".parse().unwrap()).len(), 1);
        let gone = cache.remove_where(|k| k.cluster.as_str() == "bbb");
        assert_eq!(gone.len(), 1);
        assert_eq!(cache.keys()[0].to_string(), "aaa|default/same");
    }

    #[test]
    fn objects_without_a_cluster_annotation_have_no_key() {
        let mut cm = config_map("aaa", "x");
        cm.metadata.annotations = None;
        assert_eq!(ObjectKey::of(&cm), None);
    }
}
