//! OpenFGA authorization models for Platform Mesh.
//!
//! * [`model`]: the JSON model types the OpenFGA API takes.
//! * [`dsl`]: DSL text (schema 1.1 models, 1.2 modules) to the JSON model.
//! * [`compose`]: combine module files into one model, isolating faulty modules.
//! * [`validate`]: the OpenFGA server's semantic model validation, every problem at once.
//! * [`builder`]: build models and modules in Rust, and print them as DSL.
//! * [`platform_mesh`]: the Platform Mesh core module and generated modules.
//! * [`diff`]: semantic comparison of two models.
//! * [`tuple`]: the relationship tuple operators manage, with proto conversions.
//! * [`sync`]: bring a store's tuples to a desired set (diff, chunked writes, retries).
//! * [`store`]: find-or-create stores by name, latest model, write a model when changed.
//! * [`api`]: the OpenFGA calls used, as a trait; the retry policy.
//! * [`error`]: the error of all OpenFGA I/O here.

pub mod api;
pub mod builder;
pub mod compose;
pub mod diff;
pub mod dsl;
pub mod error;
pub mod model;
pub mod platform_mesh;
pub mod store;
pub mod sync;
pub mod tuple;
pub mod validate;

pub use error::FgaError;
pub use tuple::Tuple;
