//! Differential tests against the official Go transformer
//! (`github.com/openfga/language/pkg/go`, see `tools/openfga-language`).
//!
//! The oracle binary is built once with `go build` into
//! `$XDG_CACHE_HOME/platform-mesh-rs/tools/openfga-language-<version>/`
//! (or `~/.cache/...`) and rebuilt when its sources are newer.

// A failed unwrap in a test is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use fga::compose::{ModuleFile, compose};
use fga::diff::{first_difference, semantically_equal};
use fga::model::AuthorizationModel;
use support::{Oracle, data_dir, sorted_entries};

fn assert_same(ours: &AuthorizationModel, theirs_json: &str, case: &str) {
    let theirs = AuthorizationModel::from_json(theirs_json)
        .unwrap_or_else(|e| panic!("{case}: oracle JSON does not deserialize: {e}\n{theirs_json}"));
    assert!(
        semantically_equal(ours, &theirs),
        "{case}: {}",
        first_difference(ours, &theirs).unwrap_or_default()
    );
    // Stricter than semantic equality: identical JSON apart from map order.
    let ours_value: serde_json::Value = serde_json::from_str(&ours.to_json()).unwrap();
    let theirs_value: serde_json::Value = serde_json::from_str(theirs_json).unwrap();
    assert_eq!(ours_value, theirs_value, "{case}: JSON differs");
}

fn check_single_file(oracle: &Oracle, path: &Path) {
    let case = path.display().to_string();
    let text = std::fs::read_to_string(path).unwrap();
    let ours = fga::dsl::parse_model(&text);
    match (oracle.transform_dsl(path), ours) {
        (Ok(theirs), Ok(ours)) => assert_same(&ours, &theirs, &case),
        (Err(theirs), Ok(ours)) => {
            panic!(
                "{case}: oracle rejects ({theirs}) but we accept: {}",
                ours.to_json()
            )
        }
        (Ok(theirs), Err(ours)) => {
            panic!("{case}: oracle accepts ({theirs}) but we reject: {ours}")
        }
        (Err(_), Err(_)) => {}
    }
}

#[test]
fn single_files_match_the_official_transformer() {
    let oracle = Oracle::get();
    let mut count = 0;
    for dir in ["models", "platform-mesh"] {
        for path in sorted_entries(&data_dir().join(dir)) {
            if path.extension().is_some_and(|e| e == "fga") {
                check_single_file(oracle, &path);
                count += 1;
            }
        }
    }
    assert!(count >= 40, "only {count} single-file cases");
}

#[test]
fn module_sets_match_the_official_combiner() {
    let oracle = Oracle::get();
    let cases = sorted_entries(&data_dir().join("modules"));
    assert!(cases.len() >= 15, "only {} module sets", cases.len());
    for case_dir in cases {
        let case = case_dir.display().to_string();
        let paths = sorted_entries(&case_dir);
        let files: Vec<ModuleFile> = paths
            .iter()
            .map(|p| {
                ModuleFile::new(
                    p.file_name().unwrap().to_string_lossy(),
                    std::fs::read_to_string(p).unwrap(),
                )
            })
            .collect();
        let (ours, errors) = compose(&files);
        match oracle.transform_modules(&paths) {
            Ok(theirs) => {
                assert!(
                    errors.is_empty(),
                    "{case}: oracle accepts but we report {errors:?}"
                );
                assert_same(&ours, &theirs, &case);
            }
            Err(theirs) => assert!(
                !errors.is_empty(),
                "{case}: oracle rejects ({theirs}) but we report no module errors"
            ),
        }
    }
}
