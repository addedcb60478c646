//! Typed OpenFGA authorization-model JSON, in the shape the OpenFGA API accepts
//! and the official `openfga/language` transformer emits (protojson).
//!
//! protojson omits empty strings, empty lists, empty maps and unset messages, so
//! every such field here is skipped on output and defaulted on input. Present
//! but empty messages (`"this": {}`, `"metadata": {}`) are kept, because the
//! transformer emits them. Input also accepts the snake_case spellings of the two
//! camelCase userset variants, as the server does.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A complete authorization model (the body of a write-model request).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AuthorizationModel {
    /// `"1.1"` for single-file models, `"1.2"` for models composed from modules.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub schema_version: String,
    /// Type definitions, in source order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub type_definitions: Vec<TypeDefinition>,
    /// Conditions by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conditions: BTreeMap<String, Condition>,
}

/// One object type with its relations.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TypeDefinition {
    /// The type name, e.g. `user` or `core_platform-mesh_io_account`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Relation name to its rewrite.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub relations: BTreeMap<String, Userset>,
    /// Directly-related user types and module bookkeeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
}

/// Type-level metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// Relation name to its metadata.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub relations: BTreeMap<String, RelationMetadata>,
    /// The module that defines the type (modular models only).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module: String,
    /// The file that defines the type (modular models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// Relation-level metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RelationMetadata {
    /// The user types that may be written directly for this relation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directly_related_user_types: Vec<RelationReference>,
    /// The module that added the relation through `extend type`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module: String,
    /// The file that added the relation through `extend type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// Where a modular definition came from.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SourceInfo {
    /// The module file name, e.g. `core.fga`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub file: String,
}

/// One allowed user type: `user`, `user:*`, `group#member`, optionally `with condition`.
///
/// `relation` and `wildcard` mirror a protobuf oneof: at most one is set.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct RelationReference {
    /// The user type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The userset relation (`group#member`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// Set for the public wildcard (`user:*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wildcard: Option<Wildcard>,
    /// The condition name, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub condition: String,
}

impl RelationReference {
    /// A plain type, e.g. `user`.
    pub fn new(type_name: impl Into<String>) -> Self {
        Self {
            type_name: type_name.into(),
            ..Self::default()
        }
    }

    /// The wildcard of a type, e.g. `user:*`.
    pub fn wildcard(type_name: impl Into<String>) -> Self {
        Self {
            wildcard: Some(Wildcard {}),
            ..Self::new(type_name)
        }
    }

    /// A userset, e.g. `group#member`.
    pub fn userset(type_name: impl Into<String>, relation: impl Into<String>) -> Self {
        Self {
            relation: Some(relation.into()),
            ..Self::new(type_name)
        }
    }

    /// The same reference restricted by a condition (`... with condition`).
    pub fn with_condition(mut self, condition: impl Into<String>) -> Self {
        self.condition = condition.into();
        self
    }
}

/// The empty wildcard marker `{}`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Wildcard {}

/// The empty `this` marker `{}` (direct assignment).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct This {}

/// A userset rewrite: how a relation is computed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Userset {
    /// Directly assignable (`[...]`).
    #[serde(rename = "this")]
    This(This),
    /// Another relation on the same object.
    #[serde(rename = "computedUserset", alias = "computed_userset")]
    ComputedUserset(ObjectRelation),
    /// `computed from tupleset`.
    #[serde(rename = "tupleToUserset", alias = "tuple_to_userset")]
    TupleToUserset(TupleToUserset),
    /// `a or b or ...`.
    #[serde(rename = "union")]
    Union(Usersets),
    /// `a and b and ...`.
    #[serde(rename = "intersection")]
    Intersection(Usersets),
    /// `base but not subtract`.
    #[serde(rename = "difference")]
    Difference(Difference),
}

impl Userset {
    /// `this`.
    pub fn this() -> Self {
        Self::This(This {})
    }

    /// A computed userset on `relation`.
    pub fn computed(relation: impl Into<String>) -> Self {
        Self::ComputedUserset(ObjectRelation::relation(relation))
    }

    /// `computed from tupleset`.
    pub fn tuple_to_userset(computed: impl Into<String>, tupleset: impl Into<String>) -> Self {
        Self::TupleToUserset(TupleToUserset {
            tupleset: ObjectRelation::relation(tupleset),
            computed_userset: ObjectRelation::relation(computed),
        })
    }

    /// A union of `children`.
    pub fn union(children: Vec<Userset>) -> Self {
        Self::Union(Usersets { child: children })
    }

    /// An intersection of `children`.
    pub fn intersection(children: Vec<Userset>) -> Self {
        Self::Intersection(Usersets { child: children })
    }

    /// `base but not subtract`.
    pub fn difference(base: Userset, subtract: Userset) -> Self {
        Self::Difference(Difference {
            base: Box::new(base),
            subtract: Box::new(subtract),
        })
    }
}

/// A relation reference inside a rewrite (`object` is unused by the DSL).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObjectRelation {
    /// Unused by models written from the DSL.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub object: String,
    /// The relation name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub relation: String,
}

impl ObjectRelation {
    /// A reference to `relation` on the same object.
    pub fn relation(relation: impl Into<String>) -> Self {
        Self {
            object: String::new(),
            relation: relation.into(),
        }
    }
}

/// `computedUserset from tupleset`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TupleToUserset {
    /// The relation that points at the other objects (`parent`).
    pub tupleset: ObjectRelation,
    /// The relation evaluated on those objects.
    #[serde(rename = "computedUserset", alias = "computed_userset")]
    pub computed_userset: ObjectRelation,
}

/// Children of a union or intersection.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usersets {
    /// The operands, in source order.
    #[serde(default)]
    pub child: Vec<Userset>,
}

/// `base but not subtract`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    /// The minuend.
    pub base: Box<Userset>,
    /// The subtrahend.
    pub subtract: Box<Userset>,
}

/// A CEL condition usable in `[user with name]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Condition {
    /// The condition name (same as its map key).
    pub name: String,
    /// The CEL expression, verbatim.
    #[serde(default)]
    pub expression: String,
    /// Parameter name to its type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, ConditionParamTypeRef>,
    /// Module bookkeeping (modular models only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<ConditionMetadata>,
}

/// Module bookkeeping of a condition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConditionMetadata {
    /// The module that defines the condition.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub module: String,
    /// The file that defines the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_info: Option<SourceInfo>,
}

/// The type of a condition parameter, e.g. `map<string>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConditionParamTypeRef {
    /// The outer type.
    pub type_name: ParamTypeName,
    /// The element type of `map` and `list`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generic_types: Vec<ConditionParamTypeRef>,
}

impl ConditionParamTypeRef {
    /// A scalar type.
    pub fn scalar(type_name: ParamTypeName) -> Self {
        Self {
            type_name,
            generic_types: Vec::new(),
        }
    }

    /// A container (`map` or `list`) of `element`.
    pub fn container(container: ParamTypeName, element: ParamTypeName) -> Self {
        Self {
            type_name: container,
            generic_types: vec![Self::scalar(element)],
        }
    }
}

/// Condition parameter type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ParamTypeName {
    #[serde(rename = "TYPE_NAME_ANY")]
    Any,
    #[serde(rename = "TYPE_NAME_BOOL")]
    Bool,
    #[serde(rename = "TYPE_NAME_STRING")]
    String,
    #[serde(rename = "TYPE_NAME_INT")]
    Int,
    #[serde(rename = "TYPE_NAME_UINT")]
    Uint,
    #[serde(rename = "TYPE_NAME_DOUBLE")]
    Double,
    #[serde(rename = "TYPE_NAME_DURATION")]
    Duration,
    #[serde(rename = "TYPE_NAME_TIMESTAMP")]
    Timestamp,
    #[serde(rename = "TYPE_NAME_MAP")]
    Map,
    #[serde(rename = "TYPE_NAME_LIST")]
    List,
    #[serde(rename = "TYPE_NAME_IPADDRESS")]
    IpAddress,
}

impl ParamTypeName {
    /// The DSL keyword (`int`, `map`, ...); `Any` has none.
    pub fn dsl_keyword(self) -> Option<&'static str> {
        Some(match self {
            Self::Any => return None,
            Self::Bool => "bool",
            Self::String => "string",
            Self::Int => "int",
            Self::Uint => "uint",
            Self::Double => "double",
            Self::Duration => "duration",
            Self::Timestamp => "timestamp",
            Self::Map => "map",
            Self::List => "list",
            Self::IpAddress => "ipaddress",
        })
    }

    /// Parses a DSL keyword.
    pub fn from_dsl_keyword(keyword: &str) -> Option<Self> {
        Some(match keyword {
            "bool" => Self::Bool,
            "string" => Self::String,
            "int" => Self::Int,
            "uint" => Self::Uint,
            "double" => Self::Double,
            "duration" => Self::Duration,
            "timestamp" => Self::Timestamp,
            "map" => Self::Map,
            "list" => Self::List,
            "ipaddress" => Self::IpAddress,
            _ => return None,
        })
    }

    /// True for `map` and `list`.
    pub fn is_container(self) -> bool {
        matches!(self, Self::Map | Self::List)
    }
}

impl AuthorizationModel {
    /// Parses the JSON produced by the transformer or the API.
    pub fn from_json(json: &str) -> serde_json::Result<Self> {
        serde_json::from_str(json)
    }

    /// Serializes to compact JSON in the transformer's shape.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("model serialization cannot fail")
    }

    /// Looks up a type definition by name.
    pub fn type_definition(&self, type_name: &str) -> Option<&TypeDefinition> {
        self.type_definitions
            .iter()
            .find(|t| t.type_name == type_name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_transformer_json() {
        let json = r#"{"schema_version":"1.2","type_definitions":[{"type":"user","metadata":{"module":"core","source_info":{"file":"core.fga"}}},{"type":"doc","relations":{"v":{"union":{"child":[{"this":{}},{"tupleToUserset":{"tupleset":{"relation":"parent"},"computedUserset":{"relation":"v"}}}]}}},"metadata":{"relations":{"v":{"directly_related_user_types":[{"type":"user","wildcard":{}},{"type":"group","relation":"member","condition":"c"}]}}}}],"conditions":{"c":{"name":"c","expression":"x < 1","parameters":{"x":{"type_name":"TYPE_NAME_MAP","generic_types":[{"type_name":"TYPE_NAME_INT"}]}}}}}"#;
        let model = AuthorizationModel::from_json(json).unwrap();
        let back: serde_json::Value = serde_json::from_str(&model.to_json()).unwrap();
        let original: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn accepts_snake_case_userset_variants() {
        let json = r#"{"tuple_to_userset":{"tupleset":{"relation":"p"},"computed_userset":{"relation":"v"}}}"#;
        let userset: Userset = serde_json::from_str(json).unwrap();
        assert_eq!(userset, Userset::tuple_to_userset("v", "p"));
    }
}
