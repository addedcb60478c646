//! Typed builders for models and modules, so operators generate them from Rust
//! values instead of text templates, plus a DSL printer for humans.
//!
//! ```
//! use fga::builder::{Module, TypeDef, computed, direct, from};
//!
//! let module = Module::new("core")
//!     .type_def(TypeDef::new("user"))
//!     .type_def(
//!         TypeDef::new("core_platform-mesh_io_account")
//!             .relation("parent", direct(["core_platform-mesh_io_account"]))
//!             .relation("owner", direct(["role#assignee"]).or(from("owner", "parent")))
//!             .relation("member", direct(["role#assignee"]).or(computed("owner"))),
//!     );
//! let text = module.to_dsl().unwrap();
//! assert!(text.contains("define owner: [role#assignee] or owner from parent"));
//! ```

mod print;

use std::collections::BTreeMap;

pub use print::{PrintError, model_to_dsl};

use crate::compose::ModuleFile;
use crate::model::{
    AuthorizationModel, Condition, ConditionMetadata, ConditionParamTypeRef, Metadata,
    RelationMetadata, RelationReference, TypeDefinition, Userset,
};

/// A relation's definition: its rewrite plus the directly related user types
/// that its `[...]` part allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationDef {
    /// The rewrite tree.
    pub rewrite: Userset,
    /// Types allowed by the direct part (empty without one).
    pub direct_types: Vec<RelationReference>,
}

/// A direct restriction: `direct(["user", "user:*", "group#member", "user with cond"])`.
pub fn direct<I>(types: I) -> RelationDef
where
    I: IntoIterator,
    I::Item: Into<RelationReference>,
{
    RelationDef {
        rewrite: Userset::this(),
        direct_types: types.into_iter().map(Into::into).collect(),
    }
}

/// Another relation of the same object.
pub fn computed(relation: impl Into<String>) -> RelationDef {
    RelationDef {
        rewrite: Userset::computed(relation),
        direct_types: Vec::new(),
    }
}

/// `relation from tupleset`, e.g. `from("owner", "parent")`.
pub fn from(relation: impl Into<String>, tupleset: impl Into<String>) -> RelationDef {
    RelationDef {
        rewrite: Userset::tuple_to_userset(relation, tupleset),
        direct_types: Vec::new(),
    }
}

impl RelationDef {
    /// `self or other`; chains flatten into one union.
    pub fn or(mut self, other: RelationDef) -> Self {
        self.direct_types.extend(other.direct_types);
        self.rewrite = match self.rewrite {
            Userset::Union(mut operands) => {
                operands.child.push(other.rewrite);
                Userset::Union(operands)
            }
            rewrite => Userset::union(vec![rewrite, other.rewrite]),
        };
        self
    }

    /// `self and other`; chains flatten into one intersection.
    pub fn and(mut self, other: RelationDef) -> Self {
        self.direct_types.extend(other.direct_types);
        self.rewrite = match self.rewrite {
            Userset::Intersection(mut operands) => {
                operands.child.push(other.rewrite);
                Userset::Intersection(operands)
            }
            rewrite => Userset::intersection(vec![rewrite, other.rewrite]),
        };
        self
    }

    /// `self but not other`.
    pub fn but_not(mut self, other: RelationDef) -> Self {
        self.direct_types.extend(other.direct_types);
        self.rewrite = Userset::difference(self.rewrite, other.rewrite);
        self
    }
}

impl From<&str> for RelationReference {
    /// Parses the compact notation `type`, `type:*`, `type#relation`, each
    /// optionally followed by ` with condition`.
    fn from(text: &str) -> Self {
        let (reference, condition) = match text.split_once(" with ") {
            Some((reference, condition)) => (reference.trim(), condition.trim()),
            None => (text.trim(), ""),
        };
        let base = if let Some(type_name) = reference.strip_suffix(":*") {
            RelationReference::wildcard(type_name)
        } else if let Some((type_name, relation)) = reference.split_once('#') {
            RelationReference::userset(type_name, relation)
        } else {
            RelationReference::new(reference)
        };
        base.with_condition(condition)
    }
}

impl From<String> for RelationReference {
    fn from(text: String) -> Self {
        RelationReference::from(text.as_str())
    }
}

/// A type definition, or an `extend type` block in a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeDef {
    /// The type name.
    pub name: String,
    /// True for `extend type`.
    pub is_extension: bool,
    /// Relations in the order they are printed.
    pub relations: Vec<(String, RelationDef)>,
}

impl TypeDef {
    /// A new type.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            is_extension: false,
            relations: Vec::new(),
        }
    }

    /// An `extend type` block (modules only).
    pub fn extend(name: impl Into<String>) -> Self {
        Self {
            is_extension: true,
            ..Self::new(name)
        }
    }

    /// Adds a relation.
    pub fn relation(mut self, name: impl Into<String>, definition: RelationDef) -> Self {
        self.relations.push((name.into(), definition));
        self
    }

    /// Adds several relations with the same definition.
    pub fn relations<I>(mut self, names: I, definition: &RelationDef) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        for name in names {
            self.relations.push((name.into(), definition.clone()));
        }
        self
    }

    /// The JSON type definition the DSL parser produces for this block;
    /// `module` is `Some` inside a module file.
    pub fn to_type_definition(&self, module: Option<&str>) -> TypeDefinition {
        let mut relations = BTreeMap::new();
        let mut relation_metadata = BTreeMap::new();
        for (name, definition) in &self.relations {
            relations.insert(name.clone(), definition.rewrite.clone());
            relation_metadata.insert(
                name.clone(),
                RelationMetadata {
                    directly_related_user_types: definition.direct_types.clone(),
                    module: module
                        .filter(|_| self.is_extension)
                        .unwrap_or_default()
                        .to_owned(),
                    source_info: None,
                },
            );
        }
        let metadata = match module {
            None if relations.is_empty() => None,
            _ => Some(Metadata {
                relations: relation_metadata,
                module: module.unwrap_or_default().to_owned(),
                source_info: None,
            }),
        };
        TypeDefinition {
            type_name: self.name.clone(),
            relations,
            metadata,
        }
    }
}

/// A condition with parameters in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionDef {
    /// The name.
    pub name: String,
    /// Parameters in the order they are printed.
    pub parameters: Vec<(String, ConditionParamTypeRef)>,
    /// The CEL expression.
    pub expression: String,
}

impl ConditionDef {
    /// A condition with an expression and no parameters yet.
    pub fn new(name: impl Into<String>, expression: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            parameters: Vec::new(),
            expression: expression.into(),
        }
    }

    /// Adds a parameter.
    pub fn parameter(mut self, name: impl Into<String>, type_ref: ConditionParamTypeRef) -> Self {
        self.parameters.push((name.into(), type_ref));
        self
    }

    /// The JSON condition; `module` is `Some` inside a module file.
    pub fn to_condition(&self, module: Option<&str>) -> Condition {
        Condition {
            name: self.name.clone(),
            expression: self.expression.clone(),
            parameters: self.parameters.iter().cloned().collect(),
            metadata: module.map(|module| ConditionMetadata {
                module: module.to_owned(),
                source_info: None,
            }),
        }
    }
}

/// A single-file model (`model` / `schema 1.1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    /// Schema version, `1.1` by default.
    pub schema_version: String,
    /// Types in order.
    pub types: Vec<TypeDef>,
    /// Conditions in order.
    pub conditions: Vec<ConditionDef>,
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    /// An empty schema 1.1 model.
    pub fn new() -> Self {
        Self {
            schema_version: "1.1".to_owned(),
            types: Vec::new(),
            conditions: Vec::new(),
        }
    }

    /// Adds a type.
    pub fn type_def(mut self, type_def: TypeDef) -> Self {
        self.types.push(type_def);
        self
    }

    /// Adds a condition.
    pub fn condition(mut self, condition: ConditionDef) -> Self {
        self.conditions.push(condition);
        self
    }

    /// The JSON model (what parsing [`Model::to_dsl`] yields).
    pub fn to_authorization_model(&self) -> AuthorizationModel {
        AuthorizationModel {
            schema_version: self.schema_version.clone(),
            type_definitions: self
                .types
                .iter()
                .map(|t| t.to_type_definition(None))
                .collect(),
            conditions: self
                .conditions
                .iter()
                .map(|c| (c.name.clone(), c.to_condition(None)))
                .collect(),
        }
    }

    /// DSL text.
    pub fn to_dsl(&self) -> Result<String, PrintError> {
        let mut out = format!("model\n  schema {}\n", self.schema_version);
        print::write_body(&mut out, &self.types, &self.conditions)?;
        Ok(out)
    }
}

/// A module file (`module <name>`), for schema 1.2 composition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The module name.
    pub name: String,
    /// Types and extensions in order.
    pub types: Vec<TypeDef>,
    /// Conditions in order.
    pub conditions: Vec<ConditionDef>,
}

impl Module {
    /// An empty module.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            types: Vec::new(),
            conditions: Vec::new(),
        }
    }

    /// Adds a type or an extension.
    pub fn type_def(mut self, type_def: TypeDef) -> Self {
        self.types.push(type_def);
        self
    }

    /// Adds a condition.
    pub fn condition(mut self, condition: ConditionDef) -> Self {
        self.conditions.push(condition);
        self
    }

    /// DSL text.
    pub fn to_dsl(&self) -> Result<String, PrintError> {
        let mut out = format!("module {}\n", self.name);
        print::write_body(&mut out, &self.types, &self.conditions)?;
        Ok(out)
    }

    /// The module as a file named `<file_stem>.fga`, ready for
    /// [`compose`](crate::compose::compose).
    pub fn to_file(&self, file_stem: &str) -> Result<ModuleFile, PrintError> {
        Ok(ModuleFile::new(format!("{file_stem}.fga"), self.to_dsl()?))
    }
}
