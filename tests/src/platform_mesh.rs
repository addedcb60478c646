//! `root:platform-mesh-system` with the generated schemas and the `core.platform-mesh.io`
//! export, as platform-mesh-operator would set it up, and bindings of it.

use crds::export::{
    CORE_EXPORT, SYSTEM_EXPORT, api_export, core_export_crds, schemas, system_export_crds,
};
use kcp::ClusterPath;
use kcp::types::apis::{
    AcceptablePermissionClaim, ApiBinding, ApiBindingSpec, ApiExport, ApiExportEndpointSlice,
    ApiResourceSchema, BindingReference, ExportBindingReference,
};
use kcp::types::tenancy::{
    ApiExportReference, WorkspaceType, WorkspaceTypeExtension, WorkspaceTypeReference,
    WorkspaceTypeSpec,
};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use tokio::sync::OnceCell;

use std::path::{Path, PathBuf};

use kcp::ClientFactory;

use crate::kcp::{
    Kcp, TestWorkspace, create_workspace, point_kubeconfig, retry_while, universal, wait_for,
    when_served,
};

/// The WorkspaceType whose initializer and terminator the security-operator serves.
pub const SECURITY_TYPE: &str = "security";

/// A WorkspaceType in `root`.
pub fn root_type(name: &str) -> WorkspaceTypeReference {
    WorkspaceTypeReference {
        name: name.into(),
        path: "root".into(),
    }
}

/// Sets up what platform-mesh-operator would: the `root` WorkspaceTypes orgs, org and account,
/// binding `core.platform-mesh.io` by default, and the `root:orgs` workspace. With `security`,
/// org and account extend the WorkspaceType `security`, whose initializer and terminator
/// (`root:security`) hold every org and account workspace for the security-operator, as in
/// production, and `root:orgs` also binds `system.platform-mesh.io`. Returns `root:orgs` and
/// a kubeconfig for an operator, named `kubeconfig_name`, whose `root` context points at
/// root:platform-mesh-system.
pub async fn set_up_platform(
    kcp: &Kcp,
    security: bool,
    kubeconfig_name: &str,
) -> (TestWorkspace, std::path::PathBuf) {
    let kubeconfig = kcp.kubeconfig().with_file_name(kubeconfig_name);
    set_up_platform_on(&kcp.admin().await, kcp.kubeconfig(), security, &kubeconfig).await
}

/// [`set_up_platform`] on any kcp (a sharded one): `admin` is a kcp admin's clients, and
/// `admin_kubeconfig` their kubeconfig, which is written, pointed at
/// root:platform-mesh-system, to `kubeconfig`.
pub async fn set_up_platform_on(
    admin: &ClientFactory,
    admin_kubeconfig: &Path,
    security: bool,
    kubeconfig: &Path,
) -> (TestWorkspace, PathBuf) {
    let core = PlatformExport::core_on(admin).await;
    let root = admin
        .for_path(&ClusterPath::root())
        .unwrap_or_else(|e| panic!("{e}"));
    let types: Api<WorkspaceType> = Api::all(root);
    let apply = PatchParams::apply("tests").force();
    if security {
        let wt = workspace_type(SECURITY_TYPE, vec![universal()], Vec::new());
        let mut wt = wt;
        wt.spec.initializer = true;
        wt.spec.terminator = true;
        types
            .patch(SECURITY_TYPE, &apply, &Patch::Apply(&wt))
            .await
            .unwrap_or_else(|e| panic!("applying WorkspaceType {SECURITY_TYPE}: {e}"));
        wait_for(&types, SECURITY_TYPE, "Ready", WorkspaceType::is_ready).await;
    }
    let bindings = vec![ApiExportReference {
        path: SYSTEM_PATH.into(),
        export: CORE_EXPORT.into(),
    }];
    for name in ["orgs", "org", "account"] {
        let mut extends = vec![universal()];
        if security && name != "orgs" {
            extends.push(root_type(SECURITY_TYPE));
        }
        let wt = Patch::Apply(workspace_type(name, extends, bindings.clone()));
        until_bind_allowed(|| types.patch(name, &apply, &wt))
            .await
            .unwrap_or_else(|e| panic!("applying WorkspaceType {name}: {e}"));
        wait_for(&types, name, "Ready", WorkspaceType::is_ready).await;
    }
    let ws = create_workspace(admin, &ClusterPath::root(), "orgs", root_type("orgs")).await;
    let orgs = TestWorkspace {
        factory: admin.clone(),
        path: "root:orgs".parse().unwrap_or_else(|e| panic!("{e}")),
        cluster: ws
            .spec
            .cluster
            .unwrap_or_else(|| panic!("root:orgs has no cluster"))
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
    };
    core.bind(&orgs).await;
    if security {
        // APIExportPolicies live in root:orgs, served by the system export.
        PlatformExport::system_on(admin).await.bind(&orgs).await;
    }
    let system: ClusterPath = SYSTEM_PATH.parse().unwrap_or_else(|e| panic!("{e}"));
    point_kubeconfig(admin_kubeconfig, &system, kubeconfig);
    (orgs, kubeconfig.to_owned())
}

/// Runs `request` (a binding of an export, or a WorkspaceType naming it as a default binding)
/// until kcp allows the binding: on a sharded kcp, a shard decides with the RBAC of the
/// export's workspace as the cache server replicated it, which for a new export lags behind
/// for a moment (`no permission to bind to export`). Any other result is returned as it is.
async fn until_bind_allowed<T, F, Fut>(request: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    retry_while(request, std::time::Duration::from_secs(60), |status| {
        status.code == 403 && status.message.contains("no permission to bind to export")
    })
    .await
}

fn workspace_type(
    name: &str,
    extends: Vec<WorkspaceTypeReference>,
    bindings: Vec<ApiExportReference>,
) -> WorkspaceType {
    WorkspaceType {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: WorkspaceTypeSpec {
            extend: Some(WorkspaceTypeExtension { with: extends }),
            default_api_bindings: bindings,
            ..Default::default()
        },
        status: None,
    }
}

/// The path of the workspace holding the Platform Mesh exports.
pub const SYSTEM_PATH: &str = "root:platform-mesh-system";

/// A Platform Mesh export in `root:platform-mesh-system` (`core.platform-mesh.io` or
/// `system.platform-mesh.io`), set up once per test binary (schemas and export applied with
/// server-side apply, so reruns are harmless).
#[derive(Debug, Clone)]
pub struct PlatformExport {
    /// The workspace holding the export.
    pub system: ClusterPath,
    /// The export as kcp stored it.
    pub export: ApiExport,
}

impl PlatformExport {
    /// The `core.platform-mesh.io` export, set up on first use.
    pub async fn core(kcp: &Kcp) -> &'static PlatformExport {
        Self::core_on(&kcp.admin().await).await
    }

    /// [`PlatformExport::core`] on the kcp of `admin`'s clients. Once per test binary: the
    /// first kcp asked for it is the one it is set up on.
    pub async fn core_on(admin: &ClientFactory) -> &'static PlatformExport {
        static CORE: OnceCell<PlatformExport> = OnceCell::const_new();
        CORE.get_or_init(|| Self::set_up(admin, CORE_EXPORT, core_export_crds()))
            .await
    }

    /// The `system.platform-mesh.io` export, set up on first use.
    pub async fn system(kcp: &Kcp) -> &'static PlatformExport {
        Self::system_on(&kcp.admin().await).await
    }

    /// [`PlatformExport::system`] on the kcp of `admin`'s clients (see
    /// [`PlatformExport::core_on`]).
    pub async fn system_on(admin: &ClientFactory) -> &'static PlatformExport {
        static SYSTEM: OnceCell<PlatformExport> = OnceCell::const_new();
        SYSTEM
            .get_or_init(|| Self::set_up(admin, SYSTEM_EXPORT, system_export_crds()))
            .await
    }

    async fn set_up(
        admin: &ClientFactory,
        name: &str,
        crds: Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>,
    ) -> PlatformExport {
        let system: ClusterPath = SYSTEM_PATH.parse().unwrap_or_else(|e| panic!("{e}"));
        create_workspace(admin, &ClusterPath::root(), system.base(), universal()).await;
        let root = admin
            .for_path(&ClusterPath::root())
            .unwrap_or_else(|e| panic!("{e}"));
        let identity = Api::<ApiExport>::all(root)
            .get("tenancy.kcp.io")
            .await
            .unwrap_or_else(|e| panic!("reading root's tenancy.kcp.io export: {e}"))
            .status
            .and_then(|s| s.identity_hash)
            .unwrap_or_else(|| panic!("root's tenancy.kcp.io export has no identity hash"));

        let client = admin.for_path(&system).unwrap_or_else(|e| panic!("{e}"));
        let apply = PatchParams::apply("platform-mesh-rs-tests").force();
        let schemas = schemas(&crds);
        let schema_api: Api<ApiResourceSchema> = Api::all(client.clone());
        for schema in &schemas {
            schema_api
                .patch(&schema.name_any(), &apply, &Patch::Apply(schema))
                .await
                .unwrap_or_else(|e| panic!("applying {}: {e}", schema.name_any()));
        }
        let exports: Api<ApiExport> = Api::all(client);
        let export = exports
            .patch(
                name,
                &apply,
                &Patch::Apply(&api_export(name, &schemas, &identity)),
            )
            .await
            .unwrap_or_else(|e| panic!("applying the {name} export: {e}"));
        PlatformExport { system, export }
    }

    /// Binds the export into `workspace`, accepting every claim, and waits until Ready. A
    /// binding of the export that already exists (a WorkspaceType's default binding) is
    /// adopted: its claims are accepted instead of creating a second, conflicting binding.
    pub async fn bind(&self, workspace: &TestWorkspace) -> ApiBinding {
        let export_name = self.export.metadata.name.clone().unwrap_or_default();
        let api: Api<ApiBinding> = Api::all(workspace.client());
        let accepted: Vec<AcceptablePermissionClaim> = self
            .export
            .spec
            .permission_claims
            .iter()
            .cloned()
            .map(AcceptablePermissionClaim::accept_all)
            .collect();
        let existing = api
            .list(&Default::default())
            .await
            .unwrap_or_else(|e| panic!("listing bindings in {}: {e}", workspace.path))
            .items
            .into_iter()
            .find(|b| {
                b.spec
                    .reference
                    .export
                    .as_ref()
                    .is_some_and(|e| e.name == export_name && e.path == self.system.as_str())
            });
        let name = match existing {
            Some(binding) => {
                let name = binding.name_any();
                if binding.spec.permission_claims != accepted {
                    let patch = serde_json::json!({"spec": {"permissionClaims": accepted}});
                    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .unwrap_or_else(|e| {
                            panic!("accepting claims of {name} in {}: {e}", workspace.path)
                        });
                }
                name
            }
            None => {
                let binding = ApiBinding {
                    metadata: ObjectMeta {
                        name: Some(export_name.clone()),
                        ..Default::default()
                    },
                    spec: ApiBindingSpec {
                        reference: BindingReference {
                            export: Some(ExportBindingReference {
                                path: self.system.to_string(),
                                name: export_name.clone(),
                            }),
                        },
                        permission_claims: accepted,
                    },
                    status: None,
                };
                let post = PostParams::default();
                match until_bind_allowed(|| api.create(&post, &binding)).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 409 => {}
                    Err(e) => panic!("binding {export_name} in {}: {e}", workspace.path),
                }
                export_name.clone()
            }
        };
        let ready = wait_for(&api, &name, "Ready", ApiBinding::is_ready).await;
        // A Ready binding's resources can take a moment to be served.
        let served = self
            .export
            .spec
            .resources
            .first()
            .unwrap_or_else(|| panic!("the {export_name} export serves nothing"));
        let resource = kube::discovery::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(&served.group, crds::VERSION, ""),
            &served.name,
        );
        let objects: Api<kube::api::DynamicObject> = Api::all_with(workspace.client(), &resource);
        let list = kube::api::ListParams::default();
        when_served(|| objects.list(&list))
            .await
            .unwrap_or_else(|e| panic!("{} not served in {}: {e}", served.name, workspace.path));
        ready
    }

    /// Waits until the export's endpoint slice publishes a URL, and returns the first.
    pub async fn endpoint_url(&self, kcp: &Kcp) -> String {
        let admin = kcp.admin().await;
        let client = admin
            .for_path(&self.system)
            .unwrap_or_else(|e| panic!("{e}"));
        let slices: Api<ApiExportEndpointSlice> = Api::all(client);
        let name = self.export.metadata.name.clone().unwrap_or_default();
        let slice = wait_for(&slices, &name, "to publish an endpoint", |s| {
            s.endpoint_urls().next().is_some()
        })
        .await;
        slice
            .endpoint_urls()
            .next()
            .map(str::to_owned)
            .unwrap_or_default()
    }
}
