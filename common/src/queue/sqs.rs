//! [`Queue`] on Amazon SQS (or moto, LocalStack).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName, QueueAttributeName};

use super::{Queue, QueueDepth, QueueError, Received, Result};
use crate::aws::classify;

/// SQS's longest long poll.
const MAX_WAIT_SECS: u64 = 20;

/// How long a dead-letter queue keeps a message: SQS's maximum, 14 days, so that an operator
/// back from a long weekend still finds it.
const DLQ_RETENTION_SECS: u32 = 14 * 24 * 60 * 60;

/// One SQS queue, addressed by its URL.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    name: String,
}

impl SqsQueue {
    pub fn new(config: &SdkConfig, queue_url: impl Into<String>) -> Self {
        let url = queue_url.into();
        Self {
            client: aws_sdk_sqs::Client::new(config),
            name: queue_name(&url).to_owned(),
            url,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn error<E>(&self, operation: &'static str, err: &SdkError<E>) -> QueueError
    where
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        QueueError {
            queue: self.name.clone(),
            operation,
            message: classify(err).message,
        }
    }

    fn malformed(&self, operation: &'static str, message: impl Into<String>) -> QueueError {
        QueueError {
            queue: self.name.clone(),
            operation,
            message: message.into(),
        }
    }
}

/// The queue name: the last path segment of its URL (`https://sqs.../123456789012/name`).
fn queue_name(url: &str) -> &str {
    url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
}

#[async_trait]
impl Queue for SqsQueue {
    fn name(&self) -> &str {
        &self.name
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>> {
        let max = i32::try_from(max.clamp(1, 10)).unwrap_or(10);
        // Whole seconds only; at most 20, so a longer `wait` returns early with nothing, which
        // the contract allows.
        let wait_secs = i32::try_from(wait.as_secs().min(MAX_WAIT_SECS)).unwrap_or(20);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_secs)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|err| self.error("receive", &err))?;

        output
            .messages()
            .iter()
            .map(|message| {
                let (Some(message_id), Some(receipt)) =
                    (message.message_id(), message.receipt_handle())
                else {
                    return Err(self.malformed(
                        "receive",
                        "a received message lacks its id or receipt handle",
                    ));
                };
                let attributes = message
                    .message_attributes()
                    .into_iter()
                    .flatten()
                    .filter_map(|(name, value)| {
                        Some((name.clone(), value.string_value()?.to_owned()))
                    })
                    .collect();
                let receive_count = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|count| count.parse().ok())
                    .unwrap_or(1);
                Ok(Received {
                    message_id: message_id.to_owned(),
                    body: message.body().unwrap_or_default().to_owned(),
                    attributes,
                    receipt: receipt.to_owned(),
                    receive_count,
                })
            })
            .collect()
    }

    async fn acknowledge(&self, receipt: &str) -> Result<()> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|err| self.error("acknowledge", &err))?;
        Ok(())
    }

    async fn extend_visibility(&self, receipt: &str, timeout: Duration) -> Result<()> {
        // SQS counts in whole seconds, up to 12 hours; rounding up never shortens the promise.
        let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let secs = i32::try_from(secs.min(12 * 60 * 60)).unwrap_or(12 * 60 * 60);
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(secs)
            .send()
            .await
            .map_err(|err| self.error("extend visibility", &err))?;
        Ok(())
    }

    async fn send(&self, body: &str, attributes: &BTreeMap<String, String>) -> Result<()> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body);
        for (name, value) in attributes {
            // SQS refuses an empty attribute value (and with it the whole message); an empty
            // value carries nothing a reader would miss.
            if value.is_empty() {
                continue;
            }
            let value = MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|err| self.malformed("send", format!("attribute {name}: {err}")))?;
            request = request.message_attributes(name, value);
        }
        request
            .send()
            .await
            .map_err(|err| self.error("send", &err))?;
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|err| self.error("depth", &err))?;
        let count = |name: &QueueAttributeName| {
            output
                .attributes()
                .and_then(|a| a.get(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(QueueDepth {
            visible: count(&QueueAttributeName::ApproximateNumberOfMessages),
            in_flight: count(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        })
    }
}

impl SqsQueue {
    /// Creates (or updates) a queue and its dead-letter queue; returns their URLs `(queue, dlq)`.
    ///
    /// Idempotent: existing queues are reused and their attributes set to the given ones. A
    /// message received `max_receive_count` times without being acknowledged moves to the
    /// dead-letter queue on its next receive. For `ctl` and tests; the services only use queues.
    pub async fn create_queue_with_dlq(
        config: &SdkConfig,
        name: &str,
        dlq_name: &str,
        max_receive_count: u32,
        visibility_timeout_secs: u32,
    ) -> Result<(String, String)> {
        let client = aws_sdk_sqs::Client::new(config);

        let dlq_url = create_or_get(&client, dlq_name).await?;
        set_attributes(
            &client,
            dlq_name,
            &dlq_url,
            vec![(
                QueueAttributeName::MessageRetentionPeriod,
                DLQ_RETENTION_SECS.to_string(),
            )],
        )
        .await?;
        let dlq_arn = client
            .get_queue_attributes()
            .queue_url(&dlq_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|err| setup_error(dlq_name, "get queue arn", &err))?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .ok_or_else(|| QueueError {
                queue: dlq_name.to_owned(),
                operation: "get queue arn",
                message: "the response holds no QueueArn".to_owned(),
            })?;

        let url = create_or_get(&client, name).await?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": dlq_arn,
            "maxReceiveCount": max_receive_count.to_string(),
        });
        set_attributes(
            &client,
            name,
            &url,
            vec![
                (
                    QueueAttributeName::VisibilityTimeout,
                    visibility_timeout_secs.to_string(),
                ),
                (QueueAttributeName::RedrivePolicy, redrive.to_string()),
            ],
        )
        .await?;
        Ok((url, dlq_url))
    }
}

/// Attributes are set after creation rather than at it, because `CreateQueue` refuses an
/// existing name whose attributes differ; this way a changed setting is applied, not refused.
async fn create_or_get(client: &aws_sdk_sqs::Client, name: &str) -> Result<String> {
    let output = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|err| setup_error(name, "create queue", &err))?;
    output
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| QueueError {
            queue: name.to_owned(),
            operation: "create queue",
            message: "the response holds no queue url".to_owned(),
        })
}

async fn set_attributes(
    client: &aws_sdk_sqs::Client,
    name: &str,
    url: &str,
    attributes: Vec<(QueueAttributeName, String)>,
) -> Result<()> {
    client
        .set_queue_attributes()
        .queue_url(url)
        .set_attributes(Some(attributes.into_iter().collect()))
        .send()
        .await
        .map_err(|err| setup_error(name, "set queue attributes", &err))?;
    Ok(())
}

fn setup_error<E>(queue: &str, operation: &'static str, err: &SdkError<E>) -> QueueError
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    QueueError {
        queue: queue.to_owned(),
        operation,
        message: classify(err).message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_the_last_segment_of_the_url() {
        assert_eq!(
            queue_name("https://sqs.eu-west-2.amazonaws.com/123456789012/tascomi-parse"),
            "tascomi-parse"
        );
        assert_eq!(queue_name("http://127.0.0.1:5077/123456789012/q/"), "q");
        assert_eq!(queue_name("q"), "q");
    }
}
