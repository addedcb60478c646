//! The manifests generated from the types: CRDs for every kind, and for the kinds kcp serves
//! the APIResourceSchemas and the APIExports `core.platform-mesh.io` and
//! `system.platform-mesh.io` (apis.kcp.io/v1alpha2) with their permission claims.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kcp::schema::api_resource_schema;
use kcp::types::apis::{
    ApiExport, ApiExportSpec, ApiResourceSchema, PermissionClaim, ResourceSchema,
    ResourceSchemaStorage,
};
use kube::CustomResourceExt;
use kube::core::ObjectMeta;

use crate::{
    Account, AccountInfo, ApiExportPolicy, AuthorizationModel, IdentityProviderConfiguration,
    Invite, PlatformMesh, Store,
};

/// Name of the APIExport serving accounts, stores, models and invites.
pub const CORE_EXPORT: &str = "core.platform-mesh.io";
/// Name of the APIExport serving identity-provider configurations and export policies.
pub const SYSTEM_EXPORT: &str = "system.platform-mesh.io";
/// Stands for the identity hash of root's `tenancy.kcp.io` APIExport in the generated YAML;
/// whoever applies the export substitutes the hash of their kcp (it differs per installation).
pub const TENANCY_IDENTITY_PLACEHOLDER: &str = "${TENANCY_KCP_IO_IDENTITY_HASH}";

/// The kinds served by kcp through the `core.platform-mesh.io` export.
pub fn core_export_crds() -> Vec<CustomResourceDefinition> {
    vec![
        Account::crd(),
        AccountInfo::crd(),
        Store::crd(),
        AuthorizationModel::crd(),
        Invite::crd(),
    ]
}

/// The kinds served by kcp through the `system.platform-mesh.io` export.
pub fn system_export_crds() -> Vec<CustomResourceDefinition> {
    vec![IdentityProviderConfiguration::crd(), ApiExportPolicy::crd()]
}

/// Every CRD, including PlatformMesh, which lives on the hosting Kubernetes cluster.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    let mut crds = core_export_crds();
    crds.extend(system_export_crds());
    crds.push(PlatformMesh::crd());
    crds
}

/// The APIResourceSchemas for a set of CRDs.
pub fn schemas(crds: &[CustomResourceDefinition]) -> Vec<ApiResourceSchema> {
    crds.iter().map(api_resource_schema).collect()
}

/// The APIExport `name` serving `schemas`, claiming what the operators need in the workspaces
/// that bind it. `tenancy_identity_hash` is the identity of root's `tenancy.kcp.io` export.
pub fn api_export(
    name: &str,
    schemas: &[ApiResourceSchema],
    tenancy_identity_hash: &str,
) -> ApiExport {
    let resources = schemas
        .iter()
        .map(|s| ResourceSchema {
            name: s.spec.names.plural.clone(),
            group: s.spec.group.clone(),
            schema: s.metadata.name.clone().unwrap_or_default(),
            storage: ResourceSchemaStorage::crd(),
        })
        .collect();
    ApiExport {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..Default::default()
        },
        spec: ApiExportSpec {
            resources,
            maximal_permission_policy: None,
            permission_claims: permission_claims(tenancy_identity_hash),
        },
        status: None,
    }
}

/// What the operators do through the export's virtual workspace in every bound workspace:
/// the account-operator manages Workspaces and WorkspaceTypes; the security-operator reads
/// LogicalClusters, APIBindings, APIExports and APIResourceSchemas, puts finalizers on
/// APIBindings and manages the identity provider's Secrets. Namespaces are readable only
/// (upstream claims them fully but does not use them).
pub fn permission_claims(tenancy_identity_hash: &str) -> Vec<PermissionClaim> {
    const READ: &[&str] = &["get", "list", "watch"];
    const READ_UPDATE: &[&str] = &["get", "list", "watch", "update", "patch"];
    const ALL: &[&str] = &[
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let claim = |group: &str, resource: &str, verbs: &[&str], identity: &str| PermissionClaim {
        group: group.to_owned(),
        resource: resource.to_owned(),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        identity_hash: identity.to_owned(),
    };
    vec![
        claim("tenancy.kcp.io", "workspaces", ALL, tenancy_identity_hash),
        claim(
            "tenancy.kcp.io",
            "workspacetypes",
            ALL,
            tenancy_identity_hash,
        ),
        claim("core.kcp.io", "logicalclusters", READ, ""),
        claim("apis.kcp.io", "apibindings", READ_UPDATE, ""),
        claim("apis.kcp.io", "apiexports", READ, ""),
        claim("apis.kcp.io", "apiresourceschemas", READ, ""),
        claim("", "secrets", ALL, ""),
        claim("", "namespaces", READ, ""),
    ]
}

/// One generated file: its path below `crds/generated/` and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    pub path: String,
    pub content: String,
}

/// Every file `crdgen` writes, rendered as YAML.
pub fn render() -> Result<Vec<GeneratedFile>, serde_saphyr::ser::Error> {
    let mut files = Vec::new();
    for crd in all_crds() {
        files.push(GeneratedFile {
            path: format!(
                "crds/{}.yaml",
                crd.metadata.name.clone().unwrap_or_default()
            ),
            content: yaml(&crd)?,
        });
    }
    for (export, crds) in [
        (CORE_EXPORT, core_export_crds()),
        (SYSTEM_EXPORT, system_export_crds()),
    ] {
        let schemas = schemas(&crds);
        for schema in &schemas {
            let name = schema.metadata.name.clone().unwrap_or_default();
            let plural_group = name.split_once('.').map_or(name.as_str(), |(_, rest)| rest);
            files.push(GeneratedFile {
                path: format!("kcp/apiresourceschema-{plural_group}.yaml"),
                content: yaml(schema)?,
            });
        }
        files.push(GeneratedFile {
            path: format!("kcp/apiexport-{export}.yaml"),
            content: yaml(&api_export(export, &schemas, TENANCY_IDENTITY_PLACEHOLDER))?,
        });
    }
    Ok(files)
}

const HEADER: &str =
    "# Generated by `cargo xtask crds` from the Rust types in crds/src. Do not edit.\n";

fn yaml<T: serde::Serialize>(value: &T) -> Result<String, serde_saphyr::ser::Error> {
    Ok(format!("{HEADER}{}", serde_saphyr::to_string(value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_serve_their_kinds_by_schema_name() {
        let schemas = schemas(&core_export_crds());
        let export = api_export(CORE_EXPORT, &schemas, "abc");
        let names: Vec<_> = export
            .spec
            .resources
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "accounts",
                "accountinfos",
                "stores",
                "authorizationmodels",
                "invites"
            ]
        );
        for (resource, schema) in export.spec.resources.iter().zip(&schemas) {
            assert_eq!(Some(&resource.schema), schema.metadata.name.as_ref());
            assert_eq!(resource.group, "core.platform-mesh.io");
        }
    }

    #[test]
    fn tenancy_claims_carry_the_identity_hash() {
        let claims = permission_claims("abc");
        let tenancy: Vec<_> = claims
            .iter()
            .filter(|c| c.group == "tenancy.kcp.io")
            .collect();
        assert_eq!(tenancy.len(), 2);
        assert!(tenancy.iter().all(|c| c.identity_hash == "abc"));
        assert!(
            claims
                .iter()
                .filter(|c| c.group != "tenancy.kcp.io")
                .all(|c| c.identity_hash.is_empty())
        );
    }

    #[test]
    fn kcp_served_kinds_are_cluster_scoped_and_platform_mesh_is_namespaced() {
        for crd in core_export_crds().iter().chain(&system_export_crds()) {
            assert_eq!(crd.spec.scope, "Cluster", "{:?}", crd.metadata.name);
        }
        assert_eq!(PlatformMesh::crd().spec.scope, "Namespaced");
    }
}
