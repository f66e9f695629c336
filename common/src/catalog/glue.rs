//! [`Catalog`] on the AWS Glue Data Catalog, writing tables Athena reads as Parquet.

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_glue::error::SdkError;
use aws_sdk_glue::types::{
    DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, Table, TableInput,
};

use super::{
    Catalog, CatalogError, Column, PartitionInfo, Result, TableDef, merge_columns, set_types,
};
use crate::aws::{CallFailure, classify};

pub const PARQUET_INPUT_FORMAT: &str =
    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
pub const PARQUET_OUTPUT_FORMAT: &str =
    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";

const NOT_FOUND: &str = "EntityNotFoundException";
const ALREADY_EXISTS: &str = "AlreadyExistsException";

/// The Glue Data Catalog of the configured account and region.
#[derive(Debug, Clone)]
pub struct GlueCatalog {
    client: aws_sdk_glue::Client,
    /// Whether the services create the Glue databases they publish into. `false` when
    /// Terraform manages them (`TASCOMI_MANAGE_DATABASES=false`): then `ensure_database` only
    /// checks that the database is there, and the task roles need no `glue:CreateDatabase`
    /// (which Lake Formation would deny).
    creates_databases: bool,
}

impl GlueCatalog {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            client: aws_sdk_glue::Client::new(config),
            creates_databases: true,
        }
    }

    /// A catalog that never creates a database (see `creates_databases`).
    pub fn with_managed_databases(mut self) -> Self {
        self.creates_databases = false;
        self
    }

    /// The raw table, or `None` when it (or its database) does not exist.
    async fn get_table(&self, database: &str, table: &str) -> Result<Option<Table>> {
        match self
            .client
            .get_table()
            .database_name(database)
            .name(table)
            .send()
            .await
        {
            Ok(output) => Ok(output.table),
            Err(err) => {
                let failure = classify(&err);
                if failure.code_is(NOT_FOUND) {
                    Ok(None)
                } else {
                    Err(from_failure("get table", database, table, failure))
                }
            }
        }
    }

    /// Adds the columns `def` has and `existing` lacks; a no-op when there are none.
    async fn add_columns(&self, existing: &Table, def: &TableDef) -> Result<()> {
        let mut current = table_def(&def.database, existing);
        let merged = merge_columns(&current, &def.columns)?;
        if merged == current.columns {
            return Ok(());
        }
        // Location and partition keys stay as they are: the contract only ever adds columns.
        // Concurrent updates are not guarded (no VersionId): each table has one writing stage.
        current.columns = merged;
        self.client
            .update_table()
            .database_name(&def.database)
            .table_input(table_input(&current)?)
            .send()
            .await
            .map_err(|err| failed("update table", &def.database, &def.name, &err))?;
        tracing::info!(
            database = %def.database,
            table = %def.name,
            columns = current.columns.len(),
            "added columns to table"
        );
        Ok(())
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    async fn ensure_database(&self, database: &str) -> Result<()> {
        if !self.creates_databases {
            return match self.client.get_database().name(database).send().await {
                Ok(_) => Ok(()),
                Err(err) => Err(from_failure(
                    "get database (it is managed by Terraform, TASCOMI_MANAGE_DATABASES=false)",
                    database,
                    "",
                    classify(&err),
                )),
            };
        }
        let input = DatabaseInput::builder()
            .name(database)
            .build()
            .map_err(|err| invalid("create database", database, "", err))?;
        match self
            .client
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let failure = classify(&err);
                if failure.code_is(ALREADY_EXISTS) {
                    Ok(())
                } else {
                    Err(from_failure("create database", database, "", failure))
                }
            }
        }
    }

    async fn ensure_table(&self, def: &TableDef) -> Result<()> {
        if let Some(existing) = self.get_table(&def.database, &def.name).await? {
            return self.add_columns(&existing, def).await;
        }
        let created = self
            .client
            .create_table()
            .database_name(&def.database)
            .table_input(table_input(def)?)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(err) => {
                let failure = classify(&err);
                if !failure.code_is(ALREADY_EXISTS) {
                    return Err(from_failure(
                        "create table",
                        &def.database,
                        &def.name,
                        failure,
                    ));
                }
                // Another writer created it between our get and create: merge into theirs.
                match self.get_table(&def.database, &def.name).await? {
                    Some(existing) => self.add_columns(&existing, def).await,
                    None => Err(from_failure(
                        "create table",
                        &def.database,
                        &def.name,
                        failure,
                    )),
                }
            }
        }
    }

    async fn table(&self, database: &str, table: &str) -> Result<Option<TableDef>> {
        Ok(self
            .get_table(database, table)
            .await?
            .map(|raw| table_def(database, &raw)))
    }

    async fn publish_partition(
        &self,
        database: &str,
        table: &str,
        partition: &PartitionInfo,
    ) -> Result<Option<String>> {
        let Some(raw_table) = self.get_table(database, table).await? else {
            return Err(CatalogError::table_not_found(database, table));
        };
        // The partition's descriptor is the table's (formats, SerDe, columns as of now) with the
        // partition's own location.
        let mut descriptor = raw_table
            .storage_descriptor
            .clone()
            .unwrap_or_else(|| StorageDescriptor::builder().build());
        descriptor.location = Some(partition.location.clone());
        let input = PartitionInput::builder()
            .set_values(Some(partition.values.clone()))
            .storage_descriptor(descriptor)
            .set_parameters(Some(partition.parameters.clone().into_iter().collect()))
            .build();

        let existing = self
            .client
            .get_partition()
            .database_name(database)
            .table_name(table)
            .set_partition_values(Some(partition.values.clone()))
            .send()
            .await;
        let previous = match existing {
            Ok(output) => output.partition.map(|p| partition_location(&p)),
            Err(err) => {
                let failure = classify(&err);
                if !failure.code_is(NOT_FOUND) {
                    return Err(from_failure("get partition", database, table, failure));
                }
                None
            }
        };

        if previous.is_none() {
            let created = self
                .client
                .create_partition()
                .database_name(database)
                .table_name(table)
                .partition_input(input.clone())
                .send()
                .await;
            match created {
                Ok(_) => {
                    tracing::debug!(
                        database,
                        table,
                        partition = ?partition.values,
                        location = %partition.location,
                        "created partition"
                    );
                    return Ok(None);
                }
                Err(err) => {
                    let failure = classify(&err);
                    if !failure.code_is(ALREADY_EXISTS) {
                        return Err(from_failure("create partition", database, table, failure));
                    }
                    // Another delivery of the same message created it first; switch it below.
                }
            }
        }

        // One UpdatePartition switches the location: readers see the old files or the new ones.
        self.client
            .update_partition()
            .database_name(database)
            .table_name(table)
            .set_partition_value_list(Some(partition.values.clone()))
            .partition_input(input)
            .send()
            .await
            .map_err(|err| failed("update partition", database, table, &err))?;
        tracing::debug!(
            database,
            table,
            partition = ?partition.values,
            location = %partition.location,
            previous = previous.as_deref().unwrap_or_default(),
            "switched partition"
        );
        Ok(previous)
    }

    async fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<PartitionInfo>> {
        let mut pages = self
            .client
            .get_partitions()
            .database_name(database)
            .table_name(table)
            .into_paginator()
            .send();
        let mut partitions = Vec::new();
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(err) => {
                    let failure = classify(&err);
                    if failure.code_is(NOT_FOUND) {
                        return Ok(Vec::new());
                    }
                    return Err(from_failure("list partitions", database, table, failure));
                }
            };
            partitions.extend(page.partitions().iter().map(|p| {
                PartitionInfo {
                    values: p.values().to_vec(),
                    location: partition_location(p),
                    parameters: p
                        .parameters()
                        .map(|params| params.clone().into_iter().collect())
                        .unwrap_or_default(),
                }
            }));
        }
        partitions.sort_by(|a, b| a.values.cmp(&b.values));
        Ok(partitions)
    }

    async fn drop_partition(&self, database: &str, table: &str, values: &[String]) -> Result<()> {
        let deleted = self
            .client
            .delete_partition()
            .database_name(database)
            .table_name(table)
            .set_partition_values(Some(values.to_vec()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(err) => {
                let failure = classify(&err);
                if failure.code_is(NOT_FOUND) {
                    Ok(())
                } else {
                    Err(from_failure("delete partition", database, table, failure))
                }
            }
        }
    }

    async fn set_column_types(
        &self,
        database: &str,
        table: &str,
        columns: &[Column],
    ) -> Result<()> {
        let Some(existing) = self.get_table(database, table).await? else {
            return Err(CatalogError::table_not_found(database, table));
        };
        let mut current = table_def(database, &existing);
        let typed = set_types(&current, columns)?;
        if typed == current.columns {
            return Ok(());
        }
        // As in `add_columns`: one UpdateTable of the whole definition, location and partition
        // keys as they are.
        current.columns = typed;
        self.client
            .update_table()
            .database_name(database)
            .table_input(table_input(&current)?)
            .send()
            .await
            .map_err(|err| failed("update table", database, table, &err))?;
        tracing::info!(database, table, columns = columns.len(), "set column types");
        Ok(())
    }
}

/// The Glue table for a definition: an external Parquet table with Hive-typed columns and string
/// partition keys, which is what Athena needs to read it.
fn table_input(def: &TableDef) -> Result<TableInput> {
    let columns = def
        .columns
        .iter()
        .map(|c| glue_column(&c.name, &c.hive_type))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| invalid("build table", &def.database, &def.name, err))?;
    let partition_keys = def
        .partition_keys
        .iter()
        .map(|key| glue_column(key, "string"))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|err| invalid("build table", &def.database, &def.name, err))?;
    let descriptor = StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(&def.location)
        .input_format(PARQUET_INPUT_FORMAT)
        .output_format(PARQUET_OUTPUT_FORMAT)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(PARQUET_SERDE)
                .parameters("serialization.format", "1")
                .build(),
        )
        .compressed(false)
        .stored_as_sub_directories(false)
        .build();
    TableInput::builder()
        .name(&def.name)
        .table_type("EXTERNAL_TABLE")
        .parameters("classification", "parquet")
        .parameters("EXTERNAL", "TRUE")
        .storage_descriptor(descriptor)
        .set_partition_keys(Some(partition_keys))
        .build()
        .map_err(|err| invalid("build table", &def.database, &def.name, err))
}

fn glue_column(
    name: &str,
    hive_type: &str,
) -> std::result::Result<aws_sdk_glue::types::Column, aws_sdk_glue::error::BuildError> {
    aws_sdk_glue::types::Column::builder()
        .name(name)
        .r#type(hive_type)
        .build()
}

/// Our definition of a Glue table. A column without a type reads as `string`, as Athena would.
fn table_def(database: &str, table: &Table) -> TableDef {
    let descriptor = table.storage_descriptor();
    TableDef {
        database: database.to_owned(),
        name: table.name().to_owned(),
        location: descriptor
            .and_then(|d| d.location())
            .unwrap_or_default()
            .to_owned(),
        columns: descriptor
            .map(|d| d.columns())
            .unwrap_or_default()
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                hive_type: c.r#type().unwrap_or("string").to_owned(),
            })
            .collect(),
        partition_keys: table
            .partition_keys()
            .iter()
            .map(|c| c.name().to_owned())
            .collect(),
    }
}

fn partition_location(partition: &aws_sdk_glue::types::Partition) -> String {
    partition
        .storage_descriptor()
        .and_then(|d| d.location())
        .unwrap_or_default()
        .to_owned()
}

fn failed<E>(
    operation: &'static str,
    database: &str,
    table: &str,
    err: &SdkError<E>,
) -> CatalogError
where
    E: aws_sdk_glue::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    from_failure(operation, database, table, classify(err))
}

fn from_failure(
    operation: &'static str,
    database: &str,
    table: &str,
    failure: CallFailure,
) -> CatalogError {
    CatalogError::failed(
        operation,
        database,
        table,
        failure.message,
        failure.transient,
    )
}

/// A request we could not even build: a required field was empty. Permanent.
fn invalid(
    operation: &'static str,
    database: &str,
    table: &str,
    err: aws_sdk_glue::error::BuildError,
) -> CatalogError {
    CatalogError::failed(operation, database, table, err, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> TableDef {
        TableDef {
            database: "db".into(),
            name: "increment_appeals".into(),
            location: "s3://bucket/planning/tascomi/increment/appeals/".into(),
            columns: vec![
                Column {
                    name: "id".into(),
                    hive_type: "int".into(),
                },
                Column {
                    name: "name".into(),
                    hive_type: "string".into(),
                },
            ],
            partition_keys: vec!["import_year".into(), "import_date".into()],
        }
    }

    #[test]
    fn table_input_is_an_external_parquet_table_with_string_partition_keys() {
        let input = table_input(&def()).unwrap();
        assert_eq!(input.table_type(), Some("EXTERNAL_TABLE"));
        assert_eq!(
            input
                .parameters()
                .and_then(|p| p.get("classification"))
                .map(String::as_str),
            Some("parquet")
        );
        let sd = input.storage_descriptor().unwrap();
        assert_eq!(sd.input_format(), Some(PARQUET_INPUT_FORMAT));
        assert_eq!(sd.output_format(), Some(PARQUET_OUTPUT_FORMAT));
        assert_eq!(
            sd.serde_info().and_then(|s| s.serialization_library()),
            Some(PARQUET_SERDE)
        );
        assert!(
            input
                .partition_keys()
                .iter()
                .all(|k| k.r#type() == Some("string"))
        );
    }

    #[test]
    fn table_def_reads_back_what_table_input_wrote() {
        let input = table_input(&def()).unwrap();
        let table = Table::builder()
            .name(input.name())
            .set_storage_descriptor(input.storage_descriptor().cloned())
            .set_partition_keys(Some(input.partition_keys().to_vec()))
            .build()
            .unwrap();
        assert_eq!(table_def("db", &table), def());
    }
}
