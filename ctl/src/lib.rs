//! `tascomi`, the operator command line: the pipeline on its embedded default (`demo`, `run`),
//! and the operations on a deployment or on a local data directory (`ingest`, `replay`, `reset`,
//! `rollback`, `redrive`, `status`, `report`, `drift`). It drives the stages' own code, never a
//! copy.

pub mod adopt;
pub mod cli;
pub mod compare;
pub mod demo;
pub mod health;
pub mod interrupt;
pub mod local;
pub mod ops;
pub mod report;
pub mod retype;
/// The four stages, as every part of the pipeline names them.
pub use common::stage;
pub mod target;
pub mod verdict;
