//! account-operator: an `Account` becomes a kcp workspace of the organisation's type, and an
//! `AccountInfo` inside it; deletion tears down in order. Admission webhooks default the
//! creator and guard account types and organisation names.
//!
//! The binary (`main.rs`) only parses flags and starts what this library provides.

pub mod app;
pub mod config;
pub mod controllers;
pub mod webhooks;
