//! `bench`: times parse, recast and snapshot on deterministic synthetic data on the embedded
//! default (local files), a full load followed by nightly increments, and prints a markdown
//! table. See docs/benchmarks.md.
//!
//! Each stage run is, by default, a child process (`bench stage ...`) so that the peak resident
//! memory reported (`VmHWM`) is that stage's alone.

mod data;
mod stages;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use common::layout::{TableName, date_value, parse_date};
use parse_svc::testing::RecordShape;

use crate::data::{NightPlan, night_date, publish_night};
use crate::stages::{Measurement, Stage, StageInputs, peak_rss_bytes, run_stage};

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "Benchmark the pipeline's stages on synthetic data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command_,
}

#[derive(Debug, Subcommand)]
enum Command_ {
    /// Generate a dataset, run every stage on each night and print the results table.
    Run(RunArgs),
    /// Run one stage on one partition already generated and print its measurement as JSON (what
    /// `run` calls in a child process).
    Stage(StageArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Dataset {
    /// 100,000 records of 752 fields, as production's `applications`.
    Applications,
    /// 5,000,000 records of about 25 fields, as production's `documents`.
    Documents,
}

impl Dataset {
    fn table(self) -> &'static str {
        match self {
            Dataset::Applications => "applications",
            Dataset::Documents => "documents",
        }
    }

    fn default_records(self) -> u64 {
        match self {
            Dataset::Applications => 100_000,
            Dataset::Documents => 5_000_000,
        }
    }

    fn fields(self) -> usize {
        match self {
            Dataset::Applications => 752,
            Dataset::Documents => 25,
        }
    }
}

#[derive(Debug, clap::Args)]
struct Paths {
    /// Where the local platform keeps its files and catalog.
    #[arg(long)]
    data_dir: PathBuf,
    /// The pipeline file (completeness columns).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipeline.yaml"))]
    pipeline: PathBuf,
    /// The column-type dictionary.
    #[arg(
        long,
        default_value = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/tascomi/column-type-dictionary.json"
        )
    )]
    dictionary: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[arg(long, value_enum, default_value = "applications")]
    dataset: Dataset,
    /// Records of the full load (default: the dataset's production-like size).
    #[arg(long)]
    records: Option<u64>,
    /// Nightly increments after the full load.
    #[arg(long, default_value_t = 5)]
    nights: u32,
    /// Run every stage in this process (peak memory is then cumulative, not per stage).
    #[arg(long)]
    in_process: bool,
    #[command(flatten)]
    paths: Paths,
}

#[derive(Debug, clap::Args)]
struct StageArgs {
    #[arg(long, value_enum)]
    stage: Stage,
    #[arg(long)]
    table: String,
    /// The partition's import date, `YYYYMMDD`.
    #[arg(long)]
    date: String,
    #[command(flatten)]
    paths: Paths,
}

/// A marker the benchmark leaves in its data directory, so that it only ever deletes a
/// directory it made.
const MARKER: &str = ".bench-data";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command_::Run(args) => run(args).await,
        Command_::Stage(args) => {
            let table = TableName::new(&args.table)?;
            let date = parse_date(&args.date)
                .with_context(|| format!("--date {} is not YYYYMMDD", args.date))?;
            let inputs = load_inputs(&args.paths)?;
            let measurement = run_stage(&inputs, args.stage, &table, date).await?;
            writeln!(std::io::stdout(), "{}", measurement.to_json())?;
            Ok(())
        }
    }
}

fn load_inputs(paths: &Paths) -> anyhow::Result<StageInputs> {
    StageInputs::load(&paths.data_dir, &paths.pipeline, &paths.dictionary)
}

/// One row of the results table.
#[derive(Debug)]
struct Row {
    night: u32,
    stage: &'static str,
    measurement: Measurement,
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let dataset = args.dataset;
    let records = args.records.unwrap_or(dataset.default_records());
    prepare_data_dir(&args.paths.data_dir)?;
    let inputs = load_inputs(&args.paths)?;
    let table = TableName::new(dataset.table())?;
    let config = inputs.pipeline.table_or_default(&table);
    let required: Vec<&str> = [config.completeness_column.as_str()]
        .into_iter()
        .filter(|c| *c != "id")
        .collect();
    let shape = RecordShape::from_dictionary(
        &inputs.dictionary,
        dataset.table(),
        dataset.fields(),
        &required,
    );
    let mut out = std::io::stdout();
    writeln!(
        out,
        "# bench: {} ({} fields), {records} records, {} nightly increments, {} build\n",
        dataset.table(),
        shape.len(),
        args.nights,
        if cfg!(debug_assertions) {
            "dev (unoptimised crate, deps opt-level 1)"
        } else {
            "release"
        }
    )?;
    out.flush()?;

    let mut rows = Vec::new();
    let mut existing = 0;
    let mut previous_snapshot_bytes = 0;
    for night in 0..=args.nights {
        let date = night_date(night);
        let plan = NightPlan::for_night(night, records, existing);
        let started = Instant::now();
        let (raw_rows, raw_bytes) =
            publish_night(&inputs.platform, &table, &shape, night, plan, existing).await?;
        rows.push(Row {
            night,
            stage: "generate raw",
            measurement: Measurement {
                rows: raw_rows,
                output_bytes: raw_bytes,
                wall_secs: started.elapsed().as_secs_f64(),
                ..Measurement::default()
            },
        });
        existing += plan.new;
        let mut increment_bytes = 0;
        for stage in Stage::ALL {
            let mut m = if args.in_process {
                run_stage(&inputs, stage, &table, date).await?
            } else {
                run_child(&args.paths, stage, &table, date)?
            };
            match stage {
                Stage::Recast => increment_bytes = m.output_bytes,
                Stage::Snapshot => {
                    m.input_bytes = previous_snapshot_bytes + increment_bytes;
                    previous_snapshot_bytes = m.output_bytes;
                }
                Stage::Parse => {}
            }
            let row = Row {
                night,
                stage: stage.name(),
                measurement: m,
            };
            writeln!(std::io::stderr(), "{}", format_row(&row))?;
            rows.push(row);
        }
    }
    writeln!(out, "{}", table_header())?;
    for row in &rows {
        writeln!(out, "{}", format_row(row))?;
    }
    if args.in_process {
        writeln!(
            out,
            "\npeak resident memory is the whole process's so far (--in-process): {}",
            mib(peak_rss_bytes())
        )?;
    }
    Ok(())
}

/// Makes `dir` empty and marks it as the benchmark's; refuses a non-empty directory the
/// benchmark did not make.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let empty = std::fs::read_dir(dir)?.next().is_none();
        if !empty && !dir.join(MARKER).exists() {
            bail!(
                "{} is not empty and was not made by bench: choose another --data-dir",
                dir.display()
            );
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by the bench binary; deleted on its next run\n",
    )?;
    Ok(())
}

/// Runs one stage in a child process of this binary, so that its peak memory is its own.
fn run_child(
    paths: &Paths,
    stage: Stage,
    table: &TableName,
    date: chrono::NaiveDate,
) -> anyhow::Result<Measurement> {
    let exe = std::env::current_exe().context("finding the bench binary")?;
    let output = Command::new(exe)
        .arg("stage")
        .args(["--stage", stage.name(), "--table", table.as_str()])
        .args(["--date", &date_value(date)])
        .arg("--data-dir")
        .arg(&paths.data_dir)
        .arg("--pipeline")
        .arg(&paths.pipeline)
        .arg("--dictionary")
        .arg(&paths.dictionary)
        .output()
        .context("starting a stage process")?;
    if !output.status.success() {
        bail!(
            "{} of {table} for {date} failed ({}): {}",
            stage.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .context("the stage process printed nothing")?;
    Measurement::from_json(&serde_json::from_str(line)?)
}

fn table_header() -> String {
    "| night | stage | rows | input MB | output MB | wall s | rows/s | input MB/s | peak RSS MiB | snapshot files copied / rewritten |\n\
     |---|---|---:|---:|---:|---:|---:|---:|---:|---|"
        .to_owned()
}

fn format_row(row: &Row) -> String {
    let m = &row.measurement;
    let night = if row.night == 0 {
        "full load".to_owned()
    } else {
        row.night.to_string()
    };
    let per_sec = |n: f64| {
        if m.wall_secs > 0.0 {
            n / m.wall_secs
        } else {
            0.0
        }
    };
    let files = match (m.copied_files, m.rewritten_files) {
        (Some(c), Some(r)) => format!("{c} / {r}"),
        _ => String::new(),
    };
    format!(
        "| {night} | {} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.1} | {} | {files} |",
        row.stage,
        m.rows,
        m.input_bytes as f64 / 1e6,
        m.output_bytes as f64 / 1e6,
        m.wall_secs,
        per_sec(m.rows as f64),
        per_sec(m.input_bytes as f64 / 1e6),
        mib(m.peak_rss_bytes),
    )
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(String::new, |b| {
        format!("{:.0}", b as f64 / (1024.0 * 1024.0))
    })
}
