use super::*;

fn d(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 1).unwrap() + chrono::Duration::days(i64::from(day) - 1)
}

fn is_full(plan: Plan) -> bool {
    matches!(plan, Plan::Full { .. })
}

fn failed_page(day: Option<NaiveDate>, page_number: u32, whole_query: bool) -> FailedPage {
    FailedPage {
        day,
        page_number,
        url: "u".into(),
        status_code: Some(500),
        error: "http 500".into(),
        whole_query,
    }
}

/// An import whose failed pages are page 2 of each query in `failed` (`None`: all records).
fn import(
    date: NaiveDate,
    kind: ImportKind,
    days: &[NaiveDate],
    failed: &[Option<NaiveDate>],
) -> ImportRecord {
    let pages: Vec<FailedPage> = failed
        .iter()
        .map(|day| failed_page(*day, 2, false))
        .collect();
    import_with(date, kind, days, pages)
}

fn import_with(
    date: NaiveDate,
    kind: ImportKind,
    days: &[NaiveDate],
    failed_pages: Vec<FailedPage>,
) -> ImportRecord {
    let mut record = ImportRecord {
        import_date: date,
        kind,
        run_id: format!("run-{date}"),
        location: format!("s3://raw/x/{date}/"),
        finished_at: Utc::now(),
        days_requested: days.to_vec(),
        days_completed: Vec::new(),
        days_cut: Vec::new(),
        days_refetched: Vec::new(),
        full_pages_requested: Vec::new(),
        full_pages_outstanding: Vec::new(),
        records_written: 0,
        records_skipped_today: 0,
        records_future_dated: 0,
        requeries: 0,
        records_recovered_by_requery: 0,
        failed_pages,
    };
    record.settle();
    record
}

fn state() -> TableState {
    TableState::new("appeals".parse().unwrap())
}

fn incremental(days: Vec<NaiveDate>, base: NaiveDate) -> Plan {
    Plan::Incremental {
        days,
        cut: vec![],
        base,
        full_pages: vec![],
        refetched: vec![],
    }
}

#[test]
fn a_table_without_a_base_full_load_is_loaded_in_full() {
    let mut s = state();
    assert!(is_full(s.plan_incremental(d(10), 60, None)));
    // The count request of the full load failed: nothing to build on.
    s.record(import_with(
        d(10),
        ImportKind::Full,
        &[],
        vec![failed_page(None, 1, true)],
    ));
    assert!(is_full(s.plan_incremental(d(11), 60, None)));
    // An incremental import is no base either.
    let mut s = state();
    s.record(import(d(10), ImportKind::Incremental, &[d(9)], &[]));
    assert!(is_full(s.plan_incremental(d(11), 60, None)));
}

#[test]
fn increments_run_from_the_full_load_day_to_yesterday() {
    let mut s = state();
    s.record(import(d(10), ImportKind::Full, &[], &[]));
    assert_eq!(
        s.plan_incremental(d(11), 60, None),
        incremental(vec![d(10)], d(10))
    );
    // Missed nights are caught up.
    assert_eq!(
        s.plan_incremental(d(13), 60, None),
        incremental(vec![d(10), d(11), d(12)], d(10))
    );
}

#[test]
fn a_full_load_with_failed_pages_is_followed_by_those_pages_and_the_increment() {
    let mut s = state();
    let mut full = import(d(10), ImportKind::Full, &[], &[None]);
    full.failed_pages.push(failed_page(None, 7, false));
    full.settle();
    assert_eq!(full.full_pages_outstanding, [2, 7]);
    assert!(full.is_base() && !full.is_complete());
    s.record(full);
    assert_eq!(
        s.plan_incremental(d(11), 60, None),
        Plan::Incremental {
            days: vec![d(10)],
            cut: vec![],
            base: d(10),
            full_pages: vec![2, 7],
            refetched: vec![],
        }
    );
    // The next night fetched both; page 7 failed again: it stays outstanding, page 2 is done.
    let mut night = import_with(
        d(11),
        ImportKind::Incremental,
        &[d(10)],
        vec![failed_page(None, 7, false)],
    );
    night.full_pages_requested = vec![2, 7];
    assert_eq!(night.days_completed, [d(10)], "a full-load page is no day");
    s.record(night);
    let Plan::Incremental {
        days, full_pages, ..
    } = s.plan_incremental(d(12), 60, None)
    else {
        panic!()
    };
    assert_eq!((days, full_pages), (vec![d(11)], vec![7]));
    // Page 7 succeeds on day 12: nothing outstanding after it.
    s.record(import(d(12), ImportKind::Incremental, &[d(11)], &[]));
    assert_eq!(
        s.plan_incremental(d(13), 60, None),
        incremental(vec![d(12)], d(10))
    );
    // The plans of days already run are unchanged (idempotent re-runs).
    let Plan::Incremental { full_pages, .. } = s.plan_incremental(d(11), 60, None) else {
        panic!()
    };
    assert_eq!(full_pages, [2, 7]);
}

#[test]
fn a_full_load_after_the_base_whose_count_failed_keeps_the_base_pages_outstanding() {
    let mut s = state();
    s.record(import(d(10), ImportKind::Full, &[], &[None]));
    s.record(import_with(
        d(11),
        ImportKind::Full,
        &[],
        vec![failed_page(None, 1, true)],
    ));
    let Plan::Incremental {
        days,
        base,
        full_pages,
        ..
    } = s.plan_incremental(d(12), 60, None)
    else {
        panic!()
    };
    assert_eq!(
        (days, base, full_pages),
        (vec![d(10), d(11)], d(10), vec![2])
    );
}

#[test]
fn since_fetches_every_day_again_uncapped() {
    let mut s = state();
    s.record(import(d(1), ImportKind::Full, &[], &[]));
    for night in 2..=10 {
        s.record(import(
            d(night),
            ImportKind::Incremental,
            &[d(night - 1)],
            &[],
        ));
    }
    assert_eq!(
        s.plan_incremental(d(11), 3, None),
        incremental(vec![d(10)], d(1))
    );
    // Beyond the lookback of 3 days: asked for, so fetched.
    assert_eq!(
        s.plan_incremental(d(11), 3, Some(d(5))),
        Plan::Incremental {
            days: (5..=10).map(d).collect(),
            cut: vec![],
            base: d(1),
            full_pages: vec![],
            refetched: (5..=9).map(d).collect(),
        }
    );
    // Without a base, still a full load.
    assert!(is_full(state().plan_incremental(d(11), 3, Some(d(5)))));
}

#[test]
fn a_quiet_table_does_not_look_back_further_each_night() {
    let mut s = state();
    s.record(import(d(1), ImportKind::Full, &[], &[]));
    for night in 2..=20 {
        let Plan::Incremental { days, .. } = s.plan_incremental(d(night), 60, None) else {
            panic!()
        };
        assert_eq!(days, vec![d(night - 1)], "night {night}");
        // Nothing arrived, but every page (none) succeeded: the day is done.
        s.record(import(d(night), ImportKind::Incremental, &days, &[]));
    }
}

#[test]
fn a_day_with_a_failed_page_is_fetched_again_and_others_are_not() {
    let mut s = state();
    s.record(import(d(1), ImportKind::Full, &[], &[]));
    s.record(import(
        d(4),
        ImportKind::Incremental,
        &[d(1), d(2), d(3)],
        &[Some(d(2))],
    ));
    assert_eq!(
        s.plan_incremental(d(5), 60, None),
        incremental(vec![d(2), d(4)], d(1))
    );
}

#[test]
fn the_plan_for_a_day_ignores_that_days_own_import() {
    let mut s = state();
    s.record(import(d(1), ImportKind::Full, &[], &[]));
    let first = s.plan_incremental(d(3), 60, None);
    s.record(import(d(3), ImportKind::Incremental, &[d(1), d(2)], &[]));
    assert_eq!(s.plan_incremental(d(3), 60, None), first);
    // A repeated full load of the first day is planned as a full load again.
    let mut s = state();
    s.record(import(d(1), ImportKind::Full, &[], &[]));
    assert!(is_full(s.plan_incremental(d(1), 60, None)));
}

#[test]
fn the_lookback_cap_cuts_old_days_once_and_names_them() {
    let mut s = state();
    s.record(import(d(1), ImportKind::Full, &[], &[]));
    let Plan::Incremental { days, cut, .. } = s.plan_incremental(d(11), 3, None) else {
        panic!()
    };
    assert_eq!(days, vec![d(8), d(9), d(10)]);
    assert_eq!(cut, (1..=7).map(d).collect::<Vec<_>>());
    assert_eq!(describe_days(&cut), "2026-11-01..2026-11-07 (7 days)");
    let mut record = import(d(11), ImportKind::Incremental, &days, &[]);
    record.days_cut = cut;
    s.record(record);
    let Plan::Incremental { days, cut, .. } = s.plan_incremental(d(12), 3, None) else {
        panic!()
    };
    assert_eq!((days, cut), (vec![d(11)], vec![]));
    assert_eq!(
        describe_days(&[d(1), d(2), d(5)]),
        "2026-11-01..2026-11-02 (2 days), 2026-11-05"
    );
}

#[test]
fn old_imports_are_forgotten_after_a_base_full_load() {
    let mut s = state();
    s.record(import(d(1), ImportKind::Full, &[], &[]));
    s.record(import(d(2), ImportKind::Incremental, &[d(1)], &[]));
    s.record(import(d(5), ImportKind::Full, &[], &[]));
    assert_eq!(s.imports.keys().copied().collect::<Vec<_>>(), vec![d(5)]);
    assert_eq!(s.last_successful_import(d(6)), Some(d(5)));
    assert_eq!(s.latest().unwrap().import_date, d(5));
    // A base with a failed page is the base too: what came before is forgotten.
    s.record(import(d(7), ImportKind::Full, &[], &[None]));
    assert_eq!(s.imports.keys().copied().collect::<Vec<_>>(), vec![d(7)]);
}

#[tokio::test]
async fn a_state_document_written_before_the_new_fields_reads_the_same() {
    // Version 1 as written before full_pages_outstanding, requeries and the rest existed.
    let old = r#"{"version":1,"table":"appeals","imports":{"2026-11-06":{
        "import_date":"2026-11-06","kind":"full","run_id":"r","location":"s3://raw/x/",
        "finished_at":"2026-11-06T06:10:00Z","records_written":100,"records_skipped_today":2,
        "failed_pages":[{"day":null,"page_number":3,"url":"u","status_code":500,
        "error":"http 500"}]}}}"#;
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(common::storage::LocalStorage::new(dir.path()));
    let table: TableName = "appeals".parse().unwrap();
    storage
        .put("raw", &TableState::key(&table), Bytes::from(old))
        .await
        .unwrap();
    let s = load(&storage, "raw", &table).await.unwrap();
    let import = &s.imports[&d(6)];
    assert_eq!(import.full_pages_outstanding, [3]);
    assert_eq!((import.requeries, import.records_future_dated), (0, 0));
    let Plan::Incremental { full_pages, .. } = s.plan_incremental(d(7), 60, None) else {
        panic!()
    };
    assert_eq!(full_pages, [3]);
}

#[tokio::test]
async fn state_round_trips_through_storage_and_rejects_a_foreign_document() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(common::storage::LocalStorage::new(dir.path()));
    let table: TableName = "appeals".parse().unwrap();
    assert_eq!(load(&storage, "raw", &table).await.unwrap(), state());
    let mut s = state();
    s.record(import(d(1), ImportKind::Full, &[], &[None]));
    save(&storage, "raw", &s).await.unwrap();
    assert_eq!(load(&storage, "raw", &table).await.unwrap(), s);
    let other: TableName = "notes".parse().unwrap();
    storage
        .put(
            "raw",
            &TableState::key(&other),
            storage.get("raw", &TableState::key(&table)).await.unwrap(),
        )
        .await
        .unwrap();
    let err = load(&storage, "raw", &other).await.unwrap_err().to_string();
    assert!(err.contains("belongs to table appeals"), "{err}");
}
