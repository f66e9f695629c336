//! The local dead-letter queues: JSON lines under `<data dir>/_dead_letters/`, one file per
//! stage, so that they outlive the process (see the module docs of [`super`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::INTERRUPTED_ATTRIBUTE;
use crate::stage::Stage;

/// A message left in a dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub body: String,
    pub attributes: BTreeMap<String, String>,
}

impl DeadLetter {
    /// The table the message names, if it names one.
    pub fn table(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        value.get("table")?.as_str().map(str::to_owned)
    }

    /// The `as_of` the message carries (the date its run takes as today), if it carries one.
    pub fn as_of(&self) -> Option<chrono::NaiveDate> {
        let value: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        common::layout::parse_date(value.get("as_of")?.as_str()?)
    }

    /// True for a message moved here because Ctrl-C stopped the stages before it was handled.
    pub fn interrupted(&self) -> bool {
        self.attributes.contains_key(INTERRUPTED_ATTRIBUTE)
    }

    pub fn reason(&self) -> &str {
        self.attributes
            .get("failure_reason")
            .map_or("(no reason recorded)", String::as_str)
    }
}

/// The length of each dead-letter queue at one moment (see [`LocalPipeline::mark`]).
#[derive(Debug, Clone, Default)]
pub struct DeadLetterMark(pub(super) BTreeMap<Stage, usize>);

pub(super) fn dead_letter_path(data_dir: &Path, stage: Stage) -> PathBuf {
    data_dir
        .join("_dead_letters")
        .join(format!("{stage}.jsonl"))
}

pub(super) fn read_dead_letters(data_dir: &Path, stage: Stage) -> anyhow::Result<Vec<DeadLetter>> {
    let path = dead_letter_path(data_dir, stage);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(err) => return Err(err).with_context(|| format!("reading {}", path.display())),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not a dead letter", path.display(), i + 1))
        })
        .collect()
}
