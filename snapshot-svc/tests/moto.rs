//! The snapshot scenarios against S3 and Glue as served by moto (`AWS_ENDPOINT_URL`). Each test
//! makes its own buckets and database, so the tests run in parallel on one server. Without
//! `AWS_ENDPOINT_URL` the tests are skipped, except in CI (env `CI`), where they fail.
#![allow(clippy::print_stdout)]

#[macro_use]
mod support;

scenarios!(support::moto_lake("snapshot"));
