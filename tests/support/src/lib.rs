//! What the tests (and the benchmark) of the stages share; never a dependency of a service.
//!
//! - [`contract`]: the catalog and storage contracts every implementation keeps;
//! - [`raw`]: raw partitions shaped like Tascomi's, as ingest-svc stores them;
//! - [`records`]: synthetic records, typed by the column-type dictionary;
//! - [`parsed`]: parsed partitions as parse-svc writes them, for recast-svc's tests;
//! - [`production`]: the production-dictionary tables parse's and recast's tests drive;
//! - [`publish`]: a partition written and published on a platform as the stages do it;
//! - [`read`]: a published partition read whole;
//! - [`moto`]: a platform and queues of their own on the moto server;
//! - [`python`]: the interpreter of the tests that use pyarrow or DuckDB.

pub mod contract;
pub mod moto;
pub mod parsed;
pub mod production;
pub mod publish;
pub mod python;
pub mod raw;
pub mod read;
pub mod records;

pub use moto::MotoPlatform;
pub use parsed::{ParsedPartition, publish_parsed};
pub use python::python;
pub use raw::{RawPage, imported_at, publish_raw, raw_batch};
pub use read::read_published;
pub use records::RecordShape;
