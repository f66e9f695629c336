//! Fuzzing the message decoder with property tests: whatever arrives on a queue, `decode` returns
//! a message that passes its own checks or a `DecodeError` saying why, and never panics.
//!
//! Inputs: arbitrary bytes, arbitrary JSON, JSON shaped like a message with arbitrary field
//! values, and valid messages mutated byte by byte. Valid messages round-trip.
//!
//! The regular run tries 256 cases per property with a fixed seed; a longer run:
//! `PROPTEST_CASES=20000 cargo test -p common --test fuzz_messages` (add `PROPTEST_RNG_SEED=<n>`
//! to explore other inputs).

use chrono::NaiveDate;
use common::layout::{Layer, Layout, TableName, is_plain_identifier};
use common::messages::{
    DecodeError, IngestMode, IngestRequest, Message, PartitionReady, decode, encode,
};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde_json::{Map, Value};

/// The environment's `PROPTEST_*` settings, with a fixed seed unless `PROPTEST_RNG_SEED` is set,
/// and no regression files written into the repository.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(0x7a5c_0901);
    }
    config.failure_persistence = None;
    config
}

fn layout() -> Layout {
    Layout {
        raw_bucket: "council-raw-zone".into(),
        refined_bucket: "council-refined-zone".into(),
        database_prefix: "council".into(),
    }
}

/// The tables this deployment is taken to handle.
fn is_known(table: &TableName) -> bool {
    table.as_str() != "not_configured"
}

/// Words a message is made of, so that generated inputs often get past the first checks.
const WORDS: &[&str] = &[
    "version",
    "type",
    "ingest_request",
    "partition_ready",
    "table",
    "applications",
    "not_configured",
    "mode",
    "full",
    "incremental",
    "retry-failed",
    "requested_by",
    "as_of",
    "2026-11-21",
    "layer",
    "raw",
    "parsed",
    "increment",
    "snapshot",
    "partition",
    "import_year",
    "import_month",
    "import_day",
    "import_date",
    "snapshot_date",
    "snapshot_year",
    "2026",
    "11",
    "21",
    "20261121",
    "location",
    "s3://council-raw-zone/x/",
    "run_id",
    "../etc",
    "",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(WORDS).prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

/// Finite floats only (JSON has no others), without rejecting cases.
fn finite_f64() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        finite_f64().prop_map(Value::from),
        word().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((word(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A JSON object with a version, a type and the fields of either message, each absent, valid
/// or arbitrary.
fn message_shaped() -> impl Strategy<Value = String> {
    let version = prop_oneof![
        4 => Just(Value::from(1)),
        1 => arb_json(),
    ];
    let type_ = prop_oneof![
        Just(Value::from("ingest_request")),
        Just(Value::from("partition_ready")),
        arb_json(),
    ];
    let field = |valid: Vec<Value>| {
        prop_oneof![
            1 => Just(None),
            3 => prop::sample::select(valid).prop_map(Some),
            1 => arb_json().prop_map(Some),
        ]
    };
    let partition = prop_oneof![
        Just(serde_json::json!({
            "import_year": "2026", "import_month": "11", "import_day": "21", "import_date": "20261121"
        })),
        prop::collection::btree_map(
            prop::sample::select(&WORDS[20..26]).prop_map(str::to_owned),
            word().prop_map(Value::from),
            0..6
        )
        .prop_map(|m| Value::Object(m.into_iter().collect())),
    ];
    (
        prop::option::of(version),
        prop::option::of(type_),
        field(vec![
            "applications".into(),
            "not_configured".into(),
            "A b".into(),
        ]),
        field(vec![
            "full".into(),
            "incremental".into(),
            "retry-failed".into(),
        ]),
        field(vec!["operator:x".into()]),
        field(vec![
            "2026-11-21".into(),
            "2026-02-30".into(),
            "99999-01-01".into(),
        ]),
        field(vec![
            "raw".into(),
            "parsed".into(),
            "snapshot".into(),
            "gold".into(),
        ]),
        prop_oneof![Just(None), partition.prop_map(Some)],
        field(vec![
            "s3://council-raw-zone/x/".into(),
            "/etc/passwd".into(),
        ]),
        field(vec!["0193a1b2c3d4".into(), "".into()]),
    )
        .prop_map(
            |(version, type_, table, mode, by, as_of, layer, partition, location, run_id)| {
                let mut object = Map::new();
                for (key, value) in [
                    ("version", version),
                    ("type", type_),
                    ("table", table),
                    ("mode", mode),
                    ("requested_by", by),
                    ("as_of", as_of),
                    ("layer", layer),
                    ("partition", partition),
                    ("location", location),
                    ("run_id", run_id),
                ] {
                    if let Some(value) = value {
                        object.insert(key.into(), value);
                    }
                }
                Value::Object(object).to_string()
            },
        )
}

fn table_name() -> impl Strategy<Value = TableName> {
    "[a-z][a-z0-9_]{0,30}".prop_map(|name| name.parse().unwrap())
}

fn date() -> impl Strategy<Value = NaiveDate> {
    // Four-digit years: what a partition value can hold.
    let first = NaiveDate::from_ymd_opt(1000, 1, 1).unwrap();
    (0i64..3_287_000).prop_map(move |days| first + chrono::Duration::days(days))
}

fn valid_ingest_request() -> impl Strategy<Value = IngestRequest> {
    (
        table_name(),
        prop::sample::select(vec![
            IngestMode::Incremental,
            IngestMode::Full,
            IngestMode::RetryFailed,
        ]),
        ".{0,20}",
        prop::option::of(date()),
    )
        .prop_map(|(table, mode, requested_by, as_of)| IngestRequest {
            table,
            mode,
            requested_by,
            as_of,
            since: None,
        })
}

fn valid_partition_ready() -> impl Strategy<Value = PartitionReady> {
    (
        table_name(),
        prop::sample::select(Layer::ALL.to_vec()),
        date(),
        ".{0,40}",
        ".{1,20}",
        prop::option::of(date()),
    )
        .prop_map(|(table, layer, date, path, run_id, as_of)| {
            let partition = layout().partition(&table, layer, date);
            PartitionReady::new(&partition, format!("s3://{path}"), run_id, as_of)
        })
}

/// A byte-level edit of an encoded message.
#[derive(Debug, Clone)]
enum Edit {
    Flip { at: usize, bit: u8 },
    Insert { at: usize, byte: u8 },
    Delete { at: usize },
    Truncate { at: usize },
    Splice { at: usize, text: String },
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Edit::Insert { at, byte }),
        any::<usize>().prop_map(|at| Edit::Delete { at }),
        any::<usize>().prop_map(|at| Edit::Truncate { at }),
        (any::<usize>(), word()).prop_map(|(at, text)| Edit::Splice { at, text }),
    ];
    prop::collection::vec(edit, 1..5)
}

fn mutate(body: &str, edits: &[Edit]) -> String {
    let mut bytes = body.as_bytes().to_vec();
    for edit in edits {
        let len = bytes.len();
        let at = |i: usize| if len == 0 { 0 } else { i % len };
        match edit {
            Edit::Flip { at: i, bit } if len > 0 => bytes[at(*i)] ^= 1 << bit,
            Edit::Flip { .. } => {}
            Edit::Insert { at: i, byte } => bytes.insert(at(*i), *byte),
            Edit::Delete { at: i } if len > 0 => {
                bytes.remove(at(*i));
            }
            Edit::Delete { .. } => {}
            Edit::Truncate { at: i } => bytes.truncate(at(*i)),
            Edit::Splice { at: i, text } => {
                let i = at(*i);
                bytes.splice(i..i, text.bytes());
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// What every decoded message satisfies, and every error: a non-empty reason, and an unknown
/// table only for a table that is a plain identifier.
fn check_outcome<M: Message + PartialEq>(
    body: &str,
    outcome: Result<M, DecodeError>,
    also: impl Fn(&M),
) -> Result<(), TestCaseError> {
    match outcome {
        Ok(message) => {
            prop_assert!(is_plain_identifier(message.table().as_str()));
            prop_assert!(is_known(message.table()));
            prop_assert!(message.validate().is_ok());
            also(&message);
            let again: M = decode(&encode(&message), is_known)
                .map_err(|err| TestCaseError::fail(format!("re-encoded {body}: {err}")))?;
            prop_assert_eq!(again, message);
        }
        Err(err) => {
            prop_assert!(!err.to_string().is_empty());
            if let DecodeError::UnknownTable { table } = &err {
                prop_assert!(is_plain_identifier(table), "{table:?}");
            }
        }
    }
    Ok(())
}

/// Decodes `body` as both message types and checks both outcomes.
fn decode_both(body: &str) -> Result<(), TestCaseError> {
    check_outcome(body, decode::<IngestRequest>(body, is_known), |_| {})?;
    check_outcome(body, decode::<PartitionReady>(body, is_known), |m| {
        // What the stages call on a decoded message: never a panic.
        let partition = m.partition_ref(&layout());
        assert_eq!(partition.date, m.date());
        assert!(m.location.starts_with("s3://"));
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        decode_both(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn arbitrary_json_never_panics(value in arb_json()) {
        decode_both(&value.to_string())?;
    }

    #[test]
    fn message_shaped_json_decodes_or_says_why(body in message_shaped()) {
        decode_both(&body)?;
    }

    #[test]
    fn valid_messages_round_trip(
        ingest in valid_ingest_request(),
        ready in valid_partition_ready(),
    ) {
        let decoded: IngestRequest = decode(&encode(&ingest), |_| true).unwrap();
        prop_assert_eq!(decoded, ingest);
        let decoded: PartitionReady = decode(&encode(&ready), |_| true).unwrap();
        prop_assert_eq!(&decoded, &ready);
        prop_assert_eq!(decoded.partition_ref(&layout()), ready.partition_ref(&layout()));
    }

    #[test]
    fn mutated_valid_messages_decode_or_say_why(
        ingest in valid_ingest_request(),
        ready in valid_partition_ready(),
        edits in edits(),
    ) {
        decode_both(&mutate(&encode(&ingest), &edits))?;
        decode_both(&mutate(&encode(&ready), &edits))?;
    }
}

/// The decoder's errors on hostile inputs name the problem (a fixed set of cases the properties
/// above also reach, kept so a reader sees them).
#[test]
fn hostile_inputs_get_clear_errors() {
    let cases: &[(&str, &str)] = &[
        ("", "not a JSON object"),
        ("\u{0}\u{ff}", "not a JSON object"),
        (r#"{"version":1e400}"#, "not a JSON object"),
        (
            r#"{"version":"1","type":"ingest_request"}"#,
            "version \"1\"",
        ),
        (
            r#"{"version":1,"type":"ingest_request","table":"a/../../b"}"#,
            "not a plain identifier",
        ),
        (
            r#"{"version":1,"type":"ingest_request","table":"not_configured"}"#,
            "not configured",
        ),
        (
            r#"{"version":1,"type":"ingest_request","table":"a","as_of":"2026-02-30"}"#,
            "malformed ingest_request",
        ),
    ];
    for (body, reason) in cases {
        let err = decode::<IngestRequest>(body, is_known)
            .unwrap_err()
            .to_string();
        assert!(err.contains(reason), "{body}: {err}");
    }
}
