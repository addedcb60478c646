//! The Helm charts (`charts/`), the Flux manifests (`deploy/flux/`) and the `Containerfile`,
//! checked without a cluster: helm lints and renders every chart over a matrix of values, and
//! every rendered container's arguments go through its binary's own parser, so a flag renamed
//! in a binary fails here and not in a pod.

// A failed unwrap is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use clap::CommandFactory;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, PodSpec, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kit::cli::OperatorArgs;
use kit::net::BindAddress;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The namespace every release is rendered into.
const NAMESPACE: &str = "platform-mesh-system";

/// The charts of the four binaries; each is named after its binary (and package).
const APP_CHARTS: [&str; 4] = [
    "account-operator",
    "security-operator",
    "rebac-authz-webhook",
    "platform-mesh-operator",
];

/// Every chart under `charts/`.
const ALL_CHARTS: [&str; 6] = [
    "account-operator",
    "security-operator",
    "rebac-authz-webhook",
    "platform-mesh-operator",
    "platform-mesh-crds",
    "common",
];

/// The hosting cluster's CRD, as `cargo xtask crds` generates it.
const PLATFORM_MESH_CRD: &str = "platformmeshes.core.platform-mesh.io.yaml";

/// Verbs a leader elector needs on Leases (it creates, reads and replaces one).
const LEASE_VERBS: [&str; 4] = ["get", "create", "update", "watch"];

// ---------------------------------------------------------------------------------------------
// helm

fn helm() -> PathBuf {
    xtask::binary("helm").unwrap_or_else(|e| panic!("{e}"))
}

fn chart_dir(chart: &str) -> PathBuf {
    xtask::repo_root().join("charts").join(chart)
}

/// Runs helm; its stdout, or its stderr as the error.
fn run_helm(args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let output = Command::new(helm()).args(args).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    match output.status.success() {
        true => Ok(text(&output.stdout)),
        false => Err(format!("{}{}", text(&output.stdout), text(&output.stderr))),
    }
}

/// `helm template` of `chart` with `values`, released under the chart's name (as a Flux
/// HelmRelease named after its chart is) in [`NAMESPACE`], CRDs included.
fn template(chart: &str, values: &Value) -> Result<String, String> {
    let file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    std::fs::write(file.path(), serde_json::to_vec(values).unwrap()).unwrap();
    let dir = chart_dir(chart);
    run_helm(&[
        "template".as_ref(),
        chart.as_ref(),
        dir.as_os_str(),
        "--namespace".as_ref(),
        NAMESPACE.as_ref(),
        "--include-crds".as_ref(),
        "--values".as_ref(),
        file.path().as_os_str(),
    ])
}

/// The objects `helm template` renders.
fn render(chart: &str, values: &Value) -> Vec<Value> {
    let text = template(chart, values)
        .unwrap_or_else(|e| panic!("helm template {chart} with values {values}: {e}"));
    yaml_documents(&text)
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap()
        .into_iter()
        .filter(|doc| !doc.is_null())
        .collect()
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The chart's values.yaml with `over` merged as helm merges `--values`.
fn effective_values(chart: &str, over: &Value) -> Value {
    let mut values = read_yaml(&chart_dir(chart).join("values.yaml"));
    platform_mesh_operator::flux::deep_merge(&mut values, over);
    values
}

fn chart_version(chart: &str) -> String {
    let chart_yaml = read_yaml(&chart_dir(chart).join("Chart.yaml"));
    chart_yaml["version"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// the binaries

/// The binary a chart runs, with its own parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binary {
    Account,
    Security,
    Rebac,
    Operator,
}

/// A container's arguments, parsed by its binary.
#[derive(Debug)]
enum Parsed {
    Account(account_operator::config::Config),
    Security(security_operator::config::Config),
    Rebac(rebac_authz_webhook::config::Config),
    Operator(platform_mesh_operator::config::Config),
}

impl Binary {
    fn of_chart(chart: &str) -> Self {
        match chart {
            "account-operator" => Self::Account,
            "security-operator" => Self::Security,
            "rebac-authz-webhook" => Self::Rebac,
            "platform-mesh-operator" => Self::Operator,
            other => panic!("no binary for chart {other}"),
        }
    }

    /// The program name, the package's `[[bin]]`.
    fn name(self) -> &'static str {
        match self {
            Self::Account => account_operator::app::BINARY.name,
            Self::Security => security_operator::app::binary(&[]).name,
            Self::Rebac => rebac_authz_webhook::app::BINARY.name,
            Self::Operator => platform_mesh_operator::app::BINARY.name,
        }
    }

    fn env_prefix(self) -> &'static str {
        match self {
            Self::Account => account_operator::app::BINARY.env_prefix,
            Self::Security => security_operator::app::ENV_PREFIX,
            Self::Rebac => rebac_authz_webhook::app::BINARY.env_prefix,
            Self::Operator => platform_mesh_operator::app::BINARY.env_prefix,
        }
    }

    /// The environment variables the binary reads: its flags' (kit::cli::with_env_prefix).
    fn env_names(self) -> BTreeSet<String> {
        let command = match self {
            Self::Account => account_operator::config::Config::command(),
            Self::Security => security_operator::config::Config::command(),
            Self::Rebac => rebac_authz_webhook::config::Config::command(),
            Self::Operator => platform_mesh_operator::config::Config::command(),
        };
        kit::cli::with_env_prefix(command, self.env_prefix())
            .get_arguments()
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .collect()
    }

    fn parse(self, args: &[String]) -> Result<Parsed, clap::Error> {
        let argv = std::iter::once(self.name().to_owned()).chain(args.iter().cloned());
        let prefix = self.env_prefix();
        Ok(match self {
            Self::Account => Parsed::Account(kit::cli::parse_from(prefix, argv)?),
            Self::Security => Parsed::Security(kit::cli::parse_from(prefix, argv)?),
            Self::Rebac => Parsed::Rebac(kit::cli::parse_from(prefix, argv)?),
            Self::Operator => Parsed::Operator(kit::cli::parse_from(prefix, argv)?),
        })
    }
}

fn port(address: BindAddress) -> u16 {
    match address {
        BindAddress::AnyInterface(port) => port,
        BindAddress::Exact(address) => address.port(),
    }
}

impl Parsed {
    fn operator(&self) -> &OperatorArgs {
        match self {
            Self::Account(c) => &c.operator,
            Self::Security(c) => &c.operator,
            Self::Rebac(c) => &c.operator,
            Self::Operator(c) => &c.operator,
        }
    }

    /// The port of the webhook server, when the process serves one.
    fn webhook_port(&self) -> Option<u16> {
        match self {
            Self::Account(c) => c
                .webhooks
                .webhooks_enabled
                .then_some(c.webhooks.webhooks_port),
            Self::Security(c) => c
                .webhooks
                .webhooks_enabled
                .then_some(c.webhooks.webhooks_port),
            Self::Rebac(c) => Some(port(c.webhook_bind_address)),
            Self::Operator(_) => None,
        }
    }

    /// The kubeconfig of kcp the process reads.
    fn kcp_kubeconfig(&self) -> Option<&Path> {
        match self {
            Self::Operator(c) => Some(&c.kcp_kubeconfig),
            _ => self.operator().kubeconfig.as_deref(),
        }
    }

    /// The webhook's certificate directory, when it serves one.
    fn cert_dir(&self) -> Option<&Path> {
        match self {
            Self::Account(c) if c.webhooks.webhooks_enabled => Some(&c.webhooks.webhooks_cert_dir),
            Self::Security(c) if c.webhooks.webhooks_enabled => Some(&c.webhooks.webhooks_cert_dir),
            Self::Rebac(c) => Some(&c.webhook_cert_dir),
            _ => None,
        }
    }

    /// Every file or directory the process reads at start.
    fn files(&self) -> Vec<&Path> {
        let mut files: Vec<&Path> = self.kcp_kubeconfig().into_iter().collect();
        files.extend(self.cert_dir());
        match self {
            Self::Account(c) => files.extend(c.kcp_ca_file.as_deref()),
            Self::Security(c) => files.extend(c.core_module_path.as_deref()),
            Self::Rebac(_) | Self::Operator(_) => {}
        }
        files
    }
}

// ---------------------------------------------------------------------------------------------
// rendered objects

/// A chart rendered with some values.
struct Release {
    chart: &'static str,
    case: String,
    /// values.yaml with the case's values merged over it.
    values: Value,
    objects: Vec<Value>,
}

impl Release {
    fn new(chart: &'static str, case: &str, over: Value) -> Self {
        Self {
            chart,
            case: case.to_owned(),
            values: effective_values(chart, &over),
            objects: render(chart, &over),
        }
    }

    fn of_kind(&self, kind: &str) -> impl Iterator<Item = &Value> {
        self.objects.iter().filter(move |o| o["kind"] == kind)
    }

    fn typed<T: DeserializeOwned>(&self, kind: &str) -> Vec<T> {
        self.of_kind(kind)
            .map(|o| serde_json::from_value(o.clone()).unwrap())
            .collect()
    }

    fn named(&self, kind: &str, name: &str) -> Option<&Value> {
        self.of_kind(kind).find(|o| o["metadata"]["name"] == name)
    }

    fn context(&self) -> String {
        format!("{} ({})", self.chart, self.case)
    }
}

/// Whether `rendered` is what its typed form says: deserializing into the k8s-openapi type and
/// back loses any field the type does not know, so a misspelt or misplaced field differs.
fn round_trips<T: DeserializeOwned + serde::Serialize>(rendered: &Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(rendered.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).unwrap();
    match difference(rendered, &back, "") {
        None => Ok(()),
        Some(path) => Err(format!("{path} is not what the type reads")),
    }
}

/// The first JSON pointer where `a` and `b` differ; numbers compare by value (the CRD's schema
/// keeps integers as floats).
fn difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (x, y))| difference(x, y, &format!("{path}/{i}"))),
        (Value::Object(x), Value::Object(y)) => {
            x.keys()
                .chain(y.keys())
                .find_map(|key| match (x.get(key), y.get(key)) {
                    (Some(x), Some(y)) => difference(x, y, &format!("{path}/{key}")),
                    _ => Some(format!("{path}/{key}")),
                })
        }
        _ if a == b => None,
        _ => Some(path.to_owned()),
    }
}

/// Checks that every object is of a kind the charts are meant to render and, for the kinds
/// k8s-openapi has, that it is one; others (cert-manager, prometheus-operator) by their
/// apiVersion, kind and name.
fn check_kinds(release: &Release) {
    for object in &release.objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let what = format!("{}: {kind} {name}", release.context());
        assert!(!name.is_empty(), "{what}: no name");
        let typed = match kind {
            "Deployment" => round_trips::<Deployment>(object),
            "Service" => round_trips::<Service>(object),
            "ServiceAccount" => round_trips::<ServiceAccount>(object),
            "Role" => round_trips::<Role>(object),
            "RoleBinding" => round_trips::<RoleBinding>(object),
            "ClusterRole" => round_trips::<ClusterRole>(object),
            "ClusterRoleBinding" => round_trips::<ClusterRoleBinding>(object),
            "PodDisruptionBudget" => round_trips::<PodDisruptionBudget>(object),
            "ConfigMap" => round_trips::<ConfigMap>(object),
            "CustomResourceDefinition" => round_trips::<CustomResourceDefinition>(object),
            "Issuer" | "Certificate" => {
                assert_eq!(object["apiVersion"], "cert-manager.io/v1", "{what}");
                Ok(())
            }
            "ServiceMonitor" => {
                assert_eq!(object["apiVersion"], "monitoring.coreos.com/v1", "{what}");
                Ok(())
            }
            other => panic!("{what}: a kind no chart should render: {other}"),
        };
        typed.unwrap_or_else(|e| panic!("{what}: not a valid {kind}: {e}"));
        let cluster_scoped = matches!(
            kind,
            "ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"
        );
        let namespace = object["metadata"]["namespace"].as_str();
        match cluster_scoped {
            true => assert_eq!(namespace, None, "{what}"),
            false => assert_eq!(namespace, Some(NAMESPACE), "{what}"),
        }
    }
}

fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

fn pod_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    let template = &deployment.spec.as_ref().unwrap().template;
    template.metadata.as_ref().unwrap().labels.clone().unwrap()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The container port a probe or Service names, by number or by name.
fn container_port(container: &Container, port: &IntOrString) -> Option<u16> {
    let number = match port {
        IntOrString::Int(number) => Some(*number),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    };
    number.and_then(|n| u16::try_from(n).ok())
}

fn rule_grants(rule: &PolicyRule, group: &str, resource: &str, verbs: &[&str]) -> bool {
    rule.api_groups.iter().flatten().any(|g| g == group)
        && rule.resources.iter().flatten().any(|r| r == resource)
        && verbs.iter().all(|v| rule.verbs.iter().any(|w| w == v))
}

fn grants(rules: &[PolicyRule], group: &str, resource: &str, verbs: &[&str]) -> bool {
    rules
        .iter()
        .any(|rule| rule_grants(rule, group, resource, verbs))
}

/// The secret name of the volume mounted where `path` is (the path itself or a directory
/// holding it), if it is a Secret.
fn mounted_secret(spec: &PodSpec, container: &Container, path: &Path) -> Option<String> {
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| path.starts_with(&m.mount_path))?;
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)?;
    volume.secret.as_ref()?.secret_name.clone()
}

fn is_mounted(spec: &PodSpec, container: &Container, path: &Path) -> bool {
    container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| path.starts_with(&m.mount_path))
        .any(|m| spec.volumes.iter().flatten().any(|v| v.name == m.name))
}

fn str_at<'a>(values: &'a Value, pointer: &str) -> &'a str {
    values
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {values}"))
}

/// The Secret holding the kubeconfig of kcp, as the chart's values name it.
fn kcp_kubeconfig_secret(binary: Binary, values: &Value) -> &str {
    match binary {
        Binary::Account | Binary::Security => str_at(values, "/kubeconfigSecret"),
        Binary::Rebac => str_at(values, "/kcp/kubeconfig/secret"),
        Binary::Operator => str_at(values, "/kcp/adminKubeconfigSecret"),
    }
}

/// The typed objects of a release the checks look at.
struct Objects {
    deployments: Vec<Deployment>,
    services: Vec<Service>,
    pdbs: Vec<PodDisruptionBudget>,
    service_accounts: Vec<ServiceAccount>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
}

impl Objects {
    fn of(release: &Release) -> Self {
        Self {
            deployments: release.typed("Deployment"),
            services: release.typed("Service"),
            pdbs: release.typed("PodDisruptionBudget"),
            service_accounts: release.typed("ServiceAccount"),
            roles: release.typed("Role"),
            role_bindings: release.typed("RoleBinding"),
        }
    }

    fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
    }
}

/// One Deployment's pod, its container's arguments parsed by the binary.
struct Pod<'a> {
    release: &'a Release,
    binary: Binary,
    context: String,
    replicas: i32,
    spec: &'a PodSpec,
    labels: BTreeMap<String, String>,
    container: &'a Container,
    args: Vec<String>,
    parsed: Parsed,
}

impl<'a> Pod<'a> {
    fn of(release: &'a Release, deployment: &'a Deployment) -> Self {
        let binary = Binary::of_chart(release.chart);
        let context = format!(
            "{}: Deployment {}",
            release.context(),
            deployment.metadata.name.as_deref().unwrap()
        );
        let spec = pod_spec(deployment);
        let [container] = spec.containers.as_slice() else {
            panic!("{context}: one container expected");
        };
        // The image's ENTRYPOINT is the binary: the charts pass arguments only.
        assert!(container.command.is_none(), "{context}: a command");
        let args = container.args.clone().unwrap_or_default();
        let parsed = binary
            .parse(&args)
            .unwrap_or_else(|e| panic!("{context}: {} refuses {args:?}: {e}", binary.name()));
        Self {
            release,
            binary,
            context,
            replicas: deployment.spec.as_ref().unwrap().replicas.unwrap(),
            spec,
            labels: pod_labels(deployment),
            container,
            args,
            parsed,
        }
    }

    fn values(&self) -> &'a Value {
        &self.release.values
    }

    fn env(&self, name: &str) -> Option<&'a EnvVar> {
        self.container.env.iter().flatten().find(|e| e.name == name)
    }

    fn port(&self, port: &IntOrString) -> Option<u16> {
        container_port(self.container, port)
    }
}

/// Everything the matrix asserts of one rendered release of an application chart.
fn check_release(release: &Release) {
    check_kinds(release);
    let objects = Objects::of(release);
    assert!(
        !objects.deployments.is_empty(),
        "{}: no Deployment",
        release.context()
    );
    let metrics_service = objects
        .services
        .iter()
        .find(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.ends_with("-metrics"))
        })
        .unwrap_or_else(|| panic!("{}: no metrics Service", release.context()));
    let mut serves_webhook = false;
    let mut security_roles = Vec::new();
    for deployment in &objects.deployments {
        let pod = Pod::of(release, deployment);
        check_arguments_and_env(&pod);
        check_image(&pod);
        check_probes_and_metrics(&pod, metrics_service);
        check_hardening(&pod);
        check_mounts(&pod);
        check_service_account(&pod, &objects);
        check_disruption(&pod, &objects);
        if let Some(port) = pod.parsed.webhook_port() {
            check_webhook_service(&pod, &objects, port);
            serves_webhook = true;
        }
        match &pod.parsed {
            Parsed::Security(config) => {
                // IdentityProviderConfigurations are the system role's.
                assert!(
                    !config.webhooks.webhooks_enabled
                        || config
                            .roles
                            .contains(&security_operator::config::Role::System),
                    "{}: the webhook served without the system role",
                    pod.context
                );
                security_roles.push(config.roles.clone());
            }
            Parsed::Operator(config) => check_operator_rbac(&pod, config),
            Parsed::Account(_) | Parsed::Rebac(_) => {}
        }
    }
    if Binary::of_chart(release.chart) == Binary::Security {
        check_roles(release, &security_roles);
        let values = &release.values;
        let wanted = values["webhooks"]["enabled"] == true
            && values["keycloak"]["baseUrl"] != ""
            && values["roles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "system");
        assert_eq!(
            serves_webhook,
            wanted,
            "{}: the IdentityProviderConfiguration webhook is served exactly with Keycloak, by \
             the system role",
            release.context()
        );
    }
    check_webhook_pki(release, serves_webhook);
    check_service_monitor(release, metrics_service);
    assert_eq!(
        objects.services.len(),
        1 + usize::from(serves_webhook),
        "{}: a metrics Service, and a webhook Service where a webhook is served",
        release.context()
    );
}

fn check_arguments_and_env(pod: &Pod) {
    let context = &pod.context;
    let env_names = pod.binary.env_names();
    for env in pod.container.env.iter().flatten() {
        assert!(
            env_names.contains(&env.name),
            "{context}: env {} is read by no flag of {}",
            env.name,
            pod.binary.name()
        );
    }
    // Leader election finds the hosting cluster through $KUBECONFIG when it is set (kube's
    // Config::infer): kcp's kubeconfig must come as a flag, or the Lease would land in kcp.
    assert!(pod.env("KUBECONFIG").is_none(), "{context}: $KUBECONFIG");
    let kubeconfig_flag = pod.args.iter().any(|a| a.starts_with("--kubeconfig"));
    match pod.binary {
        Binary::Operator => assert!(!kubeconfig_flag, "{context}: the host is in-cluster"),
        _ => assert!(
            kubeconfig_flag,
            "{context}: kcp's kubeconfig must be a flag"
        ),
    }
    if pod.binary == Binary::Rebac {
        assert!(
            !pod.parsed.operator().leader_elect,
            "{context}: the webhook refuses --leader-elect"
        );
    }
}

fn check_image(pod: &Pod) {
    let image = &pod.values()["image"];
    let tag = match str_at(image, "/tag") {
        "" => chart_version(pod.release.chart),
        tag => tag.to_owned(),
    };
    let mut reference = format!(
        "{}/{}:{tag}",
        str_at(image, "/registry"),
        str_at(image, "/repository")
    );
    if let Some(digest) = image["digest"].as_str().filter(|d| !d.is_empty()) {
        reference = format!("{reference}@{digest}");
    }
    assert_eq!(
        pod.container.image.as_deref(),
        Some(reference.as_str()),
        "{}",
        pod.context
    );
}

fn check_probes_and_metrics(pod: &Pod, metrics_service: &Service) {
    let context = &pod.context;
    let operator = pod.parsed.operator();
    let health_port = port(operator.health_probe_bind_address);
    for (probe, path) in [
        (&pod.container.startup_probe, "/healthz"),
        (&pod.container.liveness_probe, "/healthz"),
        (&pod.container.readiness_probe, "/readyz"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .unwrap_or_else(|| panic!("{context}: an HTTP probe on {path} expected"));
        assert_eq!(get.path.as_deref(), Some(path), "{context}");
        assert_eq!(
            pod.port(&get.port),
            Some(health_port),
            "{context}: probe {path} misses --health-probe-bind-address"
        );
    }
    let service = metrics_service.spec.as_ref().unwrap();
    let [service_port] = service.ports.as_deref().unwrap() else {
        panic!("{context}: one port expected on the metrics Service");
    };
    assert_eq!(
        pod.port(service_port.target_port.as_ref().unwrap()),
        Some(port(operator.metrics_bind_address)),
        "{context}: the metrics Service misses --metrics-bind-address"
    );
    assert!(
        selects(service.selector.as_ref().unwrap(), &pod.labels),
        "{context}: the metrics Service does not select the pods"
    );
}

fn check_hardening(pod: &Pod) {
    let context = &pod.context;
    let pod_security = pod.spec.security_context.as_ref().unwrap();
    let security = pod.container.security_context.as_ref().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true), "{context}");
    assert_eq!(security.run_as_non_root, Some(true), "{context}");
    assert_eq!(security.run_as_user, Some(65532), "{context}");
    assert_eq!(security.run_as_group, Some(65532), "{context}");
    assert_eq!(security.read_only_root_filesystem, Some(true), "{context}");
    assert_eq!(
        security.allow_privilege_escalation,
        Some(false),
        "{context}"
    );
    let drop = security.capabilities.as_ref().and_then(|c| c.drop.clone());
    assert_eq!(drop, Some(vec!["ALL".to_owned()]), "{context}");
    for seccomp in [&pod_security.seccomp_profile, &security.seccomp_profile] {
        let kind = seccomp.as_ref().map(|s| s.type_.as_str());
        assert_eq!(kind, Some("RuntimeDefault"), "{context}");
    }
    let resources = pod.container.resources.as_ref();
    assert!(
        resources.is_some_and(|r| r.requests.is_some() && r.limits.is_some()),
        "{context}: resources"
    );
}

/// What the process reads is mounted; kcp's kubeconfig from the Secret the values name.
fn check_mounts(pod: &Pod) {
    let context = &pod.context;
    for file in pod.parsed.files() {
        assert!(
            is_mounted(pod.spec, pod.container, file),
            "{context}: {} is not mounted",
            file.display()
        );
    }
    let kubeconfig = pod.parsed.kcp_kubeconfig().unwrap();
    assert_eq!(
        mounted_secret(pod.spec, pod.container, kubeconfig).as_deref(),
        Some(kcp_kubeconfig_secret(pod.binary, pod.values())),
        "{context}: kcp's kubeconfig"
    );
}

/// The pod's ServiceAccount exists and, with leader election, may write Leases in the pod's
/// namespace, which POD_NAMESPACE names; no token where the hosting cluster is not called.
fn check_service_account(pod: &Pod, objects: &Objects) {
    let context = &pod.context;
    let account = pod.spec.service_account_name.as_deref().unwrap();
    if pod.values()["serviceAccount"]["create"] == true {
        let rendered = objects
            .service_accounts
            .iter()
            .any(|sa| sa.metadata.name.as_deref() == Some(account));
        assert!(
            rendered,
            "{context}: ServiceAccount {account} is not rendered"
        );
    }
    let leader_elect = pod.parsed.operator().leader_elect;
    assert_eq!(
        pod.spec.automount_service_account_token,
        Some(leader_elect || pod.binary == Binary::Operator),
        "{context}: a ServiceAccount token exactly where the hosting cluster is called"
    );
    if !leader_elect {
        return;
    }
    let namespace_from = pod
        .env("POD_NAMESPACE")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|f| f.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(namespace_from, Some("metadata.namespace"), "{context}");
    let bound = objects.role_bindings.iter().any(|binding| {
        let subject = binding.subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == account
                && s.namespace.as_deref() == Some(NAMESPACE)
        });
        let role = objects.roles.iter().find(|r| {
            binding.role_ref.kind == "Role"
                && r.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())
        });
        let rules = role.and_then(|r| r.rules.as_deref()).unwrap_or_default();
        subject && grants(rules, "coordination.k8s.io", "leases", &LEASE_VERBS)
    });
    assert!(bound, "{context}: no Role on leases for {account}");
}

/// More than one replica: a PodDisruptionBudget and spread pods; one replica: neither.
fn check_disruption(pod: &Pod, objects: &Objects) {
    let context = &pod.context;
    let pdb = objects.pdbs.iter().find(|pdb| {
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        let match_labels = selector.and_then(|s| s.match_labels.clone());
        selects(&match_labels.unwrap_or_default(), &pod.labels)
    });
    let spread = pod.spec.topology_spread_constraints.as_ref();
    let wanted = pod.values()["deployment"]["replicas"].as_i64().unwrap();
    assert_eq!(i64::from(pod.replicas), wanted, "{context}: replicas");
    let several = pod.replicas > 1;
    assert_eq!(pdb.is_some(), several, "{context}: PodDisruptionBudget");
    assert_eq!(
        spread.is_some_and(|s| !s.is_empty()),
        several,
        "{context}: topology spread"
    );
}

/// The webhook's Service reaches the port the server binds, at the port kcp dials; the serving
/// certificate is mounted where the server reads it.
fn check_webhook_service(pod: &Pod, objects: &Objects, webhook_port: u16) {
    let context = &pod.context;
    let values = pod.values();
    let name = str_at(values, "/webhooks/service/name");
    let service = objects
        .service(name)
        .and_then(|s| s.spec.as_ref())
        .unwrap_or_else(|| panic!("{context}: no Service {name}"));
    assert!(
        selects(service.selector.as_ref().unwrap(), &pod.labels),
        "{context}: Service {name} does not select the pods"
    );
    let [service_port] = service.ports.as_deref().unwrap() else {
        panic!("{context}: one port expected on {name}");
    };
    assert_eq!(
        i64::from(service_port.port),
        values["webhooks"]["service"]["port"].as_i64().unwrap(),
        "{context}"
    );
    assert_eq!(
        pod.port(service_port.target_port.as_ref().unwrap()),
        Some(webhook_port),
        "{context}: Service {name} misses the webhook server's port"
    );
    let cert_dir = pod.parsed.cert_dir().unwrap();
    assert_eq!(
        mounted_secret(pod.spec, pod.container, cert_dir).as_deref(),
        Some(str_at(values, "/webhooks/certificate/secretName")),
        "{context}: the serving certificate"
    );
}

/// The roles of the security-operator's Deployments are the values' roles, each once.
fn check_roles(release: &Release, roles: &[Vec<security_operator::config::Role>]) {
    let context = release.context();
    let wanted: Vec<String> = release.values["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let mut run: Vec<String> = roles
        .iter()
        .flatten()
        .map(|r| {
            use clap::ValueEnum;
            r.to_possible_value().unwrap().get_name().to_owned()
        })
        .collect();
    if release.values["splitRoles"] == true {
        assert!(roles.iter().all(|r| r.len() == 1), "{context}: {roles:?}");
    } else {
        assert_eq!(roles.len(), 1, "{context}: one Deployment expected");
    }
    let mut wanted_sorted = wanted.clone();
    wanted_sorted.sort();
    run.sort();
    assert_eq!(run, wanted_sorted, "{context}: the roles run");
}

/// The platform-mesh-operator's ClusterRole: what its sources use in the hosting cluster, the
/// Flux kinds only when it renders HelmReleases.
fn check_operator_rbac(pod: &Pod, config: &platform_mesh_operator::config::Config) {
    let context = &pod.context;
    let account = pod.spec.service_account_name.as_deref().unwrap();
    let [role]: [ClusterRole; 1] = pod.release.typed("ClusterRole").try_into().unwrap();
    let [binding]: [ClusterRoleBinding; 1] =
        pod.release.typed("ClusterRoleBinding").try_into().unwrap();
    assert_eq!(binding.role_ref.name, role.metadata.name.clone().unwrap());
    assert!(
        binding
            .subjects
            .iter()
            .flatten()
            .any(|s| s.name == account && s.namespace.as_deref() == Some(NAMESPACE)),
        "{context}: ClusterRoleBinding"
    );
    let rules = role.rules.unwrap_or_default();
    let read_write = ["get", "list", "watch", "create", "patch", "delete"];
    let group = "core.platform-mesh.io";
    for (group, resource, verbs) in [
        (
            group,
            "platformmeshes",
            &["get", "list", "watch", "patch"][..],
        ),
        (group, "platformmeshes/status", &["patch"][..]),
        (group, "platformmeshes/finalizers", &["update"][..]),
        ("", "secrets", &read_write[..]),
    ] {
        assert!(
            grants(&rules, group, resource, verbs),
            "{context}: {resource} {verbs:?}"
        );
    }
    for (group, resource) in [
        ("helm.toolkit.fluxcd.io", "helmreleases"),
        ("source.toolkit.fluxcd.io", "helmrepositories"),
    ] {
        assert_eq!(
            grants(&rules, group, resource, &read_write),
            config.subroutines_deployment_enabled,
            "{context}: {resource} exactly with --subroutines-deployment-enabled"
        );
    }
}

/// cert-manager's objects exist exactly when a webhook is served and cert-manager is asked to
/// issue its certificate; the serving Certificate writes the Secret the pod mounts.
fn check_webhook_pki(release: &Release, serves_webhook: bool) {
    let context = release.context();
    let cert_manager = &release.values["webhooks"]["certificate"]["certManager"]["enabled"];
    let wanted = serves_webhook && cert_manager == true;
    let certificates: Vec<&Value> = release.of_kind("Certificate").collect();
    let issuers = release.of_kind("Issuer").count();
    if !wanted {
        assert!(
            certificates.is_empty() && issuers == 0,
            "{context}: cert-manager objects"
        );
        return;
    }
    assert_eq!(issuers, 2, "{context}: a self-signed and a CA Issuer");
    let service = str_at(&release.values, "/webhooks/service/name");
    let serving = release
        .named("Certificate", service)
        .unwrap_or_else(|| panic!("{context}: no Certificate {service}"));
    assert_eq!(
        str_at(serving, "/spec/secretName"),
        str_at(&release.values, "/webhooks/certificate/secretName"),
        "{context}"
    );
    let dns_names = &serving["spec"]["dnsNames"];
    for name in [
        format!("{service}.{NAMESPACE}.svc"),
        format!("{service}.{NAMESPACE}.svc.cluster.local"),
    ] {
        assert!(
            dns_names.as_array().unwrap().iter().any(|n| *n == name),
            "{context}: {name} not in {dns_names}"
        );
    }
    let ca_issuer = str_at(serving, "/spec/issuerRef/name");
    let issuer = release
        .named("Issuer", ca_issuer)
        .unwrap_or_else(|| panic!("{context}: no Issuer {ca_issuer}"));
    let ca_secret = str_at(issuer, "/spec/ca/secretName");
    assert!(
        certificates
            .iter()
            .any(|c| c["spec"]["isCA"] == true && c["spec"]["secretName"] == ca_secret),
        "{context}: no CA Certificate writing {ca_secret}"
    );
}

fn check_service_monitor(release: &Release, metrics_service: &Service) {
    let context = release.context();
    let monitors: Vec<&Value> = release.of_kind("ServiceMonitor").collect();
    if release.values["metrics"]["serviceMonitor"]["enabled"] != true {
        assert!(monitors.is_empty(), "{context}: a ServiceMonitor");
        return;
    }
    let [monitor] = monitors.as_slice() else {
        panic!("{context}: one ServiceMonitor expected");
    };
    let selector: BTreeMap<String, String> =
        serde_json::from_value(monitor["spec"]["selector"]["matchLabels"].clone()).unwrap();
    let labels = metrics_service.metadata.labels.clone().unwrap_or_default();
    assert!(
        selects(&selector, &labels),
        "{context}: ServiceMonitor selector"
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["port"], "metrics",
        "{context}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. lint

#[test]
fn every_chart_lints_strictly() {
    for chart in ALL_CHARTS {
        let dir = chart_dir(chart);
        run_helm(&["lint".as_ref(), "--strict".as_ref(), dir.as_os_str()])
            .unwrap_or_else(|e| panic!("helm lint --strict {chart}: {e}"));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. the matrix

/// Values each application chart is rendered with (besides its defaults).
fn matrix() -> Vec<(&'static str, &'static str, Value)> {
    let mut cases = Vec::new();
    for chart in APP_CHARTS {
        let shared = [
            ("defaults", json!({})),
            ("replicas 3", json!({"deployment": {"replicas": 3}})),
            (
                "serviceMonitor",
                json!({"metrics": {"serviceMonitor": {"enabled": true, "interval": "30s", "labels": {"release": "prometheus"}}}}),
            ),
            (
                "other ports",
                json!({"metrics": {"port": 9091}, "health": {"port": 8091}}),
            ),
            (
                "text logs, extras",
                json!({
                    "log": {"level": "debug", "json": false},
                    "extraArgs": ["--debug-label-value=dev"],
                    "extraEnv": [{"name": format!("{}_SHUTDOWN_TIMEOUT", Binary::of_chart(chart).env_prefix()), "value": "30s"}],
                    "image": {"tag": "0.2.0", "digest": format!("sha256:{}", "a".repeat(64))},
                    "podAnnotations": {"example.com/a": "b"},
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "k", "operator": "Exists"}],
                    "imagePullSecrets": [{"name": "ghcr"}],
                    "serviceAccount": {"create": false, "name": "custom"},
                }),
            ),
            (
                "replicas 2, PDB in percent",
                json!({"deployment": {"replicas": 2}, "podDisruptionBudget": {"maxUnavailable": "50%"}}),
            ),
        ];
        cases.extend(
            shared
                .into_iter()
                .map(|(name, values)| (chart, name, values)),
        );
    }
    let specific = [
        (
            "account-operator",
            "webhooks off",
            json!({"webhooks": {"enabled": false}}),
        ),
        (
            "account-operator",
            "own certificate, other webhook port",
            json!({"webhooks": {"port": 9444, "certDir": "/tls", "certificate": {"secretName": "mine", "certManager": {"enabled": false}}}}),
        ),
        (
            "account-operator",
            "no leader election, steps off",
            json!({"operator": {"leaderElect": false}, "subroutines": {"workspaceReady": {"enabled": false}}, "webhooks": {"denyList": [], "creatorOnlyWhenEmpty": true}}),
        ),
        (
            "security-operator",
            "split roles",
            json!({"splitRoles": true}),
        ),
        (
            "security-operator",
            "split roles, 2 replicas, core module",
            json!({"splitRoles": true, "roles": ["fga", "initializer"], "deployment": {"replicas": 2}, "coreModule": "module core\n"}),
        ),
        (
            "security-operator",
            "with Keycloak",
            json!({"keycloak": {"baseUrl": "https://portal.example.com/keycloak", "baseDomain": "portal.example.com"}}),
        ),
        (
            "security-operator",
            "with Keycloak, split roles, own certificate, deny list",
            json!({
                "splitRoles": true,
                "keycloak": {"baseUrl": "https://portal.example.com/keycloak", "realmDenyList": ["admin", "www"]},
                "webhooks": {"port": 9444, "certDir": "/tls", "certificate": {"secretName": "mine", "certManager": {"enabled": false}}},
            }),
        ),
        (
            "security-operator",
            "with Keycloak, webhook off",
            json!({"keycloak": {"baseUrl": "https://portal.example.com/keycloak"}, "webhooks": {"enabled": false}}),
        ),
        (
            "security-operator",
            "with Keycloak, no system role",
            json!({"keycloak": {"baseUrl": "https://portal.example.com/keycloak"}, "roles": ["fga", "initializer"]}),
        ),
        (
            "security-operator",
            "core module, one role",
            json!({"coreModule": "module core\n", "roles": ["system"], "operator": {"leaderElect": false}}),
        ),
        (
            "rebac-authz-webhook",
            "own certificate",
            json!({"webhooks": {"certificate": {"secretName": "mine", "certManager": {"enabled": false}}}}),
        ),
        (
            "rebac-authz-webhook",
            "one replica, tuned",
            json!({"deployment": {"replicas": 1}, "webhooks": {"port": 8443, "cacheMiss": {"ttl": "1m"}, "allowedNonresourcePrefixes": []}, "denyUnpermittedBinds": true}),
        ),
        (
            "platform-mesh-operator",
            "deployment subroutine",
            json!({"subroutines": {"deployment": {"enabled": true}}, "charts": {"version": "0.1.x"}}),
        ),
        (
            "platform-mesh-operator",
            "welcome realm",
            json!({"welcome": {
                "enabled": true,
                "registrationAllowed": true,
                "additionalRedirectUris": ["https://portal.example.com/extra*"],
                "additionalPostLogoutRedirectUris": ["https://portal.example.com/bye*"],
                "domainCaSecret": {"name": "domain-certificate", "key": "tls.ca"},
            }}),
        ),
        (
            "platform-mesh-operator",
            "security-operator webhook registered",
            json!({"securityOperatorWebhook": {"register": true, "url": "https://security.example.com:9443"}}),
        ),
        (
            "platform-mesh-operator",
            "urls, no account webhooks",
            json!({
                "kcp": {"url": "https://kcp.example.com:6443", "adminKubeconfigSecret": "admin"},
                "accountOperatorWebhooks": {"register": false},
                "authorizationWebhook": {"url": "https://authz.example.com/authz"},
                "deleteWorkspacesOnDelete": true,
            }),
        ),
    ];
    cases.extend(specific);
    cases
}

#[test]
fn rendered_objects_are_valid_and_their_arguments_parse() {
    for (chart, case, values) in matrix() {
        check_release(&Release::new(chart, case, values));
    }
}

#[test]
fn the_crds_chart_renders_the_crd_alone() {
    let release = Release::new("platform-mesh-crds", "defaults", json!({}));
    check_kinds(&release);
    let crds: Vec<CustomResourceDefinition> = release.typed("CustomResourceDefinition");
    let names: Vec<_> = crds
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["platformmeshes.core.platform-mesh.io"]);
    assert_eq!(release.objects.len(), 1, "only the CRD");
}

// ---------------------------------------------------------------------------------------------
// 3. the schemas

#[test]
fn wrong_values_fail_with_the_schema_error_naming_them() {
    let mut cases = vec![
        (
            "account-operator",
            json!({"webhooks": {"certificate": {"certManager": {"enable": false}}}}),
            "enable",
        ),
        (
            "account-operator",
            json!({"kubeconfigSecret": 5}),
            "/kubeconfigSecret",
        ),
        (
            "account-operator",
            json!({"webhooks": {"denyList": "admin,root"}}),
            "/webhooks/denyList",
        ),
        ("security-operator", json!({"roles": ["fgaa"]}), "/roles/0"),
        ("security-operator", json!({"roles": []}), "/roles"),
        (
            "security-operator",
            json!({"fga": {"targt": "x:1"}}),
            "targt",
        ),
        (
            "rebac-authz-webhook",
            json!({"kcp": {"kubeconfigSecret": "x"}}),
            "kubeconfigSecret",
        ),
        (
            "rebac-authz-webhook",
            json!({"operator": {"leaderElect": true}}),
            "leaderElect",
        ),
        (
            "rebac-authz-webhook",
            json!({"webhooks": {"cacheMiss": {"ttl": "five minutes"}}}),
            "/webhooks/cacheMiss/ttl",
        ),
        (
            "platform-mesh-operator",
            json!({"subroutines": {"deployment": {"enabled": "yes"}}}),
            "/subroutines/deployment/enabled",
        ),
        (
            "platform-mesh-operator",
            json!({"charts": {"repository": "ghcr.io/x"}}),
            "/charts/repository",
        ),
        (
            "platform-mesh-crds",
            json!({"crds": {"enabled": true}}),
            "crds",
        ),
    ];
    for chart in APP_CHARTS {
        cases.extend([
            (chart, json!({"replicas": 3}), "replicas"),
            (
                chart,
                json!({"deployment": {"replicas": "3"}}),
                "/deployment/replicas",
            ),
            (chart, json!({"log": {"json": "no"}}), "/log/json"),
            (chart, json!({"metrics": {"port": 0}}), "/metrics/port"),
            (chart, json!({"extraArgs": "--x"}), "/extraArgs"),
            (
                chart,
                json!({"image": {"digest": "latest"}}),
                "/image/digest",
            ),
        ]);
    }
    for (chart, values, named) in cases {
        let error = template(chart, &values)
            .err()
            .unwrap_or_else(|| panic!("{chart} accepts {values}"));
        assert!(
            error.contains("values don't meet the specifications of the schema")
                && error.contains(named),
            "{chart} with {values}: the error does not name {named}: {error}"
        );
    }
}

/// Every leaf of a schema (a value that is not an object of fixed keys), as a dotted path.
fn schema_leaves(schema: &Value, path: &str, leaves: &mut Vec<String>) {
    match schema.get("properties").and_then(Value::as_object) {
        Some(properties) if schema["additionalProperties"] == false && path != "resources" => {
            for (key, child) in properties {
                let child_path = match path {
                    "" => key.clone(),
                    _ => format!("{path}.{key}"),
                };
                schema_leaves(child, &child_path, leaves);
            }
        }
        _ => leaves.push(path.to_owned()),
    }
}

fn schema(chart: &str) -> Value {
    let path = chart_dir(chart).join("values.schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_value_is_described_and_documented() {
    for chart in APP_CHARTS {
        let schema = schema(chart);
        let readme = std::fs::read_to_string(chart_dir(chart).join("README.md")).unwrap();
        let mut leaves = Vec::new();
        schema_leaves(&schema, "", &mut leaves);
        for leaf in leaves
            .iter()
            .filter(|l| !matches!(l.as_str(), "global" | "common"))
        {
            let row = format!("| `{leaf}` |");
            assert!(
                readme.lines().any(|line| line.starts_with(&row)),
                "{chart}: README.md has no row for {leaf}"
            );
        }
        // The schema refuses keys it does not list and values.yaml passes it (the matrix renders
        // the defaults), so the table covers every key of values.yaml too.
        assert!(
            readme.contains(&format!("--version {}", chart_version(chart))),
            "{chart}: README.md shows no install of this version"
        );
    }
}

#[test]
fn shared_values_have_one_schema() {
    // The keys every application chart has mean the same in each (the rebac-authz-webhook has
    // no leader election nor reconciles, hence its own `operator`; `image` names the binary).
    let schemas: Vec<(&str, Value)> = APP_CHARTS.iter().map(|c| (*c, schema(c))).collect();
    let (first, reference) = &schemas[0];
    for (key, definition) in reference["properties"].as_object().unwrap() {
        let everywhere = schemas
            .iter()
            .all(|(_, s)| s["properties"].get(key).is_some());
        if !everywhere || matches!(key.as_str(), "operator" | "image" | "kcp" | "webhooks") {
            continue;
        }
        for (chart, schema) in &schemas[1..] {
            assert_eq!(
                &schema["properties"][key], definition,
                "{chart} and {first} describe `{key}` differently"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. the Containerfile

/// One stage of the Containerfile.
#[derive(Debug, Default, Clone)]
struct Stage {
    base: String,
    entrypoint: Option<Vec<String>>,
    user: Option<String>,
    copies: Vec<String>,
}

/// The Containerfile's stages by name; a stage built on another inherits its ENTRYPOINT and USER.
fn containerfile_stages() -> BTreeMap<String, Stage> {
    let text = std::fs::read_to_string(xtask::repo_root().join("Containerfile")).unwrap();
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(continued) => current.push_str(continued),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: BTreeMap<String, Stage> = BTreeMap::new();
    let mut name = String::new();
    for instruction in instructions {
        let (keyword, rest) = instruction.split_once(char::is_whitespace).unwrap();
        let rest = rest.trim();
        match keyword.to_uppercase().as_str() {
            "FROM" => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let base = words[0].to_owned();
                name = match words.as_slice() {
                    [_, as_, stage] if as_.eq_ignore_ascii_case("as") => (*stage).to_owned(),
                    _ => format!("#{}", stages.len()),
                };
                let inherited = stages.get(&base).cloned().unwrap_or_default();
                let stage = Stage {
                    base,
                    copies: Vec::new(),
                    ..inherited
                };
                stages.insert(name.clone(), stage);
            }
            "ENTRYPOINT" => {
                let exec_form = serde_json::from_str(rest)
                    .unwrap_or_else(|e| panic!("ENTRYPOINT {rest}: exec form expected: {e}"));
                stages.get_mut(&name).unwrap().entrypoint = Some(exec_form);
            }
            "USER" => stages.get_mut(&name).unwrap().user = Some(rest.to_owned()),
            "COPY" => stages.get_mut(&name).unwrap().copies.push(rest.to_owned()),
            _ => {}
        }
    }
    stages
}

/// The `[[bin]]` name of the package in `dir`.
fn bin_name(dir: &str) -> String {
    let manifest =
        std::fs::read_to_string(xtask::repo_root().join(dir).join("Cargo.toml")).unwrap();
    let after_bin = manifest.split("[[bin]]").nth(1).unwrap();
    let name_line = after_bin
        .lines()
        .find_map(|l| l.trim().strip_prefix("name"))
        .unwrap();
    name_line
        .trim()
        .trim_start_matches('=')
        .trim()
        .trim_matches('"')
        .to_owned()
}

#[test]
fn every_image_is_a_containerfile_target_running_its_binary() {
    let stages = containerfile_stages();
    let builder = stages
        .iter()
        .find(|(_, s)| s.base.contains("rust:"))
        .map(|(name, _)| name.clone())
        .expect("a Rust builder stage");
    for chart in APP_CHARTS {
        let values = read_yaml(&chart_dir(chart).join("values.yaml"));
        let repository = values["image"]["repository"].as_str().unwrap();
        let target = repository.rsplit('/').next().unwrap();
        let stage = stages
            .get(target)
            .unwrap_or_else(|| panic!("{chart}: no Containerfile target {target}"));
        let binary = bin_name(chart);
        assert_eq!(binary, Binary::of_chart(chart).name(), "{chart}");
        let path = format!("/usr/local/bin/{binary}");
        assert_eq!(
            stage.entrypoint.as_deref(),
            Some(&[path.clone()][..]),
            "{target}"
        );
        assert_eq!(stage.user.as_deref(), Some("65532:65532"), "{target}");
        let copied = stage.copies.iter().any(|copy| {
            let words: Vec<&str> = copy.split_whitespace().collect();
            words.contains(&format!("--from={builder}").as_str())
                && words.last() == Some(&path.as_str())
                && words[words.len() - 2].ends_with(&format!("/{binary}"))
        });
        assert!(
            copied,
            "{target}: does not copy {binary} from {builder} to {path}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Flux

fn flux_dir() -> PathBuf {
    xtask::repo_root().join("deploy").join("flux")
}

/// The objects of deploy/flux, by file name.
fn flux_objects() -> BTreeMap<String, Value> {
    std::fs::read_dir(flux_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, read_yaml(&path))
        })
        .collect()
}

/// The platform-mesh-operator's default chart source (its `--chart-repository` and
/// `--chart-version`).
fn operator_chart_source() -> platform_mesh_operator::flux::ChartSource {
    let Parsed::Operator(config) = Binary::Operator
        .parse(&["operator".to_owned(), "--kcp-kubeconfig=/k".to_owned()])
        .unwrap()
    else {
        unreachable!()
    };
    platform_mesh_operator::flux::ChartSource {
        repository: config.chart_repository,
        version: config.chart_version,
    }
}

/// Checks a HelmRelease's chart reference against charts/ and the HelmRepository of
/// deploy/flux, and renders its values; the chart's name and the rendered objects.
fn check_helm_release(release: &Value, repositories: &BTreeMap<String, Value>) -> Release {
    let name = str_at(release, "/metadata/name");
    assert_eq!(release["apiVersion"], "helm.toolkit.fluxcd.io/v2", "{name}");
    let chart_spec = &release["spec"]["chart"]["spec"];
    let source = &chart_spec["sourceRef"];
    assert_eq!(source["kind"], "HelmRepository", "{name}");
    let repository = str_at(source, "/name");
    assert!(
        repositories.contains_key(repository),
        "{name}: no HelmRepository {repository} in deploy/flux"
    );
    let namespace = release["metadata"]["namespace"].as_str();
    assert!(
        source["namespace"].is_null() || source["namespace"].as_str() == namespace,
        "{name}: the HelmRepository of another namespace"
    );
    let chart = str_at(chart_spec, "/chart");
    let chart = APP_CHARTS
        .iter()
        .chain(&["platform-mesh-crds"])
        .copied()
        .find(|c| *c == chart)
        .unwrap_or_else(|| panic!("{name}: no chart {chart} under charts/"));
    // Exact versions: a range would need a semver matcher, and the releases pin one.
    assert_eq!(
        str_at(chart_spec, "/version"),
        chart_version(chart),
        "{name}: version of {chart}"
    );
    let values = release["spec"].get("values").cloned().unwrap_or(json!({}));
    let rendered = Release::new(chart, &format!("values of HelmRelease {name}"), values);
    if chart != "platform-mesh-crds" {
        check_release(&rendered);
    }
    rendered
}

#[test]
fn flux_releases_reference_the_repository_and_render() {
    let objects = flux_objects();
    let kustomization = &objects["kustomization.yaml"];
    let listed: BTreeSet<&str> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let files: BTreeSet<&str> = objects
        .keys()
        .map(String::as_str)
        .filter(|f| *f != "kustomization.yaml")
        .collect();
    assert_eq!(listed, files, "kustomization.yaml lists every manifest");

    let of_kind = |kind: &str| -> BTreeMap<String, Value> {
        objects
            .values()
            .filter(|o| o["kind"] == kind)
            .map(|o| (str_at(o, "/metadata/name").to_owned(), o.clone()))
            .collect()
    };
    let repositories = of_kind("HelmRepository");
    let releases = of_kind("HelmRelease");
    // The repository the operator's own releases use: the same name and URL.
    let source = operator_chart_source();
    let repository = &repositories[platform_mesh_operator::flux::HELM_REPOSITORY_NAME];
    assert_eq!(repository["apiVersion"], "source.toolkit.fluxcd.io/v1");
    assert_eq!(repository["spec"]["type"], "oci");
    assert_eq!(str_at(repository, "/spec/url"), source.repository);

    let mut charts = BTreeSet::new();
    for release in releases.values() {
        charts.insert(check_helm_release(release, &repositories).chart);
    }
    let all: BTreeSet<&str> = APP_CHARTS
        .iter()
        .chain(&["platform-mesh-crds"])
        .copied()
        .collect();
    assert_eq!(charts, all, "a HelmRelease per chart");

    // The CRDs come first: every other release depends on them, directly or not.
    let depends_on = |name: &str| -> Vec<String> {
        releases[name]["spec"]["dependsOn"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| str_at(d, "/name").to_owned())
            .collect()
    };
    for name in releases.keys() {
        let mut seen = BTreeSet::new();
        let mut todo = depends_on(name);
        while let Some(next) = todo.pop() {
            assert!(
                releases.contains_key(&next),
                "{name} depends on unknown {next}"
            );
            if seen.insert(next.clone()) {
                todo.extend(depends_on(&next));
            }
        }
        assert!(!seen.contains(name), "{name} depends on itself");
        if name != "platform-mesh-crds" {
            assert!(
                seen.contains("platform-mesh-crds"),
                "{name} does not come after the CRDs"
            );
        }
    }
}

#[test]
fn the_operators_own_releases_render() {
    use platform_mesh_operator::flux;
    let defaults = platform_mesh_operator::controller::deployment::default_values();
    let components = flux::components(None, &defaults).unwrap();
    let source = operator_chart_source();
    let releases = flux::releases(&components, NAMESPACE, &source, &BTreeMap::new());
    assert_eq!(releases.len(), flux::COMPONENTS.len());
    let flux_repositories = BTreeMap::from([(flux::HELM_REPOSITORY_NAME.to_owned(), json!({}))]);
    for release in releases {
        let release = serde_json::to_value(&release).unwrap();
        // The values wire the chart to the kubeconfig Secret the operator writes for it.
        let rendered = check_helm_release(&release, &flux_repositories);
        let binary = Binary::of_chart(rendered.chart);
        assert_eq!(
            kcp_kubeconfig_secret(binary, &rendered.values),
            format!("{}-kubeconfig", rendered.chart),
            "{}",
            rendered.context()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 6. the CRD and the versions

#[test]
fn the_crds_chart_holds_the_generated_crd() {
    let root = xtask::repo_root();
    let generated = root.join("crds/generated/crds").join(PLATFORM_MESH_CRD);
    let in_chart = chart_dir("platform-mesh-crds").join("crds");
    let files: Vec<String> = std::fs::read_dir(&in_chart)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, [PLATFORM_MESH_CRD], "only the hosting cluster's CRD");
    assert_eq!(
        std::fs::read(in_chart.join(PLATFORM_MESH_CRD)).unwrap(),
        std::fs::read(generated).unwrap(),
        "charts/platform-mesh-crds/crds/{PLATFORM_MESH_CRD} differs from `cargo xtask crds`'s: \
         make it a symbolic link to ../../../crds/generated/crds/{PLATFORM_MESH_CRD}"
    );
}

#[test]
fn packages_carry_the_linked_files() {
    // `helm package` follows the symbolic links (charts/common, the CRD), so what is published
    // renders on its own.
    let out = tempfile::tempdir().unwrap();
    for chart in APP_CHARTS.iter().chain(&["platform-mesh-crds"]) {
        let dir = chart_dir(chart);
        run_helm(&[
            "package".as_ref(),
            dir.as_os_str(),
            "--destination".as_ref(),
            out.path().as_os_str(),
        ])
        .unwrap_or_else(|e| panic!("helm package {chart}: {e}"));
        let package = out
            .path()
            .join(format!("{chart}-{}.tgz", chart_version(chart)));
        run_helm(&["template".as_ref(), chart.as_ref(), package.as_os_str()])
            .unwrap_or_else(|e| panic!("helm template of the package of {chart}: {e}"));
        if *chart == "platform-mesh-crds" {
            let crds = run_helm(&["show".as_ref(), "crds".as_ref(), package.as_os_str()]).unwrap();
            let generated = std::fs::read_to_string(
                xtask::repo_root()
                    .join("crds/generated/crds")
                    .join(PLATFORM_MESH_CRD),
            )
            .unwrap();
            // helm ends what it shows with one more newline.
            assert_eq!(crds.trim_end(), generated.trim_end(), "the packaged CRD");
        }
    }
}

#[test]
fn charts_are_versioned_as_the_workspace() {
    let version = env!("CARGO_PKG_VERSION");
    for chart in ALL_CHARTS {
        let chart_yaml = read_yaml(&chart_dir(chart).join("Chart.yaml"));
        assert_eq!(chart_yaml["version"], version, "{chart}");
        assert_eq!(chart_yaml["appVersion"], version, "{chart}");
        for dependency in chart_yaml["dependencies"].as_array().into_iter().flatten() {
            let name = str_at(dependency, "/name");
            assert_eq!(
                dependency["version"],
                chart_version(name),
                "{chart} → {name}"
            );
            assert_eq!(dependency["repository"], format!("file://../{name}"));
            // Linked, so that a checkout lints and renders without `helm dependency build`.
            let link = chart_dir(chart).join("charts").join(name);
            assert_eq!(
                std::fs::read_link(&link).unwrap(),
                Path::new("../..").join(name),
                "{}",
                link.display()
            );
        }
    }
}

/// Upstream's charts run `<binary> <subcommand> [flags]` with golang-commons' shared flags
/// (`--region`, `--image-tag`, `--enable-http2=false` …); users moving from them keep that
/// invocation. The arguments below are upstream's, as its charts render them.
#[test]
fn upstreams_invocations_parse_with_our_command_lines() {
    let common = [
        "--leader-elect",
        "--metrics-bind-address=:9090",
        "--health-probe-bind-address=:8090",
        "--log-level=warn",
        "--region=local",
        "--environment=dev",
        "--image-tag=v0.15.5-rc1",
        "--image-name=account-operator",
        "--shutdown-timeout=1m",
        "--max-concurrent-reconciles=10",
        "--enable-http2=false",
        "--tracing-enabled=false",
    ];
    let invocations: [(Binary, &[&str]); 4] = [
        (
            Binary::Account,
            &[
                "operator",
                "--subroutines-workspace-type-enabled=true",
                "--subroutines-workspace-enabled=true",
                "--subroutines-workspace-ready-enabled=true",
                "--subroutines-account-info-enabled=true",
                "--controllers-account-info-enabled=true",
                "--kcp-api-export-endpoint-slice-name=core.platform-mesh.io",
                "--webhooks-enabled",
                "--webhooks-cert-dir=/certs",
                "--webhooks-deny-list=admin,root,system,www",
                "--webhooks-additional-account-types=account",
            ],
        ),
        (
            Binary::Security,
            &[
                "initializer",
                "--kcp-kubeconfig=/api-kubeconfig/kubeconfig",
                "--fga-target=openfga.platform-mesh-system.svc.cluster.local:8081",
                "--core-module-path=/data/coreModule.fga",
                "--base-domain=portal.dev.local:8443",
                "--initializer-idp-enabled=false",
                "--initializer-invite-enabled=false",
            ],
        ),
        (
            Binary::Rebac,
            &[
                "serve",
                "--openfga-addr=openfga.platform-mesh-system:8081",
                "--webhook-cache-miss-max-retries=1",
            ],
        ),
        (
            Binary::Operator,
            &["operator", "--kcp-kubeconfig=/operator/kcp/kubeconfig"],
        ),
    ];
    for (binary, own) in invocations {
        // Every replica of the webhook answers, so upstream's chart elects no leader for it
        // (ours refuses `--leader-elect` at start).
        let shared = common
            .iter()
            .filter(|flag| binary != Binary::Rebac || **flag != "--leader-elect");
        let args: Vec<String> = own.iter().chain(shared).map(|a| (*a).to_owned()).collect();
        let parsed = binary
            .parse(&args)
            .unwrap_or_else(|e| panic!("{}: {args:?}: {e}", binary.name()));
        assert_eq!(parsed.operator().log_level, "warn", "{}", binary.name());
        assert!(!parsed.operator().upstream.enable_http2);
        if let Parsed::Security(config) = parsed {
            let config = config.with_kcp_kubeconfig();
            assert_eq!(
                config.operator.kubeconfig.as_deref(),
                Some(Path::new("/api-kubeconfig/kubeconfig"))
            );
        }
    }
}
