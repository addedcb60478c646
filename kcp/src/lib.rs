//! The kcp client layer shared by every platform-mesh-rs operator.
//!
//! - [`types`]: the kcp API kinds the operators read and write (tenancy, core, apis).
//! - [`name`]: logical-cluster names and workspace paths as validated newtypes.
//! - [`client`]: a factory that hands out `kube::Client`s for a workspace path, a logical
//!   cluster, or a virtual-workspace URL, all sharing one connection pool per server.
//! - [`schema`]: turning a CustomResourceDefinition into the APIResourceSchema kcp serves.
//! - [`runtime`]: the multi-cluster controller runtime over virtual workspaces.

pub mod client;
pub mod initialization;
pub mod name;
pub mod runtime;
pub mod schema;
pub mod types;

pub use client::{ClientFactory, Error as ClientError};
pub use name::{ClusterName, ClusterPath, NameError};

/// Annotation kcp sets on every object it returns: the logical-cluster name that owns it.
pub const CLUSTER_ANNOTATION: &str = "kcp.io/cluster";
/// Annotation kcp maintains on LogicalClusters, APIExports, APIBindings and WorkspaceTypes:
/// the canonical workspace path, e.g. `root:orgs:acme`.
pub const PATH_ANNOTATION: &str = "kcp.io/path";
