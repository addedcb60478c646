//! The rebac-authz-webhook: kcp asks, through its authorization webhook, whether a user may
//! do something in a workspace; the organisation's OpenFGA store answers.
//!
//! * [`config`]: the flags.
//! * [`app`]: the process, assembled from the kit.
//! * [`review`]: SubjectAccessReviews in and out.
//! * [`decide`]: the handlers, pure: a review and a view of the workspaces in, an answer or
//!   the OpenFGA Check that gives it out.
//! * [`directory`]: the view of the workspaces, from watches.
//! * [`server`]: the routes, and the Checks.
//! * [`metrics`]: the metric families.

pub mod app;
pub mod config;
pub mod decide;
pub mod directory;
pub mod metrics;
pub mod review;
pub mod server;
