//! Where the programs the tests and benchmarks run are pinned, built and cached: the Go
//! programs (kcp, OpenFGA, helm, upstream's account-operator) and Keycloak.
//!
//! Each program is pinned by a Go module under `tools/<name>/` (its `go.mod` and `go.sum`).
//! `cargo xtask deps` builds it into a cache directory outside the repository, keyed by the
//! pinned version and a hash of the pinning files, so every checkout on the machine reuses the
//! same binaries and a changed pin builds anew. Tests call [`binary`] to find them. Keycloak,
//! a Java server, is a [`Distribution`] from Maven Central, pinned by version and SHA-256.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// A Go program the project builds from the Go module proxy.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// Directory under `tools/` holding the pinning module; also the tool's name.
    pub name: &'static str,
    /// The module whose `require` line gives the version shown to people.
    pub module: &'static str,
    /// Main packages to build; each becomes a binary named after its last path element.
    pub packages: &'static [&'static str],
    /// Extra files under `tools/<name>/` that change the build (hashed into the cache key).
    pub extra_inputs: &'static [&'static str],
}

/// kcp, with the sharding helpers a later multi-shard test needs, and kubectl from kcp's
/// Kubernetes fork (the same module graph, so they cost little more than kcp alone).
pub const KCP: Tool = Tool {
    name: "kcp",
    module: "github.com/kcp-dev/kcp",
    packages: &[
        "github.com/kcp-dev/kcp/cmd/kcp",
        "github.com/kcp-dev/kcp/cmd/kcp-front-proxy",
        "github.com/kcp-dev/kcp/cmd/cache-server",
        "github.com/kcp-dev/kcp/cmd/sharded-test-server",
        "k8s.io/kubernetes/cmd/kubectl",
    ],
    extra_inputs: &["shim/forwardingregistry_validate_name.go"],
};

/// The OpenFGA server.
pub const OPENFGA: Tool = Tool {
    name: "openfga",
    module: "github.com/openfga/openfga",
    packages: &["github.com/openfga/openfga/cmd/openfga"],
    extra_inputs: &[],
};

/// helm v3, for chart lint and template tests.
pub const HELM: Tool = Tool {
    name: "helm",
    module: "helm.sh/helm/v3",
    packages: &["helm.sh/helm/v3/cmd/helm"],
    extra_inputs: &[],
};

/// The official OpenFGA DSL transformer (openfga/language), wrapped in a small command; the
/// oracle of the fga crate's differential tests.
pub const OPENFGA_LANGUAGE: Tool = Tool {
    name: "openfga-language",
    module: "github.com/openfga/language/pkg/go",
    packages: &["github.com/platform-mesh-rs/tools/openfga-language"],
    extra_inputs: &["main.go"],
};

/// The upstream Go account-operator, the contender `cargo xtask bench` runs next to ours. Its
/// binary is named `account-operator`, like ours; [`UPSTREAM_ACCOUNT_OPERATOR`]`.binary(…)`
/// finds it in the cache, never on a path where ours is.
pub const UPSTREAM_ACCOUNT_OPERATOR: Tool = Tool {
    name: "upstream-account-operator",
    module: "github.com/platform-mesh/account-operator",
    packages: &["github.com/platform-mesh/account-operator"],
    extra_inputs: &[],
};

/// Every tool `cargo xtask deps` builds, in build order (the slow one first).
pub const ALL: &[Tool] = &[
    KCP,
    OPENFGA,
    HELM,
    OPENFGA_LANGUAGE,
    UPSTREAM_ACCOUNT_OPERATOR,
];

/// Maven Central, where the Java servers come from.
pub const MAVEN_CENTRAL: &str = "https://repo1.maven.org/maven2";

/// A Java server the project downloads as a release archive from Maven Central, unpacks into
/// the machine-wide cache and builds once (its configuration build), so that every start is
/// an optimized one.
#[derive(Debug, Clone, Copy)]
pub struct Distribution {
    pub name: &'static str,
    pub version: &'static str,
    /// The archive's path under [`MAVEN_CENTRAL`].
    pub path: &'static str,
    /// The archive's SHA-256, checked before anything is unpacked.
    pub sha256: &'static str,
    /// The one directory every entry of the archive is under; it becomes the install dir.
    pub top_dir: &'static str,
    /// The build command, run in the unpacked directory.
    pub build: &'static [&'static str],
}

/// Keycloak, the identity provider of every org: the Quarkus distribution, built for an
/// H2 file database (each test instance points it at a directory of its own) with the health
/// endpoints on, and served under `/keycloak` as Platform Mesh serves it (every org's issuer
/// is `https://<domain>/keycloak/realms/<org>`); all three are build-time options.
pub const KEYCLOAK: Distribution = Distribution {
    name: "keycloak",
    version: "26.7.3",
    path: "org/keycloak/keycloak-quarkus-dist/26.7.3/keycloak-quarkus-dist-26.7.3.zip",
    sha256: "27a6535553c3cdcd083872ba40629efafb3475e3b758e0c6f691395561dd0f1f",
    top_dir: "keycloak-26.7.3",
    build: &[
        "bin/kc.sh",
        "build",
        "--db=dev-file",
        "--health-enabled=true",
        "--http-relative-path=/keycloak",
    ],
};

impl Distribution {
    /// Where the archive is downloaded from.
    pub fn url(&self) -> String {
        format!("{MAVEN_CENTRAL}/{}", self.path)
    }

    /// The cache directory: `<cache>/tools/<name>-<version>-<hash>`, the hash over the
    /// archive's checksum and the build command, so a changed build gets a fresh directory.
    pub fn install_dir(&self) -> PathBuf {
        let mut hasher = Sha256::new();
        hasher.update(self.sha256.as_bytes());
        for arg in self.build {
            hasher.update(arg.as_bytes());
            hasher.update([0]);
        }
        let hash = short_hash(hasher);
        cache_root()
            .join("tools")
            .join(format!("{}-{}-{hash}", self.name, self.version))
    }

    /// The built install directory (Keycloak's home), if `cargo xtask deps` finished it.
    pub fn home(&self) -> Result<PathBuf, LocateError> {
        let dir = self.install_dir();
        if dir.join(COMPLETE_MARKER).is_file() {
            Ok(dir)
        } else {
            Err(LocateError::NotBuilt {
                tool: self.name,
                version: self.version.to_owned(),
                dir,
            })
        }
    }
}

/// The packages whose binaries the demo runs (the demo is `platform-mesh-tests`'s), built by
/// one `cargo build --bins -p … -p …`: one feature resolution, so each binary is built once,
/// not once per package.
pub const DEMO_PACKAGES: &[&str] = &[
    "platform-mesh-operator",
    "account-operator",
    "security-operator",
    "rebac-authz-webhook",
    "platform-mesh-tests",
];

/// Why a tool cannot be located.
#[derive(Debug)]
pub enum LocateError {
    /// The pinning files could not be read (a broken checkout).
    Pin { tool: &'static str, reason: String },
    /// The pinned version has not been built on this machine yet.
    NotBuilt {
        tool: &'static str,
        version: String,
        dir: PathBuf,
    },
    /// No such tool is pinned.
    Unknown(String),
}

impl fmt::Display for LocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pin { tool, reason } => {
                write!(f, "cannot read the pin of {tool} in tools/{tool}: {reason}")
            }
            Self::NotBuilt { tool, version, dir } => write!(
                f,
                "{tool} {version} is not built on this machine (expected in {}); build it with `cargo xtask deps` \
                 (needs Go and Java 17 or newer; the first kcp build takes several minutes)",
                dir.display()
            ),
            Self::Unknown(name) => write!(f, "no tool named {name:?} is pinned under tools/"),
        }
    }
}

impl std::error::Error for LocateError {}

/// The repository root (this crate lives in `<root>/xtask`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The machine-wide cache: `$PLATFORM_MESH_RS_CACHE`, else `$XDG_CACHE_HOME/platform-mesh-rs`,
/// else `~/.cache/platform-mesh-rs`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("PLATFORM_MESH_RS_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("platform-mesh-rs")
}

impl Tool {
    /// The pinning module's directory.
    pub fn module_dir(&self) -> PathBuf {
        repo_root().join("tools").join(self.name)
    }

    /// The version of [`Tool::module`] required by the pinning `go.mod`.
    pub fn version(&self) -> Result<String, LocateError> {
        let go_mod = self.read_input("go.mod")?;
        go_mod
            .lines()
            .map(str::trim)
            .map(|l| l.strip_prefix("require ").unwrap_or(l))
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(self.module)).then(|| words.next().map(str::to_owned))?
            })
            .ok_or_else(|| LocateError::Pin {
                tool: self.name,
                reason: format!("go.mod does not require {}", self.module),
            })
    }

    fn read_input(&self, file: &str) -> Result<String, LocateError> {
        std::fs::read_to_string(self.module_dir().join(file)).map_err(|e| LocateError::Pin {
            tool: self.name,
            reason: format!("{file}: {e}"),
        })
    }

    /// The cache directory for the pinned build: `<cache>/tools/<name>-<version>-<hash>`.
    pub fn install_dir(&self) -> Result<PathBuf, LocateError> {
        let mut hasher = Sha256::new();
        for file in ["go.mod", "go.sum"].iter().chain(self.extra_inputs) {
            hasher.update(file.as_bytes());
            hasher.update(self.read_input(file)?.as_bytes());
        }
        for package in self.packages {
            hasher.update(package.as_bytes());
        }
        let hash = short_hash(hasher);
        Ok(cache_root()
            .join("tools")
            .join(format!("{}-{}-{hash}", self.name, self.version()?)))
    }

    /// The binary built from `package`'s last path element, if the build is complete.
    pub fn binary(&self, binary: &str) -> Result<PathBuf, LocateError> {
        let dir = self.install_dir()?;
        let path = dir.join(binary);
        if dir.join(COMPLETE_MARKER).is_file() && path.is_file() {
            Ok(path)
        } else {
            Err(LocateError::NotBuilt {
                tool: self.name,
                version: self.version()?,
                dir,
            })
        }
    }
}

/// The first 12 hex digits of a hash: enough to tell pins apart in a directory name.
fn short_hash(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Written last into an install directory, so a half-finished build is never used.
pub const COMPLETE_MARKER: &str = ".complete";

/// The path of a built binary by name (`kcp`, `kcp-front-proxy`, `openfga`, `helm` …).
pub fn binary(name: &str) -> Result<PathBuf, LocateError> {
    let tool = ALL
        .iter()
        .find(|t| {
            t.packages
                .iter()
                .any(|p| p.rsplit('/').next() == Some(name))
        })
        .ok_or_else(|| LocateError::Unknown(name.to_owned()))?;
    tool.binary(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_pinning_modules() {
        assert!(KCP.version().unwrap().starts_with("v0."));
        assert!(OPENFGA.version().unwrap().starts_with("v1."));
        assert!(HELM.version().unwrap().starts_with("v3."));
    }

    #[test]
    fn install_dir_is_keyed_by_name_and_version() {
        let dir = KCP.install_dir().unwrap();
        let leaf = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            leaf.starts_with(&format!("kcp-{}-", KCP.version().unwrap())),
            "{leaf}"
        );
        assert!(dir.starts_with(cache_root()));
    }

    #[test]
    fn keycloak_is_pinned_by_version_and_checksum() {
        let dir = KEYCLOAK.install_dir();
        let leaf = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(leaf.starts_with("keycloak-26.7.3-"), "{leaf}");
        assert_eq!(
            KEYCLOAK.url(),
            "https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/26.7.3/\
             keycloak-quarkus-dist-26.7.3.zip"
        );
        assert_eq!(KEYCLOAK.sha256.len(), 64);
    }

    #[test]
    fn unknown_binaries_are_named_in_the_error() {
        let err = binary("terraform").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no tool named \"terraform\" is pinned under tools/"
        );
    }
}
