//! The Platform Mesh APIs in `core.platform-mesh.io/v1alpha1`, as Rust types.
//!
//! Kinds, field names, required keys, printer columns and finalizer names match the upstream
//! Go operators (described in the project's shared reference notes, outside this repository),
//! so existing manifests, charts and clients keep working. Every field carries a description,
//! which `kubectl explain` shows.
//!
//! `crdgen` (in `src/bin`) writes the CRDs, and for the kinds kcp serves the
//! APIResourceSchemas and APIExports, into `crds/generated/`.

pub mod account;
pub mod account_info;
pub mod api_export_policy;
pub mod authorization_model;
pub mod export;
pub mod identity_provider;
pub mod invite;
pub mod platform_mesh;
pub mod store;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use account::{Account, AccountSpec, AccountStatus};
pub use account_info::{AccountInfo, AccountInfoSpec, AccountLocation};
pub use api_export_policy::{ApiExportPolicy, ApiExportPolicySpec};
pub use authorization_model::{AuthorizationModel, AuthorizationModelSpec};
pub use identity_provider::{IdentityProviderConfiguration, IdentityProviderConfigurationSpec};
pub use invite::{Invite, InviteSpec};
pub use platform_mesh::{PlatformMesh, PlatformMeshSpec};
pub use store::{Store, StoreSpec};

/// The API group of every kind in this crate.
pub const GROUP: &str = "core.platform-mesh.io";
/// The API version of every kind in this crate.
pub const VERSION: &str = "v1alpha1";

/// A relationship tuple kept written in OpenFGA.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
pub struct Tuple {
    /// The object, as `<type>:<id>`, e.g. `core_platform-mesh_io_account:acme`.
    pub object: String,
    /// The relation on the object, e.g. `owner`.
    pub relation: String,
    /// The user, as `<type>:<id>`, `<type>:*` or a userset `<type>:<id>#<relation>`.
    pub user: String,
}

/// Conditions plus the generation they describe: the status every reconciled kind shares.
pub type Conditions = Vec<Condition>;

/// YAML files currently under a generated directory.
pub fn generated_files_on_disk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The generated files under `dir` that differ from what the types render, are missing, or
/// should no longer exist; empty when the committed manifests are up to date.
pub fn stale_generated_files(dir: &std::path::Path) -> Result<Vec<String>, String> {
    let files = export::render().map_err(|e| format!("rendering YAML: {e}"))?;
    let mut stale: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(dir.join(&f.path)).ok().as_deref() != Some(&f.content))
        .map(|f| f.path.clone())
        .collect();
    let wanted: std::collections::BTreeSet<_> = files.iter().map(|f| dir.join(&f.path)).collect();
    stale.extend(
        generated_files_on_disk(dir)
            .into_iter()
            .filter(|p| !wanted.contains(p))
            .map(|p| format!("{} (no longer generated)", p.display())),
    );
    Ok(stale)
}
