//! The embedded default: the four stages' own handlers driven by in-process queues over a local
//! data directory (buckets are folders, the catalog is JSON files).
//!
//! Dead-letter queues outlive the process as JSON lines in `<data dir>/_dead_letters/`, so that
//! `tascomi redrive --local` finds what a failed run left. Nothing else outlives it, so a settle
//! never ends with a message on an in-process queue: a message for a stage that is not built here
//! (ingest without an API) is dead-lettered with that reason rather than dropped.
//!
//! Every handler is watched: the latest failure of each stage per table is kept in a
//! [`Journal`], so that a command can say why a table did not reach its snapshot even when no
//! message was dead-lettered (a message discarded, or one still retrying).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::events::LocalEventSink;
use common::platform::Platform;
use common::queue::{MemoryQueue, Queue};
use common::runner::{Disposition, Handler, Runner, RunnerSettings};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use ingest_svc::{Credentials, IngestSettings, IngestStage};
use parse_svc::{ParseSettings, ParseStage};
use recast_svc::{RecastSettings, RecastStage};
use snapshot_svc::{SnapshotSettings, SnapshotStage};

mod dead_letters;
mod watch;

pub use dead_letters::{DeadLetter, DeadLetterMark};
pub use watch::{Activity, Finished, Journal};

use crate::interrupt;
use crate::stage::Stage;
use dead_letters::{dead_letter_path, read_dead_letters};
use watch::{Watched, lock};

/// A message received this many times without success moves to the dead-letter queue.
const MAX_RECEIVES: u32 = 3;

/// The attribute that marks a dead letter left by Ctrl-C (see [`LocalPipeline::settle`]).
const INTERRUPTED_ATTRIBUTE: &str = "interrupted";

/// Without a terminal, a progress line names the work in progress after this long without
/// another line.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// How the embedded pipeline is built.
#[derive(Debug)]
pub struct LocalOptions {
    pub data_dir: PathBuf,
    pub pipeline: PipelineFile,
    pub dictionary: ColumnTypes,
    /// The Tascomi API's settings and keys; without them the ingest stage is absent (replays of
    /// later stages do not need it).
    pub api: Option<LocalApi>,
}

/// The Tascomi API the ingest stage of the embedded default talks to.
#[derive(Debug)]
pub struct LocalApi {
    pub settings: IngestSettings,
    pub credentials: Credentials,
}

impl LocalApi {
    /// The service's defaults, talking to `base_url`.
    pub fn new(base_url: &str, credentials: Credentials) -> Self {
        Self {
            settings: IngestSettings::new(base_url),
            credentials,
        }
    }
}

/// What one stage did in one settle.
#[derive(Debug, Clone, Default)]
pub struct StageReport {
    pub handled: usize,
    pub discarded: usize,
    pub dead_lettered: usize,
    pub elapsed: Duration,
}

/// A stage's runner, whatever its handler, with its input queue.
#[async_trait]
trait Drain: Send + Sync {
    /// Handles queued messages until the queue stays empty for `idle`, or until Ctrl-C asks
    /// to stop (see [`crate::interrupt`]): at a safe point nothing new is received; "now"
    /// abandons the messages in progress (unacknowledged: they stay in the queue, nothing of
    /// them published).
    async fn drain(&self, idle: Duration) -> Vec<Disposition>;
}

struct StageRunner<H> {
    runner: Arc<Runner<H>>,
    input: MemoryQueue,
}

#[async_trait]
impl<H: Handler> Drain for StageRunner<H> {
    async fn drain(&self, idle: Duration) -> Vec<Disposition> {
        let mut dispositions = Vec::new();
        while !interrupt::requested() {
            let messages = match self.input.receive(10, idle).await {
                Ok(messages) if !messages.is_empty() => messages,
                Ok(_) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "receive failed");
                    break;
                }
            };
            let mut tasks = tokio::task::JoinSet::new();
            for message in messages {
                let runner = self.runner.clone();
                tasks.spawn(async move { runner.process(message).await });
            }
            let stop_now = interrupt::reached(interrupt::Level::Now);
            tokio::pin!(stop_now);
            loop {
                tokio::select! {
                    done = tasks.join_next() => match done {
                        Some(Ok(disposition)) => dispositions.push(disposition),
                        Some(Err(err)) => tracing::error!(error = %err, "a message handler panicked"),
                        None => break,
                    },
                    () = &mut stop_now => {
                        tasks.abort_all();
                        return dispositions;
                    }
                }
            }
        }
        dispositions
    }
}

/// The whole pipeline in this process. See the module docs.
pub struct LocalPipeline {
    pub data_dir: PathBuf,
    pub platform: Platform,
    pub pipeline: PipelineFile,
    queues: BTreeMap<Stage, MemoryQueue>,
    dead_letters: BTreeMap<Stage, MemoryQueue>,
    runners: BTreeMap<Stage, Arc<dyn Drain>>,
    journal: Arc<Mutex<Journal>>,
    activity: Arc<Mutex<Activity>>,
    /// Set when Ctrl-C stopped a settle: the messages left are in the dead-letter queues and
    /// nothing more runs.
    interrupted: std::sync::atomic::AtomicBool,
    /// What the snapshot stage announces to downstream consumers; kept for tests.
    pub published_snapshots: MemoryQueue,
    /// The "snapshot published" events the snapshot stage put (EventBridge on AWS).
    pub events: LocalEventSink,
}

impl std::fmt::Debug for LocalPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPipeline")
            .field("data_dir", &self.data_dir)
            .field("stages", &self.runners.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn runner_settings() -> RunnerSettings {
    RunnerSettings {
        concurrency: 4,
        visibility_timeout: Duration::from_secs(600),
        wait_time: Duration::from_millis(20),
        shutdown_grace: Duration::from_secs(5),
        retry_base: Duration::from_millis(500),
        // The runner dead-letters with the reason on the receive the queue would redrive on.
        max_receives: MAX_RECEIVES,
    }
}

impl LocalPipeline {
    pub async fn build(options: LocalOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.data_dir)
            .with_context(|| format!("creating {}", options.data_dir.display()))?;
        let platform = Platform::local(&options.data_dir);
        let visibility = runner_settings().visibility_timeout;
        let mut queues = BTreeMap::new();
        let mut dead_letters = BTreeMap::new();
        for stage in Stage::ALL {
            let dlq = MemoryQueue::new(format!("{stage}-dlq"), visibility);
            for letter in read_dead_letters(&options.data_dir, stage)? {
                dlq.send(&letter.body, &letter.attributes).await?;
            }
            let queue =
                MemoryQueue::with_dead_letter(stage.name(), visibility, dlq.clone(), MAX_RECEIVES);
            queues.insert(stage, queue);
            dead_letters.insert(stage, dlq);
        }
        let published_snapshots = MemoryQueue::new("downstream", visibility);
        let mut this = Self {
            data_dir: options.data_dir,
            platform: platform.clone(),
            pipeline: options.pipeline.clone(),
            queues,
            dead_letters,
            runners: BTreeMap::new(),
            journal: Arc::default(),
            activity: Arc::default(),
            interrupted: std::sync::atomic::AtomicBool::new(false),
            published_snapshots,
            events: LocalEventSink::new(),
        };
        let p = || platform.clone();
        let pipeline = || options.pipeline.clone();
        if let Some(api) = options.api {
            let stage = IngestStage::new(p(), pipeline(), api.settings, api.credentials)?;
            this.add(Stage::Ingest, stage);
        }
        this.add(
            Stage::Parse,
            ParseStage::new(p(), pipeline(), ParseSettings::default()),
        );
        let recast = RecastStage::new(
            p(),
            pipeline(),
            options.dictionary,
            RecastSettings::default(),
        );
        this.add(Stage::Recast, recast);
        this.add(
            Stage::Snapshot,
            SnapshotStage::new(p(), pipeline(), SnapshotSettings::default())
                .with_events(Arc::new(this.events.clone())),
        );
        Ok(this)
    }

    fn add<H: Handler>(&mut self, stage: Stage, handler: H) {
        let next: Arc<dyn Queue> = match Stage::ALL.into_iter().find(|s| *s > stage) {
            Some(next) => Arc::new(self.queues[&next].clone()),
            None => Arc::new(self.published_snapshots.clone()),
        };
        let handler = Watched {
            stage,
            inner: handler,
            journal: self.journal.clone(),
            activity: self.activity.clone(),
        };
        let runner = Runner::new(
            Arc::new(handler),
            Arc::new(self.queues[&stage].clone()),
            Some(next),
            Some(Arc::new(self.dead_letters[&stage].clone())),
            runner_settings(),
        );
        self.runners.insert(
            stage,
            Arc::new(StageRunner {
                runner: Arc::new(runner),
                input: self.queues[&stage].clone(),
            }),
        );
    }

    /// The input queue of a stage.
    pub fn queue(&self, stage: Stage) -> &MemoryQueue {
        &self.queues[&stage]
    }

    pub fn dead_letter_queue(&self, stage: Stage) -> &MemoryQueue {
        &self.dead_letters[&stage]
    }

    /// Whether the stage runs here (ingest only with an API).
    pub fn runs(&self, stage: Stage) -> bool {
        self.runners.contains_key(&stage)
    }

    /// What the stages recorded so far (see [`Journal`]).
    pub fn journal(&self) -> Journal {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where each dead-letter queue ends now: the letters after a mark are the ones the work
    /// since then left.
    pub fn mark(&self) -> DeadLetterMark {
        DeadLetterMark(
            Stage::ALL
                .into_iter()
                .map(|s| (s, self.dead_letters(s).len()))
                .collect(),
        )
    }

    /// The dead letters added since `mark`, per stage in pipeline order. Valid while nothing
    /// but the stages touched the dead-letter queues in between (they only append).
    pub fn dead_letters_since(&self, mark: &DeadLetterMark) -> Vec<(Stage, DeadLetter)> {
        Stage::ALL
            .into_iter()
            .flat_map(|stage| {
                let skip = mark.0.get(&stage).copied().unwrap_or(0);
                self.dead_letters(stage)
                    .into_iter()
                    .skip(skip)
                    .map(move |letter| (stage, letter))
            })
            .collect()
    }

    /// Runs every stage until all queues are empty (retries included), in pipeline order, then
    /// saves the dead-letter queues. Returns what each stage did.
    ///
    /// Progress: with `progress` (a terminal) a spinner per stage; otherwise a line per message
    /// handled, and every [`HEARTBEAT`] without one a line naming the work in progress, so
    /// that a log shows the run as it goes. Ctrl-C stops at the next safe point (see
    /// [`crate::interrupt`]): every message not handled then is moved to its stage's
    /// dead-letter queue with that reason, so that `tascomi redrive` repeats exactly it, and
    /// [`LocalPipeline::interrupted`] is set.
    pub async fn settle(&self, progress: bool) -> anyhow::Result<BTreeMap<Stage, StageReport>> {
        let mut reports: BTreeMap<Stage, StageReport> = BTreeMap::new();
        if self.interrupted() {
            return Ok(reports);
        }
        let _careful = interrupt::Careful::begin();
        let bars = MultiProgress::new();
        if !progress {
            bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let lines = (!progress).then(|| self.progress_lines());
        let style = ProgressStyle::with_template("{spinner} {prefix:>8} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let mut bar_of = BTreeMap::new();
        for stage in self.runners.keys() {
            let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()));
            bar.set_prefix(stage.name());
            bar.set_message("waiting");
            bar_of.insert(*stage, bar);
        }
        'settle: loop {
            for (stage, runner) in &self.runners {
                if interrupt::requested() {
                    break 'settle;
                }
                let bar = &bar_of[stage];
                bar.enable_steady_tick(Duration::from_millis(120));
                bar.set_message("running");
                let started = Instant::now();
                let done = runner.drain(Duration::from_millis(30)).await;
                let report = reports.entry(*stage).or_default();
                report.elapsed += started.elapsed();
                for disposition in done {
                    match disposition {
                        Disposition::Done { .. } => report.handled += 1,
                        Disposition::Discarded(_) => report.discarded += 1,
                        Disposition::DeadLettered(_) => report.dead_lettered += 1,
                        Disposition::Retrying { .. } => {}
                    }
                }
                bar.disable_steady_tick();
                bar.set_message(format!(
                    "{} handled, {} skipped, {} failed in {:.1} s",
                    report.handled,
                    report.discarded,
                    report.dead_lettered,
                    report.elapsed.as_secs_f64()
                ));
            }
            if interrupt::requested() || self.all_empty().await? {
                break;
            }
            // Messages waiting out a retry delay: let it pass.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
                () = interrupt::reached(interrupt::Level::AtSafePoint) => {}
            }
        }
        for bar in bar_of.values() {
            bar.finish();
        }
        if let Some(lines) = lines {
            lines.abort();
            self.print_finished();
        }
        for (stage, dead_lettered) in self.park_unrun().await? {
            reports.entry(stage).or_default().dead_lettered += dead_lettered;
        }
        if interrupt::requested() {
            self.park_interrupted().await?;
            self.interrupted
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        self.save_dead_letters()?;
        Ok(reports)
    }

    /// True once Ctrl-C stopped a settle (see [`LocalPipeline::settle`]).
    pub fn interrupted(&self) -> bool {
        self.interrupted.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Prints the messages finished since the last call, one line each, on stderr.
    fn print_finished(&self) {
        let finished: Vec<Finished> = std::mem::take(&mut lock(&self.activity).finished);
        print_progress(&finished);
    }

    /// Prints progress lines while the stages run: the messages finished, and a line naming
    /// the work in progress after [`HEARTBEAT`] without any.
    fn progress_lines(&self) -> tokio::task::JoinHandle<()> {
        let activity = self.activity.clone();
        tokio::spawn(async move {
            let mut quiet_since = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let (finished, in_flight) = {
                    let mut a = lock(&activity);
                    let in_flight: Vec<String> = a
                        .in_flight
                        .values()
                        .map(|(stage, table, started)| {
                            format!(
                                "{stage} {table} ({})",
                                crate::health::human_duration(started.elapsed())
                            )
                        })
                        .collect();
                    (std::mem::take(&mut a.finished), in_flight)
                };
                print_progress(&finished);
                if !finished.is_empty() {
                    quiet_since = Instant::now();
                } else if quiet_since.elapsed() >= HEARTBEAT && !in_flight.is_empty() {
                    eprintln!("progress: still running: {}", in_flight.join(", "));
                    quiet_since = Instant::now();
                }
            }
        })
    }

    /// After Ctrl-C: every message still held by a stage's queue (waiting, retrying, or
    /// abandoned while in progress) goes to that stage's dead-letter queue, saying so.
    async fn park_interrupted(&self) -> anyhow::Result<()> {
        for (stage, queue) in &self.queues {
            for (body, mut attributes) in queue.entries() {
                attributes.insert(
                    "failure_reason".into(),
                    format!(
                        "not handled: interrupted (Ctrl-C) before the {stage} stage finished it; nothing of it is published"
                    ),
                );
                attributes.insert("failed_stage".into(), stage.name().into());
                attributes.insert(INTERRUPTED_ATTRIBUTE.into(), "true".into());
                self.dead_letters[stage].send(&body, &attributes).await?;
            }
        }
        Ok(())
    }

    /// Moves the messages waiting for a stage that is not built here to its dead-letter queue,
    /// with the reason: the queue itself dies with the process, the dead-letter file does not.
    async fn park_unrun(&self) -> anyhow::Result<Vec<(Stage, usize)>> {
        let mut parked = Vec::new();
        for (stage, queue) in &self.queues {
            if self.runners.contains_key(stage) {
                continue;
            }
            let mut count = 0;
            loop {
                let received = queue.receive(10, Duration::ZERO).await?;
                if received.is_empty() {
                    break;
                }
                for message in received {
                    let mut attributes = message.attributes.clone();
                    attributes.insert(
                        "failure_reason".into(),
                        format!(
                            "the {stage} stage does not run here (the embedded default runs ingest only with --api-url and the keys): not handled"
                        ),
                    );
                    attributes.insert("failed_stage".into(), stage.name().into());
                    self.dead_letters[stage]
                        .send(&message.body, &attributes)
                        .await?;
                    queue.acknowledge(&message.receipt).await?;
                    count += 1;
                }
            }
            if count > 0 {
                parked.push((*stage, count));
            }
        }
        Ok(parked)
    }

    async fn all_empty(&self) -> anyhow::Result<bool> {
        for (stage, queue) in &self.queues {
            if !self.runners.contains_key(stage) {
                continue;
            }
            let depth = queue.depth().await?;
            if depth.visible + depth.in_flight > 0 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The messages in a stage's dead-letter queue.
    pub fn dead_letters(&self, stage: Stage) -> Vec<DeadLetter> {
        self.dead_letters[&stage]
            .entries()
            .into_iter()
            .map(|(body, attributes)| DeadLetter { body, attributes })
            .collect()
    }

    fn save_dead_letters(&self) -> anyhow::Result<()> {
        for stage in Stage::ALL {
            let path = dead_letter_path(&self.data_dir, stage);
            let letters = self.dead_letters(stage);
            if letters.is_empty() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let mut text = String::new();
            for letter in letters {
                text.push_str(&serde_json::to_string(&letter)?);
                text.push('\n');
            }
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Written aside, then renamed: a crash leaves the old file or the new, never half.
            let partial = path.with_extension("jsonl.partial");
            std::fs::write(&partial, text)
                .with_context(|| format!("writing {}", partial.display()))?;
            std::fs::rename(&partial, &path)
                .with_context(|| format!("replacing {}", path.display()))?;
        }
        Ok(())
    }
}

/// One line per "snapshot published" event put since the last call, in order: what downstream
/// jobs are told on AWS (EventBridge). A repeat of a run already announced says so.
pub fn announcements(events: &LocalEventSink) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let lines: Vec<String> = events
        .take()
        .iter()
        .filter_map(|event| event.snapshot_published())
        .map(|s| {
            let again = if seen.insert(s.run_id.clone()) {
                ""
            } else {
                " (again)"
            };
            format!(
                "announced {:<28} snapshot_date={} rows={} {}{again}",
                s.table, s.snapshot_date, s.rows, s.location
            )
        })
        .collect();
    if lines.is_empty() {
        return vec!["announced no snapshot".into()];
    }
    lines
}

/// One progress line per finished message, on stderr.
fn print_progress(finished: &[Finished]) {
    for f in finished {
        eprintln!(
            "progress: {:<8} {}: {} ({})",
            f.stage.name(),
            f.table,
            f.outcome,
            crate::health::human_duration(f.took)
        );
    }
}
