//! Storage faults: an HTTP proxy between the stages' AWS SDK clients and moto that answers a
//! seeded share of requests with a fault instead of moto's answer.
//!
//! Point an [`aws_config::SdkConfig`] at [`FaultProxy::endpoint`] (see [`FaultProxy::sdk_config`])
//! and every S3, SQS and Glue call of the clients built from it passes through the proxy. Each
//! request draws once from a generator seeded with [`FaultPlan::seed`] and the request's number,
//! and is either forwarded to moto or answered with one of the faults of [`Fault`]. The proxy
//! counts requests and faults per kind ([`FaultCounts`]) so tests can say how many faults the
//! pipeline survived.
//!
//! [`StageRunners`] builds the four stages as runners over any SDK configuration and a
//! [`MotoDeployment`]'s buckets, catalog and queues, so a test can run them through the proxy
//! (or run two sets of consumers on the same queues).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::config::PipelineFile;
use common::dictionary::ColumnTypes;
use common::platform::Platform;
use common::queue::{Queue, Received, SqsQueue};
use common::runner::{Disposition, Handler, Runner, RunnerSettings};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tascomi_sim::SimHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::MotoDeployment;

/// What the proxy does to a share of the requests. Shares are probabilities per request; their
/// sum must be at most 1.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    pub seed: u64,
    /// Answered `500 InternalError` without reaching moto.
    pub internal_error: f64,
    /// Answered `503 SlowDown` without reaching moto.
    pub slow_down: f64,
    /// The connection is closed without an answer; the request does not reach moto.
    pub drop_request: f64,
    /// Forwarded to moto (so it takes effect), then the connection is closed without passing
    /// the answer on: the client cannot tell whether its write happened. Never applied to SQS
    /// `ReceiveMessage`, where it would only hide messages for the visibility timeout.
    pub lose_response: f64,
    /// SQS requests are always forwarded: only storage and catalog fail.
    pub spare_sqs: bool,
}

impl FaultPlan {
    /// No faults: every request is forwarded.
    pub fn none() -> Self {
        Self {
            seed: 0,
            internal_error: 0.0,
            slow_down: 0.0,
            drop_request: 0.0,
            lose_response: 0.0,
            spare_sqs: false,
        }
    }
}

/// One kind of injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    InternalError,
    SlowDown,
    DropRequest,
    LoseResponse,
}

/// What the proxy has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub requests: u64,
    /// Requests moto answered (including those whose answer was then lost).
    pub forwarded: u64,
    pub internal_errors: u64,
    pub slow_downs: u64,
    pub dropped_requests: u64,
    pub lost_responses: u64,
    /// Requests per service, from the request's shape.
    pub s3: u64,
    pub sqs: u64,
    pub glue: u64,
}

impl FaultCounts {
    pub fn faults(&self) -> u64 {
        self.internal_errors + self.slow_downs + self.dropped_requests + self.lost_responses
    }
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests (s3 {}, sqs {}, glue {}), {} faults: {} InternalError 500, {} SlowDown 503, \
             {} dropped before moto, {} answers lost after moto",
            self.requests,
            self.s3,
            self.sqs,
            self.glue,
            self.faults(),
            self.internal_errors,
            self.slow_downs,
            self.dropped_requests,
            self.lost_responses
        )
    }
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    forwarded: AtomicU64,
    internal_errors: AtomicU64,
    slow_downs: AtomicU64,
    dropped_requests: AtomicU64,
    lost_responses: AtomicU64,
    s3: AtomicU64,
    sqs: AtomicU64,
    glue: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    plan: std::sync::Mutex<FaultPlan>,
    counters: Counters,
    http: reqwest::Client,
}

/// A running proxy. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// The connection is to be closed without an answer.
#[derive(Debug)]
struct CloseConnection;

impl std::fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fault injected: connection closed without an answer")
    }
}

impl std::error::Error for CloseConnection {}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (moto's endpoint URL).
    pub async fn start(upstream: &str, plan: FaultPlan) -> std::io::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(std::io::Error::other)?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            plan: std::sync::Mutex::new(plan),
            counters: Counters::default(),
            http,
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, shared.clone(), stop.clone()));
        Ok(Self { addr, shared, stop })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `sdk` with its endpoint replaced by the proxy's (credentials, region, retry and timeout
    /// settings unchanged). Built afresh rather than from `sdk.to_builder()`: the environment's
    /// `AWS_ENDPOINT_URL` travels in the copied service configuration and would win.
    pub fn sdk_config(&self, sdk: &aws_config::SdkConfig) -> aws_config::SdkConfig {
        let mut builder = aws_config::SdkConfig::builder().endpoint_url(self.endpoint());
        builder
            .set_behavior_version(sdk.behavior_version())
            .set_region(sdk.region().cloned())
            .set_credentials_provider(sdk.credentials_provider())
            .set_retry_config(sdk.retry_config().cloned())
            .set_timeout_config(sdk.timeout_config().cloned())
            .set_sleep_impl(sdk.sleep_impl())
            .set_time_source(sdk.time_source())
            .set_http_client(sdk.http_client());
        builder.build()
    }

    /// Replaces the plan (e.g. no faults while a test checks the result).
    pub fn set_plan(&self, plan: FaultPlan) {
        *self.shared.plan.lock().unwrap_or_else(|p| p.into_inner()) = plan;
    }

    pub fn counts(&self) -> FaultCounts {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
        FaultCounts {
            requests: get(&c.requests),
            forwarded: get(&c.forwarded),
            internal_errors: get(&c.internal_errors),
            slow_downs: get(&c.slow_downs),
            dropped_requests: get(&c.dropped_requests),
            lost_responses: get(&c.lost_responses),
            s3: get(&c.s3),
            sqs: get(&c.sqs),
            glue: get(&c.glue),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "fault proxy: accept failed");
                    continue;
                }
            },
        };
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                async move { handle(&shared, request).await }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // An error here is mostly an injected fault: the service's error closes the
            // connection without an answer, which is the point.
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection => {}
            }
        });
    }
}

/// A uniform draw in [0, 1) from the seed and the request's number (SplitMix64).
fn draw(seed: u64, n: u64) -> f64 {
    let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The AWS JSON protocols (SQS, Glue) name the operation in `X-Amz-Target`; S3 is REST-XML.
fn target(request: &Request<Incoming>) -> Option<String> {
    request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn choose(plan: &FaultPlan, n: u64, target: Option<&str>) -> Option<Fault> {
    if plan.spare_sqs && target.is_some_and(|t| t.starts_with("AmazonSQS.")) {
        return None;
    }
    let x = draw(plan.seed, n);
    let mut edge = 0.0;
    for (share, fault) in [
        (plan.internal_error, Fault::InternalError),
        (plan.slow_down, Fault::SlowDown),
        (plan.drop_request, Fault::DropRequest),
        (plan.lose_response, Fault::LoseResponse),
    ] {
        edge += share;
        if x < edge {
            if fault == Fault::LoseResponse && target == Some("AmazonSQS.ReceiveMessage") {
                return None;
            }
            return Some(fault);
        }
    }
    None
}

/// The error answer a service sends: S3's XML document, or the JSON protocols' `__type` object.
fn error_response(
    status: StatusCode,
    json: bool,
    content_type: Option<&str>,
    n: u64,
) -> Response<Full<Bytes>> {
    let (code, message) = match (status, json) {
        (StatusCode::SERVICE_UNAVAILABLE, false) => {
            ("SlowDown", "Please reduce your request rate.")
        }
        (StatusCode::SERVICE_UNAVAILABLE, true) => ("ThrottlingException", "Rate exceeded"),
        (_, false) => (
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        (_, true) => ("InternalFailure", "The request processing has failed."),
    };
    let (body, content_type) = if json {
        (
            format!(r#"{{"__type":"{code}","message":"{message}"}}"#),
            content_type
                .unwrap_or("application/x-amz-json-1.1")
                .to_owned(),
        )
    } else {
        (
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{message}</Message><RequestId>faultproxy{n}</RequestId></Error>"
            ),
            "application/xml".to_owned(),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    if let Ok(value) = format!("faultproxy{n}").parse() {
        response.headers_mut().insert("x-amz-request-id", value);
    }
    response
}

/// Headers that belong to one connection, or that the forwarding client sets itself.
const NOT_FORWARDED: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "expect",
    "upgrade",
    "proxy-connection",
];

async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let c = &shared.counters;
    let n = c.requests.fetch_add(1, Ordering::SeqCst);
    let target = target(&request);
    match target.as_deref() {
        Some(t) if t.starts_with("AmazonSQS.") => &c.sqs,
        Some(t) if t.starts_with("AWSGlue.") => &c.glue,
        _ => &c.s3,
    }
    .fetch_add(1, Ordering::SeqCst);
    let plan = shared
        .plan
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let fault = choose(&plan, n, target.as_deref());
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match fault {
        Some(Fault::InternalError) => {
            c.internal_errors.fetch_add(1, Ordering::SeqCst);
            return Ok(error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                target.is_some(),
                content_type.as_deref(),
                n,
            ));
        }
        Some(Fault::SlowDown) => {
            c.slow_downs.fetch_add(1, Ordering::SeqCst);
            return Ok(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                target.is_some(),
                content_type.as_deref(),
                n,
            ));
        }
        Some(Fault::DropRequest) => {
            c.dropped_requests.fetch_add(1, Ordering::SeqCst);
            return Err(CloseConnection);
        }
        Some(Fault::LoseResponse) | None => {}
    }

    let (parts, body) = request.into_parts();
    // A body that breaks off means the client went away: nothing to answer.
    let body = body
        .collect()
        .await
        .map_err(|_| CloseConnection)?
        .to_bytes();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut forward = shared
        .http
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            forward = forward.header(name, value);
        }
    }
    let answer = match forward.send().await {
        Ok(answer) => answer,
        Err(err) => {
            tracing::warn!(error = %err, "fault proxy: moto did not answer");
            return Err(CloseConnection);
        }
    };
    let status = answer.status();
    let headers = answer.headers().clone();
    let body = answer.bytes().await.map_err(|_| CloseConnection)?;
    c.forwarded.fetch_add(1, Ordering::SeqCst);
    if fault == Some(Fault::LoseResponse) {
        c.lost_responses.fetch_add(1, Ordering::SeqCst);
        return Err(CloseConnection);
    }
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    for (name, value) in &headers {
        // Content-Length is kept: a HEAD answer has none of the body it describes.
        if !matches!(
            name.as_str(),
            "connection" | "keep-alive" | "transfer-encoding"
        ) {
            response.headers_mut().append(name, value.clone());
        }
    }
    Ok(response)
}

/// The four stages as runners over the queues of a [`MotoDeployment`], with storage, catalog
/// and queue clients built from any SDK configuration (e.g. one pointing at a [`FaultProxy`]).
/// Two `StageRunners` on one deployment are two consumers of every queue.
#[derive(Debug)]
pub struct StageRunners {
    ingest: Runner<ingest_svc::IngestStage>,
    parse: Runner<parse_svc::ParseStage>,
    recast: Runner<recast_svc::RecastStage>,
    snapshot: Runner<snapshot_svc::SnapshotStage>,
}

fn runner<H: Handler>(
    sdk: &aws_config::SdkConfig,
    deployment: &MotoDeployment,
    stage: usize,
    handler: H,
    settings: &RunnerSettings,
) -> Runner<H> {
    let queue = |url: &str| -> Arc<dyn Queue> { Arc::new(SqsQueue::new(sdk, url.to_owned())) };
    Runner::new(
        Arc::new(handler),
        queue(&deployment.queues[stage].url),
        Some(queue(&deployment.queues[stage + 1].url)),
        Some(queue(&deployment.queues[stage].dead_letter_url)),
        settings.clone(),
    )
}

impl StageRunners {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        deployment: &MotoDeployment,
        sim: &SimHandle,
        pipeline: &PipelineFile,
        dictionary: ColumnTypes,
        settings: &RunnerSettings,
    ) -> Self {
        let platform = Platform::aws(sdk, &deployment.env).expect("platform settings");
        let ingest = ingest_svc::IngestStage::new(
            platform.clone(),
            pipeline.clone(),
            ingest_svc::IngestSettings::new(&sim.base_url),
            sim.credentials(),
        )
        .expect("ingest stage");
        let parse =
            parse_svc::ParseStage::new(platform.clone(), pipeline.clone(), Default::default());
        let recast = recast_svc::RecastStage::new(
            platform.clone(),
            pipeline.clone(),
            dictionary,
            Default::default(),
        );
        let snapshot =
            snapshot_svc::SnapshotStage::new(platform, pipeline.clone(), Default::default());
        Self {
            ingest: runner(sdk, deployment, 0, ingest, settings),
            parse: runner(sdk, deployment, 1, parse, settings),
            recast: runner(sdk, deployment, 2, recast, settings),
            snapshot: runner(sdk, deployment, 3, snapshot, settings),
        }
    }

    /// Handles one delivery of stage `stage` (0 ingest .. 3 snapshot) end to end, as that
    /// stage's runner does with what it receives (so a test decides which consumer gets which
    /// delivery).
    pub async fn process(&self, stage: usize, received: Received) -> Disposition {
        match stage {
            0 => self.ingest.process(received).await,
            1 => self.parse.process(received).await,
            2 => self.recast.process(received).await,
            3 => self.snapshot.process(received).await,
            _ => panic!("there are four stages, not {}", stage + 1),
        }
    }

    /// Drains each stage's queue once, in pipeline order; what happened to each message.
    pub async fn drain(&self) -> Vec<Disposition> {
        let idle = Duration::from_millis(100);
        let mut all = self.ingest.drain(idle).await;
        all.extend(self.parse.drain(idle).await);
        all.extend(self.recast.drain(idle).await);
        all.extend(self.snapshot.drain(idle).await);
        all
    }

    /// Drains until the deployment's four stage queues are empty (read through the
    /// deployment's own, direct clients), or panics after `limit`.
    pub async fn settle(&self, deployment: &MotoDeployment, limit: Duration) -> Vec<Disposition> {
        let started = Instant::now();
        let mut all = Vec::new();
        loop {
            all.extend(self.drain().await);
            let mut waiting = BTreeMap::new();
            for (name, q) in crate::STAGES.iter().zip(&deployment.queues) {
                let depth = q.input.depth().await.expect("queue depth");
                if depth.visible + depth.in_flight > 0 {
                    waiting.insert(*name, depth.visible + depth.in_flight);
                }
            }
            if waiting.is_empty() {
                return all;
            }
            assert!(
                started.elapsed() < limit,
                "the pipeline did not settle in {limit:?}: {waiting:?} waiting"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[test]
    fn draws_are_uniform_enough_and_seeded() {
        let hits = (0..10_000).filter(|n| draw(7, *n) < 0.15).count();
        assert!((1_300..1_700).contains(&hits), "{hits}");
        assert_eq!(draw(7, 3), draw(7, 3));
        assert_ne!(draw(7, 3), draw(8, 3));
    }

    #[test]
    fn shares_pick_faults_in_order_and_spare_receives_from_lost_answers() {
        let plan = FaultPlan {
            seed: 1,
            internal_error: 0.0,
            slow_down: 0.0,
            drop_request: 0.0,
            lose_response: 1.0,
            spare_sqs: false,
        };
        assert_eq!(choose(&plan, 0, None), Some(Fault::LoseResponse));
        assert_eq!(choose(&plan, 0, Some("AmazonSQS.ReceiveMessage")), None);
        let spared = FaultPlan {
            spare_sqs: true,
            ..plan.clone()
        };
        assert_eq!(choose(&spared, 0, Some("AmazonSQS.SendMessage")), None);
        assert_eq!(
            choose(&spared, 0, Some("AWSGlue.GetPartition")),
            Some(Fault::LoseResponse)
        );
        assert_eq!(choose(&FaultPlan::none(), 0, None), None);
    }

    #[tokio::test]
    async fn faults_are_http_errors_or_closed_connections() {
        // An upstream that answers "ok" to everything.
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = upstream.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (stream, _) = upstream.accept().await.unwrap();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let proxy = FaultProxy::start(&format!("http://{upstream_addr}"), FaultPlan::none())
            .await
            .unwrap();
        let client = reqwest::Client::new();
        let get = || {
            client
                .get(format!("{}/bucket/key", proxy.endpoint()))
                .send()
        };
        assert_eq!(get().await.unwrap().text().await.unwrap(), "ok");

        let only = |share: fn(&mut FaultPlan)| {
            let mut plan = FaultPlan::none();
            share(&mut plan);
            plan
        };
        proxy.set_plan(only(|p| p.internal_error = 1.0));
        let answer = get().await.unwrap();
        assert_eq!(answer.status(), 500);
        assert!(
            answer
                .text()
                .await
                .unwrap()
                .contains("<Code>InternalError</Code>")
        );
        proxy.set_plan(only(|p| p.slow_down = 1.0));
        let answer = client
            .post(proxy.endpoint())
            .header("x-amz-target", "AWSGlue.GetPartition")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 503);
        assert!(answer.text().await.unwrap().contains("ThrottlingException"));
        proxy.set_plan(only(|p| p.drop_request = 1.0));
        assert!(get().await.is_err(), "closed without an answer");
        proxy.set_plan(only(|p| p.lose_response = 1.0));
        assert!(get().await.is_err(), "closed without an answer");

        let counts = proxy.counts();
        assert_eq!(
            (
                counts.requests,
                counts.forwarded,
                counts.internal_errors,
                counts.slow_downs,
                counts.dropped_requests,
                counts.lost_responses
            ),
            (5, 2, 1, 1, 1, 1)
        );
        assert_eq!((counts.s3, counts.glue), (4, 1));
    }
}
