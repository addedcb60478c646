//! A provider of a third-party API, as the scenarios use one: the export
//! `widgets.example.io` (cluster-scoped Widgets) in a workspace of its own, and bindings to it.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionNames;
use kcp::types::apis::{
    ApiBinding, ApiBindingSpec, ApiExport, ApiExportSpec, ApiResourceSchema, ApiResourceSchemaSpec,
    ApiResourceVersion, BindingReference, ExportBindingReference, ResourceSchema,
    ResourceSchemaStorage,
};
use kube::api::{Api, PostParams};

use crate::kcp::{Kcp, TestWorkspace, wait_for};
use crate::platform_mesh::PlatformExport;

/// The export's name.
pub const WIDGETS_EXPORT: &str = "widgets.example.io";

/// A provider workspace exporting `widgets.example.io`, bound to the core export so the
/// model generator can write AuthorizationModels there.
pub async fn widget_provider(kcp: &Kcp) -> TestWorkspace {
    let provider = kcp.private_workspace("provider").await;
    PlatformExport::core(kcp).await.bind(&provider).await;
    create_widgets_export(&provider).await;
    provider
}

/// The export `widgets.example.io` and its schema, created in `provider`.
pub async fn create_widgets_export(provider: &TestWorkspace) {
    let post = PostParams::default();
    let schema = ApiResourceSchema::new(
        "v1.widgets.example.io",
        ApiResourceSchemaSpec {
            group: "example.io".into(),
            names: CustomResourceDefinitionNames {
                plural: "widgets".into(),
                singular: Some("widget".into()),
                kind: "Widget".into(),
                list_kind: Some("WidgetList".into()),
                ..Default::default()
            },
            scope: "Cluster".into(),
            versions: vec![ApiResourceVersion {
                name: "v1".into(),
                served: true,
                storage: true,
                deprecated: false,
                deprecation_warning: None,
                schema: serde_json::json!({
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true
                }),
                subresources: None,
                additional_printer_columns: Vec::new(),
            }],
            name_validation: None,
        },
    );
    // A workspace just made may not serve the kind yet.
    let schemas = Api::<ApiResourceSchema>::all(provider.client());
    crate::kcp::when_served(|| schemas.create(&post, &schema))
        .await
        .unwrap_or_else(|e| panic!("creating the widgets schema: {e}"));
    let export = ApiExport::new(
        WIDGETS_EXPORT,
        ApiExportSpec {
            resources: vec![ResourceSchema {
                name: "widgets".into(),
                group: "example.io".into(),
                schema: "v1.widgets.example.io".into(),
                storage: ResourceSchemaStorage::crd(),
            }],
            ..Default::default()
        },
    );
    Api::<ApiExport>::all(provider.client())
        .create(&post, &export)
        .await
        .unwrap_or_else(|e| panic!("creating the widgets export: {e}"));
}

/// An APIBinding `widgets` to `provider`'s export.
pub fn widgets_binding(provider: &TestWorkspace) -> ApiBinding {
    ApiBinding {
        metadata: kube::core::ObjectMeta {
            name: Some("widgets".into()),
            ..Default::default()
        },
        spec: ApiBindingSpec {
            reference: BindingReference {
                export: Some(ExportBindingReference {
                    path: provider.path.to_string(),
                    name: WIDGETS_EXPORT.into(),
                }),
            },
            permission_claims: Vec::new(),
        },
        status: None,
    }
}

/// Binds `provider`'s export into `workspace` and waits until the binding is Ready.
pub async fn bind_widgets(provider: &TestWorkspace, workspace: &TestWorkspace) {
    let bindings: Api<ApiBinding> = Api::all(workspace.client());
    bindings
        .create(&PostParams::default(), &widgets_binding(provider))
        .await
        .unwrap_or_else(|e| panic!("binding widgets in {}: {e}", workspace.path));
    wait_for(&bindings, "widgets", "Ready", ApiBinding::is_ready).await;
}
