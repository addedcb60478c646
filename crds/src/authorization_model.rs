//! `AuthorizationModel`: a model module that extends one organisation's store.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Tuple;

/// The desired state of an AuthorizationModel.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[kube(
    group = "core.platform-mesh.io",
    version = "v1alpha1",
    kind = "AuthorizationModel",
    status = "AuthorizationModelStatus",
    doc = "An AuthorizationModel is an OpenFGA model module (DSL, schema 1.2, may `extend type`) \
           that is composed into the model of the Store it references, plus tuples written into \
           that store.",
    printcolumn = r#"{"name":"Store","type":"string","jsonPath":".spec.storeRef.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationModelSpec {
    /// The Store this module extends.
    pub store_ref: StoreRef,
    /// The model module, as OpenFGA DSL text.
    pub model: String,
    /// Tuples to keep written in the referenced store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuples: Option<Vec<Tuple>>,
}

/// A reference to a Store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct StoreRef {
    /// The Store's name, which is the organisation's name.
    pub name: String,
    /// The logical cluster (name or path) holding the Store, normally `root:orgs`.
    pub cluster: String,
    /// Deprecated: replaced by `cluster`; read only when `cluster` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// The observed state of an AuthorizationModel.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizationModelStatus {
    /// The tuples written on the last successful reconcile, used to find the ones to delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_tuples: Vec<Tuple>,
    /// `Ready` plus one condition per reconcile step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
