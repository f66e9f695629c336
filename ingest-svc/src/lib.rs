//! ingest-svc: the first stage of the Tascomi pipeline. An ingest request for a table becomes a
//! published raw partition `api_response_<table>` (the API's records as JSON text, one row per
//! record, plus one row per page that failed) and a "partition ready" message for parse-svc.
//!
//! - [`auth`]: the `X-Hash` of every request (Europe/London minute);
//! - [`keys`]: the API keys, from the environment or Secrets Manager;
//! - [`client`]: the Tascomi REST client (timeouts, retries, one process-wide concurrency limit);
//! - [`raw`]: the raw layer's rows (its columns are [`common::raw`]'s);
//! - [`drift`]: noticing that a query's pages did not add up (paging drift);
//! - [`state`]: per-table ingest state (imports, completed days, failed pages, the full load's
//!   outstanding pages);
//! - [`settings`]: the stage's settings; [`error`]: why an ingest published nothing;
//! - [`stage`]: the handler: full, incremental and retry-failed runs.
//!
//! See docs/ingest.md.

pub mod auth;
pub mod client;
pub mod drift;
pub mod error;
pub mod keys;
pub mod raw;
pub mod settings;
pub mod stage;
pub mod state;

pub use auth::Credentials;
pub use client::{ClientSettings, PageKind, Query, TascomiClient};
pub use error::IngestError;
pub use settings::IngestSettings;
pub use stage::{IngestOutcome, IngestStage};
