//! `Store`: one organisation's OpenFGA store, its core model module and its tuples.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Tuple;

/// Finalizer that deletes the OpenFGA store when the Store goes.
pub const STORE_FINALIZER: &str = "core.platform-mesh.io/fga-store";
/// Finalizer that deletes the tuples a Store or AuthorizationModel wrote.
pub const TUPLES_FINALIZER: &str = "core.platform-mesh.io/fga-tuples";
/// The reserved store that authorises actions inside `root:orgs` itself.
pub const ORGS_STORE_NAME: &str = "orgs";

/// The desired state of a Store.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "core.platform-mesh.io",
    version = "v1alpha1",
    kind = "Store",
    status = "StoreStatus",
    doc = "A Store is the OpenFGA store of one organisation (named after it, in root:orgs). The \
           security-operator creates or adopts the store, writes the authorization model composed \
           from the core module and every AuthorizationModel that references the store, and keeps \
           the listed tuples written.",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct StoreSpec {
    /// The core OpenFGA model module (DSL, schema 1.2) every other module of the store extends.
    pub core_module: String,
    /// Tuples to keep written in the store; removing one here deletes it from the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuples: Option<Vec<Tuple>>,
}

/// The observed state of a Store.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// The OpenFGA store id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_id: Option<String>,
    /// The id of the authorization model last written to the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_model_id: Option<String>,
    /// The tuples written on the last successful reconcile, used to find the ones to delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_tuples: Vec<Tuple>,
    /// AuthorizationModels left out of the store's model because their module does not
    /// compose or is not valid; the rest of the model is written without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected_modules: Vec<RejectedModule>,
    /// `Ready` plus one condition per reconcile step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// An AuthorizationModel whose module was left out of a store's model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct RejectedModule {
    /// The logical cluster holding the AuthorizationModel.
    pub cluster: String,
    /// The AuthorizationModel's name.
    pub name: String,
    /// Every problem found in its module.
    pub message: String,
}
