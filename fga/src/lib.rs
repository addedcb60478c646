//! OpenFGA authorization models for Platform Mesh.
//!
//! * [`model`]: the JSON model types the OpenFGA API takes.
//! * [`dsl`]: DSL text (schema 1.1 models, 1.2 modules) to the JSON model.
//! * [`compose`]: combine module files into one model, isolating faulty modules.
//! * [`builder`]: build models and modules in Rust, and print them as DSL.
//! * [`platform_mesh`]: the Platform Mesh core module and generated modules.
//! * [`diff`]: semantic comparison of two models.

pub mod builder;
pub mod compose;
pub mod diff;
pub mod dsl;
pub mod model;
pub mod platform_mesh;
