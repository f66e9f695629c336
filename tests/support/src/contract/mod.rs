//! The contracts every implementation of common's narrow traits keeps, as one check each: run
//! by common's integration tests against the local implementations and against moto.

pub mod catalog;
pub mod storage;
