//! The table catalog: the narrow interface the stages need from the Glue Data Catalog.
//!
//! Implementations: [`GlueCatalog`] (aws-sdk-glue; tables Athena reads: Parquet SerDe, Hive types,
//! string partition keys) and [`LocalCatalog`] (JSON files under the data directory).

mod glue;
mod local;

use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use async_trait::async_trait;

pub use glue::GlueCatalog;
pub use local::LocalCatalog;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("table {database}.{table} does not exist")]
    TableNotFound { database: String, table: String },
    #[error(
        "column {column} of {database}.{table} is {existing} in the catalog but {proposed} in the data"
    )]
    TypeConflict {
        database: String,
        table: String,
        column: String,
        existing: String,
        proposed: String,
    },
    #[error("catalog {operation} on {database}.{table} failed: {message}")]
    Failed {
        operation: &'static str,
        database: String,
        table: String,
        message: String,
        transient: bool,
    },
}

impl CatalogError {
    pub fn table_not_found(database: &str, table: &str) -> CatalogError {
        CatalogError::TableNotFound {
            database: database.to_owned(),
            table: table.to_owned(),
        }
    }

    /// A failed `operation` on `database.table`, retried by the runner when `transient`.
    pub fn failed(
        operation: &'static str,
        database: &str,
        table: &str,
        message: impl ToString,
        transient: bool,
    ) -> CatalogError {
        CatalogError::Failed {
            operation,
            database: database.to_owned(),
            table: table.to_owned(),
            message: message.to_string(),
            transient,
        }
    }

    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            CatalogError::Failed {
                transient: true,
                ..
            }
        )
    }
}

/// The inherent [`CatalogError::is_transient`], as the trait every stage's errors implement.
impl crate::failure::Transience for CatalogError {
    fn is_transient(&self) -> bool {
        CatalogError::is_transient(self)
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// A column with its Hive type (`string`, `int`, `bigint`, `float`, `double`, `boolean`,
/// `timestamp`, `date`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub hive_type: String,
}

/// What a table is: its columns, its string partition keys and the location of its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    pub database: String,
    pub name: String,
    /// `s3://bucket/prefix/`.
    pub location: String,
    /// Data columns, in order, without the partition keys.
    pub columns: Vec<Column>,
    /// Partition keys, all of Hive type `string`.
    pub partition_keys: Vec<String>,
}

/// One published partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Values in the order of the table's partition keys.
    pub values: Vec<String>,
    /// `s3://bucket/prefix/` of its files.
    pub location: String,
    /// Free-form facts recorded at publication (`run_id`, `rows`, ...).
    pub parameters: BTreeMap<String, String>,
}

/// The catalog.
///
/// Contract: every call is idempotent. `ensure_table` creates the table or adds the columns it
/// lacks (never drops one; widens one only as [`is_widening`] allows; any other changed type is a
/// [`CatalogError::TypeConflict`]); only `set_column_types` changes a type otherwise.
/// `publish_partition` makes a partition point at `location` in one step, creating it or
/// switching an existing one, so readers see either the old files or the new ones, never a mix.
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    async fn ensure_database(&self, database: &str) -> Result<()>;

    async fn ensure_table(&self, table: &TableDef) -> Result<()>;

    /// The table's definition, or `None` when it does not exist.
    async fn table(&self, database: &str, table: &str) -> Result<Option<TableDef>>;

    /// Publishes (creates or switches) a partition. Returns the location it replaced, if any.
    async fn publish_partition(
        &self,
        database: &str,
        table: &str,
        partition: &PartitionInfo,
    ) -> Result<Option<String>>;

    /// Every partition of the table (empty when the table does not exist), sorted by values.
    async fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<PartitionInfo>>;

    /// Removes a partition from the catalog (not its files). Absent is not an error.
    async fn drop_partition(&self, database: &str, table: &str, values: &[String]) -> Result<()>;

    /// Sets the Hive type of each of `columns` in the table, whatever it was: the one change of
    /// type `ensure_table` refuses, for `tascomi retype` after a correction of the column-type
    /// dictionary, once the partitions written with the old types are gone. The other columns,
    /// their order, the location and the partition keys stay. A table that does not exist is
    /// [`CatalogError::TableNotFound`]; a column it lacks is refused, naming it.
    async fn set_column_types(&self, database: &str, table: &str, columns: &[Column])
    -> Result<()>;
}

/// The Hive type Athena should see for an Arrow type, or `None` when we never write that type.
///
/// The types we write are those of the tables the old Glue jobs and crawlers made, so our
/// partitions publish into them: dictionary `float` and `double` columns are Float64 (`double`),
/// `page_number` Int64 (`bigint`), the status and `import_timestamp` text (`string`). Float32
/// (`float`) is no longer written; it is named for files and tables of earlier runs, which
/// [`is_widening`] lets a `double` replace.
pub fn hive_type(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
        DataType::Int32 => "int",
        DataType::Int64 => "bigint",
        DataType::Float32 => "float",
        DataType::Float64 => "double",
        DataType::Boolean => "boolean",
        DataType::Timestamp(_, _) => "timestamp",
        DataType::Date32 => "date",
        _ => return None,
    })
}

/// Columns of an Arrow schema as catalog columns, leaving out the partition keys.
pub fn columns_of(schema: &arrow::datatypes::Schema, partition_keys: &[String]) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .filter(|f| !partition_keys.contains(f.name()))
        .map(|f| Column {
            name: f.name().clone(),
            hive_type: hive_type(f.data_type()).unwrap_or("string").to_owned(),
        })
        .collect()
}

/// True when Athena reads files written with `narrow` through a column declared `wide`, so the
/// catalog may widen the column (the snapshot widens `int` ids to `bigint`, for example; a
/// `page_number` or dictionary `float` column of a table our earlier runs made, `int` or `float`,
/// becomes `bigint` or `double`). A number never becomes `string`: Athena does not read an
/// `int` Parquet column as text, so a table whose status column is still `int` is a
/// [`CatalogError::TypeConflict`], never a silent change.
pub fn is_widening(narrow: &str, wide: &str) -> bool {
    matches!(
        (narrow, wide),
        ("int", "bigint") | ("float", "double") | ("int", "double")
    )
}

/// Merges proposed columns into existing ones: existing order kept, new ones appended, a column
/// widened when [`is_widening`] allows it, any other change of type refused. Shared by both
/// implementations so they agree.
pub fn merge_columns(existing: &TableDef, proposed: &[Column]) -> Result<Vec<Column>> {
    let mut merged = existing.columns.clone();
    for column in proposed {
        match merged.iter_mut().find(|c| c.name == column.name) {
            Some(old) if old.hive_type == column.hive_type => {}
            Some(old) if is_widening(&old.hive_type, &column.hive_type) => {
                old.hive_type = column.hive_type.clone();
            }
            // Files written narrower than the column still read: keep the wider type.
            Some(old) if is_widening(&column.hive_type, &old.hive_type) => {}
            Some(old) => {
                return Err(CatalogError::TypeConflict {
                    database: existing.database.clone(),
                    table: existing.name.clone(),
                    column: column.name.clone(),
                    existing: old.hive_type.clone(),
                    proposed: column.hive_type.clone(),
                });
            }
            None => merged.push(column.clone()),
        }
    }
    Ok(merged)
}

/// The existing columns with the types of `columns` set (see [`Catalog::set_column_types`]).
/// Shared by both implementations so they agree.
pub fn set_types(existing: &TableDef, columns: &[Column]) -> Result<Vec<Column>> {
    let mut out = existing.columns.clone();
    for column in columns {
        let Some(old) = out.iter_mut().find(|c| c.name == column.name) else {
            return Err(CatalogError::failed(
                "set column types",
                &existing.database,
                &existing.name,
                format!("the table has no column {}", column.name),
                false,
            ));
        };
        old.hive_type = column.hive_type.clone();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_widens_compatible_types_and_refuses_others() {
        let col = |name: &str, t: &str| Column {
            name: name.into(),
            hive_type: t.into(),
        };
        let existing = TableDef {
            database: "db".into(),
            name: "t".into(),
            location: "s3://b/t/".into(),
            columns: vec![
                col("id", "int"),
                col("area", "float"),
                col("name", "string"),
            ],
            partition_keys: vec![],
        };
        let merged =
            merge_columns(&existing, &[col("id", "bigint"), col("area", "double")]).unwrap();
        assert_eq!(merged[0], col("id", "bigint"));
        assert_eq!(merged[1], col("area", "double"));
        let wide = TableDef {
            columns: merged,
            ..existing.clone()
        };
        assert_eq!(
            merge_columns(&wide, &[col("id", "int")]).unwrap()[0],
            col("id", "bigint")
        );
        // The types we write now, proposed to a table of our earlier runs (`int` page number
        // and status, `float` area): the page number and area widen, the status is refused.
        let earlier = TableDef {
            columns: vec![
                col("page_number", "int"),
                col("area", "float"),
                col("import_api_status_code", "int"),
            ],
            ..existing.clone()
        };
        let merged = merge_columns(
            &earlier,
            &[col("page_number", "bigint"), col("area", "double")],
        )
        .unwrap();
        assert_eq!(
            merged[..2],
            [col("page_number", "bigint"), col("area", "double")]
        );
        let err = merge_columns(&earlier, &[col("import_api_status_code", "string")]).unwrap_err();
        assert!(matches!(err, CatalogError::TypeConflict { .. }), "{err}");
        // A table the old jobs' crawlers made already has our types: nothing changes.
        let crawled = TableDef {
            columns: vec![
                col("page_number", "bigint"),
                col("import_api_status_code", "string"),
                col("area", "double"),
            ],
            ..existing.clone()
        };
        assert_eq!(
            merge_columns(
                &crawled,
                &[
                    col("page_number", "bigint"),
                    col("import_api_status_code", "string"),
                    col("area", "double")
                ]
            )
            .unwrap(),
            crawled.columns
        );
        let err = merge_columns(&existing, &[col("name", "int")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("column name of db.t is string in the catalog but int"),
            "{err}"
        );
    }
}
