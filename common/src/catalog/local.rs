//! A catalog kept as JSON files under the data directory, for the embedded default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{
    Catalog, CatalogError, Column, PartitionInfo, Result, TableDef, merge_columns, set_types,
};

/// One JSON file per table, `<root>/<database>/<table>.json`, holding its definition and its
/// partitions. Every change rewrites the file through a temporary file and a rename, so a
/// publication is one atomic step, as in Glue. Changes within the process are serialised by a
/// lock; the embedded default runs in one process.
#[derive(Debug)]
pub struct LocalCatalog {
    root: PathBuf,
    lock: Mutex<()>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableFile {
    location: String,
    columns: Vec<(String, String)>,
    partition_keys: Vec<String>,
    partitions: Vec<PartitionEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PartitionEntry {
    values: Vec<String>,
    location: String,
    #[serde(default)]
    parameters: BTreeMap<String, String>,
}

impl LocalCatalog {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            lock: Mutex::new(()),
        }
    }

    fn database_dir(&self, database: &str) -> PathBuf {
        self.root.join(database)
    }

    fn table_path(&self, database: &str, table: &str) -> PathBuf {
        self.database_dir(database).join(format!("{table}.json"))
    }

    fn failed(
        operation: &'static str,
        database: &str,
        table: &str,
        err: impl ToString,
    ) -> CatalogError {
        CatalogError::failed(operation, database, table, err, false)
    }

    async fn read(&self, database: &str, table: &str) -> Result<Option<TableFile>> {
        match tokio::fs::read(self.table_path(database, table)).await {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Self::failed("read", database, table, e)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(Self::failed("read", database, table, err)),
        }
    }

    /// The table's file; a table that does not exist is [`CatalogError::TableNotFound`].
    async fn read_existing(&self, database: &str, table: &str) -> Result<TableFile> {
        self.read(database, table)
            .await?
            .ok_or_else(|| CatalogError::table_not_found(database, table))
    }

    async fn write(&self, database: &str, table: &str, file: &TableFile) -> Result<()> {
        let path = self.table_path(database, table);
        let body = serde_json::to_vec_pretty(file).expect("table files serialize");
        write_atomically(&path, &body)
            .await
            .map_err(|e| Self::failed("write", database, table, e))
    }
}

async fn write_atomically(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("table files have a parent");
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    tokio::fs::write(&tmp, body).await?;
    tokio::fs::rename(&tmp, path).await
}

fn to_def(database: &str, table: &str, file: &TableFile) -> TableDef {
    TableDef {
        database: database.to_owned(),
        name: table.to_owned(),
        location: file.location.clone(),
        columns: file
            .columns
            .iter()
            .map(|(name, hive_type)| Column {
                name: name.clone(),
                hive_type: hive_type.clone(),
            })
            .collect(),
        partition_keys: file.partition_keys.clone(),
    }
}

#[async_trait]
impl Catalog for LocalCatalog {
    async fn ensure_database(&self, database: &str) -> Result<()> {
        tokio::fs::create_dir_all(self.database_dir(database))
            .await
            .map_err(|e| Self::failed("ensure_database", database, "", e))
    }

    async fn ensure_table(&self, table: &TableDef) -> Result<()> {
        let _guard = self.lock.lock().await;
        let (db, name) = (table.database.as_str(), table.name.as_str());
        let file = match self.read(db, name).await? {
            None => TableFile {
                location: table.location.clone(),
                columns: vec![],
                partition_keys: table.partition_keys.clone(),
                partitions: vec![],
            },
            Some(existing) => existing,
        };
        let merged = merge_columns(&to_def(db, name, &file), &table.columns)?;
        let columns: Vec<_> = merged.into_iter().map(|c| (c.name, c.hive_type)).collect();
        if columns != file.columns || file.partitions.is_empty() && file.columns.is_empty() {
            self.write(db, name, &TableFile { columns, ..file }).await?;
        }
        Ok(())
    }

    async fn table(&self, database: &str, table: &str) -> Result<Option<TableDef>> {
        Ok(self
            .read(database, table)
            .await?
            .map(|file| to_def(database, table, &file)))
    }

    async fn publish_partition(
        &self,
        database: &str,
        table: &str,
        partition: &PartitionInfo,
    ) -> Result<Option<String>> {
        let _guard = self.lock.lock().await;
        let mut file = self.read_existing(database, table).await?;
        let entry = PartitionEntry {
            values: partition.values.clone(),
            location: partition.location.clone(),
            parameters: partition.parameters.clone(),
        };
        let previous = match file
            .partitions
            .iter_mut()
            .find(|p| p.values == partition.values)
        {
            Some(existing) => Some(std::mem::replace(existing, entry).location),
            None => {
                file.partitions.push(entry);
                None
            }
        };
        file.partitions.sort_by(|a, b| a.values.cmp(&b.values));
        self.write(database, table, &file).await?;
        Ok(previous)
    }

    async fn list_partitions(&self, database: &str, table: &str) -> Result<Vec<PartitionInfo>> {
        Ok(self
            .read(database, table)
            .await?
            .map(|file| {
                file.partitions
                    .into_iter()
                    .map(|p| PartitionInfo {
                        values: p.values,
                        location: p.location,
                        parameters: p.parameters,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn drop_partition(&self, database: &str, table: &str, values: &[String]) -> Result<()> {
        let _guard = self.lock.lock().await;
        if let Some(mut file) = self.read(database, table).await? {
            let before = file.partitions.len();
            file.partitions.retain(|p| p.values != values);
            if file.partitions.len() != before {
                self.write(database, table, &file).await?;
            }
        }
        Ok(())
    }

    async fn set_column_types(
        &self,
        database: &str,
        table: &str,
        columns: &[Column],
    ) -> Result<()> {
        let _guard = self.lock.lock().await;
        let file = self.read_existing(database, table).await?;
        let typed = set_types(&to_def(database, table, &file), columns)?;
        let typed: Vec<_> = typed.into_iter().map(|c| (c.name, c.hive_type)).collect();
        if typed != file.columns {
            self.write(
                database,
                table,
                &TableFile {
                    columns: typed,
                    ..file
                },
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let def = TableDef {
            database: "db".into(),
            name: "t".into(),
            location: "s3://b/t/".into(),
            columns: vec![Column {
                name: "id".into(),
                hive_type: "int".into(),
            }],
            partition_keys: vec!["import_date".into()],
        };
        let partition = PartitionInfo {
            values: vec!["20261121".into()],
            location: "s3://b/t/import_date=20261121/run-1/".into(),
            parameters: BTreeMap::new(),
        };
        {
            let catalog = LocalCatalog::new(dir.path());
            catalog.ensure_table(&def).await.unwrap();
            catalog
                .publish_partition("db", "t", &partition)
                .await
                .unwrap();
        }
        let catalog = LocalCatalog::new(dir.path());
        assert_eq!(catalog.table("db", "t").await.unwrap(), Some(def));
        assert_eq!(
            catalog.list_partitions("db", "t").await.unwrap(),
            vec![partition]
        );
    }

    #[tokio::test]
    async fn publishing_to_a_missing_table_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = LocalCatalog::new(dir.path());
        let err = catalog
            .publish_partition(
                "db",
                "nope",
                &PartitionInfo {
                    values: vec![],
                    location: String::new(),
                    parameters: BTreeMap::new(),
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "table db.nope does not exist");
    }
}
