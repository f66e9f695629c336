//! Where an operation acts: a deployment (SQS, S3, Glue, named by the environment) or a local
//! data directory (the embedded default, whose stages run in this process).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use common::config::{Env, PipelineFile};
use common::platform::Platform;
use common::queue::{Queue, QueueDepth, SqsQueue};

use crate::local::{DeadLetter, LocalPipeline};
use crate::stage::Stage;

/// A deployment on AWS: S3 and Glue names as the services read them (`TASCOMI_RAW_BUCKET`,
/// `TASCOMI_REFINED_BUCKET`, `TASCOMI_DATABASE_PREFIX`), and per stage
/// `TASCOMI_<STAGE>_QUEUE_URL` and `TASCOMI_<STAGE>_DEAD_LETTER_QUEUE_URL`
/// (`TASCOMI_INGEST_QUEUE_URL`, ...). Terraform outputs them all.
#[derive(Debug)]
pub struct AwsTarget {
    pub platform: Platform,
    pub pipeline: PipelineFile,
    queues: BTreeMap<Stage, Arc<dyn Queue>>,
    dead_letters: BTreeMap<Stage, Arc<dyn Queue>>,
}

impl AwsTarget {
    pub async fn from_env(env: &Env, pipeline: PipelineFile) -> anyhow::Result<Self> {
        let sdk = common::aws::load_sdk_config().await;
        let platform = Platform::aws(&sdk, env)?;
        let mut queues: BTreeMap<Stage, Arc<dyn Queue>> = BTreeMap::new();
        let mut dead_letters: BTreeMap<Stage, Arc<dyn Queue>> = BTreeMap::new();
        for stage in Stage::ALL {
            let name = stage.env_name();
            if let Some(url) = env.get(&format!("TASCOMI_{name}_QUEUE_URL")) {
                queues.insert(stage, Arc::new(SqsQueue::new(&sdk, url)));
            }
            if let Some(url) = env.get(&format!("TASCOMI_{name}_DEAD_LETTER_QUEUE_URL")) {
                dead_letters.insert(stage, Arc::new(SqsQueue::new(&sdk, url)));
            }
        }
        Ok(Self {
            platform,
            pipeline,
            queues,
            dead_letters,
        })
    }

    fn queue(&self, stage: Stage) -> anyhow::Result<&Arc<dyn Queue>> {
        self.queues.get(&stage).ok_or_else(|| {
            anyhow::anyhow!(
                "TASCOMI_{}_QUEUE_URL is required for this command",
                stage.env_name()
            )
        })
    }

    fn dead_letter_queue(&self, stage: Stage) -> anyhow::Result<&Arc<dyn Queue>> {
        self.dead_letters.get(&stage).ok_or_else(|| {
            anyhow::anyhow!(
                "TASCOMI_{}_DEAD_LETTER_QUEUE_URL is required for this command",
                stage.env_name()
            )
        })
    }
}

/// The target of an operation.
#[derive(Debug)]
pub enum Target {
    Local(Box<LocalPipeline>),
    Aws(Box<AwsTarget>),
}

impl Target {
    pub fn platform(&self) -> &Platform {
        match self {
            Target::Local(local) => &local.platform,
            Target::Aws(aws) => &aws.platform,
        }
    }

    /// The embedded default, when that is the target.
    pub fn local(&self) -> Option<&LocalPipeline> {
        match self {
            Target::Local(local) => Some(local),
            Target::Aws(_) => None,
        }
    }

    pub fn pipeline(&self) -> &PipelineFile {
        match self {
            Target::Local(local) => &local.pipeline,
            Target::Aws(aws) => &aws.pipeline,
        }
    }

    /// Puts a message on a stage's queue.
    pub async fn send(&self, stage: Stage, body: &str) -> anyhow::Result<()> {
        let attributes = BTreeMap::new();
        match self {
            Target::Local(local) => local.queue(stage).send(body, &attributes).await?,
            Target::Aws(aws) => aws.queue(stage)?.send(body, &attributes).await?,
        }
        Ok(())
    }

    /// Lets the sent messages take effect: on the embedded default the stages run now, to the
    /// end; on AWS the services pick them up by themselves.
    pub async fn settle(&self) -> anyhow::Result<()> {
        if let Target::Local(local) = self {
            local.settle(false).await?;
        }
        Ok(())
    }

    /// Moves every message of a stage's dead-letter queue back to the stage's queue and returns
    /// them as they were (with the reason they failed).
    ///
    /// Never loses one: each message is sent to the stage's queue first and deleted from the
    /// dead-letter queue only after the send succeeded, so a failure (or a crash) in between
    /// leaves it in both places (a duplicate, which every stage makes harmless), never in
    /// neither. On AWS, where the services run while this moves messages, a message whose body
    /// this call already sent back (one that failed again meanwhile) is not sent twice: it is
    /// left in the dead-letter queue, visible again, and the redrive stops.
    ///
    /// This only moves messages: on the embedded default the caller then runs the stages
    /// (`settle`); on AWS the services pick them up.
    pub async fn redrive(&self, stage: Stage) -> anyhow::Result<Vec<DeadLetter>> {
        let (dlq, queue): (Arc<dyn Queue>, Arc<dyn Queue>) = match self {
            Target::Local(local) => {
                anyhow::ensure!(
                    local.runs(stage),
                    "the {stage} stage does not run here, so its messages cannot be redriven: the embedded default runs ingest only with --api-url and the keys (TASCOMI_PUBLIC_KEY, TASCOMI_PRIVATE_KEY)"
                );
                (
                    Arc::new(local.dead_letter_queue(stage).clone()),
                    Arc::new(local.queue(stage).clone()),
                )
            }
            Target::Aws(aws) => (
                aws.dead_letter_queue(stage)?.clone(),
                aws.queue(stage)?.clone(),
            ),
        };
        let mut moved: Vec<DeadLetter> = Vec::new();
        let mut sent = std::collections::BTreeSet::new();
        // Ctrl-C stops between two messages: each is either moved or left, never lost.
        let _careful = crate::interrupt::Careful::begin();
        'receive: loop {
            if crate::interrupt::requested() {
                break;
            }
            let received = dlq.receive(10, Duration::from_secs(1)).await?;
            if received.is_empty() {
                break;
            }
            for (i, message) in received.iter().enumerate() {
                let interrupted = crate::interrupt::requested();
                if interrupted || (matches!(self, Target::Aws(_)) && sent.contains(&message.body)) {
                    // Back already: leave this one and the rest of the batch where they are.
                    for left in &received[i..] {
                        if let Err(err) = dlq.extend_visibility(&left.receipt, Duration::ZERO).await
                        {
                            tracing::warn!(error = %err, "could not make a dead letter visible again; it will be after the queue's visibility timeout");
                        }
                    }
                    break 'receive;
                }
                let letter = DeadLetter {
                    body: message.body.clone(),
                    attributes: message.attributes.clone(),
                };
                // The reason belonged to the failed attempt.
                let mut attributes = message.attributes.clone();
                attributes.remove("failure_reason");
                attributes.remove("failed_stage");
                attributes.remove("interrupted");
                queue
                    .send(&message.body, &attributes)
                    .await
                    .with_context(|| {
                        format!(
                            "sending a dead letter back to the {stage} queue ({} moved before this one; the rest are still in the dead-letter queue)",
                            moved.len()
                        )
                    })?;
                dlq.acknowledge(&message.receipt).await.with_context(|| {
                    format!(
                        "deleting a redriven message from the {stage} dead-letter queue (it is on the {stage} queue too: a duplicate, harmless)"
                    )
                })?;
                sent.insert(message.body.clone());
                moved.push(letter);
            }
        }
        Ok(moved)
    }

    /// Up to `max` of the messages in a stage's dead-letter queue, left where they are. On AWS
    /// they are received and at once made visible again (their receive count goes up by one;
    /// a redrive running at the same moment may miss them and says how many are left).
    pub async fn peek_dead_letters(
        &self,
        stage: Stage,
        max: usize,
    ) -> anyhow::Result<Vec<DeadLetter>> {
        let dlq = match self {
            Target::Local(local) => {
                return Ok(local.dead_letters(stage).into_iter().take(max).collect());
            }
            Target::Aws(aws) => match aws.dead_letters.get(&stage) {
                Some(dlq) => dlq.clone(),
                None => return Ok(Vec::new()),
            },
        };
        let mut letters = Vec::new();
        let mut receipts = Vec::new();
        let mut result = Ok(());
        while letters.len() < max {
            match dlq
                .receive((max - letters.len()).min(10), Duration::ZERO)
                .await
            {
                Ok(received) if received.is_empty() => break,
                Ok(received) => {
                    for message in received {
                        receipts.push(message.receipt);
                        letters.push(DeadLetter {
                            body: message.body,
                            attributes: message.attributes,
                        });
                    }
                }
                Err(err) => {
                    result = Err(err);
                    break;
                }
            }
        }
        for receipt in &receipts {
            if let Err(err) = dlq.extend_visibility(receipt, Duration::ZERO).await {
                tracing::warn!(error = %err, "could not make a dead letter visible again; it will be after the queue's visibility timeout");
            }
        }
        result.with_context(|| format!("reading the {stage} dead-letter queue"))?;
        Ok(letters)
    }

    /// Per stage: (queue depth, messages in the dead-letter queue), where known.
    pub async fn queue_depths(&self) -> anyhow::Result<Vec<(Stage, QueueDepth, Option<u64>)>> {
        let mut out = Vec::new();
        for stage in Stage::ALL {
            match self {
                Target::Local(local) => {
                    let depth = local.queue(stage).depth().await?;
                    let dead = local.dead_letters(stage).len() as u64;
                    out.push((stage, depth, Some(dead)));
                }
                Target::Aws(aws) => {
                    let Some(queue) = aws.queues.get(&stage) else {
                        continue;
                    };
                    let depth = queue.depth().await?;
                    let dead = match aws.dead_letters.get(&stage) {
                        Some(dlq) => {
                            let d = dlq.depth().await?;
                            Some(d.visible + d.in_flight)
                        }
                        None => None,
                    };
                    out.push((stage, depth, dead));
                }
            }
        }
        Ok(out)
    }
}
