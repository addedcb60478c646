use super::*;

fn connection(secret: &str) -> ProviderConnection {
    ProviderConnection {
        secret: secret.to_owned(),
        path: Some("root:platform-mesh-system".to_owned()),
        ..Default::default()
    }
}

fn plan_of(connection: &ProviderConnection) -> Result<Plan, String> {
    plan(0, connection, "pm-ns", None)
}

#[test]
fn the_defaults_are_two_admin_operators_and_a_scoped_webhook() {
    let pm = PlatformMesh::new("pm", Default::default());
    let plans: Vec<Plan> = connections(&pm)
        .iter()
        .map(|c| plan_of(c).unwrap())
        .collect();
    let system: ClusterPath = "root:platform-mesh-system".parse().unwrap();
    assert_eq!(plans.len(), 3);
    assert_eq!(plans[0].secret, "account-operator-kubeconfig");
    assert_eq!(plans[0].mode, Mode::Admin);
    assert_eq!(plans[0].target, Target::Workspace(system.clone()));
    assert_eq!(plans[0].namespace, "pm-ns");
    assert_eq!(plans[1].secret, "security-operator-kubeconfig");
    assert_eq!(
        plans[2].mode,
        Mode::Scoped {
            export: Some("core.platform-mesh.io".to_owned())
        }
    );
}

#[test]
fn configured_connections_replace_the_defaults_and_extra_ones_add() {
    let mut pm = PlatformMesh::new("pm", Default::default());
    pm.spec.kcp = Some(crds::platform_mesh::KcpSettings {
        provider_connections: vec![connection("one")],
        extra_provider_connections: vec![connection("two")],
        ..Default::default()
    });
    let names: Vec<String> = connections(&pm).into_iter().map(|c| c.secret).collect();
    assert_eq!(names, ["one", "two"]);
    pm.spec.kcp.as_mut().unwrap().provider_connections.clear();
    assert_eq!(connections(&pm).len(), 4);
}

#[test]
fn admin_targets_a_raw_path_a_slice_or_the_workspace() {
    let mut raw = connection("raw");
    raw.admin_auth = Some(true);
    raw.raw_path = Some("/services/marketplace".to_owned());
    assert_eq!(
        plan_of(&raw).unwrap().target,
        Target::RawPath("/services/marketplace".to_owned())
    );
    let mut slice = connection("slice");
    slice.admin_auth = Some(true);
    slice.endpoint_slice_name = Some("core.platform-mesh.io".to_owned());
    slice.namespace = Some("elsewhere".to_owned());
    let planned = plan_of(&slice).unwrap();
    assert!(
        matches!(planned.target, Target::Slice { ref name, .. } if name == "core.platform-mesh.io")
    );
    assert_eq!(planned.namespace, "elsewhere");
}

#[test]
fn unset_admin_auth_means_scoped_as_in_upstreams_code() {
    let mut scoped = connection("scoped");
    scoped.endpoint_slice_name = Some("s".to_owned());
    assert_eq!(
        plan_of(&scoped).unwrap().mode,
        Mode::Scoped { export: None }
    );
}

#[test]
fn connections_that_can_never_work_name_the_field() {
    let cases: Vec<(ProviderConnection, &str)> = vec![
        (connection("Bad_Name"), "secret"),
        (connection(""), "secret"),
        (
            ProviderConnection {
                path: Some("root::x".to_owned()),
                ..connection("p")
            },
            "path",
        ),
        (connection("neither"), "exactly one of"),
        (
            ProviderConnection {
                endpoint_slice_name: Some("a".to_owned()),
                api_export_name: Some("b".to_owned()),
                ..connection("both")
            },
            "exactly one of",
        ),
        (
            ProviderConnection {
                raw_path: Some("/x".to_owned()),
                api_export_name: Some("b".to_owned()),
                ..connection("raw-scoped")
            },
            "rawPath",
        ),
        (
            ProviderConnection {
                admin_auth: Some(true),
                raw_path: Some("x".to_owned()),
                ..connection("raw")
            },
            "must start with '/'",
        ),
        (
            ProviderConnection {
                admin_auth: Some(true),
                path: None,
                ..connection("nopath")
            },
            "path: required",
        ),
        (
            ProviderConnection {
                admin_auth: Some(true),
                external: Some(true),
                ..connection("external")
            },
            "spec.exposure.baseDomain",
        ),
    ];
    for (connection, expected) in cases {
        let error = plan_of(&connection).unwrap_err();
        assert!(error.contains(expected), "{connection:?}: {error}");
        assert!(
            error.contains(&format!("{:?}", connection.secret)),
            "{error}"
        );
    }
}

#[test]
fn the_external_address_is_upstreams() {
    let exposure = Exposure {
        base_domain: Some("example.com".to_owned()),
        port: Some(443),
        protocol: None,
    };
    assert_eq!(
        external_base(Some(&exposure)).unwrap().as_str(),
        "https://kcp.api.example.com/"
    );
}
