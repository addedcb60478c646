//! From CustomResourceDefinitions to the APIResourceSchemas kcp serves through an APIExport.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::core::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::types::apis::{ApiResourceSchema, ApiResourceSchemaSpec, ApiResourceVersion};

/// Converts a CRD into an APIResourceSchema named `v<hash>.<plural>.<group>`.
///
/// APIResourceSchemas are immutable in kcp, so a changed schema must get a new name. The
/// prefix is a hash of the schema's content: it changes exactly when the schema does, and
/// regenerating an unchanged CRD gives the same name (upstream uses a date and a git hash,
/// which changes on every release even when the schema does not).
pub fn api_resource_schema(crd: &CustomResourceDefinition) -> ApiResourceSchema {
    let spec = &crd.spec;
    let versions = spec
        .versions
        .iter()
        .map(|v| ApiResourceVersion {
            name: v.name.clone(),
            served: v.served,
            storage: v.storage,
            deprecated: v.deprecated.unwrap_or(false),
            deprecation_warning: v.deprecation_warning.clone(),
            schema: v
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
            subresources: v.subresources.clone(),
            additional_printer_columns: v.additional_printer_columns.clone().unwrap_or_default(),
        })
        .collect();
    // The CRD API defaults listKind and singular; kcp requires them on an APIResourceSchema.
    let mut names = spec.names.clone();
    names
        .list_kind
        .get_or_insert_with(|| format!("{}List", names.kind));
    names
        .singular
        .get_or_insert_with(|| names.kind.to_lowercase());
    let schema_spec = ApiResourceSchemaSpec {
        group: spec.group.clone(),
        names,
        scope: spec.scope.clone(),
        versions,
        name_validation: None,
    };
    let name = format!(
        "{}.{}.{}",
        content_prefix(&schema_spec),
        spec.names.plural,
        spec.group
    );
    ApiResourceSchema {
        metadata: ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        spec: schema_spec,
    }
}

/// `v` and the first 10 hex digits of the SHA-256 of the spec's JSON.
fn content_prefix(spec: &ApiResourceSchemaSpec) -> String {
    // serde_json serialises struct fields in declaration order and maps sorted, so equal specs
    // give equal bytes.
    let bytes = serde_json::to_vec(spec).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("v{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
        CustomResourceDefinitionNames, CustomResourceDefinitionSpec,
        CustomResourceDefinitionVersion, CustomResourceValidation, JSONSchemaProps,
    };

    fn crd(description: &str) -> CustomResourceDefinition {
        CustomResourceDefinition {
            metadata: ObjectMeta::default(),
            spec: CustomResourceDefinitionSpec {
                group: "example.io".into(),
                names: CustomResourceDefinitionNames {
                    kind: "Thing".into(),
                    plural: "things".into(),
                    ..Default::default()
                },
                scope: "Cluster".into(),
                versions: vec![CustomResourceDefinitionVersion {
                    name: "v1".into(),
                    served: true,
                    storage: true,
                    schema: Some(CustomResourceValidation {
                        open_api_v3_schema: Some(JSONSchemaProps {
                            type_: Some("object".into()),
                            description: Some(description.into()),
                            ..Default::default()
                        }),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            },
            status: None,
        }
    }

    #[test]
    fn name_is_content_addressed() {
        let a = api_resource_schema(&crd("a"));
        let a_again = api_resource_schema(&crd("a"));
        let b = api_resource_schema(&crd("b"));
        let name = a.metadata.name.clone().unwrap();
        assert!(name.ends_with(".things.example.io"), "{name}");
        assert!(name.starts_with('v') && name.split('.').next().unwrap().len() == 11);
        assert_eq!(a.metadata.name, a_again.metadata.name);
        assert_ne!(a.metadata.name, b.metadata.name);
    }

    #[test]
    fn carries_schema_scope_and_defaulted_names() {
        let s = api_resource_schema(&crd("a"));
        assert_eq!(s.spec.names.list_kind.as_deref(), Some("ThingList"));
        assert_eq!(s.spec.names.singular.as_deref(), Some("thing"));
        assert_eq!(s.spec.scope, "Cluster");
        assert_eq!(s.spec.versions[0].schema["description"], "a");
    }
}
