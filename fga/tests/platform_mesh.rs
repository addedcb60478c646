//! The Rust builders for Platform Mesh modules produce the same models as the
//! DSL written from the reference (tests/data/platform-mesh), and compose.

// A failed unwrap in a test is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use fga::builder::Module;
use fga::compose::compose;
use fga::diff::{first_difference, semantically_equal};
use fga::platform_mesh::{
    CoreModuleVariant, ResourceModule, ResourceScope, core_module, orgs_module,
};
use support::data_dir;

fn generated() -> Vec<(&'static str, Module)> {
    use ResourceScope::{Cluster, Namespaced};
    vec![
        (
            "namespaces",
            ResourceModule::new("", "namespaces", "namespace", Cluster).build(),
        ),
        (
            "configmaps",
            ResourceModule::new("", "configmaps", "configmap", Namespaced).build(),
        ),
        (
            "apiexports",
            ResourceModule::new("apis.kcp.io", "apiexports", "apiexport", Cluster).build(),
        ),
        (
            "apibindings",
            ResourceModule::new("apis.kcp.io", "apibindings", "apibinding", Cluster).build(),
        ),
        (
            "roles",
            ResourceModule::new("rbac.authorization.k8s.io", "roles", "role", Namespaced)
                .privileged()
                .build(),
        ),
        (
            "clusterroles",
            ResourceModule::new(
                "rbac.authorization.k8s.io",
                "clusterroles",
                "clusterrole",
                Cluster,
            )
            .privileged()
            .build(),
        ),
        (
            "longgroup",
            ResourceModule::new(
                "a.very.long.api.group.for.testing.platform-mesh.io",
                "superwidgets",
                "superwidget",
                Namespaced,
            )
            .build(),
        ),
    ]
}

fn assert_matches_reference(module: &Module, file: &str) {
    let text = std::fs::read_to_string(data_dir().join("platform-mesh").join(file)).unwrap();
    let reference = fga::dsl::parse_model(&text).unwrap();
    let printed = fga::dsl::parse_model(&module.to_dsl().unwrap()).unwrap();
    assert!(
        semantically_equal(&printed, &reference),
        "{file}: {}",
        first_difference(&printed, &reference).unwrap_or_default()
    );
    // Same relation order too, so the printed text reads like the reference.
    assert_eq!(module.to_dsl().unwrap().trim(), text.trim(), "{file}");
}

#[test]
fn builders_match_the_reference_modules() {
    assert_matches_reference(&core_module(CoreModuleVariant::HelmChart), "core-helm.fga");
    assert_matches_reference(
        &core_module(CoreModuleVariant::WithIdpRegistrations),
        "core-idp.fga",
    );
    assert_matches_reference(&orgs_module(), "orgs.fga");
    for (name, module) in generated() {
        assert_matches_reference(&module, &format!("generated-{name}.fga"));
    }
}

#[test]
fn an_organisation_store_composes_without_errors() {
    let mut files = vec![
        core_module(CoreModuleVariant::WithIdpRegistrations)
            .to_file("acme")
            .unwrap(),
    ];
    for (name, module) in generated() {
        files.push(
            module
                .to_file(&format!("internal_core_types_{name}"))
                .unwrap(),
        );
    }
    let (model, errors) = compose(&files);
    assert!(errors.is_empty(), "{errors:?}");
    let account = model
        .type_definition("core_platform-mesh_io_account")
        .unwrap();
    let create = &account.metadata.as_ref().unwrap().relations["create_apis_kcp_io_apiexports"];
    assert_eq!(create.module, "apiexports");
    assert!(model.type_definitions.len() < 100, "default type limit");
    for name in account.relations.keys() {
        assert!(name.len() <= 50, "{name}");
    }
    let long = model
        .type_definition("core_namespace")
        .unwrap()
        .relations
        .keys()
        .find(|r| r.starts_with("create_") && r.ends_with("_superwidgets"))
        .unwrap();
    assert_eq!(long.len(), 50);
}
