//! The operator kit: what every platform-mesh-rs binary is built on, so that a binary holds
//! only its flags, its settings and its controllers.
//!
//! - [`cli::OperatorArgs`]: the generic flags, flattened into each binary's, with the
//!   binary's environment prefix ([`cli::parse`]).
//! - [`controller::LifecycleController`]: a kcp runtime controller running the lifecycle
//!   engine, built from a [`controller::Setup`].
//! - [`process::Process`]: connects, then runs the ops servers, readiness, leader election,
//!   the controllers and extra servers, and shuts down; [`process::main`] is a binary's `main`.
//! - [`admission`]: the HTTPS admission webhook server.
//! - [`ops`] (`/metrics`, `/healthz`, `/readyz`), [`net`] (listen addresses),
//!   [`telemetry`], [`shutdown`], [`leader`] election on a Lease.

pub mod admission;
pub mod cli;
pub mod controller;
pub mod leader;
pub mod net;
pub mod ops;
pub mod process;
pub mod shutdown;
pub mod telemetry;
