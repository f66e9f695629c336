//! `bench peer duckdb`: our stages and a DuckDB implementation of the same three stages
//! (`bench/peer/duckdb_stages.py`), on the same raw layer, night by night, one comparison table
//! (issue 16).
//!
//! For each import date in order, our parse, recast and snapshot run (each a child process, as
//! `run --from-raw`), then DuckDB's (each a Python process; it times its work after the
//! interpreter and `duckdb` are loaded and reports its own `VmHWM`). At the end the final
//! snapshots of both are compared, ids and `last_updated`: any difference fails the command.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Subcommand;
use common::layout::{Layer, TableName, date_value};
use serde_json::Value;

use crate::from_raw::{import_all, label};
use crate::raw::{self, RawPartition};
use crate::report::{self, Row, RunInfo, build, files, mib, night_label};
use crate::stages::{Measurement, Stage, StageInputs};
use crate::{Mode, Paths, load_inputs, prepare_data_dir, time_stages};

/// The DuckDB peer's stages, run by the Python with duckdb.
pub const DUCKDB_STAGES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peer/duckdb_stages.py");

#[derive(Debug, Subcommand)]
pub enum PeerEngine {
    /// DuckDB (Python `duckdb`, pinned in scripts/requirements-test.txt), its SQL in
    /// bench/peer/duckdb_stages.py.
    Duckdb(PeerArgs),
}

#[derive(Debug, clap::Args)]
pub struct PeerArgs {
    /// The raw layer both engines read (`DIR/planning/tascomi/api-responses/<table>/...`, as
    /// `run --from-raw`; `bench write-raw` writes one).
    #[arg(long, value_name = "DIR")]
    from_raw: PathBuf,
    /// Only this table (default: every table found).
    #[arg(long)]
    table: Option<String>,
    /// Also write both engines' stage runs as JSON to FILE: one object per stage run, `engine`
    /// `ours` or `duckdb`.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// The Python that has duckdb (default: `TASCOMI_PYTHON`, else the repository's .venv).
    #[arg(long)]
    python: Option<PathBuf>,
    /// DuckDB's threads (default: DuckDB's own choice, one per core).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    paths: Paths,
}

pub async fn run_peer(engine: PeerEngine) -> anyhow::Result<()> {
    let PeerEngine::Duckdb(args) = engine;
    let python = args.python.clone().unwrap_or_else(default_python);
    let check = Command::new(&python)
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .with_context(|| format!("starting {}", python.display()))?;
    if !check.status.success() {
        bail!(
            "{} cannot import duckdb ({}): install scripts/requirements-test.txt or name another \
             with --python",
            python.display(),
            String::from_utf8_lossy(&check.stderr).trim()
        );
    }
    let version = String::from_utf8_lossy(&check.stdout).trim().to_owned();
    let partitions = raw::find_raw(&args.from_raw, args.table.as_deref())?;
    let info = RunInfo::of_raw_layer(&args.from_raw)?;
    prepare_data_dir(&args.paths.data_dir)?;
    let inputs = load_inputs(&args.paths)?;
    let peer_dir = args.paths.data_dir.join("duckdb");
    std::fs::create_dir_all(&peer_dir)?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "# bench peer duckdb: the raw layer under {} ({} partitions; {} {} records, {} updates, \
         paging duplicates {}), ours ({} build) against DuckDB {version}\n",
        args.from_raw.display(),
        partitions.len(),
        info.dataset,
        info.records
            .map_or_else(|| "?".to_owned(), |r| r.to_string()),
        info.update_model,
        info.paging_duplicates
            .map_or("?", |on| if on { "on" } else { "off" }),
        build(),
    )?;
    out.flush()?;

    let mut imports = Vec::new();
    import_all(&inputs, &partitions, &mut imports).await?;
    let peer = Peer {
        python,
        threads: args.threads,
        dir: peer_dir,
    };
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut previous_bytes = BTreeMap::new();
    let mut previous_peer_snapshot: BTreeMap<TableName, PathBuf> = BTreeMap::new();
    for partition in &partitions {
        let previous = previous_bytes.entry(partition.table.clone()).or_insert(0);
        let mode = Mode::Child(&args.paths);
        let lbl = label(partition);
        time_stages(
            mode,
            &partition.table,
            partition.date,
            &lbl,
            previous,
            &mut ours,
        )
        .await?;
        let base = previous_peer_snapshot.get(&partition.table).cloned();
        let snapshot = peer.night(&inputs, partition, base.as_deref(), &mut theirs)?;
        previous_peer_snapshot.insert(partition.table.clone(), snapshot);
    }

    for (table, peer_snapshot) in &previous_peer_snapshot {
        let last = partitions
            .iter()
            .rfind(|p| &p.table == table)
            .context("a table has partitions")?;
        let ours_files =
            our_snapshot_files(&inputs, &args.paths.data_dir, table, last.date).await?;
        let verdict = peer.compare(&ours_files, peer_snapshot)?;
        if verdict["equal"] != Value::Bool(true) {
            bail!(
                "DuckDB's snapshot of {table} for {} differs from ours (ids and last_updated): {verdict}",
                last.date
            );
        }
        writeln!(
            out,
            "{table}: DuckDB's final snapshot equals ours: {} rows, the same ids and last_updated\n",
            verdict["ours_rows"]
        )?;
    }
    print_side_by_side(&mut out, &partitions, &ours, &theirs)?;
    if let Some(path) = &args.json {
        let all: Vec<Row> = ours.iter().chain(&theirs).cloned().collect();
        report::write_json(path, &all, &info)?;
    }
    Ok(())
}

/// `TASCOMI_PYTHON`, else the .venv scripts/test.sh makes.
fn default_python() -> PathBuf {
    common::config::Env::from_process()
        .get("TASCOMI_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"))
}

/// The DuckDB stages: one Python process per stage run, files under `dir/<table>/`.
#[derive(Debug)]
struct Peer {
    python: PathBuf,
    threads: Option<usize>,
    dir: PathBuf,
}

impl Peer {
    /// Runs `duckdb_stages.py <args>` and returns the JSON line it printed last.
    fn call(&self, args: &[String]) -> anyhow::Result<Value> {
        let mut command = Command::new(&self.python);
        command.arg(DUCKDB_STAGES).args(args);
        if let Some(threads) = self.threads {
            command.args(["--threads", &threads.to_string()]);
        }
        let output = command
            .output()
            .with_context(|| format!("starting {} {DUCKDB_STAGES}", self.python.display()))?;
        let what = format!("DuckDB {}", args.first().map_or("", String::as_str));
        crate::report::last_json_line(&output, &what)
    }

    /// DuckDB's parse, recast and snapshot of one partition (the snapshot onto `base`, the
    /// table's previous DuckDB snapshot); returns the new snapshot's file.
    fn night(
        &self,
        inputs: &StageInputs,
        partition: &RawPartition,
        base: Option<&Path>,
        rows: &mut Vec<Row>,
    ) -> anyhow::Result<PathBuf> {
        let table = &partition.table;
        let dir = self.dir.join(table.as_str());
        std::fs::create_dir_all(&dir)?;
        let date = date_value(partition.date);
        let path = |layer: &str| dir.join(format!("{layer}-{date}.parquet"));
        let text = |p: &Path| p.display().to_string();
        let (parsed, increment, snapshot) = (path("parsed"), path("increment"), path("snapshot"));
        let mut parse = vec![
            "parse".to_owned(),
            "--table".to_owned(),
            table.to_string(),
            "--out".to_owned(),
            text(&parsed),
            "--files".to_owned(),
        ];
        parse.extend(partition.files.iter().map(|f| text(f)));
        let recast = vec![
            "recast".to_owned(),
            "--in".to_owned(),
            text(&parsed),
            "--types".to_owned(),
            column_types(inputs, table).to_string(),
            "--out".to_owned(),
            text(&increment),
        ];
        let mut snap = vec![
            "snapshot".to_owned(),
            "--increment".to_owned(),
            text(&increment),
            "--date".to_owned(),
            date.clone(),
            "--out".to_owned(),
            text(&snapshot),
        ];
        if let Some(base) = base {
            snap.extend(["--base".to_owned(), text(base)]);
        }
        for (stage, args) in Stage::ALL.into_iter().zip([parse, recast, snap]) {
            let measurement = Measurement::from_json(&self.call(&args)?)?;
            let row = Row {
                label: label(partition),
                table: table.to_string(),
                date: partition.date,
                stage: stage.name(),
                engine: "duckdb",
                measurement,
            };
            writeln!(std::io::stderr(), "duckdb {}", report::format_row(&row))?;
            rows.push(row);
        }
        Ok(snapshot)
    }

    /// Compares our snapshot (its files) with DuckDB's, ids and `last_updated`.
    fn compare(&self, ours: &[PathBuf], peer: &Path) -> anyhow::Result<Value> {
        let mut args = vec![
            "compare".to_owned(),
            "--peer".to_owned(),
            peer.display().to_string(),
            "--ours".to_owned(),
        ];
        args.extend(ours.iter().map(|p| p.display().to_string()));
        self.call(&args)
    }
}

/// The dictionary's types of `table`'s columns, as DuckDB's recast takes them (`{}` for a table
/// kept as text).
fn column_types(inputs: &StageInputs, table: &TableName) -> Value {
    let config = inputs.pipeline.table_or_default(table);
    let mut types = serde_json::Map::new();
    if !config.keep_as_text {
        for (column, column_type) in inputs.dictionary.columns(table.as_str()) {
            types.insert(column.to_owned(), column_type.name().into());
        }
    }
    Value::Object(types)
}

/// The Parquet files of our published snapshot of `table` for `date` (local platform).
async fn our_snapshot_files(
    inputs: &StageInputs,
    data_dir: &Path,
    table: &TableName,
    date: chrono::NaiveDate,
) -> anyhow::Result<Vec<PathBuf>> {
    let platform = &inputs.platform;
    let partition = platform.layout.partition(table, Layer::Snapshot, date);
    let published = platform
        .catalog
        .list_partitions(&partition.database, &partition.catalog_table)
        .await?
        .into_iter()
        .find(|p| p.values == partition.values())
        .with_context(|| format!("our snapshot of {table} for {date} is not published"))?;
    let key = published
        .location
        .strip_prefix("s3://")
        .context("an s3:// location")?;
    let dir = data_dir.join(key.trim_end_matches('/'));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|f| f.extension().is_some_and(|e| e == "parquet"));
    files.sort();
    if files.is_empty() {
        bail!(
            "our snapshot of {table} for {date} has no files in {}",
            dir.display()
        );
    }
    Ok(files)
}

/// Ours and DuckDB's, stage by stage and night by night.
fn print_side_by_side(
    out: &mut impl Write,
    partitions: &[RawPartition],
    ours: &[Row],
    theirs: &[Row],
) -> anyhow::Result<()> {
    writeln!(
        out,
        "| table | night | stage | rows | ours s | DuckDB s | DuckDB ÷ ours | ours peak RSS MiB | DuckDB peak RSS MiB | ours files copied / patched / rewritten |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---|"
    )?;
    let mut nights: BTreeMap<&TableName, u32> = BTreeMap::new();
    for partition in partitions {
        let night = nights.entry(&partition.table).or_insert(0);
        for stage in Stage::ALL {
            let find = |rows: &[Row]| {
                rows.iter()
                    .find(|r| {
                        r.table == partition.table.as_str()
                            && r.date == partition.date
                            && r.stage == stage.name()
                    })
                    .map(|r| r.measurement.clone())
                    .unwrap_or_default()
            };
            let (a, b) = (find(ours), find(theirs));
            let rows = if a.rows == b.rows {
                a.rows.to_string()
            } else {
                format!("{} (DuckDB {})", a.rows, b.rows)
            };
            let ratio = if a.wall_secs > 0.0 {
                format!("{:.2}×", b.wall_secs / a.wall_secs)
            } else {
                String::new()
            };
            writeln!(
                out,
                "| {} | {} | {} | {rows} | {:.2} | {:.2} | {ratio} | {} | {} | {} |",
                partition.table,
                night_label(*night),
                stage.name(),
                a.wall_secs,
                b.wall_secs,
                mib(a.peak_rss_bytes),
                mib(b.peak_rss_bytes),
                files(&a),
            )?;
        }
        *night += 1;
    }
    Ok(())
}
