//! One stage run on one night's partition, measured.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::NaiveDate;
use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName};
use common::messages::PartitionReady;
use common::platform::Platform;
use parse_svc::{ParseSettings, ParseStage};
use recast_svc::{RecastSettings, RecastStage};
use serde_json::{Value, json};
use snapshot_svc::{SnapshotOutcome, SnapshotRequest, SnapshotSettings, SnapshotStage};

/// A stage of the pipeline the benchmark times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    Parse,
    Recast,
    Snapshot,
}

impl Stage {
    pub const ALL: [Stage; 3] = [Stage::Parse, Stage::Recast, Stage::Snapshot];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Parse => "parse",
            Stage::Recast => "recast",
            Stage::Snapshot => "snapshot",
        }
    }

    /// The layer the stage reads.
    fn input_layer(self) -> Layer {
        match self {
            Stage::Parse => Layer::Raw,
            Stage::Recast => Layer::Parsed,
            Stage::Snapshot => Layer::Increment,
        }
    }
}

/// What one stage run did and cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurement {
    pub rows: u64,
    /// Parquet bytes the stage read (for the snapshot: filled in by the caller from the base
    /// snapshot and the increment, as the stage does not report them).
    pub input_bytes: u64,
    /// Parquet bytes the stage published.
    pub output_bytes: u64,
    /// Wall time of the stage call alone (not process start or set-up), in seconds.
    pub wall_secs: f64,
    /// Peak resident memory of the process (`VmHWM`), in bytes; `None` off Linux.
    pub peak_rss_bytes: Option<u64>,
    /// Files of the previous snapshot copied server-side / merged in place (some column
    /// chunks copied, the changed ones encoded) / decoded and written again.
    pub copied_files: Option<usize>,
    pub patched_files: Option<usize>,
    pub rewritten_files: Option<usize>,
    /// Column chunks the in-place merges copied as encoded bytes.
    pub copied_chunks: Option<u64>,
}

impl Measurement {
    pub fn to_json(&self) -> Value {
        json!({
            "rows": self.rows,
            "input_bytes": self.input_bytes,
            "output_bytes": self.output_bytes,
            "wall_secs": self.wall_secs,
            "peak_rss_bytes": self.peak_rss_bytes,
            "copied_files": self.copied_files,
            "patched_files": self.patched_files,
            "rewritten_files": self.rewritten_files,
            "copied_chunks": self.copied_chunks,
        })
    }

    pub fn from_json(value: &Value) -> anyhow::Result<Self> {
        let number = |key: &str| {
            value[key]
                .as_u64()
                .with_context(|| format!("measurement field {key} missing"))
        };
        Ok(Self {
            rows: number("rows")?,
            input_bytes: number("input_bytes")?,
            output_bytes: number("output_bytes")?,
            wall_secs: value["wall_secs"]
                .as_f64()
                .context("measurement field wall_secs missing")?,
            peak_rss_bytes: value["peak_rss_bytes"].as_u64(),
            copied_files: value["copied_files"].as_u64().map(|n| n as usize),
            patched_files: value["patched_files"].as_u64().map(|n| n as usize),
            rewritten_files: value["rewritten_files"].as_u64().map(|n| n as usize),
            copied_chunks: value["copied_chunks"].as_u64(),
        })
    }
}

/// The process's peak resident set size in bytes (`VmHWM` of /proc/self/status), or `None`
/// where there is no such file.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The inputs every stage is built from.
#[derive(Debug, Clone)]
pub struct StageInputs {
    pub platform: Platform,
    pub pipeline: PipelineFile,
    pub dictionary: ColumnTypes,
}

impl StageInputs {
    pub fn load(data_dir: &Path, pipeline: &Path, dictionary: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            platform: Platform::local(data_dir),
            pipeline: PipelineFile::load(pipeline)
                .with_context(|| format!("loading {}", pipeline.display()))?,
            dictionary: ColumnTypes::load(dictionary)
                .with_context(|| format!("loading {}", dictionary.display()))?,
        })
    }
}

/// Runs `stage` on `table`'s partition of `date` (the stage's input must be published) and
/// measures it. `Ok` means the stage published its partition.
pub async fn run_stage(
    inputs: &StageInputs,
    stage: Stage,
    table: &TableName,
    date: NaiveDate,
) -> anyhow::Result<Measurement> {
    let platform = inputs.platform.clone();
    let pipeline = inputs.pipeline.clone();
    let input = platform.layout.partition(table, stage.input_layer(), date);
    let message = PartitionReady::new(
        &input,
        format!("s3://{}/{}", input.bucket, input.key_prefix()),
        String::new(),
        Some(date),
    );
    let mut measurement = Measurement::default();
    match stage {
        Stage::Parse => {
            let stage = ParseStage::new(platform, pipeline, ParseSettings::default());
            let started = Instant::now();
            let outcome = stage.parse(&message).await?;
            measurement.wall_secs = started.elapsed().as_secs_f64();
            measurement.rows = outcome.published.rows;
            measurement.input_bytes = outcome.raw_bytes;
            measurement.output_bytes = outcome.published.bytes;
        }
        Stage::Recast => {
            let stage = RecastStage::new(
                platform,
                pipeline,
                inputs.dictionary.clone(),
                RecastSettings::default(),
            );
            let started = Instant::now();
            let outcome = stage.recast(&message).await?;
            measurement.wall_secs = started.elapsed().as_secs_f64();
            measurement.rows = outcome.published.rows;
            measurement.input_bytes = outcome.parsed_bytes;
            measurement.output_bytes = outcome.published.bytes;
        }
        Stage::Snapshot => {
            let stage = SnapshotStage::new(platform, pipeline, SnapshotSettings::default());
            let request = SnapshotRequest {
                table: table.clone(),
                today: date,
                increment: None,
                force: false,
            };
            let started = Instant::now();
            let outcome = stage.snapshot(&request).await?;
            measurement.wall_secs = started.elapsed().as_secs_f64();
            let SnapshotOutcome::Published(done) = outcome else {
                bail!("snapshot of {table} for {date} was already up to date: nothing timed");
            };
            measurement.rows = done.published.rows;
            measurement.output_bytes = done.published.bytes;
            measurement.copied_files = Some(done.report.copied_files);
            measurement.patched_files = Some(done.report.patched_files);
            measurement.rewritten_files = Some(done.report.rewritten_files);
            measurement.copied_chunks = Some(done.report.patch.copied_chunks);
        }
    }
    measurement.peak_rss_bytes = peak_rss_bytes();
    Ok(measurement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measurements_survive_the_trip_between_processes() {
        let m = Measurement {
            rows: 3,
            input_bytes: 10,
            output_bytes: 20,
            wall_secs: 0.5,
            peak_rss_bytes: Some(4096),
            copied_files: Some(1),
            patched_files: Some(2),
            rewritten_files: None,
            copied_chunks: Some(700),
        };
        assert_eq!(Measurement::from_json(&m.to_json()).unwrap(), m);
    }
}
