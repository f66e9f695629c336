//! `tascomi adopt`: takes over a lake the old Glue jobs wrote, without a full reload.
//!
//! For each table and layer it lists the Hive folders under the layer's prefix
//! (`.../<table>/import_year=YYYY/import_month=MM/import_day=DD/import_date=YYYYMMDD/`, or the
//! `snapshot_*` keys), and registers in the catalog each folder that holds Parquet files directly
//! (the old jobs wrote no run folders) and that the catalog lacks, with the rows, files and bytes
//! of its footers. A table the catalog lacks (locally: always) is created from its first file's
//! columns. Folders of our own runs (`run-<id>/`) are never registered: an unpublished run is a
//! crashed one.
//!
//! A table without ingest state gets one derived from its raw layer by the old job's own rule:
//! the last import date with a row that answered 200 is the base the next nights build on, and
//! that import's rows with another status are its failed pages, fetched again on their own by
//! the next night ("all records", page N). So the next night is incremental: it fetches every
//! day from the base on, never the whole table. A table that has ingest state keeps it.
//!
//! Nothing is moved or rewritten: the existing partitions stay where they are, and the snapshot
//! stage continues from the latest existing snapshot (reading Spark's INT96 timestamps as
//! microseconds, see `common::parquet_io`). Idempotent: a second run finds nothing to register.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context;
use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, Schema};
use chrono::{NaiveDate, Utc};
use common::catalog::{PartitionInfo, TableDef, columns_of};
use common::layout::{Layer, TableName, date_value, parse_date, partition_values};
use common::parquet_io::{file_schema, read_file_columns, read_metadata};
use common::platform::Platform;
use common::raw::{EXCEPTION, PAGE_NUMBER, STATUS, URL};
use common::storage::ObjectMeta;
use futures::TryStreamExt;
use ingest_svc::state::{self, FailedPage, ImportKind, ImportRecord, TableState};

/// Recorded on every partition `adopt` registers, so that it can be told apart.
pub const ADOPTED_PARAMETER: &str = "adopted_at";

/// One Hive folder of a layer, holding Parquet files directly.
#[derive(Debug, Clone)]
pub struct Folder {
    pub date: NaiveDate,
    /// The bucket the folder is in.
    pub bucket: String,
    /// `s3://bucket/prefix/`.
    pub location: String,
    pub files: Vec<ObjectMeta>,
}

/// What `adopt` found in one layer of one table.
#[derive(Debug, Clone)]
pub struct LayerFinding {
    pub layer: Layer,
    /// Folders written without run folders, by date.
    pub folders: Vec<Folder>,
    /// Of `folders`, the dates the catalog lacks: registered by `adopt`.
    pub to_register: Vec<NaiveDate>,
    /// Whether the catalog has the layer's table.
    pub table_exists: bool,
}

/// The ingest state a table gets.
#[derive(Debug, Clone)]
pub enum StateFinding {
    /// The table has ingest state already: left as it is.
    Kept { latest: Option<NaiveDate> },
    /// Derived from the raw layer.
    Derived { import: Box<ImportRecord> },
    /// No raw import answered 200: the first night is a full load.
    NoSuccessfulImport,
}

/// What `adopt` found for one table, and will do.
#[derive(Debug, Clone)]
pub struct TableAdoption {
    pub table: TableName,
    pub layers: Vec<LayerFinding>,
    pub state: StateFinding,
}

impl TableAdoption {
    pub fn latest(&self, layer: Layer) -> Option<NaiveDate> {
        self.layers
            .iter()
            .find(|l| l.layer == layer)
            .and_then(|l| l.folders.last())
            .map(|f| f.date)
    }

    /// One paragraph: per layer, what was found and what is registered; then the ingest state.
    pub fn describe(&self, dry_run: bool) -> String {
        let will = if dry_run {
            "would register"
        } else {
            "registered"
        };
        let mut out = format!("{}:\n", self.table);
        for l in &self.layers {
            let _ = write!(
                out,
                "  {:<10} {} folder(s)",
                l.layer.name(),
                l.folders.len()
            );
            if let (Some(first), Some(last)) = (l.folders.first(), l.folders.last()) {
                let _ = write!(
                    out,
                    " {}..{}",
                    date_value(first.date),
                    date_value(last.date)
                );
            }
            let _ = write!(out, "; {will} {}", l.to_register.len());
            if !l.table_exists && !l.folders.is_empty() {
                let _ = write!(out, " (and the catalog table)");
            }
            out.push('\n');
        }
        let will = if dry_run { "would start" } else { "starts" };
        match &self.state {
            StateFinding::Kept { latest } => {
                let _ = writeln!(
                    out,
                    "  ingest     state kept (latest import {})",
                    latest.map_or("none".into(), date_value)
                );
            }
            StateFinding::Derived { import } => {
                let _ = writeln!(
                    out,
                    "  ingest     base import {} ({} record(s), {} failed page(s)): the next night {will} incremental from it",
                    date_value(import.import_date),
                    import.records_written,
                    import.failed_pages.len()
                );
            }
            StateFinding::NoSuccessfulImport => {
                let _ = writeln!(
                    out,
                    "  ingest     no raw import answered 200: the first night is a full load"
                );
            }
        }
        out
    }
}

/// Looks at `tables` and says what `execute` would do. Reads only.
pub async fn plan(platform: &Platform, tables: &[TableName]) -> anyhow::Result<Vec<TableAdoption>> {
    let mut out = Vec::with_capacity(tables.len());
    for table in tables {
        let mut layers = Vec::with_capacity(Layer::ALL.len());
        for layer in Layer::ALL {
            layers.push(
                layer_finding(platform, table, layer)
                    .await
                    .with_context(|| format!("{table} {layer}"))?,
            );
        }
        let state = state_finding(platform, table, &layers[0].folders)
            .await
            .with_context(|| format!("{table}: deriving the ingest state"))?;
        out.push(TableAdoption {
            table: table.clone(),
            layers,
            state,
        });
    }
    Ok(out)
}

/// Registers the partitions and writes the ingest state `plan` found. Idempotent.
pub async fn execute(platform: &Platform, adoptions: &[TableAdoption]) -> anyhow::Result<()> {
    let now = Utc::now().to_rfc3339();
    for adoption in adoptions {
        let table = &adoption.table;
        for finding in &adoption.layers {
            if finding.to_register.is_empty() {
                continue;
            }
            let layer = finding.layer;
            let database = platform.layout.database(layer.zone());
            let name = layer.catalog_table(table);
            if !finding.table_exists {
                let first = &finding.folders[0];
                let schema = folder_schema(platform, first).await?;
                let keys: Vec<String> = layer
                    .partition_keys()
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
                platform.catalog.ensure_database(&database).await?;
                platform
                    .catalog
                    .ensure_table(&TableDef {
                        database: database.clone(),
                        name: name.clone(),
                        location: platform.layout.table_location(table, layer),
                        columns: columns_of(&schema, &keys),
                        partition_keys: keys,
                    })
                    .await
                    .with_context(|| format!("creating {database}.{name}"))?;
            }
            for folder in finding
                .folders
                .iter()
                .filter(|f| finding.to_register.contains(&f.date))
            {
                let rows = folder_rows(platform, folder).await?;
                let parameters = BTreeMap::from([
                    ("rows".to_owned(), rows.to_string()),
                    ("files".to_owned(), folder.files.len().to_string()),
                    (
                        "bytes".to_owned(),
                        folder.files.iter().map(|f| f.size).sum::<u64>().to_string(),
                    ),
                    (ADOPTED_PARAMETER.to_owned(), now.clone()),
                ]);
                platform
                    .catalog
                    .publish_partition(
                        &database,
                        &name,
                        &PartitionInfo {
                            values: partition_values(folder.date),
                            location: folder.location.clone(),
                            parameters,
                        },
                    )
                    .await
                    .with_context(|| {
                        format!("registering {table} {layer} {}", date_value(folder.date))
                    })?;
            }
        }
        if let StateFinding::Derived { import } = &adoption.state {
            let mut derived = TableState::new(table.clone());
            derived.record(import.as_ref().clone());
            state::save(&platform.storage, &platform.layout.raw_bucket, &derived)
                .await
                .with_context(|| format!("{table}: writing the ingest state"))?;
        }
    }
    Ok(())
}

/// The layer's Hive folders holding Parquet files directly, and those the catalog lacks.
async fn layer_finding(
    platform: &Platform,
    table: &TableName,
    layer: Layer,
) -> anyhow::Result<LayerFinding> {
    let bucket = platform.layout.bucket(layer.zone()).to_owned();
    let prefix = layer.table_prefix(table);
    let keys = layer.partition_keys();
    let mut folders: BTreeMap<NaiveDate, Folder> = BTreeMap::new();
    for object in platform.storage.list(&bucket, &prefix).await? {
        let Some(rest) = object.key.strip_prefix(&prefix) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        // Four `key=value` folders, then the file itself: no run folder.
        if parts.len() != 5 || !parts[4].ends_with(".parquet") {
            continue;
        }
        let named = parts[..4]
            .iter()
            .zip(keys)
            .all(|(part, key)| part.split_once('=').is_some_and(|(k, _)| k == key));
        let Some(date) = parts[3].split_once('=').and_then(|(_, v)| parse_date(v)) else {
            continue;
        };
        if !named || parts[..3].iter().any(|p| p.is_empty()) {
            continue;
        }
        let folder = folders.entry(date).or_insert_with(|| Folder {
            date,
            bucket: bucket.clone(),
            location: format!("s3://{bucket}/{prefix}{}/", parts[..4].join("/")),
            files: Vec::new(),
        });
        folder.files.push(object);
    }
    let database = platform.layout.database(layer.zone());
    let name = layer.catalog_table(table);
    let table_exists = platform.catalog.table(&database, &name).await?.is_some();
    let registered: Vec<NaiveDate> = if table_exists {
        platform
            .catalog
            .list_partitions(&database, &name)
            .await?
            .iter()
            .filter_map(|p| parse_date(p.values.get(3)?))
            .collect()
    } else {
        Vec::new()
    };
    let mut folders: Vec<Folder> = folders.into_values().collect();
    for folder in &mut folders {
        folder.files.sort_by(|a, b| a.key.cmp(&b.key));
    }
    let to_register = folders
        .iter()
        .map(|f| f.date)
        .filter(|d| !registered.contains(d))
        .collect();
    Ok(LayerFinding {
        layer,
        folders,
        to_register,
        table_exists,
    })
}

/// The ingest state: kept when the table has one; else derived from the latest raw folder with
/// a row that answered 200.
async fn state_finding(
    platform: &Platform,
    table: &TableName,
    raw: &[Folder],
) -> anyhow::Result<StateFinding> {
    let existing = state::load(&platform.storage, &platform.layout.raw_bucket, table).await?;
    if !existing.imports.is_empty() {
        return Ok(StateFinding::Kept {
            latest: existing.latest().map(|i| i.import_date),
        });
    }
    for folder in raw.iter().rev() {
        let rows = status_rows(platform, folder).await?;
        let answered = rows.iter().filter(|r| r.status.as_deref() == Some("200"));
        let records_written = answered.count() as u64;
        if records_written == 0 {
            continue;
        }
        let mut failed_pages: Vec<FailedPage> = rows
            .into_iter()
            .filter(|r| r.status.as_deref() != Some("200"))
            .map(|r| FailedPage {
                day: None,
                page_number: u32::try_from(r.page_number.max(0)).unwrap_or(u32::MAX),
                url: r.url.unwrap_or_default(),
                status_code: r.status.as_deref().and_then(|s| s.trim().parse().ok()),
                error: r
                    .exception
                    .unwrap_or_else(|| format!("status {}", r.status.as_deref().unwrap_or("none"))),
                whole_query: false,
            })
            .collect();
        failed_pages.sort_by_key(|p| p.page_number);
        failed_pages.dedup_by_key(|p| p.page_number);
        let mut import = ImportRecord {
            import_date: folder.date,
            kind: ImportKind::Full,
            run_id: "adopted".into(),
            location: folder.location.clone(),
            finished_at: Utc::now(),
            days_requested: Vec::new(),
            days_completed: Vec::new(),
            days_cut: Vec::new(),
            days_refetched: Vec::new(),
            full_pages_requested: Vec::new(),
            full_pages_outstanding: Vec::new(),
            records_written,
            records_skipped_today: 0,
            records_future_dated: 0,
            requeries: 0,
            records_recovered_by_requery: 0,
            failed_pages,
        };
        import.settle();
        return Ok(StateFinding::Derived {
            import: Box::new(import),
        });
    }
    Ok(StateFinding::NoSuccessfulImport)
}

/// The bookkeeping of one raw row.
struct StatusRow {
    page_number: i64,
    status: Option<String>,
    url: Option<String>,
    exception: Option<String>,
}

/// The bookkeeping columns of a raw folder, whatever types the old jobs gave them.
async fn status_rows(platform: &Platform, folder: &Folder) -> anyhow::Result<Vec<StatusRow>> {
    let bucket = &folder.bucket;
    let mut out = Vec::new();
    for file in &folder.files {
        let columns = [PAGE_NUMBER, STATUS, URL, EXCEPTION];
        let (_, stream) = read_file_columns(
            platform.storage.clone(),
            bucket,
            &file.key,
            8192,
            Some(&columns),
        )
        .await?;
        let batches: Vec<_> = stream.try_collect().await?;
        for batch in batches {
            let text = |name: &str| -> anyhow::Result<Option<arrow::array::ArrayRef>> {
                batch
                    .column_by_name(name)
                    .map(|c| cast(c, &DataType::Utf8))
                    .transpose()
                    .with_context(|| format!("s3://{bucket}/{}: column {name}", file.key))
            };
            let pages = batch
                .column_by_name(PAGE_NUMBER)
                .map(|c| cast(c, &DataType::Int64))
                .transpose()?
                .with_context(|| format!("s3://{bucket}/{}: no column {PAGE_NUMBER}", file.key))?;
            let pages = pages.as_primitive::<Int64Type>();
            let (status, url, exception) = (text(STATUS)?, text(URL)?, text(EXCEPTION)?);
            let value = |array: &Option<arrow::array::ArrayRef>, row: usize| {
                array
                    .as_ref()
                    .map(|a| a.as_string::<i32>())
                    .filter(|a| a.is_valid(row))
                    .map(|a| a.value(row).to_owned())
            };
            for row in 0..batch.num_rows() {
                out.push(StatusRow {
                    page_number: if pages.is_valid(row) {
                        pages.value(row)
                    } else {
                        0
                    },
                    status: value(&status, row),
                    url: value(&url, row),
                    exception: value(&exception, row),
                });
            }
        }
    }
    Ok(out)
}

/// The columns of a folder's first file, from its footer (INT96 timestamps as microseconds).
async fn folder_schema(platform: &Platform, folder: &Folder) -> anyhow::Result<Schema> {
    let footer = read_metadata(
        platform.storage.clone(),
        &folder.bucket,
        &folder.files[0].key,
    )
    .await?;
    Ok(file_schema(&footer)?)
}

/// The rows of a folder, from its files' footers.
async fn folder_rows(platform: &Platform, folder: &Folder) -> anyhow::Result<i64> {
    let mut rows = 0;
    for file in &folder.files {
        rows += read_metadata(platform.storage.clone(), &folder.bucket, &file.key)
            .await?
            .file_metadata()
            .num_rows();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;
