//! The results: the markdown table printed to stdout, and the same rows as JSON (`--json FILE`,
//! one object per stage run).

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use chrono::NaiveDate;
use serde_json::{Value, json};

use crate::stages::{Measurement, peak_rss_bytes};

/// One row of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The first column: the night (or table, or table and date).
    pub label: String,
    pub table: String,
    /// The partition's import date.
    pub date: NaiveDate,
    /// `parse`, `recast`, `snapshot`, or a step that is not a stage (`generate raw`).
    pub stage: &'static str,
    /// `ours`, or the peer engine's name.
    pub engine: &'static str,
    pub measurement: Measurement,
}

impl Row {
    /// Whether the row is a stage run (not the generator or an import).
    pub fn is_stage(&self) -> bool {
        matches!(self.stage, "parse" | "recast" | "snapshot")
    }
}

/// What the rows were measured on, repeated in every JSON object.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// `applications`, `documents`, or empty when unknown (a raw layer without a manifest).
    pub dataset: String,
    /// Records of the full load and fields per record, when known.
    pub records: Option<u64>,
    pub fields: Option<usize>,
    /// `even`, `realistic`, or empty when unknown.
    pub update_model: String,
    pub paging_duplicates: Option<bool>,
}

impl RunInfo {
    /// What `write-raw` recorded beside the raw layer under `dir` (`bench-raw.json`), if it did.
    pub fn of_raw_layer(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(crate::MANIFEST);
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        Ok(Self {
            dataset: value["dataset"].as_str().unwrap_or_default().to_owned(),
            records: value["records"].as_u64(),
            fields: value["fields"].as_u64().map(|n| n as usize),
            update_model: value["update_model"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            paging_duplicates: value["paging_duplicates"].as_bool(),
        })
    }

    pub fn to_json(&self) -> Value {
        json!({
            "dataset": self.dataset,
            "records": self.records,
            "fields": self.fields,
            "update_model": self.update_model,
            "paging_duplicates": self.paging_duplicates,
        })
    }
}

/// The JSON object of one stage run.
pub fn row_json(row: &Row, info: &RunInfo) -> Value {
    let m = &row.measurement;
    let mut object = json!({
        "table": row.table,
        "date": row.date.to_string(),
        "night": row.label,
        "stage": row.stage,
        "engine": row.engine,
        "rows": m.rows,
        "wall_s": m.wall_secs,
        "peak_rss_mib": m.peak_rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0)),
        "input_bytes": m.input_bytes,
        "output_bytes": m.output_bytes,
        "files_copied": m.copied_files,
        "files_patched": m.patched_files,
        "files_rewritten": m.rewritten_files,
        "column_chunks_copied": m.copied_chunks,
        "build": build(),
    });
    if let (Some(object), Value::Object(info)) = (object.as_object_mut(), info.to_json()) {
        object.extend(info);
    }
    object
}

/// Writes the stage runs among `rows` to `path` as a JSON array, one object per stage run.
pub fn write_json(path: &Path, rows: &[Row], info: &RunInfo) -> anyhow::Result<()> {
    let runs: Vec<Value> = rows
        .iter()
        .filter(|r| r.is_stage())
        .map(|r| row_json(r, info))
        .collect();
    let text = serde_json::to_string_pretty(&Value::Array(runs))?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

pub fn table_header(first: &str) -> String {
    format!(
        "| {first} | stage | rows | input MB | output MB | wall s | rows/s | input MB/s | peak RSS MiB | snapshot files copied / patched / rewritten |\n\
     |---|---|---:|---:|---:|---:|---:|---:|---:|---|"
    )
}

pub fn night_label(night: u32) -> String {
    if night == 0 {
        "full load".to_owned()
    } else {
        night.to_string()
    }
}

pub fn format_row(row: &Row) -> String {
    let m = &row.measurement;
    let per_sec = |n: f64| {
        if m.wall_secs > 0.0 {
            n / m.wall_secs
        } else {
            0.0
        }
    };
    format!(
        "| {} | {} | {} | {:.1} | {:.1} | {:.2} | {:.0} | {:.1} | {} | {} |",
        row.label,
        row.stage,
        m.rows,
        m.input_bytes as f64 / 1e6,
        m.output_bytes as f64 / 1e6,
        m.wall_secs,
        per_sec(m.rows as f64),
        per_sec(m.input_bytes as f64 / 1e6),
        mib(m.peak_rss_bytes),
        files(m),
    )
}

/// `copied / patched / rewritten` files for a snapshot run (with the column chunks the
/// patched files copied), else empty.
pub fn files(m: &Measurement) -> String {
    match (m.copied_files, m.patched_files, m.rewritten_files) {
        (Some(c), Some(p), Some(r)) if p > 0 => {
            let chunks = m.copied_chunks.unwrap_or(0);
            format!("{c} / {p} / {r} ({chunks} chunks copied)")
        }
        (Some(c), p, Some(r)) => format!("{c} / {} / {r}", p.unwrap_or(0)),
        _ => String::new(),
    }
}

pub fn mib(bytes: Option<u64>) -> String {
    bytes.map_or_else(String::new, |b| {
        format!("{:.0}", b as f64 / (1024.0 * 1024.0))
    })
}

pub fn build() -> &'static str {
    if cfg!(debug_assertions) {
        "dev (unoptimised crate, deps opt-level 1)"
    } else {
        "release"
    }
}

/// The results table (first column headed `first`), and with `--in-process` the process's peak.
/// Prints the results table (`first` names the first column), and with `json` also writes it
/// as JSON there.
pub fn print_results(
    out: &mut impl Write,
    first: &str,
    rows: &[Row],
    in_process: bool,
    json: Option<(&Path, &RunInfo)>,
) -> anyhow::Result<()> {
    if let Some((path, info)) = json {
        write_json(path, rows, info)?;
    }
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

/// The JSON line a child process (a stage run, a DuckDB stage) printed last, or why there is
/// none: a failed process's stderr, named by `what`.
pub fn last_json_line(output: &std::process::Output, what: &str) -> anyhow::Result<Value> {
    if !output.status.success() {
        anyhow::bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .last()
        .with_context(|| format!("{what} printed nothing"))?;
    serde_json::from_str(line).with_context(|| format!("{what} printed {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stage_runs_become_json_objects_with_the_runs_facts() {
        let row = |stage| Row {
            label: "1".into(),
            table: "applications".into(),
            date: NaiveDate::from_ymd_opt(2027, 1, 5).unwrap(),
            stage,
            engine: "ours",
            measurement: Measurement {
                rows: 10,
                wall_secs: 1.5,
                peak_rss_bytes: Some(3 * 1024 * 1024),
                copied_files: Some(2),
                patched_files: Some(0),
                rewritten_files: Some(1),
                ..Measurement::default()
            },
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.json");
        let info = RunInfo {
            dataset: "applications".into(),
            update_model: "realistic".into(),
            ..RunInfo::default()
        };
        write_json(&path, &[row("generate raw"), row("snapshot")], &info).unwrap();
        let runs: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let runs = runs.as_array().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0]["stage"], "snapshot");
        assert_eq!(runs[0]["date"], "2027-01-05");
        assert_eq!(runs[0]["peak_rss_mib"], 3.0);
        assert_eq!(runs[0]["files_copied"], 2);
        assert_eq!(runs[0]["update_model"], "realistic");
        assert_eq!(runs[0]["engine"], "ours");
    }
}
