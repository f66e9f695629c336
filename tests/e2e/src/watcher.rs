//! A reader of the catalog while stages run (and crash): every partition it can see must be
//! complete, as `common::publish` promises. And the rows of published partitions, to compare
//! two runs.
//!
//! A partition is complete when its location is the run folder `<partition>/run-<run_id>/` of the
//! `run_id` recorded with it, and that folder holds exactly the `files` recorded, all readable,
//! with the `rows` recorded in all. A publication replacing the partition deletes the replaced
//! run's files right after the switch, so a check that fails while the catalog has moved on to
//! another run is counted as superseded, not as a violation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::NaiveDate;
use common::catalog::PartitionInfo;
use common::layout::{Layer, PartitionRef, TableName};
use common::parquet_io::read_all;
use common::platform::Platform;
use common::publish::published_partitions;
use common::storage::split_s3_uri;

/// What the watcher saw.
#[derive(Debug, Clone, Default)]
pub struct WatchStats {
    /// Passes over every table and layer.
    pub rounds: u64,
    /// Partitions found complete.
    pub complete: u64,
    /// Checks that failed while the partition was being replaced by a newer run.
    pub superseded: u64,
    /// What the first few superseded checks found.
    pub superseded_examples: Vec<String>,
    /// Partitions seen incomplete or mixed, with what was wrong.
    pub violations: Vec<String>,
}

impl WatchStats {
    /// Every partition observation: complete, superseded or not.
    pub fn observations(&self) -> u64 {
        self.complete + self.superseded + self.violations.len() as u64
    }
}

/// A task checking the published partitions of `tables` in every layer, round after round,
/// until [`Watcher::stop`].
#[derive(Debug)]
pub struct Watcher {
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<WatchStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    pub fn spawn(platform: Platform, tables: Vec<TableName>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(WatchStats::default()));
        let task = tokio::spawn({
            let (stop, stats) = (stop.clone(), stats.clone());
            async move {
                while !stop.load(Ordering::SeqCst) {
                    for table in &tables {
                        for layer in Layer::ALL {
                            watch_layer(&platform, table, layer, &stats).await;
                        }
                    }
                    lock(&stats).rounds += 1;
                    // Leave moto some room for the stages.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
        Self { stop, stats, task }
    }

    /// What was seen so far.
    pub fn stats(&self) -> WatchStats {
        lock(&self.stats).clone()
    }

    /// Finishes the current round and returns everything seen.
    pub async fn stop(self) -> WatchStats {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the watcher does not panic");
        lock(&self.stats).clone()
    }
}

fn lock(stats: &Mutex<WatchStats>) -> std::sync::MutexGuard<'_, WatchStats> {
    stats.lock().unwrap_or_else(|p| p.into_inner())
}

async fn watch_layer(
    platform: &Platform,
    table: &TableName,
    layer: Layer,
    stats: &Mutex<WatchStats>,
) {
    let any = platform.layout.partition(table, layer, NaiveDate::MIN);
    let partitions = match published_partitions(platform.catalog.as_ref(), &any).await {
        Ok(partitions) => partitions,
        Err(err) => {
            lock(stats)
                .violations
                .push(format!("{table} {layer}: listing partitions: {err}"));
            return;
        }
    };
    for (date, info) in partitions {
        let partition = platform.layout.partition(table, layer, date);
        let outcome = check_partition(platform, &partition, &info).await;
        let superseded = match &outcome {
            Ok(()) => false,
            Err(_) => {
                current_location(platform, &partition).await.as_deref() != Some(&info.location)
            }
        };
        let mut stats = lock(stats);
        match outcome {
            Ok(()) => stats.complete += 1,
            Err(problem) if superseded => {
                stats.superseded += 1;
                if stats.superseded_examples.len() < 3 {
                    stats.superseded_examples.push(problem);
                }
            }
            Err(problem) => stats.violations.push(problem),
        }
    }
}

/// The location the catalog gives the partition now, if it is published.
async fn current_location(platform: &Platform, partition: &PartitionRef) -> Option<String> {
    published_partitions(platform.catalog.as_ref(), partition)
        .await
        .ok()?
        .into_iter()
        .find(|(date, _)| *date == partition.date)
        .map(|(_, info)| info.location)
}

/// `Ok` when the published partition is complete (see the module docs), else what is wrong.
async fn check_partition(
    platform: &Platform,
    partition: &PartitionRef,
    info: &PartitionInfo,
) -> Result<(), String> {
    let what = partition.describe();
    let parameter = |name: &str| {
        info.parameters
            .get(name)
            .ok_or_else(|| format!("{what}: published without the {name} parameter"))
    };
    let run_id = parameter("run_id")?;
    let expected = format!(
        "s3://{}/{}run-{run_id}/",
        partition.bucket,
        partition.key_prefix()
    );
    if info.location != expected {
        return Err(format!(
            "{what}: location {} is not the run folder {expected}",
            info.location
        ));
    }
    let files: usize = parameter("files")?
        .parse()
        .map_err(|e| format!("{what}: files parameter: {e}"))?;
    let rows: usize = parameter("rows")?
        .parse()
        .map_err(|e| format!("{what}: rows parameter: {e}"))?;
    let (bucket, prefix) = split_s3_uri(&info.location)
        .ok_or_else(|| format!("{what}: location {} is not s3://", info.location))?;
    let objects = platform
        .storage
        .list(bucket, prefix)
        .await
        .map_err(|e| format!("{what}: listing {}: {e}", info.location))?;
    if objects.len() != files {
        return Err(format!(
            "{what}: {} files in {}, {files} published",
            objects.len(),
            info.location
        ));
    }
    let mut found = 0;
    for object in &objects {
        let batches = read_all(platform.storage.clone(), bucket, &object.key)
            .await
            .map_err(|e| format!("{what}: reading {}: {e}", object.key))?;
        found += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
    }
    if found != rows {
        return Err(format!(
            "{what}: {found} rows in {}, {rows} published",
            info.location
        ));
    }
    Ok(())
}

/// Columns that record when a run happened, so differ between two runs of the same data.
pub const RUN_TIME_COLUMNS: [&str; 2] = ["import_datetime", "import_timestamp"];

/// The rows of every published partition of one layer of a table, by partition date: each row
/// rendered as `column=value` pairs in column-name order (without [`RUN_TIME_COLUMNS`]), the
/// rows sorted, duplicates kept. Two runs that published the same data give equal maps.
pub async fn published_rows(
    platform: &Platform,
    table: &TableName,
    layer: Layer,
) -> BTreeMap<NaiveDate, Vec<String>> {
    let any = platform.layout.partition(table, layer, NaiveDate::MIN);
    let mut out = BTreeMap::new();
    for (date, info) in published_partitions(platform.catalog.as_ref(), &any)
        .await
        .expect("partitions")
    {
        let (bucket, prefix) = split_s3_uri(&info.location).expect("s3 location");
        let mut rows = Vec::new();
        for object in platform.storage.list(bucket, prefix).await.expect("list") {
            for batch in read_all(platform.storage.clone(), bucket, &object.key)
                .await
                .expect("read")
            {
                rows.extend(render(&batch));
            }
        }
        rows.sort();
        out.insert(date, rows);
    }
    out
}

fn render(batch: &RecordBatch) -> Vec<String> {
    let schema = batch.schema();
    let mut columns: Vec<(&str, ArrayFormatter<'_>)> = Vec::new();
    let options = FormatOptions::default().with_null("NULL");
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        if RUN_TIME_COLUMNS.contains(&field.name().as_str()) {
            continue;
        }
        let formatter = ArrayFormatter::try_new(array.as_ref(), &options).expect("formattable");
        columns.push((field.name().as_str(), formatter));
    }
    columns.sort_by_key(|(name, _)| *name);
    (0..batch.num_rows())
        .map(|row| {
            columns
                .iter()
                .map(|(name, f)| format!("{name}={}", f.value(row)))
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect()
}

/// Run folders under each layer of `tables` that no catalog partition points at, in the order
/// of [`Layer::ALL`]: what killed runs left behind (written before the kill, or replaced and not
/// yet deleted; publications collect them after the orphan grace period).
pub async fn unpublished_run_folders(platform: &Platform, tables: &[TableName]) -> [usize; 4] {
    let mut counts = [0; 4];
    for table in tables {
        for (count, layer) in counts.iter_mut().zip(Layer::ALL) {
            let any = platform.layout.partition(table, layer, NaiveDate::MIN);
            let published: BTreeSet<String> = published_partitions(platform.catalog.as_ref(), &any)
                .await
                .expect("partitions")
                .into_iter()
                .map(|(_, info)| info.location)
                .collect();
            let folders: BTreeSet<String> = platform
                .storage
                .list(&any.bucket, &layer.table_prefix(table))
                .await
                .expect("list")
                .into_iter()
                .filter_map(|o| {
                    let (folder, rest) = o.key.split_once("/run-")?;
                    let (run, _) = rest.split_once('/')?;
                    Some(format!("s3://{}/{folder}/run-{run}/", any.bucket))
                })
                .collect();
            *count += folders.difference(&published).count();
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int32Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use common::parquet_io::WriteOptions;
    use common::publish::{PartitionWriter, new_run_id};

    #[tokio::test]
    async fn a_partition_is_complete_only_with_every_file_of_its_run() {
        let dir = tempfile::tempdir().unwrap();
        let platform = Platform::local(dir.path());
        let table = TableName::new("appeals").unwrap();
        let date = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        let partition = platform.layout.partition(&table, Layer::Parsed, date);
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, false)]));
        let options = WriteOptions {
            target_file_bytes: 1,
            ..WriteOptions::default()
        };
        let mut writer = PartitionWriter::new(
            platform.storage.clone(),
            partition.clone(),
            new_run_id(),
            schema.clone(),
            options,
        );
        for ids in [0..3, 3..5] {
            let column = Arc::new(Int32Array::from_iter_values(ids));
            let batch = RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
            writer.write(&batch).await.unwrap();
        }
        let published = writer
            .finish()
            .await
            .unwrap()
            .publish(
                platform.catalog.as_ref(),
                &platform.layout,
                BTreeMap::new(),
                Duration::from_secs(3600),
            )
            .await
            .unwrap();
        assert_eq!((published.files, published.rows), (2, 5));
        let (_, info) = published_partitions(platform.catalog.as_ref(), &partition)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(check_partition(&platform, &partition, &info).await, Ok(()));

        // Pointing elsewhere than the recorded run's folder: not one run's files.
        let mut elsewhere = info.clone();
        elsewhere.location = format!("s3://{}/{}", partition.bucket, partition.key_prefix());
        let problem = check_partition(&platform, &partition, &elsewhere)
            .await
            .unwrap_err();
        assert!(problem.contains("is not the run folder"), "{problem}");

        // A file missing: half a partition.
        let (bucket, prefix) = split_s3_uri(&info.location).unwrap();
        let first = platform.storage.list(bucket, prefix).await.unwrap()[0]
            .key
            .clone();
        platform.storage.delete(bucket, &[first]).await.unwrap();
        let problem = check_partition(&platform, &partition, &info)
            .await
            .unwrap_err();
        assert!(problem.contains("1 files in"), "{problem}");
    }
}
