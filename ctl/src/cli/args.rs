//! The command line's grammar: the commands, their options and how their values are read.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use common::layout::{TableName, parse_date};
use common::messages::IngestMode;

use crate::health;
use crate::stage::Stage;

#[derive(Debug, Parser)]
#[command(
    name = "tascomi",
    version,
    about = "Operate the Tascomi planning data pipeline",
    long_about = "Operate the Tascomi planning data pipeline: on the AWS deployment named by the \
environment (TASCOMI_* variables, as Terraform outputs them), or with --local on a local data \
directory (the embedded default). Dates are YYYY-MM-DD or YYYYMMDD.",
    after_help = "Examples:\n  \
tascomi demo                                   # the whole pipeline on a simulated API, in data/demo\n  \
tascomi report --local --data-dir data/demo    # the morning report: open tascomi-report.html\n  \
tascomi status                                 # the deployment's summary; --verbose for details\n\n\
Each command's --help has its own examples. docs/operations.md has the morning routine."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Which deployment a command acts on.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    /// Act on a local data directory (the embedded default) instead of the AWS deployment
    /// named by the environment.
    #[arg(long)]
    pub local: bool,
    /// The local data directory (with --local).
    #[arg(long, value_name = "DIR", default_value = "data/local")]
    pub data_dir: PathBuf,
    /// The pipeline file: the tables and their schedules.
    #[arg(
        long,
        value_name = "FILE",
        env = "TASCOMI_PIPELINE_FILE",
        default_value = "pipeline.yaml"
    )]
    pub pipeline: PathBuf,
    /// The column-type dictionary: a path or s3://bucket/key (default: the pipeline file's
    /// `column_type_dictionary`).
    #[arg(
        long,
        value_name = "FILE|S3_URI",
        env = "TASCOMI_COLUMN_TYPE_DICTIONARY"
    )]
    pub dictionary: Option<PathBuf>,
}

/// What the commands that rebuild a table (`reset`, `retype`) share: a plan first, and the
/// date the replays take as today.
#[derive(Debug, Args, Clone)]
pub struct RebuildArgs {
    /// Carry the plan out (without it, only print it).
    #[arg(long)]
    pub yes: bool,
    /// As for `replay` (default: each partition's own date), YYYY-MM-DD or YYYYMMDD.
    #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
    pub as_of: Option<NaiveDate>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// The Tascomi API, for the commands that run the ingest stage on the embedded default (keys
/// from TASCOMI_PUBLIC_KEY and TASCOMI_PRIVATE_KEY; the client settings from the same
/// TASCOMI_API_* variables as ingest-svc).
#[derive(Debug, Args, Clone)]
pub struct ApiArgs {
    /// The API's base URL, e.g. https://council-planning.idoxcloud.com/rest/v1/ (with --local).
    #[arg(long, value_name = "URL", env = "TASCOMI_API_BASE_URL")]
    pub api_url: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline on the embedded default against a simulated Tascomi API, over a
    /// few simulated nights, print what it published and write the morning report of those
    /// nights (DIR/tascomi-report.html).
    #[command(after_help = "Example:\n  \
tascomi demo                                      # three nights into data/demo\n  \
tascomi report --local --data-dir data/demo       # then look at what they published")]
    Demo {
        /// Where the demo writes (a folder it made before is wiped first; any other is refused).
        #[arg(long, value_name = "DIR", default_value = "data/demo")]
        data_dir: PathBuf,
        /// How many nights to simulate.
        #[arg(long, value_name = "N", default_value_t = 3)]
        nights: u32,
    },
    /// One nightly run of every stage on the embedded default, against any Tascomi API (keys
    /// from TASCOMI_PUBLIC_KEY and TASCOMI_PRIVATE_KEY). Exits non-zero unless every table's
    /// snapshot of the day is published with no page failed, naming each table and why.
    #[command(after_help = "Example:\n  \
TASCOMI_PUBLIC_KEY=... TASCOMI_PRIVATE_KEY=... tascomi run --local --data-dir data/council \\\n    \
--api-url https://council-planning.idoxcloud.com/rest/v1/ --tables applications,appeals --as-of 2026-11-21")]
    Run {
        #[command(flatten)]
        target: TargetArgs,
        /// The API's base URL, e.g. https://council-planning.idoxcloud.com/rest/v1/
        #[arg(long, value_name = "URL", env = "TASCOMI_API_BASE_URL")]
        api_url: String,
        /// Tables to run, comma-separated (default: the pipeline file's tables due that day).
        #[arg(long, value_name = "TABLE,...", value_delimiter = ',')]
        tables: Vec<TableName>,
        /// The London date the run takes as today (default: today), YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        as_of: Option<NaiveDate>,
    },
    /// Send an ingest request for a table to the deployment's ingest queue; with --local, run
    /// it (and every later stage) here and report as `run` does.
    #[command(after_help = "Examples:\n  \
tascomi ingest --table planning_conditions --mode full        # load a new table now\n  \
tascomi ingest --table appeals --mode retry-failed --as-of 2026-11-21\n  \
tascomi ingest --table appeals --since 2026-11-01             # fetch those days again")]
    Ingest {
        /// The table to ingest.
        #[arg(long, value_name = "TABLE")]
        table: TableName,
        /// incremental (the days since the last import), full, or retry-failed (the pages that
        /// failed in the latest import).
        #[arg(long, value_name = "MODE", default_value = "incremental", value_parser = parse_mode)]
        mode: IngestMode,
        /// Fetch again every day from this date up to the day before the run's date, whatever
        /// earlier imports fetched (incremental only), YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        since: Option<NaiveDate>,
        /// The London date the ingest takes as today (default: today), YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        as_of: Option<NaiveDate>,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Re-run a stage (and everything downstream) on its input partitions dated FROM..=TO.
    #[command(after_help = "Examples:\n  \
tascomi replay --stage recast --table applications --from 2026-11-01 --to 2026-11-21 --dry-run\n  \
tascomi replay --stage parse --all --from 20261120")]
    Replay {
        /// The stage to run again (it reads the layer before its own).
        #[arg(long, value_name = "STAGE", value_parser = stage_parser())]
        stage: Stage,
        /// The table to replay (or --all).
        #[arg(
            long,
            value_name = "TABLE",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        table: Option<TableName>,
        /// Replay every table of the pipeline file.
        #[arg(long)]
        all: bool,
        /// The first partition date to replay, YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        from: NaiveDate,
        /// The last partition date to replay (default: the latest), YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        to: Option<NaiveDate>,
        /// Print the messages instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// The London date every replayed stage takes as today, so one snapshot of that date
        /// (default: each partition's own date, so each snapshot is rebuilt under its date),
        /// YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        as_of: Option<NaiveDate>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Remove a stage's partitions (and every later layer's) from FROM on, then replay.
    #[command(after_help = "Example:\n  \
tascomi reset --table applications --stage parse --from 2026-11-15          # prints the plan\n  \
tascomi reset --table applications --stage parse --from 2026-11-15 --yes    # carries it out")]
    Reset {
        /// The table to reset.
        #[arg(long, value_name = "TABLE")]
        table: TableName,
        /// The first stage to rebuild; its layer and every later one are removed and rebuilt.
        #[arg(long, value_name = "STAGE", value_parser = stage_parser())]
        stage: Stage,
        /// The first partition date removed and rebuilt, YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        from: NaiveDate,
        #[command(flatten)]
        rebuild: RebuildArgs,
    },
    /// Take over a lake the old Glue jobs wrote: register its Hive partitions the catalog lacks
    /// and derive each table's ingest state from its raw layer, so that the next night is
    /// incremental and the snapshot continues from the latest existing one. Moves nothing.
    #[command(after_help = "Example:\n  \
tascomi adopt --dry-run                          # prints what it found per table, changes nothing\n  \
tascomi adopt                                    # registers the partitions, writes the ingest state\n  \
tascomi adopt --local --data-dir old-lake        # a local copy of the old lake")]
    Adopt {
        /// Only this table (default: every table of the pipeline file).
        #[arg(long, value_name = "TABLE")]
        table: Option<TableName>,
        /// Print what was found and would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Reconcile two snapshots of a table (or of every table): two dates of one lake, or the
    /// same date in another lake (--against-prefix: another Glue database prefix, such as the
    /// old Glue jobs'; --against-data-dir: another local data directory). Reports rows, ids on
    /// one side only, columns and types that differ, and per column the values that differ;
    /// exit 1 when anything differs.
    #[command(after_help = "Examples:\n  \
tascomi compare --table applications --date 2026-11-21 --against-date 2026-11-20\n  \
tascomi compare --date 2026-11-21 --against-prefix dataplatform-prod --ignore-columns import_datetime,import_timestamp\n  \
tascomi compare --local --data-dir data/a --against-data-dir data/b --json")]
    Compare {
        #[command(flatten)]
        compare: crate::compare::CompareArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// After a correction of the column-type dictionary: set the column types of a table's
    /// increment and snapshot tables to the dictionary's and rebuild them (a reset from the
    /// recast stage at its earliest parsed partition). Prints the plan; --yes carries it out.
    #[command(after_help = "Example:\n  \
tascomi retype --table appeals          # prints the columns that change and the plan\n  \
tascomi retype --table appeals --yes    # carries it out")]
    Retype {
        /// The table to retype.
        #[arg(long, value_name = "TABLE")]
        table: TableName,
        #[command(flatten)]
        rebuild: RebuildArgs,
    },
    /// Make the snapshot of a date the latest again, removing later ones.
    #[command(after_help = "Example:\n  \
tascomi rollback --table applications --to 2026-11-20         # prints the plan\n  \
tascomi rollback --table applications --to 2026-11-20 --yes   # carries it out")]
    Rollback {
        /// The table to roll back.
        #[arg(long, value_name = "TABLE")]
        table: TableName,
        /// The snapshot date that becomes the latest again, YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        to: NaiveDate,
        /// Carry the plan out (without it, only print it).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Send a stage's dead-letter messages back to its queue (after a fix). With --local they
    /// are handled at once; one that fails again is back in the dead-letter queue with its
    /// reason, and the command exits non-zero.
    #[command(after_help = "Examples:\n  \
tascomi redrive --stage parse\n  \
tascomi redrive --local --data-dir data/council --stage ingest --api-url https://council-planning.idoxcloud.com/rest/v1/")]
    Redrive {
        /// The stage whose dead-letter queue is sent back.
        #[arg(long, value_name = "STAGE", value_parser = stage_parser())]
        stage: Stage,
        #[command(flatten)]
        api: ApiArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// A short summary: tables fresh, stale (no snapshot of the as-of date)
    /// and failing, dead letters, and each problem with the command that fixes it; exit 1
    /// unless every table is fresh and no dead letter waits. --verbose adds every table and
    /// layer and the queues.
    #[command(after_help = "Examples:\n  \
tascomi status\n  \
tascomi status --local --data-dir data/demo --verbose\n  \
tascomi status --as-of 2026-11-21                  # judge the schedule as of that night")]
    Status {
        /// The night the schedule is judged as of (default: on AWS yesterday, or today once
        /// tonight's run has started; locally the newest import), YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        as_of: Option<NaiveDate>,
        /// Also print every table and layer (latest partition, age, rows) and the queues.
        #[arg(long, short)]
        verbose: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Write the morning report: one self-contained HTML page (no script, opens from a file or
    /// an S3 link) with, per table, the freshness of each layer, rows per night, the snapshot's
    /// rows, data-quality results and cast failures per column, stage run times and the dead
    /// letters; problems first. Reads the catalog, the data-quality reports and the queues,
    /// never the tables.
    #[command(after_help = "Examples:\n  \
tascomi report --local --data-dir data/demo        # then open tascomi-report.html\n  \
tascomi report --out /tmp/report.html --nights 30  # on the deployment, the last 30 nights")]
    Report {
        /// Where to write the page.
        #[arg(long, value_name = "FILE", default_value = "tascomi-report.html")]
        out: PathBuf,
        /// How many nights to show, ending on the as-of date.
        #[arg(
            long,
            value_name = "N",
            default_value_t = health::DEFAULT_NIGHTS,
            value_parser = clap::value_parser!(u32).range(1..=366)
        )]
        nights: u32,
        /// The night the schedule is judged as of (default: as for `status`), YYYY-MM-DD or
        /// YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        as_of: Option<NaiveDate>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Compare the parsed tables' columns with the column-type dictionary (exit 1 on drift).
    #[command(after_help = "Example:\n  \
tascomi drift --local --data-dir data/demo")]
    Drift {
        #[command(flatten)]
        target: TargetArgs,
    },
}

pub(super) fn parse_mode(text: &str) -> Result<IngestMode, String> {
    text.parse()
}

/// A date as `YYYY-MM-DD` or `YYYYMMDD`.
pub fn parse_date_arg(text: &str) -> Result<NaiveDate, String> {
    let trimmed = text.trim();
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let shaped = match trimmed.len() {
        8 => digits(trimmed),
        10 => trimmed.split('-').map(str::len).eq([4, 2, 2]) && digits(&trimmed.replace('-', "")),
        _ => false,
    };
    shaped
        .then(|| parse_date(trimmed))
        .flatten()
        .ok_or_else(|| format!("{text:?} is not a date: expected YYYY-MM-DD or YYYYMMDD"))
}

/// `--stage`: one of the stage names, listed in `--help` and in the error for another word.
pub(super) fn stage_parser() -> impl clap::builder::TypedValueParser<Value = Stage> {
    clap::builder::PossibleValuesParser::new(Stage::NAMES).try_map(|name| name.parse::<Stage>())
}
