//! Logical-cluster names and workspace paths.
//!
//! kcp addresses a workspace either by its logical-cluster *name* (an opaque id such as
//! `2x7qbhz1k5mtaf3s`, or `root`) or by a *path* of colon-separated segments
//! (`root:orgs:acme`). Virtual workspaces accept only names, so the two are distinct types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a valid cluster name or path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("a logical-cluster path must not be empty")]
    Empty,
    #[error(
        "invalid workspace path segment {segment:?} in {input:?}: segments are 1-63 characters of \
         lowercase letters, digits and '-', starting and ending with a letter or digit"
    )]
    InvalidSegment { input: String, segment: String },
    #[error("{0:?} is a path, not a logical-cluster name: virtual workspaces accept only names")]
    NotAName(String),
}

/// A logical-cluster name: one path segment (`root`, `2x7qbhz1k5mtaf3s`) or a `system:` name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterName(String);

/// A workspace path such as `root:orgs:acme`; the first segment may be any cluster name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClusterPath(String);

fn is_valid_segment(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let inner_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let edge_ok = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(inner_ok)
        && bytes.first().is_some_and(edge_ok)
        && bytes.last().is_some_and(edge_ok)
}

fn check_segments(input: &str, segments: &[&str]) -> Result<(), NameError> {
    match segments.iter().find(|s| !is_valid_segment(s)) {
        Some(bad) => Err(NameError::InvalidSegment {
            input: input.to_owned(),
            segment: (*bad).to_owned(),
        }),
        None => Ok(()),
    }
}

impl ClusterName {
    /// The root logical cluster.
    pub fn root() -> Self {
        Self("root".to_owned())
    }

    /// The name standing for a plain Kubernetes cluster (one that is not kcp), whose objects
    /// carry no logical-cluster annotation.
    pub fn host() -> Self {
        Self("host".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path that starts at this cluster, for use on the `/clusters/` front door.
    pub fn to_path(&self) -> ClusterPath {
        ClusterPath(self.0.clone())
    }
}

impl FromStr for ClusterName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        // `system:admin`, `system:shard` …: kcp's own clusters are names despite the colon.
        let rest = s.strip_prefix("system:").unwrap_or(s);
        if rest.contains(':') {
            return Err(NameError::NotAName(s.to_owned()));
        }
        check_segments(s, &[rest])?;
        Ok(Self(s.to_owned()))
    }
}

impl ClusterPath {
    /// The `root` workspace.
    pub fn root() -> Self {
        Self("root".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path of a child workspace `name` below this one.
    pub fn join(&self, name: &str) -> Result<Self, NameError> {
        format!("{}:{name}", self.0).parse()
    }

    /// The parent path, or `None` for a single-segment path.
    pub fn parent(&self) -> Option<Self> {
        self.0
            .rsplit_once(':')
            .map(|(parent, _)| Self(parent.to_owned()))
    }

    /// The last segment: the workspace's name inside its parent.
    pub fn base(&self) -> &str {
        self.0.rsplit_once(':').map_or(&self.0, |(_, base)| base)
    }

    /// The request prefix kcp routes on: `/clusters/<path>`.
    pub fn request_path(&self) -> String {
        format!("/clusters/{}", self.0)
    }
}

impl FromStr for ClusterPath {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        // A path may start at a system cluster (`system:admin:child` is not meaningful, but
        // `system:admin` alone is a valid single-cluster path).
        let rest = s.strip_prefix("system:").unwrap_or(s);
        let segments: Vec<&str> = rest.split(':').collect();
        check_segments(s, &segments)?;
        Ok(Self(s.to_owned()))
    }
}

macro_rules! string_newtype_impls {
    ($ty:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
string_newtype_impls!(ClusterName);
string_newtype_impls!(ClusterPath);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_ids_root_and_system_names() {
        for ok in ["root", "2x7qbhz1k5mtaf3s", "system:admin", "a", "a-b"] {
            assert!(ok.parse::<ClusterName>().is_ok(), "{ok} should be a name");
        }
    }

    #[test]
    fn names_reject_paths_and_bad_segments() {
        assert_eq!(
            "root:orgs".parse::<ClusterName>(),
            Err(NameError::NotAName("root:orgs".into()))
        );
        assert_eq!("".parse::<ClusterName>(), Err(NameError::Empty));
        for bad in ["Root", "-a", "a-", "a_b", "a.b", &"x".repeat(64)] {
            assert!(
                matches!(
                    bad.parse::<ClusterName>(),
                    Err(NameError::InvalidSegment { .. })
                ),
                "{bad} should be rejected"
            );
        }
    }

    #[test]
    fn paths_join_split_and_route() {
        let orgs: ClusterPath = "root:orgs".parse().unwrap();
        let acme = orgs.join("acme").unwrap();
        assert_eq!(acme.as_str(), "root:orgs:acme");
        assert_eq!(acme.parent(), Some(orgs));
        assert_eq!(acme.base(), "acme");
        assert_eq!(acme.request_path(), "/clusters/root:orgs:acme");
        assert_eq!(ClusterPath::root().parent(), None);
    }

    #[test]
    fn paths_reject_empty_segments_with_the_offending_segment() {
        let err = "root::acme".parse::<ClusterPath>().unwrap_err();
        assert_eq!(
            err,
            NameError::InvalidSegment {
                input: "root::acme".into(),
                segment: String::new()
            }
        );
        assert!(ClusterPath::root().join("Acme").is_err());
    }

    #[test]
    fn serde_validates() {
        let p: ClusterPath = serde_json::from_str("\"root:orgs\"").unwrap();
        assert_eq!(p.as_str(), "root:orgs");
        assert!(serde_json::from_str::<ClusterPath>("\"root:Orgs\"").is_err());
    }
}
