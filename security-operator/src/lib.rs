//! The security-operator: every organisation's OpenFGA store, model and tuples, kept from
//! Platform Mesh objects in kcp; the `root:security` initializer and terminator of org and
//! account workspaces.
//!
//! * [`config`]: the flags, and the roles a process runs.
//! * [`admission`]: the IdentityProviderConfiguration validating webhook.
//! * [`app`]: the process, assembled from the kit.
//! * [`controllers`]: the controllers, their subroutines and the pure functions behind them.

pub mod admission;
pub mod app;
pub mod config;
pub mod controllers;
