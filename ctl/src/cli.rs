//! The command line: parse, pick the target, run the command, map the result to an exit code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use common::config::{Env, PipelineFile, TableConfig};
use common::dictionary::ColumnTypes;
use common::layout::{TableName, date_value, london_today};
use common::messages::{self, IngestMode, IngestRequest};

use crate::local::{LocalOptions, LocalPipeline};
use crate::ops;
use crate::stage::Stage;
use crate::target::{AwsTarget, Target};

#[derive(Debug, Parser)]
#[command(
    name = "tascomi",
    version,
    about = "Operate the Tascomi planning data pipeline"
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
    /// The local data directory.
    #[arg(long, default_value = "data/local")]
    pub data_dir: PathBuf,
    /// The pipeline file.
    #[arg(long, env = "TASCOMI_PIPELINE_FILE", default_value = "pipeline.yaml")]
    pub pipeline: PathBuf,
    /// The column-type dictionary (default: the pipeline file's `column_type_dictionary`).
    #[arg(long, env = "TASCOMI_COLUMN_TYPE_DICTIONARY")]
    pub dictionary: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole pipeline on the embedded default against a simulated Tascomi API, over a
    /// few simulated nights, and print what it published.
    Demo {
        #[arg(long, default_value = "data/demo")]
        data_dir: PathBuf,
        /// How many nights to simulate.
        #[arg(long, default_value_t = 3)]
        nights: u32,
    },
    /// One nightly run of every stage on the embedded default, against any Tascomi API (keys
    /// from TASCOMI_PUBLIC_KEY and TASCOMI_PRIVATE_KEY).
    Run {
        #[command(flatten)]
        target: TargetArgs,
        /// The API's base URL, e.g. https://council-planning.idoxcloud.com/rest/v1/
        #[arg(long, env = "TASCOMI_API_BASE_URL")]
        api_url: String,
        /// Tables to run (default: the pipeline file's tables due that day).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<TableName>,
        /// The London date the run takes as today (default: today).
        #[arg(long)]
        as_of: Option<NaiveDate>,
    },
    /// Send an ingest request to the deployment's ingest queue.
    Ingest {
        #[arg(long)]
        table: TableName,
        #[arg(long, default_value = "incremental", value_parser = parse_mode)]
        mode: IngestMode,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Re-run a stage (and everything downstream) on its input partitions dated FROM..=TO.
    Replay {
        #[arg(long)]
        stage: Stage,
        #[arg(long, required_unless_present = "all", conflicts_with = "all")]
        table: Option<TableName>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        from: NaiveDate,
        #[arg(long)]
        to: Option<NaiveDate>,
        /// Print the messages instead of sending them.
        #[arg(long)]
        dry_run: bool,
        /// The London date the replayed stages take as today (embedded default and backfills).
        #[arg(long)]
        as_of: Option<NaiveDate>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Remove a stage's partitions (and every later layer's) from FROM on, then replay.
    Reset {
        #[arg(long)]
        table: TableName,
        #[arg(long)]
        stage: Stage,
        #[arg(long)]
        from: NaiveDate,
        /// Carry the plan out (without it, only print it).
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        as_of: Option<NaiveDate>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Make the snapshot of a date the latest again, removing later ones.
    Rollback {
        #[arg(long)]
        table: TableName,
        #[arg(long)]
        to: NaiveDate,
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Send a stage's dead-letter messages back to its queue (after a fix).
    Redrive {
        #[arg(long)]
        stage: Stage,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Per table and layer the latest partition; per stage the queues.
    Status {
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Compare the parsed tables' columns with the column-type dictionary (exit 1 on drift).
    Drift {
        #[command(flatten)]
        target: TargetArgs,
    },
}

fn parse_mode(text: &str) -> Result<IngestMode, String> {
    text.parse()
}

/// Parses the process arguments and runs the command.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    init_logs(&env);
    match run(cli.command, &env).await {
        Ok(code) => code,
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

async fn target(args: &TargetArgs, env: &Env) -> anyhow::Result<Target> {
    let pipeline = load_pipeline(args)?;
    if args.local {
        let dictionary = load_dictionary(args, &pipeline)?;
        let local = LocalPipeline::build(LocalOptions {
            data_dir: args.data_dir.clone(),
            pipeline,
            dictionary,
            api: None,
        })
        .await?;
        Ok(Target::Local(Box::new(local)))
    } else {
        Ok(Target::Aws(Box::new(
            AwsTarget::from_env(env, pipeline).await?,
        )))
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
            target: args,
        } => {
            if args.local {
                bail!(
                    "`ingest` sends to the deployment's queue; on the embedded default use `tascomi run --local --tables {table}`"
                );
            }
            let target = target(&args, env).await?;
            let request = IngestRequest {
                table: table.clone(),
                mode,
                requested_by: format!("operator:{}", env.get("USER").unwrap_or("unknown")),
                as_of: None,
            };
            target
                .send(Stage::Ingest, &messages::encode(&request))
                .await?;
            println!("sent an ingest request for {table} ({mode:?})");
            Ok(ExitCode::SUCCESS)
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
            for message in &replay {
                println!("{}", messages::encode(message));
            }
            if dry_run {
                println!("dry run: {} message(s) not sent", replay.len());
            } else {
                ops::send_all(&target, stage, &replay).await?;
                println!("sent {} message(s) to {stage}", replay.len());
            }
            Ok(ExitCode::SUCCESS)
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
            confirm_and_execute(&target, &plan, yes).await
        }
        Command::Rollback {
            table,
            to,
            yes,
            target: args,
        } => {
            let target = target(&args, env).await?;
            let plan = ops::plan_rollback(&target, &table, to).await?;
            confirm_and_execute(&target, &plan, yes).await
        }
        Command::Redrive {
            stage,
            target: args,
        } => {
            let target = target(&args, env).await?;
            let moved = target.redrive(stage).await?;
            for letter in &moved {
                println!(
                    "redriven: {} (failed: {})",
                    letter.table().unwrap_or_else(|| "?".into()),
                    letter.reason()
                );
            }
            target.settle().await?;
            println!("{} message(s) sent back to {stage}", moved.len());
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { target: args } => {
            let target = target(&args, env).await?;
            print!("{}", status_report(&target, london_today()).await?);
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

#[allow(clippy::print_stdout)]
async fn confirm_and_execute(
    target: &Target,
    plan: &ops::Plan,
    yes: bool,
) -> anyhow::Result<ExitCode> {
    print!("{}", plan.describe());
    if !yes {
        println!("nothing changed: run again with --yes to carry out this plan");
        return Ok(ExitCode::SUCCESS);
    }
    plan.execute(target).await?;
    println!("done");
    Ok(ExitCode::SUCCESS)
}

/// `status` as text.
pub async fn status_report(target: &Target, today: NaiveDate) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:<10} {:>10} {:>6} {:>10} {:>5}",
        "table", "layer", "latest", "age", "rows", "parts"
    );
    for s in ops::status(target, today).await? {
        let _ = writeln!(
            out,
            "{:<28} {:<10} {:>10} {:>6} {:>10} {:>5}{}",
            s.table.as_str(),
            s.layer.name(),
            s.latest.map_or("-".into(), date_value),
            s.age_days.map_or("-".into(), |d| format!("{d}d")),
            s.rows.map_or("-".into(), |r| r.to_string()),
            s.partitions,
            if s.stale && s.layer == common::Layer::Snapshot {
                "  STALE"
            } else {
                ""
            }
        );
    }
    let _ = writeln!(
        out,
        "\n{:<10} {:>8} {:>9} {:>12}",
        "queue", "waiting", "in flight", "dead letters"
    );
    for (stage, depth, dead) in target.queue_depths().await? {
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>9} {:>12}",
            stage.name(),
            depth.visible,
            depth.in_flight,
            dead.map_or("?".into(), |d| d.to_string())
        );
    }
    Ok(out)
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
    for table in named {
        if !pipeline.contains(table) {
            pipeline
                .tables
                .push(TableConfig::with_defaults(table.clone()));
        }
    }
    named.to_vec()
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
    let credentials = ingest_svc::Credentials::new(
        env.secret("TASCOMI_PUBLIC_KEY")
            .context("TASCOMI_PUBLIC_KEY is required")?,
        env.secret("TASCOMI_PRIVATE_KEY")
            .context("TASCOMI_PRIVATE_KEY is required")?,
    );
    let mut pipeline = load_pipeline(args)?;
    let dictionary = load_dictionary(args, &pipeline)?;
    let today = as_of.unwrap_or_else(london_today);
    let tables = tables_for_night(&mut pipeline, named, today);
    let local = LocalPipeline::build(LocalOptions {
        data_dir: args.data_dir.clone(),
        pipeline,
        dictionary,
        api: Some((api_url.to_owned(), credentials)),
    })
    .await?;
    let failures =
        crate::demo::run_night(&local, &tables, as_of, std::io::stderr().is_terminal()).await?;
    for (table, reason) in &failures {
        println!("FAILED {table}: {reason}");
    }
    println!(
        "{} table(s) run for {}, {} failed",
        tables.len(),
        date_value(today),
        failures.len()
    );
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
