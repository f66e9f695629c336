//! Message queues: the narrow interface a stage needs from SQS.
//!
//! Implementations: [`SqsQueue`] (aws-sdk-sqs) and [`MemoryQueue`] (in-process, the embedded
//! default), which honours visibility timeouts and redrives to a dead-letter queue like SQS.

mod memory;
mod sqs;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;

pub use memory::MemoryQueue;
pub use sqs::SqsQueue;

#[derive(Debug, thiserror::Error)]
#[error("queue {queue}: {operation} failed: {message}")]
pub struct QueueError {
    pub queue: String,
    pub operation: &'static str,
    pub message: String,
}

pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// A received message. It stays invisible to other consumers until its visibility timeout runs
/// out; then it is delivered again unless acknowledged.
#[derive(Debug, Clone)]
pub struct Received {
    pub message_id: String,
    pub body: String,
    /// String message attributes (the trace context travels here).
    pub attributes: BTreeMap<String, String>,
    /// The handle for `acknowledge` and `extend_visibility`, valid for this delivery only.
    pub receipt: String,
    /// How many times the message has been delivered, this delivery included.
    pub receive_count: u32,
}

/// Depth of a queue, for `status` and scaling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Messages waiting to be received.
    pub visible: u64,
    /// Messages received and not yet acknowledged.
    pub in_flight: u64,
}

/// A queue.
///
/// Contract: delivery is at least once. `receive` waits up to `wait` for the first message and
/// returns at most `max` (1..=10). `acknowledge` deletes the delivered message (acknowledging a
/// handle twice is not an error). `send` returns once the queue holds the message.
#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// A name for logs (the queue name, never credentials).
    fn name(&self) -> &str;

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>>;

    async fn acknowledge(&self, receipt: &str) -> Result<()>;

    /// Makes the message invisible for `timeout` from now.
    async fn extend_visibility(&self, receipt: &str, timeout: Duration) -> Result<()>;

    async fn send(&self, body: &str, attributes: &BTreeMap<String, String>) -> Result<()>;

    async fn depth(&self) -> Result<QueueDepth>;
}
