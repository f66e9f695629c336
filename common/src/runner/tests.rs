use super::*;
use crate::layout::Layer;
use crate::messages::{IngestMode, IngestRequest};
use crate::queue::MemoryQueue;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Publishes into a set (so a duplicate delivery is visible as a second publication) and
/// fails on demand.
#[derive(Debug, Default)]
struct FakeStage {
    published: Mutex<Vec<String>>,
    calls: AtomicUsize,
}

#[async_trait]
impl Handler for FakeStage {
    type Message = IngestRequest;
    fn stage(&self) -> &'static str {
        "fake"
    }
    fn is_known_table(&self, table: &TableName) -> bool {
        table.as_str() != "unknown_table"
    }
    async fn handle(&self, m: IngestRequest) -> Result<Vec<PartitionReady>, Failure> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        match m.table.as_str() {
            "flaky" if n == 0 => return Err(Failure::transient(anyhow::anyhow!("throttled"))),
            "stuck" => {
                return Err(Failure::transient(anyhow::anyhow!(
                    "increment of 20261109 not published yet"
                )));
            }
            "broken" => return Err(Failure::permanent(anyhow::anyhow!("page 3 is not JSON"))),
            "done_already" => return Err(Failure::Discard("already published".into())),
            "slow" => tokio::time::sleep(Duration::from_millis(300)).await,
            _ => {}
        }
        let mut published = self.published.lock().unwrap();
        if !published.contains(&m.table.to_string()) {
            published.push(m.table.to_string());
        }
        let layout = crate::Layout {
            raw_bucket: "raw".into(),
            refined_bucket: "refined".into(),
            database_prefix: "t".into(),
        };
        let p = layout.partition(
            &m.table,
            Layer::Raw,
            chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap(),
        );
        Ok(vec![PartitionReady::new(
            &p,
            format!("s3://raw/{}", p.key_prefix()),
            "run".into(),
            None,
        )])
    }
}

struct Harness {
    input: MemoryQueue,
    next: MemoryQueue,
    dlq: MemoryQueue,
    stage: Arc<FakeStage>,
    runner: Arc<Runner<FakeStage>>,
}

fn harness(visibility: Duration) -> Harness {
    let input = MemoryQueue::new("in", visibility);
    let next = MemoryQueue::new("next", visibility);
    let dlq = MemoryQueue::new("dlq", visibility);
    let stage = Arc::new(FakeStage::default());
    let settings = RunnerSettings {
        visibility_timeout: visibility,
        wait_time: Duration::from_millis(50),
        shutdown_grace: Duration::from_millis(100),
        retry_base: Duration::from_millis(100),
        ..Default::default()
    };
    let runner = Arc::new(Runner::new(
        stage.clone(),
        Arc::new(input.clone()),
        Some(Arc::new(next.clone())),
        Some(Arc::new(dlq.clone())),
        settings,
    ));
    Harness {
        input,
        next,
        dlq,
        stage,
        runner,
    }
}

fn request(table: &str) -> String {
    messages::encode(&IngestRequest {
        table: table.parse().unwrap(),
        mode: IngestMode::Incremental,
        requested_by: "test".into(),
        as_of: None,
        since: None,
    })
}

#[tokio::test]
async fn same_message_twice_publishes_once_and_forwards_trace_context() {
    let h = harness(Duration::from_secs(30));
    let attrs = BTreeMap::from([(
        "traceparent".to_string(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
    )]);
    h.input.send(&request("appeals"), &attrs).await.unwrap();
    h.input.send(&request("appeals"), &attrs).await.unwrap();
    let done = h.runner.drain(Duration::from_millis(50)).await;
    assert_eq!(done, vec![Disposition::Done { sent: 1 }; 2]);
    assert_eq!(*h.stage.published.lock().unwrap(), ["appeals"]);
    assert!(h.input.bodies().is_empty(), "both acknowledged");
    let forwarded = h.next.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(forwarded.len(), 2);
    assert!(forwarded[0].attributes["traceparent"].contains("4bf92f3577b34da6a3ce929d0e0e4736"));
    let m: PartitionReady = messages::decode(&forwarded[0].body, |_| true).unwrap();
    assert_eq!(m.layer, Layer::Raw);
}

#[tokio::test]
async fn classes_decide_the_fate_of_a_message() {
    let h = harness(Duration::from_secs(30));
    for body in [
        request("broken"),
        request("done_already"),
        "{not json".into(),
        request("unknown_table"),
    ] {
        h.input.send(&body, &BTreeMap::new()).await.unwrap();
    }
    let done = h.runner.drain(Duration::from_millis(50)).await;
    assert_eq!(done.len(), 4);
    assert!(matches!(&done[0], Disposition::DeadLettered(r) if r.contains("page 3 is not JSON")));
    assert!(matches!(&done[1], Disposition::Discarded(r) if r == "already published"));
    assert!(matches!(&done[2], Disposition::DeadLettered(r) if r.contains("not a JSON object")));
    assert!(matches!(&done[3], Disposition::DeadLettered(r) if r.contains("not configured")));
    assert!(h.input.bodies().is_empty());
    let dead = h.dlq.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(dead.len(), 3);
    assert!(dead[0].attributes["failure_reason"].contains("page 3"));
    assert_eq!(dead[0].attributes["failed_stage"], "fake");
    assert!(h.next.bodies().is_empty());
}

#[tokio::test]
async fn transient_failures_retry_after_a_backoff_then_succeed() {
    let h = harness(Duration::from_secs(30));
    h.input
        .send(&request("flaky"), &BTreeMap::new())
        .await
        .unwrap();
    let first = h.runner.drain(Duration::from_millis(10)).await;
    assert!(
        matches!(&first[0], Disposition::Retrying { reason, after } if reason == "throttled" && *after == Duration::from_millis(100))
    );
    assert_eq!(h.input.bodies().len(), 1, "left on the queue");
    let second = h.runner.drain(Duration::from_millis(300)).await;
    assert_eq!(second, vec![Disposition::Done { sent: 1 }]);
}

#[tokio::test]
async fn a_message_still_failing_on_its_last_receive_is_dead_lettered_with_the_reason() {
    let mut h = harness(Duration::from_secs(30));
    let settings = RunnerSettings {
        retry_base: Duration::from_millis(1),
        max_receives: 3,
        ..h.runner.settings.clone()
    };
    h.runner = Arc::new(Runner::new(
        h.stage.clone(),
        Arc::new(h.input.clone()),
        Some(Arc::new(h.next.clone())),
        Some(Arc::new(h.dlq.clone())),
        settings,
    ));
    h.input
        .send(&request("stuck"), &BTreeMap::new())
        .await
        .unwrap();
    let mut dispositions = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        dispositions.extend(h.runner.drain(Duration::from_millis(10)).await);
    }
    assert_eq!(dispositions.len(), 3, "{dispositions:?}");
    assert!(matches!(&dispositions[0], Disposition::Retrying { .. }));
    assert!(matches!(&dispositions[1], Disposition::Retrying { .. }));
    assert!(
        matches!(&dispositions[2], Disposition::DeadLettered(r) if r.contains("after 3 receives") && r.contains("20261109")),
        "{dispositions:?}"
    );
    assert!(
        h.input.bodies().is_empty(),
        "acknowledged once dead-lettered"
    );
    let dead = h.dlq.receive(10, Duration::ZERO).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].attributes["failure_reason"].contains("not published yet"));
}

#[tokio::test]
async fn a_slow_message_stays_invisible_while_it_is_handled() {
    // Visibility 100 ms, handling 300 ms: without the heartbeat a second consumer would get it.
    let h = harness(Duration::from_millis(100));
    h.input
        .send(&request("slow"), &BTreeMap::new())
        .await
        .unwrap();
    let runner = h.runner.clone();
    let first = tokio::spawn(async move { runner.drain(Duration::from_millis(10)).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let stolen = h.input.receive(1, Duration::ZERO).await.unwrap();
    assert!(stolen.is_empty(), "redelivered while in flight");
    assert_eq!(first.await.unwrap(), vec![Disposition::Done { sent: 1 }]);
}

#[tokio::test]
async fn run_stops_on_shutdown_after_finishing_in_flight_work() {
    let h = harness(Duration::from_secs(30));
    h.input
        .send(&request("appeals"), &BTreeMap::new())
        .await
        .unwrap();
    let token = CancellationToken::new();
    let task = tokio::spawn(h.runner.clone().run(token.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    token.cancel();
    task.await.unwrap().unwrap();
    assert!(h.input.bodies().is_empty());
    assert_eq!(h.next.bodies().len(), 1);
}

#[test]
fn settings_from_env_name_the_bad_variable() {
    let env = Env::from_pairs([("TASCOMI_CONCURRENCY", "0")]);
    let err = RunnerSettings::from_env(&env).unwrap_err().to_string();
    assert!(err.contains("TASCOMI_CONCURRENCY"), "{err}");
    let env = Env::from_pairs([("TASCOMI_VISIBILITY_TIMEOUT_SECS", "5m")]);
    let err = RunnerSettings::from_env(&env).unwrap_err().to_string();
    assert!(
        err.contains("TASCOMI_VISIBILITY_TIMEOUT_SECS=\"5m\""),
        "{err}"
    );
    let err = RunnerSettings::from_env(&Env::from_pairs([("TASCOMI_MAX_RECEIVES", "0")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("TASCOMI_MAX_RECEIVES"), "{err}");
    let s = RunnerSettings::from_env(&Env::default()).unwrap();
    assert_eq!(s.visibility_timeout, Duration::from_secs(300));
    assert_eq!(s.max_receives, DEFAULT_MAX_RECEIVES);
}
