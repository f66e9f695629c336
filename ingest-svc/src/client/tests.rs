use super::*;

#[test]
fn empty_and_null_bodies_hold_no_records() {
    for body in ["", "  \n", "null", "[]"] {
        assert!(
            parse_records(body.as_bytes()).unwrap().is_empty(),
            "{body:?}"
        );
    }
    let records = parse_records(br#"[{"id": "1", "x": null}]"#).unwrap();
    assert_eq!(records[0]["id"], "1");
}

#[test]
fn malformed_bodies_are_errors_saying_why() {
    let err = parse_records(b"[{\"id\": \"1\"").unwrap_err();
    assert!(err.starts_with("malformed JSON"), "{err}");
    let err = parse_records(br#"{"id": "1"}"#).unwrap_err();
    assert!(err.contains("JSON object rather than a list"), "{err}");
    let err = parse_records(br#"[{"id": "1"}, 7]"#).unwrap_err();
    assert!(err.contains("record 1 is a JSON number"), "{err}");
}

#[test]
fn page_count_rounds_up_and_falls_back_without_headers() {
    let page = |total, per_page, records: usize| PageResponse {
        url: String::new(),
        status: 200,
        total_results: total,
        per_page,
        records: vec![serde_json::Map::new(); records],
    };
    assert_eq!(page(Some(250), Some(100), 100).page_count(), 3);
    assert_eq!(page(Some(200), Some(100), 100).page_count(), 2);
    assert_eq!(page(Some(0), Some(100), 0).page_count(), 0);
    assert_eq!(page(Some(1), Some(100), 1).page_count(), 1);
    // Never "one page" from records alone: a count page always has both headers.
    assert_eq!(page(None, None, 5).page_count(), 0);
    assert_eq!(page(Some(10), Some(0), 10).page_count(), 0);
}

#[test]
fn count_headers_are_digits_with_optional_thousands_separators() {
    for (text, number) in [
        ("0", 0),
        ("7", 7),
        ("1021", 1021),
        (" 1021 ", 1021),
        ("1,021", 1021),
        ("12,345,678", 12_345_678),
        ("999", 999),
        ("000", 0),
    ] {
        assert_eq!(parse_count_header(text), Some(number), "{text:?}");
    }
    for text in [
        "",
        " ",
        "-1",
        "+1",
        "1.021",
        "1,02",
        "1,0211",
        "1,,021",
        ",021",
        "1,021,",
        "1234,567",
        "1 021",
        "about 130",
        "n/a",
        "0x10",
        "99999999999999999999999",
    ] {
        assert_eq!(parse_count_header(text), None, "{text:?}");
    }
}

#[test]
fn a_count_request_needs_both_headers_as_numbers_naming_the_missing_one() {
    assert_eq!(count_headers(Some("1,021"), Some("100")), Ok((1021, 100)));
    assert_eq!(count_headers(Some("0"), Some("0")), Ok((0, 0)));
    let err = count_headers(None, Some("100")).unwrap_err();
    assert_eq!(err, "the count header X-Number-Of-Results is missing");
    let err = count_headers(Some("130"), None).unwrap_err();
    assert_eq!(err, "the count header X-Results-Per-Page is missing");
    let err = count_headers(Some("lots"), Some("100")).unwrap_err();
    assert!(
        err.contains("X-Number-Of-Results is not a number: \"lots\""),
        "{err}"
    );
    let err = count_headers(Some("130"), Some("0")).unwrap_err();
    assert!(err.contains("X-Results-Per-Page is 0"), "{err}");
}

#[test]
fn bodies_that_hold_no_list_are_told_apart() {
    assert_eq!(read_body(b"", false), Ok(None));
    assert_eq!(read_body(b" null\n", false), Ok(None));
    assert_eq!(read_body(b"[]", false), Ok(Some(Vec::new())));
    let html = b"<!DOCTYPE html><html><body>Service Unavailable</body></html>";
    assert_eq!(
        read_body(html, false).unwrap_err(),
        "an HTML page rather than JSON"
    );
    assert!(read_body(b"[]", true).is_err(), "a text/html content type");
    assert!(
        read_body(b"[{\"id\"", false)
            .unwrap_err()
            .starts_with("malformed JSON")
    );
    assert_eq!(empty_body_kind(b" "), "an empty body");
    assert_eq!(empty_body_kind(b"null"), "a null body");
    assert_eq!(Query::All.to_string(), "all records");
    assert_eq!(
        Query::UpdatedOn(NaiveDate::from_ymd_opt(2026, 11, 5).unwrap()).to_string(),
        "last_updated=2026-11-05"
    );
}

#[test]
fn urls_name_the_page_and_day_and_parse_back() {
    let client = TascomiClient::new(
        ClientSettings::new("http://127.0.0.1:1/rest/v1"),
        Credentials::new(
            common::config::Secret::new("A".into()),
            common::config::Secret::new("B".into()),
        ),
    )
    .unwrap();
    let table: TableName = "appeals".parse().unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let url = client.page_url(&table, Query::UpdatedOn(day), 3);
    assert_eq!(
        url,
        "http://127.0.0.1:1/rest/v1/appeals?page=3&last_updated=2026-11-20"
    );
    assert_eq!(Query::of_url(&url), Query::UpdatedOn(day));
    assert_eq!(
        Query::of_url(&client.page_url(&table, Query::All, 1)),
        Query::All
    );
}

#[test]
fn backoff_grows_with_jitter_and_honours_retry_after() {
    let mut settings = ClientSettings::new("http://x/");
    settings.backoff_base = Duration::from_millis(100);
    settings.backoff_max = Duration::from_millis(1_000);
    let client = TascomiClient::new(
        settings,
        Credentials::new(
            common::config::Secret::new("A".into()),
            common::config::Secret::new("B".into()),
        ),
    )
    .unwrap();
    for _ in 0..50 {
        let first = client.backoff(1, None);
        assert!(
            (50..=100).contains(&(first.as_millis() as u64)),
            "{first:?}"
        );
        let third = client.backoff(3, None);
        assert!(
            (200..=400).contains(&(third.as_millis() as u64)),
            "{third:?}"
        );
        let capped = client.backoff(30, None);
        assert!(capped <= Duration::from_millis(1_000));
        let told = client.backoff(1, Some(Duration::from_secs(2)));
        assert_eq!(told, Duration::from_secs(2));
    }
    assert_eq!(
        client.backoff(1, Some(Duration::from_secs(3600))),
        MAX_RETRY_AFTER
    );
}

#[test]
fn settings_come_from_the_environment_with_named_defaults() {
    let env = Env::from_pairs([("TASCOMI_API_BASE_URL", "https://council.example/rest/v1")]);
    let settings = ClientSettings::from_env(&env).unwrap();
    assert_eq!(settings.base_url, "https://council.example/rest/v1/");
    assert_eq!(
        settings.max_concurrent_requests,
        DEFAULT_MAX_CONCURRENT_REQUESTS
    );
    assert_eq!(settings.max_attempts, DEFAULT_MAX_ATTEMPTS);
    let env = Env::from_pairs([
        ("TASCOMI_API_BASE_URL", "https://council.example/"),
        ("TASCOMI_API_MAX_CONCURRENT_REQUESTS", "0"),
    ]);
    let err = ClientSettings::from_env(&env).unwrap_err().to_string();
    assert!(err.contains("TASCOMI_API_MAX_CONCURRENT_REQUESTS"), "{err}");
    let err = ClientSettings::from_env(&Env::from_pairs([("TASCOMI_API_BASE_URL", "ftp://x")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("TASCOMI_API_BASE_URL"), "{err}");
    assert!(ClientSettings::from_env(&Env::default()).is_err());
}
