//! Non-admin identities for components under test, as a real installation gives them: RBAC in
//! whichever workspaces a component needs, and a kubeconfig with the identity's credentials.
//!
//! Two kinds of identity:
//!
//! * [`ServiceAccountIdentity`]: a ServiceAccount in a workspace with a TokenRequest token.
//!   kcp names it differently inside and outside its own workspace. In its home workspace it
//!   is `system:serviceaccount:<namespace>:<name>`, and a binding to the ServiceAccount
//!   grants it. In every other workspace kcp's RBAC knows it only as the user
//!   `system:kcp:serviceaccount:<home cluster>:<namespace>:<name>` (kcp's
//!   `GlobalServiceAccount` feature, on by default), with the group `system:authenticated`:
//!   [`grant`] binds that user there. Not for a component that creates workspaces whose types
//!   have default API bindings: kcp v0.32.3 creates those bindings impersonating the
//!   workspace's creator, and its `workspace-admin` binding in the new workspace names the
//!   ServiceAccount by its local name, which does not match it there, so the workspace never
//!   leaves `Initializing` (kcp-dev/kcp#4038).
//! * [`CertificateUser`]: a user with a client certificate signed by a [`ClientCa`] kcp
//!   trusts (`--client-ca-file`, see [`kcp_trusting`]), as kcp-operator's `Kubeconfig`
//!   objects issue them. A user's name is the same in every workspace.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kcp::types::tenancy::Workspace;
use kcp::{ClientFactory, ClusterName, ClusterPath};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::core::ObjectMeta;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
use serde_json::{Value, json};

use crate::kcp::{Kcp, when_served};

/// The field manager of the RBAC the harness applies.
const MANAGER: &str = "platform-mesh-rs-tests";

/// An identity RBAC can name: the subject that stands for it in a binding in a workspace.
pub trait Principal {
    /// The identity's name: the name of the ClusterRole and ClusterRoleBinding [`grant`]
    /// writes, and of its kubeconfig's user.
    fn name(&self) -> &str;

    /// The subject that names the identity in a binding in `workspace`.
    fn subject_in(&self, workspace: &ClusterPath) -> Subject;
}

/// Grants `principal` the `rules` in `workspace`: a ClusterRole and a ClusterRoleBinding, both
/// named after the principal, applied (a second grant in the same workspace replaces the
/// first).
pub async fn grant(
    admin: &ClientFactory,
    principal: &impl Principal,
    workspace: &ClusterPath,
    rules: Vec<PolicyRule>,
) {
    let name = principal.name();
    let client = admin
        .for_path(workspace)
        .unwrap_or_else(|e| panic!("client for {workspace}: {e}"));
    let meta = ObjectMeta {
        name: Some(name.to_owned()),
        labels: Some(BTreeMap::from([(
            "platform-mesh.io/test-identity".to_owned(),
            name.to_owned(),
        )])),
        ..Default::default()
    };
    let apply = PatchParams::apply(MANAGER).force();
    let role = ClusterRole {
        metadata: meta.clone(),
        rules: Some(rules),
        aggregation_rule: None,
    };
    Api::<ClusterRole>::all(client.clone())
        .patch(name, &apply, &Patch::Apply(&role))
        .await
        .unwrap_or_else(|e| panic!("applying ClusterRole {workspace}/{name}: {e}"));
    let binding = ClusterRoleBinding {
        metadata: meta,
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: name.to_owned(),
        },
        subjects: Some(vec![principal.subject_in(workspace)]),
    };
    Api::<ClusterRoleBinding>::all(client)
        .patch(name, &apply, &Patch::Apply(&binding))
        .await
        .unwrap_or_else(|e| panic!("applying ClusterRoleBinding {workspace}/{name}: {e}"));
}

/// Removes what [`grant`] gave `principal` in `workspace` (nothing there is fine). kcp's
/// virtual workspaces cache an allowed request for up to five minutes, so a permission the
/// principal has used there already may keep working that long.
pub async fn revoke(admin: &ClientFactory, principal: &impl Principal, workspace: &ClusterPath) {
    let name = principal.name();
    let client = admin
        .for_path(workspace)
        .unwrap_or_else(|e| panic!("client for {workspace}: {e}"));
    let delete = DeleteParams::default();
    let results = [
        Api::<ClusterRoleBinding>::all(client.clone())
            .delete(name, &delete)
            .await
            .map(drop),
        Api::<ClusterRole>::all(client)
            .delete(name, &delete)
            .await
            .map(drop),
    ];
    for result in results {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(e) => panic!("revoking {name}'s RBAC in {workspace}: {e}"),
        }
    }
}

/// `access` on the non-resource URL `/`: kcp lets a user into a workspace, and into the
/// virtual workspaces of an export in it, only with this, whatever else its RBAC there allows
/// (its 403 then reads like any other: `cannot get resource … access denied`). In `root` kcp
/// gives it to every authenticated user itself.
pub fn workspace_access() -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(vec!["/".to_owned()]),
        verbs: vec!["access".to_owned()],
        ..Default::default()
    }
}

/// A rule on `resources` of API group `group`, limited to `names` unless empty.
pub fn rule(group: &str, resources: &[&str], names: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(strings(resources)),
        resource_names: (!names.is_empty()).then(|| strings(names)),
        verbs: strings(verbs),
        non_resource_urls: None,
    }
}

/// A ServiceAccount in namespace `default` of workspace `home`, and what kcp calls it.
#[derive(Debug, Clone)]
pub struct ServiceAccountIdentity {
    /// The workspace the ServiceAccount lives in.
    pub home: ClusterPath,
    /// That workspace's logical cluster, part of the ServiceAccount's name elsewhere.
    pub home_cluster: ClusterName,
    /// The ServiceAccount's name.
    pub name: String,
}

/// The namespace of every [`ServiceAccountIdentity`].
const NAMESPACE: &str = "default";

impl ServiceAccountIdentity {
    /// Creates ServiceAccount `name` in namespace `default` of `home` (and the namespace, when
    /// the workspace has none), as `admin`. An existing one is taken as it is.
    pub async fn create(admin: &ClientFactory, home: &ClusterPath, name: &str) -> Self {
        let home_cluster = cluster_of(admin, home).await;
        let client = admin
            .for_path(home)
            .unwrap_or_else(|e| panic!("client for {home}: {e}"));
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(NAMESPACE.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let post = PostParams::default();
        match when_served(|| namespaces.create(&post, &namespace)).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("creating namespace {NAMESPACE} in {home}: {e}"),
        }
        let account = ServiceAccount {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        let accounts: Api<ServiceAccount> = Api::namespaced(client, NAMESPACE);
        match accounts.create(&post, &account).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("creating ServiceAccount {home}/{NAMESPACE}/{name}: {e}"),
        }
        Self {
            home: home.clone(),
            home_cluster,
            name: name.to_owned(),
        }
    }

    /// The user name kcp's authenticator gives the ServiceAccount: its name in its home
    /// workspace, and in kcp's 403 messages everywhere.
    pub fn user(&self) -> String {
        format!("system:serviceaccount:{NAMESPACE}:{}", self.name)
    }

    /// The user name kcp's RBAC knows the ServiceAccount by outside its home workspace.
    pub fn foreign_user(&self) -> String {
        format!(
            "system:kcp:serviceaccount:{}:{NAMESPACE}:{}",
            self.home_cluster, self.name
        )
    }

    /// A token from a TokenRequest, valid for `lifetime` (kcp may shorten it).
    pub async fn token(&self, admin: &ClientFactory, lifetime: std::time::Duration) -> String {
        let client = admin
            .for_path(&self.home)
            .unwrap_or_else(|e| panic!("client for {}: {e}", self.home));
        let request = TokenRequest {
            spec: Some(TokenRequestSpec {
                audiences: None,
                expiration_seconds: Some(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX)),
                bound_object_ref: None,
            }),
            ..Default::default()
        };
        Api::<ServiceAccount>::namespaced(client, NAMESPACE)
            .create_token_request(&self.name, &PostParams::default(), &request)
            .await
            .unwrap_or_else(|e| panic!("requesting a token for {}: {e}", self.user()))
            .status
            .and_then(|s| s.token)
            .unwrap_or_else(|| panic!("kcp returned no token for {}", self.user()))
    }

    /// A kubeconfig with `token` (see [`token`](Self::token)); see [`kubeconfig`].
    pub fn kubeconfig(
        &self,
        kcp: &Kcp,
        token: &str,
        workspace: &ClusterPath,
        context: &str,
    ) -> PathBuf {
        kubeconfig(kcp, self, json!({"token": token}), workspace, context)
    }
}

impl Principal for ServiceAccountIdentity {
    fn name(&self) -> &str {
        &self.name
    }

    fn subject_in(&self, workspace: &ClusterPath) -> Subject {
        if *workspace == self.home {
            Subject {
                kind: "ServiceAccount".to_owned(),
                name: self.name.clone(),
                namespace: Some(NAMESPACE.to_owned()),
                api_group: None,
            }
        } else {
            user_subject(&self.foreign_user())
        }
    }
}

/// The logical cluster of workspace `path` (`root` for root), from its Workspace object.
async fn cluster_of(admin: &ClientFactory, path: &ClusterPath) -> ClusterName {
    let Some(parent) = path.parent() else {
        return ClusterName::root();
    };
    let client = admin
        .for_path(&parent)
        .unwrap_or_else(|e| panic!("client for {parent}: {e}"));
    Api::<Workspace>::all(client)
        .get(path.base())
        .await
        .unwrap_or_else(|e| panic!("reading Workspace {path}: {e}"))
        .spec
        .cluster
        .unwrap_or_else(|| panic!("Workspace {path} has no cluster"))
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn user_subject(name: &str) -> Subject {
    Subject {
        kind: "User".to_owned(),
        name: name.to_owned(),
        namespace: None,
        api_group: Some("rbac.authorization.k8s.io".to_owned()),
    }
}

/// A certificate authority kcp trusts for client certificates (see [`kcp_trusting`]).
#[derive(Debug)]
pub struct ClientCa(crate::pki::Ca);

impl ClientCa {
    /// A new self-signed CA.
    pub fn new() -> Self {
        Self(crate::pki::ca("platform-mesh-rs test client CA"))
    }

    /// The CA certificate as PEM.
    pub fn pem(&self) -> String {
        self.0.pem()
    }
}

impl Default for ClientCa {
    fn default() -> Self {
        Self::new()
    }
}

/// A kcp of its own, as [`Kcp::fresh`], that also accepts client certificates signed by `ca`
/// (`--client-ca-file`).
pub async fn kcp_trusting(ca: &ClientCa) -> Kcp {
    let pem = ca.pem();
    Kcp::start_with(move |dir| {
        let file = dir.join("client-ca.crt");
        std::fs::write(&file, pem).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
        vec![format!("--client-ca-file={}", file.display())]
    })
    .await
}

/// A user with a client certificate: kcp takes the user's name from the certificate's common
/// name, and it is the same in every workspace.
#[derive(Debug, Clone)]
pub struct CertificateUser {
    /// The user's name.
    pub name: String,
    certificate: String,
    key: String,
}

impl CertificateUser {
    /// A client certificate for user `name`, signed by `ca`, with no groups (kcp adds
    /// `system:authenticated`).
    pub fn new(ca: &ClientCa, name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("generating a key: {e}"));
        let certificate = params
            .signed_by(&key, &ca.0)
            .unwrap_or_else(|e| panic!("signing a client certificate for {name}: {e}"));
        Self {
            name: name.to_owned(),
            certificate: certificate.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A kubeconfig with the user's certificate; see [`kubeconfig`].
    pub fn kubeconfig(&self, kcp: &Kcp, workspace: &ClusterPath, context: &str) -> PathBuf {
        let data = |pem: &str| {
            serde_json::to_value(ByteString(pem.as_bytes().to_vec()))
                .unwrap_or_else(|e| panic!("encoding a PEM: {e}"))
        };
        let user = json!({
            "client-certificate-data": data(&self.certificate),
            "client-key-data": data(&self.key),
        });
        kubeconfig(kcp, self, user, workspace, context)
    }
}

impl Principal for CertificateUser {
    fn name(&self) -> &str {
        &self.name
    }

    fn subject_in(&self, _: &ClusterPath) -> Subject {
        user_subject(&self.name)
    }
}

/// A kubeconfig for `principal` with the credentials `user` (a kubeconfig's `user` entry),
/// kcp's server and CA from its admin kubeconfig, the server pointed at `workspace`, one
/// context named `context`; written into kcp's state directory as
/// `<principal>.kubeconfig`.
pub fn kubeconfig(
    kcp: &Kcp,
    principal: &impl Principal,
    user: Value,
    workspace: &ClusterPath,
    context: &str,
) -> PathBuf {
    let admin = kube::config::Kubeconfig::read_from(kcp.kubeconfig())
        .unwrap_or_else(|e| panic!("reading {}: {e}", kcp.kubeconfig().display()));
    let root = admin
        .contexts
        .iter()
        .find(|c| c.name == "root")
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .unwrap_or_else(|| panic!("kcp's kubeconfig has no context root"));
    let mut cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == root)
        .and_then(|c| c.cluster.clone())
        .unwrap_or_else(|| panic!("kcp's kubeconfig has no cluster {root}"));
    let server = cluster.server.clone().unwrap_or_default();
    let base = server
        .find("/clusters/")
        .map_or(server.as_str(), |at| &server[..at]);
    cluster.server = Some(format!("{base}{}", workspace.request_path()));
    let name = principal.name();
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": name}}],
        "current-context": context,
    });
    let file = kcp.state_dir().join(format!("{name}.kubeconfig"));
    let text = serde_json::to_string_pretty(&config)
        .unwrap_or_else(|e| panic!("serializing a kubeconfig: {e}"));
    std::fs::write(&file, text).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
    file
}
