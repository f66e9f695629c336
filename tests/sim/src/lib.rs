//! A simulated Tascomi REST API for tests and the local demo.
//!
//! It behaves like the vendor's API as far as the pipeline can tell:
//! - `GET {base_url}<table>?page=N[&last_updated=YYYY-MM-DD]` with `X-Public` and `X-Hash`
//!   checked by the real algorithm (`ingest_svc::auth`), accepting the previous and next minute;
//!   anything else is a 401;
//! - pages of [`SimConfig::per_page`] records with `X-Number-Of-Results` and
//!   `X-Results-Per-Page`; 202 with an empty body when nothing matches;
//! - deterministic records for every table of the column-type dictionary (see [`data`]), as of a
//!   clock that can pretend "now" is any instant ([`SimHandle::set_today`]);
//! - faults by configuration ([`Faults`]): a share of 500s, bursts of 500s, 429s with
//!   `Retry-After`, slow and hanging responses, `null`, empty and HTML bodies, 202s inside the
//!   count, malformed JSON pages, pages that keep failing, count headers missing, garbled or
//!   written with thousands separators, paging drift (a record served twice and another never
//!   in one pass), 401s (also from the real hash check at a minute that has passed);
//! - records as production has them now and then ([`History`]): a `last_updated` in the future,
//!   a `last_updated` written in UTC with a `Z`.
//!
//! [`SimHandle::expected_snapshot`] says what a table holds as of a day, so end-to-end tests can
//! compare the pipeline's snapshot with it. `GET /_sim/expected/<table>?as_of=YYYY-MM-DD` answers
//! the same over HTTP.

pub mod data;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Datelike as _, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Europe::London;
use common::config::Secret;
use common::dictionary::ColumnTypes;
use ingest_svc::auth::Credentials;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

pub use data::{APPLICATIONS_WIDTH, History, IMAGE_FIELD};

/// The path below the server's address where the resources are, as on the vendor's hosts.
pub const API_PATH: &str = "/rest/v1/";

/// The production column-type dictionary, in `../shared` beside the repository (never copied
/// into it).
pub fn shared_dictionary_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/tascomi/column-type-dictionary.json")
}

/// Whether the production dictionary is beside the repository. Tests of facts only it holds
/// skip without it (saying so); CI, which has it, requires it.
pub fn production_dictionary_present() -> bool {
    let present = shared_dictionary_path().is_file();
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs with ../shared beside the repository: {} is missing",
            shared_dictionary_path().display()
        );
        eprintln!(
            "note: the production dictionary is not at {}: tests use the demo's small dictionary, and those of production facts skip",
            shared_dictionary_path().display()
        );
    }
    present
}

/// The dictionary the tests type their tables with: the production one when it is beside the
/// repository, else the demo's (`ctl/demo/column-type-dictionary.json`, the tables `applications`,
/// `appeals`, `contacts`, `enforcements`, `wards`), so that the test command runs in any clone.
pub fn production_dictionary_path() -> std::path::PathBuf {
    if production_dictionary_present() {
        shared_dictionary_path()
    } else {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../ctl/demo/column-type-dictionary.json")
    }
}

/// A page fault: which table and page, and how many times (`None`: every time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFault {
    pub table: String,
    pub page: u32,
    /// Only for this `last_updated` day (`None`: any query).
    pub day: Option<NaiveDate>,
    pub times: Option<u32>,
}

impl PageFault {
    pub fn always(table: &str, page: u32) -> Self {
        Self {
            table: table.into(),
            page,
            day: None,
            times: None,
        }
    }

    pub fn times(table: &str, page: u32, times: u32) -> Self {
        Self {
            times: Some(times),
            ..Self::always(table, page)
        }
    }
}

/// Faults to inject. Shares are probabilities per request, drawn from a seeded generator. The
/// default injects none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Faults {
    /// Share of requests answered 500.
    pub server_error_share: f64,
    /// Share of requests answered 429 with `Retry-After: retry_after_secs`.
    pub throttle_share: f64,
    /// The first this many requests are answered 429 (deterministic throttling).
    pub throttle_first: u32,
    pub retry_after_secs: u64,
    /// Share of requests delayed by `slow_delay`.
    pub slow_share: f64,
    pub slow_delay: Duration,
    /// The first this many requests with a valid hash are answered 401 anyway (as when the
    /// minute turns on the server first).
    pub unauthorized_first: u32,
    /// Pages answered 500.
    pub failing_pages: Vec<PageFault>,
    /// Pages answered 200 with a body that is not valid JSON.
    pub malformed_pages: Vec<PageFault>,
    /// Pages answered 200 with the body `null` (count headers sent).
    pub null_pages: Vec<PageFault>,
    /// Pages answered 200 with an empty body (count headers sent).
    pub empty_pages: Vec<PageFault>,
    /// Pages answered 202 with an empty body, the API's "no results", although the page is
    /// inside the count (on page 1 it is indistinguishable from a query with no results).
    pub accepted_pages: Vec<PageFault>,
    /// Pages answered 200 with an HTML error page (`text/html`, no count headers), as a proxy or
    /// a maintenance page in front of the API does.
    pub html_pages: Vec<PageFault>,
    /// Pages answered without the count headers `X-Number-Of-Results` and
    /// `X-Results-Per-Page` (the records are sent).
    pub missing_count_headers: Vec<PageFault>,
    /// Pages whose `X-Number-Of-Results` is not a number (`unknown`).
    pub garbled_count_headers: Vec<PageFault>,
    /// Every count header is written with comma thousands separators (`1,021`), as some
    /// Tascomi hosts do.
    pub count_header_with_comma: bool,
    /// Paging drift: the first this many passes over a query (a page-1 request of a query with
    /// two pages or more starts a pass; any table, any day) serve pages 2 and later as if one
    /// record had moved to the front between page 1 and page 2: the last record of page 1 is
    /// served again at the top of page 2, and the moved record is never served in that pass.
    /// Which record moves is drawn from the seed, the table and the day, so every drifting pass
    /// of a query misses the same one. Later passes (the client's re-queries) are clean.
    pub drift_queries: u32,
    /// Requests numbered in this range (counting every request from 0 since the faults were
    /// set) are answered 500: a burst of server errors across pages.
    pub server_error_burst: std::ops::Range<u64>,
    /// Pages whose requests hang: never answered, until the client gives up.
    pub hanging_pages: Vec<PageFault>,
    /// Requests numbered in this range (as for `server_error_burst`) have their hash checked
    /// two minutes after they arrived: the minute the client signed has passed beyond the
    /// server's tolerance, the real check answers 401 (a request signed as the minute turned).
    pub late_minute_requests: std::ops::Range<u64>,
}

/// The simulator's configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub public_key: String,
    pub private_key: String,
    /// Tables served, with their typed fields.
    pub dictionary: ColumnTypes,
    /// Tables served beyond the dictionary's, with generic fields.
    pub extra_tables: Vec<String>,
    pub per_page: u32,
    pub seed: u64,
    pub history: History,
    pub table_history: BTreeMap<String, History>,
    /// The instant the API takes as now; `None`: the real clock.
    pub now: Option<DateTime<Utc>>,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            public_key: "sim-public-key".into(),
            private_key: "sim-private-key".into(),
            dictionary: ColumnTypes::default(),
            extra_tables: Vec::new(),
            per_page: 100,
            seed: 1,
            history: History::default(),
            table_history: BTreeMap::new(),
            now: None,
            faults: Faults::default(),
        }
    }
}

impl SimConfig {
    /// The default configuration serving every table of the production dictionary.
    pub fn with_production_dictionary() -> anyhow::Result<Self> {
        Ok(Self {
            dictionary: ColumnTypes::load(&production_dictionary_path())?,
            ..Self::default()
        })
    }

    /// The instant a nightly run of `day` happens: the history's run time, London.
    pub fn run_instant(&self, day: NaiveDate) -> DateTime<Utc> {
        london_instant(day.and_time(self.history.run_time))
    }
}

fn london_instant(local: NaiveDateTime) -> DateTime<Utc> {
    London
        .from_local_datetime(&local)
        .earliest()
        // A time skipped by the clocks going forward: an hour later exists.
        .or_else(|| {
            London
                .from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc))
}

/// One request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    pub table: String,
    pub page: u32,
    pub last_updated: Option<NaiveDate>,
    /// 0 when the simulator never answered (a hanging request the client gave up on).
    pub status: u16,
    /// The public key matched and the hash was valid.
    pub authenticated: bool,
}

type FaultHits = HashMap<(FaultList, usize), u32>;

/// The page-fault lists of [`Faults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FaultList {
    Failing,
    Malformed,
    Null,
    Hanging,
    Empty,
    Accepted,
    Html,
    MissingCount,
    GarbledCount,
}

impl FaultList {
    fn of(self, faults: &Faults) -> &[PageFault] {
        match self {
            FaultList::Failing => &faults.failing_pages,
            FaultList::Malformed => &faults.malformed_pages,
            FaultList::Null => &faults.null_pages,
            FaultList::Hanging => &faults.hanging_pages,
            FaultList::Empty => &faults.empty_pages,
            FaultList::Accepted => &faults.accepted_pages,
            FaultList::Html => &faults.html_pages,
            FaultList::MissingCount => &faults.missing_count_headers,
            FaultList::GarbledCount => &faults.garbled_count_headers,
        }
    }
}

/// The drift fault's memory: passes drifted so far, and the query passes drifting now (by
/// table and day) with the index of the record that moved.
#[derive(Debug, Default)]
struct DriftState {
    passes: u32,
    moving: HashMap<(String, Option<NaiveDate>), usize>,
}

#[derive(Debug)]
struct Shared {
    tables: data::Tables,
    credentials: Credentials,
    per_page: u32,
    seed: u64,
    now: Mutex<Option<DateTime<Utc>>>,
    /// The faults, and how often each page fault has hit (by list and index).
    faults: Mutex<(Faults, FaultHits)>,
    drift: Mutex<DriftState>,
    requests: Mutex<Vec<RequestRecord>>,
    counter: AtomicU64,
    /// Requests since the faults were set.
    fault_count: AtomicU64,
    authenticated_count: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn now(&self) -> DateTime<Utc> {
        lock(&self.now).unwrap_or_else(Utc::now)
    }

    fn now_london(&self) -> NaiveDateTime {
        self.now().with_timezone(&London).naive_local()
    }

    /// The records a query matches now, in id order.
    fn matching(&self, table: &str, day: Option<NaiveDate>) -> Vec<data::Version> {
        self.tables
            .versions_at(table, self.now_london())
            .into_values()
            .filter(|v| match day {
                None => true,
                Some(day) => v.last_updated.is_some_and(|t| t.date() == day),
            })
            .collect()
    }

    /// Whether a page fault list hits this request (and counts the hit).
    fn hits(&self, list: FaultList, table: &str, page: u32, day: Option<NaiveDate>) -> bool {
        let mut guard = lock(&self.faults);
        let (faults, counts) = &mut *guard;
        for (i, fault) in list.of(faults).iter().enumerate() {
            if fault.table == table
                && fault.page == page
                && fault.day.is_none_or(|d| Some(d) == day)
            {
                let count = counts.entry((list, i)).or_default();
                if fault.times.is_none_or(|t| *count < t) {
                    *count += 1;
                    return true;
                }
            }
        }
        false
    }

    fn draw(&self, n: u64, salt: u64) -> f64 {
        (data::mix(&[self.seed, n, salt]) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Starts simulators.
#[derive(Debug)]
pub struct SimApi;

impl SimApi {
    /// Serves on `127.0.0.1` at a free port.
    pub async fn start(config: SimConfig) -> anyhow::Result<SimHandle> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Serves on `addr` (the binary: `0.0.0.0:PORT` in docker-compose).
    pub async fn start_on(config: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
        let shared = Arc::new(Shared {
            tables: data::Tables {
                seed: config.seed,
                dictionary: config.dictionary,
                extra_tables: config.extra_tables,
                history: config.history.clone(),
                table_history: config.table_history,
            },
            credentials: Credentials::new(
                Secret::new(config.public_key.clone()),
                Secret::new(config.private_key.clone()),
            ),
            per_page: config.per_page.max(1),
            seed: config.seed,
            now: Mutex::new(config.now),
            faults: Mutex::new((config.faults, HashMap::new())),
            drift: Mutex::new(DriftState::default()),
            requests: Mutex::new(Vec::new()),
            counter: AtomicU64::new(0),
            fault_count: AtomicU64::new(0),
            authenticated_count: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/rest/v1/{table}", get(resource))
            .route("/_sim/expected/{table}", get(expected))
            .route("/_sim/health", get(|| async { "ok" }))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(err) = serve.await {
                tracing::warn!(error = %err, "simulated api stopped");
            }
        });
        Ok(SimHandle {
            base_url: format!("http://{addr}{API_PATH}"),
            addr,
            public_key: config.public_key,
            private_key: config.private_key,
            run_time: config.history.run_time,
            shared,
            stop: Some(stop),
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    /// `http://127.0.0.1:PORT/rest/v1/`: the client's base URL.
    pub base_url: String,
    pub addr: SocketAddr,
    pub public_key: String,
    pub private_key: String,
    run_time: NaiveTime,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl SimHandle {
    /// The key pair the simulator accepts.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            Secret::new(self.public_key.clone()),
            Secret::new(self.private_key.clone()),
        )
    }

    /// Pretends now is `at`.
    pub fn set_now(&self, at: DateTime<Utc>) {
        *lock(&self.shared.now) = Some(at);
    }

    /// Pretends now is the nightly run time (default 06:00 London) of `day`: records created
    /// earlier that day exist ("today's"), the day's updates have not happened yet.
    pub fn set_today(&self, day: NaiveDate) {
        self.set_now(london_instant(day.and_time(self.run_time)));
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.shared.now()
    }

    /// Replaces the faults and forgets how often the old ones hit: counts such as
    /// `unauthorized_first` start again from the next request.
    pub fn set_faults(&self, faults: Faults) {
        let mut guard = lock(&self.shared.faults);
        *guard = (faults, HashMap::new());
        *lock(&self.shared.drift) = DriftState::default();
        self.shared.authenticated_count.store(0, Ordering::SeqCst);
        self.shared.fault_count.store(0, Ordering::SeqCst);
    }

    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).0.clone()
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// The most requests that were ever being answered at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// What the table holds as of `as_of` (per id, the latest version updated before that day),
    /// as the API sends records (with `gis_map_image_base64`), in id order. This is what the
    /// pipeline's snapshot of `as_of` holds when each day's run happened at the run time.
    pub fn expected_snapshot(&self, table: &str, as_of: NaiveDate) -> Vec<Map<String, Value>> {
        self.shared.tables.snapshot(table, as_of)
    }

    /// The records `?last_updated=day` returns now, in id order.
    pub fn updated_on(&self, table: &str, day: NaiveDate) -> Vec<Map<String, Value>> {
        self.shared
            .matching(table, Some(day))
            .iter()
            .map(|v| self.shared.tables.record(table, v))
            .collect()
    }

    /// Every record the API serves now, in id order.
    pub fn current_records(&self, table: &str) -> Vec<Map<String, Value>> {
        self.shared
            .matching(table, None)
            .iter()
            .map(|v| self.shared.tables.record(table, v))
            .collect()
    }

    /// The field names of a table's records.
    pub fn fields(&self, table: &str) -> Vec<String> {
        self.shared.tables.fields(table)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

struct InFlight(Arc<Shared>);

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn status(code: StatusCode, body: &'static str) -> Response {
    (code, body).into_response()
}

async fn resource(
    State(shared): State<Arc<Shared>>,
    Path(table): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let _in_flight = InFlight::enter(&shared);
    let n = shared.counter.fetch_add(1, Ordering::SeqCst);
    let fault_n = shared.fault_count.fetch_add(1, Ordering::SeqCst);
    let faults = lock(&shared.faults).0.clone();
    let page: u32 = params.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let day = params
        .get("last_updated")
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    let checked_at = if faults.late_minute_requests.contains(&fault_n) {
        Utc::now() + chrono::Duration::minutes(2)
    } else {
        Utc::now()
    };
    let authenticated = headers
        .get("x-public")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p == shared.credentials.public_key().expose())
        && headers
            .get("x-hash")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|h| shared.credentials.accepts(h, checked_at));
    let record = |status: StatusCode| RequestRecord {
        table: table.clone(),
        page,
        last_updated: day,
        status: status.as_u16(),
        authenticated,
    };
    if authenticated && shared.hits(FaultList::Hanging, &table, page, day) {
        // Recorded now: the client gives up and this handler is dropped without answering.
        // Status 0: no answer.
        lock(&shared.requests).push(RequestRecord {
            status: 0,
            ..record(StatusCode::OK)
        });
        std::future::pending::<()>().await;
    }
    if faults.server_error_burst.contains(&fault_n) {
        let response = status(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"internal error"}"#,
        );
        lock(&shared.requests).push(record(response.status()));
        return response;
    }
    let response = answer(
        &shared,
        &faults,
        n,
        &table,
        page,
        day,
        params.get("last_updated"),
        authenticated,
    )
    .await;
    lock(&shared.requests).push(record(response.status()));
    response
}

#[allow(clippy::too_many_arguments)]
async fn answer(
    shared: &Arc<Shared>,
    faults: &Faults,
    n: u64,
    table: &str,
    page: u32,
    day: Option<NaiveDate>,
    raw_day: Option<&String>,
    authenticated: bool,
) -> Response {
    if faults.slow_share > 0.0 && shared.draw(n, 1) < faults.slow_share {
        tokio::time::sleep(faults.slow_delay).await;
    }
    if !authenticated {
        return status(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid X-Public or X-Hash"}"#,
        );
    }
    let authenticated_n = shared.authenticated_count.fetch_add(1, Ordering::SeqCst);
    if authenticated_n < u64::from(faults.unauthorized_first) {
        return status(StatusCode::UNAUTHORIZED, r#"{"error":"hash expired"}"#);
    }
    if !shared.tables.serves(table) {
        return status(StatusCode::NOT_FOUND, r#"{"error":"no such resource"}"#);
    }
    if raw_day.is_some() && day.is_none() {
        return status(
            StatusCode::BAD_REQUEST,
            r#"{"error":"last_updated must be YYYY-MM-DD"}"#,
        );
    }
    let throttled = authenticated_n
        < u64::from(faults.unauthorized_first) + u64::from(faults.throttle_first)
        || (faults.throttle_share > 0.0 && shared.draw(n, 2) < faults.throttle_share);
    if throttled {
        let mut response = status(
            StatusCode::TOO_MANY_REQUESTS,
            r#"{"error":"too many requests"}"#,
        );
        if let Ok(value) = HeaderValue::from_str(&faults.retry_after_secs.to_string()) {
            response.headers_mut().insert("retry-after", value);
        }
        return response;
    }
    if shared.hits(FaultList::Failing, table, page, day)
        || (faults.server_error_share > 0.0 && shared.draw(n, 3) < faults.server_error_share)
    {
        return status(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"internal error"}"#,
        );
    }
    let mut matching = shared.matching(table, day);
    if matching.is_empty() {
        return StatusCode::ACCEPTED.into_response();
    }
    if shared.hits(FaultList::Accepted, table, page, day) {
        return StatusCode::ACCEPTED.into_response();
    }
    if shared.hits(FaultList::Html, table, page, day) {
        return (
            StatusCode::OK,
            [("content-type", "text/html; charset=utf-8")],
            "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n<body><h1>Service Unavailable</h1><p>The server is down for maintenance.</p></body></html>\n",
        )
            .into_response();
    }
    let per_page = shared.per_page as usize;
    shared.drift(faults, table, page, day, &mut matching);
    let start = (page.max(1) as usize - 1) * per_page;
    let records: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(per_page)
        .map(|v| Value::Object(shared.tables.record(table, v)))
        .collect();
    let body = if shared.hits(FaultList::Null, table, page, day) {
        "null".to_owned()
    } else if shared.hits(FaultList::Empty, table, page, day) {
        String::new()
    } else if shared.hits(FaultList::Malformed, table, page, day) {
        let text = Value::Array(records).to_string();
        // Cut off mid-record, as a broken upstream proxy does.
        text[..text.len() / 2].to_owned()
    } else {
        Value::Array(records).to_string()
    };
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if shared.hits(FaultList::MissingCount, table, page, day) {
        return response;
    }
    let count = |n: usize| {
        if faults.count_header_with_comma {
            with_thousands_separators(n)
        } else {
            n.to_string()
        }
    };
    let results = if shared.hits(FaultList::GarbledCount, table, page, day) {
        "unknown".to_owned()
    } else {
        count(matching.len())
    };
    for (name, value) in [
        ("x-number-of-results", results),
        ("x-results-per-page", count(per_page)),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// `1021` as `1,021`.
fn with_thousands_separators(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

impl Shared {
    /// The drift fault: a page-1 request of a query with two pages or more starts a pass, which
    /// drifts while fewer than `drift_queries` passes have; pages 2 and later of a drifting pass
    /// see `matching` with one record (from page 2 or later) moved to the front.
    fn drift(
        &self,
        faults: &Faults,
        table: &str,
        page: u32,
        day: Option<NaiveDate>,
        matching: &mut Vec<data::Version>,
    ) {
        let per_page = self.per_page as usize;
        let key = (table.to_owned(), day);
        let mut drift = lock(&self.drift);
        if page <= 1 {
            drift.moving.remove(&key);
            if matching.len() > per_page && drift.passes < faults.drift_queries {
                drift.passes += 1;
                let day_key = day.map_or(0, |d| d.num_days_from_ce() as u64);
                let h = data::mix(&[self.seed, data::text_hash(table), day_key, 0xD81F7]);
                let moved = per_page + (h % (matching.len() - per_page) as u64) as usize;
                drift.moving.insert(key, moved);
            }
        } else if let Some(&moved) = drift.moving.get(&key)
            && moved < matching.len()
        {
            let record = matching.remove(moved);
            matching.insert(0, record);
        }
    }
}

async fn expected(
    State(shared): State<Arc<Shared>>,
    Path(table): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(as_of) = params
        .get("as_of")
        .and_then(|d| common::layout::parse_date(d))
    else {
        return status(
            StatusCode::BAD_REQUEST,
            r#"{"error":"as_of=YYYY-MM-DD is required"}"#,
        );
    };
    if !shared.tables.serves(&table) {
        return status(StatusCode::NOT_FOUND, r#"{"error":"no such resource"}"#);
    }
    let records: Vec<Value> = shared
        .tables
        .snapshot(&table, as_of)
        .into_iter()
        .map(Value::Object)
        .collect();
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        Value::Array(records).to_string(),
    )
        .into_response()
}
