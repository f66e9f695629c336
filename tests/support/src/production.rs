//! The tables parse-svc's and recast-svc's production tests drive: five tables of the
//! production column-type dictionary (the 752-field `applications` among them), as one pipeline
//! file, with the helpers both tests build their records with.

use std::path::Path;

use chrono::NaiveDate;
use common::config::PipelineFile;
use common::dictionary::{ColumnType, ColumnTypes};
use common::layout::TableName;

use crate::RecordShape;

pub const PIPELINE: &str = "\
tables:
  applications: { schedule: daily, completeness_column: application_reference_number }
  appeals: daily
  enforcements: daily
  public_consultations: { schedule: daily, completeness_column: document_id }
  pre_applications: { schedule: daily, keep_as_text: true }
";

/// The tables driven, with their number of record fields.
pub const TABLES: [(&str, usize); 5] = [
    ("applications", 752),
    ("appeals", 60),
    ("enforcements", 60),
    ("public_consultations", 30),
    ("pre_applications", 40),
];

/// The real production dictionary, read from `../shared` beside the repository (never copied
/// into it); `None`, saying so, when it is not there (outside CI: CI has it).
pub fn production_dictionary() -> Option<ColumnTypes> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/tascomi/column-type-dictionary.json");
    if !path.is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs with ../shared beside the repository: {} is missing",
            path.display()
        );
        eprintln!(
            "skipped: the production dictionary is not at {} (this test is of its tables)",
            path.display()
        );
        return None;
    }
    Some(ColumnTypes::load(&path).unwrap())
}

pub fn pipeline() -> PipelineFile {
    PipelineFile::parse(PIPELINE, "pipeline.yaml").unwrap()
}

pub fn date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

pub fn table(name: &str) -> TableName {
    TableName::new(name).unwrap()
}

pub fn shape(dictionary: &ColumnTypes, name: &str, fields: usize) -> RecordShape {
    let config = pipeline().table_or_default(&table(name));
    RecordShape::from_dictionary(dictionary, name, fields, &[&config.completeness_column])
}

/// Sets one field of a JSON record.
pub fn with_field(record: &str, field: &str, value: &str) -> String {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(record).unwrap();
    object.insert(field.into(), value.into());
    serde_json::Value::Object(object).to_string()
}

/// The first column of `table` that the dictionary types as `wanted`.
pub fn typed_column(dictionary: &ColumnTypes, name: &str, wanted: ColumnType) -> String {
    dictionary
        .columns(name)
        .find(|(c, t)| *t == wanted && *c != "id")
        .map(|(c, _)| c.to_owned())
        .unwrap()
}
