//! The parse stage: a raw partition (one row per API record, the record as JSON text) becomes a
//! parsed partition with one text column per field.
//!
//! On a "partition ready" message for the raw layer, [`ParseStage`]:
//! 1. finds the raw partition's published files through the catalog (never by listing the
//!    partition's folder, which may hold an unpublished run);
//! 2. reads them once to collect the union of the fields of the records whose page answered 200
//!    (pass 1, see [`explode::collect_fields`]) and, per id, which row to keep when the import holds the id more than once (a record
//!    served twice by the API's offset paging, or two versions of it: [`versions`]);
//! 3. reads them again, batch by batch, exploding each record into the columns of that union,
//!    in alphabetical order, followed by the [bookkeeping columns](common::bookkeeping) (pass 2),
//!    feeding the data-quality gate and writing each batch, the kept rows only, as it is made;
//! 4. records the data-quality results, then publishes the parsed partition if the gate passed
//!    (or discards the run's files if it failed) and names the partition for recast-svc.
//!
//! Memory is bounded by one batch and one output file, plus a few bytes per distinct id (the
//! duplicate rule's choice, like the gate's set of ids), never by the partition's data: two
//! passes over the input cost a second read but keep nothing of the first one except field
//! names and which rows to drop.
//!
//! Steps 1 and 4, with the lock, the gate and the next message, are the flow every transform
//! stage shares ([`common::transform_stage`]); this crate holds the parse's own part
//! ([`stage::Explode`]: the two passes, the parsed schema, the rule of one row per id).

pub mod error;
pub mod explode;
mod passes;
pub mod schema;
pub mod settings;
pub mod stage;
pub mod versions;

pub use error::ParseError;
pub use settings::ParseSettings;
pub use stage::{ParseOutcome, ParseStage};
