//! The columns of the parsed layer, as this stage writes them.
//!
//! Raw layer (written by ingest-svc, [`common::raw`]), per file: the
//! [bookkeeping columns](common::bookkeeping::BOOKKEEPING) and one column named after the table
//! holding the record as JSON text (null on the row of a failed page). Parsed layer: one nullable `Utf8` column per record field, in alphabetical (byte)
//! order, then the bookkeeping columns with the types below. The partition columns
//! (`import_year`, ...) are in neither: they come from the Hive path and the catalog.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::bookkeeping::{bookkeeping_fields, is_bookkeeping};
use common::layout::{IMPORT_PARTITION_KEYS, check_column_name};

/// Why a record field cannot be a column. The stage wraps it with the partition's name
/// ([`crate::ParseError::BadField`]), so the error names table, partition and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Field names come from the API: data, never trusted as a name. Only a plain identifier
    /// ([`check_column_name`]) may become a column, a Glue column or part of a query.
    #[error(
        "column {field:?} (a field of the API's records) is not a plain identifier (ASCII letters, digits and '_', 1 to 128 characters): refused before anything is written"
    )]
    NotIdentifier { field: String },
    #[error("field {field:?} has the name of a bookkeeping or partition column")]
    Reserved { field: String },
    /// Athena and Glue fold column names to lowercase, so these two would be one column.
    #[error("fields {first:?} and {second:?} differ only in case")]
    CaseClash { first: String, second: String },
}

/// The parsed layer's schema for a partition whose records had `fields`: the fields in
/// alphabetical order (the set's order), as nullable text, then the bookkeeping columns.
///
/// This is where every field name from the API is checked, once per partition and before the
/// stage writes anything: a name that is not a plain identifier, is reserved, or clashes with
/// another in case is an error, so no such name reaches a key, the catalog or a query.
pub fn parsed_schema(fields: &BTreeSet<String>) -> Result<SchemaRef, FieldError> {
    let mut folded: BTreeMap<String, &str> = BTreeMap::new();
    for field in fields {
        if check_column_name(field).is_err() {
            return Err(FieldError::NotIdentifier {
                field: field.clone(),
            });
        }
        if is_bookkeeping(field) || IMPORT_PARTITION_KEYS.contains(&field.as_str()) {
            return Err(FieldError::Reserved {
                field: field.clone(),
            });
        }
        if let Some(first) = folded.insert(field.to_ascii_lowercase(), field) {
            return Err(FieldError::CaseClash {
                first: first.to_owned(),
                second: field.clone(),
            });
        }
    }
    let columns = fields
        .iter()
        .map(|name| Field::new(name, DataType::Utf8, true))
        .chain(bookkeeping_fields());
    Ok(Arc::new(Schema::new(columns.collect::<Vec<_>>())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fields_come_sorted_then_bookkeeping() {
        let schema = parsed_schema(&set(&["last_updated", "id", "_1st", "Zeta"])).unwrap();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "Zeta",
                "_1st",
                "id",
                "last_updated",
                "page_number",
                "import_api_url_requested",
                "import_api_status_code",
                "import_exception_thrown",
                "import_datetime",
                "import_timestamp"
            ]
        );
        assert!(
            schema.fields()[..4]
                .iter()
                .all(|f| f.data_type() == &DataType::Utf8)
        );
        // The types of the old jobs' parsed tables: bigint, string, timestamp, string.
        let type_of = |name: &str| schema.field_with_name(name).unwrap().data_type().clone();
        assert_eq!(type_of("page_number"), DataType::Int64);
        assert_eq!(type_of("import_api_status_code"), DataType::Utf8);
        assert_eq!(type_of("import_exception_thrown"), DataType::Utf8);
        assert_eq!(
            type_of("import_datetime"),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(type_of("import_timestamp"), DataType::Utf8);
    }

    #[test]
    fn an_empty_partition_has_only_bookkeeping_columns() {
        assert_eq!(parsed_schema(&BTreeSet::new()).unwrap().fields().len(), 6);
    }

    #[test]
    fn unusable_field_names_are_named() {
        let err = parsed_schema(&set(&["id", "bad name"])).unwrap_err();
        assert!(err.to_string().contains("\"bad name\""), "{err}");
        for hostile in [
            "../x",
            "a;drop table",
            "A\"b",
            "x y",
            "",
            "a/b",
            "a.b",
            "a-b",
            "caf\u{e9}",
            "a\u{0}",
            "\u{ff21}",
            &"a".repeat(129),
        ] {
            assert_eq!(
                parsed_schema(&set(&["id", hostile])).unwrap_err(),
                FieldError::NotIdentifier {
                    field: hostile.into()
                },
                "{hostile:?}"
            );
        }
        assert!(parsed_schema(&set(&["_1st", "A9", &"a".repeat(128)])).is_ok());
        let err = parsed_schema(&set(&["id", "page_number"])).unwrap_err();
        assert_eq!(
            err,
            FieldError::Reserved {
                field: "page_number".into()
            }
        );
        let err = parsed_schema(&set(&["import_date"])).unwrap_err();
        assert!(matches!(err, FieldError::Reserved { .. }));
        let err = parsed_schema(&set(&["Name", "name"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "fields \"Name\" and \"name\" differ only in case"
        );
    }
}
