//! Where an operation acts: a deployment (SQS, S3, Glue, named by the environment) or a local
//! data directory (the embedded default, whose stages run in this process).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

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

    /// Takes every message out of a stage's dead-letter queue: `Ok` means the caller now owns
    /// them (they are deleted from the queue only after `put_back` or `forward` sent them on).
    pub async fn redrive(&self, stage: Stage) -> anyhow::Result<Vec<DeadLetter>> {
        let (dlq, queue): (Arc<dyn Queue>, Arc<dyn Queue>) = match self {
            Target::Local(local) => (
                Arc::new(local.dead_letter_queue(stage).clone()),
                Arc::new(local.queue(stage).clone()),
            ),
            Target::Aws(aws) => (
                aws.dead_letter_queue(stage)?.clone(),
                aws.queue(stage)?.clone(),
            ),
        };
        let mut moved = Vec::new();
        loop {
            let received = dlq.receive(10, Duration::from_secs(1)).await?;
            if received.is_empty() {
                break;
            }
            for message in received {
                let mut attributes = message.attributes.clone();
                let letter = DeadLetter {
                    body: message.body.clone(),
                    attributes: attributes.clone(),
                };
                // The reason belonged to the failed attempt.
                attributes.remove("failure_reason");
                attributes.remove("failed_stage");
                // Sent before deleted: a crash in between duplicates, never loses.
                queue.send(&message.body, &attributes).await?;
                dlq.acknowledge(&message.receipt).await?;
                moved.push(letter);
            }
        }
        Ok(moved)
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
