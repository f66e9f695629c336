//! Crash tests: each stage runs as a real OS process (the `stage` binary: the services' own
//! `common::service::run`) against moto and the simulated API, and is killed with SIGKILL at
//! seeded random moments, then started again, many times per stage. The data it publishes in
//! the end must be the data of a run without a crash (identical rows, nothing duplicated,
//! nothing missing), and a watcher reading the catalog all along must only ever see complete
//! partitions of one run each.
//!
//! Shape: two nights (a full load, then an incremental one with the snapshot merging onto the
//! first) of three small tables. A reference deployment runs each stage once per night without
//! a kill, which also measures how long a stage takes: the kill moments are drawn from
//! `[0, that time]`. The crash deployment then runs each stage in turn with `KILLS_PER_NIGHT`
//! kills (delivering the stage's messages again whenever none is visible, so every process
//! started has work; for the snapshot, which acknowledges increments it holds without work,
//! recast publishes the increments again instead), and once more to the end.
//!
//! `TASCOMI_RELIABILITY_LONG=1` kills five times as often; `TASCOMI_CRASH_SEED` changes the seed;
//! `TASCOMI_CRASH_LOG_DIR` keeps the processes' logs there (else in a temporary folder).

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use common::config::{Env, PipelineFile};
use common::dictionary::ColumnTypes;
use common::layout::{Layer, TableName};
use common::messages::{self, IngestMode, IngestRequest};
use e2e::process::{CrashStats, ProcessDeployment, ProcessSettings, Rng};
use e2e::watcher::{Watcher, published_rows, unpublished_run_folders};
use e2e::{STAGES, expected_snapshot, moto, snapshot_rows};
use tascomi_sim::{History, SimApi, SimConfig, SimHandle};

const TABLES: [&str; 3] = ["appeals", "contacts", "wards"];
const NIGHTS: i64 = 2;
/// Kills per stage per night in the regular run: 20 per stage in all.
const KILLS_PER_NIGHT: usize = 10;
const DEFAULT_SEED: u64 = 0x7a5c_0111;
const STAGE_TIMEOUT: Duration = Duration::from_secs(120);

fn env_flag(name: &str) -> Option<String> {
    Env::from_process()
        .get(name)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_stages_publish_what_an_uninterrupted_run_publishes() {
    let Some(sdk) = moto().await else { return };
    let started = Instant::now();
    let long = env_flag("TASCOMI_RELIABILITY_LONG").is_some_and(|v| v == "1");
    let kills_per_night = if long {
        5 * KILLS_PER_NIGHT
    } else {
        KILLS_PER_NIGHT
    };
    let seed = env_flag("TASCOMI_CRASH_SEED")
        .map(|s| s.parse().expect("TASCOMI_CRASH_SEED is a number"))
        .unwrap_or(DEFAULT_SEED);

    let setup = Setup::new(env_flag("TASCOMI_CRASH_LOG_DIR").map(Into::into)).await;
    let Setup {
        sim, first, tables, ..
    } = &setup;
    let (sim, first) = (sim, *first);
    let reference = setup.deployment(&sdk).await;
    let crashed = setup.deployment(&sdk).await;
    let requests = |night: i64| setup.requests(night, "crash test");

    // The run without a crash, timing each stage's night.
    let mut window = [Duration::ZERO; 4];
    for night in 0..NIGHTS {
        sim.set_today(first + chrono::Duration::days(night));
        for body in requests(night) {
            reference.send(0, &body).await;
        }
        for (stage, window) in window.iter_mut().enumerate() {
            let took = reference.run_stage(stage, STAGE_TIMEOUT).await;
            *window = (*window).max(took);
        }
    }
    let reference_done = started.elapsed();

    // The same nights with kills, watched.
    let watcher = Watcher::spawn(crashed.platform().clone(), tables.clone());
    let mut rng = Rng::new(seed);
    let mut stats = [CrashStats::default(); 4];
    let (mut killing, mut finishing) = ([Duration::ZERO; 4], [Duration::ZERO; 4]);
    for night in 0..NIGHTS {
        sim.set_today(first + chrono::Duration::days(night));
        for body in requests(night) {
            crashed.send(0, &body).await;
        }
        let mut recast_inputs = Vec::new();
        for stage in 0..4 {
            let inputs = crashed.take_messages(stage).await;
            assert_eq!(inputs.len(), TABLES.len(), "{} inputs", STAGES[stage]);
            // The snapshot acknowledges an increment it already holds without work: its new
            // work comes from recast publishing the increments again.
            let upstream = (stage == 3).then_some((2, recast_inputs.as_slice()));
            let phase = Instant::now();
            stats[stage] += crashed
                .crash_stage(
                    stage,
                    &inputs,
                    upstream,
                    kills_per_night,
                    window[stage],
                    &mut rng,
                )
                .await;
            if stage == 2 {
                recast_inputs = inputs;
            }
            killing[stage] += phase.elapsed();
            finishing[stage] += crashed.run_stage(stage, STAGE_TIMEOUT).await;
        }
    }
    let watched = watcher.stop().await;
    let crash_done = started.elapsed() - reference_done;

    // Nothing given up on.
    assert_eq!(reference.dead_letters().await, Vec::<String>::new());
    assert_eq!(crashed.dead_letters().await, Vec::<String>::new());
    // The same rows in every partition of every layer, and the snapshot the API implies.
    let mut partitions = 0;
    for table in tables {
        for layer in Layer::ALL {
            let want = published_rows(reference.platform(), table, layer).await;
            let got = published_rows(crashed.platform(), table, layer).await;
            assert_eq!(want.len(), NIGHTS as usize, "{table} {layer} partitions");
            for (date, rows) in &want {
                let crash_rows = got.get(date).unwrap_or_else(|| {
                    panic!("{table} {layer} {date}: not published after the crashes")
                });
                assert!(
                    crash_rows == rows,
                    "{table} {layer} {date}: {} rows after crashes, {} without; first difference: {:?}",
                    crash_rows.len(),
                    rows.len(),
                    first_difference(rows, crash_rows)
                );
                partitions += 1;
            }
            assert_eq!(got.len(), want.len(), "{table} {layer} partitions");
        }
        for night in 0..NIGHTS {
            let day = first + chrono::Duration::days(night);
            assert_eq!(
                snapshot_rows(crashed.platform(), table.as_str(), day).await,
                expected_snapshot(sim, table.as_str(), day),
                "{table} snapshot of {day}"
            );
        }
    }
    let orphans = unpublished_run_folders(crashed.platform(), tables).await;

    let total = started.elapsed();
    eprintln!(
        "crash test (seed {seed:#x}, {} mode): reference run {:.1}s, crash run {:.1}s, total {:.1}s",
        if long { "long" } else { "regular" },
        reference_done.as_secs_f64(),
        crash_done.as_secs_f64(),
        total.as_secs_f64()
    );
    for (stage, s) in stats.iter().enumerate() {
        eprintln!(
            "  {:<8} kills {:>3} (mid-message by its log {:>3}, after a receive by SQS counts {:>3}), \
             messages delivered again {:>3}, kill window {} ms, killing {:.1}s, finishing {:.1}s",
            STAGES[stage],
            s.kills,
            s.kills_mid_message,
            s.kills_after_receive,
            s.redelivered,
            window[stage].as_millis(),
            killing[stage].as_secs_f64(),
            finishing[stage].as_secs_f64()
        );
    }
    eprintln!(
        "  watcher: {} rounds, {} partition observations ({} complete, {} superseded while read, {} violations); \
         {partitions} partitions compared; unpublished run folders left by kills (raw, parsed, increment, snapshot): {orphans:?}",
        watched.rounds,
        watched.observations(),
        watched.complete,
        watched.superseded,
        watched.violations.len()
    );

    if !watched.superseded_examples.is_empty() {
        eprintln!(
            "  superseded while read, e.g.: {:#?}",
            watched.superseded_examples
        );
    }
    assert!(
        watched.violations.is_empty(),
        "the watcher saw incomplete partitions: {:#?}",
        watched.violations
    );
    assert!(
        watched.complete >= 20,
        "the watcher saw too little: {watched:?}"
    );
    for (stage, s) in stats.iter().enumerate() {
        assert_eq!(
            s.kills,
            kills_per_night * NIGHTS as usize,
            "{} kills",
            STAGES[stage]
        );
        // The kill moments are drawn over the measured handling time: some must land while a
        // message is being handled, or this test proves nothing about that stage.
        assert!(
            s.kills_mid_message > 0,
            "no {} kill landed while a message was being handled: {s:?}",
            STAGES[stage]
        );
    }
    setup.stop().await;
}

fn first_difference(want: &[String], got: &[String]) -> Option<(Option<String>, Option<String>)> {
    let missing = want.iter().find(|r| !got.contains(r)).cloned();
    let extra = got.iter().find(|r| !want.contains(r)).cloned();
    (missing.is_some() || extra.is_some()).then_some((missing, extra))
}

/// A night killed half-way, then the next night: the first night's full load is published in the
/// raw layer and recorded by ingest, but every parse process is killed while it works, and the
/// night goes no further. The next night's ingest is then incremental (the full load is done),
/// and its snapshot must not be built from its own increment alone: the killed night's messages
/// come back (SQS keeps them), every layer of both nights is published, and both snapshots equal
/// what the API held. Before, the second night's snapshot held only that night's changes, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_night_killed_half_way_then_the_next_night_publishes_the_whole_table() {
    let Some(sdk) = moto().await else { return };
    let setup = Setup::new(None).await;
    let (sim, first, tables) = (&setup.sim, setup.first, &setup.tables);
    let deployment = setup.deployment(&sdk).await;
    let send_night = |night: i64| {
        let deployment = &deployment;
        let bodies = setup.requests(night, "killed night test");
        async move {
            for body in bodies {
                deployment.send(0, &body).await;
            }
        }
    };

    // Night 1: the full loads are published and recorded; parse is killed again and again
    // while it works, and the night ends there.
    sim.set_today(first);
    send_night(0).await;
    deployment.run_stage(0, STAGE_TIMEOUT).await;
    let mut killed_while_busy = 0;
    for round in 0..6u64 {
        let depth = deployment.depth(1).await;
        if depth.visible == 0 && depth.in_flight == 0 {
            break;
        }
        let mut child = deployment.spawn(1);
        tokio::time::sleep(Duration::from_millis(300 + 150 * round)).await;
        child.kill().await.expect("kill parse");
        killed_while_busy += 1;
    }
    assert!(killed_while_busy > 0, "parse had nothing to do");

    // Night 2, as the schedule sends it: every stage runs until its queue is empty.
    sim.set_today(first + chrono::Duration::days(1));
    send_night(1).await;
    for stage in 0..4 {
        deployment.run_stage(stage, STAGE_TIMEOUT).await;
    }

    assert_eq!(deployment.dead_letters().await, Vec::<String>::new());
    for table in tables {
        for night in 0..2 {
            let day = first + chrono::Duration::days(night);
            assert_eq!(
                snapshot_rows(deployment.platform(), table.as_str(), day).await,
                expected_snapshot(sim, table.as_str(), day),
                "{table} snapshot of {day}"
            );
        }
        for layer in Layer::ALL {
            let published = published_rows(deployment.platform(), table, layer).await;
            assert_eq!(
                published.len(),
                2,
                "{table} {layer}: one partition per night"
            );
        }
    }
    setup.stop().await;
}

/// What both tests run on: three small tables in a pipeline file, the production dictionary, the
/// simulated API serving them, and the settings of the stage processes (their logs in `log_dir`,
/// else in the temporary folder).
struct Setup {
    /// Holds the pipeline file and the logs while the test runs.
    _dir: tempfile::TempDir,
    pipeline: PipelineFile,
    dictionary: ColumnTypes,
    sim: SimHandle,
    first: NaiveDate,
    settings: ProcessSettings,
    tables: Vec<TableName>,
}

impl Setup {
    async fn new(log_dir: Option<std::path::PathBuf>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pipeline_text = format!(
            "tables:\n{}",
            TABLES.map(|t| format!("  {t}: daily\n")).concat()
        );
        let pipeline_file = dir.path().join("pipeline.yaml");
        std::fs::write(&pipeline_file, &pipeline_text).unwrap();
        let pipeline = PipelineFile::parse(&pipeline_text, "test").unwrap();
        let dictionary_file = tascomi_sim::production_dictionary_path();
        let dictionary = ColumnTypes::load(&dictionary_file).unwrap();
        let config = SimConfig {
            dictionary: dictionary.clone(),
            per_page: 20,
            history: History {
                initial_records: 60,
                ..History::default()
            },
            ..SimConfig::default()
        };
        let first = config.history.start + chrono::Duration::days(5);
        let sim = SimApi::start(config).await.unwrap();
        let settings = ProcessSettings {
            program: env!("CARGO_BIN_EXE_stage").into(),
            visibility_timeout_secs: 2,
            log_dir: log_dir.unwrap_or_else(|| dir.path().to_owned()),
            pipeline_file,
            dictionary_file,
        };
        let tables = TABLES.iter().map(|t| TableName::new(*t).unwrap()).collect();
        Self {
            _dir: dir,
            pipeline,
            dictionary,
            sim,
            first,
            settings,
            tables,
        }
    }

    /// A deployment of its own (queues, buckets, databases) on moto.
    async fn deployment(&self, sdk: &aws_config::SdkConfig) -> ProcessDeployment {
        ProcessDeployment::new(
            sdk,
            &self.sim,
            &self.pipeline,
            self.dictionary.clone(),
            self.settings.clone(),
        )
        .await
    }

    async fn stop(self) {
        self.sim.stop().await;
    }

    /// The schedule's ingest requests of night `night` (0 = the first), one per table.
    fn requests(&self, night: i64, requested_by: &str) -> Vec<String> {
        self.tables
            .iter()
            .map(|table| {
                messages::encode(&IngestRequest {
                    table: table.clone(),
                    mode: IngestMode::Incremental,
                    requested_by: requested_by.into(),
                    as_of: Some(self.first + chrono::Duration::days(night)),
                    since: None,
                })
            })
            .collect()
    }
}
