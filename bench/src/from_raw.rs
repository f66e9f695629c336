//! `run --from-raw DIR`: a raw layer on disk in the brief's layout (written by `write-raw` or
//! another tool) imported into the benchmark's platform and run through the stages, table by
//! table, night by night.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use common::layout::TableName;

use crate::raw::{self, RawPartition};
use crate::report::{Row, RunInfo, build, print_results};
use crate::stages::StageInputs;
use crate::{Mode, RunArgs, load_inputs, prepare_data_dir, time_stages};

/// The first column of a from-raw row: table and import date.
pub fn label(partition: &RawPartition) -> String {
    format!("{} {}", partition.table, partition.date)
}

/// Publishes every partition as the platform's raw partition of its table and date (a table's
/// first, in date order, as its full load), one "import raw" row each.
pub async fn import_all(
    inputs: &StageInputs,
    partitions: &[RawPartition],
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let mut loaded = HashSet::new();
    for partition in partitions {
        let started = Instant::now();
        // Partitions come in date order per table: a table's first is its full load.
        let import_kind = if loaded.insert(partition.table.clone()) {
            "full"
        } else {
            "incremental"
        };
        let (raw_rows, raw_bytes) = raw::import_partition(&inputs.platform, partition, import_kind)
            .await
            .with_context(|| format!("importing {}", label(partition)))?;
        rows.push(Row {
            label: label(partition),
            table: partition.table.to_string(),
            date: partition.date,
            stage: "import raw",
            engine: "ours",
            measurement: raw::written(raw_rows, raw_bytes, started),
        });
    }
    Ok(())
}

/// `run --from-raw DIR`: imports every raw partition found (untimed by the stages, reported as
/// "import raw"), then times the stages on each table's partitions in date order.
pub async fn run_from_raw(args: RunArgs, dir: &Path) -> anyhow::Result<()> {
    let partitions = raw::find_raw(dir, args.table.as_deref())?;
    let info = RunInfo::of_raw_layer(dir)?;
    prepare_data_dir(&args.paths.data_dir)?;
    let inputs = load_inputs(&args.paths)?;
    let tables: BTreeSet<&TableName> = partitions.iter().map(|p| &p.table).collect();
    let mut out = std::io::stdout();
    writeln!(
        out,
        "# bench: from the raw layer under {} ({} partitions of {} tables), {} build\n",
        dir.display(),
        partitions.len(),
        tables.len(),
        build()
    )?;
    out.flush()?;
    let mut rows = Vec::new();
    import_all(&inputs, &partitions, &mut rows).await?;
    let mode = if args.in_process {
        Mode::InProcess(&inputs)
    } else {
        Mode::Child(&args.paths)
    };
    let mut previous_snapshot_bytes = BTreeMap::new();
    for partition in &partitions {
        let previous = previous_snapshot_bytes
            .entry(partition.table.clone())
            .or_insert(0);
        time_stages(
            mode,
            &partition.table,
            partition.date,
            &label(partition),
            previous,
            &mut rows,
        )
        .await?;
    }
    let json = args.json.as_deref().map(|path| (path, &info));
    print_results(
        &mut out,
        "table and import date",
        &rows,
        args.in_process,
        json,
    )
}
