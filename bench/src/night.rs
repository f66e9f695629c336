//! A whole night at production-like scale: every table of the pipeline file, run through parse,
//! recast and snapshot with bounded concurrency, as the deployed services would.
//!
//! Concurrency: each stage has `concurrency` slots (as each deployed service handles up to that
//! many messages at once); a table goes parse, then recast, then snapshot, each stage run a
//! child process started when a slot of that stage is free, so different tables are in
//! different stages at once. Tables start largest first (records × fields), so the long chains
//! (`documents`, `applications`) do not start last.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use common::layout::TableName;
use tascomi_test_support::RecordShape;
use tokio::sync::Semaphore;

use crate::data::{Generator, NightPlan, UpdateModel, night_date, publish_night};
use crate::report::{Row, build, format_row, mib, table_header};
use crate::stages::{Measurement, Stage, StageInputs};
use crate::{NightArgs, Paths, load_inputs, prepare_data_dir};

/// One table of the night and its size.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub table: TableName,
    pub shape: RecordShape,
    /// Records of the full load.
    pub records: u64,
}

/// Records of the full load of `table` at scale 1: the sizes for `applications` and
/// `documents`, and a lookup-like size (300 to 3,000, fixed per name) for the others.
pub fn full_load_records(table: &str) -> u64 {
    match table {
        "applications" => 100_000,
        "documents" => 5_000_000,
        other => {
            // FNV-1a: a stable size per table name.
            let hash = other.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            300 + hash % 2701
        }
    }
}

/// Fields per record: 752 for `applications`, 25 for `documents`, 20 for the others (or the
/// dictionary's column count for the table, if larger).
pub fn fields(table: &str) -> usize {
    match table {
        "applications" => 752,
        "documents" => 25,
        _ => 20,
    }
}

/// Every table of the pipeline file with its shape and size, largest first.
pub fn plan_tables(inputs: &StageInputs, scale: f64) -> anyhow::Result<Vec<TablePlan>> {
    let mut plans = Vec::new();
    for config in &inputs.pipeline.tables {
        let name = config.name.as_str();
        let required: Vec<&str> = [config.completeness_column.as_str()]
            .into_iter()
            .filter(|c| *c != "id")
            .collect();
        let shape = RecordShape::from_dictionary(&inputs.dictionary, name, fields(name), &required);
        let records = ((full_load_records(name) as f64 * scale).round() as u64).max(10);
        plans.push(TablePlan {
            table: config.name.clone(),
            shape,
            records,
        });
    }
    plans.sort_by_key(|p| std::cmp::Reverse(p.records * p.shape.len() as u64));
    Ok(plans)
}

/// One stage run of one table.
#[derive(Debug, Clone)]
pub struct StageRun {
    pub table: TableName,
    pub stage: Stage,
    pub measurement: Measurement,
}

/// Generates and publishes night `night`'s raw partition of every table, `concurrency` tables
/// at a time; returns the wall time and the rows and bytes written per table.
pub async fn generate(
    inputs: &StageInputs,
    plans: &[TablePlan],
    night: u32,
    existing: &BTreeMap<TableName, u64>,
    concurrency: usize,
) -> anyhow::Result<(f64, Vec<(TableName, u64, u64)>)> {
    let started = Instant::now();
    let slots = Arc::new(Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans {
        let (inputs, plan, slots) = (inputs.clone(), plan.clone(), slots.clone());
        let existing = existing.get(&plan.table).copied().unwrap_or(0);
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await?;
            let night_plan = NightPlan::for_night(night, plan.records, existing);
            // The even spread, paging duplicates on: the night's worst case.
            let generator = Generator::new(plan.shape.clone(), UpdateModel::Even, true);
            let (rows, bytes) = publish_night(
                &inputs.platform,
                &plan.table,
                &generator,
                night,
                night_plan,
                existing,
            )
            .await
            .with_context(|| format!("generating {} night {night}", plan.table))?;
            anyhow::Ok((plan.table, rows, bytes))
        });
    }
    let mut written = Vec::new();
    while let Some(done) = tasks.join_next().await {
        written.push(done??);
    }
    written.sort();
    Ok((started.elapsed().as_secs_f64(), written))
}

/// Runs parse, recast and snapshot of `date` for every table (in `plans`' order), each stage
/// with `concurrency` slots, each stage run a child process; returns the wall time from the
/// first start to the last finish and every stage run.
pub async fn run_night(
    paths: &Paths,
    plans: &[TablePlan],
    date: NaiveDate,
    concurrency: usize,
) -> anyhow::Result<(f64, Vec<StageRun>)> {
    let started = Instant::now();
    let slots: Vec<Arc<Semaphore>> = Stage::ALL
        .iter()
        .map(|_| Arc::new(Semaphore::new(concurrency)))
        .collect();
    let mut tasks = tokio::task::JoinSet::new();
    for plan in plans {
        let (paths, table, slots) = (paths.clone(), plan.table.clone(), slots.clone());
        tasks.spawn(async move {
            let mut runs = Vec::new();
            for (stage, slot) in Stage::ALL.into_iter().zip(&slots) {
                let _slot = slot.acquire().await?;
                let measurement = crate::run_child(&paths, stage, &table, date).await?;
                eprintln!(
                    "{table} {}: {} rows in {:.2} s, peak {} MiB",
                    stage.name(),
                    measurement.rows,
                    measurement.wall_secs,
                    mib(measurement.peak_rss_bytes)
                );
                runs.push(StageRun {
                    table: table.clone(),
                    stage,
                    measurement,
                });
            }
            anyhow::Ok(runs)
        });
    }
    let mut runs = Vec::new();
    while let Some(done) = tasks.join_next().await {
        runs.extend(done??);
    }
    Ok((started.elapsed().as_secs_f64(), runs))
}

/// The date of the setup (full loads) and of the timed night.
pub fn dates() -> (NaiveDate, NaiveDate) {
    (night_date(0), night_date(1))
}

/// `night`: set-up (the full loads of every table), then one timed night of every table.
pub async fn run_whole_night(args: NightArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    prepare_data_dir(&args.paths.data_dir)?;
    let inputs = load_inputs(&args.paths)?;
    let plans = plan_tables(&inputs, args.records_scale)?;
    let (setup_date, night_date) = dates();
    let full_records: u64 = plans.iter().map(|p| p.records).sum();
    let mut out = std::io::stdout();
    writeln!(
        out,
        "# bench night: {} tables, {full_records} records in the full loads (scale {}), \
         {} stage runs of each stage at once, each a child process, {} build\n",
        plans.len(),
        args.records_scale,
        args.concurrency,
        build()
    )?;
    out.flush()?;
    let c = args.concurrency;
    eprintln!("set-up: generating the full loads");
    let (gen0_wall, gen0) = generate(&inputs, &plans, 0, &Default::default(), c).await?;
    eprintln!("set-up: generated in {gen0_wall:.1} s; running the full loads");
    let (setup_wall, mut setup_runs) = run_night(&args.paths, &plans, setup_date, c).await?;
    let existing = plans.iter().map(|p| (p.table.clone(), p.records)).collect();
    eprintln!("set-up: done in {setup_wall:.1} s; generating the night's raw");
    let (gen1_wall, gen1) = generate(&inputs, &plans, 1, &existing, c).await?;
    eprintln!("night: generated in {gen1_wall:.1} s; running the night");
    let (night_wall, mut night_runs) = run_night(&args.paths, &plans, night_date, c).await?;

    // The snapshot reads the previous snapshot and the increment.
    let snapshot_inputs =
        |runs: &mut [StageRun], previous: &std::collections::BTreeMap<TableName, u64>| {
            let increments: std::collections::BTreeMap<TableName, u64> = runs
                .iter()
                .filter(|r| r.stage == Stage::Recast)
                .map(|r| (r.table.clone(), r.measurement.output_bytes))
                .collect();
            for run in runs.iter_mut().filter(|r| r.stage == Stage::Snapshot) {
                run.measurement.input_bytes = previous.get(&run.table).copied().unwrap_or(0)
                    + increments.get(&run.table).copied().unwrap_or(0);
            }
        };
    snapshot_inputs(&mut setup_runs, &Default::default());
    let setup_snapshots = setup_runs
        .iter()
        .filter(|r| r.stage == Stage::Snapshot)
        .map(|r| (r.table.clone(), r.measurement.output_bytes))
        .collect();
    snapshot_inputs(&mut night_runs, &setup_snapshots);

    writeln!(
        out,
        "| phase | step | tables | rows | input MB | output MB | wall s | sum of stage runs s | slowest run s | max peak RSS MiB | snapshot files copied / patched / rewritten |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )?;
    for (phase, gen_wall, generated, wall, runs) in [
        (
            "set-up (full loads)",
            gen0_wall,
            &gen0,
            setup_wall,
            &setup_runs,
        ),
        ("night", gen1_wall, &gen1, night_wall, &night_runs),
    ] {
        let rows: u64 = generated.iter().map(|g| g.1).sum();
        let bytes: u64 = generated.iter().map(|g| g.2).sum();
        writeln!(
            out,
            "| {phase} | generate raw (not timed as the night) | {} | {rows} | 0.0 | {:.1} | {gen_wall:.2} |  |  |  |  |",
            generated.len(),
            bytes as f64 / 1e6
        )?;
        for stage in Stage::ALL {
            let of_stage: Vec<&StageRun> = runs.iter().filter(|r| r.stage == stage).collect();
            let sum = |f: fn(&Measurement) -> u64| -> u64 {
                of_stage.iter().map(|r| f(&r.measurement)).sum()
            };
            let slowest = of_stage
                .iter()
                .max_by(|a, b| a.measurement.wall_secs.total_cmp(&b.measurement.wall_secs));
            let biggest = of_stage
                .iter()
                .max_by_key(|r| r.measurement.peak_rss_bytes.unwrap_or(0));
            let files = if stage == Stage::Snapshot {
                let sum = |count: fn(&Measurement) -> Option<usize>| -> usize {
                    of_stage.iter().filter_map(|r| count(&r.measurement)).sum()
                };
                format!(
                    "{} / {} / {}",
                    sum(|m| m.copied_files),
                    sum(|m| m.patched_files),
                    sum(|m| m.rewritten_files)
                )
            } else {
                String::new()
            };
            writeln!(
                out,
                "| {phase} | {} | {} | {} | {:.1} | {:.1} |  | {:.2} | {} | {} | {files} |",
                stage.name(),
                of_stage.len(),
                sum(|m| m.rows),
                sum(|m| m.input_bytes) as f64 / 1e6,
                sum(|m| m.output_bytes) as f64 / 1e6,
                of_stage
                    .iter()
                    .map(|r| r.measurement.wall_secs)
                    .sum::<f64>(),
                slowest.map_or_else(String::new, |r| format!(
                    "{:.2} ({})",
                    r.measurement.wall_secs, r.table
                )),
                biggest.map_or_else(String::new, |r| format!(
                    "{} ({})",
                    mib(r.measurement.peak_rss_bytes),
                    r.table
                )),
            )?;
        }
        writeln!(
            out,
            "| {phase} | **parse → recast → snapshot, end to end** | {} |  |  |  | **{wall:.2}** |  |  |  |  |",
            generated.len()
        )?;
    }
    writeln!(out, "\n## the night, per table (largest first)\n")?;
    writeln!(out, "{}", table_header("table"))?;
    for plan in &plans {
        for run in night_runs.iter().filter(|r| r.table == plan.table) {
            let row = Row {
                label: format!("{} ({} fields)", run.table, plan.shape.len()),
                table: run.table.to_string(),
                date: night_date,
                stage: run.stage.name(),
                engine: "ours",
                measurement: run.measurement.clone(),
            };
            writeln!(out, "{}", format_row(&row))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_tables_have_a_few_hundred_to_a_few_thousand_records() {
        assert_eq!(full_load_records("documents"), 5_000_000);
        for name in ["appeals", "contacts", "fee_types", "x"] {
            let n = full_load_records(name);
            assert!((300..=3000).contains(&n), "{name}: {n}");
            assert_eq!(n, full_load_records(name));
        }
    }
}
