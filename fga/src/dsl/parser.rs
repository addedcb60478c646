//! Recursive-descent parser following `OpenFGAParser.g4` rule by rule, plus the
//! checks the official transformer's tree listener performs.

use std::collections::{BTreeMap, BTreeSet};

use super::lexer::{Kind, Token, tokenize};
use super::{DslError, DslErrorKind, Header, ParsedCondition, ParsedFile, ParsedType, Position};
use crate::model::{
    Condition, ConditionMetadata, ConditionParamTypeRef, Metadata, ParamTypeName, RelationMetadata,
    RelationReference, TypeDefinition, Userset,
};

/// Deep enough for any real model, shallow enough to never exhaust the stack.
const MAX_NESTING: usize = 64;

type Result<T> = std::result::Result<T, DslError>;

/// Token kinds usable as names (the grammar's `identifier` rule).
const NAME_KINDS: &[Kind] = &[
    Kind::Identifier,
    Kind::Module,
    Kind::Model,
    Kind::Schema,
    Kind::Extend,
    Kind::Type,
    Kind::Relation,
];

pub(crate) struct Parser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
    depth: usize,
    module_name: Option<String>,
    /// Direct restrictions of the relation being parsed.
    direct_types: Vec<RelationReference>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(source: &'a str) -> Self {
        Self {
            tokens: tokenize(source),
            pos: 0,
            depth: 0,
            module_name: None,
            direct_types: Vec::new(),
        }
    }

    fn peek(&self) -> Kind {
        self.peek_at(0)
    }

    fn peek_at(&self, offset: usize) -> Kind {
        self.tokens
            .get(self.pos + offset)
            .map_or(Kind::Eof, |t| t.kind)
    }

    fn current(&self) -> Token<'a> {
        self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token<'a> {
        let token = self.current();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn skip(&mut self, kind: Kind) {
        if self.peek() == kind {
            self.bump();
        }
    }

    fn error_at(token: Token<'_>, expected: &str) -> DslError {
        let kind = match token.kind {
            Kind::Invalid => DslErrorKind::Unrecognized(token.text.to_owned()),
            _ => DslErrorKind::Unexpected {
                expected: expected.to_owned(),
                found: describe(token),
            },
        };
        DslError {
            position: position(token),
            kind,
        }
    }

    fn expect(&mut self, kind: Kind, expected: &str) -> Result<Token<'a>> {
        if self.peek() == kind {
            Ok(self.bump())
        } else {
            Err(Self::error_at(self.current(), expected))
        }
    }

    fn name(&mut self, extended: bool, expected: &str) -> Result<(String, Position)> {
        let kind = self.peek();
        if NAME_KINDS.contains(&kind) || (extended && kind == Kind::ExtendedIdentifier) {
            let token = self.bump();
            Ok((token.text.to_owned(), position(token)))
        } else {
            Err(Self::error_at(self.current(), expected))
        }
    }

    /// Index of the first token after the line break at `self.pos`, skipping
    /// whole comment lines (`multiLineComment`).
    fn significant_after_newline(&self) -> usize {
        let mut index = self.pos + 1;
        while self.tokens.get(index).is_some_and(|t| t.kind == Kind::Hash) {
            while !matches!(self.tokens[index].kind, Kind::Newline | Kind::Eof) {
                index += 1;
            }
            if self.tokens[index].kind == Kind::Newline {
                index += 1;
            }
        }
        index.min(self.tokens.len() - 1)
    }

    /// At a line break: does the next significant line start with one of `kinds`?
    fn next_line_starts_with(&self, kinds: &[Kind]) -> bool {
        self.peek() == Kind::Newline
            && kinds.contains(&self.tokens[self.significant_after_newline()].kind)
    }

    fn skip_comment_lines(&mut self) {
        let target = self.significant_after_newline();
        self.pos = target;
    }

    pub(crate) fn parse_file(mut self) -> Result<ParsedFile> {
        self.parse_file_inner().map_err(|error| {
            // Input no token matches, up to just after the point where parsing
            // stopped, is the real culprit.
            let invalid = self.tokens.iter().position(|t| t.kind == Kind::Invalid);
            let stopped = self
                .tokens
                .iter()
                .position(|t| position(*t) >= error.position)
                .unwrap_or(self.tokens.len());
            match invalid {
                Some(index) if index <= stopped + 1 => Self::error_at(self.tokens[index], ""),
                _ => error,
            }
        })
    }

    fn parse_file_inner(&mut self) -> Result<ParsedFile> {
        self.skip(Kind::Whitespace);
        self.skip(Kind::Newline);
        // An optional comment block before the header (`multiLineComment NEWLINE`).
        while self.peek() == Kind::Hash {
            while !matches!(self.peek(), Kind::Newline | Kind::Eof) {
                self.bump();
            }
            if self.peek_at(1) == Kind::Hash {
                self.bump();
            } else {
                self.expect(Kind::Newline, "end of line after comment")?;
            }
        }
        let header = self.header()?;
        let mut types: Vec<ParsedType> = Vec::new();
        let mut extended = BTreeSet::new();
        while self.next_line_starts_with(&[Kind::Type, Kind::Extend]) {
            let parsed = self.type_definition()?;
            if parsed.is_extension {
                match &self.module_name {
                    None => {
                        return Err(semantic(
                            parsed.position,
                            DslErrorKind::ExtendOutsideModule(parsed.definition.type_name),
                        ));
                    }
                    Some(_) if !extended.insert(parsed.definition.type_name.clone()) => {
                        return Err(semantic(
                            parsed.position,
                            DslErrorKind::ExtendedTwice(parsed.definition.type_name),
                        ));
                    }
                    Some(_) => {}
                }
            }
            types.push(parsed);
        }
        let mut conditions: Vec<ParsedCondition> = Vec::new();
        while self.next_line_starts_with(&[Kind::Condition]) {
            let parsed = self.condition()?;
            if conditions
                .iter()
                .any(|c| c.condition.name == parsed.condition.name)
            {
                return Err(semantic(
                    parsed.position,
                    DslErrorKind::DuplicateCondition(parsed.condition.name),
                ));
            }
            conditions.push(parsed);
        }
        if self.peek() == Kind::Newline {
            let next = self.significant_after_newline();
            if self.tokens[next].kind != Kind::Eof {
                let expected = if conditions.is_empty() {
                    "'type', 'extend type' or 'condition' at the start of a line"
                } else {
                    "'condition' at the start of a line (types must come before conditions)"
                };
                return Err(Self::error_at(self.tokens[next], expected));
            }
            self.pos = next;
        }
        self.expect(Kind::Eof, "end of line")?;
        Ok(ParsedFile {
            header,
            types,
            conditions,
        })
    }

    fn header(&mut self) -> Result<Header> {
        match self.peek() {
            Kind::Model => {
                self.bump();
                self.expect(Kind::Newline, "line break after 'model'")?;
                self.expect(Kind::Schema, "'schema'")?;
                self.expect(Kind::Whitespace, "a space after 'schema'")?;
                let version = self.expect(Kind::SchemaVersion, "a schema version such as 1.1")?;
                self.skip(Kind::Whitespace);
                Ok(Header::Model {
                    schema_version: version.text.to_owned(),
                })
            }
            Kind::Module => {
                self.bump();
                self.expect(Kind::Whitespace, "a space after 'module'")?;
                let (name, _) = self.name(false, "a module name")?;
                self.skip(Kind::Whitespace);
                self.module_name = Some(name.clone());
                Ok(Header::Module { name })
            }
            _ => Err(Self::error_at(self.current(), "'model' or 'module'")),
        }
    }

    fn type_definition(&mut self) -> Result<ParsedType> {
        self.skip_comment_lines();
        let is_extension = self.peek() == Kind::Extend;
        if is_extension {
            self.bump();
            self.expect(Kind::Whitespace, "a space after 'extend'")?;
        }
        self.expect(Kind::Type, "'type'")?;
        self.expect(Kind::Whitespace, "a space after 'type'")?;
        let (type_name, type_position) = self.name(true, "a type name")?;
        let mut relations = BTreeMap::new();
        let mut relation_metadata = BTreeMap::new();
        let mut relation_positions = BTreeMap::new();
        if self.peek() == Kind::Newline && self.peek_at(1) == Kind::Relations {
            self.bump();
            self.bump();
            if !self.next_line_starts_with(&[Kind::Define]) {
                let at = if self.peek() == Kind::Newline {
                    self.tokens[self.significant_after_newline()]
                } else {
                    self.current()
                };
                return Err(Self::error_at(at, "'define' on the line after 'relations'"));
            }
            while self.next_line_starts_with(&[Kind::Define]) {
                let (name, name_position, rewrite) = self.relation_declaration()?;
                if relations.contains_key(&name) {
                    return Err(semantic(
                        name_position,
                        DslErrorKind::DuplicateRelation {
                            relation: name,
                            type_name,
                        },
                    ));
                }
                let module = match &self.module_name {
                    Some(module) if is_extension => module.clone(),
                    _ => String::new(),
                };
                relation_metadata.insert(
                    name.clone(),
                    RelationMetadata {
                        directly_related_user_types: std::mem::take(&mut self.direct_types),
                        module,
                        source_info: None,
                    },
                );
                relation_positions.insert(name.clone(), name_position);
                relations.insert(name, rewrite);
            }
        }
        let metadata = match &self.module_name {
            None if relations.is_empty() => None,
            module => Some(Metadata {
                relations: relation_metadata,
                module: module.clone().unwrap_or_default(),
                source_info: None,
            }),
        };
        Ok(ParsedType {
            definition: TypeDefinition {
                type_name,
                relations,
                metadata,
            },
            is_extension,
            position: type_position,
            relation_positions,
        })
    }

    fn relation_declaration(&mut self) -> Result<(String, Position, Userset)> {
        self.skip_comment_lines();
        self.expect(Kind::Define, "'define'")?;
        self.expect(Kind::Whitespace, "a space after 'define'")?;
        let (name, name_position) = self.name(true, "a relation name")?;
        self.skip(Kind::Whitespace);
        self.expect(Kind::Colon, "':' after the relation name")?;
        self.skip(Kind::Whitespace);
        self.direct_types.clear();
        let rewrite = self.relation_def(true)?;
        Ok((name, name_position, rewrite))
    }

    /// `relationDef` (with `allow_direct`) or `relationDefNoDirect`.
    fn relation_def(&mut self, allow_direct: bool) -> Result<Userset> {
        let first = self.operand(allow_direct)?;
        let operator = self.peek_at(1);
        if !(self.peek() == Kind::Whitespace && is_operator(operator)) {
            return Ok(first);
        }
        let mut operands = vec![first];
        while self.peek() == Kind::Whitespace && is_operator(self.peek_at(1)) {
            let space = self.bump();
            let token = self.bump();
            if token.kind != operator || operator == Kind::ButNot && operands.len() > 1 {
                // Where the official parser points: at top level no grammar
                // alternative fits from the blank before the operator on
                // ("no viable alternative at input ' '"); inside parentheses
                // the operator itself is the extraneous input.
                let at = if self.depth == 0 { space } else { token };
                return Err(semantic(
                    position(at),
                    DslErrorKind::MixedOperators {
                        first: self_text(operator).to_owned(),
                        second: token.text.to_owned(),
                    },
                ));
            }
            self.expect(Kind::Whitespace, "a space after the operator")?;
            operands.push(self.operand(false)?);
        }
        Ok(match operator {
            Kind::Or => Userset::union(operands),
            Kind::And => Userset::intersection(operands),
            _ => {
                let subtract = operands.pop().expect("two operands");
                let base = operands.pop().expect("two operands");
                Userset::difference(base, subtract)
            }
        })
    }

    fn operand(&mut self, allow_direct: bool) -> Result<Userset> {
        match self.peek() {
            Kind::LBracket if allow_direct => {
                self.direct_assignment()?;
                Ok(Userset::this())
            }
            Kind::LParen => {
                if self.depth >= MAX_NESTING {
                    return Err(semantic(
                        position(self.current()),
                        DslErrorKind::TooDeep(MAX_NESTING),
                    ));
                }
                self.depth += 1;
                self.bump();
                while self.peek() == Kind::Whitespace {
                    self.bump();
                }
                let inner = self.relation_def(allow_direct)?;
                self.skip(Kind::Whitespace);
                self.expect(Kind::RParen, "an operator or ')'")?;
                self.depth -= 1;
                Ok(inner)
            }
            kind if NAME_KINDS.contains(&kind) || kind == Kind::ExtendedIdentifier => {
                let (computed, _) = self.name(true, "a relation name")?;
                if self.peek() == Kind::Whitespace && self.peek_at(1) == Kind::From {
                    self.bump();
                    self.bump();
                    self.expect(Kind::Whitespace, "a space after 'from'")?;
                    let (tupleset, _) = self.name(true, "a relation name after 'from'")?;
                    Ok(Userset::tuple_to_userset(computed, tupleset))
                } else {
                    Ok(Userset::computed(computed))
                }
            }
            _ => Err(Self::error_at(
                self.current(),
                if allow_direct {
                    "'[', '(' or a relation name"
                } else {
                    "'(' or a relation name (a direct restriction '[...]' may only come first)"
                },
            )),
        }
    }

    fn direct_assignment(&mut self) -> Result<()> {
        self.bump();
        self.skip(Kind::Whitespace);
        self.type_restriction()?;
        self.skip(Kind::Whitespace);
        while self.peek() == Kind::Comma {
            self.bump();
            self.skip(Kind::Whitespace);
            self.type_restriction()?;
            self.skip(Kind::Whitespace);
        }
        self.expect(Kind::RBracket, "',' or ']'")?;
        Ok(())
    }

    fn type_restriction(&mut self) -> Result<()> {
        self.skip(Kind::Newline);
        let (type_name, _) = self.name(true, "a type name")?;
        let mut reference = RelationReference::new(type_name);
        match self.peek() {
            Kind::Colon => {
                self.bump();
                self.expect(Kind::Star, "'*' after ':'")?;
                reference = RelationReference::wildcard(reference.type_name);
            }
            Kind::Hash => {
                self.bump();
                let (relation, _) = self.name(true, "a relation name after '#'")?;
                reference = RelationReference::userset(reference.type_name, relation);
            }
            _ => {}
        }
        if self.peek() == Kind::Whitespace && self.peek_at(1) == Kind::With {
            self.bump();
            self.bump();
            self.expect(Kind::Whitespace, "a space after 'with'")?;
            let condition = match self.peek() {
                Kind::Identifier | Kind::DollarExpression => self.bump().text,
                _ => return Err(Self::error_at(self.current(), "a condition name")),
            };
            reference = reference.with_condition(condition);
        }
        self.skip(Kind::Newline);
        self.direct_types.push(reference);
        Ok(())
    }

    fn condition(&mut self) -> Result<ParsedCondition> {
        self.skip_comment_lines();
        self.expect(Kind::Condition, "'condition'")?;
        self.expect(Kind::Whitespace, "a space after 'condition'")?;
        let name_token = self.expect(Kind::Identifier, "a condition name")?;
        let name = name_token.text.to_owned();
        self.skip(Kind::Whitespace);
        self.expect(Kind::LParen, "'('")?;
        let mut parameters = BTreeMap::new();
        loop {
            self.skip(Kind::Whitespace);
            let (parameter, at, type_ref) = self.condition_parameter()?;
            if parameters.insert(parameter.clone(), type_ref).is_some() {
                return Err(semantic(
                    at,
                    DslErrorKind::DuplicateParameter {
                        parameter,
                        condition: name,
                    },
                ));
            }
            self.skip(Kind::Whitespace);
            if self.peek() != Kind::Comma {
                break;
            }
            self.bump();
        }
        self.expect(Kind::RParen, "',' or ')'")?;
        self.skip(Kind::Whitespace);
        self.expect(Kind::LBrace, "'{'")?;
        self.skip(Kind::Newline);
        self.skip(Kind::Whitespace);
        let mut expression = String::new();
        loop {
            match self.peek() {
                Kind::RBrace => break,
                Kind::Eof | Kind::Invalid => {
                    return Err(Self::error_at(self.current(), "'}' closing the condition"));
                }
                _ => expression.push_str(self.bump().text),
            }
        }
        self.bump();
        let metadata = self.module_name.as_ref().map(|module| ConditionMetadata {
            module: module.clone(),
            source_info: None,
        });
        Ok(ParsedCondition {
            condition: Condition {
                name,
                expression: expression.trim_end_matches('\n').to_owned(),
                parameters,
                metadata,
            },
            position: position(name_token),
        })
    }

    fn condition_parameter(&mut self) -> Result<(String, Position, ConditionParamTypeRef)> {
        let name = self.expect(Kind::Identifier, "a parameter name")?;
        self.skip(Kind::Whitespace);
        self.expect(Kind::Colon, "':' after the parameter name")?;
        self.skip(Kind::Whitespace);
        let type_ref = match self.peek() {
            Kind::ParamType => ConditionParamTypeRef::scalar(param_type(self.bump())),
            Kind::ParamContainer => {
                let container = param_type(self.bump());
                self.expect(Kind::Less, "'<'")?;
                let element = self.expect(Kind::ParamType, "an element type")?;
                self.expect(Kind::Greater, "'>'")?;
                ConditionParamTypeRef::container(container, param_type(element))
            }
            _ => return Err(Self::error_at(self.current(), "a parameter type")),
        };
        Ok((name.text.to_owned(), position(name), type_ref))
    }
}

fn param_type(token: Token<'_>) -> ParamTypeName {
    ParamTypeName::from_dsl_keyword(token.text).expect("lexer only yields known type names")
}

fn is_operator(kind: Kind) -> bool {
    matches!(kind, Kind::Or | Kind::And | Kind::ButNot)
}

fn self_text(kind: Kind) -> &'static str {
    match kind {
        Kind::Or => "or",
        Kind::And => "and",
        _ => "but not",
    }
}

fn position(token: Token<'_>) -> Position {
    Position {
        line: token.line,
        column: token.column,
    }
}

fn semantic(position: Position, kind: DslErrorKind) -> DslError {
    DslError { position, kind }
}

fn describe(token: Token<'_>) -> String {
    match token.kind {
        Kind::Eof => "end of input".to_owned(),
        Kind::Newline => "end of line".to_owned(),
        Kind::Whitespace => "whitespace".to_owned(),
        _ => format!("'{}'", token.text),
    }
}
