//! What each column of a parsed partition becomes in the increment.
//!
//! - A bookkeeping column keeps its type (a dictionary entry for it is ignored).
//! - In a table marked `keep_as_text` in the pipeline file, every column stays as it is.
//! - Otherwise a text column the dictionary lists for the table is cast to the listed type;
//!   one it does not list stays text.
//! - A dictionary column the partition does not have is reported (a field nobody filled in that
//!   day is absent from the parsed partition), never fatal.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::bookkeeping::is_bookkeeping;
use common::dictionary::{ColumnType, ColumnTypes};

/// A parsed column the dictionary types, but that is not text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "column {column} is {found} in the parsed partition; the dictionary makes it {wanted}, which is cast from text only"
)]
pub struct PlanError {
    pub column: String,
    pub found: String,
    pub wanted: &'static str,
}

/// The increment's schema and how to get each column.
#[derive(Debug, Clone)]
pub struct CastPlan {
    pub output: SchemaRef,
    /// Per input column, in order: the type to cast it to, or `None` to keep it.
    pub casts: Vec<Option<ColumnType>>,
    /// Dictionary columns of the table that the partition lacks, sorted.
    pub missing: Vec<String>,
}

impl CastPlan {
    pub fn cast_columns(&self) -> usize {
        self.casts.iter().filter(|c| c.is_some()).count()
    }
}

pub fn plan(
    input: &Schema,
    table: &str,
    dictionary: &ColumnTypes,
    keep_as_text: bool,
) -> Result<CastPlan, PlanError> {
    let mut fields = Vec::with_capacity(input.fields().len());
    let mut casts = Vec::with_capacity(input.fields().len());
    for field in input.fields() {
        let wanted = (!keep_as_text && !is_bookkeeping(field.name()))
            .then(|| dictionary.column_type(table, field.name()))
            .flatten();
        let cast = match wanted {
            None => None,
            Some(wanted) if field.data_type() == &wanted.data_type() => None,
            Some(wanted) if field.data_type() == &DataType::Utf8 => Some(wanted),
            Some(wanted) => {
                return Err(PlanError {
                    column: field.name().clone(),
                    found: field.data_type().to_string(),
                    wanted: wanted.name(),
                });
            }
        };
        fields.push(match cast {
            Some(to) => Arc::new(Field::new(field.name(), to.data_type(), true)),
            None => field.clone(),
        });
        casts.push(cast);
    }
    let missing = if keep_as_text {
        Vec::new()
    } else {
        let present: BTreeSet<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
        dictionary
            .columns(table)
            .map(|(column, _)| column)
            .filter(|column| !present.contains(column) && !is_bookkeeping(column))
            .map(str::to_owned)
            .collect()
    };
    Ok(CastPlan {
        output: Arc::new(Schema::new(fields)),
        casts,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    fn dictionary() -> ColumnTypes {
        ColumnTypes::parse(
            r#"[{"integer": {"appeals": ["id", "page_number", "gone"]},
                 "timestamp": {"appeals": ["last_updated"]},
                 "float": {"appeals": ["area"]},
                 "boolean": {"other": ["name"]}}]"#,
            "test",
        )
        .unwrap()
    }

    fn parsed(names: &[&str]) -> Schema {
        let mut fields: Vec<Field> = names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, true))
            .collect();
        fields.push(Field::new("page_number", DataType::Int64, true));
        Schema::new(fields)
    }

    #[test]
    fn listed_columns_are_typed_and_the_rest_stay_text() {
        let plan = plan(
            &parsed(&["id", "last_updated", "name", "area"]),
            "appeals",
            &dictionary(),
            false,
        )
        .unwrap();
        let types: Vec<&DataType> = plan.output.fields().iter().map(|f| f.data_type()).collect();
        assert_eq!(
            types,
            [
                &DataType::Int32,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
                &DataType::Utf8,
                // `float`: a double, the old tables' type.
                &DataType::Float64,
                &DataType::Int64
            ]
        );
        assert_eq!(
            plan.casts,
            [
                Some(ColumnType::Integer),
                Some(ColumnType::Timestamp),
                None,
                Some(ColumnType::Float),
                None
            ]
        );
        assert_eq!(plan.cast_columns(), 3);
        // `page_number` is bookkeeping: listed, but neither cast nor missing.
        assert_eq!(plan.missing, ["gone"]);
    }

    #[test]
    fn keep_as_text_tables_pass_through() {
        let input = parsed(&["id", "last_updated"]);
        let plan = plan(&input, "appeals", &dictionary(), true).unwrap();
        assert_eq!(plan.output.as_ref(), &input);
        assert!(plan.missing.is_empty());
        assert_eq!(plan.cast_columns(), 0);
    }

    #[test]
    fn a_table_outside_the_dictionary_stays_text() {
        let input = parsed(&["id"]);
        let plan = plan(&input, "wards", &dictionary(), false).unwrap();
        assert_eq!(plan.output.as_ref(), &input);
        assert!(plan.missing.is_empty());
    }

    #[test]
    fn a_typed_column_that_is_not_text_is_refused() {
        let input = Schema::new(vec![Field::new("id", DataType::Float64, true)]);
        let err = plan(&input, "appeals", &dictionary(), false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column id is Float64 in the parsed partition; the dictionary makes it integer, which is cast from text only"
        );
    }
}
