//! Semantic validation of an authorization model, rule for rule as the
//! OpenFGA server does it in `WriteAuthorizationModel`.
//!
//! The rules come from three places of openfga/openfga and openfga/api:
//!
//! * request validation of the protobuf (`authzmodel.proto`): name patterns
//!   `^[^:#@\s]{1,254}$` for types and `^[^:#@\s]{1,50}$` for relations,
//!   conditions and condition parameters, at most 50 bytes for a relation named
//!   in a rewrite, at most 512 bytes of condition expression, at most 25
//!   parameters per condition, at least one type definition, schema version
//!   `1.0`, `1.1` or `1.2` (an empty one is rejected too);
//! * `pkg/server/commands/write_authzmodel.go`: at most
//!   [`MAX_TYPES_PER_MODEL`] type definitions (a server setting, see there);
//! * `pkg/typesystem/typesystem.go` `NewAndValidate`: schema version, duplicate
//!   types, reserved names, rewrites (`validateRelation`: undefined relations,
//!   tuplesets that are not direct, a relation that is its own computed
//!   userset), type restrictions (undefined types, relations and conditions,
//!   usersets or wildcards on a tupleset), entry points and cycles, and
//!   conditions.
//!
//! Differences, on purpose:
//!
//! * The server stops at the first problem; [`validate`] reports all of them.
//!   Entry-point and cycle checks of a relation only run when its rewrite and
//!   type restrictions are valid and everything they reach is defined, as the
//!   server's own checks assume; so one mistake is reported once, not again
//!   as a missing entry point of everything that uses it.
//! * Conditions are not compiled: CEL type errors (an undeclared parameter, a
//!   non-boolean result) are not found here. Only what can be decided without
//!   CEL is checked (empty expression, parameter type shapes).
//! * The server also limits the encoded model size (256 KiB by default);
//!   that is not checked.
//! * Unused conditions are accepted, as the server accepts them (the
//!   language tooling's validator warns about them).
//! * The entry-point and cycle searches stop at [`MAX_SEARCH_DEPTH`] nested
//!   steps and report [`ValidationError::TooDeep`]. The server searches on
//!   Go's growable stacks without a limit; here the search runs on a thread's
//!   fixed stack, which a chain of about 1,500 relations (`define r1: r0`,
//!   `define r2: r1` …) overflowed, aborting the process. The server gives up
//!   on such a model anyway: v1.22.1 answers a chain of 1,000 relations with
//!   `deadline exceeded`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use thiserror::Error;

use crate::model::{
    AuthorizationModel, ConditionParamTypeRef, RelationReference, TypeDefinition, Userset,
};

/// The schema versions the server accepts.
pub const SUPPORTED_SCHEMA_VERSIONS: &[&str] = &["1.1", "1.2"];

/// The most type definitions a model may have. This is not a property of the
/// model language but the server's `maxTypesPerAuthorizationModel` setting
/// (`--max-types-per-authorization-model`), whose default is 100; a server
/// configured otherwise accepts or rejects differently.
pub const MAX_TYPES_PER_MODEL: usize = 100;

/// The longest type name, in characters (protobuf pattern `^[^:#@\s]{1,254}$`).
pub const MAX_TYPE_NAME_CHARS: usize = 254;

/// The longest relation, condition or parameter name, in characters
/// (protobuf pattern `^[^:#@\s]{1,50}$`).
pub const MAX_NAME_CHARS: usize = 50;

/// The longest relation name a rewrite may refer to, in bytes (protobuf
/// `ObjectRelation.relation` `max_bytes`), which differs from the character
/// limit for names with non-ASCII characters.
pub const MAX_REWRITE_RELATION_BYTES: usize = 50;

/// The longest condition expression, in bytes.
pub const MAX_CONDITION_EXPRESSION_BYTES: usize = 512;

/// The most parameters a condition may declare.
pub const MAX_CONDITION_PARAMETERS: usize = 25;

/// The most nested steps (a relation to the relation it refers to, an operator to its
/// operands) the entry-point and cycle searches take from one relation; see the module docs.
/// Not a server rule, but far above what a check can use: the server resolves at most 25
/// nested steps by default (`--resolve-node-limit`).
pub const MAX_SEARCH_DEPTH: usize = 256;

/// One problem that makes OpenFGA reject a model. Messages follow the
/// server's wording where it has one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValidationError {
    /// The schema version is not 1.1 or 1.2.
    #[error("invalid schema version '{version}'")]
    InvalidSchemaVersion {
        /// The version found.
        version: String,
    },
    /// A model without type definitions.
    #[error("an authorization model must contain at least one type definition")]
    NoTypes,
    /// More type definitions than the server allows.
    #[error(
        "the number of type definitions in an authorization model ({count}) exceeds the allowed limit of {limit}"
    )]
    TooManyTypes {
        /// How many the model has.
        count: usize,
        /// [`MAX_TYPES_PER_MODEL`].
        limit: usize,
    },
    /// A type defined twice.
    #[error("an authorization model cannot contain duplicate types: '{type_name}'")]
    DuplicateType {
        /// The type.
        type_name: String,
    },
    /// A type name that is empty, too long or contains `:`, `#`, `@` or whitespace.
    #[error("type name '{type_name}' does not match regex pattern \"^[^:#@\\s]{{1,254}}$\"")]
    InvalidTypeName {
        /// The type.
        type_name: String,
    },
    /// A relation name that is empty, too long or contains `:`, `#`, `@` or whitespace.
    #[error(
        "relation name '{relation}' in object type '{type_name}' does not match regex pattern \"^[^:#@\\s]{{1,50}}$\""
    )]
    InvalidRelationName {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
    },
    /// A rewrite names a relation longer than 50 bytes.
    #[error(
        "the definition of relation '{relation}' in object type '{type_name}' refers to '{referenced}', which is longer than 50 bytes"
    )]
    ReferenceTooLong {
        /// The type.
        type_name: String,
        /// The relation whose rewrite has the reference.
        relation: String,
        /// The overlong name.
        referenced: String,
    },
    /// A type named `self` or `this`.
    #[error("the definition of type '{type_name}' is invalid: self and this are reserved keywords")]
    ReservedTypeName {
        /// The type.
        type_name: String,
    },
    /// A relation named `self` or `this`.
    #[error(
        "the definition of relation '{relation}' in object type '{type_name}' is invalid: self and this are reserved keywords"
    )]
    ReservedRelationName {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
    },
    /// A relation whose rewrite is the relation itself (`define r: r`).
    #[error(
        "the definition of relation '{relation}' in object type '{type_name}' is invalid: invalid userset rewrite definition"
    )]
    SelfReference {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
    },
    /// A rewrite refers to a relation the type does not have.
    #[error("'{type_name}#{undefined}' relation is undefined (used by relation '{relation}')")]
    UndefinedRelation {
        /// The type.
        type_name: String,
        /// The relation whose rewrite has the reference.
        relation: String,
        /// The missing relation.
        undefined: String,
    },
    /// The tupleset of `x from tupleset` is not a plain directly assignable relation.
    #[error(
        "the '{type_name}#{tupleset}' relation is referenced in at least one tupleset and thus must be a direct relation (used by relation '{relation}')"
    )]
    TuplesetNotDirect {
        /// The type.
        type_name: String,
        /// The relation with the `from`.
        relation: String,
        /// The tupleset relation.
        tupleset: String,
    },
    /// In `computed from tupleset`, none of the tupleset's types has `computed`.
    #[error(
        "undefined relation: {computed} does not appear as a relation in any of the directly related user types of '{type_name}#{tupleset}' (used by relation '{relation}')"
    )]
    UndefinedTuplesetRelation {
        /// The type.
        type_name: String,
        /// The relation with the `from`.
        relation: String,
        /// The tupleset relation.
        tupleset: String,
        /// The relation looked up on the tupleset's types.
        computed: String,
    },
    /// A directly assignable relation (`[...]`) without types.
    #[error(
        "the assignable relation '{relation}' in object type '{type_name}' must contain at least one relation type"
    )]
    MissingRelationTypes {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
    },
    /// Type restrictions on a relation that is not directly assignable.
    #[error(
        "the non-assignable relation '{relation}' in object type '{type_name}' should not contain a relation type"
    )]
    UnexpectedRelationTypes {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
    },
    /// A type restriction names an undefined type.
    #[error(
        "the relation type '{related}' on '{relation}' in object type '{type_name}' is not valid: type '{undefined}' is undefined"
    )]
    UndefinedRelatedType {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
        /// The restriction as written (`group`, `group#member`, `group:*`).
        related: String,
        /// The undefined type.
        undefined: String,
    },
    /// A type restriction `type#relation` names an undefined relation.
    #[error(
        "the relation type '{related}' on '{relation}' in object type '{type_name}' is not valid: relation '{related}' is undefined"
    )]
    UndefinedRelatedRelation {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
        /// The restriction, `type#relation`.
        related: String,
    },
    /// A tupleset relation allows a userset or wildcard, where only plain types work.
    #[error(
        "the relation type '{related}' on '{relation}' in object type '{type_name}' is not valid: '{relation}' is used as a tupleset, so it may only allow plain types"
    )]
    TuplesetRelatedNotDirect {
        /// The type.
        type_name: String,
        /// The tupleset relation.
        relation: String,
        /// The offending restriction (`group#member` or `user:*`).
        related: String,
    },
    /// A type restriction `with condition` names an undefined condition.
    #[error(
        "condition {condition} is undefined for relation {relation} (in object type '{type_name}')"
    )]
    UndefinedCondition {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
        /// The condition.
        condition: String,
    },
    /// No way to ever relate a user: every path ends in something that cannot be written.
    #[error(
        "the definition of relation '{relation}' in object type '{type_name}' is invalid: {}",
        if *possible_loop { "potential loop" } else { "no entrypoints defined" }
    )]
    NoEntrypoints {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
        /// The server says `potential loop`: the search came back to a relation it was checking.
        possible_loop: bool,
    },
    /// The entry-point or cycle search from a relation went more than
    /// [`MAX_SEARCH_DEPTH`] steps deep (not a server rule; see the module docs).
    #[error(
        "the definition of relation '{relation}' in object type '{type_name}' is invalid: it leads through more than {limit} relations and operators in a row"
    )]
    TooDeep {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
        /// [`MAX_SEARCH_DEPTH`].
        limit: usize,
    },
    /// A relation reaches itself through computed usersets of its own type.
    #[error(
        "the definition of relation '{relation}' in object type '{type_name}' is invalid: an authorization model cannot contain a cycle"
    )]
    Cycle {
        /// The type.
        type_name: String,
        /// The relation.
        relation: String,
    },
    /// A condition name that is empty, too long or contains `:`, `#`, `@` or whitespace.
    #[error("condition name '{name}' does not match regex pattern \"^[^:#@\\s]{{1,50}}$\"")]
    InvalidConditionName {
        /// The name.
        name: String,
    },
    /// A condition stored under another name than its own.
    #[error("condition key '{key}' does not match condition name '{name}'")]
    ConditionNameMismatch {
        /// The map key.
        key: String,
        /// The condition's name.
        name: String,
    },
    /// A condition without an expression.
    #[error("failed to compile expression on condition '{condition}': the expression is empty")]
    EmptyConditionExpression {
        /// The condition.
        condition: String,
    },
    /// A condition expression over 512 bytes.
    #[error("condition '{condition}' expression is {bytes} bytes long, at most 512 allowed")]
    ConditionExpressionTooLong {
        /// The condition.
        condition: String,
        /// Its length.
        bytes: usize,
    },
    /// More than 25 parameters.
    #[error("condition '{condition}' has {count} parameters, at most 25 allowed")]
    TooManyConditionParameters {
        /// The condition.
        condition: String,
        /// How many it has.
        count: usize,
    },
    /// A parameter name that is empty, too long or contains `:`, `#`, `@` or whitespace.
    #[error(
        "parameter name '{parameter}' of condition '{condition}' does not match regex pattern \"^[^:#@\\s]{{1,50}}$\""
    )]
    InvalidParameterName {
        /// The condition.
        condition: String,
        /// The parameter.
        parameter: String,
    },
    /// A `map` or `list` without exactly one element type, or a scalar with one.
    #[error(
        "failed to compile expression on condition '{condition}' - failed to decode parameter type for parameter '{parameter}': map and list need one element type, other types none"
    )]
    InvalidParameterType {
        /// The condition.
        condition: String,
        /// The parameter.
        parameter: String,
    },
}

/// What part of a model an error is about, to find who wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// The model as a whole (schema version).
    Model,
    /// A type definition.
    Type(&'a str),
    /// A relation of a type.
    Relation {
        /// The type.
        type_name: &'a str,
        /// The relation.
        relation: &'a str,
    },
    /// A condition (by its map key).
    Condition(&'a str),
}

impl ValidationError {
    /// The type, relation or condition the error is about.
    pub fn subject(&self) -> Subject<'_> {
        use ValidationError as E;
        match self {
            E::InvalidSchemaVersion { .. } | E::NoTypes | E::TooManyTypes { .. } => Subject::Model,
            E::DuplicateType { type_name }
            | E::InvalidTypeName { type_name }
            | E::ReservedTypeName { type_name } => Subject::Type(type_name),
            E::InvalidRelationName {
                type_name,
                relation,
            }
            | E::ReferenceTooLong {
                type_name,
                relation,
                ..
            }
            | E::ReservedRelationName {
                type_name,
                relation,
            }
            | E::SelfReference {
                type_name,
                relation,
            }
            | E::UndefinedRelation {
                type_name,
                relation,
                ..
            }
            | E::TuplesetNotDirect {
                type_name,
                relation,
                ..
            }
            | E::UndefinedTuplesetRelation {
                type_name,
                relation,
                ..
            }
            | E::MissingRelationTypes {
                type_name,
                relation,
            }
            | E::UnexpectedRelationTypes {
                type_name,
                relation,
            }
            | E::UndefinedRelatedType {
                type_name,
                relation,
                ..
            }
            | E::UndefinedRelatedRelation {
                type_name,
                relation,
                ..
            }
            | E::TuplesetRelatedNotDirect {
                type_name,
                relation,
                ..
            }
            | E::UndefinedCondition {
                type_name,
                relation,
                ..
            }
            | E::NoEntrypoints {
                type_name,
                relation,
                ..
            }
            | E::Cycle {
                type_name,
                relation,
            }
            | E::TooDeep {
                type_name,
                relation,
                ..
            } => Subject::Relation {
                type_name,
                relation,
            },
            E::InvalidConditionName { name } => Subject::Condition(name),
            E::ConditionNameMismatch { key, .. } => Subject::Condition(key),
            E::EmptyConditionExpression { condition }
            | E::ConditionExpressionTooLong { condition, .. }
            | E::TooManyConditionParameters { condition, .. }
            | E::InvalidParameterName { condition, .. }
            | E::InvalidParameterType { condition, .. } => Subject::Condition(condition),
        }
    }
}

/// The module and file that wrote part of a composed model, from the
/// `module` and `source_info` metadata composition stamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The module name.
    pub module: &'a str,
    /// The module file, or empty when the model does not say.
    pub file: &'a str,
}

/// Who wrote the subject of `error` in `model`: the module of the type, of
/// the `extend type` that added the relation, or of the condition. `None` for
/// whole-model errors and for models not composed from modules. When a type
/// is defined twice, the last definition is blamed, as the first one was there
/// before.
pub fn origin<'a>(model: &'a AuthorizationModel, error: &ValidationError) -> Option<Origin<'a>> {
    let type_origin = |type_name: &str| {
        let definition = model
            .type_definitions
            .iter()
            .rev()
            .find(|t| t.type_name == type_name)?;
        let metadata = definition.metadata.as_ref()?;
        named(
            &metadata.module,
            metadata.source_info.as_ref().map(|s| s.file.as_str()),
        )
    };
    match error.subject() {
        Subject::Model => None,
        Subject::Type(type_name) => type_origin(type_name),
        Subject::Relation {
            type_name,
            relation,
        } => {
            let extension = model
                .type_definitions
                .iter()
                .rev()
                .find(|t| t.type_name == type_name)
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.relations.get(relation))
                .and_then(|m| named(&m.module, m.source_info.as_ref().map(|s| s.file.as_str())));
            extension.or_else(|| type_origin(type_name))
        }
        Subject::Condition(name) => {
            let metadata = model.conditions.get(name)?.metadata.as_ref()?;
            named(
                &metadata.module,
                metadata.source_info.as_ref().map(|s| s.file.as_str()),
            )
        }
    }
}

fn named<'a>(module: &'a str, file: Option<&'a str>) -> Option<Origin<'a>> {
    (!module.is_empty()).then(|| Origin {
        module,
        file: file.unwrap_or_default(),
    })
}

/// The problems of one module of a composed model: every error whose type,
/// relation or condition that module wrote. The rest of the model is the
/// context, so a reference to a type of another module is fine, and a problem
/// of another module is not this one's.
pub fn validate_module(model: &AuthorizationModel, module: &str) -> Vec<ValidationError> {
    validate(model)
        .into_iter()
        .filter(|error| origin(model, error).is_some_and(|o| o.module == module))
        .collect()
}

/// Every problem that makes OpenFGA reject `model`; empty when it accepts it.
/// Errors come roughly in the server's order: the model as a whole, type
/// names, each relation sorted by type and relation name, then conditions.
pub fn validate(model: &AuthorizationModel) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    if !SUPPORTED_SCHEMA_VERSIONS.contains(&model.schema_version.as_str()) {
        errors.push(ValidationError::InvalidSchemaVersion {
            version: model.schema_version.clone(),
        });
    }
    if model.type_definitions.is_empty() {
        errors.push(ValidationError::NoTypes);
    }
    if model.type_definitions.len() > MAX_TYPES_PER_MODEL {
        errors.push(ValidationError::TooManyTypes {
            count: model.type_definitions.len(),
            limit: MAX_TYPES_PER_MODEL,
        });
    }
    let mut seen = HashSet::new();
    for definition in &model.type_definitions {
        if !seen.insert(definition.type_name.as_str()) {
            errors.push(ValidationError::DuplicateType {
                type_name: definition.type_name.clone(),
            });
        }
    }

    let system = TypeSystem::new(model);
    // Relations with a problem of their own; the entry-point and cycle checks
    // of anything that reaches them are skipped (see the module docs).
    let mut broken: HashSet<(&str, &str)> = HashSet::new();
    let mut relation_errors: BTreeMap<(&str, &str), Vec<ValidationError>> = BTreeMap::new();

    for (&type_name, definition) in &system.types {
        if !is_valid_name(type_name, MAX_TYPE_NAME_CHARS) {
            errors.push(ValidationError::InvalidTypeName {
                type_name: type_name.to_owned(),
            });
        }
        if is_reserved(type_name) {
            errors.push(ValidationError::ReservedTypeName {
                type_name: type_name.to_owned(),
            });
        }
        for relation in definition.relations.keys() {
            let found = system.relation_errors(type_name, relation);
            if !found.is_empty() {
                broken.insert((type_name, relation));
            }
            relation_errors.insert((type_name, relation), found);
        }
    }
    let reaching_broken = system.reaching_broken(&broken);
    for ((type_name, relation), mut found) in relation_errors {
        if found.is_empty() && !reaching_broken.contains(&(type_name, relation)) {
            found.extend(system.graph_errors(type_name, relation));
        }
        errors.extend(found);
    }

    errors.extend(condition_errors(model));
    errors
}

/// `^[^:#@\s]{1,max}$`, with RE2's `\s` (`[\t\n\f\r ]`) and lengths in characters.
fn is_valid_name(name: &str, max: usize) -> bool {
    let count = name.chars().count();
    (1..=max).contains(&count)
        && !name
            .chars()
            .any(|c| matches!(c, ':' | '#' | '@' | '\t' | '\n' | '\x0C' | '\r' | ' '))
}

fn is_reserved(name: &str) -> bool {
    name == "self" || name == "this"
}

/// `type`, `type#relation` or `type:*`, as the server prints a restriction.
fn describe(reference: &RelationReference) -> String {
    match (&reference.relation, &reference.wildcard) {
        (Some(relation), _) => format!("{}#{relation}", reference.type_name),
        (None, Some(_)) => format!("{}:*", reference.type_name),
        (None, None) => reference.type_name.clone(),
    }
}

/// True for a restriction with a relation or wildcard (the proto oneof is set).
/// An empty relation counts as unset, as the server reads an empty string.
fn has_relation_or_wildcard(reference: &RelationReference) -> bool {
    reference.wildcard.is_some() || reference.relation.as_deref().is_some_and(|r| !r.is_empty())
}

fn related_relation(reference: &RelationReference) -> Option<&str> {
    reference.relation.as_deref().filter(|r| !r.is_empty())
}

/// The model indexed like the server's `TypeSystem`: the last definition of a
/// type wins, and a relation's types come from its metadata entry.
struct TypeSystem<'m> {
    types: BTreeMap<&'m str, &'m TypeDefinition>,
    conditions: &'m BTreeMap<String, crate::model::Condition>,
    /// Per type, the tuplesets of its `x from tupleset` rewrites.
    tuplesets: HashMap<&'m str, HashSet<&'m str>>,
}

/// Entry-point search state: whether a type's relation is known to have an
/// entry point. The inner maps are shared between copies, like the Go maps
/// of maps the server clones shallowly, so a relation marked by one branch is
/// seen by its siblings exactly as on the server.
type Visited<'m> = HashMap<&'m str, Rc<RefCell<HashMap<&'m str, bool>>>>;

/// Why a search stopped early.
enum Stop {
    /// It reached an undefined relation: the server fails with an internal
    /// message there; here the cause is reported by the rewrite checks.
    Undefined,
    /// It went deeper than [`MAX_SEARCH_DEPTH`].
    TooDeep,
}

/// [`Stop::TooDeep`] once a search is deeper than [`MAX_SEARCH_DEPTH`].
fn deepen(depth: usize) -> Result<usize, Stop> {
    if depth >= MAX_SEARCH_DEPTH {
        return Err(Stop::TooDeep);
    }
    Ok(depth + 1)
}

impl<'m> TypeSystem<'m> {
    fn new(model: &'m AuthorizationModel) -> Self {
        let types: BTreeMap<&'m str, &'m TypeDefinition> = model
            .type_definitions
            .iter()
            .map(|t| (t.type_name.as_str(), t))
            .collect();
        let tuplesets = types
            .iter()
            .map(|(&type_name, t)| {
                (
                    type_name,
                    t.relations.values().flat_map(tuplesets).collect(),
                )
            })
            .collect();
        Self {
            types,
            conditions: &model.conditions,
            tuplesets,
        }
    }

    fn rewrite(&self, type_name: &str, relation: &str) -> Option<&'m Userset> {
        self.types.get(type_name)?.relations.get(relation)
    }

    fn has_relation(&self, type_name: &str, relation: &str) -> bool {
        self.rewrite(type_name, relation).is_some()
    }

    fn related_types(&self, type_name: &str, relation: &str) -> &'m [RelationReference] {
        self.types
            .get(type_name)
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.relations.get(relation))
            .map_or(&[], |m| m.directly_related_user_types.as_slice())
    }

    /// Is `relation` the tupleset of some `x from relation` of the type?
    fn is_tupleset(&self, type_name: &str, relation: &str) -> bool {
        self.tuplesets
            .get(type_name)
            .is_some_and(|tuplesets| tuplesets.contains(relation))
    }

    /// Name, rewrite and type-restriction problems of one relation.
    fn relation_errors(&self, type_name: &str, relation: &str) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        let relation_error = |make: fn(String, String) -> ValidationError| {
            make(type_name.to_owned(), relation.to_owned())
        };
        if !is_valid_name(relation, MAX_NAME_CHARS) {
            errors.push(relation_error(|type_name, relation| {
                ValidationError::InvalidRelationName {
                    type_name,
                    relation,
                }
            }));
        }
        if is_reserved(relation) {
            errors.push(relation_error(|type_name, relation| {
                ValidationError::ReservedRelationName {
                    type_name,
                    relation,
                }
            }));
        }
        let Some(rewrite) = self.rewrite(type_name, relation) else {
            return errors;
        };
        self.rewrite_errors(type_name, relation, rewrite, &mut errors);

        let related = self.related_types(type_name, relation);
        let assignable = contains_this(rewrite);
        if assignable && related.is_empty() {
            errors.push(relation_error(|type_name, relation| {
                ValidationError::MissingRelationTypes {
                    type_name,
                    relation,
                }
            }));
        }
        if !assignable && !related.is_empty() {
            errors.push(relation_error(|type_name, relation| {
                ValidationError::UnexpectedRelationTypes {
                    type_name,
                    relation,
                }
            }));
            // The server stops here, before looking at the restrictions.
            return errors;
        }
        let tupleset = self.is_tupleset(type_name, relation);
        for reference in related {
            if !self.types.contains_key(reference.type_name.as_str()) {
                errors.push(ValidationError::UndefinedRelatedType {
                    type_name: type_name.to_owned(),
                    relation: relation.to_owned(),
                    related: describe(reference),
                    undefined: reference.type_name.clone(),
                });
            } else if has_relation_or_wildcard(reference) && tupleset {
                errors.push(ValidationError::TuplesetRelatedNotDirect {
                    type_name: type_name.to_owned(),
                    relation: relation.to_owned(),
                    related: describe(reference),
                });
            } else if let Some(related_relation) = related_relation(reference)
                && !self.has_relation(&reference.type_name, related_relation)
            {
                errors.push(ValidationError::UndefinedRelatedRelation {
                    type_name: type_name.to_owned(),
                    relation: relation.to_owned(),
                    related: describe(reference),
                });
            }
            if !reference.condition.is_empty()
                && !self.conditions.contains_key(&reference.condition)
            {
                errors.push(ValidationError::UndefinedCondition {
                    type_name: type_name.to_owned(),
                    relation: relation.to_owned(),
                    condition: reference.condition.clone(),
                });
            }
        }
        errors
    }

    /// `isUsersetRewriteValid`, collecting every problem instead of the first.
    fn rewrite_errors(
        &self,
        type_name: &str,
        relation: &str,
        rewrite: &Userset,
        errors: &mut Vec<ValidationError>,
    ) {
        let too_long = |referenced: &str| {
            (referenced.len() > MAX_REWRITE_RELATION_BYTES).then(|| {
                ValidationError::ReferenceTooLong {
                    type_name: type_name.to_owned(),
                    relation: relation.to_owned(),
                    referenced: referenced.to_owned(),
                }
            })
        };
        match rewrite {
            Userset::This(_) => {}
            Userset::ComputedUserset(computed) => {
                let computed = computed.relation.as_str();
                errors.extend(too_long(computed));
                if computed == relation {
                    errors.push(ValidationError::SelfReference {
                        type_name: type_name.to_owned(),
                        relation: relation.to_owned(),
                    });
                } else if !self.has_relation(type_name, computed) {
                    errors.push(ValidationError::UndefinedRelation {
                        type_name: type_name.to_owned(),
                        relation: relation.to_owned(),
                        undefined: computed.to_owned(),
                    });
                }
            }
            Userset::TupleToUserset(ttu) => {
                let tupleset = ttu.tupleset.relation.as_str();
                let computed = ttu.computed_userset.relation.as_str();
                errors.extend(too_long(tupleset));
                errors.extend(too_long(computed));
                match self.rewrite(type_name, tupleset) {
                    None => errors.push(ValidationError::UndefinedRelation {
                        type_name: type_name.to_owned(),
                        relation: relation.to_owned(),
                        undefined: tupleset.to_owned(),
                    }),
                    Some(Userset::This(_)) => {
                        let defined = self
                            .related_types(type_name, tupleset)
                            .iter()
                            .any(|r| self.has_relation(&r.type_name, computed));
                        if !defined {
                            errors.push(ValidationError::UndefinedTuplesetRelation {
                                type_name: type_name.to_owned(),
                                relation: relation.to_owned(),
                                tupleset: tupleset.to_owned(),
                                computed: computed.to_owned(),
                            });
                        }
                    }
                    Some(_) => errors.push(ValidationError::TuplesetNotDirect {
                        type_name: type_name.to_owned(),
                        relation: relation.to_owned(),
                        tupleset: tupleset.to_owned(),
                    }),
                }
            }
            Userset::Union(children) | Userset::Intersection(children) => {
                for child in &children.child {
                    self.rewrite_errors(type_name, relation, child, errors);
                }
            }
            Userset::Difference(difference) => {
                self.rewrite_errors(type_name, relation, &difference.base, errors);
                self.rewrite_errors(type_name, relation, &difference.subtract, errors);
            }
        }
    }

    /// Entry points, then cycles, of a relation whose own definition is valid
    /// and that does not depend on a broken one ([`TypeSystem::reaching_broken`]).
    fn graph_errors(&self, type_name: &'m str, relation: &'m str) -> Option<ValidationError> {
        let rewrite = self.rewrite(type_name, relation)?;
        let too_deep = || ValidationError::TooDeep {
            type_name: type_name.to_owned(),
            relation: relation.to_owned(),
            limit: MAX_SEARCH_DEPTH,
        };
        let (has_entrypoint, possible_loop) =
            match self.has_entrypoints(type_name, relation, rewrite, &Visited::new(), 0) {
                Ok(found) => found,
                Err(Stop::TooDeep) => return Some(too_deep()),
                Err(Stop::Undefined) => return None,
            };
        if !has_entrypoint {
            return Some(ValidationError::NoEntrypoints {
                type_name: type_name.to_owned(),
                relation: relation.to_owned(),
                possible_loop,
            });
        }
        let mut visited = HashSet::new();
        match self.has_cycle(type_name, relation, rewrite, &mut visited, 0) {
            Ok(true) => Some(ValidationError::Cycle {
                type_name: type_name.to_owned(),
                relation: relation.to_owned(),
            }),
            Err(Stop::TooDeep) => Some(too_deep()),
            Ok(false) | Err(Stop::Undefined) => None,
        }
    }

    /// Every relation that depends, through rewrites, usersets in restrictions
    /// or tuplesets, on a relation with its own errors, those included: one
    /// pass backwards over the dependencies from the broken relations (a
    /// search forwards from each relation took time quadratic in a chain of
    /// relations).
    fn reaching_broken<'b>(
        &self,
        broken: &HashSet<(&'b str, &'b str)>,
    ) -> HashSet<(&'b str, &'b str)>
    where
        'm: 'b,
    {
        let mut dependents: HashMap<(&str, &str), Vec<(&str, &str)>> = HashMap::new();
        for (&type_name, definition) in &self.types {
            for (relation, rewrite) in &definition.relations {
                let dependent = (type_name, relation.as_str());
                let mut depends_on = |dependency: (&'m str, &'m str)| {
                    dependents.entry(dependency).or_default().push(dependent);
                };
                for reference in self.related_types(type_name, relation) {
                    if let Some(related) = related_relation(reference) {
                        depends_on((reference.type_name.as_str(), related));
                    }
                }
                let mut pending = vec![rewrite];
                while let Some(userset) = pending.pop() {
                    match userset {
                        Userset::This(_) => {}
                        Userset::ComputedUserset(computed) => {
                            depends_on((type_name, computed.relation.as_str()));
                        }
                        Userset::TupleToUserset(ttu) => {
                            let tupleset = ttu.tupleset.relation.as_str();
                            depends_on((type_name, tupleset));
                            for reference in self.related_types(type_name, tupleset) {
                                depends_on((
                                    reference.type_name.as_str(),
                                    ttu.computed_userset.relation.as_str(),
                                ));
                            }
                        }
                        Userset::Union(children) | Userset::Intersection(children) => {
                            pending.extend(children.child.iter());
                        }
                        Userset::Difference(difference) => {
                            pending.push(&difference.base);
                            pending.push(&difference.subtract);
                        }
                    }
                }
            }
        }
        let mut reaching = broken.clone();
        let mut pending: Vec<(&str, &str)> = broken.iter().copied().collect();
        while let Some(relation) = pending.pop() {
            for &dependent in dependents.get(&relation).into_iter().flatten() {
                if reaching.insert(dependent) {
                    pending.push(dependent);
                }
            }
        }
        reaching
    }

    /// `hasEntrypoints` of typesystem.go, step for step: (has an entry point,
    /// came back to a relation being checked). `depth`: the steps taken so far.
    fn has_entrypoints(
        &self,
        type_name: &'m str,
        relation: &'m str,
        rewrite: &'m Userset,
        visited: &Visited<'m>,
        depth: usize,
    ) -> Result<(bool, bool), Stop> {
        let depth = deepen(depth)?;
        let mut v = visited.clone();
        match v.get(type_name) {
            Some(inner) => {
                inner.borrow_mut().insert(relation, false);
            }
            None => {
                v.insert(
                    type_name,
                    Rc::new(RefCell::new(HashMap::from([(relation, false)]))),
                );
            }
        }
        let known = |v: &Visited<'m>, type_name: &str, relation: &str| {
            v.get(type_name)
                .and_then(|inner| inner.borrow().get(relation).copied())
        };
        self.rewrite(type_name, relation).ok_or(Stop::Undefined)?;

        match rewrite {
            Userset::This(_) => {
                for assignable in self.related_types(type_name, relation) {
                    let Some(assignable_relation) =
                        related_relation(assignable).filter(|_| assignable.wildcard.is_none())
                    else {
                        if let Some(inner) = v.get(type_name) {
                            inner.borrow_mut().insert(relation, true);
                        }
                        return Ok((true, false));
                    };
                    let assignable_type = assignable.type_name.as_str();
                    let assignable_rewrite = self
                        .rewrite(assignable_type, assignable_relation)
                        .ok_or(Stop::Undefined)?;
                    if known(&v, assignable_type, assignable_relation).is_some() {
                        continue;
                    }
                    let (found, _) = self.has_entrypoints(
                        assignable_type,
                        assignable_relation,
                        assignable_rewrite,
                        &v,
                        depth,
                    )?;
                    if found {
                        return Ok((true, false));
                    }
                }
                Ok((false, false))
            }
            Userset::ComputedUserset(computed) => {
                let computed = computed.relation.as_str();
                let computed_rewrite = self.rewrite(type_name, computed).ok_or(Stop::Undefined)?;
                if let Some(found) = known(&v, type_name, computed) {
                    return Ok((found, true));
                }
                self.has_entrypoints(type_name, computed, computed_rewrite, &v, depth)
            }
            Userset::TupleToUserset(ttu) => {
                let tupleset = ttu.tupleset.relation.as_str();
                let computed = ttu.computed_userset.relation.as_str();
                self.rewrite(type_name, tupleset).ok_or(Stop::Undefined)?;
                for assignable in self.related_types(type_name, tupleset) {
                    let assignable_type = assignable.type_name.as_str();
                    let Some(assignable_rewrite) = self.rewrite(assignable_type, computed) else {
                        continue;
                    };
                    if let Some(found) = known(&v, assignable_type, computed) {
                        if found {
                            return Ok((true, false));
                        }
                        continue;
                    }
                    let (found, _) = self.has_entrypoints(
                        assignable_type,
                        computed,
                        assignable_rewrite,
                        &v,
                        depth,
                    )?;
                    if found {
                        return Ok((true, false));
                    }
                }
                Ok((false, false))
            }
            Userset::Union(children) => {
                let mut possible_loop = false;
                for child in &children.child {
                    let (found, child_loop) =
                        self.has_entrypoints(type_name, relation, child, visited, depth)?;
                    if found {
                        return Ok((true, false));
                    }
                    possible_loop |= child_loop;
                }
                Ok((false, possible_loop))
            }
            Userset::Intersection(children) => {
                for child in &children.child {
                    let (found, child_loop) =
                        self.has_entrypoints(type_name, relation, child, visited, depth)?;
                    if !found {
                        return Ok((false, child_loop));
                    }
                }
                Ok((true, false))
            }
            Userset::Difference(difference) => {
                for child in [&difference.base, &difference.subtract] {
                    let (found, child_loop) =
                        self.has_entrypoints(type_name, relation, child, visited, depth)?;
                    if !found {
                        return Ok((false, child_loop));
                    }
                }
                Ok((true, false))
            }
        }
    }

    /// `hasCycle` of typesystem.go: a computed userset leading back to a
    /// relation of the same type already on the path. `depth`: the steps taken so far.
    fn has_cycle(
        &self,
        type_name: &'m str,
        relation: &'m str,
        rewrite: &'m Userset,
        visited: &mut HashSet<&'m str>,
        depth: usize,
    ) -> Result<bool, Stop> {
        let depth = deepen(depth)?;
        visited.insert(relation);
        let mut copy = visited.clone();
        let children: Vec<&Userset> = match rewrite {
            Userset::This(_) | Userset::TupleToUserset(_) => return Ok(false),
            Userset::ComputedUserset(computed) => {
                let computed = computed.relation.as_str();
                if visited.contains(computed) {
                    return Ok(true);
                }
                let computed_rewrite = self.rewrite(type_name, computed).ok_or(Stop::Undefined)?;
                return self.has_cycle(type_name, computed, computed_rewrite, &mut copy, depth);
            }
            Userset::Union(children) | Userset::Intersection(children) => {
                children.child.iter().collect()
            }
            Userset::Difference(difference) => vec![&difference.base, &difference.subtract],
        };
        for child in children {
            if self.has_cycle(type_name, relation, child, &mut copy, depth)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The tuplesets of every `x from tupleset` in a rewrite.
fn tuplesets(rewrite: &Userset) -> Box<dyn Iterator<Item = &str> + '_> {
    match rewrite {
        Userset::TupleToUserset(ttu) => Box::new(std::iter::once(ttu.tupleset.relation.as_str())),
        Userset::Union(children) | Userset::Intersection(children) => {
            Box::new(children.child.iter().flat_map(tuplesets))
        }
        Userset::Difference(difference) => {
            Box::new(tuplesets(&difference.base).chain(tuplesets(&difference.subtract)))
        }
        Userset::This(_) | Userset::ComputedUserset(_) => Box::new(std::iter::empty()),
    }
}

/// `RewriteContainsSelf`: directly assignable somewhere in the rewrite.
fn contains_this(rewrite: &Userset) -> bool {
    match rewrite {
        Userset::This(_) => true,
        Userset::ComputedUserset(_) | Userset::TupleToUserset(_) => false,
        Userset::Union(children) | Userset::Intersection(children) => {
            children.child.iter().any(contains_this)
        }
        Userset::Difference(difference) => {
            contains_this(&difference.base) || contains_this(&difference.subtract)
        }
    }
}

fn condition_errors(model: &AuthorizationModel) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    for (key, condition) in &model.conditions {
        let name_error = |name: &str| ValidationError::InvalidConditionName {
            name: name.to_owned(),
        };
        if !is_valid_name(key, MAX_NAME_CHARS) {
            errors.push(name_error(key));
        }
        if condition.name != *key {
            if !is_valid_name(&condition.name, MAX_NAME_CHARS) {
                errors.push(name_error(&condition.name));
            }
            errors.push(ValidationError::ConditionNameMismatch {
                key: key.clone(),
                name: condition.name.clone(),
            });
        }
        if condition.expression.trim().is_empty() {
            errors.push(ValidationError::EmptyConditionExpression {
                condition: key.clone(),
            });
        }
        if condition.expression.len() > MAX_CONDITION_EXPRESSION_BYTES {
            errors.push(ValidationError::ConditionExpressionTooLong {
                condition: key.clone(),
                bytes: condition.expression.len(),
            });
        }
        if condition.parameters.len() > MAX_CONDITION_PARAMETERS {
            errors.push(ValidationError::TooManyConditionParameters {
                condition: key.clone(),
                count: condition.parameters.len(),
            });
        }
        for (parameter, type_ref) in &condition.parameters {
            if !is_valid_name(parameter, MAX_NAME_CHARS) {
                errors.push(ValidationError::InvalidParameterName {
                    condition: key.clone(),
                    parameter: parameter.clone(),
                });
            }
            if !is_valid_parameter_type(type_ref) {
                errors.push(ValidationError::InvalidParameterType {
                    condition: key.clone(),
                    parameter: parameter.clone(),
                });
            }
        }
    }
    errors
}

/// A container with exactly one valid element type, or a scalar without any.
fn is_valid_parameter_type(type_ref: &ConditionParamTypeRef) -> bool {
    if type_ref.type_name.is_container() {
        type_ref.generic_types.len() == 1 && is_valid_parameter_type(&type_ref.generic_types[0])
    } else {
        type_ref.generic_types.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `type user`, then `type chain` with `define r0: [user]` and `define r<i>: r<i-1>` up to
    /// `r<length-1>`.
    fn chain(length: usize) -> AuthorizationModel {
        let mut text = "model\n  schema 1.1\ntype user\ntype chain\n  relations\n".to_owned();
        text.push_str("    define r0: [user]\n");
        for i in 1..length {
            text.push_str(&format!("    define r{i}: r{}\n", i - 1));
        }
        crate::dsl::parse_model(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_long_chain_of_relations_is_too_deep_instead_of_overflowing_the_stack() {
        assert_eq!(validate(&chain(MAX_SEARCH_DEPTH)), Vec::new());
        // 2,000 relations overflowed this thread's 2 MiB stack before the limit.
        let errors = validate(&chain(2_000));
        assert_eq!(errors.len(), 2_000 - MAX_SEARCH_DEPTH);
        assert_eq!(
            errors[0].to_string(),
            "the definition of relation 'r1000' in object type 'chain' is invalid: it leads \
             through more than 256 relations and operators in a row"
        );
        assert!(
            errors
                .iter()
                .all(|e| matches!(e, ValidationError::TooDeep { limit: 256, .. }))
        );
    }
}
