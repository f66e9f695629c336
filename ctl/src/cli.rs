//! The command line: parse, pick the target, run the command, map the result to an exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use common::config::{Env, PipelineFile, TableConfig};
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName, date_value, london_today, parse_date};
use common::messages::{self, IngestMode, IngestRequest, Message, PartitionReady};
use common::queue::Queue;

use crate::local::{DeadLetter, LocalApi, LocalOptions, LocalPipeline};
use crate::stage::Stage;
use crate::target::{AwsTarget, Target};
use crate::verdict::{self, Expectation, ImportCheck, Repair, Verdicts};
use crate::{health, ops};
use clap::builder::TypedValueParser as _;

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
    /// The column-type dictionary (default: the pipeline file's `column_type_dictionary`).
    #[arg(long, value_name = "FILE", env = "TASCOMI_COLUMN_TYPE_DICTIONARY")]
    pub dictionary: Option<PathBuf>,
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
        /// Carry the plan out (without it, only print it).
        #[arg(long)]
        yes: bool,
        /// As for `replay` (default: each partition's own date), YYYY-MM-DD or YYYYMMDD.
        #[arg(long, value_name = "DATE", value_parser = parse_date_arg)]
        as_of: Option<NaiveDate>,
        #[command(flatten)]
        target: TargetArgs,
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
    /// A short summary: tables fresh, stale (not what the schedule promised by the as-of date)
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

fn parse_mode(text: &str) -> Result<IngestMode, String> {
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

/// Parses the process arguments and runs the command.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    init_logs(&env);
    crate::interrupt::install();
    match run(cli.command, &env).await {
        Ok(code) => code,
        Err(err)
            if err
                .downcast_ref::<crate::interrupt::Interrupted>()
                .is_some() =>
        {
            eprintln!("{err:#}");
            ExitCode::from(crate::interrupt::EXIT_CODE)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(env: &Env) {
    let filter = tracing_subscriber::EnvFilter::try_new(env.get("RUST_LOG").unwrap_or("warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

fn load_pipeline(args: &TargetArgs) -> anyhow::Result<PipelineFile> {
    Ok(PipelineFile::load(&args.pipeline)?)
}

fn load_dictionary(args: &TargetArgs, pipeline: &PipelineFile) -> anyhow::Result<ColumnTypes> {
    match args
        .dictionary
        .as_ref()
        .or(pipeline.column_type_dictionary.as_ref())
    {
        Some(path) => Ok(ColumnTypes::load(path)?),
        None => Ok(ColumnTypes::default()),
    }
}

/// The target of a command that reads what runs left: on the embedded default, a data
/// directory that must exist (a mistyped path is an error, never an empty pipeline).
async fn target(args: &TargetArgs, env: &Env) -> anyhow::Result<Target> {
    if args.local {
        existing_data_dir(args)?;
        let local = build_local(args, env, None, &[]).await?;
        Ok(Target::Local(Box::new(local)))
    } else {
        let pipeline = load_pipeline(args)?;
        Ok(Target::Aws(Box::new(
            AwsTarget::from_env(env, pipeline).await?,
        )))
    }
}

/// Refuses a data directory that does not exist, for the commands that only read one.
fn existing_data_dir(args: &TargetArgs) -> anyhow::Result<()> {
    let dir = &args.data_dir;
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        bail!("--data-dir {} is not a directory", dir.display());
    }
    bail!(
        "--data-dir {} does not exist: check the path (a local data directory is made by `tascomi run --local --data-dir DIR` or `tascomi demo --data-dir DIR`)",
        dir.display()
    )
}

/// The embedded default on `args.data_dir`; with `api_url`, its ingest stage talks to that API
/// (keys and client settings from the environment). `tables` the pipeline file does not name
/// run with the defaults.
async fn build_local(
    args: &TargetArgs,
    env: &Env,
    api_url: Option<&str>,
    tables: &[TableName],
) -> anyhow::Result<LocalPipeline> {
    let mut pipeline = load_pipeline(args)?;
    let dictionary = load_dictionary(args, &pipeline)?;
    add_unlisted(&mut pipeline, tables);
    let api = match api_url {
        Some(url) => Some(local_api(env, url, &pipeline)?),
        None => None,
    };
    LocalPipeline::build(LocalOptions {
        data_dir: args.data_dir.clone(),
        pipeline,
        dictionary,
        api,
    })
    .await
}

/// The API settings ingest-svc would read (`TASCOMI_API_*`, `TASCOMI_MAX_LOOKBACK_DAYS`), with
/// `url` as the base URL, and the keys.
fn local_api(env: &Env, url: &str, pipeline: &PipelineFile) -> anyhow::Result<LocalApi> {
    let credentials = ingest_svc::Credentials::new(
        env.secret("TASCOMI_PUBLIC_KEY")
            .context("TASCOMI_PUBLIC_KEY is required to call the Tascomi API")?,
        env.secret("TASCOMI_PRIVATE_KEY")
            .context("TASCOMI_PRIVATE_KEY is required to call the Tascomi API")?,
    );
    let mut env = env.clone();
    env.set("TASCOMI_API_BASE_URL", url);
    let settings = ingest_svc::IngestSettings::from_env(&env, pipeline)?;
    Ok(LocalApi {
        settings,
        credentials,
    })
}

/// The flags that make a suggested command act where this one did: none on AWS.
fn target_repair(args: &TargetArgs) -> Repair {
    if args.local {
        repair_flags(args, None)
    } else {
        Repair::default()
    }
}

/// The flags that make a suggested command act where this one did (no secrets: keys stay in
/// the environment).
fn repair_flags(args: &TargetArgs, api_url: Option<&str>) -> Repair {
    let mut flags = format!(
        "--local --data-dir {} --pipeline {}",
        args.data_dir.display(),
        args.pipeline.display()
    );
    if let Some(url) = api_url {
        flags.push_str(&format!(" --api-url {url}"));
    }
    Repair {
        target_flags: flags,
    }
}

fn progress() -> bool {
    std::io::stderr().is_terminal()
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[allow(clippy::print_stdout)]
async fn run(command: Command, env: &Env) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo { data_dir, nights } => crate::demo::demo(&data_dir, nights).await,
        Command::Run {
            target,
            api_url,
            tables,
            as_of,
        } => run_local_night(&target, env, &api_url, &tables, as_of).await,
        Command::Ingest {
            table,
            mode,
            since,
            as_of,
            api,
            target: args,
        } => {
            ingest(
                env,
                &args,
                api.api_url.as_deref(),
                table,
                mode,
                since,
                as_of,
            )
            .await
        }
        Command::Replay {
            stage,
            table,
            all: _,
            from,
            to,
            dry_run,
            as_of,
            target: args,
        } => {
            let target = target(&args, env).await?;
            let tables = ops::tables(&target, table.as_ref());
            let replay = ops::replay_messages(&target, stage, &tables, from, to, as_of).await?;
            if replay.is_empty() {
                bail!(
                    "nothing to replay: no {} partition of {} dated {}{} (see `tascomi status`)",
                    stage.layer().upstream().map_or("input", |l| l.name()),
                    tables
                        .iter()
                        .map(TableName::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                    date_value(from),
                    to.map_or(" or later".into(), |to| format!(" to {}", date_value(to)))
                );
            }
            for message in &replay {
                println!("{}", messages::encode(message));
            }
            print!(
                "{}",
                ops::describe_snapshot_dates(&ops::snapshot_dates(&replay))
            );
            if dry_run {
                println!("dry run: {} message(s) not sent", replay.len());
                return Ok(ExitCode::SUCCESS);
            }
            match &target {
                Target::Local(local) => {
                    let mark = local.mark();
                    ops::send_all(&target, stage, &replay).await?;
                    println!("sent {} message(s) to {stage}", replay.len());
                    let verdicts = verdict::judge(
                        local,
                        &replayed(replay.iter()),
                        &mark,
                        &repair_flags(&args, None),
                    )
                    .await?;
                    Ok(report(&verdicts, "snapshot(s) replayed"))
                }
                Target::Aws(_) => {
                    ops::send_all(&target, stage, &replay).await?;
                    println!(
                        "sent {} message(s) to {stage}: the services write the snapshots above; `tascomi status` shows them, and the dead-letter queues any failure",
                        replay.len()
                    );
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Reset {
            table,
            stage,
            from,
            yes,
            as_of,
            target: args,
        } => {
            let target = target(&args, env).await?;
            let plan = ops::plan_reset(&target, &table, stage, from, as_of).await?;
            confirm_and_execute(&target, &plan, yes, &repair_flags(&args, None)).await
        }
        Command::Rollback {
            table,
            to,
            yes,
            target: args,
        } => {
            let target = target(&args, env).await?;
            let plan = ops::plan_rollback(&target, &table, to).await?;
            confirm_and_execute(&target, &plan, yes, &Repair::default()).await
        }
        Command::Redrive {
            stage,
            api,
            target: args,
        } => redrive(env, &args, api.api_url.as_deref(), stage).await,
        Command::Status {
            as_of,
            verbose,
            target: args,
        } => {
            let target = target(&args, env).await?;
            let options = health::Options {
                as_of,
                repair: target_repair(&args),
                ..health::Options::default()
            };
            let health = health::collect(&target, &options).await?;
            print!("{}", status_text(&health, verbose));
            Ok(exit_code(health.all_fresh()))
        }
        Command::Report {
            out,
            nights,
            as_of,
            target: args,
        } => {
            let target = target(&args, env).await?;
            write_report(&target, &out, nights, as_of, &target_repair(&args)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Drift { target: args } => {
            let target = target(&args, env).await?;
            let dictionary = load_dictionary(&args, target.pipeline())?;
            let drifts = ops::drift(&target, &dictionary).await?;
            let mut any = false;
            for d in drifts.iter().filter(|d| !d.is_empty()) {
                any = true;
                if d.missing_from_dictionary {
                    println!(
                        "{}: not in the column-type dictionary (every column stays text)",
                        d.table
                    );
                }
                if !d.new_columns.is_empty() {
                    println!(
                        "{}: new columns arriving as text: {}",
                        d.table,
                        d.new_columns.join(", ")
                    );
                }
                if !d.missing_columns.is_empty() {
                    println!(
                        "{}: dictionary columns missing from the data: {}",
                        d.table,
                        d.missing_columns.join(", ")
                    );
                }
            }
            if any {
                Ok(ExitCode::FAILURE)
            } else {
                println!("no drift: {} tables match the dictionary", drifts.len());
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// What replaying `messages` must produce: each table's snapshot under the message's date.
fn replayed<'a>(messages: impl IntoIterator<Item = &'a PartitionReady>) -> Vec<Expectation> {
    messages
        .into_iter()
        .map(|m| Expectation {
            table: m.table.clone(),
            snapshot: m.as_of.unwrap_or_else(|| m.date()),
            import: ImportCheck::None,
        })
        .collect()
}

/// Prints the verdicts and a total line, `<count> <what>, <failed> failed`; the exit code says
/// whether all is well.
#[allow(clippy::print_stdout)]
fn report(verdicts: &Verdicts, what: &str) -> ExitCode {
    print!("{}", verdicts.describe());
    let failed = verdicts.failed_tables() + verdicts.other_letters.len();
    println!("{} {what}, {failed} failed", verdicts.tables.len());
    interrupted_or(exit_code(verdicts.ok()), verdicts)
}

/// After Ctrl-C stopped the stages: says what finished and what the next run repeats, and
/// exits with the interrupted code; otherwise `code`.
#[allow(clippy::print_stdout)]
fn interrupted_or(code: ExitCode, verdicts: &Verdicts) -> ExitCode {
    if !crate::interrupt::requested() {
        return code;
    }
    let finished = verdicts.tables.len() - verdicts.failed_tables();
    println!(
        "interrupted (Ctrl-C) at a safe point: {finished} table(s) finished (`ok` above), {} not; \
         every message not handled is in its stage's dead-letter queue, and the `tascomi redrive` \
         commands above repeat exactly those (and every later stage), nothing else",
        verdicts.failed_tables()
    );
    ExitCode::from(crate::interrupt::EXIT_CODE)
}

/// `tascomi ingest`: on AWS, sends the request; with --local, runs it here and judges it.
#[allow(clippy::print_stdout)]
async fn ingest(
    env: &Env,
    args: &TargetArgs,
    api_url: Option<&str>,
    table: TableName,
    mode: IngestMode,
    since: Option<NaiveDate>,
    as_of: Option<NaiveDate>,
) -> anyhow::Result<ExitCode> {
    let today = as_of.unwrap_or_else(london_today);
    if let Some(since) = since
        && since >= today
    {
        bail!(
            "--since {since} must be before the run's date {today}: an ingest fetches the days before its date"
        );
    }
    let request = IngestRequest {
        table: table.clone(),
        mode,
        requested_by: format!("operator:{}", env.get("USER").unwrap_or("unknown")),
        // Locally the run's date is fixed here, so the verdict checks the snapshot it writes.
        as_of: if args.local { Some(today) } else { as_of },
        since,
    };
    request
        .validate()
        .map_err(|reason| anyhow::anyhow!("not a valid ingest request: {reason}"))?;
    let describe = format!(
        "{table} ({}{}{})",
        mode_name(mode),
        since.map_or(String::new(), |d| format!(", every day since {d}")),
        as_of.map_or(String::new(), |d| format!(", as of {d}"))
    );
    if !args.local {
        let target = target(args, env).await?;
        target
            .send(Stage::Ingest, &messages::encode(&request))
            .await?;
        println!("sent an ingest request for {describe}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(api_url) = api_url else {
        bail!(
            "`ingest --local` runs the ingest stage here: pass --api-url (or TASCOMI_API_BASE_URL) and the keys"
        );
    };
    let local = build_local(args, env, Some(api_url), std::slice::from_ref(&table)).await?;
    let mark = local.mark();
    local
        .queue(Stage::Ingest)
        .send(
            &messages::encode(&request),
            &std::collections::BTreeMap::new(),
        )
        .await?;
    println!("running an ingest for {describe}");
    local.settle(progress()).await?;
    let expected = [Expectation {
        table,
        snapshot: today,
        import: if mode == IngestMode::RetryFailed {
            ImportCheck::Latest
        } else {
            ImportCheck::On(today)
        },
    }];
    let verdicts =
        verdict::judge(&local, &expected, &mark, &repair_flags(args, Some(api_url))).await?;
    Ok(report(
        &verdicts,
        &format!("table(s) ingested for {}", date_value(today)),
    ))
}

fn mode_name(mode: IngestMode) -> &'static str {
    match mode {
        IngestMode::Incremental => "incremental",
        IngestMode::Full => "full",
        IngestMode::RetryFailed => "retry-failed",
    }
}

/// `tascomi redrive`. With --local the messages are handled here and judged; on AWS they are
/// moved back to the stage's queue for its service.
#[allow(clippy::print_stdout)]
async fn redrive(
    env: &Env,
    args: &TargetArgs,
    api_url: Option<&str>,
    stage: Stage,
) -> anyhow::Result<ExitCode> {
    if !args.local {
        let target = target(args, env).await?;
        let moved = target.redrive(stage).await?;
        print_redriven(&moved);
        println!(
            "{} message(s) sent back to {stage}: the {stage} service handles them; one that fails again returns to the dead-letter queue with its reason (`tascomi status` counts them)",
            moved.len()
        );
        if crate::interrupt::requested() {
            return Err(crate::interrupt::Interrupted(format!(
                "{} message(s) were sent back; the others are still in the {stage} dead-letter queue: run the same command again to send them",
                moved.len()
            ))
            .into());
        }
        if let Some((_, _, Some(left))) = target
            .queue_depths()
            .await?
            .into_iter()
            .find(|(s, _, _)| *s == stage)
            && left > 0
        {
            println!(
                "{left} message(s) still in the {stage} dead-letter queue (failed again already, or repeats of a message sent back): run redrive again after the fix"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if stage == Stage::Ingest && api_url.is_none() {
        bail!(
            "redriving ingest on the embedded default runs the ingest stage: pass --api-url (or TASCOMI_API_BASE_URL) and the keys; the dead letters are left as they are"
        );
    }
    existing_data_dir(args)?;
    // Tables a run named beyond the pipeline file (`run --tables`) ran with the defaults; their
    // redriven messages do too, rather than fail again as unknown tables.
    let named: Vec<TableName> = build_local(args, env, None, &[])
        .await?
        .dead_letters(stage)
        .iter()
        .filter_map(|letter| TableName::new(letter.table()?).ok())
        .collect();
    let target = Target::Local(Box::new(build_local(args, env, api_url, &named).await?));
    let moved = target.redrive(stage).await?;
    let Some(local) = target.local() else {
        bail!("redrive --local: the target is not the embedded default")
    };
    print_redriven(&moved);
    // After the move: the letters from here on are those that failed again.
    let mark = local.mark();
    local.settle(progress()).await?;
    let today = london_today();
    let expected: Vec<Expectation> = moved
        .iter()
        .filter_map(|letter| redriven_expectation(stage, letter, today))
        .collect();
    let verdicts = verdict::judge(local, &expected, &mark, &repair_flags(args, api_url)).await?;
    print!("{}", verdicts.describe());
    let again = local.dead_letters_since(&mark).len();
    println!(
        "{} message(s) sent back to {stage} and handled: {again} failed again and are back in a dead-letter queue with the reason",
        moved.len()
    );
    Ok(interrupted_or(exit_code(verdicts.ok()), &verdicts))
}

#[allow(clippy::print_stdout)]
fn print_redriven(moved: &[DeadLetter]) {
    for letter in moved {
        println!(
            "redriven: {} (failed: {})",
            letter.table().unwrap_or_else(|| "?".into()),
            letter.reason()
        );
    }
}

/// What handling a redriven message must produce: the snapshot of its date. `None` for a body
/// that does not decode (it fails again, and is reported as a dead letter).
fn redriven_expectation(
    stage: Stage,
    letter: &DeadLetter,
    today: NaiveDate,
) -> Option<Expectation> {
    if stage == Stage::Ingest {
        let request: IngestRequest = messages::decode(&letter.body, |_| true).ok()?;
        let snapshot = request.as_of.unwrap_or(today);
        Some(Expectation {
            table: request.table,
            snapshot,
            import: if request.mode == IngestMode::RetryFailed {
                ImportCheck::Latest
            } else {
                ImportCheck::On(snapshot)
            },
        })
    } else {
        let ready: PartitionReady = messages::decode(&letter.body, |_| true).ok()?;
        Some(Expectation {
            table: ready.table,
            snapshot: ready.as_of.unwrap_or(today),
            import: ImportCheck::None,
        })
    }
}

#[allow(clippy::print_stdout)]
async fn confirm_and_execute(
    target: &Target,
    plan: &ops::Plan,
    yes: bool,
    repair: &Repair,
) -> anyhow::Result<ExitCode> {
    print!("{}", plan.describe());
    if !yes {
        println!("nothing changed: run again with --yes to carry out this plan");
        return Ok(ExitCode::SUCCESS);
    }
    match target {
        Target::Local(local) => {
            let mark = local.mark();
            plan.execute(target).await?;
            let verdicts = verdict::judge(
                local,
                &replayed(plan.replay.iter().map(|(_, m)| m)),
                &mark,
                repair,
            )
            .await?;
            Ok(report(&verdicts, "snapshot(s) rebuilt"))
        }
        Target::Aws(_) => {
            plan.execute(target).await?;
            if plan.replay.is_empty() {
                println!("done");
            } else {
                println!(
                    "done: {} message(s) sent; the services write the snapshots above (`tascomi status` shows them)",
                    plan.replay.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `status --verbose` as of a date, as text.
pub async fn status_report(target: &Target, as_of: NaiveDate) -> anyhow::Result<String> {
    let options = health::Options {
        as_of: Some(as_of),
        ..health::Options::default()
    };
    Ok(status_text(&health::collect(target, &options).await?, true))
}

/// `status`: the summary, then one line per finding (worst first) with its repair; with
/// `verbose`, every table and layer and the queues.
pub fn status_text(health: &health::Health, verbose: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "as of {} ({})", health.as_of, health.as_of_reason);
    let _ = writeln!(out, "{}", health.summary_line());
    let mut findings: Vec<(&TableName, &health::Finding)> = health
        .tables
        .iter()
        .flat_map(|t| t.findings.iter().map(move |f| (&t.table, f)))
        .collect();
    findings.sort_by_key(|(_, f)| std::cmp::Reverse(f.severity));
    for (table, finding) in &findings {
        let _ = writeln!(
            out,
            "{:<8}{table}: {}\n        repair: {}",
            finding.label, finding.what, finding.fix
        );
    }
    for letter in &health.other_letters {
        let _ = writeln!(
            out,
            "FAILED  {} dead letter ({}): {}",
            letter.stage,
            letter
                .table
                .as_deref()
                .unwrap_or("a message naming no table"),
            letter.reason
        );
    }
    if !verbose {
        if !findings.is_empty() || health.dead_letters() > 0 {
            out.push_str(
                "(--verbose for every table and layer and the queues; `tascomi report` draws the last nights)\n",
            );
        }
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:<28} {:<10} {:>10} {:>6} {:>10} {:>5}  state",
        "table", "layer", "latest", "age", "rows", "parts"
    );
    for t in &health.tables {
        for layer in Layer::ALL {
            let published = t.partitions(layer);
            let latest = published.last();
            let state = if layer == Layer::Snapshot {
                match t.condition() {
                    health::Condition::Fresh => "fresh",
                    health::Condition::Stale => "STALE",
                    health::Condition::Failing => "FAILING",
                }
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{:<28} {:<10} {:>10} {:>6} {:>10} {:>5}  {state}",
                t.table.as_str(),
                layer.name(),
                latest.map_or("-".into(), |p| date_value(p.date)),
                latest.map_or("-".into(), |p| format!(
                    "{}d",
                    (health.as_of - p.date).num_days()
                )),
                latest
                    .and_then(|p| p.rows)
                    .map_or("-".into(), |r| r.to_string()),
                published.len(),
            );
        }
    }
    let _ = writeln!(
        out,
        "\n{:<10} {:>8} {:>9} {:>12}",
        "queue", "waiting", "in flight", "dead letters"
    );
    for q in &health.queues {
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>9} {:>12}",
            q.stage.name(),
            q.depth.visible,
            q.depth.in_flight,
            q.dead_letters.map_or("?".into(), |d| d.to_string())
        );
    }
    out
}

/// `tascomi report`: collects and writes the page (aside, then renamed: a reader never sees
/// half a page), and prints where, how large, and the summary line.
#[allow(clippy::print_stdout)]
pub async fn write_report(
    target: &Target,
    out: &std::path::Path,
    nights: u32,
    as_of: Option<NaiveDate>,
    repair: &Repair,
) -> anyhow::Result<health::Health> {
    let started = std::time::Instant::now();
    let options = health::Options {
        as_of,
        nights,
        quality: true,
        letters: true,
        repair: repair.clone(),
    };
    let health = health::collect(target, &options).await?;
    let page = crate::report::render(&health);
    let partial = out.with_extension("html.partial");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&partial, &page).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, out).with_context(|| format!("replacing {}", out.display()))?;
    println!(
        "wrote {} ({} kB, in {:.1} s): as of {}, {}",
        out.display(),
        page.len().div_ceil(1024),
        started.elapsed().as_secs_f64(),
        health.as_of,
        health.summary_line()
    );
    Ok(health)
}

/// The tables a night runs: the named ones (tables the pipeline file does not name run with
/// the defaults), else the file's daily tables and, on Sundays, its weekly ones.
pub fn tables_for_night(
    pipeline: &mut PipelineFile,
    named: &[TableName],
    today: NaiveDate,
) -> Vec<TableName> {
    use chrono::Datelike;
    if named.is_empty() {
        let sunday = today.weekday() == chrono::Weekday::Sun;
        return pipeline
            .tables
            .iter()
            .filter(|t| sunday || t.schedule == common::config::Schedule::Daily)
            .map(|t| t.name.clone())
            .collect();
    }
    add_unlisted(pipeline, named);
    named.to_vec()
}

/// Adds the tables the pipeline file does not name, with the defaults.
fn add_unlisted(pipeline: &mut PipelineFile, tables: &[TableName]) {
    for table in tables {
        if !pipeline.contains(table) {
            pipeline
                .tables
                .push(TableConfig::with_defaults(table.clone()));
        }
    }
}

#[allow(clippy::print_stdout)]
async fn run_local_night(
    args: &TargetArgs,
    env: &Env,
    api_url: &str,
    named: &[TableName],
    as_of: Option<NaiveDate>,
) -> anyhow::Result<ExitCode> {
    if !args.local {
        bail!(
            "`run` runs on the embedded default: pass --local (on AWS the schedule runs the night)"
        );
    }
    let today = as_of.unwrap_or_else(london_today);
    let mut pipeline = load_pipeline(args)?;
    let tables = tables_for_night(&mut pipeline, named, today);
    let local = build_local(args, env, Some(api_url), &tables).await?;
    let repair = repair_flags(args, Some(api_url));
    let verdicts = crate::demo::run_night(&local, &tables, today, progress(), &repair).await?;
    Ok(report(
        &verdicts,
        &format!("table(s) run for {}", date_value(today)),
    ))
}

/// `--stage`: one of the stage names, listed in `--help` and in the error for another word.
fn stage_parser() -> impl clap::builder::TypedValueParser<Value = Stage> {
    clap::builder::PossibleValuesParser::new(Stage::NAMES).try_map(|name| name.parse::<Stage>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_in_both_formats() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        assert_eq!(parse_date_arg("2026-11-21"), Ok(day));
        assert_eq!(parse_date_arg("20261121"), Ok(day));
        for bad in [
            "2026-13-01",
            "21/11/2026",
            "",
            "2026112",
            "2026-1-012",
            "+2026-11-21",
        ] {
            let err = parse_date_arg(bad).unwrap_err();
            assert!(err.contains("YYYY-MM-DD or YYYYMMDD"), "{bad}: {err}");
        }
    }

    /// Every option of every command says what it is for, and every command has an example.
    #[test]
    fn every_option_has_a_description_and_every_command_an_example() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let mut missing = Vec::new();
        for command in cli.get_subcommands() {
            let name = command.get_name();
            let example = command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !example.contains("Example") || !example.contains(&format!("tascomi {name}")) {
                missing.push(format!("{name}: no example running it"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if help.trim().is_empty() {
                    missing.push(format!("{name} --{id}: no description"));
                }
                let dated = arg
                    .get_value_names()
                    .is_some_and(|names| names.iter().any(|n| n.as_str() == "DATE"));
                if dated && !help.contains("YYYY-MM-DD or YYYYMMDD") {
                    missing.push(format!("{name} --{id}: the date format is not named"));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn ingest_takes_since_and_as_of() {
        let cli = Cli::try_parse_from([
            "tascomi",
            "ingest",
            "--table",
            "appeals",
            "--since",
            "20261101",
            "--as-of",
            "2026-11-10",
        ])
        .unwrap();
        let Command::Ingest { since, as_of, .. } = cli.command else {
            panic!("not an ingest: {:?}", cli.command)
        };
        assert_eq!(since, NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(as_of, NaiveDate::from_ymd_opt(2026, 11, 10));
    }
}
