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
mod from_raw;
mod night;
mod peer;
mod raw;
mod report;
mod stages;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use common::layout::{TableName, date_value, parse_date};
use tascomi_test_support::RecordShape;

use crate::data::{Generator, NightPlan, UpdateModel, night_date, publish_night};
use crate::report::{Row, RunInfo, build, format_row, night_label, print_results};
use crate::stages::{Measurement, Stage, StageInputs, run_stage};

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
    /// Side by side with another engine: the same three stages on the same raw layer, each
    /// stage run of each engine in its own process, night by night, and one comparison table.
    Peer {
        #[command(subcommand)]
        engine: peer::PeerEngine,
    },
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

/// What the generator puts in each night's raw partition (docs/benchmarks.md, "Data").
#[derive(Debug, Clone, clap::Args)]
struct GeneratorArgs {
    /// How the nightly updates spread over the ids and columns: `even` (every id range, every
    /// column: the worst case) or `realistic` (80 % on the newest 10 % of ids; status, dates
    /// and officers only).
    #[arg(long, value_enum, default_value = "even")]
    updates: UpdateModel,
    /// Leave out the paging duplicates (by default 0.05 % of the rows are served twice and 2 %
    /// of the updated ids come in two versions, as the API's offset paging does).
    #[arg(long)]
    no_paging_duplicates: bool,
}

impl GeneratorArgs {
    fn generator(&self, shape: RecordShape) -> Generator {
        Generator::new(shape, self.updates, !self.no_paging_duplicates)
    }
}

#[derive(Debug, Clone, clap::Args)]
struct DictionaryArg {
    /// The column-type dictionary (default: the demo's small one in the repository; name the
    /// council's production dictionary for production-like figures).
    #[arg(
        long = "dictionary",
        default_value = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../ctl/demo/column-type-dictionary.json"
        )
    )]
    path: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
struct Paths {
    /// Where the local platform keeps its files and catalog.
    #[arg(long)]
    data_dir: PathBuf,
    /// The pipeline file (completeness columns).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../pipeline.yaml"))]
    pipeline: PathBuf,
    #[command(flatten)]
    dictionary: DictionaryArg,
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
    /// Also write the results as JSON to FILE: an array with one object per stage run.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    #[command(flatten)]
    generator: GeneratorArgs,
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
    #[command(flatten)]
    generator: GeneratorArgs,
    #[command(flatten)]
    dictionary: DictionaryArg,
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

/// What `write-raw` records beside the raw layer it writes (dataset, size, update model).
const MANIFEST: &str = "bench-raw.json";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command_::Run(args) => match args.from_raw.clone() {
            Some(dir) => from_raw::run_from_raw(args, &dir).await,
            None => run(args).await,
        },
        Command_::Night(args) => night::run_whole_night(args).await,
        Command_::Peer { engine } => peer::run_peer(engine).await,
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
    StageInputs::load(&paths.data_dir, &paths.pipeline, &paths.dictionary.path)
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let dataset = args.dataset;
    let records = args.records.unwrap_or(dataset.default_records());
    prepare_data_dir(&args.paths.data_dir)?;
    let inputs = load_inputs(&args.paths)?;
    let table = TableName::new(dataset.table())?;
    let config = inputs.pipeline.table_or_default(&table);
    let shape = shape_of(&inputs.dictionary, &config, dataset.fields());
    let generator = args.generator.generator(shape);
    let info = RunInfo {
        dataset: dataset.table().to_owned(),
        records: Some(records),
        fields: Some(generator.shape.len()),
        update_model: generator.updates.name().to_owned(),
        paging_duplicates: Some(generator.paging_duplicates),
    };
    let mut out = std::io::stdout();
    writeln!(
        out,
        "# bench: {} ({} fields), {records} records, {} nightly increments, {} updates, \
         paging duplicates {}, {} build\n",
        dataset.table(),
        generator.shape.len(),
        args.nights,
        generator.updates.name(),
        if generator.paging_duplicates {
            "on"
        } else {
            "off"
        },
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
            publish_night(&inputs.platform, &table, &generator, night, plan, existing).await?;
        rows.push(Row {
            label: night_label(night),
            table: table.to_string(),
            date,
            stage: "generate raw",
            engine: "ours",
            measurement: raw::written(raw_rows, raw_bytes, started),
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
    let json = args.json.as_deref().map(|path| (path, &info));
    print_results(&mut out, "night", &rows, args.in_process, json)
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
pub(crate) async fn run_child(
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
        .arg(&paths.dictionary.path)
        .output()
        .await
        .context("starting a stage process")?;
    let what = format!("{} of {table} for {date}", stage.name());
    Measurement::from_json(&report::last_json_line(&output, &what)?)
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
pub(crate) enum Mode<'a> {
    /// A child process per stage run (peak memory is the stage's own).
    Child(&'a Paths),
    /// This process (peak memory is cumulative).
    InProcess(&'a StageInputs),
}

/// Times parse, recast and snapshot of `table`'s partition of `date` (its raw partition is
/// published) and appends their rows. `previous_snapshot_bytes` is the table's last snapshot's
/// size (0 before the first), updated to the new one.
pub(crate) async fn time_stages(
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
            table: table.to_string(),
            date,
            stage: stage.name(),
            engine: "ours",
            measurement: m,
        };
        writeln!(std::io::stderr(), "{}", format_row(&row))?;
        rows.push(row);
    }
    Ok(())
}

/// `write-raw`: the synthetic raw layer as plain Parquet files in the brief's layout.
async fn write_raw(args: WriteRawArgs) -> anyhow::Result<()> {
    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!("{} is not empty: choose another --out", args.out.display());
    }
    let platform = common::platform::Platform::local(&args.out);
    let dictionary = common::dictionary::ColumnTypes::load(&args.dictionary.path)
        .with_context(|| format!("loading {}", args.dictionary.path.display()))?;
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
    let generator = args.generator.generator(shape);
    let shape = &generator.shape;
    let records = args.records.unwrap_or(dataset.default_records());
    let mut existing = 0;
    for night in 0..=args.nights {
        let plan = NightPlan::for_night(night, records, existing);
        publish_night(&platform, &table, &generator, night, plan, existing).await?;
        existing += plan.new;
    }
    raw::flatten_local_raw(&args.out, &platform.layout.raw_bucket)?;
    let manifest = RunInfo {
        dataset: dataset.table().to_owned(),
        records: Some(records),
        fields: Some(shape.len()),
        update_model: generator.updates.name().to_owned(),
        paging_duplicates: Some(generator.paging_duplicates),
    };
    let mut manifest = manifest.to_json();
    manifest["nights"] = args.nights.into();
    std::fs::write(
        args.out.join(MANIFEST),
        serde_json::to_string_pretty(&manifest)? + "\n",
    )?;
    writeln!(
        std::io::stdout(),
        "wrote {} nights of {table} ({} fields, {existing} records at the end) under {}",
        args.nights + 1,
        shape.len(),
        args.out.join(raw::RAW_TABLES).display()
    )?;
    Ok(())
}
