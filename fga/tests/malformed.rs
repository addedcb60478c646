//! Malformed DSL: each case must fail with an error at the expected 1-based
//! line and column, never panic.

// A failed unwrap in a test is a failed test that shows the error.
#![allow(clippy::unwrap_used)]

use fga::dsl::{DslErrorKind, parse};

const HEADER: &str = "model\n  schema 1.1\n";

/// (name, DSL text, expected line, expected column, text the message must contain)
fn cases() -> Vec<(&'static str, String, usize, usize, &'static str)> {
    let h = HEADER;
    vec![
        ("empty input", String::new(), 1, 1, "expected 'model' or 'module'"),
        ("no header", "type user\n".into(), 1, 1, "found 'type'"),
        ("schema on model line", "model schema 1.1\n".into(), 1, 6, "line break after 'model'"),
        ("missing schema", "model\ntype user\n".into(), 2, 1, "expected 'schema'"),
        ("missing version", "model\n  schema\n".into(), 2, 9, "a space after 'schema'"),
        ("bad version", "model\n  schema one\n".into(), 2, 10, "schema version"),
        ("module without name", "module\n".into(), 1, 7, "a space after 'module'"),
        ("module name keyword", "module and\n".into(), 1, 8, "module name"),
        ("type without name", format!("{h}type\n"), 3, 5, "a space after 'type'"),
        ("type name missing", format!("{h}type \n"), 3, 5, "found end of input"),
        ("garbage after type", format!("{h}type user foo\n"), 3, 10, "found whitespace"),
        ("relations without define", format!("{h}type user\n  relations\ntype doc\n"), 5, 1, "'define'"),
        ("define without colon", format!("{h}type doc\n  relations\n    define viewer [user]\n"), 5, 19, "':'"),
        ("define without body", format!("{h}type doc\n  relations\n    define viewer:\n"), 5, 19, "'[', '(' or a relation name"),
        ("reserved relation name", format!("{h}type doc\n  relations\n    define or: [user]\n"), 5, 12, "relation name"),
        ("empty brackets", format!("{h}type doc\n  relations\n    define v: []\n"), 5, 16, "a type name"),
        ("unclosed bracket", format!("{h}type doc\n  relations\n    define v: [user\n"), 5, 20, "',' or ']'"),
        ("trailing comma", format!("{h}type doc\n  relations\n    define v: [user,]\n"), 5, 21, "a type name"),
        ("wildcard without star", format!("{h}type doc\n  relations\n    define v: [user:]\n"), 5, 21, "'*'"),
        ("userset without relation", format!("{h}type doc\n  relations\n    define v: [group#]\n"), 5, 22, "relation name after '#'"),
        ("with without condition", format!("{h}type doc\n  relations\n    define v: [user with ]\n"), 5, 26, "condition name"),
        ("direct not first", format!("{h}type doc\n  relations\n    define v: a or [user]\n"), 5, 20, "may only come first"),
        ("mixed operators", format!("{h}type doc\n  relations\n    define v: a or b and c\n"), 5, 21, "cannot combine 'or' with 'and'"),
        ("two but nots", format!("{h}type doc\n  relations\n    define v: a but not b but not c\n"), 5, 26, "cannot combine"),
        ("unclosed paren", format!("{h}type doc\n  relations\n    define v: (a or b\n"), 5, 22, "an operator or ')'"),
        ("dangling operator", format!("{h}type doc\n  relations\n    define v: a or\n"), 5, 19, "found end of input"),
        ("from without tupleset", format!("{h}type doc\n  relations\n    define v: a from\n"), 5, 21, "found end of input"),
        ("unknown character", format!("{h}type doc\n  relations\n    define v: [user] @\n"), 5, 22, "unrecognized input \"@\""),
        ("duplicate relation", format!("{h}type doc\n  relations\n    define v: [user]\n    define v: [user]\n"), 6, 12, "already defined in 'doc'"),
        ("extend in model", format!("{h}extend type doc\n"), 3, 13, "only be used in a modular model"),
        ("extended twice", "module m\nextend type doc\n  relations\n    define a: b\nextend type doc\n  relations\n    define c: b\n".into(), 5, 13, "already extended"),
        ("type after condition", format!("{h}type user\ncondition c(x: int) {{\n  x\n}}\ntype doc\n"), 7, 1, "types must come before conditions"),
        ("condition without params", format!("{h}type user\ncondition c() {{\n  true\n}}\n"), 4, 13, "a parameter name"),
        ("unknown param type", format!("{h}type user\ncondition c(x: float) {{\n  x\n}}\n"), 4, 16, "a parameter type"),
        ("multi-line params", format!("{h}type user\ncondition c(x: int,\n  y: int) {{\n  x\n}}\n"), 4, 20, "unrecognized input \"\\n\""),
        ("unclosed condition", format!("{h}type user\ncondition c(x: int) {{\n  x < 1\n"), 5, 8, "'}' closing the condition"),
        ("duplicate parameter", format!("{h}type user\ncondition c(x: int, x: int) {{\n  x\n}}\n"), 4, 21, "parameter 'x' is already defined"),
        ("duplicate condition", format!("{h}type user\ncondition c(x: int) {{\n  x\n}}\ncondition c(x: int) {{\n  x\n}}\n"), 7, 11, "condition 'c' is already defined"),
        ("map without element", format!("{h}type user\ncondition c(m: map) {{\n  m\n}}\n"), 4, 19, "'<'"),
        ("deep nesting", format!("{h}type doc\n  relations\n    define v: {}a{}\n", "(".repeat(100), ")".repeat(100)), 5, 79, "nested deeper than 64"),
    ]
}

#[test]
fn malformed_models_report_positions() {
    let mut failures = Vec::new();
    let all = cases();
    assert!(all.len() >= 30);
    for (name, text, line, column, message) in all {
        match parse(&text) {
            Ok(parsed) => failures.push(format!("{name}: parsed as {parsed:?}")),
            Err(error) => {
                if (error.line(), error.column()) != (line, column)
                    || !error.to_string().contains(message)
                {
                    failures.push(format!(
                        "{name}: expected {line}:{column} containing {message:?}, got {}:{} {error}",
                        error.line(),
                        error.column()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn errors_are_typed() {
    let error = parse("model\n  schema 1.1\ntype doc\n  relations\n    define v: a or b and c\n")
        .unwrap_err();
    assert_eq!(
        error.kind,
        DslErrorKind::MixedOperators {
            first: "or".into(),
            second: "and".into()
        }
    );
}
