use super::*;

const EXAMPLE: &str = "\
column_type_dictionary: dictionary.json
tables:
  appeals: daily
  applications: { schedule: daily, completeness_column: application_reference_number }
  asset_constraints:
    schedule: daily
    keep_as_text: true
  wards: weekly
";

#[test]
fn reads_one_line_per_table() {
    let file = PipelineFile::parse(EXAMPLE, "pipeline.yaml").unwrap();
    assert_eq!(file.max_lookback_days, 60);
    assert_eq!(file.tables.len(), 4);
    let applications = file.table(&"applications".parse().unwrap()).unwrap();
    assert_eq!(
        applications.completeness_column,
        "application_reference_number"
    );
    assert_eq!(applications.schedule, Schedule::Daily);
    let assets = file.table(&"asset_constraints".parse().unwrap()).unwrap();
    assert!(assets.keep_as_text);
    assert_eq!(assets.completeness_column, "id");
    let wards = file.table_or_default(&"wards".parse().unwrap());
    assert_eq!(wards.schedule, Schedule::Weekly);
    let other = file.table_or_default(&"notes".parse().unwrap());
    assert_eq!(other, TableConfig::with_defaults("notes".parse().unwrap()));
    // No threshold anywhere: any drop fails.
    assert_eq!(
        file.row_count_drop_threshold(&"applications".parse().unwrap()),
        DEFAULT_ROW_COUNT_DROP_THRESHOLD
    );
    assert_eq!(DEFAULT_ROW_COUNT_DROP_THRESHOLD.get(), 0.0);
}

#[test]
fn row_count_drop_threshold_is_global_with_table_overrides() {
    let text = EXAMPLE.replace(
        "tables:\n",
        "row_count_drop_threshold: 0.02\ntables:\n  notes: { schedule: daily, row_count_drop_threshold: 0 }\n",
    )
    .replace("wards: weekly", "wards: { schedule: weekly, row_count_drop_threshold: 1 }");
    let file = PipelineFile::parse(&text, "pipeline.yaml").unwrap();
    let of = |t: &str| file.row_count_drop_threshold(&t.parse().unwrap()).get();
    assert_eq!(of("appeals"), 0.02);
    assert_eq!(of("unlisted"), 0.02);
    assert_eq!(of("notes"), 0.0);
    assert_eq!(of("wards"), 1.0);
    for (text, expected) in [
        (
            EXAMPLE.replace("tables:\n", "row_count_drop_threshold: 1.5\ntables:\n"),
            "row_count_drop_threshold: 1.5 is not a share between 0 and 1",
        ),
        (
            EXAMPLE.replace(
                "wards: weekly",
                "wards: { schedule: weekly, row_count_drop_threshold: -0.1 }",
            ),
            "line 8: row_count_drop_threshold of wards: -0.1 is not a share",
        ),
        (
            EXAMPLE.replace(
                "wards: weekly",
                "wards: { schedule: weekly, row_count_drop_threshold: .nan }",
            ),
            "NaN is not a share",
        ),
        (
            EXAMPLE.replace("tables:\n", "row_count_drop_threshold: lots\ntables:\n"),
            "row_count_drop_threshold",
        ),
    ] {
        let err = PipelineFile::parse(&text, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

#[test]
fn errors_name_the_line() {
    let cases = [
        (
            EXAMPLE.replace("  wards: weekly", "  appeals: weekly"),
            "line 8: table appeals is listed twice",
        ),
        (
            EXAMPLE.replace("wards: weekly", "Wards: weekly"),
            "line 8: table \"Wards\" is not a plain identifier",
        ),
        (EXAMPLE.replace("wards: weekly", "wards: monthly"), "line 8"),
        (
            EXAMPLE.replace("keep_as_text: true", "keep_as_txt: true"),
            "unknown field `keep_as_txt`",
        ),
        (
            EXAMPLE.replace("tables:", "tabels:"),
            "unknown field `tabels`",
        ),
        (
            EXAMPLE.replace("{ schedule", "{ schedule: daily, schedule"),
            "line 4",
        ),
        ("tables: [".to_string(), "line 1"),
    ];
    for (text, expected) in cases {
        let err = PipelineFile::parse(&text, "pipeline.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("pipeline file pipeline.yaml: "), "{err}");
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

#[test]
fn dictionary_path_is_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.yaml");
    std::fs::write(&path, EXAMPLE).unwrap();
    let file = PipelineFile::load(&path).unwrap();
    assert_eq!(
        file.column_type_dictionary,
        Some(ConfigLocation::File(dir.path().join("dictionary.json")))
    );
    // An S3 object is taken as it is.
    std::fs::write(
        &path,
        EXAMPLE.replace(
            "dictionary.json",
            "s3://config-bucket/tascomi/dictionary.json",
        ),
    )
    .unwrap();
    let file = PipelineFile::load(&path).unwrap();
    assert_eq!(
        file.column_type_dictionary,
        Some(ConfigLocation::S3 {
            bucket: "config-bucket".into(),
            key: "tascomi/dictionary.json".into()
        })
    );
    let err = PipelineFile::parse(
        "column_type_dictionary: s3://bucket-only\ntables: {}\n",
        "p.yaml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("s3://bucket/key"), "{err}");
    let err = PipelineFile::load(&dir.path().join("missing.yaml")).unwrap_err();
    assert!(err.to_string().contains("missing.yaml"));
}

#[test]
fn env_errors_name_the_variable_and_hide_secrets() {
    let env = Env::from_pairs([("N", "x"), ("KEY", "privkey456"), ("EMPTY", "")]);
    let err = env.parse_or::<u32>("N", 1).unwrap_err().to_string();
    assert!(err.contains("N=\"x\" is invalid"), "{err}");
    assert_eq!(env.parse_or::<u32>("UNSET", 7).unwrap(), 7);
    assert_eq!(env.parse_or::<u32>("EMPTY", 7).unwrap(), 7);
    let ranged = Env::from_pairs([("R", "0")]).parse_in_range("R", 5usize, 1..=10);
    assert!(
        ranged
            .unwrap_err()
            .to_string()
            .contains("R=\"0\" is invalid: must be between 1 and 10")
    );
    assert_eq!(
        Env::default().parse_in_range("R", 5usize, 1..=10).unwrap(),
        5
    );
    assert!(
        env.required("EMPTY")
            .unwrap_err()
            .to_string()
            .contains("EMPTY is required")
    );
    let secret = env.secret("KEY").unwrap();
    assert_eq!(secret.expose(), "privkey456");
    for shown in [
        format!("{secret:?}"),
        format!("{secret}"),
        format!("{env:?}"),
    ] {
        assert!(!shown.contains("privkey456"), "{shown}");
    }
}
