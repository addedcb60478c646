//! Shared helpers for the integration tests: test data paths, the Go oracle
//! binary, and the real OpenFGA server.

// A failed unwrap in a test is a failed test that shows the error.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)] // each test crate uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use fga::store::{StoreOptions, find_or_create_store};
use openfga_client::client::OpenFgaServiceClient;
use tonic::transport::Channel;

pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Directory entries sorted by name (file order matters for composition).
pub fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    entries.sort();
    entries
}

/// The official transformer, wrapped by `tools/openfga-language` and built by
/// `cargo xtask deps`.
pub struct Oracle {
    binary: PathBuf,
}

impl Oracle {
    /// The built oracle; panics with the command that builds it when it is missing.
    pub fn get() -> &'static Oracle {
        static ORACLE: OnceLock<Oracle> = OnceLock::new();
        ORACLE.get_or_init(|| Oracle {
            binary: xtask::binary("openfga-language").unwrap_or_else(|e| panic!("{e}")),
        })
    }

    /// `TransformDSLToJSON` of one file.
    pub fn transform_dsl(&self, path: &Path) -> Result<String, String> {
        self.run(&["dsl".as_ref(), path.as_os_str()])
    }

    /// `TransformModuleFilesToModel(files, "1.2")`, files named by base name.
    pub fn transform_modules(&self, paths: &[PathBuf]) -> Result<String, String> {
        let mut args = vec!["modules".as_ref()];
        args.extend(paths.iter().map(|p| p.as_os_str()));
        self.run(&args)
    }

    fn run(&self, args: &[&std::ffi::OsStr]) -> Result<String, String> {
        let output = Command::new(&self.binary)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        if output.status.success() {
            Ok(String::from_utf8(output.stdout).unwrap().trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

/// A client of the test binary's OpenFGA server.
pub async fn client() -> OpenFgaServiceClient<Channel> {
    harness::OpenFga::shared().await.client().await
}

/// A fresh store named `<prefix>-<unique>`; returns its id.
pub async fn new_store(service: &mut OpenFgaServiceClient<Channel>, prefix: &str) -> String {
    let name = format!("{prefix}-{}", harness::unique_suffix());
    find_or_create_store(service, &name, &StoreOptions::default())
        .await
        .unwrap()
        .store
        .id
}
