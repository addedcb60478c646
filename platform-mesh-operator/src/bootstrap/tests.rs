use crds::platform_mesh::WorkspaceTypeRef;

use serde_json::json;

use super::*;

fn inputs() -> Inputs {
    Inputs {
        tenancy_identity_hash: "abc123".to_owned(),
        extra_default_bindings: Vec::new(),
        extra_workspaces: Vec::new(),
        account_webhooks: None,
        security_webhook: None,
    }
}

fn names(phases: &[Phase]) -> Vec<String> {
    phases
        .iter()
        .flat_map(|p| p.objects.iter().map(Desired::describe))
        .collect()
}

fn position(all: &[String], what: &str) -> usize {
    all.iter()
        .position(|n| n == what)
        .unwrap_or_else(|| panic!("{what} not in {all:#?}"))
}

#[test]
fn each_object_comes_after_what_it_needs() {
    let all = names(&tree(&inputs()).unwrap());
    let before = |a: &str, b: &str| {
        assert!(position(&all, a) < position(&all, b), "{a} before {b}");
    };
    before(
        "Workspace root/platform-mesh-system",
        "APIExport root:platform-mesh-system/core.platform-mesh.io",
    );
    before(
        "APIExport root:platform-mesh-system/core.platform-mesh.io",
        "APIBinding root:platform-mesh-system/core.platform-mesh.io",
    );
    before("WorkspaceType root/security", "WorkspaceType root/org");
    before("WorkspaceType root/security", "WorkspaceType root/account");
    before("WorkspaceType root/orgs", "Workspace root/orgs");
    before("WorkspaceType root/providers", "Workspace root/providers");
    before(
        "Workspace root/orgs",
        "APIBinding root:orgs/core.platform-mesh.io",
    );
    before("Workspace root/orgs", "Store root:orgs/orgs");
    // Objects that wait for one another are in different phases.
    let phases = tree(&inputs()).unwrap();
    let phase_of = |what: &str| {
        phases
            .iter()
            .position(|p| p.objects.iter().any(|o| o.describe() == what))
            .unwrap()
    };
    assert!(phase_of("WorkspaceType root/security") < phase_of("WorkspaceType root/org"));
    assert!(
        phase_of("APIExport root:platform-mesh-system/core.platform-mesh.io")
            < phase_of("APIBinding root:orgs/core.platform-mesh.io")
    );
    // The system workspace's own bindings are created with the exports and awaited last.
    let last = phases.last().unwrap();
    assert_eq!(last.objects.len(), 2);
    assert!(last.objects.iter().all(|o| o.resource.kind == "APIBinding"
        && o.path == system_path()
        && o.readiness == Readiness::ConditionReady));
}

#[test]
fn every_object_is_labelled_and_exports_carry_the_tenancy_identity() {
    for phase in tree(&inputs()).unwrap() {
        for object in &phase.objects {
            assert_eq!(
                object.object["metadata"]["labels"][MANAGED_BY_LABEL],
                MANAGED_BY,
                "{}",
                object.describe()
            );
            assert_eq!(object.object["kind"], object.resource.kind.as_str());
            if object.resource.kind == "APIExport" {
                let text = object.object.to_string();
                assert!(text.contains("abc123"), "{text}");
                assert!(!text.contains(crds::export::TENANCY_IDENTITY_PLACEHOLDER));
            }
        }
    }
}

#[test]
fn bindings_accept_every_claim_of_their_export() {
    let phases = tree(&inputs()).unwrap();
    let all: Vec<&Desired> = phases.iter().flat_map(|p| &p.objects).collect();
    let export = all
        .iter()
        .find(|o| o.describe() == "APIExport root:platform-mesh-system/core.platform-mesh.io")
        .unwrap();
    let binding = all
        .iter()
        .find(|o| o.describe() == "APIBinding root:orgs/core.platform-mesh.io")
        .unwrap();
    let claims = export.object["spec"]["permissionClaims"]
        .as_array()
        .unwrap();
    let accepted = binding.object["spec"]["permissionClaims"]
        .as_array()
        .unwrap();
    assert_eq!(claims.len(), accepted.len());
    assert!(
        accepted.iter().all(|c| c["state"] == "Accepted"),
        "{accepted:?}"
    );
    assert_eq!(
        binding.object["spec"]["reference"]["export"]["path"],
        "root:platform-mesh-system"
    );
}

#[test]
fn organisations_and_accounts_extend_security_which_initializes_and_terminates() {
    let types = workspace_types(&[]).unwrap();
    let get = |name: &str| {
        types
            .iter()
            .find(|t| t.metadata.name.as_deref() == Some(name))
            .unwrap()
    };
    assert!(get("security").spec.initializer && get("security").spec.terminator);
    for name in ["org", "account"] {
        let with = &get(name).spec.extend.as_ref().unwrap().with;
        assert!(with.contains(&root_type(SECURITY_TYPE)), "{name}");
        assert_eq!(get(name).spec.default_api_bindings.len(), 1, "{name}");
    }
    assert!(get("orgs").spec.default_api_bindings.is_empty());
    assert!(!get("orgs").spec.initializer);
}

#[test]
fn extra_default_bindings_go_into_their_type_once() {
    let extra = DefaultApiBinding {
        workspace_type_path: "root:account".to_owned(),
        export: "widgets".to_owned(),
        path: "root:providers:acme".to_owned(),
    };
    let types = workspace_types(&[extra.clone(), extra]).unwrap();
    let account = types
        .iter()
        .find(|t| t.metadata.name.as_deref() == Some("account"))
        .unwrap();
    assert_eq!(account.spec.default_api_bindings.len(), 2);
    assert_eq!(account.spec.default_api_bindings[1].export, "widgets");
}

#[test]
fn bad_extra_bindings_and_workspaces_name_the_field() {
    let mut unknown = inputs();
    unknown.extra_default_bindings = vec![DefaultApiBinding {
        workspace_type_path: "root:team".to_owned(),
        export: "x".to_owned(),
        path: "root".to_owned(),
    }];
    let error = tree(&unknown).unwrap_err().to_string();
    assert!(
        error.contains("extraDefaultAPIBindings[0].workspaceTypePath")
            && error.contains("root:org"),
        "{error}"
    );

    let mut bad_path = inputs();
    bad_path.extra_default_bindings = vec![DefaultApiBinding {
        workspace_type_path: "root:org".to_owned(),
        export: "x".to_owned(),
        path: "Root::x".to_owned(),
    }];
    let error = tree(&bad_path).unwrap_err().to_string();
    assert!(error.contains("extraDefaultAPIBindings[0].path"), "{error}");

    for (path, type_path, field) in [
        ("root", "root", "extraWorkspaces[0].path"),
        ("root:Team", "root", "extraWorkspaces[0].path"),
        ("root:orgs:extra", "", "extraWorkspaces[0].type.path"),
    ] {
        let mut ws = inputs();
        ws.extra_workspaces = vec![ExtraWorkspace {
            path: path.to_owned(),
            type_: WorkspaceTypeRef {
                name: "org".to_owned(),
                path: type_path.to_owned(),
            },
        }];
        let error = tree(&ws).unwrap_err().to_string();
        assert!(error.contains(field), "{path}: {error}");
    }
}

#[test]
fn extra_workspaces_are_created_in_their_parent_after_the_tree() {
    let mut with = inputs();
    with.extra_workspaces = vec![ExtraWorkspace {
        path: "root:orgs:extra1".to_owned(),
        type_: WorkspaceTypeRef {
            name: "org".to_owned(),
            path: "root".to_owned(),
        },
    }];
    let phases = tree(&with).unwrap();
    let extra = &phases[phases.len() - 2];
    assert_eq!(extra.objects[0].describe(), "Workspace root:orgs/extra1");
    assert_eq!(extra.objects[0].object["spec"]["type"]["name"], "org");
    assert_eq!(
        created_workspaces(&with).first().unwrap(),
        &(orgs_path(), "extra1".to_owned())
    );
}

#[test]
fn webhook_configurations_only_when_configured_with_their_ca() {
    let without = names(&tree(&inputs()).unwrap());
    assert!(!without.iter().any(|n| n.contains("WebhookConfiguration")));
    let mut with = inputs();
    with.account_webhooks = Some(WebhookAddress {
        base_url: "https://127.0.0.1:9443/".to_owned(),
        ca_pem: "PEM".to_owned(),
    });
    let phases = tree(&with).unwrap();
    let webhooks = &phases[phases.len() - 2].objects;
    assert_eq!(webhooks.len(), 2);
    let hook = &webhooks[0].object["webhooks"][0];
    assert_eq!(
        hook["clientConfig"]["url"],
        format!("https://127.0.0.1:9443{MUTATE_PATH}")
    );
    // base64 of "PEM"
    assert_eq!(hook["clientConfig"]["caBundle"], "UEVN");
    assert_eq!(hook["failurePolicy"], "Fail");

    // The security-operator's, beside them, only when asked for.
    with.security_webhook = Some(WebhookAddress {
        base_url: "https://security.example:8443".to_owned(),
        ca_pem: "CA".to_owned(),
    });
    let phases = tree(&with).unwrap();
    let webhooks = &phases[phases.len() - 2].objects;
    assert_eq!(webhooks.len(), 3);
    let idp = &webhooks[2];
    assert_eq!(
        idp.describe(),
        format!(
            "ValidatingWebhookConfiguration root:platform-mesh-system/{}",
            crds::identity_provider::webhook::VALIDATING_CONFIG
        )
    );
    let hook = &idp.object["webhooks"][0];
    assert_eq!(
        hook["clientConfig"]["url"],
        format!(
            "https://security.example:8443{}",
            crds::identity_provider::webhook::VALIDATE_PATH
        )
    );
    assert_eq!(hook["clientConfig"]["caBundle"], "Q0E=");
    assert_eq!(hook["failurePolicy"], "Fail");
    assert_eq!(
        hook["rules"][0]["resources"],
        json!(["identityproviderconfigurations"])
    );
    assert_eq!(hook["rules"][0]["operations"], json!(["CREATE", "UPDATE"]));
    with.account_webhooks = None;
    let phases = tree(&with).unwrap();
    assert_eq!(phases[phases.len() - 2].objects.len(), 1);
}
