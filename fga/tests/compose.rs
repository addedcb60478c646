//! Module composition with isolated faults.

// A failed unwrap in a test is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

use fga::compose::{ModuleErrorKind, ModuleFile, compose};

fn file(name: &str, text: &str) -> ModuleFile {
    ModuleFile::new(name, text)
}

#[test]
fn conflicting_modules_are_rejected_and_the_rest_compose() {
    let files = [
        file(
            "core.fga",
            "module core\n\ntype user\n\ntype doc\n  relations\n    define owner: [user]\n",
        ),
        file("dup-type.fga", "module dup\n\ntype user\n\ntype other\n"),
        file(
            "viewer.fga",
            "module viewer\n\nextend type doc\n  relations\n    define viewer: [user] or owner\n",
        ),
        file(
            "viewer-again.fga",
            "module again\n\nextend type doc\n  relations\n    define viewer: [user]\n",
        ),
        file(
            "ghost.fga",
            "module ghost\n\nextend type ghost\n  relations\n    define x: [user]\n",
        ),
        file(
            "cond-a.fga",
            "module conda\n\ntype a\n\ncondition c(x: int) {\n  x < 1\n}\n",
        ),
        file(
            "cond-b.fga",
            "module condb\n\ntype b\n\ncondition c(x: int) {\n  x < 2\n}\n",
        ),
        file("broken.fga", "module broken\n\ntype\n"),
        file("model.fga", "model\n  schema 1.1\n\ntype m\n"),
    ];
    let (model, errors) = compose(&files);

    let types: Vec<&str> = model
        .type_definitions
        .iter()
        .map(|t| t.type_name.as_str())
        .collect();
    assert_eq!(types, ["user", "doc", "a"]);
    let doc = model.type_definition("doc").unwrap();
    assert!(doc.relations.contains_key("viewer"));
    let viewer = &doc.metadata.as_ref().unwrap().relations["viewer"];
    assert_eq!(viewer.module, "viewer");
    assert_eq!(viewer.source_info.as_ref().unwrap().file, "viewer.fga");
    assert_eq!(model.conditions["c"].expression, "x < 1");

    let rejected: Vec<&str> = errors.iter().map(|e| e.file.as_str()).collect();
    assert_eq!(
        rejected,
        [
            "broken.fga",
            "model.fga",
            "dup-type.fga",
            "cond-b.fga",
            "viewer-again.fga",
            "ghost.fga"
        ]
    );
    let message = |file: &str| {
        errors
            .iter()
            .find(|e| e.file == file)
            .map(ToString::to_string)
            .unwrap()
    };
    assert!(message("dup-type.fga").contains("duplicate type definition user at line 3, column 6, already defined in module core (core.fga)"));
    assert!(message("cond-b.fga").contains("already defined in module conda (cond-a.fga)"));
    assert!(message("viewer-again.fga").contains("relation viewer at line 5, column 12 already exists on type doc, defined in module viewer (viewer.fga)"));
    assert!(
        message("ghost.fga").contains("extended type ghost at line 3, column 13 does not exist")
    );
    assert!(matches!(errors[0].kind, ModuleErrorKind::Syntax(_)));
    assert!(matches!(errors[1].kind, ModuleErrorKind::NotAModule));
}

#[test]
fn rejecting_a_module_also_rejects_extensions_of_its_types() {
    let files = [
        file("core.fga", "module core\n\ntype user\n"),
        file("bad.fga", "module bad\n\ntype user\n\ntype widget\n"),
        file(
            "ext.fga",
            "module ext\n\nextend type widget\n  relations\n    define viewer: [user]\n",
        ),
    ];
    let (model, errors) = compose(&files);
    assert_eq!(model.type_definitions.len(), 1);
    assert_eq!(errors.len(), 2);
    assert!(matches!(
        errors[0].kind,
        ModuleErrorKind::DuplicateType { .. }
    ));
    assert!(matches!(
        errors[1].kind,
        ModuleErrorKind::UnknownExtendedType { .. }
    ));
}

#[test]
fn all_problems_of_a_rejected_module_are_listed() {
    let files = [
        file("core.fga", "module core\n\ntype user\n\ntype doc\n"),
        file("bad.fga", "module bad\n\ntype user\n\ntype doc\n"),
    ];
    let (model, errors) = compose(&files);
    assert_eq!(model.type_definitions.len(), 2);
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.module.as_deref() == Some("bad")));
}

#[test]
fn extensions_may_target_types_of_later_files() {
    let files = [
        file(
            "ext.fga",
            "module ext\n\nextend type doc\n  relations\n    define viewer: [user]\n",
        ),
        file("core.fga", "module core\n\ntype user\n\ntype doc\n"),
    ];
    let (model, errors) = compose(&files);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(model.schema_version, "1.2");
    assert!(
        model
            .type_definition("doc")
            .unwrap()
            .relations
            .contains_key("viewer")
    );
}
