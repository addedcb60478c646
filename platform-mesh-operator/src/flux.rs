//! The Flux objects that run the suite's components by GitOps, pure.
//!
//! Behind a flag, the operator renders one Flux `HelmRelease` (`helm.toolkit.fluxcd.io/v2`) per
//! enabled component, plus the one OCI `HelmRepository` (`source.toolkit.fluxcd.io/v1`) the
//! charts come from, all in the `PlatformMesh`'s namespace. As upstream, a release is named
//! after its component, carries the label [`OPERATOR_CREATED_LABEL`]` = "true"`, reconciles every
//! minute, retries installs forever and upgrades three times, and its `values` are the
//! component's default values with `PlatformMesh.spec.values` deep-merged over them.
//!
//! [`components`] reads and checks `spec.values`; [`releases`] (or [`helm_release`] one by one)
//! and [`helm_repository`] build the objects; [`helm_release_resource`] and
//! [`helm_repository_resource`] give the [`ApiResource`]s to build `Api<DynamicObject>` with.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Map, Value, json};

/// The suite's components this operator can deploy: the charts of this project, in the order
/// [`components`] reports them.
pub const COMPONENTS: &[&str] = &[
    "account-operator",
    "security-operator",
    "rebac-authz-webhook",
];

/// The label on every object the operator creates, as upstream.
pub const OPERATOR_CREATED_LABEL: &str = "core.platform-mesh.io/operator-created";

/// The name of the `HelmRepository` every `HelmRelease` takes its chart from.
pub const HELM_REPOSITORY_NAME: &str = "platform-mesh-rs";

/// How often a `HelmRelease` is reconciled.
const RELEASE_INTERVAL: &str = "1m";

/// How often the `HelmRepository` is refreshed.
const REPOSITORY_INTERVAL: &str = "10m";

/// Where `spec.values` sits in the `PlatformMesh`, for error messages.
const VALUES_PATH: &str = "spec.values";

/// The keys a component entry may hold.
const ENTRY_KEYS: &str = "`enabled` and `values`";

/// Where the charts come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChartSource {
    /// An OCI repository URL, e.g. `oci://ghcr.io/platform-mesh-rs/charts`.
    pub repository: String,
    /// The chart version (a semver version or range, as Flux takes it).
    pub version: String,
}

/// One component of the suite, as `spec.values` asks for it.
#[derive(Clone, Debug, PartialEq)]
pub struct Component {
    /// The component's name, one of [`COMPONENTS`]; also its chart's and its release's name.
    pub name: String,
    /// Whether it runs; a component is enabled unless its entry says `enabled: false`.
    pub enabled: bool,
    /// Its Helm values: the defaults with the entry's `values` deep-merged over them.
    pub values: Map<String, Value>,
}

/// Why `spec.values` cannot be read; every message names the JSON path at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValuesError {
    /// Something that must be an object (`spec.values`, `services`, a component entry, its
    /// `values`) is not.
    #[error("{path} must be an object, got {found}")]
    NotAnObject {
        /// The JSON path, e.g. `spec.values.services.account-operator.values`.
        path: String,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// An entry names no component of [`COMPONENTS`].
    #[error("{path}: unknown component `{name}`; known components: {}", .known.join(", "))]
    UnknownComponent {
        /// The JSON path of the entry, e.g. `spec.values.services.foo`.
        path: String,
        /// The name given.
        name: String,
        /// The known component names, [`COMPONENTS`].
        known: Vec<String>,
    },
    /// A component's `enabled` is not a boolean.
    #[error("{path} must be a boolean, got {found}")]
    NotABoolean {
        /// The JSON path, e.g. `spec.values.services.account-operator.enabled`.
        path: String,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A key that is not allowed where it stands: in a component entry anything but `enabled`
    /// and `values`; next to `services`, anything at all.
    #[error("{path}: unknown key; allowed here: {allowed}")]
    UnknownKey {
        /// The JSON path of the key, e.g. `spec.values.services.account-operator.valuez`.
        path: String,
        /// The keys allowed there.
        allowed: &'static str,
    },
    /// The operator's own default values for a component are not an object.
    #[error("the default values of component `{name}` must be an object, got {found}")]
    DefaultsNotAnObject {
        /// The component.
        name: String,
        /// The JSON type found instead.
        found: &'static str,
    },
}

/// Reads `PlatformMesh.spec.values` into every component of [`COMPONENTS`], in that order.
///
/// `values` takes either shape upstream takes: `{"services": {"<component>": entry}}`, or the
/// flat `{"<component>": entry}` (no `services` key), where an entry is
/// `{"enabled": bool?, "values": {...}?}`. With `services`, no other top-level key is allowed.
/// `defaults` holds per-component default values (keyed by component name, each an object;
/// names of no component are ignored); an entry's `values` are [`deep_merge`]d over them.
/// `None`, `null` and `{}` give every component, enabled, with its defaults.
pub fn components(
    values: Option<&Value>,
    defaults: &Map<String, Value>,
) -> Result<Vec<Component>, ValuesError> {
    let (entries, entries_path) = match values {
        None | Some(Value::Null) => (None, String::new()),
        Some(Value::Object(top)) => match top.get("services") {
            Some(services) => {
                if let Some(key) = top.keys().find(|key| *key != "services") {
                    return Err(ValuesError::UnknownKey {
                        path: format!("{VALUES_PATH}.{key}"),
                        allowed: "`services` (or, without `services`, component names)",
                    });
                }
                let path = format!("{VALUES_PATH}.services");
                match services {
                    Value::Object(services) => (Some(services), path),
                    other => return Err(not_an_object(path, other)),
                }
            }
            None => (Some(top), VALUES_PATH.to_string()),
        },
        Some(other) => return Err(not_an_object(VALUES_PATH.to_string(), other)),
    };

    let mut requested = BTreeMap::new();
    for (name, entry) in entries.into_iter().flatten() {
        let path = format!("{entries_path}.{name}");
        if !COMPONENTS.contains(&name.as_str()) {
            return Err(ValuesError::UnknownComponent {
                path,
                name: name.clone(),
                known: COMPONENTS
                    .iter()
                    .map(|known| (*known).to_string())
                    .collect(),
            });
        }
        requested.insert(name.as_str(), parse_entry(&path, entry)?);
    }

    COMPONENTS
        .iter()
        .map(|name| {
            let mut values = match defaults.get(*name) {
                None => Map::new(),
                Some(Value::Object(defaults)) => defaults.clone(),
                Some(other) => {
                    return Err(ValuesError::DefaultsNotAnObject {
                        name: (*name).to_string(),
                        found: json_type(other),
                    });
                }
            };
            let Entry {
                enabled,
                values: over,
            } = requested.remove(*name).unwrap_or(Entry {
                enabled: true,
                values: None,
            });
            if let Some(over) = over {
                merge_maps(&mut values, over);
            }
            Ok(Component {
                name: (*name).to_string(),
                enabled,
                values,
            })
        })
        .collect()
}

/// One checked component entry of `spec.values`.
struct Entry<'a> {
    enabled: bool,
    values: Option<&'a Map<String, Value>>,
}

/// Checks one component entry at `path`: its `enabled` (default `true`) and its `values`.
fn parse_entry<'a>(path: &str, entry: &'a Value) -> Result<Entry<'a>, ValuesError> {
    let Value::Object(entry) = entry else {
        return Err(not_an_object(path.to_string(), entry));
    };
    if let Some(key) = entry
        .keys()
        .find(|key| *key != "enabled" && *key != "values")
    {
        return Err(ValuesError::UnknownKey {
            path: format!("{path}.{key}"),
            allowed: ENTRY_KEYS,
        });
    }
    let enabled = match entry.get("enabled") {
        None => true,
        Some(Value::Bool(enabled)) => *enabled,
        Some(other) => {
            return Err(ValuesError::NotABoolean {
                path: format!("{path}.enabled"),
                found: json_type(other),
            });
        }
    };
    let values = match entry.get("values") {
        None => None,
        Some(Value::Object(values)) => Some(values),
        Some(other) => return Err(not_an_object(format!("{path}.values"), other)),
    };
    Ok(Entry { enabled, values })
}

fn not_an_object(path: String, found: &Value) -> ValuesError {
    ValuesError::NotAnObject {
        path,
        found: json_type(found),
    }
}

/// The JSON type of a value, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Merges `over` into `base`, as Helm merges values: where both are objects they merge key by
/// key, recursively; anything else in `over` (scalars, arrays, `null`) replaces what `base` has.
pub fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => merge_maps(base, over),
        (base, over) => *base = over.clone(),
    }
}

fn merge_maps(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (key, value) in over {
        match base.get_mut(key) {
            Some(existing) => deep_merge(existing, value),
            None => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// The `helmreleases.helm.toolkit.fluxcd.io/v2` resource.
pub fn helm_release_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("helm.toolkit.fluxcd.io", "v2", "HelmRelease"),
        "helmreleases",
    )
}

/// The `helmrepositories.source.toolkit.fluxcd.io/v1` resource.
pub fn helm_repository_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("source.toolkit.fluxcd.io", "v1", "HelmRepository"),
        "helmrepositories",
    )
}

/// `labels` plus [`OPERATOR_CREATED_LABEL`]` = "true"` (which wins over a caller's value).
fn operator_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = labels.clone();
    labels.insert(OPERATOR_CREATED_LABEL.to_string(), "true".to_string());
    labels
}

/// The `HelmRelease` of `component`, named after it, in `namespace`, its chart taken from the
/// [`helm_repository`] at `source.version`. Renders disabled components too; see [`releases`].
pub fn helm_release(
    component: &Component,
    namespace: &str,
    source: &ChartSource,
    labels: &BTreeMap<String, String>,
) -> DynamicObject {
    let mut release = DynamicObject::new(&component.name, &helm_release_resource())
        .within(namespace)
        .data(json!({
            "spec": {
                "interval": RELEASE_INTERVAL,
                "chart": {
                    "spec": {
                        "chart": component.name,
                        "version": source.version,
                        "sourceRef": {
                            "kind": "HelmRepository",
                            "name": HELM_REPOSITORY_NAME,
                        },
                    },
                },
                "install": { "remediation": { "retries": -1 } },
                "upgrade": { "remediation": { "retries": 3 } },
                "values": component.values,
            },
        }));
    release.metadata.labels = Some(operator_labels(labels));
    release
}

/// The OCI `HelmRepository` [`HELM_REPOSITORY_NAME`] in `namespace` the releases take their
/// charts from.
pub fn helm_repository(
    namespace: &str,
    source: &ChartSource,
    labels: &BTreeMap<String, String>,
) -> DynamicObject {
    let mut repository = DynamicObject::new(HELM_REPOSITORY_NAME, &helm_repository_resource())
        .within(namespace)
        .data(json!({
            "spec": {
                "type": "oci",
                "url": source.repository,
                "interval": REPOSITORY_INTERVAL,
            },
        }));
    repository.metadata.labels = Some(operator_labels(labels));
    repository
}

/// The [`helm_release`]s of the enabled `components`, in their order.
pub fn releases(
    components: &[Component],
    namespace: &str,
    source: &ChartSource,
    labels: &BTreeMap<String, String>,
) -> Vec<DynamicObject> {
    components
        .iter()
        .filter(|component| component.enabled)
        .map(|component| helm_release(component, namespace, source, labels))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn source() -> ChartSource {
        ChartSource {
            repository: "oci://ghcr.io/platform-mesh-rs/charts".to_string(),
            version: "0.1.0".to_string(),
        }
    }

    fn defaults() -> Map<String, Value> {
        map(json!({
            "account-operator": { "replicas": 1, "image": { "tag": "0.1.0", "pullPolicy": "IfNotPresent" } },
            "security-operator": { "replicas": 2 },
        }))
    }

    fn error(values: Value) -> ValuesError {
        components(Some(&values), &defaults()).unwrap_err()
    }

    #[test]
    fn absent_or_empty_values_enable_every_component_with_its_defaults() {
        for values in [
            None,
            Some(json!(null)),
            Some(json!({})),
            Some(json!({"services": {}})),
        ] {
            let components = components(values.as_ref(), &defaults()).unwrap();
            let names: Vec<_> = components.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, COMPONENTS);
            assert!(components.iter().all(|c| c.enabled));
            assert_eq!(
                components[0].values,
                map(defaults()["account-operator"].clone())
            );
            assert_eq!(components[1].values, map(json!({ "replicas": 2 })));
            assert!(components[2].values.is_empty());
        }
    }

    #[test]
    fn services_shape() {
        let values = json!({
            "services": {
                "rebac-authz-webhook": { "enabled": false },
                "account-operator": { "enabled": true, "values": { "image": { "tag": "0.2.0" } } },
                "security-operator": { "values": { "replicas": 3 } },
            }
        });
        let components = components(Some(&values), &defaults()).unwrap();
        assert_eq!(
            components,
            vec![
                Component {
                    name: "account-operator".to_string(),
                    enabled: true,
                    values: map(
                        json!({ "replicas": 1, "image": { "tag": "0.2.0", "pullPolicy": "IfNotPresent" } })
                    ),
                },
                Component {
                    name: "security-operator".to_string(),
                    enabled: true,
                    values: map(json!({ "replicas": 3 })),
                },
                Component {
                    name: "rebac-authz-webhook".to_string(),
                    enabled: false,
                    values: Map::new(),
                },
            ]
        );
    }

    #[test]
    fn flat_shape_reads_like_the_services_shape() {
        let flat = json!({
            "security-operator": { "enabled": false },
            "rebac-authz-webhook": { "values": { "port": 9443 } },
        });
        let services = json!({ "services": flat.clone() });
        let from_flat = components(Some(&flat), &defaults()).unwrap();
        assert_eq!(from_flat, components(Some(&services), &defaults()).unwrap());
        assert!(from_flat[0].enabled);
        assert!(!from_flat[1].enabled);
        assert_eq!(from_flat[2].values, map(json!({ "port": 9443 })));
    }

    #[test]
    fn unknown_component_lists_the_known_ones() {
        let err = error(json!({ "services": { "foo": {} } }));
        assert_eq!(
            err,
            ValuesError::UnknownComponent {
                path: "spec.values.services.foo".to_string(),
                name: "foo".to_string(),
                known: COMPONENTS.iter().map(|c| c.to_string()).collect(),
            }
        );
        assert_eq!(
            err.to_string(),
            "spec.values.services.foo: unknown component `foo`; known components: \
             account-operator, security-operator, rebac-authz-webhook"
        );

        let err = error(json!({ "bar": {} })).to_string();
        assert!(
            err.starts_with("spec.values.bar: unknown component `bar`"),
            "{err}"
        );
    }

    #[test]
    fn type_errors_name_their_path() {
        let cases = [
            (json!("x"), "spec.values must be an object, got a string"),
            (json!([]), "spec.values must be an object, got an array"),
            (
                json!({ "services": 1 }),
                "spec.values.services must be an object, got a number",
            ),
            (
                json!({ "services": { "account-operator": true } }),
                "spec.values.services.account-operator must be an object, got a boolean",
            ),
            (
                json!({ "security-operator": "on" }),
                "spec.values.security-operator must be an object, got a string",
            ),
            (
                json!({ "services": { "account-operator": { "enabled": "false" } } }),
                "spec.values.services.account-operator.enabled must be a boolean, got a string",
            ),
            (
                json!({ "account-operator": { "enabled": null } }),
                "spec.values.account-operator.enabled must be a boolean, got null",
            ),
            (
                json!({ "services": { "account-operator": { "values": [1] } } }),
                "spec.values.services.account-operator.values must be an object, got an array",
            ),
            (
                json!({ "services": { "account-operator": { "valuez": {} } } }),
                "spec.values.services.account-operator.valuez: unknown key; \
                 allowed here: `enabled` and `values`",
            ),
            (
                json!({ "services": {}, "account-operator": {} }),
                "spec.values.account-operator: unknown key; \
                 allowed here: `services` (or, without `services`, component names)",
            ),
        ];
        for (values, message) in cases {
            assert_eq!(error(values.clone()).to_string(), message, "{values}");
        }
    }

    #[test]
    fn defaults_that_are_not_objects_are_an_error() {
        let defaults = map(json!({ "security-operator": 1 }));
        let err = components(None, &defaults).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the default values of component `security-operator` must be an object, got a number"
        );
    }

    #[test]
    fn deep_merge_merges_objects_and_replaces_the_rest() {
        let mut base = json!({
            "image": { "repository": "ghcr.io/x", "tag": "1", "extra": { "a": 1, "b": 2 } },
            "args": ["--a", "--b"],
            "replicas": 1,
            "kept": true,
            "scalarBecomesObject": 1,
        });
        deep_merge(
            &mut base,
            &json!({
                "image": { "tag": "2", "extra": { "b": 3, "c": 4 } },
                "args": ["--c"],
                "replicas": 2,
                "scalarBecomesObject": { "x": 1 },
                "added": null,
            }),
        );
        assert_eq!(
            base,
            json!({
                "image": { "repository": "ghcr.io/x", "tag": "2", "extra": { "a": 1, "b": 3, "c": 4 } },
                "args": ["--c"],
                "replicas": 2,
                "kept": true,
                "scalarBecomesObject": { "x": 1 },
                "added": null,
            })
        );

        let mut scalar = json!(1);
        deep_merge(&mut scalar, &json!({ "a": 1 }));
        assert_eq!(scalar, json!({ "a": 1 }));
    }

    #[test]
    fn helm_release_shape() {
        let component = Component {
            name: "account-operator".to_string(),
            enabled: true,
            values: map(json!({ "replicas": 2, "image": { "tag": "0.2.0" } })),
        };
        let labels = BTreeMap::from([
            (
                "app.kubernetes.io/part-of".to_string(),
                "platform-mesh".to_string(),
            ),
            (OPERATOR_CREATED_LABEL.to_string(), "false".to_string()),
        ]);
        let release = helm_release(&component, "platform-mesh-system", &source(), &labels);
        assert_eq!(
            serde_json::to_value(&release).unwrap(),
            json!({
                "apiVersion": "helm.toolkit.fluxcd.io/v2",
                "kind": "HelmRelease",
                "metadata": {
                    "name": "account-operator",
                    "namespace": "platform-mesh-system",
                    "labels": {
                        "app.kubernetes.io/part-of": "platform-mesh",
                        "core.platform-mesh.io/operator-created": "true",
                    },
                },
                "spec": {
                    "interval": "1m",
                    "chart": {
                        "spec": {
                            "chart": "account-operator",
                            "version": "0.1.0",
                            "sourceRef": { "kind": "HelmRepository", "name": "platform-mesh-rs" },
                        },
                    },
                    "install": { "remediation": { "retries": -1 } },
                    "upgrade": { "remediation": { "retries": 3 } },
                    "values": { "replicas": 2, "image": { "tag": "0.2.0" } },
                },
            })
        );
    }

    #[test]
    fn helm_repository_shape() {
        let repository = helm_repository("platform-mesh-system", &source(), &BTreeMap::new());
        assert_eq!(
            serde_json::to_value(&repository).unwrap(),
            json!({
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "HelmRepository",
                "metadata": {
                    "name": "platform-mesh-rs",
                    "namespace": "platform-mesh-system",
                    "labels": { "core.platform-mesh.io/operator-created": "true" },
                },
                "spec": {
                    "type": "oci",
                    "url": "oci://ghcr.io/platform-mesh-rs/charts",
                    "interval": "10m",
                },
            })
        );
    }

    #[test]
    fn resources() {
        let release = helm_release_resource();
        assert_eq!(release.api_version, "helm.toolkit.fluxcd.io/v2");
        assert_eq!(
            (release.kind.as_str(), release.plural.as_str()),
            ("HelmRelease", "helmreleases")
        );
        let repository = helm_repository_resource();
        assert_eq!(repository.api_version, "source.toolkit.fluxcd.io/v1");
        assert_eq!(
            (repository.kind.as_str(), repository.plural.as_str()),
            ("HelmRepository", "helmrepositories")
        );
    }

    #[test]
    fn releases_skip_disabled_components() {
        let values = json!({ "services": { "security-operator": { "enabled": false } } });
        let components = components(Some(&values), &defaults()).unwrap();
        let releases = releases(&components, "ns", &source(), &BTreeMap::new());
        let names: Vec<_> = releases
            .iter()
            .map(|r| r.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["account-operator", "rebac-authz-webhook"]);
        assert!(
            releases
                .iter()
                .all(|r| r.metadata.namespace.as_deref() == Some("ns"))
        );
    }
}
