//! Combining module files into one schema 1.2 model, like the official
//! `TransformModuleFilesToModel`, but with faults isolated per module.
//!
//! Same as upstream: type definitions keep file order; `metadata.module` and
//! `metadata.source_info.file` are stamped on types, on relations added by
//! `extend type`, and on conditions; extensions are applied after all types
//! are known, so a module may extend a type defined in a later file.
//!
//! Different from upstream: a module with any problem (syntax error, not a
//! module, duplicate type or condition, unknown extended type, relation defined
//! twice) is left out as a whole, an error naming it (and the module it
//! clashes with) is reported, and the remaining modules still compose. Leaving
//! a module out can make later extensions of its types fail; those modules are
//! then left out too. Upstream also rejects a file that both defines and
//! extends one type; here that simply works.
//!
//! Upstream does not validate semantics, so one module with, say, an undefined
//! relation makes OpenFGA reject the whole composed model. Here the composed
//! model is checked with [`crate::validate`]; every problem is blamed on the
//! module that wrote the type, the `extend type` relation or the condition
//! (references to other modules' types are fine), all of them are reported,
//! those modules are left out, and composition repeats until the rest is
//! valid. The model returned always passes [`crate::validate::validate`],
//! except when no module is left: OpenFGA rejects a model without types.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use thiserror::Error;

use crate::dsl::{self, DslError, ParsedFile, Position};
use crate::model::{AuthorizationModel, SourceInfo, TypeDefinition};
use crate::validate::{self, Subject, ValidationError};

/// The schema version of composed models.
pub const MODULAR_SCHEMA_VERSION: &str = "1.2";

/// One module file: its file name (e.g. `core.fga`) and DSL text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// File name, stamped as `source_info.file`.
    pub name: String,
    /// DSL text starting with `module <name>`.
    pub contents: String,
}

impl ModuleFile {
    /// A module file from a name and its text.
    pub fn new(name: impl Into<String>, contents: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            contents: contents.into(),
        }
    }
}

/// A module that was left out of the composed model, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}{}: {kind}", module.as_ref().map(|m| format!(" (module {m})")).unwrap_or_default())]
pub struct ModuleError {
    /// The rejected file.
    pub file: String,
    /// Its module name, when it could be parsed.
    pub module: Option<String>,
    /// The reason.
    pub kind: ModuleErrorKind,
}

/// Another module involved in a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRef {
    /// Its file name.
    pub file: String,
    /// Its module name.
    pub module: String,
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "module {} ({})", self.module, self.file)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a module was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModuleErrorKind {
    /// The file does not parse.
    #[error("{0}")]
    Syntax(#[from] DslError),
    /// The file starts with `model`, not `module`.
    #[error("file is not a module")]
    NotAModule,
    /// The type is already defined.
    #[error("duplicate type definition {type_name} at {position}, already defined in {existing}")]
    DuplicateType {
        /// The type.
        type_name: String,
        /// Where this file defines it.
        position: Position,
        /// The module that defined it first.
        existing: ModuleRef,
    },
    /// The condition is already defined.
    #[error("duplicate condition {name} at {position}, already defined in {existing}")]
    DuplicateCondition {
        /// The condition.
        name: String,
        /// Where this file defines it.
        position: Position,
        /// The module that defined it first.
        existing: ModuleRef,
    },
    /// `extend type` of a type no accepted module defines.
    #[error("extended type {type_name} at {position} does not exist")]
    UnknownExtendedType {
        /// The type.
        type_name: String,
        /// Where this file extends it.
        position: Position,
    },
    /// An extension adds a relation the type already has.
    #[error(
        "relation {relation} at {position} already exists on type {type_name}, defined in {existing}"
    )]
    DuplicateRelation {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
        /// Where this file defines it.
        position: Position,
        /// The module that defined it first.
        existing: ModuleRef,
    },
    /// The module composes, but OpenFGA would reject what it adds.
    #[error("{error}{}", position.map(|p| format!(" (at {p})")).unwrap_or_default())]
    Semantic {
        /// The problem.
        error: ValidationError,
        /// Where this file defines the type, relation or condition, when known.
        position: Option<Position>,
    },
}

struct Candidate {
    file: String,
    module: String,
    parsed: ParsedFile,
}

impl Candidate {
    fn reference(&self) -> ModuleRef {
        ModuleRef {
            file: self.file.clone(),
            module: self.module.clone(),
        }
    }

    /// Where this file defines what a validation error is about.
    fn position_of(&self, subject: Subject<'_>) -> Option<Position> {
        let types = &self.parsed.types;
        match subject {
            Subject::Model => None,
            Subject::Type(name) => types
                .iter()
                .find(|t| !t.is_extension && t.definition.type_name == name)
                .map(|t| t.position),
            Subject::Relation {
                type_name,
                relation,
            } => types
                .iter()
                .filter(|t| t.definition.type_name == type_name)
                .find_map(|t| t.relation_positions.get(relation).copied()),
            Subject::Condition(name) => self
                .parsed
                .conditions
                .iter()
                .find(|c| c.condition.name == name)
                .map(|c| c.position),
        }
    }

    fn error(&self, kind: ModuleErrorKind) -> ModuleError {
        ModuleError {
            file: self.file.clone(),
            module: Some(self.module.clone()),
            kind,
        }
    }
}

/// Composes module files into one schema 1.2 model. Returns the model built
/// from every module that fits, and one or more errors for each module left out.
pub fn compose(files: &[ModuleFile]) -> (AuthorizationModel, Vec<ModuleError>) {
    let mut errors = Vec::new();
    let mut candidates = Vec::new();
    for file in files {
        match dsl::parse(&file.contents) {
            Err(error) => errors.push(ModuleError {
                file: file.name.clone(),
                module: None,
                kind: error.into(),
            }),
            Ok(parsed) => match parsed.module_name() {
                None => errors.push(ModuleError {
                    file: file.name.clone(),
                    module: None,
                    kind: ModuleErrorKind::NotAModule,
                }),
                Some(module) => candidates.push(Candidate {
                    file: file.name.clone(),
                    module: module.to_owned(),
                    parsed,
                }),
            },
        }
    }
    // Each round either succeeds or drops at least one faulty module, so this ends.
    loop {
        match try_compose(&candidates) {
            Ok(model) => {
                let faulty = semantic_errors(&candidates, &model);
                if faulty.is_empty() {
                    return (model, errors);
                }
                let dropped: Vec<usize> = faulty.keys().copied().collect();
                errors.extend(faulty.into_values().flatten());
                for index in dropped.into_iter().rev() {
                    candidates.remove(index);
                }
            }
            Err((faulty, module_errors)) => {
                errors.extend(module_errors);
                candidates.remove(faulty);
            }
        }
    }
}

/// Every validation error of a structurally composed model, grouped by the
/// candidate that caused it, in candidate order.
fn semantic_errors(
    candidates: &[Candidate],
    model: &AuthorizationModel,
) -> BTreeMap<usize, Vec<ModuleError>> {
    let mut faulty: BTreeMap<usize, Vec<ModuleError>> = BTreeMap::new();
    for error in validate::validate(model) {
        if error == ValidationError::NoTypes {
            // Nothing left to compose is no module's fault.
            continue;
        }
        let by_origin = validate::origin(model, &error)
            .and_then(|origin| candidates.iter().position(|c| c.file == origin.file));
        let index = by_origin
            .or_else(|| match &error {
                // The module that brought the first type over the limit.
                ValidationError::TooManyTypes { limit, .. } => {
                    let file = model
                        .type_definitions
                        .get(*limit)
                        .and_then(|t| t.metadata.as_ref())
                        .and_then(|m| m.source_info.as_ref())
                        .map(|s| s.file.as_str());
                    candidates
                        .iter()
                        .position(|c| Some(c.file.as_str()) == file)
                }
                _ => None,
            })
            // Composition stamps every type, relation and condition with
            // its file, so this cannot happen; blaming the last module still
            // keeps the promise that the returned model is valid.
            .or_else(|| candidates.len().checked_sub(1));
        let Some(index) = index else { continue };
        let candidate = &candidates[index];
        let position = candidate.position_of(error.subject());
        faulty
            .entry(index)
            .or_default()
            .push(candidate.error(ModuleErrorKind::Semantic { error, position }));
    }
    faulty
}

/// Composes all candidates, or names the first faulty one with its errors.
fn try_compose(candidates: &[Candidate]) -> Result<AuthorizationModel, (usize, Vec<ModuleError>)> {
    let mut type_definitions: Vec<TypeDefinition> = Vec::new();
    let mut type_owner: HashMap<String, usize> = HashMap::new();
    let mut conditions = BTreeMap::new();
    let mut condition_owner: HashMap<String, usize> = HashMap::new();

    for (index, candidate) in candidates.iter().enumerate() {
        let mut problems = Vec::new();
        let mut own_types = HashMap::new();
        for parsed in candidate.parsed.types.iter().filter(|t| !t.is_extension) {
            let name = &parsed.definition.type_name;
            if let Some(&owner) = type_owner.get(name).or(own_types.get(name)) {
                problems.push(candidate.error(ModuleErrorKind::DuplicateType {
                    type_name: name.clone(),
                    position: parsed.position,
                    existing: candidates[owner].reference(),
                }));
            }
            own_types.insert(name.clone(), index);
        }
        for parsed in &candidate.parsed.conditions {
            let name = &parsed.condition.name;
            if let Some(&owner) = condition_owner.get(name) {
                problems.push(candidate.error(ModuleErrorKind::DuplicateCondition {
                    name: name.clone(),
                    position: parsed.position,
                    existing: candidates[owner].reference(),
                }));
            }
        }
        if !problems.is_empty() {
            return Err((index, problems));
        }
        for parsed in candidate.parsed.types.iter().filter(|t| !t.is_extension) {
            let mut definition = parsed.definition.clone();
            if let Some(metadata) = definition.metadata.as_mut() {
                metadata.source_info = Some(source_info(&candidate.file));
            }
            type_owner.insert(definition.type_name.clone(), index);
            type_definitions.push(definition);
        }
        for parsed in &candidate.parsed.conditions {
            let mut condition = parsed.condition.clone();
            if let Some(metadata) = condition.metadata.as_mut() {
                metadata.source_info = Some(source_info(&candidate.file));
            }
            condition_owner.insert(condition.name.clone(), index);
            conditions.insert(condition.name.clone(), condition);
        }
    }

    // Who added each relation, to name the other side of a clash.
    let mut relation_owner: HashMap<(String, String), usize> = HashMap::new();
    for definition in &type_definitions {
        let owner = type_owner[&definition.type_name];
        for relation in definition.relations.keys() {
            relation_owner.insert((definition.type_name.clone(), relation.clone()), owner);
        }
    }
    for (index, candidate) in candidates.iter().enumerate() {
        let mut problems = Vec::new();
        for extension in candidate.parsed.types.iter().filter(|t| t.is_extension) {
            let type_name = &extension.definition.type_name;
            let Some(target) = type_definitions
                .iter_mut()
                .find(|t| &t.type_name == type_name)
            else {
                problems.push(candidate.error(ModuleErrorKind::UnknownExtendedType {
                    type_name: type_name.clone(),
                    position: extension.position,
                }));
                continue;
            };
            let extension_metadata = extension.definition.metadata.clone().unwrap_or_default();
            for (relation, rewrite) in &extension.definition.relations {
                let key = (type_name.clone(), relation.clone());
                if let Some(&owner) = relation_owner.get(&key) {
                    problems.push(candidate.error(ModuleErrorKind::DuplicateRelation {
                        type_name: type_name.clone(),
                        relation: relation.clone(),
                        position: extension.relation_positions[relation],
                        existing: candidates[owner].reference(),
                    }));
                    continue;
                }
                let mut metadata = extension_metadata
                    .relations
                    .get(relation)
                    .cloned()
                    .unwrap_or_default();
                metadata.source_info = Some(source_info(&candidate.file));
                target.relations.insert(relation.clone(), rewrite.clone());
                target
                    .metadata
                    .get_or_insert_with(Default::default)
                    .relations
                    .insert(relation.clone(), metadata);
                relation_owner.insert(key, index);
            }
        }
        if !problems.is_empty() {
            return Err((index, problems));
        }
    }

    Ok(AuthorizationModel {
        schema_version: MODULAR_SCHEMA_VERSION.to_owned(),
        type_definitions,
        conditions,
    })
}

fn source_info(file: &str) -> SourceInfo {
    SourceInfo {
        file: file.to_owned(),
    }
}
