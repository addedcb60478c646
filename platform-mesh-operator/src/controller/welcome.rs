//! `WelcomeSubroutine`: the welcome realm ([`crate::welcome`]), with
//! `--subroutines-welcome-enabled`. Last in the chain: the security-operator makes the realm,
//! and it runs on the kubeconfig the steps before write (and, with the deployment step, is
//! deployed by it). Until the realm's clients are registered this step waits and says so; then
//! `orgs-authentication` trusts their ids and the `orgs` WorkspaceType points at it.

use std::time::Duration;

use async_trait::async_trait;
use crds::PlatformMesh;
use crds::identity_provider::IdentityProviderConfiguration;
use kcp::ClusterPath;
use kcp::types::tenancy::{WorkspaceAuthenticationConfiguration, WorkspaceType};
use kube::api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, ResourceExt};
use lifecycle::{Outcome, Subroutine, SubroutineError, Wait};
use serde_json::json;

use super::Ctx;
use crate::apply::{ensure, ensure_value};
use crate::bootstrap::{Desired, ORGS_WORKSPACE, Readiness, system_path};
use crate::welcome::{
    ORGS_AUTHENTICATION, WELCOME, authentication, identity_provider, orgs_type_authentication,
    portal_domain,
};

/// The finalizer; without `--delete-workspaces-on-delete` its cleanup does nothing (the realm
/// outlives the PlatformMesh, as the kcp tree does).
pub const WELCOME_FINALIZER: &str = "core.platform-mesh.io/welcome";

/// How soon the realm is looked at again while the security-operator makes it: kcp is not
/// watched, and Keycloak takes seconds.
const REALM_POLL: Duration = Duration::from_secs(2);

/// See the module documentation.
#[derive(Debug)]
pub struct Welcome {
    /// `--subroutines-welcome-enabled`.
    pub enabled: bool,
    /// `--delete-workspaces-on-delete`.
    pub delete_workspaces: bool,
}

/// The field manager of the `orgs` WorkspaceType's authentication configurations, beside the
/// tree's own.
fn type_manager(ctx: &Ctx) -> String {
    format!("{}-welcome", ctx.settings.field_manager)
}

#[async_trait]
impl Subroutine<PlatformMesh, Ctx> for Welcome {
    fn name(&self) -> &str {
        "WelcomeSubroutine"
    }

    fn finalizers(&self, _: &PlatformMesh) -> Vec<String> {
        // Held whatever the flags say, as the tree's: a finalizer no subroutine claims would
        // never be removed.
        vec![WELCOME_FINALIZER.to_owned()]
    }

    async fn process(&self, pm: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        if !self.enabled {
            return Ok(Outcome::skip(
                "the welcome realm is off (--subroutines-welcome-enabled=false)",
            ));
        }
        let settings = &ctx.settings;
        let domain = portal_domain(pm.spec.exposure.as_ref())
            .map_err(|e| SubroutineError::permanent("InvalidSpec", e))?;
        let ca = match &settings.welcome.domain_ca_secret {
            Some((name, key)) => Some(
                ctx.secret_text(&pm.namespace().unwrap_or_default(), name, key)
                    .await?,
            ),
            None => None,
        };

        let system = system_path();
        let realm = desired(&system, &identity_provider(&domain, &settings.welcome))?;
        let live = match ensure(ctx.kcp(&system)?, &realm, &settings.field_manager).await {
            Ok(ensured) => ensured.live,
            // Registered before the security-operator runs, its webhook refuses every
            // configuration until it answers: that is a wait for it, not a failure.
            Err(SubroutineError::Transient { message, .. })
                if message.contains("failed calling webhook") =>
            {
                return Err(Wait {
                    message: format!(
                        "waiting for the security-operator's IdentityProviderConfiguration \
                         webhook to answer ({message})"
                    ),
                    requeue_after: Some(REALM_POLL),
                }
                .into());
            }
            Err(e) => return Err(e),
        };
        let idp: IdentityProviderConfiguration = serde_json::from_value(live).map_err(|e| {
            SubroutineError::transient(format!("decoding {}: {e}", realm.describe()))
        })?;
        let client_ids: Vec<String> = idp
            .client_ids()
            .map_err(|why| Wait {
                message: format!(
                    "{why} (the security-operator, with Keycloak, makes the welcome realm)"
                ),
                requeue_after: Some(REALM_POLL),
            })?
            .into_values()
            .collect();

        let root = ClusterPath::root();
        let config = authentication(&domain, &client_ids, ca.as_deref());
        ensure(
            ctx.kcp(&root)?,
            &desired(&root, &config)?,
            &settings.field_manager,
        )
        .await?;
        let types = Api::<DynamicObject>::all_with(
            ctx.kcp(&root)?,
            &ApiResource::erase::<WorkspaceType>(&()),
        );
        ensure_value(
            &types,
            &orgs_type_authentication(),
            &format!("the authentication of WorkspaceType root:{ORGS_WORKSPACE}"),
            &type_manager(ctx),
        )
        .await?;
        Ok(Outcome::OkRequeue(settings.drift_check_interval))
    }

    async fn finalize(&self, _: &PlatformMesh, ctx: &Ctx) -> Result<Outcome, SubroutineError> {
        if !self.delete_workspaces {
            return Ok(Outcome::Ok);
        }
        let root = ClusterPath::root();
        // The type's field goes with the manager that applied it: an apply without it.
        let types = Api::<DynamicObject>::all_with(
            ctx.kcp(&root)?,
            &ApiResource::erase::<WorkspaceType>(&()),
        );
        let bare = json!({
            "apiVersion": "tenancy.kcp.io/v1alpha1",
            "kind": "WorkspaceType",
            "metadata": {"name": ORGS_WORKSPACE},
        });
        match types
            .patch(
                ORGS_WORKSPACE,
                &PatchParams::apply(&type_manager(ctx)).force(),
                &Patch::Apply(&bare),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(SubroutineError::kube(
                    format!("unpointing WorkspaceType root:{ORGS_WORKSPACE}"),
                    e,
                ));
            }
        }
        let configs: Api<WorkspaceAuthenticationConfiguration> = Api::all(ctx.kcp(&root)?);
        gone(
            &configs,
            ORGS_AUTHENTICATION,
            "WorkspaceAuthenticationConfiguration root",
        )
        .await?;
        // The security-operator deletes the realm before it lets the configuration go.
        let idps: Api<IdentityProviderConfiguration> = Api::all(ctx.kcp(&system_path())?);
        if !gone(
            &idps,
            WELCOME,
            "IdentityProviderConfiguration root:platform-mesh-system",
        )
        .await?
        {
            return Err(Wait {
                message: format!(
                    "waiting for IdentityProviderConfiguration {WELCOME} to delete its realm"
                ),
                requeue_after: Some(REALM_POLL),
            }
            .into());
        }
        Ok(Outcome::Ok)
    }
}

/// `object` in `path`, as the kcp tree's objects are applied.
fn desired<K>(path: &ClusterPath, object: &K) -> Result<Desired, SubroutineError>
where
    K: kube::Resource<DynamicType = ()> + serde::Serialize,
{
    Desired::new(path, object, Readiness::Exists)
        .map_err(|e| SubroutineError::transient(e.to_string()))
}

/// Deletes `name` unless it is gone (or its kind is not served); whether it is gone.
async fn gone<K>(api: &Api<K>, name: &str, what: &str) -> Result<bool, SubroutineError>
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    match api.get_opt(name).await {
        Ok(None) => return Ok(true),
        Ok(Some(object)) if object.meta().deletion_timestamp.is_some() => return Ok(false),
        Ok(Some(_)) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(true),
        Err(e) => return Err(SubroutineError::kube(format!("reading {what}/{name}"), e)),
    }
    match api.delete(name, &DeleteParams::default()).await {
        Ok(either) => Ok(either.is_right()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(true),
        Err(e) => Err(SubroutineError::kube(format!("deleting {what}/{name}"), e)),
    }
}
