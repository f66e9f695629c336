//! The snapshot scenarios on the embedded default: local files and the local catalog.

#[macro_use]
mod support;

scenarios!(support::local_lake());
