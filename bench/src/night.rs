//! A whole night at production-like scale: every table of the pipeline file, run through parse,
//! recast and snapshot with bounded concurrency, as the deployed services would.
//!
//! Concurrency: each stage has `concurrency` slots (as each deployed service handles up to that
//! many messages at once); a table goes parse, then recast, then snapshot, each stage run a
//! child process started when a slot of that stage is free, so different tables are in
//! different stages at once. Tables start largest first (records × fields), so the long chains
//! (`documents`, `applications`) do not start last.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use common::layout::TableName;
use tascomi_test_support::RecordShape;
use tokio::sync::Semaphore;

use crate::Paths;
use crate::data::{NightPlan, night_date, publish_night};
use crate::stages::{Measurement, Stage, StageInputs};

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
            let (rows, bytes) = publish_night(
                &inputs.platform,
                &plan.table,
                &plan.shape,
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
                    crate::mib(measurement.peak_rss_bytes)
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
