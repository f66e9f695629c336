//! Reading how every table stands: the catalog's partition parameters, the quality reports of
//! the nights shown, the queues and their dead letters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{NaiveDate, Utc};
use common::layout::{Layer, london_today};

use super::findings::findings;
use super::{
    Health, Letter, MAX_LETTERS_PER_STAGE, Options, PartitionFacts, QualityRun, QueueFacts,
    TableHealth, fetched_by,
};
use crate::ops;
use crate::stage::Stage;
use crate::target::Target;

/// Collects every table's facts and findings. See the module docs.
pub async fn collect(target: &Target, options: &Options) -> anyhow::Result<Health> {
    let generated_at = Utc::now();
    let mut tables = Vec::new();
    let mut newest_import: Option<NaiveDate> = None;
    let mut all_layers = Vec::new();
    for config in &target.pipeline().tables {
        let mut layers = Vec::new();
        for layer in Layer::ALL {
            let published = ops::partitions(target, &config.name, layer).await?;
            if layer == Layer::Raw
                && let Some(last) = published.last()
            {
                newest_import = newest_import.max(Some(last.date));
            }
            layers.push((
                layer,
                published
                    .iter()
                    .map(PartitionFacts::from_published)
                    .collect::<Vec<_>>(),
            ));
        }
        all_layers.push((config, layers));
    }
    let (as_of, as_of_reason) = match (options.as_of, target) {
        (Some(date), _) => (date, "as given".to_owned()),
        (None, Target::Local(_)) => match newest_import {
            Some(date) => (
                date,
                "the newest import in the data directory; --as-of DATE to choose".to_owned(),
            ),
            None => (
                london_today(),
                "today in London: nothing imported yet".to_owned(),
            ),
        },
        (None, Target::Aws(_)) => {
            let yesterday = london_today() - chrono::Duration::days(1);
            match newest_import {
                Some(date) if date > yesterday => (
                    date,
                    "tonight's run has started; --as-of DATE to choose".to_owned(),
                ),
                _ => (
                    yesterday,
                    "yesterday in London: the latest night the schedule has run for certain; --as-of DATE to choose"
                        .to_owned(),
                ),
            }
        }
    };

    let queues: Vec<QueueFacts> = target
        .queue_depths()
        .await?
        .into_iter()
        .map(|(stage, depth, dead_letters)| QueueFacts {
            stage,
            depth,
            dead_letters,
        })
        .collect();
    let letters_read = options.letters || target.local().is_some();
    let mut letters = Vec::new();
    if letters_read {
        for stage in Stage::ALL {
            for letter in target
                .peek_dead_letters(stage, MAX_LETTERS_PER_STAGE)
                .await?
            {
                letters.push(Letter::new(stage, &letter));
            }
        }
    }

    // The nights shown: the last `nights`, but none before the first the data holds.
    let earliest = all_layers
        .iter()
        .flat_map(|(_, layers)| layers.iter().filter_map(|(_, p)| p.first().map(|p| p.date)))
        .min()
        .unwrap_or(as_of)
        .min(as_of);
    let first_night =
        (as_of - chrono::Duration::days(i64::from(options.nights.max(1)) - 1)).max(earliest);
    let nights = u32::try_from((as_of - first_night).num_days() + 1).unwrap_or(1);
    let mut quality = if options.quality {
        read_quality(target, first_night, as_of).await?
    } else {
        BTreeMap::new()
    };
    let flags = &options.repair.target_flags;
    for (config, layers) in all_layers {
        let table = config.name.clone();
        let mut health = TableHealth {
            promised: as_of,
            fetched_by: fetched_by(config.schedule, as_of),
            schedule: config.schedule,
            layers,
            quality: quality.remove(table.as_str()).unwrap_or_default(),
            letters: letters
                .iter()
                .filter(|l| l.table.as_deref() == Some(table.as_str()))
                .cloned()
                .collect(),
            findings: Vec::new(),
            table,
        };
        let dates = |layer| -> BTreeSet<NaiveDate> {
            health.partitions(layer).iter().map(|p| p.date).collect()
        };
        let gaps = ops::table_gaps(
            &health.table,
            &dates(Layer::Raw),
            &dates(Layer::Parsed),
            &dates(Layer::Increment),
            &dates(Layer::Snapshot),
        );
        health.findings = findings(&health, gaps.iter(), flags);
        tables.push(health);
    }
    let known: BTreeSet<&str> = tables.iter().map(|t| t.table.as_str()).collect();
    let other_letters = letters
        .iter()
        .filter(|l| l.table.as_deref().is_none_or(|t| !known.contains(t)))
        .cloned()
        .collect();
    Ok(Health {
        as_of,
        as_of_reason,
        nights,
        generated_at,
        source: match target {
            Target::Local(local) => format!("the data directory {}", local.data_dir.display()),
            Target::Aws(aws) => format!(
                "the AWS deployment (Glue databases {}, {})",
                aws.platform.layout.database(common::layout::Zone::Raw),
                aws.platform.layout.database(common::layout::Zone::Refined)
            ),
        },
        tables,
        queues,
        letters_read,
        other_letters,
        quality_read: options.quality,
    })
}

/// Per table, the newest data-quality report of each stage and night in `from..=to`, oldest
/// first. Only the reports of those nights are read (keys start with the partition date).
pub(super) async fn read_quality(
    target: &Target,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<BTreeMap<String, Vec<QualityRun>>> {
    let platform = target.platform();
    let bucket = platform.layout.refined_bucket.clone();
    let mut wanted = Vec::new();
    for config in &target.pipeline().tables {
        for stage in Stage::ALL {
            let prefix = format!("{}{stage}/{}/", platform.metrics_prefix, config.name);
            // Keys are `<date>-<run id>.jsonl`, run ids ordered by time: per date, the last key
            // listed is the newest run.
            let mut newest: BTreeMap<NaiveDate, String> = BTreeMap::new();
            for object in platform.storage.list(&bucket, &prefix).await? {
                let name = &object.key[prefix.len().min(object.key.len())..];
                let Some(date) = name.get(..8).and_then(common::layout::parse_date) else {
                    continue;
                };
                if date < from || date > to {
                    continue;
                }
                let newer = newest.get(&date).is_none_or(|k| object.key > *k);
                if newer {
                    newest.insert(date, object.key.clone());
                }
            }
            for key in newest.into_values() {
                wanted.push((config.name.to_string(), stage, key));
            }
        }
    }
    let storage = platform.storage.clone();
    let permits = Arc::new(tokio::sync::Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    for (table, stage, key) in wanted {
        let storage = storage.clone();
        let bucket = bucket.clone();
        let permits = permits.clone();
        tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let body = storage.get(&bucket, &key).await;
            (table, stage, key, body)
        });
    }
    let mut out: BTreeMap<String, Vec<QualityRun>> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (table, stage, key, body) = done?;
        let body = body.map_err(|e| anyhow::anyhow!("reading {key}: {e}"))?;
        if let Some(run) = QualityRun::parse(stage, &body) {
            out.entry(table).or_default().push(run);
        }
    }
    for runs in out.values_mut() {
        runs.sort_by_key(|a| (a.date, a.stage));
    }
    Ok(out)
}
