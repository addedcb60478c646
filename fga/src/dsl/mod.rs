//! OpenFGA DSL (schema 1.1 models and 1.2 modules) to the JSON model.
//!
//! The accepted language is the one of `OpenFGAParser.g4` as built into the
//! official Go transformer (`openfga/language/pkg/go` v0.3.2), including its
//! quirks:
//!
//! * Comments are removed line by line before lexing: a line whose first
//!   non-space character is `#` becomes empty, and anything after ` #` is cut.
//!   This also applies inside condition expressions.
//! * Indentation carries no meaning: a line break token swallows the blanks
//!   around it, and structure comes from the keywords (`type`, `relations`,
//!   `define`, `condition`). No indentation is required or checked.
//! * Keywords are reserved, except `module`, `model`, `schema`, `extend`,
//!   `type` and `relation`, which may also name types and relations.
//! * Operators of one kind chain (`a or b or c`); mixing kinds, or more than
//!   one `but not`, needs parentheses. A direct restriction `[...]` may only be
//!   the first operand.
//! * Condition parameter lists must stay on one line, and a condition
//!   expression runs up to the first `}` token; its text is kept verbatim
//!   except for `//` comments and trailing line breaks.

mod lexer;
mod parser;

use std::collections::BTreeMap;

use thiserror::Error;

use crate::model::{AuthorizationModel, Condition, TypeDefinition};

/// A 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// A DSL error at a position.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {}, column {}: {kind}", position.line, position.column)]
pub struct DslError {
    /// Where the problem was found.
    pub position: Position,
    /// What went wrong.
    pub kind: DslErrorKind,
}

impl DslError {
    /// 1-based line of the error.
    pub fn line(&self) -> usize {
        self.position.line
    }

    /// 1-based column of the error.
    pub fn column(&self) -> usize {
        self.position.column
    }
}

/// The kinds of DSL errors.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DslErrorKind {
    /// The grammar expected something else here.
    #[error("expected {expected}, found {found}")]
    Unexpected {
        /// What the grammar allows here.
        expected: String,
        /// What the input has.
        found: String,
    },
    /// No token starts with this character.
    #[error("unrecognized input {0:?}")]
    Unrecognized(String),
    /// Operators of different kinds at one level.
    #[error("cannot combine '{first}' with '{second}' without parentheses")]
    MixedOperators {
        /// The operator used first.
        first: String,
        /// The conflicting operator.
        second: String,
    },
    /// Parentheses nested deeper than the parser allows.
    #[error("expression nested deeper than {0} levels")]
    TooDeep(usize),
    /// A relation defined twice in one type.
    #[error("relation '{relation}' is already defined in '{type_name}'")]
    DuplicateRelation {
        /// The relation.
        relation: String,
        /// The type.
        type_name: String,
    },
    /// A condition defined twice.
    #[error("condition '{0}' is already defined in the model")]
    DuplicateCondition(String),
    /// A condition parameter declared twice.
    #[error("parameter '{parameter}' is already defined in the condition '{condition}'")]
    DuplicateParameter {
        /// The parameter.
        parameter: String,
        /// The condition.
        condition: String,
    },
    /// `extend type` in a file that is not a module.
    #[error("extend can only be used in a modular model (type '{0}')")]
    ExtendOutsideModule(String),
    /// The same type extended twice in one module file.
    #[error("'{0}' is already extended in this file")]
    ExtendedTwice(String),
}

/// The first line of a DSL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// `model` / `schema <version>`.
    Model {
        /// The schema version text, e.g. `1.1`.
        schema_version: String,
    },
    /// `module <name>`.
    Module {
        /// The module name.
        name: String,
    },
}

/// A type definition (or extension) as written in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedType {
    /// The definition, shaped as the transformer emits it for this file.
    pub definition: TypeDefinition,
    /// True for `extend type`.
    pub is_extension: bool,
    /// Position of the type name.
    pub position: Position,
    /// Position of each relation name.
    pub relation_positions: BTreeMap<String, Position>,
}

/// A condition as written in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCondition {
    /// The condition.
    pub condition: Condition,
    /// Position of the condition name.
    pub position: Position,
}

/// One parsed DSL file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFile {
    /// The model or module header.
    pub header: Header,
    /// Types in source order.
    pub types: Vec<ParsedType>,
    /// Conditions in source order.
    pub conditions: Vec<ParsedCondition>,
}

impl ParsedFile {
    /// The module name, if this file is a module.
    pub fn module_name(&self) -> Option<&str> {
        match &self.header {
            Header::Module { name } => Some(name),
            Header::Model { .. } => None,
        }
    }

    /// The model exactly as `TransformDSLToJSON` returns it for this file
    /// (a module file yields no schema version).
    pub fn into_model(self) -> AuthorizationModel {
        let schema_version = match self.header {
            Header::Model { schema_version } => schema_version,
            Header::Module { .. } => String::new(),
        };
        AuthorizationModel {
            schema_version,
            type_definitions: self.types.into_iter().map(|t| t.definition).collect(),
            conditions: self
                .conditions
                .into_iter()
                .map(|c| (c.condition.name.clone(), c.condition))
                .collect(),
        }
    }
}

/// Parses one DSL file (model or module).
pub fn parse(source: &str) -> Result<ParsedFile, DslError> {
    let cleaned = strip_comments(source);
    parser::Parser::new(&cleaned).parse_file()
}

/// Parses a DSL model into its JSON model, like the official `TransformDSLToJSON`.
pub fn parse_model(source: &str) -> Result<AuthorizationModel, DslError> {
    parse(source).map(ParsedFile::into_model)
}

/// The transformer's comment removal, which keeps every line (and so every
/// position) in place.
fn strip_comments(source: &str) -> String {
    let lines: Vec<&str> = source
        .split('\n')
        .map(|line| {
            let trimmed = line.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                ""
            } else {
                line.split(" #").next().unwrap_or("").trim_end_matches(' ')
            }
        })
        .collect();
    lines.join("\n").trim_end_matches('\n').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_comments_but_keeps_lines() {
        let cleaned = strip_comments("# head\ntype a # tail\n  # indented\n\n");
        assert_eq!(cleaned, "\ntype a");
    }

    #[test]
    fn parses_every_operator() {
        let model = parse_model(
            "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define a: [user, user:*, doc#a with c]\n    define b: ([user] or a) and (a but not b)\n    define c: a from b\ncondition c(x: int) {\n  x < 1\n}\n",
        )
        .unwrap();
        let doc = model.type_definition("doc").unwrap();
        assert_eq!(doc.relations.len(), 3);
        assert_eq!(model.conditions["c"].expression, "x < 1");
    }
}
