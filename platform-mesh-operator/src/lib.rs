//! The platform-mesh-operator: one `PlatformMesh` resource in the hosting cluster sets up kcp
//! for the whole suite and hands every component its kubeconfig.
//!
//! * [`config`]: the flags.
//! * [`app`]: the process, assembled from the kit.
//! * [`controller`]: the PlatformMesh controller and its subroutines.
//! * [`bootstrap`]: the kcp tree, pure: objects, workspaces, order, readiness.
//! * [`apply`]: writing an object only when it differs.
//! * [`kubeconfig`]: kubeconfigs and the scoped RBAC derived from an APIExport, pure.
//! * [`flux`]: the Flux HelmReleases of the suite's components, pure.
//! * [`welcome`]: the welcome realm, pure.

pub mod app;
pub mod apply;
pub mod bootstrap;
pub mod config;
pub mod controller;
pub mod flux;
pub mod kubeconfig;
pub mod welcome;
