//! The committed manifests in crds/generated/ must match what the Rust types render.

// A failed unwrap in a scenario is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

#[test]
fn generated_manifests_are_up_to_date() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("generated");
    let stale = crds::stale_generated_files(&dir).expect("render manifests");
    assert!(
        stale.is_empty(),
        "crds/generated/ is stale; run `cargo xtask crds` and commit the result. Stale: {stale:#?}"
    );
}
