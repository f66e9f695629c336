//! `bench`: times parse, recast and snapshot on deterministic synthetic data on the embedded
//! default (local files), a full load followed by nightly increments, and prints a markdown
//! table. See docs/benchmarks.md.
//!
//! Each stage run is, by default, a child process (`bench stage ...`) so that the peak resident
//! memory reported (`VmHWM`) is that stage's alone.

/// This program allocates with mimalloc: with glibc's allocator, the encoding and decoding
/// threads each kept an arena of freed buffers and a wide table's snapshot held nearly twice its
/// live memory (measured with heaptrack and `bench`, docs/benchmarks.md). Each binary sets it in
/// its own `main.rs`; the library `common` leaves the choice to the program.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod data;
mod night;
mod raw;
mod stages;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use common::layout::{TableName, date_value, parse_date};
use tascomi_test_support::RecordShape;

use crate::data::{NightPlan, night_date, publish_night};
use crate::night::StageRun;
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
    /// A whole night at production-like scale: the full loads of every table of the pipeline
    /// file (set-up), then one nightly increment of every table through parse, recast and
    /// snapshot with bounded concurrency, timed end to end.
    Night(NightArgs),
    /// Write the synthetic raw layer of a table (a full load and nightly increments) as plain
    /// Hive-partitioned Parquet in the brief's layout, for `run --from-raw` or other engines.
    WriteRaw(WriteRawArgs),
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

#[derive(Debug, Clone, clap::Args)]
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
    /// Instead of generating data, import the raw layer under DIR
    /// (`DIR/planning/tascomi/api-responses/<table>/.../import_date=YYYYMMDD/*.parquet`) and run
    /// the stages on each import_date partition in date order (`--dataset`, `--records` and
    /// `--nights` are then ignored).
    #[arg(long, value_name = "DIR")]
    from_raw: Option<PathBuf>,
    /// With `--from-raw`: only this table (default: every table found).
    #[arg(long, requires = "from_raw")]
    table: Option<String>,
    #[command(flatten)]
    paths: Paths,
}

#[derive(Debug, clap::Args)]
struct NightArgs {
    /// Multiplies every table's full-load size (1: applications 100,000, documents 5,000,000).
    #[arg(long, default_value_t = 1.0)]
    records_scale: f64,
    /// Stage runs of each stage at once (and tables generated at once).
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    #[command(flatten)]
    paths: Paths,
}

#[derive(Debug, clap::Args)]
struct WriteRawArgs {
    #[arg(long, value_enum, default_value = "applications")]
    dataset: Dataset,
    /// Records of the full load (default: the dataset's production-like size).
    #[arg(long)]
    records: Option<u64>,
    /// Fields per record (default: the dataset's).
    #[arg(long)]
    fields: Option<usize>,
    /// Nightly increments after the full load.
    #[arg(long, default_value_t = 5)]
    nights: u32,
    /// Where to write (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
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
        Command_::Run(args) => match args.from_raw.clone() {
            Some(dir) => run_from_raw(args, &dir).await,
            None => run(args).await,
        },
        Command_::Night(args) => run_whole_night(args).await,
        Command_::WriteRaw(args) => write_raw(args).await,
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
    /// The first column: the night (or table, or table and date).
    label: String,
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
    let shape = shape_of(&inputs.dictionary, &config, dataset.fields());
    let mut out = std::io::stdout();
    writeln!(
        out,
        "# bench: {} ({} fields), {records} records, {} nightly increments, {} build\n",
        dataset.table(),
        shape.len(),
        args.nights,
        build()
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
            label: night_label(night),
            stage: "generate raw",
            measurement: Measurement {
                rows: raw_rows,
                output_bytes: raw_bytes,
                wall_secs: started.elapsed().as_secs_f64(),
                ..Measurement::default()
            },
        });
        existing += plan.new;
        let mode = if args.in_process {
            Mode::InProcess(&inputs)
        } else {
            Mode::Child(&args.paths)
        };
        time_stages(
            mode,
            &table,
            date,
            &night_label(night),
            &mut previous_snapshot_bytes,
            &mut rows,
        )
        .await?;
    }
    print_results(&mut out, "night", &rows, args.in_process)
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
async fn run_child(
    paths: &Paths,
    stage: Stage,
    table: &TableName,
    date: chrono::NaiveDate,
) -> anyhow::Result<Measurement> {
    let exe = std::env::current_exe().context("finding the bench binary")?;
    let output = tokio::process::Command::new(exe)
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
        .await
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

fn table_header(first: &str) -> String {
    format!(
        "| {first} | stage | rows | input MB | output MB | wall s | rows/s | input MB/s | peak RSS MiB | snapshot files copied / rewritten |\n\
     |---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
}

fn night_label(night: u32) -> String {
    if night == 0 {
        "full load".to_owned()
    } else {
        night.to_string()
    }
}

fn format_row(row: &Row) -> String {
    let m = &row.measurement;
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
        "| {} | {} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.1} | {} | {files} |",
        row.label,
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

fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "dev (unoptimised crate, deps opt-level 1)"
    } else {
        "release"
    }
}

/// The synthetic records of a table: the dictionary's columns, never-null completeness column.
fn shape_of(
    dictionary: &common::dictionary::ColumnTypes,
    config: &common::config::TableConfig,
    fields: usize,
) -> RecordShape {
    let required: Vec<&str> = [config.completeness_column.as_str()]
        .into_iter()
        .filter(|c| *c != "id")
        .collect();
    RecordShape::from_dictionary(dictionary, config.name.as_str(), fields, &required)
}

/// Where stage runs happen.
#[derive(Debug, Clone, Copy)]
enum Mode<'a> {
    /// A child process per stage run (peak memory is the stage's own).
    Child(&'a Paths),
    /// This process (peak memory is cumulative).
    InProcess(&'a StageInputs),
}

/// Times parse, recast and snapshot of `table`'s partition of `date` (its raw partition is
/// published) and appends their rows. `previous_snapshot_bytes` is the table's last snapshot's
/// size (0 before the first), updated to the new one.
async fn time_stages(
    mode: Mode<'_>,
    table: &TableName,
    date: chrono::NaiveDate,
    label: &str,
    previous_snapshot_bytes: &mut u64,
    rows: &mut Vec<Row>,
) -> anyhow::Result<()> {
    let mut increment_bytes = 0;
    for stage in Stage::ALL {
        let mut m = match mode {
            Mode::InProcess(inputs) => run_stage(inputs, stage, table, date).await?,
            Mode::Child(paths) => run_child(paths, stage, table, date).await?,
        };
        match stage {
            Stage::Recast => increment_bytes = m.output_bytes,
            Stage::Snapshot => {
                m.input_bytes = *previous_snapshot_bytes + increment_bytes;
                *previous_snapshot_bytes = m.output_bytes;
            }
            Stage::Parse => {}
        }
        let row = Row {
            label: label.to_owned(),
            stage: stage.name(),
            measurement: m,
        };
        writeln!(std::io::stderr(), "{}", format_row(&row))?;
        rows.push(row);
    }
    Ok(())
}

/// `run --from-raw DIR`: imports every raw partition found (untimed by the stages, reported as
/// "import raw"), then times the stages on each table's partitions in date order.
async fn run_from_raw(args: RunArgs, dir: &Path) -> anyhow::Result<()> {
    let partitions = raw::find_raw(dir, args.table.as_deref())?;
    prepare_data_dir(&args.paths.data_dir)?;
    let inputs = load_inputs(&args.paths)?;
    let tables: std::collections::BTreeSet<&TableName> =
        partitions.iter().map(|p| &p.table).collect();
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
    let label = |p: &raw::RawPartition| format!("{} {}", p.table, p.date);
    let mut rows = Vec::new();
    let mut loaded = std::collections::HashSet::new();
    for partition in &partitions {
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
            stage: "import raw",
            measurement: Measurement {
                rows: raw_rows,
                output_bytes: raw_bytes,
                wall_secs: started.elapsed().as_secs_f64(),
                ..Measurement::default()
            },
        });
    }
    let mode = if args.in_process {
        Mode::InProcess(&inputs)
    } else {
        Mode::Child(&args.paths)
    };
    let mut previous_snapshot_bytes = std::collections::BTreeMap::new();
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
    print_results(&mut out, "table and import date", &rows, args.in_process)
}

/// The results table (first column headed `first`), and with `--in-process` the process's peak.
fn print_results(
    out: &mut impl Write,
    first: &str,
    rows: &[Row],
    in_process: bool,
) -> anyhow::Result<()> {
    writeln!(out, "{}", table_header(first))?;
    for row in rows {
        writeln!(out, "{}", format_row(row))?;
    }
    if in_process {
        writeln!(
            out,
            "\npeak resident memory is the whole process's so far (--in-process): {}",
            mib(peak_rss_bytes())
        )?;
    }
    Ok(())
}

/// `write-raw`: the synthetic raw layer as plain Parquet files in the brief's layout.
async fn write_raw(args: WriteRawArgs) -> anyhow::Result<()> {
    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!("{} is not empty: choose another --out", args.out.display());
    }
    let platform = common::platform::Platform::local(&args.out);
    let dictionary = common::dictionary::ColumnTypes::load(&args.dictionary)
        .with_context(|| format!("loading {}", args.dictionary.display()))?;
    let dataset = args.dataset;
    let table = TableName::new(dataset.table())?;
    let mut config = common::config::TableConfig::with_defaults(table.clone());
    if dataset == Dataset::Applications {
        config.completeness_column = "application_reference_number".into();
    }
    let shape = shape_of(
        &dictionary,
        &config,
        args.fields.unwrap_or(dataset.fields()),
    );
    let records = args.records.unwrap_or(dataset.default_records());
    let mut existing = 0;
    for night in 0..=args.nights {
        let plan = NightPlan::for_night(night, records, existing);
        publish_night(&platform, &table, &shape, night, plan, existing).await?;
        existing += plan.new;
    }
    raw::flatten_local_raw(&args.out, &platform.layout.raw_bucket)?;
    writeln!(
        std::io::stdout(),
        "wrote {} nights of {table} ({} fields, {existing} records at the end) under {}",
        args.nights + 1,
        shape.len(),
        args.out.join(raw::RAW_TABLES).display()
    )?;
    Ok(())
}

/// `night`: set-up (the full loads of every table), then one timed night of every table.
async fn run_whole_night(args: NightArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    prepare_data_dir(&args.paths.data_dir)?;
    let inputs = load_inputs(&args.paths)?;
    let plans = night::plan_tables(&inputs, args.records_scale)?;
    let (setup_date, night_date) = night::dates();
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
    let (gen0_wall, gen0) = night::generate(&inputs, &plans, 0, &Default::default(), c).await?;
    eprintln!("set-up: generated in {gen0_wall:.1} s; running the full loads");
    let (setup_wall, mut setup_runs) = night::run_night(&args.paths, &plans, setup_date, c).await?;
    let existing = plans.iter().map(|p| (p.table.clone(), p.records)).collect();
    eprintln!("set-up: done in {setup_wall:.1} s; generating the night's raw");
    let (gen1_wall, gen1) = night::generate(&inputs, &plans, 1, &existing, c).await?;
    eprintln!("night: generated in {gen1_wall:.1} s; running the night");
    let (night_wall, mut night_runs) = night::run_night(&args.paths, &plans, night_date, c).await?;

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
        "| phase | step | tables | rows | input MB | output MB | wall s | sum of stage runs s | slowest run s | max peak RSS MiB | snapshot files copied / rewritten |\n\
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
                format!(
                    "{} / {}",
                    of_stage
                        .iter()
                        .filter_map(|r| r.measurement.copied_files)
                        .sum::<usize>(),
                    of_stage
                        .iter()
                        .filter_map(|r| r.measurement.rewritten_files)
                        .sum::<usize>()
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
                stage: run.stage.name(),
                measurement: run.measurement.clone(),
            };
            writeln!(out, "{}", format_row(&row))?;
        }
    }
    Ok(())
}
