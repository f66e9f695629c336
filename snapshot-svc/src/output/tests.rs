use super::*;
use crate::test_rows::{increment, key, schema};
use arrow::datatypes::{DataType, Field, SchemaRef};
use std::sync::Arc;

fn file(range: Option<(i32, i32)>, rows: u64, schema: SchemaRef) -> BaseFile {
    BaseFile {
        bucket: "b".into(),
        key: "k".into(),
        bytes: 1,
        rows,
        schema,
        id_range: range.map(|(a, b)| (key(a), key(b))),
        groups: range.map(|(a, b)| vec![(key(a), key(b))]),
        id_nulls: Some(0),
        complete: Some(rows),
        metadata: empty_footer(),
    }
}

/// The footer of a file without rows: decide() never reads it.
fn empty_footer() -> Arc<parquet::file::metadata::ParquetMetaData> {
    let encoder = common::parquet_io::FileEncoder::new(schema(), &Default::default()).unwrap();
    let body = encoder.finish().unwrap();
    Arc::new(
        parquet::file::metadata::ParquetMetaDataReader::new()
            .parse_and_finish(&body)
            .unwrap(),
    )
}

#[test]
fn decide_copies_untouched_files_and_rewrites_the_rest() {
    let inc = increment(&[15, 42]);
    let target = schema();
    let full = |range| file(Some(range), 10, schema());
    assert_eq!(
        decide(&full((1, 10)), Some(&key(11)), &inc, &target, 10),
        Action::Copy
    );
    assert_eq!(
        decide(&full((11, 20)), Some(&key(21)), &inc, &target, 10),
        Action::Rewrite(Rewrite::HoldsIncrementIds)
    );
    let older = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)]));
    assert_eq!(
        decide(
            &file(Some((21, 30)), 10, older),
            Some(&key(31)),
            &inc,
            &target,
            10
        ),
        Action::Rewrite(Rewrite::SchemaChanged)
    );
    assert_eq!(
        decide(&file(Some((31, 40)), 5, schema()), None, &inc, &target, 10),
        Action::Rewrite(Rewrite::AbsorbsFollowingRows),
        "42 joins the last file, which is not full"
    );
    assert_eq!(
        decide(&full((31, 40)), None, &inc, &target, 10),
        Action::Copy
    );
    assert_eq!(
        decide(&file(None, 10, schema()), None, &inc, &target, 10),
        Action::Rewrite(Rewrite::NoStatistics)
    );
}

#[test]
fn small_files_are_compacted_into_their_neighbours() {
    let settings = SnapshotSettings {
        file_rows: 10,
        ..SnapshotSettings::default()
    };
    let small = file(Some((1, 4)), 4, schema());
    let full = file(Some((5, 14)), 10, schema());
    assert!(
        compacts(&small, Some(&full), true, &settings),
        "joins the open file"
    );
    assert!(!compacts(&small, Some(&full), false, &settings));
    assert!(
        compacts(&small, Some(&small), false, &settings),
        "two small files"
    );
    assert!(!compacts(&small, None, false, &settings));
    assert!(
        !compacts(&full, Some(&small), true, &settings),
        "a full file stays"
    );
    let mut wide = small.clone();
    wide.bytes = settings.target_file_bytes as u64;
    assert!(
        !compacts(&wide, Some(&small), true, &settings),
        "few rows, but many bytes"
    );
}

#[test]
fn row_count_check_fails_a_drop_beyond_the_allowed_share() {
    let base = NaiveDate::from_ymd_opt(2026, 11, 8).unwrap();
    let none = Fraction::new(0.0).unwrap();
    let check = row_count_check(base, 4200, 298, none);
    assert!(!check.passed);
    assert_eq!(check.check, "row_count_change");
    assert_eq!(check.value, -0.929);
    assert_eq!(check.threshold, 0.0);
    assert_eq!(
        check.examples,
        ["298 rows against 4200 in the base snapshot_date=20261108"]
    );
    assert!(!row_count_check(base, 4200, 4199, none).passed);
    assert!(row_count_check(base, 4200, 4200, none).passed);
    assert!(row_count_check(base, 4200, 4300, none).passed);
    assert!(row_count_check(base, 0, 0, none).passed);
    let tenth = Fraction::new(0.1).unwrap();
    assert!(row_count_check(base, 1000, 900, tenth).passed);
    assert!(!row_count_check(base, 1000, 899, tenth).passed);
    assert_eq!(row_count_check(base, 1000, 899, tenth).threshold, -0.1);
}
