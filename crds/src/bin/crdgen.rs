//! Writes (`crdgen write`) or checks (`crdgen check`) the manifests in `crds/generated/`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let result = match mode.as_str() {
        "write" => write(),
        "check" => check(),
        _ => Err("usage: crdgen <write|check>".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn generated_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("generated")
}

fn write() -> Result<(), String> {
    let files = crds::export::render().map_err(|e| format!("rendering YAML: {e}"))?;
    let dir = generated_dir();
    let wanted: BTreeSet<PathBuf> = files.iter().map(|f| dir.join(&f.path)).collect();
    // Remove files of kinds or schema versions that no longer exist.
    for existing in crds::generated_files_on_disk(&dir) {
        if !wanted.contains(&existing) {
            std::fs::remove_file(&existing).map_err(|e| format!("{}: {e}", existing.display()))?;
        }
    }
    for file in &files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &file.content).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    println!("wrote {} files to {}", files.len(), dir.display());
    Ok(())
}

fn check() -> Result<(), String> {
    let stale = crds::stale_generated_files(&generated_dir())?;
    if stale.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "stale files (run `cargo xtask crds`): {}",
            stale.join(", ")
        ))
    }
}
