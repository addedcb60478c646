//! `kube::Client`s for kcp workspaces and virtual workspaces, on one connection pool.
//!
//! kcp serves every workspace from the same host under a different path prefix
//! (`/clusters/<path>`, `/services/apiexport/.../clusters/<name>`). Building one `kube::Client`
//! per workspace would open a TLS connection pool per workspace; instead the factory keeps one
//! base client per server (scheme and authority) and hands out thin clients that only rewrite
//! the request path before sending through that shared base.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Once};

use kube::client::Body;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use url::Url;

use crate::name::{ClusterName, ClusterPath};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors building clients.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("reading kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("building a client: {0}")]
    Kube(#[from] kube::Error),
}

/// Installs rustls' ring crypto provider as the process default, once. Every binary and test
/// that talks TLS goes through here, so exactly one provider is ever installed.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Another component may have installed the same provider first; that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Hands out clients for workspace paths, logical clusters and virtual-workspace URLs.
///
/// Like every `kube::Client`, the clients (and the factory's shared base clients) belong to
/// the Tokio runtime they were first used on: make a factory per runtime.
#[derive(Clone)]
pub struct ClientFactory {
    config: Config,
    server: Url,
    bases: Arc<Mutex<HashMap<String, Client>>>,
    requests: Option<(String, RequestCounter)>,
}

/// The labels of [`RequestCounter`]: which kubeconfig the client came from, the verb as RBAC
/// names it, and the resource (with its subresource, e.g. `serviceaccounts/token`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct RequestLabels {
    pub kubeconfig: String,
    pub verb: String,
    pub resource: String,
}

/// Every request a process sends, by kubeconfig, verb and resource: what an operator costs
/// the API server, and the proof that a reconcile of an object that is already right writes
/// nothing.
pub type RequestCounter = prometheus_client::metrics::family::Family<
    RequestLabels,
    prometheus_client::metrics::counter::Counter,
>;

/// Registers the request counter as `platform_mesh_client_requests_total`.
pub fn register_request_counter(
    registry: &mut prometheus_client::registry::Registry,
) -> RequestCounter {
    let counter = RequestCounter::default();
    registry.register(
        "platform_mesh_client_requests",
        "Requests sent to the API server, by kubeconfig, verb and resource",
        counter.clone(),
    );
    counter
}

/// The RBAC verb and the resource of a request: `GET …/secrets/x` is a `get` of `secrets`,
/// `GET …/secrets?watch=true` a `watch`, `POST …/serviceaccounts/sa/token` a `create` of
/// `serviceaccounts/token`.
pub fn classify(method: &http::Method, path: &str, query: Option<&str>) -> (&'static str, String) {
    let rest = path
        .split_once("/apis/")
        .and_then(|(_, rest)| rest.splitn(3, '/').nth(2))
        .or_else(|| {
            path.split_once("/api/")
                .and_then(|(_, rest)| rest.split_once('/').map(|(_, r)| r))
        })
        .unwrap_or("");
    let mut segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    // `namespaces/<ns>/<resource>…`, unless it is the namespace itself.
    if segments.first() == Some(&"namespaces") && segments.len() > 2 {
        segments.drain(..2);
    }
    let resource = match segments.as_slice() {
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
        [resource, ..] => (*resource).to_owned(),
        [] => String::new(),
    };
    let named = segments.len() > 1;
    let watch = query.is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if named => "delete",
        http::Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

impl std::fmt::Debug for ClientFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientFactory")
            .field("server", &self.server.as_str())
            .finish_non_exhaustive()
    }
}

impl ClientFactory {
    /// A factory for the server `config` points at. A `/clusters/...` path in the config's
    /// server URL is dropped: clients name their workspace explicitly.
    pub fn new(config: Config) -> Result<Self, Error> {
        install_crypto_provider();
        let server = server_root(&config.cluster_url.to_string())?;
        Ok(Self {
            config,
            server,
            bases: Arc::default(),
            requests: None,
        })
    }

    /// Counts every request of this factory's clients in `counter`, labelled with
    /// `kubeconfig` (the flag the factory's kubeconfig came from).
    #[must_use]
    pub fn counting_requests(mut self, kubeconfig: &str, counter: RequestCounter) -> Self {
        self.requests = Some((kubeconfig.to_owned(), counter));
        self
    }

    /// A factory from a kubeconfig file and an optional context name.
    pub async fn from_kubeconfig(path: &Path, context: Option<&str>) -> Result<Self, Error> {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
            path: path.display().to_string(),
            source,
        })?;
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..Default::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|source| Error::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?;
        Self::new(config)
    }

    /// The server root, e.g. `https://127.0.0.1:6443/`.
    pub fn server(&self) -> &Url {
        &self.server
    }

    /// A client for a workspace path on the front door: `<server>/clusters/<path>`.
    pub fn for_path(&self, path: &ClusterPath) -> Result<Client, Error> {
        self.for_prefix(&self.server, &path.request_path())
    }

    /// A client for a logical cluster by name: `<server>/clusters/<name>`.
    pub fn for_cluster(&self, name: &ClusterName) -> Result<Client, Error> {
        self.for_path(&name.to_path())
    }

    /// A client for the server root, without a cluster prefix (for `/readyz` and the like).
    pub fn for_server(&self) -> Result<Client, Error> {
        self.for_prefix(&self.server, "")
    }

    /// A client for a logical cluster inside a virtual workspace:
    /// `<virtual_workspace_url>/clusters/<name>`. Virtual workspaces accept names, not paths.
    pub fn for_virtual_cluster(
        &self,
        virtual_workspace_url: &str,
        cluster: &ClusterName,
    ) -> Result<Client, Error> {
        self.for_url(&format!(
            "{}/clusters/{cluster}",
            virtual_workspace_url.trim_end_matches('/')
        ))
    }

    /// A client for the wildcard view of a virtual workspace: `<url>/clusters/*`, which lists
    /// and watches across every logical cluster the virtual workspace serves on that shard.
    pub fn for_virtual_wildcard(&self, virtual_workspace_url: &str) -> Result<Client, Error> {
        self.for_url(&format!(
            "{}/clusters/*",
            virtual_workspace_url.trim_end_matches('/')
        ))
    }

    /// A client whose requests go to `url` followed by the usual Kubernetes API paths.
    pub fn for_url(&self, url: &str) -> Result<Client, Error> {
        let parsed = Url::parse(url).map_err(|e| Error::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let root = server_root(url)?;
        self.for_prefix(&root, parsed.path())
    }

    fn for_prefix(&self, root: &Url, prefix: &str) -> Result<Client, Error> {
        let base = self.base_client(root)?;
        let prefix = prefix.trim_end_matches('/').to_owned();
        let requests = self.requests.clone();
        let service = tower::service_fn(move |mut request: http::Request<Body>| {
            let base = base.clone();
            let prefix = prefix.clone();
            if let Some((kubeconfig, counter)) = &requests {
                let (verb, resource) = classify(
                    request.method(),
                    request.uri().path(),
                    request.uri().query(),
                );
                counter
                    .get_or_create(&RequestLabels {
                        kubeconfig: kubeconfig.clone(),
                        verb: verb.to_owned(),
                        resource,
                    })
                    .inc();
            }
            async move {
                let path_and_query = request
                    .uri()
                    .path_and_query()
                    .map_or("/", |pq| pq.as_str())
                    .to_owned();
                *request.uri_mut() = format!("{prefix}{path_and_query}").parse()?;
                base.send(request).await.map_err(BoxError::from)
            }
        });
        Ok(Client::new(service, self.config.default_namespace.clone()))
    }

    /// The shared base client for one server, created on first use.
    fn base_client(&self, root: &Url) -> Result<Client, Error> {
        let key = root.as_str().to_owned();
        let mut bases = self
            .bases
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(client) = bases.get(&key) {
            return Ok(client.clone());
        }
        let mut config = self.config.clone();
        config.cluster_url = key
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::InvalidUrl {
                url: key.clone(),
                reason: e.to_string(),
            })?;
        let client = Client::try_from(config)?;
        bases.insert(key, client.clone());
        Ok(client)
    }
}

/// `scheme://authority/` of a URL: the key of one connection pool.
fn server_root(url: &str) -> Result<Url, Error> {
    let invalid = |reason: &str| Error::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let mut parsed = Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
        return Err(invalid("expected an http(s) URL with a host"));
    }
    parsed.set_path("/");
    parsed.set_query(None);
    parsed.set_fragment(None);
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_root_drops_paths() {
        let root = server_root("https://127.0.0.1:6443/clusters/root:orgs").unwrap();
        assert_eq!(root.as_str(), "https://127.0.0.1:6443/");
        assert!(matches!(
            server_root("127.0.0.1:6443"),
            Err(Error::InvalidUrl { .. })
        ));
    }

    fn factory() -> ClientFactory {
        let config = Config::new("https://127.0.0.1:6443/clusters/root".parse().unwrap());
        ClientFactory::new(config).unwrap()
    }

    #[tokio::test]
    async fn clients_on_one_server_share_one_base_client() {
        let factory = factory();
        factory.for_path(&"root:orgs".parse().unwrap()).unwrap();
        factory.for_cluster(&"abc".parse().unwrap()).unwrap();
        factory
            .for_virtual_wildcard(
                "https://127.0.0.1:6443/services/apiexport/abc/core.platform-mesh.io",
            )
            .unwrap();
        assert_eq!(factory.bases.lock().unwrap().len(), 1);
        factory
            .for_virtual_wildcard("https://127.0.0.2:6443/services/apiexport/abc/x")
            .unwrap();
        assert_eq!(factory.bases.lock().unwrap().len(), 2);
    }

    #[test]
    fn requests_are_classified_as_rbac_verbs() {
        let cases = [
            (
                "GET",
                "/clusters/root/api/v1/namespaces/ns/secrets/x",
                None,
                ("get", "secrets"),
            ),
            (
                "GET",
                "/api/v1/secrets",
                Some("labelSelector=a"),
                ("list", "secrets"),
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/secrets",
                Some("watch=true&x=1"),
                ("watch", "secrets"),
            ),
            (
                "GET",
                "/api/v1/namespaces/default",
                None,
                ("get", "namespaces"),
            ),
            (
                "PATCH",
                "/clusters/root:a/apis/tenancy.kcp.io/v1alpha1/workspacetypes/org",
                None,
                ("patch", "workspacetypes"),
            ),
            (
                "POST",
                "/api/v1/namespaces/default/serviceaccounts/sa/token",
                None,
                ("create", "serviceaccounts/token"),
            ),
            (
                "PUT",
                "/apis/g/v1/things/a/status",
                None,
                ("update", "things/status"),
            ),
            (
                "DELETE",
                "/apis/g/v1/namespaces/n/things/a",
                None,
                ("delete", "things"),
            ),
            (
                "DELETE",
                "/apis/g/v1/namespaces/n/things",
                None,
                ("deletecollection", "things"),
            ),
        ];
        for (method, path, query, (verb, resource)) in cases {
            let method: http::Method = method.parse().unwrap();
            assert_eq!(
                classify(&method, path, query),
                (verb, resource.to_owned()),
                "{path}"
            );
        }
    }

    #[tokio::test]
    async fn a_counting_factory_counts_each_request_once() {
        let counter = RequestCounter::default();
        let factory = factory().counting_requests("--kubeconfig", counter.clone());
        let client = factory.for_path(&ClusterPath::root()).unwrap();
        // Nothing listens there: the request fails, but it was sent.
        let _ = kube::Api::<k8s_openapi::api::core::v1::Secret>::all(client)
            .get_opt("x")
            .await;
        let labels = RequestLabels {
            kubeconfig: "--kubeconfig".to_owned(),
            verb: "get".to_owned(),
            resource: "secrets".to_owned(),
        };
        assert_eq!(counter.get_or_create(&labels).get(), 1);
    }

    #[test]
    fn bad_virtual_workspace_urls_are_errors() {
        let result = factory().for_virtual_wildcard("not a url");
        assert!(matches!(result, Err(Error::InvalidUrl { .. })));
    }
}
