//! The kcp tree a PlatformMesh asks for, pure: which objects, in which workspace, in which
//! order, and what each must show before the next phase may rely on it.
//!
//! Upstream applied a directory of templates in file-name order and converged by retrying
//! (its `providers` Workspace was applied before its WorkspaceType and failed the first
//! time). Here the order is explicit: the system workspace, then its APIs (and its own
//! bindings, awaited last since nothing needs them), the WorkspaceTypes (`security` before the
//! types that extend it), the workspaces of those types, what lives in them, the webhook
//! configurations, and extra workspaces.

use std::collections::BTreeMap;

use crds::Tuple;
use crds::account::webhook::{
    MUTATE_PATH, MUTATING_CONFIG, MUTATING_WEBHOOK, VALIDATE_PATH, VALIDATING_CONFIG,
    VALIDATING_WEBHOOK,
};
use crds::export::{
    CORE_EXPORT, SYSTEM_EXPORT, api_export, core_export_crds, schemas, system_export_crds,
};
use crds::identity_provider::webhook as idp_webhook;
use crds::platform_mesh::{DefaultApiBinding, ExtraWorkspace};
use crds::store::ORGS_STORE_NAME;
use crds::{Store, StoreSpec};
use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use kcp::ClusterPath;
use kcp::types::apis::{
    AcceptablePermissionClaim, ApiBinding, ApiBindingSpec, ApiExport, ApiExportEndpointSlice,
    ApiExportEndpointSliceSpec, BindingReference, ExportBindingReference,
};
use kcp::types::tenancy::{
    ApiExportReference, Workspace, WorkspaceSpec, WorkspaceType, WorkspaceTypeExtension,
    WorkspaceTypeReference, WorkspaceTypeSpec,
};
use kube::Resource;
use kube::api::ApiResource;
use kube::core::ObjectMeta;
use serde::Serialize;

/// The label on every object this operator creates, in kcp and in the hosting cluster.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY: &str = "platform-mesh-operator";

/// The workspace holding the Platform Mesh APIs.
pub const SYSTEM_WORKSPACE: &str = "platform-mesh-system";
/// The workspace of the organisations.
pub const ORGS_WORKSPACE: &str = "orgs";
/// The workspace of the providers.
pub const PROVIDERS_WORKSPACE: &str = "providers";
/// The WorkspaceType whose initializer and terminator the security-operator serves.
pub const SECURITY_TYPE: &str = "security";
/// The WorkspaceTypes in `root`, in the order they are applied.
pub const WORKSPACE_TYPES: &[&str] = &[
    SECURITY_TYPE,
    "orgs",
    "org",
    "account",
    "providers",
    "provider",
];

/// What an applied object must show before the next phase relies on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Nothing: it exists.
    Exists,
    /// A Workspace in phase Ready.
    WorkspaceReady,
    /// kcp's `Ready` condition True (WorkspaceTypes, APIBindings).
    ConditionReady,
    /// An APIExport with its identity hash (claims on it name the hash).
    IdentityHash,
}

/// One object of the tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The workspace it lives in.
    pub path: ClusterPath,
    /// Its kind.
    pub resource: ApiResource,
    /// The fields this operator owns: apiVersion, kind, name, labels, spec.
    pub object: serde_json::Value,
    /// When it counts as done.
    pub readiness: Readiness,
}

impl Desired {
    /// `object` in `path`, labelled as this operator's.
    pub fn new<K>(
        path: &ClusterPath,
        object: &K,
        readiness: Readiness,
    ) -> Result<Self, BootstrapError>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let mut value =
            serde_json::to_value(object).map_err(|e| BootstrapError::Encode(e.to_string()))?;
        value["apiVersion"] = K::api_version(&()).into();
        value["kind"] = K::kind(&()).into();
        value["metadata"]["labels"][MANAGED_BY_LABEL] = MANAGED_BY.into();
        Ok(Self {
            path: path.clone(),
            resource: ApiResource::erase::<K>(&()),
            object: value,
            readiness,
        })
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `<Kind> <path>/<name>`, for messages.
    pub fn describe(&self) -> String {
        format!("{} {}/{}", self.resource.kind, self.path, self.name())
    }
}

/// Objects applied together; the next phase starts when all of them are ready.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// What the phase sets up, for conditions: "WorkspaceTypes in root".
    pub name: String,
    /// Its objects, in apply order.
    pub objects: Vec<Desired>,
}

/// An admission webhook server's address and CA, as kcp reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAddress {
    /// `https://host:port` of the server.
    pub base_url: String,
    /// The CA of its serving certificate.
    pub ca_pem: String,
}

/// What the tree depends on besides the PlatformMesh's spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inputs {
    /// The identity hash of root's `tenancy.kcp.io` APIExport, named by the claims on
    /// workspaces and WorkspaceTypes.
    pub tenancy_identity_hash: String,
    /// `spec.kcp.extraDefaultAPIBindings`.
    pub extra_default_bindings: Vec<DefaultApiBinding>,
    /// `spec.kcp.extraWorkspaces`.
    pub extra_workspaces: Vec<ExtraWorkspace>,
    /// The account-operator's webhooks, when they are registered.
    pub account_webhooks: Option<WebhookAddress>,
    /// The security-operator's IdentityProviderConfiguration webhook, when it is registered.
    pub security_webhook: Option<WebhookAddress>,
}

/// A spec the tree cannot be built from; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootstrapError {
    #[error(
        "spec.kcp.extraDefaultAPIBindings[{index}].workspaceTypePath {path:?}: not one of the \
         WorkspaceTypes this operator manages ({known})"
    )]
    UnknownWorkspaceType {
        index: usize,
        path: String,
        known: String,
    },
    #[error("spec.kcp.extraDefaultAPIBindings[{index}].path {path:?}: {reason}")]
    InvalidBindingPath {
        index: usize,
        path: String,
        reason: String,
    },
    #[error("spec.kcp.extraWorkspaces[{index}].path {path:?}: {reason}")]
    InvalidWorkspacePath {
        index: usize,
        path: String,
        reason: String,
    },
    #[error("spec.kcp.extraWorkspaces[{index}].type.path {path:?}: {reason}")]
    InvalidTypePath {
        index: usize,
        path: String,
        reason: String,
    },
    #[error("encoding an object: {0}")]
    Encode(String),
}

fn path(text: &str) -> ClusterPath {
    // Every literal passed here is a valid path; the fallback is never reached.
    text.parse().unwrap_or_else(|_| ClusterPath::root())
}

/// The system workspace's path.
pub fn system_path() -> ClusterPath {
    path(&format!("root:{SYSTEM_WORKSPACE}"))
}

/// The orgs workspace's path.
pub fn orgs_path() -> ClusterPath {
    path(&format!("root:{ORGS_WORKSPACE}"))
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        ..Default::default()
    }
}

fn root_type(name: &str) -> WorkspaceTypeReference {
    WorkspaceTypeReference {
        name: name.to_owned(),
        path: "root".to_owned(),
    }
}

fn workspace(name: &str, type_: WorkspaceTypeReference) -> Workspace {
    Workspace {
        metadata: meta(name),
        spec: WorkspaceSpec {
            type_: Some(type_),
            ..Default::default()
        },
        status: None,
    }
}

/// A binding of `export` (in the system workspace) accepting every claim of it.
fn binding(export: &ApiExport) -> ApiBinding {
    let name = export.metadata.name.clone().unwrap_or_default();
    ApiBinding {
        metadata: meta(&name),
        spec: ApiBindingSpec {
            reference: BindingReference {
                export: Some(ExportBindingReference {
                    path: system_path().to_string(),
                    name,
                }),
            },
            permission_claims: export
                .spec
                .permission_claims
                .iter()
                .cloned()
                .map(AcceptablePermissionClaim::accept_all)
                .collect(),
        },
        status: None,
    }
}

/// The WorkspaceTypes in `root`. Organisations and accounts extend `security`, so the
/// security-operator initializes and terminates every one of them; they bind the core export
/// by default. `orgs` binds nothing by default: `root:orgs` gets its own bindings, with the
/// claims accepted (a default binding accepts none).
fn workspace_types(extra: &[DefaultApiBinding]) -> Result<Vec<WorkspaceType>, BootstrapError> {
    let core = ApiExportReference {
        path: system_path().to_string(),
        export: CORE_EXPORT.to_owned(),
    };
    let mut types: Vec<WorkspaceType> = WORKSPACE_TYPES
        .iter()
        .map(|name| {
            let mut extends = vec![root_type("universal")];
            let mut bindings = Vec::new();
            match *name {
                "org" | "account" => {
                    extends.push(root_type(SECURITY_TYPE));
                    bindings.push(core.clone());
                }
                "provider" => bindings.push(core.clone()),
                _ => {}
            }
            WorkspaceType {
                metadata: meta(name),
                spec: WorkspaceTypeSpec {
                    initializer: *name == SECURITY_TYPE,
                    terminator: *name == SECURITY_TYPE,
                    extend: Some(WorkspaceTypeExtension { with: extends }),
                    default_api_bindings: bindings,
                    ..Default::default()
                },
                status: None,
            }
        })
        .collect();
    for (index, binding) in extra.iter().enumerate() {
        let wanted = binding.workspace_type_path.as_str();
        let Some(target) = types
            .iter_mut()
            .find(|t| wanted == format!("root:{}", t.metadata.name.as_deref().unwrap_or_default()))
        else {
            return Err(BootstrapError::UnknownWorkspaceType {
                index,
                path: wanted.to_owned(),
                known: WORKSPACE_TYPES
                    .iter()
                    .map(|t| format!("root:{t}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        if let Err(e) = binding.path.parse::<ClusterPath>() {
            return Err(BootstrapError::InvalidBindingPath {
                index,
                path: binding.path.clone(),
                reason: e.to_string(),
            });
        }
        let reference = ApiExportReference {
            path: binding.path.clone(),
            export: binding.export.clone(),
        };
        if !target.spec.default_api_bindings.contains(&reference) {
            target.spec.default_api_bindings.push(reference);
        }
    }
    Ok(types)
}

/// The `orgs` Store: the orgs model, and every authenticated user a member of `root:orgs`
/// (so that anyone may create an organisation), as upstream.
fn orgs_store() -> Result<Store, BootstrapError> {
    let module = fga::platform_mesh::orgs_module()
        .to_dsl()
        .map_err(|e| BootstrapError::Encode(e.to_string()))?;
    let authenticated = "role:authenticated";
    let tuple = |object: &str, relation: &str, user: String| Tuple {
        object: object.to_owned(),
        relation: relation.to_owned(),
        user,
    };
    Ok(Store::new(
        ORGS_STORE_NAME,
        StoreSpec {
            core_module: module,
            tuples: Some(vec![
                tuple(
                    authenticated,
                    fga::platform_mesh::ASSIGNEE,
                    "user:*".to_owned(),
                ),
                tuple(
                    &format!("tenancy_kcp_io_workspace:{ORGS_WORKSPACE}"),
                    "member",
                    format!("{authenticated}#{}", fga::platform_mesh::ASSIGNEE),
                ),
            ]),
        },
    ))
}

/// Reviews of `operations` on `resource` of the Platform Mesh group.
fn rules(resource: &str, operations: &[&str]) -> Vec<RuleWithOperations> {
    vec![RuleWithOperations {
        api_groups: Some(vec![crds::GROUP.to_owned()]),
        api_versions: Some(vec![crds::VERSION.to_owned()]),
        operations: Some(operations.iter().map(|o| (*o).to_owned()).collect()),
        resources: Some(vec![resource.to_owned()]),
        scope: None,
    }]
}

fn client_config(webhooks: &WebhookAddress, path: &str) -> WebhookClientConfig {
    WebhookClientConfig {
        url: Some(format!("{}{path}", webhooks.base_url.trim_end_matches('/'))),
        ca_bundle: Some(ByteString(webhooks.ca_pem.as_bytes().to_vec())),
        service: None,
    }
}

fn mutating(webhooks: &WebhookAddress) -> MutatingWebhookConfiguration {
    MutatingWebhookConfiguration {
        metadata: meta(MUTATING_CONFIG),
        webhooks: Some(vec![MutatingWebhook {
            name: MUTATING_WEBHOOK.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: client_config(webhooks, MUTATE_PATH),
            failure_policy: Some("Fail".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(10),
            rules: Some(rules("accounts", &["CREATE"])),
            ..Default::default()
        }]),
    }
}

/// A validating configuration of one webhook on CREATE and UPDATE of `resource`, refusing
/// the request when the server cannot answer, as upstream's.
fn validating(
    names: (&str, &str),
    server: &WebhookAddress,
    path: &str,
    resource: &str,
) -> ValidatingWebhookConfiguration {
    let (config, webhook) = names;
    ValidatingWebhookConfiguration {
        metadata: meta(config),
        webhooks: Some(vec![ValidatingWebhook {
            name: webhook.to_owned(),
            admission_review_versions: vec!["v1".to_owned()],
            client_config: client_config(server, path),
            failure_policy: Some("Fail".to_owned()),
            side_effects: "None".to_owned(),
            timeout_seconds: Some(10),
            rules: Some(rules(resource, &["CREATE", "UPDATE"])),
            ..Default::default()
        }]),
    }
}

/// The extra workspaces, each in its parent.
fn extra_workspaces(extra: &[ExtraWorkspace]) -> Result<Vec<Desired>, BootstrapError> {
    let mut out = Vec::new();
    for (index, ws) in extra.iter().enumerate() {
        let invalid = |reason: String| BootstrapError::InvalidWorkspacePath {
            index,
            path: ws.path.clone(),
            reason,
        };
        let full: ClusterPath = ws.path.parse().map_err(|e| invalid(format!("{e}")))?;
        let parent = full
            .parent()
            .ok_or_else(|| invalid("must be <parent path>:<name>".to_owned()))?;
        if let Err(e) = ws.type_.path.parse::<ClusterPath>() {
            return Err(BootstrapError::InvalidTypePath {
                index,
                path: ws.type_.path.clone(),
                reason: e.to_string(),
            });
        }
        let type_ = WorkspaceTypeReference {
            name: ws.type_.name.clone(),
            path: ws.type_.path.clone(),
        };
        // Awaited, unlike upstream: a PlatformMesh is Ready when its whole tree is.
        out.push(Desired::new(
            &parent,
            &workspace(full.base(), type_),
            Readiness::WorkspaceReady,
        )?);
    }
    Ok(out)
}

/// The tree, phase by phase.
pub fn tree(inputs: &Inputs) -> Result<Vec<Phase>, BootstrapError> {
    let root = ClusterPath::root();
    let system = system_path();
    let orgs = orgs_path();
    let phase = |name: &str, objects: Vec<Desired>| Phase {
        name: name.to_owned(),
        objects,
    };

    let core_schemas = schemas(&core_export_crds());
    let system_schemas = schemas(&system_export_crds());
    let core = api_export(CORE_EXPORT, &core_schemas, &inputs.tenancy_identity_hash);
    let system_export = api_export(
        SYSTEM_EXPORT,
        &system_schemas,
        &inputs.tenancy_identity_hash,
    );
    let slice = ApiExportEndpointSlice {
        metadata: meta(CORE_EXPORT),
        spec: ApiExportEndpointSliceSpec {
            export: ExportBindingReference {
                path: system.to_string(),
                name: CORE_EXPORT.to_owned(),
            },
            partition: None,
        },
        status: None,
    };

    let mut apis = Vec::new();
    for schema in core_schemas.iter().chain(&system_schemas) {
        apis.push(Desired::new(&system, schema, Readiness::Exists)?);
    }
    apis.push(Desired::new(&system, &core, Readiness::IdentityHash)?);
    apis.push(Desired::new(
        &system,
        &system_export,
        Readiness::IdentityHash,
    )?);
    apis.push(Desired::new(&system, &slice, Readiness::Exists)?);

    let bindings = |path: &ClusterPath, readiness| -> Result<Vec<Desired>, BootstrapError> {
        [&core, &system_export]
            .iter()
            .map(|export| Desired::new(path, &binding(export), readiness))
            .collect()
    };
    // Nothing later needs the system workspace's own bindings, and kcp takes seconds to bind
    // an export the first time: they are created with the APIs and awaited last.
    apis.extend(bindings(&system, Readiness::Exists)?);

    let mut types = workspace_types(&inputs.extra_default_bindings)?.into_iter();
    let security = types
        .next()
        .map(|t| Desired::new(&root, &t, Readiness::ConditionReady))
        .transpose()?;
    let others = types
        .map(|t| Desired::new(&root, &t, Readiness::ConditionReady))
        .collect::<Result<Vec<_>, _>>()?;

    let mut orgs_content = bindings(&orgs, Readiness::ConditionReady)?;
    orgs_content.push(Desired::new(&orgs, &orgs_store()?, Readiness::Exists)?);

    let mut phases = vec![
        phase(
            "the workspace root:platform-mesh-system",
            vec![Desired::new(
                &root,
                &workspace(SYSTEM_WORKSPACE, root_type("universal")),
                Readiness::WorkspaceReady,
            )?],
        ),
        phase("the APIs in root:platform-mesh-system", apis),
        phase(
            "the WorkspaceType root:security",
            security.into_iter().collect(),
        ),
        phase("the WorkspaceTypes in root", others),
        phase(
            "the workspaces root:orgs and root:providers",
            vec![
                Desired::new(
                    &root,
                    &workspace(ORGS_WORKSPACE, root_type("orgs")),
                    Readiness::WorkspaceReady,
                )?,
                Desired::new(
                    &root,
                    &workspace(PROVIDERS_WORKSPACE, root_type("providers")),
                    Readiness::WorkspaceReady,
                )?,
            ],
        ),
        phase("the bindings and the orgs Store in root:orgs", orgs_content),
    ];
    let mut webhooks = Vec::new();
    if let Some(server) = &inputs.account_webhooks {
        webhooks.push(Desired::new(&system, &mutating(server), Readiness::Exists)?);
        let accounts = validating(
            (VALIDATING_CONFIG, VALIDATING_WEBHOOK),
            server,
            VALIDATE_PATH,
            "accounts",
        );
        webhooks.push(Desired::new(&system, &accounts, Readiness::Exists)?);
    }
    if let Some(server) = &inputs.security_webhook {
        let idps = validating(
            (
                idp_webhook::VALIDATING_CONFIG,
                idp_webhook::VALIDATING_WEBHOOK,
            ),
            server,
            idp_webhook::VALIDATE_PATH,
            "identityproviderconfigurations",
        );
        webhooks.push(Desired::new(&system, &idps, Readiness::Exists)?);
    }
    if !webhooks.is_empty() {
        phases.push(phase("the admission webhook configurations", webhooks));
    }
    let extra = extra_workspaces(&inputs.extra_workspaces)?;
    if !extra.is_empty() {
        phases.push(phase("the extra workspaces", extra));
    }
    phases.push(phase(
        "the bindings in root:platform-mesh-system",
        bindings(&system, Readiness::ConditionReady)?,
    ));
    Ok(phases)
}

/// The workspaces the tree creates, deepest first: what deletion removes when asked to.
pub fn created_workspaces(inputs: &Inputs) -> Vec<(ClusterPath, String)> {
    let mut out: Vec<(ClusterPath, String)> = inputs
        .extra_workspaces
        .iter()
        .filter_map(|ws| {
            let full: ClusterPath = ws.path.parse().ok()?;
            Some((full.parent()?, full.base().to_owned()))
        })
        .collect();
    out.sort_by_key(|(parent, _)| std::cmp::Reverse(parent.as_str().matches(':').count()));
    for name in [PROVIDERS_WORKSPACE, ORGS_WORKSPACE, SYSTEM_WORKSPACE] {
        out.push((ClusterPath::root(), name.to_owned()));
    }
    out
}

/// Labels as a map, for callers that build label selectors.
pub fn managed_by() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned())])
}

#[cfg(test)]
mod tests;
