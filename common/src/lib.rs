//! What every stage of the Tascomi pipeline stands on.
//!
//! - [`stage`]: the four stages in order and the layer each publishes.
//! - [`layout`]: zones, layers, table and partition names; London dates.
//! - [`messages`]: the versioned messages between the schedule, the operator and the stages.
//! - [`config`]: settings from an injected environment map; the pipeline file.
//! - [`queue`], [`storage`], [`catalog`]: one narrow trait per external system (SQS, S3, Glue),
//!   each with an AWS implementation and a local one (the embedded default); [`events`]: the
//!   same for EventBridge (announcing each published snapshot to downstream jobs).
//! - [`parquet_io`]: Arrow record batches to Parquet files in storage and back, streaming.
//! - [`publish`]: the one way a stage publishes a partition atomically.
//! - [`bookkeeping`], [`raw`]: the columns every layer carries; the raw layer's schema.
//! - [`source`]: finding and reading a published partition (the layer before a stage).
//! - [`locks`]: one run per partition at a time within a process.
//! - [`failure`]: the one classification of an error into what the runner does with a message.
//! - [`runner`]: receive, decode, handle, send the next message, acknowledge.
//! - [`transform_stage`]: the one flow of the stages that turn a partition into the next
//!   (parse, recast): lock, read, transform, gate, publish, next message.
//! - [`telemetry`]: structured logs and traces; [`metrics`]: counts for alarms (CloudWatch EMF).

pub mod aws;
pub mod bookkeeping;
pub mod catalog;
pub mod config;
pub mod dictionary;
pub mod events;
pub mod failure;
pub mod layout;
pub mod locks;
pub mod messages;
pub mod metrics;
pub mod parquet_io;
pub mod platform;
pub mod publish;
pub mod quality;
pub mod queue;
pub mod raw;
pub mod runner;
pub mod service;
pub mod source;
pub mod stage;
pub mod storage;
pub mod telemetry;
pub mod threads;
pub mod transform_stage;

pub use layout::{Layer, Layout, PartitionRef, TableName, Zone};
