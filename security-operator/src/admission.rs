//! The IdentityProviderConfiguration validating webhook (`--webhooks-enabled`), at upstream's
//! path. A CREATE is refused when its name can never be an organisation's realm (empty,
//! `master`, on `--idp-realm-deny-list`) or when Keycloak already has a realm of that name,
//! which the configuration would take over and, once deleted, delete. UPDATE and DELETE pass,
//! so that the operator's own patches and its finalizer are never blocked.

use std::sync::Arc;

use axum::Router;
use crds::identity_provider::webhook::VALIDATE_PATH;
use kit::admission::{WebhookError, WebhookServer, forbidden, review_async};
use kit::net::BindAddress;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use crate::controllers::{KeycloakSettings, refused_realm};

/// The answer to one review. A Keycloak that cannot say whether the realm exists gets a
/// refusal naming why: letting the request through could hand an existing realm over.
pub async fn validate(
    request: AdmissionRequest<DynamicObject>,
    keycloak: &KeycloakSettings,
) -> AdmissionResponse {
    if request.operation != Operation::Create {
        return AdmissionResponse::from(&request);
    }
    let name = request.name.trim().to_owned();
    if let Some(why) = refused_realm(&name, &keycloak.realm_deny_list) {
        return refuse(&request, why);
    }
    match keycloak.api.realm_exists(&name).await {
        Ok(false) => AdmissionResponse::from(&request),
        Ok(true) => refuse(
            &request,
            format!(
                "Keycloak already has a realm {name}: an IdentityProviderConfiguration would take \
                 it over, and delete it with itself"
            ),
        ),
        Err(e) => refuse(
            &request,
            format!("cannot tell whether Keycloak has a realm {name}: {e}"),
        ),
    }
}

fn refuse(request: &AdmissionRequest<DynamicObject>, why: String) -> AdmissionResponse {
    tracing::info!(uid = %request.uid, name = request.name, reason = why, "refusing an IdentityProviderConfiguration");
    forbidden(request, why)
}

/// The webhook's route.
pub fn router(keycloak: Arc<KeycloakSettings>) -> Router {
    Router::new().route(
        VALIDATE_PATH,
        review_async(move |request| {
            let keycloak = keycloak.clone();
            async move { validate(request, &keycloak).await }
        }),
    )
}

/// Serves the webhook on `port` with the certificate in `cert_dir` until `stop`.
pub async fn serve(
    port: u16,
    cert_dir: std::path::PathBuf,
    keycloak: Arc<KeycloakSettings>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), WebhookError> {
    let server =
        WebhookServer::bind(BindAddress::AnyInterface(port), &cert_dir, router(keycloak)).await?;
    server.run(stop).await
}
