//! The webhook's view of the workspaces ([`View`]), answered from memory so that no request
//! waits on kcp and no workspace can hold up another (upstream's cache polled each new
//! workspace inside the engagement, so one workspace whose claim was not accepted wedged the
//! whole shard, platform-mesh#190).
//!
//! - LogicalClusters and Stores come from two reflectors on the export's endpoint slice:
//!   watches, kept current, with the engaged clusters and their paths. A workspace is known
//!   while it is engaged (it binds the export); one that unbinds is gone at once, a Store
//!   re-created with a new store ID is followed at once, and the `root:orgs` cluster comes
//!   from the path index rather than a read per request.
//! - How a resource is named and scoped: the built-in table the model generator uses, else the
//!   workspace's discovery for the group, fetched on first use (bounded by a timeout), kept,
//!   and fetched again when a resource is missing and the copy is older than
//!   [`DISCOVERY_REFRESH`] (an API bound since).
//! - The retry tracker: how many times a workspace that is not known yet may be answered
//!   "retry" before it is answered NoOpinion (upstream's `--webhook-cache-miss-*` flags).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crds::Store;
use crds::store::ORGS_STORE_NAME;
use fga::platform_mesh::{
    BUILTIN_PRIVILEGED_RESOURCES, BUILTIN_RESOURCES, ResourceScope, account_object,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kcp::runtime::{Cache, ClusterSet, ObjectKey};
use kcp::types::core::{LOGICAL_CLUSTER_NAME, LogicalCluster};
use kcp::{ClientFactory, ClusterName, ClusterPath, PATH_ANNOTATION};

use crate::decide::{Question, ResourceInfo, Rules, Tenant, View, Workspace};

/// How old a workspace's discovery of a group may be before a resource missing from it is
/// looked up again.
pub const DISCOVERY_REFRESH: Duration = Duration::from_secs(30);

/// Upstream's cache-miss flags.
#[derive(Debug, Clone, Copy)]
pub struct RetryLimits {
    /// Retries per workspace per `ttl`.
    pub max_retries: u32,
    /// How long a workspace's retries are counted.
    pub ttl: Duration,
    /// How often expired counts are dropped.
    pub cleanup_interval: Duration,
}

/// The caches the directory reads, and how it reaches kcp for discovery.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Engaged clusters and their paths.
    pub clusters: ClusterSet,
    /// Every engaged workspace's LogicalCluster.
    pub logical_clusters: Cache<LogicalCluster>,
    /// The Stores (those in the orgs workspace count).
    pub stores: Cache<Store>,
    /// Clients for workspaces, for discovery.
    pub factory: ClientFactory,
}

type GroupKey = (ClusterName, String);

#[derive(Debug)]
struct Discovered {
    at: Instant,
    resources: HashMap<String, ResourceInfo>,
}

/// The webhook's view of the workspaces.
#[derive(Debug)]
pub struct Directory {
    sources: Sources,
    orgs_path: ClusterPath,
    discovery_timeout: Duration,
    discovered: Mutex<HashMap<GroupKey, Discovered>>,
    /// Why the latest discovery of a group failed, until one succeeds: the answer says so
    /// rather than that the workspace does not serve the resource.
    discovery_failures: Mutex<HashMap<GroupKey, String>>,
    misses: Mutex<Misses>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// How a built-in resource is named and scoped, from the table the model generator uses.
fn builtin(group: &str, resource: &str) -> Option<ResourceInfo> {
    BUILTIN_RESOURCES
        .iter()
        .chain(BUILTIN_PRIVILEGED_RESOURCES)
        .find(|(g, plural, _, _)| *g == group && *plural == resource)
        .map(|(_, _, singular, scope)| ResourceInfo {
            singular: (*singular).to_owned(),
            scope: *scope,
        })
}

impl Directory {
    /// A directory over `sources`, for organisations below `orgs_path`.
    pub fn new(
        sources: Sources,
        orgs_path: ClusterPath,
        discovery_timeout: Duration,
        limits: RetryLimits,
    ) -> Self {
        Self {
            sources,
            orgs_path,
            discovery_timeout,
            discovered: Mutex::default(),
            discovery_failures: Mutex::default(),
            misses: Mutex::new(Misses::new(limits)),
        }
    }

    /// Makes sure the resource `question` asks about can be looked up: fetches the workspace's
    /// discovery of its group when it is not a built-in and not known. Failures are logged;
    /// the lookup then finds nothing and the answer is NoOpinion.
    pub async fn prepare(&self, question: &Question, rules: &Rules) {
        let Some(resource) = &question.resource else {
            return;
        };
        let Some(cluster) = question
            .extra
            .get(&rules.cluster_key)
            .and_then(|values| values.first())
            .and_then(|c| c.parse::<ClusterName>().ok())
        else {
            return;
        };
        if builtin(&resource.group, &resource.resource).is_some()
            || !matches!(self.workspace(&cluster), Workspace::Tenant(_))
        {
            return;
        }
        let key = (cluster.clone(), resource.group.clone());
        let fresh = lock(&self.discovered).get(&key).is_some_and(|d| {
            d.resources.contains_key(&resource.resource) || d.at.elapsed() < DISCOVERY_REFRESH
        });
        if fresh {
            return;
        }
        let fetched = tokio::time::timeout(
            self.discovery_timeout,
            self.discover(&cluster, &resource.group, &resource.version),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {:?}", self.discovery_timeout)));
        match fetched {
            Ok(resources) => {
                lock(&self.discovery_failures).remove(&key);
                lock(&self.discovered).insert(
                    key,
                    Discovered {
                        at: Instant::now(),
                        resources,
                    },
                );
            }
            Err(error) => {
                tracing::warn!(
                    %cluster, group = %resource.group, %error,
                    "discovering the workspace's resources failed"
                );
                lock(&self.discovery_failures).insert(key, error);
            }
        }
    }

    /// The resources of `group` in `cluster`: the version asked for, else the group's
    /// preferred one.
    async fn discover(
        &self,
        cluster: &ClusterName,
        group: &str,
        version: &str,
    ) -> Result<HashMap<String, ResourceInfo>, String> {
        let client = self
            .sources
            .factory
            .for_cluster(cluster)
            .map_err(|e| e.to_string())?;
        let version = match version {
            "" | "*" => None,
            v => Some(v.to_owned()),
        };
        let list: Result<APIResourceList, kube::Error> = if group.is_empty() {
            client
                .list_core_api_resources(version.as_deref().unwrap_or("v1"))
                .await
        } else {
            let version = match version {
                Some(v) => v,
                None => {
                    let groups = client.list_api_groups().await.map_err(describe)?;
                    let preferred = groups
                        .groups
                        .into_iter()
                        .find(|g| g.name == group)
                        .and_then(|g| {
                            g.preferred_version
                                .or_else(|| g.versions.into_iter().next())
                        });
                    match preferred {
                        Some(v) => v.version,
                        // Known to be absent: kept as such, so that requests for a group no
                        // one serves do not each cost a discovery.
                        None => return Ok(HashMap::new()),
                    }
                }
            };
            client
                .list_api_group_resources(&format!("{group}/{version}"))
                .await
        };
        let list = match list {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(HashMap::new()),
            Err(e) => return Err(describe(e)),
        };
        Ok(list
            .resources
            .into_iter()
            .filter(|r| !r.name.contains('/'))
            .map(|r| {
                let singular = match r.singular_name.as_str() {
                    "" => r.kind.to_lowercase(),
                    s => s.to_owned(),
                };
                let scope = match r.namespaced {
                    true => ResourceScope::Namespaced,
                    false => ResourceScope::Cluster,
                };
                (r.name, ResourceInfo { singular, scope })
            })
            .collect())
    }

    /// The logical cluster of an engaged workspace.
    pub fn cluster_for_path(&self, path: &ClusterPath) -> Option<ClusterName> {
        self.sources.clusters.cluster_for_path(path)
    }

    fn logical_cluster(&self, cluster: &ClusterName) -> Option<Arc<LogicalCluster>> {
        self.sources
            .logical_clusters
            .get(&ObjectKey::cluster_scoped(
                cluster.clone(),
                LOGICAL_CLUSTER_NAME,
            ))
    }

    /// The store ID of the Store `name` in the orgs workspace.
    fn store_id(&self, name: &str) -> Result<String, String> {
        let orgs = self
            .orgs_cluster()
            .ok_or_else(|| format!("the orgs workspace {} is not known yet", self.orgs_path))?;
        let store = self
            .sources
            .stores
            .get(&ObjectKey::cluster_scoped(orgs, name))
            .ok_or_else(|| format!("there is no Store {name} in {}", self.orgs_path))?;
        store
            .status
            .as_ref()
            .and_then(|s| s.store_id.clone())
            .ok_or_else(|| format!("the Store {name} has no store ID yet"))
    }
}

impl View for Directory {
    fn orgs_cluster(&self) -> Option<ClusterName> {
        self.sources.clusters.cluster_for_path(&self.orgs_path)
    }

    fn orgs_store(&self) -> Option<String> {
        self.store_id(ORGS_STORE_NAME).ok()
    }

    fn workspace(&self, cluster: &ClusterName) -> Workspace {
        if !self.sources.clusters.is_engaged(cluster) {
            return Workspace::Unknown;
        }
        classify(
            self.logical_cluster(cluster).as_deref(),
            &self.orgs_path,
            |org| self.store_id(org),
        )
    }

    fn resource(&self, cluster: &ClusterName, group: &str, resource: &str) -> Option<ResourceInfo> {
        builtin(group, resource).or_else(|| {
            lock(&self.discovered)
                .get(&(cluster.clone(), group.to_owned()))
                .and_then(|d| d.resources.get(resource).cloned())
        })
    }

    fn discovery_failure(&self, cluster: &ClusterName, group: &str) -> Option<String> {
        lock(&self.discovery_failures)
            .get(&(cluster.clone(), group.to_owned()))
            .cloned()
    }

    fn may_retry(&self, cluster: &ClusterName) -> bool {
        let now = Instant::now();
        let mut misses = lock(&self.misses);
        if misses.clean(now) {
            let clusters = &self.sources.clusters;
            lock(&self.discovered).retain(|(cluster, _), _| clusters.is_engaged(cluster));
            lock(&self.discovery_failures).retain(|(cluster, _), _| clusters.is_engaged(cluster));
        }
        misses.allow(cluster, now)
    }
}

/// A failed discovery request in words: kcp's message and code for an API error (its 403
/// names the webhook's user and the path), else the client's error.
fn describe(error: kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        error => error.to_string(),
    }
}

/// Where the workspace of `logical` stands, its org's store ID given by `store_id`.
fn classify(
    logical: Option<&LogicalCluster>,
    orgs_path: &ClusterPath,
    store_id: impl FnOnce(&str) -> Result<String, String>,
) -> Workspace {
    let Some(logical) = logical else {
        return Workspace::Unknown;
    };
    let Some(path) = logical
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PATH_ANNOTATION))
    else {
        return Workspace::Pending(format!("its LogicalCluster has no {PATH_ANNOTATION}"));
    };
    let Some(org) = path
        .strip_prefix(orgs_path.as_str())
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.split(':').next())
    else {
        return Workspace::Outside;
    };
    let Some(owner) = &logical.spec.owner else {
        return Workspace::Pending(format!("{path} has no owner"));
    };
    match store_id(org) {
        Ok(store) => Workspace::Tenant(Tenant {
            store,
            account: account_object(&owner.cluster, &owner.name),
        }),
        Err(reason) => Workspace::Pending(reason),
    }
}

/// Upstream's retry tracker: how many "retry" answers each workspace had in its current
/// period.
#[derive(Debug)]
struct Misses {
    limits: RetryLimits,
    counts: HashMap<ClusterName, (u32, Instant)>,
    cleaned: Option<Instant>,
}

impl Misses {
    fn new(limits: RetryLimits) -> Self {
        Self {
            limits,
            counts: HashMap::new(),
            cleaned: None,
        }
    }

    /// Whether `cluster` may have one more retry at `now`; counts it.
    fn allow(&mut self, cluster: &ClusterName, now: Instant) -> bool {
        let (count, first) = self.counts.entry(cluster.clone()).or_insert((0, now));
        if now.duration_since(*first) >= self.limits.ttl {
            (*count, *first) = (0, now);
        }
        if *count >= self.limits.max_retries {
            return false;
        }
        *count += 1;
        true
    }

    /// Drops expired counts, at most once per cleanup interval; whether it did.
    fn clean(&mut self, now: Instant) -> bool {
        if self
            .cleaned
            .is_some_and(|at| now.duration_since(at) < self.limits.cleanup_interval)
        {
            return false;
        }
        self.cleaned = Some(now);
        let ttl = self.limits.ttl;
        self.counts
            .retain(|_, (_, first)| now.duration_since(*first) < ttl);
        true
    }
}

#[cfg(test)]
mod tests;
