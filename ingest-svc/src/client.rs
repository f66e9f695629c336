//! The Tascomi REST client: one page per call, authenticated afresh, retried, rate-limited.
//!
//! Contract of [`TascomiClient::fetch_page`], which is told what kind of page it fetches
//! ([`PageKind`]):
//! - [`PageKind::Count`] (page 1, the count request): a 202 is "no results" (a page with no
//!   records and a count of 0). A 200 must carry both count headers, `X-Number-Of-Results` and
//!   `X-Results-Per-Page`, as numbers (digits, optionally with comma thousands separators:
//!   `1,021` is 1021, see [`parse_count_header`]); a header missing or not a number is a failed
//!   attempt naming the table, the query and the header, never "one page". When the count
//!   announces records, the body must be a JSON list; when it announces 0, an empty, blank or
//!   `null` body is an empty page.
//! - [`PageKind::Inside`] (a page inside the announced count, or a page of an earlier import
//!   fetched again): the body must be a JSON list of objects. A 202, an empty or blank body, a
//!   `null` body, malformed JSON, an HTML page (or any other body that is not a list) is a failed
//!   attempt, never "no more data". An explicit empty list `[]` is a page with no records (a
//!   table that shrank); the caller's drift check compares what arrived with the count.
//! - `Ok(page)`: the page as described. Its count headers, when sent, are in the response
//!   ([`PageResponse::total_results`]), so callers never fetch page 1 twice and notice a count
//!   that changes between pages.
//! - 5xx, 429, network errors (connect, timeout, a body cut off) and the bad bodies and headers
//!   above are retried with exponential backoff and jitter, honouring `Retry-After`, up to
//!   `max_attempts`; then `Err(FetchError::Failed)` with the URL, the last status and the error,
//!   which the caller records as a failed page. Other 4xx statuses fail at once.
//! - A 401 is retried once with a fresh hash (the minute may have turned); a second 401 is
//!   `Err(FetchError::Authentication)`: the keys or the clock are wrong and no page will succeed.
//!
//! Every request (every attempt) holds a permit of one semaphore shared by all the tables this
//! process handles ([`ClientSettings::max_concurrent_requests`]): the vendor has blocked the
//! council for sending too many at once. Backoff sleeps hold no permit.
//!
//! Keys and hashes are sent as sensitive headers and never logged.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use common::TableName;
use common::config::{ConfigError, Env};
use rand::Rng;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use crate::auth::{Credentials, HASH_HEADER, PUBLIC_HEADER};

mod body;

pub use body::{PER_PAGE_HEADER, RESULTS_HEADER, parse_count_header, parse_records};
use body::{count_headers, empty_body_kind, read_body};

pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
pub const DEFAULT_READ_TIMEOUT_SECS: u64 = 60;
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
pub const DEFAULT_BACKOFF_BASE_MS: u64 = 1_000;
pub const DEFAULT_BACKOFF_MAX_SECS: u64 = 60;
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 4;
/// The longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How the client talks to the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// `TASCOMI_API_BASE_URL` (required), e.g. `https://<council>-planning.idoxcloud.com/rest/v1/`;
    /// always ends in `/`. The resource name is appended.
    pub base_url: String,
    /// `TASCOMI_API_CONNECT_TIMEOUT_SECS` (default 10).
    pub connect_timeout: Duration,
    /// Longest wait between two reads of a response, `TASCOMI_API_READ_TIMEOUT_SECS` (default 60).
    pub read_timeout: Duration,
    /// Longest whole request, `TASCOMI_API_REQUEST_TIMEOUT_SECS` (default 300).
    pub request_timeout: Duration,
    /// Attempts per page, the first included, `TASCOMI_API_MAX_ATTEMPTS` (default 5).
    pub max_attempts: u32,
    /// First backoff, doubled per attempt, `TASCOMI_API_BACKOFF_BASE_MS` (default 1000).
    pub backoff_base: Duration,
    /// Longest backoff, `TASCOMI_API_BACKOFF_MAX_SECS` (default 60).
    pub backoff_max: Duration,
    /// Requests in flight at once across every table of the process,
    /// `TASCOMI_API_MAX_CONCURRENT_REQUESTS` (default 4).
    pub max_concurrent_requests: usize,
}

impl ClientSettings {
    /// The defaults, with this base URL.
    pub fn new(base_url: &str) -> Self {
        Self {
            base_url: with_trailing_slash(base_url),
            connect_timeout: Duration::from_secs(DEFAULT_CONNECT_TIMEOUT_SECS),
            read_timeout: Duration::from_secs(DEFAULT_READ_TIMEOUT_SECS),
            request_timeout: Duration::from_secs(DEFAULT_REQUEST_TIMEOUT_SECS),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff_base: Duration::from_millis(DEFAULT_BACKOFF_BASE_MS),
            backoff_max: Duration::from_secs(DEFAULT_BACKOFF_MAX_SECS),
            max_concurrent_requests: DEFAULT_MAX_CONCURRENT_REQUESTS,
        }
    }

    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let base_url = env.required("TASCOMI_API_BASE_URL")?;
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(ConfigError::Invalid {
                variable: "TASCOMI_API_BASE_URL".into(),
                value: base_url,
                reason: "must start with http:// or https://".into(),
            });
        }
        let d = Self::new(&base_url);
        let settings = Self {
            connect_timeout: env.secs_or(
                "TASCOMI_API_CONNECT_TIMEOUT_SECS",
                d.connect_timeout.as_secs(),
            )?,
            read_timeout: env.secs_or("TASCOMI_API_READ_TIMEOUT_SECS", d.read_timeout.as_secs())?,
            request_timeout: env.secs_or(
                "TASCOMI_API_REQUEST_TIMEOUT_SECS",
                d.request_timeout.as_secs(),
            )?,
            max_attempts: env.parse_or("TASCOMI_API_MAX_ATTEMPTS", d.max_attempts)?,
            backoff_base: Duration::from_millis(
                env.parse_or("TASCOMI_API_BACKOFF_BASE_MS", DEFAULT_BACKOFF_BASE_MS)?,
            ),
            backoff_max: env.secs_or("TASCOMI_API_BACKOFF_MAX_SECS", d.backoff_max.as_secs())?,
            max_concurrent_requests: env.parse_or(
                "TASCOMI_API_MAX_CONCURRENT_REQUESTS",
                d.max_concurrent_requests,
            )?,
            ..d
        };
        for (variable, zero) in [
            ("TASCOMI_API_MAX_ATTEMPTS", settings.max_attempts == 0),
            (
                "TASCOMI_API_MAX_CONCURRENT_REQUESTS",
                settings.max_concurrent_requests == 0,
            ),
        ] {
            if zero {
                return Err(ConfigError::Invalid {
                    variable: variable.into(),
                    value: "0".into(),
                    reason: "must be at least 1".into(),
                });
            }
        }
        Ok(settings)
    }
}

fn with_trailing_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

/// Which records a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Query {
    /// Every record (a full load).
    All,
    /// The records last updated on this London day (`last_updated=YYYY-MM-DD`).
    UpdatedOn(NaiveDate),
}

impl Query {
    pub fn day(self) -> Option<NaiveDate> {
        match self {
            Query::All => None,
            Query::UpdatedOn(day) => Some(day),
        }
    }

    /// The query a requested URL was made for (its `last_updated` parameter), whatever the host.
    pub fn of_url(url: &str) -> Query {
        url.split_once('?')
            .into_iter()
            .flat_map(|(_, query)| query.split('&'))
            .find_map(|pair| pair.strip_prefix("last_updated="))
            .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
            .map_or(Query::All, Query::UpdatedOn)
    }
}

impl std::fmt::Display for Query {
    /// How logs and errors name a query: `all records` or `last_updated=YYYY-MM-DD`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::All => f.write_str("all records"),
            Query::UpdatedOn(day) => write!(f, "last_updated={}", day.format("%Y-%m-%d")),
        }
    }
}

/// What kind of page a request fetches, which decides what a valid answer is (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// Page 1 of a query: the count request. 202 means "no results"; a 200 must carry the count
    /// headers.
    Count,
    /// A page inside the announced count (or a page fetched again): it must hold a JSON list.
    Inside,
}

/// One page as the API answered it.
#[derive(Debug, Clone)]
pub struct PageResponse {
    pub url: String,
    pub status: u16,
    /// `X-Number-Of-Results` as a number, when sent and readable. Always `Some` on a page fetched
    /// as [`PageKind::Count`] (0 for a 202: no results).
    pub total_results: Option<u64>,
    /// `X-Results-Per-Page` as a number, when sent and readable. Always `Some` on a 200 fetched
    /// as [`PageKind::Count`].
    pub per_page: Option<u64>,
    /// The records: JSON objects, in the API's order.
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl PageResponse {
    /// How many pages the query has: ceil(results / per page) from the count headers; 0 when
    /// they announce no results (or are absent, which a [`PageKind::Count`] page never is).
    pub fn page_count(&self) -> u32 {
        match (self.total_results, self.per_page) {
            (Some(total), Some(per_page)) if per_page > 0 => {
                u32::try_from(total.div_ceil(per_page)).unwrap_or(u32::MAX)
            }
            _ => 0,
        }
    }
}

/// A page that could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// Two 401s in a row: the keys are wrong or the clock is off. No page of any table will
    /// succeed, so the run stops.
    #[error(
        "authentication failed for table {table}: {url} answered 401 twice, with a fresh hash the second time (check the API keys and the clock)"
    )]
    Authentication { table: String, url: String },
    /// The page failed after retries (or at once, for a status that retrying cannot fix).
    #[error("page {page} of table {table} failed after {attempts} attempt(s): {url}: {message}")]
    Failed {
        table: String,
        page: u32,
        url: String,
        /// The last HTTP status, when there was a response.
        status: Option<u16>,
        message: String,
        attempts: u32,
    },
}

/// What one attempt came to.
enum Attempt {
    Done(PageResponse),
    Unauthorized,
    Retry {
        status: Option<u16>,
        message: String,
        retry_after: Option<Duration>,
    },
    Fail {
        status: Option<u16>,
        message: String,
    },
}

/// The client. Cheap to clone; clones share the connection pool and the concurrency limit.
#[derive(Debug, Clone)]
pub struct TascomiClient {
    http: reqwest::Client,
    settings: Arc<ClientSettings>,
    credentials: Credentials,
    limiter: Arc<Semaphore>,
}

impl TascomiClient {
    pub fn new(settings: ClientSettings, credentials: Credentials) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .timeout(settings.request_timeout)
            .build()?;
        let limiter = Arc::new(Semaphore::new(settings.max_concurrent_requests.max(1)));
        Ok(Self {
            http,
            settings: Arc::new(settings),
            credentials,
            limiter,
        })
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// The URL of one page of a query. Holds no secret.
    pub fn page_url(&self, table: &TableName, query: Query, page: u32) -> String {
        let mut url = format!("{}{table}?page={page}", self.settings.base_url);
        if let Query::UpdatedOn(day) = query {
            url.push_str(&format!("&last_updated={}", day.format("%Y-%m-%d")));
        }
        url
    }

    /// Fetches one page of `query`, of the given kind. See the module docs for what `Ok` and
    /// each error mean.
    pub async fn fetch_page(
        &self,
        table: &TableName,
        query: Query,
        page: u32,
        kind: PageKind,
    ) -> Result<PageResponse, FetchError> {
        let url = self.page_url(table, query, page);
        let mut attempts = 0u32;
        let mut fresh_hash_tried = false;
        loop {
            attempts += 1;
            let attempt = {
                // Closed only if the semaphore is dropped, which cannot happen while self lives.
                let _permit = self.limiter.acquire().await.ok();
                self.attempt(&url, query, kind).await
            };
            let (status, message, retry_after, retryable) = match attempt {
                Attempt::Done(response) => {
                    tracing::debug!(
                        table = %table,
                        page,
                        url = %url,
                        status = response.status,
                        records = response.records.len(),
                        announced = response.total_results,
                        attempts,
                        "page fetched"
                    );
                    return Ok(response);
                }
                Attempt::Unauthorized if !fresh_hash_tried => {
                    fresh_hash_tried = true;
                    attempts -= 1;
                    tracing::warn!(table = %table, page, url = %url, "api answered 401, retrying once with a fresh hash");
                    continue;
                }
                Attempt::Unauthorized => {
                    return Err(FetchError::Authentication {
                        table: table.to_string(),
                        url,
                    });
                }
                Attempt::Fail { status, message } => (status, message, None, false),
                Attempt::Retry {
                    status,
                    message,
                    retry_after,
                } => (status, message, retry_after, true),
            };
            if !retryable || attempts >= self.settings.max_attempts {
                return Err(FetchError::Failed {
                    table: table.to_string(),
                    page,
                    url,
                    status,
                    message,
                    attempts,
                });
            }
            let delay = self.backoff(attempts, retry_after);
            tracing::warn!(
                table = %table,
                query = %query,
                page,
                url = %url,
                status = status.map(i64::from).unwrap_or(-1),
                error = %message,
                attempt = attempts,
                delay_ms = delay.as_millis() as u64,
                "api request failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Exponential backoff with jitter: a random delay between half and all of
    /// `base * 2^(attempt-1)` (capped at `backoff_max`); exactly `Retry-After` when the server
    /// sent one (capped at [`MAX_RETRY_AFTER`]).
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponential = self
            .settings
            .backoff_base
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.settings.backoff_max);
        let half = exponential / 2;
        let jitter_ms = rand::rng().random_range(0..=half.as_millis() as u64);
        let jittered = half + Duration::from_millis(jitter_ms);
        match retry_after {
            Some(wait) => wait.min(MAX_RETRY_AFTER),
            None => jittered,
        }
    }

    async fn attempt(&self, url: &str, query: Query, kind: PageKind) -> Attempt {
        let mut headers = HeaderMap::new();
        let auth = self.credentials.headers_at(Utc::now());
        for (name, value, what) in [
            (PUBLIC_HEADER, &auth.public, "public key"),
            (HASH_HEADER, &auth.hash, "hash"),
        ] {
            let Ok(mut value) = HeaderValue::from_str(value.expose()) else {
                return Attempt::Fail {
                    status: None,
                    message: format!("the {what} is not a valid HTTP header value"),
                };
            };
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        let response = match self.http.get(url).headers(headers).send().await {
            Ok(response) => response,
            Err(err) => {
                return Attempt::Retry {
                    status: None,
                    message: network_message(&err),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Attempt::Unauthorized;
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Attempt::Retry {
                status: Some(status.as_u16()),
                message: format!("http {}", status.as_u16()),
                retry_after,
            };
        }
        if !status.is_success() {
            return Attempt::Fail {
                status: Some(status.as_u16()),
                message: format!("http {}", status.as_u16()),
            };
        }
        let headers = response.headers();
        let header_text = |name: &str| {
            headers
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        let total_text = header_text(RESULTS_HEADER);
        let per_page_text = header_text(PER_PAGE_HEADER);
        let html = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("html"));
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) => {
                return Attempt::Retry {
                    status: Some(status.as_u16()),
                    message: format!("reading the body: {}", network_message(&err)),
                    retry_after: None,
                };
            }
        };
        let code = status.as_u16();
        let retry = |message: String| Attempt::Retry {
            status: Some(code),
            message,
            retry_after: None,
        };
        let done = |total_results, per_page, records| {
            Attempt::Done(PageResponse {
                url: url.to_owned(),
                status: code,
                total_results,
                per_page,
                records,
            })
        };
        let total_results = total_text.as_deref().and_then(parse_count_header);
        let per_page = per_page_text.as_deref().and_then(parse_count_header);
        match kind {
            PageKind::Count if status == StatusCode::ACCEPTED => {
                done(Some(0), per_page, Vec::new())
            }
            PageKind::Inside if status == StatusCode::ACCEPTED => retry(format!(
                "http 202 (\"no results\") on a page inside the announced count of {query}"
            )),
            PageKind::Count => {
                // The body first: an HTML error page has no count headers either, and says more.
                let records = match read_body(&body, html) {
                    Ok(records) => records,
                    Err(message) => return retry(format!("{query}, the count request: {message}")),
                };
                let (total, per_page) =
                    match count_headers(total_text.as_deref(), per_page_text.as_deref()) {
                        Ok(count) => count,
                        Err(message) => {
                            return retry(format!("{query}, the count request: {message}"));
                        }
                    };
                match records {
                    Some(records) => done(Some(total), Some(per_page), records),
                    None if total == 0 => done(Some(0), Some(per_page), Vec::new()),
                    None => retry(format!(
                        "{query}, the count request: {} although {RESULTS_HEADER} announces {total} records",
                        empty_body_kind(&body)
                    )),
                }
            }
            PageKind::Inside => match read_body(&body, html) {
                Ok(Some(records)) => done(total_results, per_page, records),
                Ok(None) => retry(format!(
                    "{} on a page inside the announced count of {query}",
                    empty_body_kind(&body)
                )),
                Err(message) => retry(format!("{query}: {message}")),
            },
        }
    }
}

/// A network error and its causes in one line (no headers are part of them).
fn network_message(err: &reqwest::Error) -> String {
    let mut message = if err.is_timeout() {
        "timed out".to_owned()
    } else if err.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests;
