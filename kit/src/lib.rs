//! The operator kit: what every platform-mesh-rs binary is built on, so that a binary holds
//! only its flags, its settings and its controllers.
//!
//! - [`ops`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`telemetry::init_tracing`], [`shutdown`], [`leader`] election on a Lease.

pub mod admission;
pub mod leader;
pub mod net;
pub mod ops;
pub mod shutdown;
pub mod telemetry;
