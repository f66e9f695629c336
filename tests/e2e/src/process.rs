//! The four stages as real OS processes on a moto deployment, for crash tests: each stage is the
//! `stage` binary of this package (`CARGO_BIN_EXE_stage`, the same `common::service::run` as the
//! services' `main`), configured only through its environment, and killed with SIGKILL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::platform::Platform;
use common::queue::{QueueDepth, SqsQueue};
use tascomi_sim::SimHandle;
use tokio::process::{Child, Command};

use crate::{MotoDeployment, STAGES, StageQueues};

/// A small seeded generator (SplitMix64): the same seed gives the same kill moments.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A duration drawn uniformly from `[0, max]` (millisecond steps).
    pub fn up_to(&mut self, max: Duration) -> Duration {
        let millis = max.as_millis() as u64;
        Duration::from_millis(self.next_u64() % (millis + 1))
    }
}

/// How the stage processes are run.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// The `stage` binary.
    pub program: PathBuf,
    /// `TASCOMI_VISIBILITY_TIMEOUT_SECS`: how soon a killed process's message comes back.
    pub visibility_timeout_secs: u32,
    /// Files for the processes' logs (one per stage, appended to by every start).
    pub log_dir: PathBuf,
    /// The pipeline file and column-type dictionary the services load.
    pub pipeline_file: PathBuf,
    pub dictionary_file: PathBuf,
}

/// What the kills of one stage did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashStats {
    /// SIGKILLs sent to a running stage process.
    pub kills: usize,
    /// Kills after the process had taken a message off the queue (by SQS's approximate counts:
    /// fewer visible or more in-flight messages than when it started).
    pub kills_after_receive: usize,
    /// Kills while the process was handling a message: its log shows an event of the message
    /// (the first is its first request to S3 or Glue) and not the end of it.
    pub kills_mid_message: usize,
    /// Messages delivered again because none was visible: all handled, or held by killed
    /// processes (duplicates, as at-least-once delivery and crashes after publishing give).
    pub redelivered: usize,
}

impl std::ops::AddAssign for CrashStats {
    fn add_assign(&mut self, other: Self) {
        self.kills += other.kills;
        self.kills_after_receive += other.kills_after_receive;
        self.kills_mid_message += other.kills_mid_message;
        self.redelivered += other.redelivered;
    }
}

/// A moto deployment whose stages run as processes. Its queues give a message up to the
/// dead-letter queue only after 1000 receives: the test kills far more often than a real
/// deployment crashes, and the dead-letter threshold (infra's default 5) is for poison messages,
/// which other tests cover.
pub struct ProcessDeployment {
    /// Buckets, platform and the operator's environment (its queues and runners are unused).
    pub moto: MotoDeployment,
    /// ingest, parse, recast, snapshot, downstream.
    pub queues: Vec<StageQueues>,
    settings: ProcessSettings,
    env: Vec<(String, String)>,
}

impl std::fmt::Debug for ProcessDeployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessDeployment")
            .field("unique", &self.moto.unique)
            .finish()
    }
}

impl ProcessDeployment {
    pub async fn new(
        sdk: &aws_config::SdkConfig,
        sim: &SimHandle,
        pipeline: &PipelineFile,
        dictionary: ColumnTypes,
        settings: ProcessSettings,
    ) -> Self {
        let moto = MotoDeployment::new(sdk, sim, pipeline, dictionary).await;
        let mut queues = Vec::new();
        for name in STAGES.iter().chain(&["downstream"]) {
            let queue = format!("{}-p{name}", moto.unique);
            let (url, dead_letter_url) = SqsQueue::create_queue_with_dlq(
                sdk,
                &queue,
                &format!("{queue}-dlq"),
                1000,
                settings.visibility_timeout_secs,
            )
            .await
            .expect("queues created");
            queues.push(StageQueues {
                input: Arc::new(SqsQueue::new(sdk, url.clone())),
                dead_letter: Arc::new(SqsQueue::new(sdk, dead_letter_url.clone())),
                url,
                dead_letter_url,
            });
        }
        let var = |name: &str| {
            (
                name.to_owned(),
                moto.env.get(name).expect("deployment variable").to_owned(),
            )
        };
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let env = vec![
            var("TASCOMI_RAW_BUCKET"),
            var("TASCOMI_REFINED_BUCKET"),
            var("TASCOMI_DATABASE_PREFIX"),
            (
                "TASCOMI_PIPELINE_FILE".into(),
                path(&settings.pipeline_file),
            ),
            (
                "TASCOMI_COLUMN_TYPE_DICTIONARY".into(),
                path(&settings.dictionary_file),
            ),
            ("TASCOMI_API_BASE_URL".into(), sim.base_url.clone()),
            ("TASCOMI_PUBLIC_KEY".into(), sim.public_key.clone()),
            ("TASCOMI_PRIVATE_KEY".into(), sim.private_key.clone()),
            (
                "TASCOMI_VISIBILITY_TIMEOUT_SECS".into(),
                settings.visibility_timeout_secs.to_string(),
            ),
            ("TASCOMI_WAIT_TIME_SECS".into(), "1".into()),
            ("TASCOMI_RETRY_BASE_SECS".into(), "1".into()),
            // As the queues' maxReceiveCount: kills make many receives, none of them a failure.
            ("TASCOMI_MAX_RECEIVES".into(), "1000".into()),
            ("TASCOMI_SHUTDOWN_GRACE_SECS".into(), "1".into()),
            ("TASCOMI_CONCURRENCY".into(), "2".into()),
            // The SDK's debug event at each request, inside the message's span, shows that a
            // message is being handled (see `unfinished_messages`).
            (
                "RUST_LOG".into(),
                "info,aws_smithy_runtime::client::orchestrator=debug".into(),
            ),
        ];
        Self {
            moto,
            queues,
            settings,
            env,
        }
    }

    pub fn platform(&self) -> &Platform {
        &self.moto.platform
    }

    /// The log file of a stage's processes.
    pub fn log_path(&self, stage: usize) -> PathBuf {
        self.settings
            .log_dir
            .join(format!("{}-{}.log", self.moto.unique, STAGES[stage]))
    }

    /// Starts stage `stage` (0 = ingest ... 3 = snapshot) as a process, logging to its file.
    pub fn spawn(&self, stage: usize) -> Child {
        let name = STAGES[stage];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(stage))
            .expect("log file");
        let log_err = log.try_clone().expect("log file");
        let next = self.queues[stage + 1].url.clone();
        Command::new(&self.settings.program)
            .arg(name)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("TASCOMI_QUEUE_URL", &self.queues[stage].url)
            .env("TASCOMI_NEXT_QUEUE_URL", next)
            .env(
                "TASCOMI_DEAD_LETTER_QUEUE_URL",
                &self.queues[stage].dead_letter_url,
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .kill_on_drop(true)
            .spawn()
            .expect("stage process started")
    }

    pub async fn depth(&self, stage: usize) -> QueueDepth {
        self.queues[stage].input.depth().await.expect("queue depth")
    }

    /// Sends a message to a stage's queue.
    pub async fn send(&self, stage: usize, body: &str) {
        self.queues[stage]
            .input
            .send(body, &BTreeMap::new())
            .await
            .expect("send");
    }

    /// Runs stage `stage` as one process until its queue is empty (nothing visible, nothing in
    /// flight), then stops it. Returns how long that took.
    pub async fn run_stage(&self, stage: usize, timeout: Duration) -> Duration {
        let started = Instant::now();
        let mut child = self.spawn(stage);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let depth = self.depth(stage).await;
            if depth.visible == 0 && depth.in_flight == 0 {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the {} process exited with {status}; see its log in {}",
                    STAGES[stage],
                    self.settings.log_dir.display()
                );
            }
            assert!(
                started.elapsed() < timeout,
                "the {} stage did not empty its queue within {timeout:?} ({depth:?})",
                STAGES[stage]
            );
        }
        let took = started.elapsed();
        // The queue is empty and every message acknowledged: nothing left to interrupt.
        child.kill().await.expect("stop the stage process");
        took
    }

    /// Takes every message off a stage's queue and returns their bodies, one per partition:
    /// of several deliveries naming the same partition (different runs of the stage before),
    /// the last one received.
    pub async fn take_messages(&self, stage: usize) -> Vec<String> {
        let queue = &self.queues[stage].input;
        let mut by_partition = BTreeMap::new();
        loop {
            let depth = self.depth(stage).await;
            if depth.visible == 0 && depth.in_flight == 0 {
                break;
            }
            for m in queue
                .receive(10, Duration::from_millis(500))
                .await
                .expect("receive")
            {
                let mut key: serde_json::Value =
                    serde_json::from_str(&m.body).expect("messages are JSON");
                if let Some(object) = key.as_object_mut() {
                    object.remove("run_id");
                    object.remove("location");
                }
                by_partition.insert(key.to_string(), m.body.clone());
                queue.acknowledge(&m.receipt).await.expect("acknowledge");
            }
        }
        by_partition.into_values().collect()
    }

    /// Runs stage `stage` as processes killed with SIGKILL `kills` times, each a moment drawn
    /// from `[0, window]` after its start, on the stage's messages `inputs` (sent here). When no
    /// message is visible (all handled, or held by killed processes until their visibility
    /// timeout), there is new work before the next start: `inputs` again, as at-least-once
    /// delivery may, or with `upstream`, that stage's messages handled by it to the end, so the
    /// stage gets messages naming new runs (a stage that acknowledges its own duplicates without
    /// work, as the snapshot does, would otherwise be killed while doing nothing).
    /// Leaves the queue for [`Self::run_stage`].
    pub async fn crash_stage(
        &self,
        stage: usize,
        inputs: &[String],
        upstream: Option<(usize, &[String])>,
        kills: usize,
        window: Duration,
        rng: &mut Rng,
    ) -> CrashStats {
        for body in inputs {
            self.send(stage, body).await;
        }
        let mut stats = CrashStats::default();
        while stats.kills < kills {
            let before = self.depth(stage).await;
            if before.visible == 0 {
                match upstream {
                    None => {
                        for body in inputs {
                            self.send(stage, body).await;
                        }
                        stats.redelivered += inputs.len();
                    }
                    Some((upstream, upstream_inputs)) => {
                        for body in upstream_inputs {
                            self.send(upstream, body).await;
                        }
                        self.run_stage(upstream, Duration::from_secs(120)).await;
                        stats.redelivered += upstream_inputs.len();
                    }
                }
                continue;
            }
            let log_start = std::fs::metadata(self.log_path(stage)).map_or(0, |m| m.len());
            let mut child = self.spawn(stage);
            tokio::time::sleep(rng.up_to(window)).await;
            let at_kill = self.depth(stage).await;
            // Child::kill is SIGKILL on Unix: no shutdown hook, no grace, no release.
            child.kill().await.expect("SIGKILL the stage process");
            stats.kills += 1;
            if at_kill.visible < before.visible || at_kill.in_flight > before.in_flight {
                stats.kills_after_receive += 1;
            }
            if unfinished_messages(&read_from(&self.log_path(stage), log_start)) > 0 {
                stats.kills_mid_message += 1;
            }
        }
        stats
    }

    /// The reasons of the messages in every stage's dead-letter queue (taking them out).
    pub async fn dead_letters(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        for q in &self.queues[..4] {
            loop {
                let messages = q
                    .dead_letter
                    .receive(10, Duration::ZERO)
                    .await
                    .expect("receive");
                if messages.is_empty() {
                    break;
                }
                for m in messages {
                    reasons.push(
                        m.attributes
                            .get("failure_reason")
                            .cloned()
                            .unwrap_or_else(|| format!("(no reason) {}", m.body)),
                    );
                    q.dead_letter.acknowledge(&m.receipt).await.expect("ack");
                }
            }
        }
        reasons
    }
}

/// A file's text from byte `offset` on (empty when unreadable).
fn read_from(path: &Path, offset: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut text = Vec::new();
    if let Ok(mut file) = std::fs::File::open(path)
        && file.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = file.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// How many messages a process's log (`tracing`'s text format) shows begun and not ended: an
/// event in a `message{... message_id=X ...}` span, and no "message handled", "discarded",
/// "will be retried" or "failed permanently" for X.
pub fn unfinished_messages(log: &str) -> usize {
    const ENDS: [&str; 4] = [
        "message handled",
        "message discarded",
        "message will be retried",
        "message failed permanently",
    ];
    let mut open = std::collections::BTreeSet::new();
    for line in strip_ansi(log).lines() {
        let Some(rest) = line.split_once("message_id=").map(|(_, rest)| rest) else {
            continue;
        };
        let id: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if ENDS.iter().any(|end| line.contains(end)) {
            open.remove(&id);
        } else {
            open.insert(id);
        }
    }
    open.len()
}

/// The text without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfinished_messages_are_those_begun_and_not_ended() {
        let log = "\u{1b}[2m2026\u{1b}[0m INFO message{stage=\"parse\" \u{1b}[3mmessage_id\u{1b}[0m=a-1 receive_count=1}: parsing\n\
                   INFO message{stage=\"parse\" message_id=a-1 receive_count=1}: message handled sent=1\n\
                   INFO message{stage=\"parse\" message_id=b-2 receive_count=2}:handle{}: reading\n\
                   INFO runner started\n";
        assert_eq!(unfinished_messages(log), 1);
        assert_eq!(unfinished_messages(""), 0);
    }

    #[test]
    fn the_generator_is_seeded() {
        let draws = |seed| {
            let mut rng = Rng::new(seed);
            (0..5)
                .map(|_| rng.up_to(Duration::from_millis(900)))
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(7), draws(7));
        assert_ne!(draws(7), draws(8));
        assert!(draws(7).iter().all(|d| *d <= Duration::from_millis(900)));
    }
}
