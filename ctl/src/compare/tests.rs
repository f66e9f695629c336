//! The comparison on small in-memory batches, and on Parquet files pyarrow wrote as Spark does
//! (INT96 timestamps).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::json;

use super::plan::{ColumnPlan, Relation};
use super::*;
use tascomi_test_support::python;

/// A batch of the named columns.
fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}

fn ids(values: &[i32]) -> ArrayRef {
    Arc::new(Int32Array::from(values.to_vec()))
}

fn texts(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// Compares `left` (its batches held) with `right` (streamed).
fn compare_with(options: Options, left: &[RecordBatch], right: &[RecordBatch]) -> TableComparison {
    let mut comparer = Comparer::new("appeals", options, &left[0].schema(), &right[0].schema());
    for b in left {
        comparer.push_left(b).unwrap();
    }
    for b in right {
        comparer.push_right(b).unwrap();
    }
    comparer.finish()
}

fn compare(left: &[RecordBatch], right: &[RecordBatch]) -> TableComparison {
    compare_with(Options::default(), left, right)
}

fn appeals(ids_: &[i32], statuses: &[Option<&str>]) -> RecordBatch {
    batch(vec![("id", ids(ids_)), ("status", texts(statuses))])
}

#[test]
fn equal_snapshots_are_identical_and_exit_zero() {
    let left = [
        appeals(&[1, 2], &[Some("open"), None]),
        appeals(&[3], &[Some("closed")]),
    ];
    // The same rows, in other batches and another order.
    let right = [appeals(&[3, 1, 2], &[Some("closed"), Some("open"), None])];
    let found = compare(&left, &right);
    assert!(found.identical, "{}", found.text());
    assert_eq!((found.left.rows, found.right.rows), (3, 3));
    assert_eq!(found.ids_on_both_sides, 3);
    let outcome = CompareOutcome::new(vec![found], false);
    assert!(!outcome.differences_found());
    assert_eq!(outcome.exit_code(), std::process::ExitCode::SUCCESS);
    assert!(
        outcome.text().contains("appeals: identical"),
        "{}",
        outcome.text()
    );
    assert!(
        outcome
            .text()
            .ends_with("1 table(s) compared: 1 identical, 0 with differences\n")
    );
}

#[test]
fn an_id_missing_on_each_side_is_counted_with_examples() {
    let left = [appeals(&[1, 2, 3, 5], &[Some("a"); 4])];
    let right = [appeals(&[1, 3, 4, 5, 6], &[Some("a"); 5])];
    let found = compare(&left, &right);
    assert!(!found.identical);
    assert_eq!(found.only_left.count, 1);
    assert_eq!(found.only_left.examples, [json!(2)]);
    assert_eq!(found.only_right.count, 2);
    assert_eq!(found.only_right.examples, [json!(4), json!(6)]);
    assert_eq!(found.ids_on_both_sides, 3);
    assert!(found.value_differences.is_empty());
    let text = found.text();
    assert!(text.contains("ids only left: 1 (e.g. 2)"), "{text}");
    assert!(text.contains("ids only right: 2 (e.g. 4, 6)"), "{text}");
    let outcome = CompareOutcome::new(vec![found], true);
    assert_eq!(outcome.exit_code(), std::process::ExitCode::FAILURE);
    let doc: serde_json::Value = serde_json::from_str(&outcome.render()).unwrap();
    assert_eq!(doc["identical"], json!(false));
    assert_eq!(doc["tables"][0]["only_right"]["examples"], json!([4, 6]));
}

#[test]
fn a_changed_value_is_reported_with_its_id_and_both_values() {
    let left = [
        appeals(&[1, 2], &[Some("open"), Some("open")]),
        appeals(&[3, 4], &[None, Some("x")]),
    ];
    let right = [appeals(
        &[4, 3, 2, 1],
        &[Some("x"), Some("closed"), Some("open "), Some("open")],
    )];
    let found = compare(&left, &right);
    assert!(!found.identical);
    assert_eq!(found.value_differences.len(), 1);
    let status = &found.value_differences[0];
    assert_eq!((status.column.as_str(), status.count), ("status", 2));
    assert_eq!(status.examples[0].id, json!(2));
    assert_eq!(status.examples[0].left.as_deref(), Some("open"));
    assert_eq!(status.examples[0].right.as_deref(), Some("open "));
    assert_eq!(status.examples[1].left, None);
    assert_eq!(status.examples[1].right.as_deref(), Some("closed"));
    let text = found.text();
    assert!(text.contains("status: 2 of 4 ids"), "{text}");
    assert!(
        text.contains("id 2: left \"open\", right \"open \""),
        "{text}"
    );
    assert!(text.contains("id 3: left null, right \"closed\""), "{text}");
}

#[test]
fn examples_are_the_smallest_ids_and_capped() {
    let n: Vec<i32> = (1..=50).rev().collect();
    let left = [appeals(&n, &vec![Some("a"); 50])];
    let right = [appeals(&n, &vec![Some("b"); 50])];
    let options = Options {
        examples: 3,
        ..Options::default()
    };
    let found = compare_with(options, &left, &right);
    let ids: Vec<_> = found.value_differences[0]
        .examples
        .iter()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(ids, [json!(1), json!(2), json!(3)]);
    assert_eq!(found.value_differences[0].count, 50);
}

#[test]
fn a_widened_type_is_a_difference_of_type_not_of_values() {
    let left = [batch(vec![
        ("id", ids(&[1, 2])),
        ("page_number", Arc::new(Int32Array::from(vec![1, 2]))),
        (
            "amount",
            Arc::new(Float32Array::from(vec![533456.78_f32, 0.1])),
        ),
        ("price", Arc::new(Float64Array::from(vec![533456.78, 1.5]))),
    ])];
    let right = [batch(vec![
        ("id", Arc::new(Int64Array::from(vec![2, 1]))),
        ("page_number", Arc::new(Int64Array::from(vec![2, 1]))),
        ("amount", Arc::new(Float64Array::from(vec![0.1, 533456.78]))),
        ("price", Arc::new(Float64Array::from(vec![1.5, 533456.78]))),
    ])];
    let found = compare(&left, &right);
    assert!(found.value_differences.is_empty(), "{}", found.text());
    assert_eq!(found.ids_on_both_sides, 2);
    let columns: Vec<_> = found
        .type_differences
        .iter()
        .map(|t| t.column.as_str())
        .collect();
    assert_eq!(columns, ["id", "page_number", "amount"]);
    let page = &found.type_differences[1];
    assert_eq!(page.relation, Relation::Width);
    assert_eq!(
        (page.left.as_str(), page.right.as_str()),
        ("Int32 (int)", "Int64 (bigint)")
    );
    assert!(page.counts);
    assert!(!found.identical);
    assert!(
        found.text().contains("type differs: page_number: Int32 (int) left, Int64 (bigint) right; values compared as Int64 (bigint)"),
        "{}",
        found.text()
    );
    // Forgiven with --ignore-widening: the values agree.
    let options = Options {
        ignore_widening: true,
        ..Options::default()
    };
    let found = compare_with(options, &left, &right);
    assert!(found.identical, "{}", found.text());
    assert_eq!(found.type_differences.len(), 3);
}

#[test]
fn a_widened_value_that_differs_is_still_found() {
    let left = [batch(vec![("id", ids(&[1])), ("n", ids(&[7]))])];
    let right = [batch(vec![
        ("id", ids(&[1])),
        ("n", Arc::new(Int64Array::from(vec![8]))),
    ])];
    let options = Options {
        ignore_widening: true,
        ..Options::default()
    };
    let found = compare_with(options, &left, &right);
    assert!(!found.identical);
    let n = &found.value_differences[0];
    assert_eq!(
        (
            n.examples[0].left.as_deref(),
            n.examples[0].right.as_deref()
        ),
        (Some("7"), Some("8"))
    );
    assert!(
        found.text().contains("id 1: left 7, right 8"),
        "{}",
        found.text()
    );
}

#[test]
fn text_compares_with_a_typed_column_by_parsing_it() {
    let left = [batch(vec![
        ("id", ids(&[1, 2, 3, 4])),
        (
            "code",
            texts(&[Some("200"), Some("oops"), None, Some("404")]),
        ),
    ])];
    let right = [batch(vec![
        ("id", ids(&[1, 2, 3, 4])),
        (
            "code",
            Arc::new(Int32Array::from(vec![Some(200), None, None, Some(400)])),
        ),
    ])];
    let found = compare(&left, &right);
    assert_eq!(found.type_differences[0].relation, Relation::Changed);
    let code = &found.value_differences[0];
    // "oops" does not parse: it differs from the null; "404" differs from 400.
    assert_eq!(code.count, 2, "{}", found.text());
    assert_eq!(code.examples[0].left.as_deref(), Some("oops"));
    assert_eq!(code.examples[0].right, None);
}

#[test]
fn columns_on_one_side_and_ignored_columns() {
    let left = [batch(vec![
        ("id", ids(&[1])),
        ("a", texts(&[Some("x")])),
        ("t", texts(&[Some("1")])),
    ])];
    let right = [batch(vec![
        ("id", ids(&[1])),
        ("b", texts(&[Some("y")])),
        ("t", texts(&[Some("2")])),
    ])];
    let found = compare(&left, &right);
    assert_eq!(found.columns_only_left, ["a"]);
    assert_eq!(found.columns_only_right, ["b"]);
    assert!(!found.identical);
    let options = Options {
        ignore_columns: ["a", "b", "t", "nowhere"].map(String::from).into(),
        ..Options::default()
    };
    let found = compare_with(options, &left, &right);
    assert!(found.identical, "{}", found.text());
    assert_eq!(found.ignored_columns, ["a", "b", "t"]);
}

#[test]
fn text_ids_duplicates_and_rows_without_id() {
    let left = [batch(vec![
        ("id", texts(&[Some("a"), Some("b"), Some("a"), None])),
        ("v", texts(&[Some("1"), Some("2"), Some("3"), Some("4")])),
    ])];
    let right = [batch(vec![
        ("id", texts(&[Some("b"), Some("a")])),
        ("v", texts(&[Some("2"), Some("1")])),
    ])];
    let found = compare(&left, &right);
    assert_eq!(found.duplicate_ids_left.count, 1);
    assert_eq!(found.duplicate_ids_left.examples, [json!("a")]);
    assert_eq!(found.rows_without_id_left, 1);
    assert!(
        found.value_differences.is_empty(),
        "the first row of an id is compared"
    );
    assert!(!found.identical);
    assert!(
        found.text().contains("duplicate ids left: 1 (e.g. \"a\")"),
        "{}",
        found.text()
    );
}

#[test]
fn integer_ids_match_text_ids() {
    let left = [batch(vec![
        ("id", ids(&[1, 2])),
        ("v", texts(&[Some("x"), Some("y")])),
    ])];
    let right = [batch(vec![
        ("id", texts(&[Some("2"), Some("1")])),
        ("v", texts(&[Some("y"), Some("x")])),
    ])];
    let found = compare(&left, &right);
    assert_eq!(found.ids_on_both_sides, 2);
    assert!(found.value_differences.is_empty());
    assert_eq!(found.type_differences[0].column, "id");
}

#[test]
fn no_id_column_is_a_problem_not_a_crash() {
    let left = [batch(vec![("id", ids(&[1]))])];
    let right = [batch(vec![("key", ids(&[1]))])];
    let found = compare(&left, &right);
    assert!(!found.identical);
    assert!(
        found
            .problem
            .as_deref()
            .unwrap()
            .contains("no id column \"id\" on the right side")
    );
    assert_eq!((found.left.rows, found.right.rows), (1, 1));
}

#[test]
fn timestamps_of_other_units_compare_as_instants() {
    let plan = ColumnPlan::of(
        &DataType::Timestamp(TimeUnit::Nanosecond, None),
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    );
    assert_eq!(plan.relation, Relation::Encoding);
    assert!(!plan.relation.counts(false));
    let float = ColumnPlan::of(&DataType::Float64, &DataType::Float32);
    assert_eq!(float.compared_as, Some(DataType::Float32));
    assert_eq!(
        ColumnPlan::of(&DataType::Utf8, &DataType::LargeUtf8).relation,
        Relation::Encoding
    );
}

/// `tascomi compare`'s options, as the command line parses them.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    args: CompareArgs,
}

#[test]
fn every_option_says_what_it_is_for_and_the_other_lakes_exclude_each_other() {
    use clap::{CommandFactory, Parser};
    for arg in Cli::command().get_arguments() {
        let id = arg.get_id().as_str();
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        assert!(
            !help.trim().is_empty() || id == "help",
            "--{id}: no description"
        );
        let dated = arg
            .get_value_names()
            .is_some_and(|names| names.iter().any(|n| n.as_str() == "DATE"));
        assert!(
            !dated || help.contains("YYYY-MM-DD or YYYYMMDD"),
            "--{id}: {help}"
        );
    }
    let parsed = Cli::try_parse_from([
        "compare",
        "--table",
        "appeals",
        "--date",
        "20261121",
        "--ignore-columns",
        "import_datetime, import_timestamp",
        "--examples",
        "2",
    ])
    .unwrap()
    .args;
    assert_eq!(parsed.date, NaiveDate::from_ymd_opt(2026, 11, 21));
    let options = parsed.options();
    assert_eq!(options.examples, 2);
    assert_eq!(
        options.ignore_columns,
        ["import_datetime", "import_timestamp"]
            .map(String::from)
            .into()
    );
    assert!(!parsed.other_lake());
    let both = [
        "compare",
        "--against-prefix",
        "p",
        "--against-data-dir",
        "/tmp",
    ];
    assert!(Cli::try_parse_from(both).is_err());
}

#[test]
fn dates_are_read_in_both_formats() {
    let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    assert_eq!(parse_date_arg("2026-11-21"), Ok(day));
    assert_eq!(parse_date_arg("20261121"), Ok(day));
    assert!(
        parse_date_arg("21/11/2026")
            .unwrap_err()
            .contains("YYYY-MM-DD or YYYYMMDD")
    );
}

/// Writes one table twice with pyarrow, as Spark on Glue writes it (INT96 timestamps, snappy,
/// no Arrow schema in the footer) into `int96.parquet` and as we write it (INT64 microseconds)
/// into `int64.parquet`; the INT64 file's third timestamp is one microsecond later.
const WRITE_BOTH: &str = r#"
import datetime, sys, pyarrow as pa, pyarrow.parquet as pq
folder = sys.argv[1]
def table(last):
    ts = [datetime.datetime(2026, 11, 21, 10, 30, 15, 123456), None, last]
    return pa.table({
        "id": pa.array([1, 2, 3], pa.int32()),
        "import_datetime": pa.array(ts, pa.timestamp("us")),
    })
old = datetime.datetime(1999, 1, 2, 3, 4, 5)
pq.write_table(table(old), folder + "/int96.parquet", use_deprecated_int96_timestamps=True,
               compression="snappy", store_schema=False)
pq.write_table(table(old + datetime.timedelta(microseconds=1)), folder + "/int64.parquet",
               coerce_timestamps="us", compression="snappy")
kinds = [pq.ParquetFile(folder + "/" + f).metadata.row_group(0).column(1).physical_type
         for f in ("int96.parquet", "int64.parquet")]
print(" ".join(kinds))
"#;

#[tokio::test]
async fn int96_timestamps_equal_int64_microseconds() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("lake");
    std::fs::create_dir_all(&folder).unwrap();
    let out = std::process::Command::new(python)
        .args(["-c", WRITE_BOTH])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "INT96 INT64");
    // Read as arrow-rs reads a file by default: INT96 as nanoseconds.
    let read = |name: &str| -> Vec<RecordBatch> {
        let file = std::fs::File::open(folder.join(name)).unwrap();
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let (spark, ours) = (read("int96.parquet"), read("int64.parquet"));
    let spark_type = spark[0].schema().field(1).data_type().clone();
    assert_eq!(spark_type, DataType::Timestamp(TimeUnit::Nanosecond, None));
    assert_eq!(
        ours[0].schema().field(1).data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, None)
    );

    // The same instants: equal, and the encoding is noted, not counted.
    let first_two = |b: &RecordBatch| b.slice(0, 2);
    let found = compare(&[first_two(&spark[0])], &[first_two(&ours[0])]);
    assert!(found.identical, "{}", found.text());
    assert_eq!(found.encoding_differences.len(), 1);
    assert_eq!(found.encoding_differences[0].column, "import_datetime");
    assert_eq!(
        found.encoding_differences[0].compared_as.as_deref(),
        Some("instants at Timestamp(µs)")
    );
    assert!(
        found
            .text()
            .contains("same type, other encoding (not a difference): import_datetime")
    );

    // One microsecond apart: found, and shown as the timestamps.
    let found = compare(&spark, &ours);
    assert!(!found.identical);
    let diff = &found.value_differences[0];
    assert_eq!((diff.column.as_str(), diff.count), ("import_datetime", 1));
    assert_eq!(diff.examples[0].id, json!(3));
    assert_eq!(
        diff.examples[0].left.as_deref(),
        Some("1999-01-02T03:04:05")
    );
    assert_eq!(
        diff.examples[0].right.as_deref(),
        Some("1999-01-02T03:04:05.000001")
    );

    // Our own microseconds against the same values held in memory: equal.
    let micros = TimestampMicrosecondArray::from(vec![
        Some(1_795_257_015_123_456),
        None,
        Some(915_246_245_000_001),
    ]);
    let mine = batch(vec![
        ("id", ids(&[1, 2, 3])),
        ("import_datetime", Arc::new(micros)),
    ]);
    let found = compare(&[mine], &ours);
    assert!(found.identical, "{}", found.text());
}
