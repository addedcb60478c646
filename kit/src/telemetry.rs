//! Logging setup: `tracing` to stderr, as JSON (the default in clusters) or human-readable.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// The plain levels `--log-level` accepts (anything else must be a filter directive list).
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The level is neither a level nor a directive list.
    #[error(
        "invalid --log-level value {value:?}: {why} (use one of trace, debug, info, warn, error, off, \
         or directives such as \"info,kube=warn\")"
    )]
    InvalidLevel {
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// A global subscriber was already installed.
    #[error("logging is already initialised: {0}")]
    AlreadyInitialised(String),
}

/// Parses a `--log-level` value into a filter: a plain level (`info`) or a directive list
/// (`info,kube=warn,lifecycle=debug`). A single bare word must be a level, so a typo such as
/// `inof` is an error instead of a filter for a target named `inof`.
pub fn parse_filter(level: &str) -> Result<EnvFilter, TelemetryError> {
    let value = level.trim();
    let invalid = |why: String| TelemetryError::InvalidLevel {
        value: level.to_owned(),
        why,
    };
    if value.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    let bare_word = !value.contains([',', '=', '[', '{']);
    if bare_word && !LEVELS.contains(&value.to_ascii_lowercase().as_str()) {
        return Err(invalid(format!("{value:?} is not a log level")));
    }
    EnvFilter::builder()
        .parse(value)
        .map_err(|e| invalid(e.to_string()))
}

/// Installs the global subscriber: `level` as in [`parse_filter`], JSON lines when `json`.
pub fn init_tracing(level: &str, json: bool) -> Result<(), TelemetryError> {
    let filter = parse_filter(level)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder.json().finish().try_init()
    } else {
        builder.finish().try_init()
    };
    result.map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_directives_parse() {
        for ok in [
            "info",
            "DEBUG",
            " warn ",
            "info,kube=warn",
            "lifecycle=debug",
        ] {
            assert!(parse_filter(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn invalid_levels_name_the_flag_value() {
        for bad in ["inof", "", "info,kube=loud"] {
            let message = parse_filter(bad).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("invalid --log-level value {bad:?}")),
                "{message}"
            );
        }
    }

    #[test]
    fn init_rejects_bad_level_before_touching_the_global() {
        assert!(matches!(
            init_tracing("verbose", true),
            Err(TelemetryError::InvalidLevel { .. })
        ));
    }
}
