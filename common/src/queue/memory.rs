//! An in-process queue with SQS semantics, for the embedded default and unit tests.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Queue, QueueDepth, QueueError, Received, Result};

/// An in-process queue that behaves like SQS where the stages can tell the difference:
/// a received message is hidden for the visibility timeout and delivered again when it runs out
/// unacknowledged; a message received more than `max_receives` times moves to the dead-letter
/// queue instead of being delivered (SQS's redrive policy); receipts are per delivery, so a
/// stale receipt cannot delete a redelivered message.
#[derive(Debug, Clone)]
pub struct MemoryQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    visibility_timeout: Duration,
    redrive: Option<(MemoryQueue, u32)>,
    state: Mutex<Vec<Entry>>,
    arrived: Notify,
}

#[derive(Debug)]
struct Entry {
    id: String,
    body: String,
    attributes: BTreeMap<String, String>,
    visible_at: Instant,
    receive_count: u32,
    receipt: Option<String>,
}

impl MemoryQueue {
    pub fn new(name: impl Into<String>, visibility_timeout: Duration) -> Self {
        Self::build(name.into(), visibility_timeout, None)
    }

    /// A queue whose messages move to `dead_letter` on their `max_receives + 1`-th receive.
    pub fn with_dead_letter(
        name: impl Into<String>,
        visibility_timeout: Duration,
        dead_letter: MemoryQueue,
        max_receives: u32,
    ) -> Self {
        Self::build(
            name.into(),
            visibility_timeout,
            Some((dead_letter, max_receives)),
        )
    }

    fn build(
        name: String,
        visibility_timeout: Duration,
        redrive: Option<(MemoryQueue, u32)>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                name,
                visibility_timeout,
                redrive,
                state: Mutex::new(Vec::new()),
                arrived: Notify::new(),
            }),
        }
    }

    /// Every message body held, visible or not, oldest first (for tests and `status`).
    pub fn bodies(&self) -> Vec<String> {
        self.lock().iter().map(|e| e.body.clone()).collect()
    }

    /// Every message held with its attributes, visible or not, oldest first.
    pub fn entries(&self) -> Vec<(String, BTreeMap<String, String>)> {
        self.lock()
            .iter()
            .map(|e| (e.body.clone(), e.attributes.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // A panic while holding the lock cannot leave the Vec inconsistent: every mutation is
        // a single push, remove or field assignment.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, body: String, attributes: BTreeMap<String, String>) {
        self.lock().push(Entry {
            id: uuid::Uuid::new_v4().to_string(),
            body,
            attributes,
            visible_at: Instant::now(),
            receive_count: 0,
            receipt: None,
        });
        self.inner.arrived.notify_waiters();
    }

    /// Takes what is visible now: (delivered, moved to the dead-letter queue).
    fn take_visible(&self, max: usize) -> (Vec<Received>, Vec<Entry>) {
        let now = Instant::now();
        let mut state = self.lock();
        let mut delivered = Vec::new();
        let mut dead = Vec::new();
        let mut i = 0;
        while i < state.len() && delivered.len() < max {
            if state[i].visible_at > now {
                i += 1;
                continue;
            }
            if let Some((_, max_receives)) = &self.inner.redrive
                && state[i].receive_count >= *max_receives
            {
                dead.push(state.remove(i));
                continue;
            }
            let entry = &mut state[i];
            entry.receive_count += 1;
            entry.visible_at = now + self.inner.visibility_timeout;
            let receipt = uuid::Uuid::new_v4().to_string();
            entry.receipt = Some(receipt.clone());
            delivered.push(Received {
                message_id: entry.id.clone(),
                body: entry.body.clone(),
                attributes: entry.attributes.clone(),
                receipt,
                receive_count: entry.receive_count,
            });
            i += 1;
        }
        (delivered, dead)
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    fn name(&self) -> &str {
        &self.inner.name
    }

    async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Received>> {
        let deadline = Instant::now() + wait;
        loop {
            let arrived = self.inner.arrived.notified();
            let (delivered, dead) = self.take_visible(max.clamp(1, 10));
            if let Some((dead_letter, _)) = &self.inner.redrive {
                for entry in dead {
                    dead_letter.push(entry.body, entry.attributes);
                }
            }
            if !delivered.is_empty() || Instant::now() >= deadline {
                return Ok(delivered);
            }
            // Wake on a new message, or soon enough to notice a visibility timeout running out.
            let nap = deadline.min(Instant::now() + Duration::from_millis(25));
            tokio::select! {
                _ = arrived => {}
                _ = tokio::time::sleep_until(nap) => {}
            }
        }
    }

    async fn acknowledge(&self, receipt: &str) -> Result<()> {
        self.lock()
            .retain(|e| e.receipt.as_deref() != Some(receipt));
        Ok(())
    }

    async fn extend_visibility(&self, receipt: &str, timeout: Duration) -> Result<()> {
        let mut state = self.lock();
        match state
            .iter_mut()
            .find(|e| e.receipt.as_deref() == Some(receipt))
        {
            Some(entry) => {
                entry.visible_at = Instant::now() + timeout;
                Ok(())
            }
            None => Err(QueueError {
                queue: self.inner.name.clone(),
                operation: "extend_visibility",
                message: "receipt is no longer valid (acknowledged or redelivered)".into(),
            }),
        }
    }

    async fn send(&self, body: &str, attributes: &BTreeMap<String, String>) -> Result<()> {
        self.push(body.to_owned(), attributes.clone());
        Ok(())
    }

    async fn depth(&self) -> Result<QueueDepth> {
        let now = Instant::now();
        let state = self.lock();
        let visible = state.iter().filter(|e| e.visible_at <= now).count() as u64;
        Ok(QueueDepth {
            visible,
            in_flight: state.len() as u64 - visible,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_WAIT: Duration = Duration::ZERO;

    fn attrs() -> BTreeMap<String, String> {
        BTreeMap::from([("traceparent".to_string(), "00-abc-def-01".to_string())])
    }

    #[tokio::test]
    async fn delivers_with_attributes_and_forgets_acknowledged_messages() {
        let q = MemoryQueue::new("q", Duration::from_secs(30));
        q.send("one", &attrs()).await.unwrap();
        let got = q.receive(10, NO_WAIT).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].body, "one");
        assert_eq!(got[0].attributes, attrs());
        assert_eq!(got[0].receive_count, 1);
        assert_eq!(
            q.depth().await.unwrap(),
            QueueDepth {
                visible: 0,
                in_flight: 1
            }
        );
        q.acknowledge(&got[0].receipt).await.unwrap();
        q.acknowledge(&got[0].receipt).await.unwrap();
        assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
    }

    #[tokio::test(start_paused = true)]
    async fn redelivers_after_the_visibility_timeout() {
        let q = MemoryQueue::new("q", Duration::from_secs(30));
        q.send("one", &BTreeMap::new()).await.unwrap();
        let first = q.receive(1, NO_WAIT).await.unwrap();
        assert!(
            q.receive(1, NO_WAIT).await.unwrap().is_empty(),
            "hidden while in flight"
        );
        tokio::time::advance(Duration::from_secs(31)).await;
        let again = q.receive(1, NO_WAIT).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].receive_count, 2);
        // The first delivery's receipt no longer deletes it.
        q.acknowledge(&first[0].receipt).await.unwrap();
        assert_eq!(q.bodies(), ["one"]);
        q.acknowledge(&again[0].receipt).await.unwrap();
        assert!(q.bodies().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn extending_visibility_keeps_a_message_hidden() {
        let q = MemoryQueue::new("q", Duration::from_secs(10));
        q.send("one", &BTreeMap::new()).await.unwrap();
        let got = q.receive(1, NO_WAIT).await.unwrap();
        tokio::time::advance(Duration::from_secs(8)).await;
        q.extend_visibility(&got[0].receipt, Duration::from_secs(10))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(q.receive(1, NO_WAIT).await.unwrap().is_empty());
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(q.receive(1, NO_WAIT).await.unwrap().len(), 1);
        let err = q
            .extend_visibility(&got[0].receipt, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no longer valid"));
    }

    #[tokio::test(start_paused = true)]
    async fn moves_to_the_dead_letter_queue_after_max_receives() {
        let dlq = MemoryQueue::new("dlq", Duration::from_secs(30));
        let q = MemoryQueue::with_dead_letter("q", Duration::from_secs(1), dlq.clone(), 2);
        q.send("poison", &attrs()).await.unwrap();
        for expected in 1..=2 {
            let got = q.receive(1, NO_WAIT).await.unwrap();
            assert_eq!(got[0].receive_count, expected);
            tokio::time::advance(Duration::from_secs(2)).await;
        }
        assert!(q.receive(1, NO_WAIT).await.unwrap().is_empty());
        assert!(q.bodies().is_empty());
        let dead = dlq.receive(1, NO_WAIT).await.unwrap();
        assert_eq!(dead[0].body, "poison");
        assert_eq!(dead[0].attributes, attrs());
    }

    #[tokio::test]
    async fn long_poll_wakes_when_a_message_arrives() {
        let q = MemoryQueue::new("q", Duration::from_secs(30));
        let sender = q.clone();
        let waiter = tokio::spawn(async move { q.receive(1, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        sender.send("late", &BTreeMap::new()).await.unwrap();
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(got[0].body, "late");
    }

    #[tokio::test]
    async fn receive_returns_at_most_max() {
        let q = MemoryQueue::new("q", Duration::from_secs(30));
        for i in 0..15 {
            q.send(&i.to_string(), &BTreeMap::new()).await.unwrap();
        }
        assert_eq!(q.receive(3, NO_WAIT).await.unwrap().len(), 3);
        assert_eq!(q.receive(100, NO_WAIT).await.unwrap().len(), 10);
        assert_eq!(q.receive(100, NO_WAIT).await.unwrap().len(), 2);
    }
}
