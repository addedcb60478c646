//! DSL printing in the official layout (two-space indentation, a blank line
//! between blocks).

use thiserror::Error;

use super::{ConditionDef, RelationDef, TypeDef};
use crate::model::{AuthorizationModel, ConditionParamTypeRef, RelationReference, Userset};

/// A model that the DSL cannot express.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PrintError {
    /// `this` without any allowed type (`[]` is not valid DSL).
    #[error("relation '{0}' is directly assignable but lists no user types")]
    EmptyDirect(String),
    /// `this` more than once, or where no `[...]` may stand (after `but not`).
    #[error("relation '{0}' has a direct part the DSL cannot place")]
    MisplacedDirect(String),
    /// A union or intersection without operands.
    #[error("relation '{0}' has an operator without operands")]
    EmptyOperator(String),
    /// A parameter type the DSL cannot spell (`any`, or a malformed container).
    #[error("condition '{condition}' parameter '{parameter}' has a type the DSL cannot express")]
    ParameterType {
        /// The condition.
        condition: String,
        /// The parameter.
        parameter: String,
    },
    /// `extend type` outside a module.
    #[error("type '{0}' is an extension, which only modules may contain")]
    ExtensionInModel(String),
}

/// Prints a JSON model as DSL. Relations come out sorted by name, and operands
/// may be reordered so that a direct part comes first, so re-parsing gives a
/// semantically equal model (see [`crate::diff`]).
pub fn model_to_dsl(model: &AuthorizationModel) -> Result<String, PrintError> {
    let types: Vec<TypeDef> = model
        .type_definitions
        .iter()
        .map(|definition| {
            let metadata = definition.metadata.clone().unwrap_or_default();
            TypeDef {
                name: definition.type_name.clone(),
                is_extension: false,
                relations: definition
                    .relations
                    .iter()
                    .map(|(name, rewrite)| {
                        let direct_types = metadata
                            .relations
                            .get(name)
                            .map(|m| m.directly_related_user_types.clone())
                            .unwrap_or_default();
                        (
                            name.clone(),
                            RelationDef {
                                rewrite: rewrite.clone(),
                                direct_types,
                            },
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    let conditions: Vec<ConditionDef> = model
        .conditions
        .values()
        .map(|condition| ConditionDef {
            name: condition.name.clone(),
            parameters: condition
                .parameters
                .iter()
                .map(|(name, type_ref)| (name.clone(), type_ref.clone()))
                .collect(),
            expression: condition.expression.clone(),
        })
        .collect();
    let mut out = format!("model\n  schema {}\n", model.schema_version);
    if let Some(extension) = types.iter().find(|t| t.is_extension) {
        return Err(PrintError::ExtensionInModel(extension.name.clone()));
    }
    write_body(&mut out, &types, &conditions)?;
    Ok(out)
}

pub(super) fn write_body(
    out: &mut String,
    types: &[TypeDef],
    conditions: &[ConditionDef],
) -> Result<(), PrintError> {
    for type_def in types {
        out.push('\n');
        if type_def.is_extension {
            out.push_str("extend ");
        }
        out.push_str("type ");
        out.push_str(&type_def.name);
        out.push('\n');
        if !type_def.relations.is_empty() {
            out.push_str("  relations\n");
        }
        for (name, definition) in &type_def.relations {
            out.push_str("    define ");
            out.push_str(name);
            out.push_str(": ");
            let mut printer = RewritePrinter {
                relation: name,
                direct_types: &definition.direct_types,
                direct_printed: false,
            };
            printer.write(out, &definition.rewrite, true)?;
            out.push('\n');
        }
    }
    for condition in conditions {
        out.push_str("\ncondition ");
        out.push_str(&condition.name);
        out.push('(');
        for (index, (parameter, type_ref)) in condition.parameters.iter().enumerate() {
            if index > 0 {
                out.push_str(", ");
            }
            out.push_str(parameter);
            out.push_str(": ");
            out.push_str(
                &param_type(type_ref).ok_or_else(|| PrintError::ParameterType {
                    condition: condition.name.clone(),
                    parameter: parameter.clone(),
                })?,
            );
        }
        out.push_str(") {\n  ");
        out.push_str(&condition.expression);
        out.push_str("\n}\n");
    }
    Ok(())
}

fn param_type(type_ref: &ConditionParamTypeRef) -> Option<String> {
    let outer = type_ref.type_name.dsl_keyword()?;
    match (
        type_ref.type_name.is_container(),
        type_ref.generic_types.as_slice(),
    ) {
        (false, []) => Some(outer.to_owned()),
        (true, [element])
            if element.generic_types.is_empty() && !element.type_name.is_container() =>
        {
            Some(format!("{outer}<{}>", element.type_name.dsl_keyword()?))
        }
        _ => None,
    }
}

fn contains_this(rewrite: &Userset) -> bool {
    match rewrite {
        Userset::This(_) => true,
        Userset::ComputedUserset(_) | Userset::TupleToUserset(_) => false,
        Userset::Union(set) | Userset::Intersection(set) => set.child.iter().any(contains_this),
        Userset::Difference(difference) => {
            contains_this(&difference.base) || contains_this(&difference.subtract)
        }
    }
}

struct RewritePrinter<'a> {
    relation: &'a str,
    direct_types: &'a [RelationReference],
    direct_printed: bool,
}

impl RewritePrinter<'_> {
    /// Writes one operand; `leading` says whether a `[...]` may appear here
    /// (the grammar only allows it as the very first operand).
    fn write(
        &mut self,
        out: &mut String,
        rewrite: &Userset,
        leading: bool,
    ) -> Result<(), PrintError> {
        match rewrite {
            Userset::This(_) => {
                if !leading || self.direct_printed {
                    return Err(PrintError::MisplacedDirect(self.relation.to_owned()));
                }
                if self.direct_types.is_empty() {
                    return Err(PrintError::EmptyDirect(self.relation.to_owned()));
                }
                self.direct_printed = true;
                out.push('[');
                for (index, reference) in self.direct_types.iter().enumerate() {
                    if index > 0 {
                        out.push_str(", ");
                    }
                    write_reference(out, reference);
                }
                out.push(']');
            }
            Userset::ComputedUserset(computed) => out.push_str(&computed.relation),
            Userset::TupleToUserset(ttu) => {
                out.push_str(&ttu.computed_userset.relation);
                out.push_str(" from ");
                out.push_str(&ttu.tupleset.relation);
            }
            Userset::Union(set) | Userset::Intersection(set) => {
                let operator = if matches!(rewrite, Userset::Union(_)) {
                    " or "
                } else {
                    " and "
                };
                let mut operands: Vec<&Userset> = set.child.iter().collect();
                if operands.is_empty() {
                    return Err(PrintError::EmptyOperator(self.relation.to_owned()));
                }
                // Operands commute, so the one holding the direct part goes first.
                if let Some(index) = operands.iter().position(|c| contains_this(c)) {
                    let holder = operands.remove(index);
                    operands.insert(0, holder);
                }
                for (index, operand) in operands.into_iter().enumerate() {
                    if index > 0 {
                        out.push_str(operator);
                    }
                    self.write_operand(out, operand, leading && index == 0)?;
                }
            }
            Userset::Difference(difference) => {
                self.write_operand(out, &difference.base, leading)?;
                out.push_str(" but not ");
                self.write_operand(out, &difference.subtract, false)?;
            }
        }
        Ok(())
    }

    fn write_operand(
        &mut self,
        out: &mut String,
        rewrite: &Userset,
        leading: bool,
    ) -> Result<(), PrintError> {
        let compound = matches!(
            rewrite,
            Userset::Union(_) | Userset::Intersection(_) | Userset::Difference(_)
        );
        if compound {
            out.push('(');
            self.write(out, rewrite, leading)?;
            out.push(')');
            Ok(())
        } else {
            self.write(out, rewrite, leading)
        }
    }
}

fn write_reference(out: &mut String, reference: &RelationReference) {
    out.push_str(&reference.type_name);
    if reference.wildcard.is_some() {
        out.push_str(":*");
    } else if let Some(relation) = &reference.relation {
        out.push('#');
        out.push_str(relation);
    }
    if !reference.condition.is_empty() {
        out.push_str(" with ");
        out.push_str(&reference.condition);
    }
}
