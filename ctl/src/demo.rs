//! `tascomi demo`: the simulated Tascomi API in this process, the whole pipeline on the embedded
//! default over a few simulated nights, and a summary of what was published.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName, date_value};
use common::messages::{self, IngestMode, IngestRequest, PartitionReady};
use common::queue::Queue;
use tascomi_sim::{SimApi, SimConfig};

use crate::local::{LocalApi, LocalOptions, LocalPipeline};
use crate::ops;
use crate::stage::Stage;
use crate::target::Target;
use crate::verdict::{self, Expectation, ImportCheck, Repair, Verdicts};

/// The demo's tables: the wide one, a few daily ones, a weekly lookup table.
const DEMO_TABLES: &str = "\
tables:
  applications: { schedule: daily, completeness_column: application_reference_number }
  appeals: daily
  contacts: daily
  enforcements: daily
  wards: weekly
";

/// The demo's column-type dictionary: a few columns of each type for its tables, in the
/// production dictionary's format (the simulated API serves every column it names).
const DEMO_DICTIONARY: &str = include_str!("../demo/column-type-dictionary.json");

/// The demo's dictionary, written beside its pipeline file.
const DICTIONARY_FILE: &str = "column-type-dictionary.json";

/// A marker that says a folder was made by the demo and may be wiped by the next one.
const MARKER: &str = ".tascomi-demo";

/// Sends one night's ingest requests (dated `today`) for `tables`, and a carry-forward request
/// for each of `carried` (a weekly table on another day: today's snapshot from its latest, as
/// the schedule sends on AWS), and runs every stage to the end. Returns each table's verdict:
/// whether its snapshot of `today` is published, and if not (or if pages failed, or a message
/// was dead-lettered) why. See [`crate::verdict`].
pub async fn run_night(
    local: &LocalPipeline,
    tables: &[TableName],
    carried: &[TableName],
    today: NaiveDate,
    progress: bool,
    repair: &Repair,
) -> anyhow::Result<Verdicts> {
    let mark = local.mark();
    for table in carried {
        let request = PartitionReady::carry_forward(
            &local.platform.layout,
            table,
            "operator:run",
            Some(today),
        );
        local
            .queue(Stage::Snapshot)
            .send(&messages::encode(&request), &BTreeMap::new())
            .await?;
    }
    for table in tables {
        let request = IngestRequest {
            table: table.clone(),
            mode: IngestMode::Incremental,
            requested_by: "operator:run".into(),
            as_of: Some(today),
            since: None,
        };
        local
            .queue(Stage::Ingest)
            .send(&messages::encode(&request), &BTreeMap::new())
            .await?;
    }
    local.settle(progress).await?;
    let fetched = tables.iter().map(|table| Expectation {
        table: table.clone(),
        snapshot: today,
        import: ImportCheck::On(today),
    });
    let carried = carried.iter().map(|table| Expectation {
        table: table.clone(),
        snapshot: today,
        import: ImportCheck::None,
    });
    let expected: Vec<Expectation> = fetched.chain(carried).collect();
    verdict::judge(local, &expected, &mark, repair).await
}

/// Of `weekly`, the tables with a snapshot to carry forward (one without waits for its first
/// fetch, as on AWS, where the carry-forward of a table without a snapshot does nothing).
pub async fn with_snapshot(
    local: &LocalPipeline,
    weekly: &[TableName],
) -> anyhow::Result<Vec<TableName>> {
    let mut out = Vec::new();
    for table in weekly {
        let any = local
            .platform
            .layout
            .partition(table, Layer::Snapshot, NaiveDate::MIN);
        if !common::publish::published_partitions(local.platform.catalog.as_ref(), &any)
            .await?
            .is_empty()
        {
            out.push(table.clone());
        }
    }
    Ok(out)
}

#[allow(clippy::print_stdout)]
pub async fn demo(data_dir: &Path, nights: u32) -> anyhow::Result<ExitCode> {
    if data_dir.exists() {
        anyhow::ensure!(
            data_dir.join(MARKER).exists(),
            "{} exists and was not made by the demo: choose another --data-dir",
            data_dir.display()
        );
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("clearing {}", data_dir.display()))?;
    }
    std::fs::create_dir_all(data_dir)?;
    std::fs::write(
        data_dir.join(MARKER),
        "made by `tascomi demo`; the next demo wipes this folder\n",
    )?;

    // The demo carries its own small dictionary, so it runs in any clone; the tests use the
    // production one.
    let dictionary_path = data_dir.join(DICTIONARY_FILE);
    std::fs::write(&dictionary_path, DEMO_DICTIONARY)
        .with_context(|| format!("writing {}", dictionary_path.display()))?;
    let dictionary = ColumnTypes::load(&dictionary_path)
        .with_context(|| format!("the demo's dictionary at {}", dictionary_path.display()))?;
    let mut pipeline = PipelineFile::parse(DEMO_TABLES, "demo pipeline")?;
    pipeline.column_type_dictionary = Some(dictionary_path.into());
    let config = SimConfig {
        dictionary: dictionary.clone(),
        ..SimConfig::default()
    };
    let first_night = config.history.start + chrono::Duration::days(7);
    let sim = SimApi::start(config).await?;
    println!("simulated Tascomi API at {}", sim.base_url);

    let local = LocalPipeline::build(LocalOptions {
        data_dir: data_dir.to_path_buf(),
        pipeline: pipeline.clone(),
        dictionary,
        api: Some(LocalApi::new(&sim.base_url, sim.credentials())),
    })
    .await?;
    let tables: Vec<TableName> = pipeline.tables.iter().map(|t| t.name.clone()).collect();
    let progress = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut failed = BTreeMap::new();
    let mut last = first_night;
    for night in 0..nights {
        let today = first_night + chrono::Duration::days(night.into());
        last = today;
        sim.set_today(today);
        println!("\nnight of {today}");
        let repair = Repair::default();
        let verdicts = run_night(&local, &tables, &[], today, progress, &repair).await?;
        let announced = crate::local::announcements(&local.events);
        println!(
            "announced {} \"snapshot published\" event(s) (EventBridge on AWS)",
            announced
                .iter()
                .filter(|l| !l.ends_with("no snapshot"))
                .count()
        );
        for v in verdicts.tables.iter().filter(|v| !v.ok()) {
            failed.insert(format!("{} ({today})", v.table), v.problems.join("; "));
        }
        for (i, letter) in verdicts.other_letters.iter().enumerate() {
            failed.insert(format!("dead letter {} ({today})", i + 1), letter.clone());
        }
        if local.interrupted() {
            sim.stop().await;
            return Err(crate::interrupt::Interrupted(format!(
                "the demo stopped during the night of {today}; run `tascomi demo` again to start over"
            ))
            .into());
        }
    }
    sim.stop().await;
    let target = Target::Local(Box::new(local));
    println!("\n{}", summary(&target, &tables).await?);
    for (table, reason) in &failed {
        println!("FAILED {table}: {reason}");
    }
    let snapshot_dir = data_dir.join("refined-zone/planning/tascomi/snapshot/applications");
    println!(
        "{nights} night(s), {} tables, in {:.1} s; snapshot of {last} ready. Query it with DuckDB:\n\n  \
         duckdb -c \"select count(*) as applications, max(last_updated) as latest_update \
         from read_parquet('{}/**/*.parquet', hive_partitioning = true) \
         where snapshot_date = '{}'\"\n",
        tables.len(),
        started.elapsed().as_secs_f64(),
        snapshot_dir.display(),
        date_value(last),
    );
    // The pipeline file beside the data, so that every other command can act on it, and the
    // morning report of the nights just run. The dictionary's path is relative to the file, so
    // the folder works wherever it is and whatever the working directory.
    let pipeline_file = data_dir.join("pipeline.yaml");
    std::fs::write(
        &pipeline_file,
        format!(
            "# The demo's tables (written by `tascomi demo`).\ncolumn_type_dictionary: {DICTIONARY_FILE}\n{DEMO_TABLES}"
        ),
    )
    .with_context(|| format!("writing {}", pipeline_file.display()))?;
    let flags = format!(
        "--local --data-dir {} --pipeline {}",
        data_dir.display(),
        pipeline_file.display()
    );
    crate::cli::write_report(
        &target,
        &data_dir.join("tascomi-report.html"),
        crate::health::DEFAULT_NIGHTS,
        None,
        &Repair {
            target_flags: flags.clone(),
        },
    )
    .await?;
    println!(
        "Open it in a browser. The other commands act on the demo's data with these flags, e.g.\n\n  \
         tascomi status {flags}\n  tascomi report {flags}\n"
    );
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A table per table and layer: partitions, latest partition, its rows, and the result of the
/// latest data-quality gate of the stage that publishes the layer.
pub async fn summary(target: &Target, tables: &[TableName]) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut out = format!(
        "{:<14} {:<10} {:>10} {:>10} {:>8}  {}\n",
        "table", "layer", "partitions", "latest", "rows", "data quality"
    );
    for table in tables {
        for layer in Layer::ALL {
            let published = ops::partitions(target, table, layer).await?;
            let latest = published.last();
            let quality = latest_quality(target, Stage::publishing(layer), table).await?;
            let _ = writeln!(
                out,
                "{:<14} {:<10} {:>10} {:>10} {:>8}  {}",
                table.as_str(),
                layer.name(),
                published.len(),
                latest.map_or("-".into(), |p| date_value(p.date)),
                latest
                    .and_then(|p| p.info.parameters.get("rows").cloned())
                    .unwrap_or_else(|| "-".into()),
                quality,
            );
        }
    }
    Ok(out)
}

/// `passed`, `FAILED` or `-` (no gate at this stage, or no run yet), from the newest report the
/// stage recorded for the table.
async fn latest_quality(
    target: &Target,
    stage: Stage,
    table: &TableName,
) -> anyhow::Result<String> {
    let platform = target.platform();
    let prefix = format!("{}{stage}/{table}/", platform.metrics_prefix);
    let bucket = &platform.layout.refined_bucket;
    // Keys are `<date>-<run id>.jsonl` with time-ordered run ids: the last is the newest.
    let Some(newest) = platform.storage.list(bucket, &prefix).await?.pop() else {
        return Ok("-".into());
    };
    let body = platform.storage.get(bucket, &newest.key).await?;
    let first_line = body.split(|b| *b == b'\n').next().unwrap_or_default();
    let passed = serde_json::from_slice::<serde_json::Value>(first_line)
        .ok()
        .and_then(|v| v.get("passed")?.as_bool());
    Ok(match passed {
        Some(true) => "passed".into(),
        Some(false) => "FAILED".into(),
        None => "-".into(),
    })
}
