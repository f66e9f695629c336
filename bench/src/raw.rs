//! A raw layer on disk in the brief's layout, in and out of the benchmark's local platform.
//!
//! The layout: Hive-partitioned Parquet under
//! `DIR/planning/tascomi/api-responses/<table>/import_year=YYYY/import_month=MM/import_day=DD/import_date=YYYYMMDD/*.parquet`,
//! with the columns ingest-svc writes (the record column named after the table, `page_number`,
//! `import_api_url_requested`, `import_api_status_code`, `import_exception_thrown`,
//! `import_datetime`, `import_timestamp`). The files are copied as they are: parse-svc reads
//! the columns it needs by name, casts type variants (a 32-bit `page_number` or an `int` status
//! of our earlier raw partitions, a 64-bit integer status, an `import_datetime` with a time zone
//! or in Spark's INT96) to the raw layer's types (`bigint` page number, the status as text, as
//! the old Glue jobs wrote them; [`common::bookkeeping`]) and ignores other columns (partition
//! columns written into the files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use bytes::Bytes;
use chrono::NaiveDate;
use common::layout::{Layer, TableName, parse_date};
use common::platform::Platform;
use common::raw::schema as raw_schema;
use parquet::file::reader::{FileReader, SerializedFileReader};
use tascomi_test_support::publish::{new_run, publish_run};

use crate::stages::Measurement;

/// Where the raw tables are below the raw layer's root.
pub const RAW_TABLES: &str = "planning/tascomi/api-responses";

/// One `import_date` partition of a raw table on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPartition {
    pub table: TableName,
    pub date: NaiveDate,
    /// Its Parquet files, sorted by path.
    pub files: Vec<PathBuf>,
}

/// The raw partitions below `dir` (of `only`, if given), by table then date.
pub fn find_raw(dir: &Path, only: Option<&str>) -> anyhow::Result<Vec<RawPartition>> {
    let root = dir.join(RAW_TABLES);
    let mut found = Vec::new();
    for table_dir in sorted_entries(&root)? {
        let Some(name) = file_name(&table_dir) else {
            continue;
        };
        if !table_dir.is_dir() || only.is_some_and(|o| o != name) {
            continue;
        }
        let table = TableName::new(name)
            .with_context(|| format!("{} is not a table name", table_dir.display()))?;
        let mut dates: BTreeMap<NaiveDate, PathBuf> = BTreeMap::new();
        find_date_dirs(&table_dir, &mut |date, path| {
            if let Some(other) = dates.insert(date, path.to_owned()) {
                bail!(
                    "{table}: import_date={} appears twice: {} and {}",
                    common::layout::date_value(date),
                    other.display(),
                    path.display()
                );
            }
            Ok(())
        })?;
        for (date, path) in dates {
            let mut files = Vec::new();
            parquet_files(&path, &mut files)?;
            files.sort();
            found.push(RawPartition {
                table: table.clone(),
                date,
                files,
            });
        }
    }
    if found.is_empty() {
        bail!(
            "no raw partitions{} under {} (expected {RAW_TABLES}/<table>/.../import_date=YYYYMMDD/*.parquet)",
            only.map(|t| format!(" of {t}")).unwrap_or_default(),
            dir.display()
        );
    }
    Ok(found)
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading {}", dir.display()))?;
    entries.sort();
    Ok(entries)
}

/// Calls `found` for every `import_date=YYYYMMDD` folder below `dir`.
fn find_date_dirs(
    dir: &Path,
    found: &mut dyn FnMut(NaiveDate, &Path) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    for path in sorted_entries(dir)? {
        if !path.is_dir() {
            continue;
        }
        match file_name(&path).and_then(|n| n.strip_prefix("import_date=")) {
            Some(value) => {
                let date = parse_date(value)
                    .with_context(|| format!("{}: import_date is not YYYYMMDD", path.display()))?;
                found(date, &path)?;
            }
            None => find_date_dirs(&path, found)?,
        }
    }
    Ok(())
}

/// The `*.parquet` files below `dir` (hidden and `_` files, such as `_SUCCESS`, are not data).
fn parquet_files(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for path in sorted_entries(dir)? {
        let name = file_name(&path).unwrap_or_default();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if path.is_dir() {
            parquet_files(&path, files)?;
        } else if name.ends_with(".parquet") {
            files.push(path);
        }
    }
    Ok(())
}

/// Publishes `partition`'s files as the platform's raw partition of its table and date, as
/// ingest-svc would: each file is put in a staging key, copied into a new run folder and the
/// run published (the staging keys are then deleted). Returns the rows and bytes published.
///
/// `import_kind` is the catalog parameter ingest-svc sets: `full` for a table's first import
/// (what a first snapshot is built from), `incremental` for the later ones.
pub async fn import_partition(
    platform: &Platform,
    partition: &RawPartition,
    import_kind: &str,
) -> anyhow::Result<(u64, u64)> {
    let table = &partition.table;
    let target = platform.layout.partition(table, Layer::Raw, partition.date);
    let mut writer = new_run(platform, &target, raw_schema(table));
    let staging = format!("_bench-import/{}", target.key_prefix());
    let mut staged_keys = Vec::new();
    for (i, file) in partition.files.iter().enumerate() {
        let body = Bytes::from(
            std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
        );
        let rows = SerializedFileReader::new(body.clone())
            .with_context(|| format!("{} is not a Parquet file", file.display()))?
            .metadata()
            .file_metadata()
            .num_rows();
        let key = format!("{staging}{i:05}.parquet");
        let bytes = body.len() as u64;
        platform.storage.put(&target.bucket, &key, body).await?;
        staged_keys.push(key.clone());
        writer
            .copy_file(&target.bucket, &key, rows.max(0) as u64, bytes)
            .await?;
    }
    let parameters = BTreeMap::from([
        ("stage".to_owned(), "bench import".to_owned()),
        ("import_kind".to_owned(), import_kind.to_owned()),
    ]);
    let published = publish_run(platform, writer, parameters).await?;
    platform
        .storage
        .delete(&target.bucket, &staged_keys)
        .await?;
    Ok((published.rows, published.bytes))
}

/// The cost of a raw partition written outside the stages (an "import raw" or "generate raw"
/// row): the rows and bytes it published, and the wall time since `started`.
pub fn written(rows: u64, bytes: u64, started: Instant) -> Measurement {
    Measurement {
        rows,
        output_bytes: bytes,
        wall_secs: started.elapsed().as_secs_f64(),
        ..Measurement::default()
    }
}

/// Turns the raw layer a local platform under `dir` wrote (`dir/raw-zone/...`, run folders,
/// a catalog) into the plain layout: `dir/planning/tascomi/api-responses/<table>/.../
/// import_date=YYYYMMDD/part-NNNNN.parquet`, nothing else.
pub fn flatten_local_raw(dir: &Path, raw_bucket: &str) -> anyhow::Result<()> {
    let from = dir.join(raw_bucket).join(RAW_TABLES);
    let mut dates = Vec::new();
    find_date_dirs(&from, &mut |_, path| {
        dates.push(path.to_owned());
        Ok(())
    })?;
    for date_dir in dates {
        let mut files = Vec::new();
        parquet_files(&date_dir, &mut files)?;
        files.sort();
        for (i, file) in files.iter().enumerate() {
            std::fs::rename(file, date_dir.join(format!("part-{i:05}.parquet")))?;
        }
        for entry in sorted_entries(&date_dir)? {
            if entry.is_dir() {
                std::fs::remove_dir_all(&entry)?;
            }
        }
    }
    let to = dir.join(RAW_TABLES);
    std::fs::create_dir_all(to.parent().context("a parent")?)?;
    std::fs::rename(&from, &to)
        .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    for entry in sorted_entries(dir)? {
        if file_name(&entry) != Some("planning") {
            if entry.is_dir() {
                std::fs::remove_dir_all(&entry)?;
            } else {
                std::fs::remove_file(&entry)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_found_by_table_and_date_and_hidden_files_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let table = dir.path().join(RAW_TABLES).join("appeals");
        for (date, names) in [
            (
                "import_year=2027/import_month=01/import_day=05/import_date=20270105",
                &["b.parquet", "a.parquet", "_SUCCESS"][..],
            ),
            (
                "import_year=2027/import_month=01/import_day=04/import_date=20270104",
                &["x.parquet", ".x.parquet.crc"][..],
            ),
        ] {
            std::fs::create_dir_all(table.join(date)).unwrap();
            for name in names {
                std::fs::write(table.join(date).join(name), b"").unwrap();
            }
        }
        let found = find_raw(dir.path(), None).unwrap();
        let dates: Vec<String> = found.iter().map(|p| p.date.to_string()).collect();
        assert_eq!(dates, ["2027-01-04", "2027-01-05"]);
        let names: Vec<&str> = found[1].files.iter().filter_map(|f| file_name(f)).collect();
        assert_eq!(names, ["a.parquet", "b.parquet"]);
        assert!(find_raw(dir.path(), Some("documents")).is_err());
    }
}
