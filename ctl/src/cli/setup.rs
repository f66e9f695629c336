//! From the command's options to what it acts on: the pipeline file, the dictionary, the
//! target (AWS or the embedded default), and the flags a suggested repair repeats.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use common::config::{DictionarySource, Env, PipelineFile, TableConfig};
use common::dictionary::ColumnTypes;
use common::layout::TableName;

use super::TargetArgs;
use crate::local::{LocalApi, LocalOptions, LocalPipeline};
use crate::target::{AwsTarget, Target};
use crate::verdict::Repair;

pub(super) fn load_pipeline(args: &TargetArgs) -> anyhow::Result<PipelineFile> {
    Ok(PipelineFile::load(&args.pipeline)?)
}

/// `--dictionary` (or `TASCOMI_COLUMN_TYPE_DICTIONARY`: a path or `s3://bucket/key`), else the
/// pipeline file's `column_type_dictionary`, else none (every column stays text).
pub(super) async fn load_dictionary(
    args: &TargetArgs,
    pipeline: &PipelineFile,
) -> anyhow::Result<ColumnTypes> {
    let variable = args
        .dictionary
        .as_deref()
        .map(|path| path.to_string_lossy());
    match DictionarySource::resolve(variable.as_deref(), pipeline)? {
        Some(source) => source.load(None).await,
        None => Ok(ColumnTypes::default()),
    }
}

/// The target of a command that reads what runs left: on the embedded default, a data
/// directory that must exist (a mistyped path is an error, never an empty pipeline).
pub(super) async fn target(args: &TargetArgs, env: &Env) -> anyhow::Result<Target> {
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
pub(super) fn existing_data_dir(args: &TargetArgs) -> anyhow::Result<()> {
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
pub(super) async fn build_local(
    args: &TargetArgs,
    env: &Env,
    api_url: Option<&str>,
    tables: &[TableName],
) -> anyhow::Result<LocalPipeline> {
    let mut pipeline = load_pipeline(args)?;
    let dictionary = load_dictionary(args, &pipeline).await?;
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
pub(super) fn local_api(env: &Env, url: &str, pipeline: &PipelineFile) -> anyhow::Result<LocalApi> {
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
pub(super) fn target_repair(args: &TargetArgs) -> Repair {
    if args.local {
        repair_flags(args, None)
    } else {
        Repair::default()
    }
}

/// The flags that make a suggested command act where this one did (no secrets: keys stay in
/// the environment).
pub(super) fn repair_flags(args: &TargetArgs, api_url: Option<&str>) -> Repair {
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

pub(super) fn progress() -> bool {
    std::io::stderr().is_terminal()
}

pub(super) fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The tables a night fetches, and those it carries forward (today's snapshot from the latest:
/// every table has a snapshot every day). Named tables are fetched (those the pipeline file does
/// not name run with the defaults); else the file's daily tables are, and its weekly ones on
/// Sundays, carried forward on the other days.
pub fn tables_for_night(
    pipeline: &mut PipelineFile,
    named: &[TableName],
    today: NaiveDate,
) -> (Vec<TableName>, Vec<TableName>) {
    use chrono::Datelike;
    if named.is_empty() {
        let sunday = today.weekday() == chrono::Weekday::Sun;
        let (fetched, carried): (Vec<_>, Vec<_>) = pipeline
            .tables
            .iter()
            .partition(|t| sunday || t.schedule == common::config::Schedule::Daily);
        let names = |tables: Vec<&TableConfig>| tables.iter().map(|t| t.name.clone()).collect();
        return (names(fetched), names(carried));
    }
    add_unlisted(pipeline, named);
    (named.to_vec(), Vec::new())
}

/// Adds the tables the pipeline file does not name, with the defaults.
pub(super) fn add_unlisted(pipeline: &mut PipelineFile, tables: &[TableName]) {
    for table in tables {
        if !pipeline.contains(table) {
            pipeline
                .tables
                .push(TableConfig::with_defaults(table.clone()));
        }
    }
}
