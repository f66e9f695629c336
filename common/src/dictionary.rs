//! The column-type dictionary: which text columns of which table become which type.
//!
//! The production format is a JSON list holding one object, type -> table -> [columns], with
//! types `integer`, `long`, `float`, `double`, `boolean`, `timestamp`, `date`. Columns it does
//! not list stay text.
//!
//! The written types are those of the tables the old Glue jobs made (their recast cast `float`
//! and `double` alike with Spark's `DoubleType`): `integer` Int32 (`int`), `long` Int64
//! (`bigint`), `float` and `double` Float64 (`double`), `boolean`, `timestamp` (µs, no zone) and
//! `date` (Date32). The dictionary's word `float` is read as before; only what it becomes is a
//! 64-bit double.

use std::collections::BTreeMap;
use std::path::Path;

use arrow::datatypes::{DataType, TimeUnit};
use serde::Deserialize;

use crate::layout::{check_column_name, is_plain_identifier};

/// A type the dictionary can give a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Integer,
    Long,
    Float,
    Double,
    Boolean,
    Timestamp,
    Date,
}

impl ColumnType {
    /// The Arrow type written to Parquet. `float` is a 64-bit double like `double` (the type of
    /// the existing tables' columns). Timestamps are microseconds without a time zone (Tascomi's
    /// times are London wall-clock times), which Athena reads as `timestamp`.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Integer => DataType::Int32,
            ColumnType::Long => DataType::Int64,
            ColumnType::Float => DataType::Float64,
            ColumnType::Double => DataType::Float64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::Date => DataType::Date32,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Integer => "integer",
            ColumnType::Long => "long",
            ColumnType::Float => "float",
            ColumnType::Double => "double",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DictionaryError {
    #[error("column-type dictionary {origin}: {message}")]
    Malformed { origin: String, message: String },
    #[error(
        "column-type dictionary {origin}: column {column} of table {table} is listed as both {first} and {second}"
    )]
    Conflict {
        origin: String,
        table: String,
        column: String,
        first: &'static str,
        second: &'static str,
    },
}

/// The dictionary, indexed by table then column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnTypes {
    tables: BTreeMap<String, BTreeMap<String, ColumnType>>,
}

impl ColumnTypes {
    pub fn load(path: &Path) -> Result<Self, DictionaryError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| DictionaryError::Malformed {
            origin: origin.clone(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &origin)
    }

    /// Parses the production format. A column listed under two types is an error naming it, and
    /// so is a table or column name that is not a plain identifier (the names become Glue
    /// columns and parts of queries, as the parsed layer's field names do).
    pub fn parse(text: &str, origin: &str) -> Result<Self, DictionaryError> {
        let malformed = |message: String| DictionaryError::Malformed {
            origin: origin.to_owned(),
            message,
        };
        type Raw = Vec<BTreeMap<ColumnType, BTreeMap<String, Vec<String>>>>;
        let raw: Raw = serde_json::from_str(text).map_err(|e| malformed(e.to_string()))?;
        let mut tables: BTreeMap<String, BTreeMap<String, ColumnType>> = BTreeMap::new();
        for object in raw {
            for (column_type, by_table) in object {
                for (table, columns) in by_table {
                    if !is_plain_identifier(&table) {
                        return Err(malformed(format!(
                            "table {table:?} is not a plain identifier"
                        )));
                    }
                    if let Some(column) = columns.iter().find(|c| check_column_name(c).is_err()) {
                        return Err(malformed(format!(
                            "column {column:?} of table {table} is not a plain identifier"
                        )));
                    }
                    let entry = tables.entry(table.clone()).or_default();
                    for column in columns {
                        if let Some(first) = entry.insert(column.clone(), column_type)
                            && first != column_type
                        {
                            return Err(DictionaryError::Conflict {
                                origin: origin.to_owned(),
                                table,
                                column,
                                first: first.name(),
                                second: column_type.name(),
                            });
                        }
                    }
                }
            }
        }
        Ok(Self { tables })
    }

    /// The typed columns of a table (empty when the dictionary does not list it).
    pub fn columns(&self, table: &str) -> impl Iterator<Item = (&str, ColumnType)> {
        self.tables
            .get(table)
            .into_iter()
            .flatten()
            .map(|(c, t)| (c.as_str(), *t))
    }

    pub fn column_type(&self, table: &str, column: &str) -> Option<ColumnType> {
        self.tables.get(table)?.get(column).copied()
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    pub fn tables(&self) -> impl Iterator<Item = &str> {
        self.tables.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real production dictionary, read from ../shared (never copied into the repository);
    /// `None`, saying so, when it is not there (outside CI: CI has it).
    pub fn production() -> Option<ColumnTypes> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/tascomi/column-type-dictionary.json");
        if !path.is_file() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs with ../shared beside the repository"
            );
            eprintln!(
                "skipped: the production dictionary is not at {}",
                path.display()
            );
            return None;
        }
        Some(ColumnTypes::load(&path).unwrap())
    }

    #[test]
    fn reads_the_production_dictionary() {
        let Some(d) = production() else { return };
        assert_eq!(d.tables().count(), 71);
        assert_eq!(
            d.column_type("applications", "id"),
            Some(ColumnType::Integer)
        );
        assert_eq!(
            d.column_type("applications", "a_charitable_use"),
            Some(ColumnType::Boolean)
        );
        assert_eq!(d.column_type("applications", "no_such_column"), None);
        assert!(d.columns("applications").count() > 100);
        assert!(!d.has_table("no_such_table"));
        assert_eq!(d.columns("no_such_table").count(), 0);
    }

    /// Each dictionary word, its Arrow type and the Glue type the catalog declares: those of the
    /// old jobs' tables (`float` is a double there).
    #[test]
    fn every_type_is_written_as_the_existing_tables_have_it() {
        let d = ColumnTypes::parse(
            r#"[{"integer": {"t": ["i"]}, "long": {"t": ["l"]}, "float": {"t": ["f"]},
                 "double": {"t": ["d"]}, "boolean": {"t": ["b"]},
                 "timestamp": {"t": ["ts"]}, "date": {"t": ["dt"]}}]"#,
            "d.json",
        )
        .unwrap();
        let found: Vec<(&str, &str, DataType, &str)> = d
            .columns("t")
            .map(|(column, t)| {
                let data_type = t.data_type();
                let glue = crate::catalog::hive_type(&data_type).unwrap();
                (column, t.name(), data_type, glue)
            })
            .collect();
        let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
        assert_eq!(
            found,
            [
                ("b", "boolean", DataType::Boolean, "boolean"),
                ("d", "double", DataType::Float64, "double"),
                ("dt", "date", DataType::Date32, "date"),
                ("f", "float", DataType::Float64, "double"),
                ("i", "integer", DataType::Int32, "int"),
                ("l", "long", DataType::Int64, "bigint"),
                ("ts", "timestamp", micros, "timestamp"),
            ]
        );
    }

    #[test]
    fn rejects_names_that_are_not_plain_identifiers() {
        for (text, named) in [
            (
                r#"[{"integer": {"t": ["../x"]}}]"#,
                "column \"../x\" of table t",
            ),
            (
                r#"[{"integer": {"t": ["a;drop table"]}}]"#,
                "column \"a;drop table\"",
            ),
            (r#"[{"date": {"../t": ["a"]}}]"#, "table \"../t\""),
            (r#"[{"date": {"T x": ["a"]}}]"#, "table \"T x\""),
        ] {
            let err = ColumnTypes::parse(text, "d.json").unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
            assert!(err.contains("not a plain identifier"), "{err}");
        }
    }

    #[test]
    fn rejects_conflicts_and_malformed_files() {
        let text = r#"[{"integer": {"t": ["a"]}, "boolean": {"t": ["a"]}}]"#;
        let err = ColumnTypes::parse(text, "d.json").unwrap_err().to_string();
        assert!(
            err.contains("column a of table t is listed as both"),
            "{err}"
        );
        let err = ColumnTypes::parse(r#"[{"decimal": {}}]"#, "d.json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("d.json") && err.contains("decimal"), "{err}");
        assert!(ColumnTypes::parse(r#"{"integer": {}}"#, "d.json").is_err());
    }
}
