//! Invariants of docker-compose.yml (no Docker engine here): the services it runs, the
//! variables it sets, and queue names that match what infra/ creates on AWS.

use std::collections::BTreeMap;
use std::process::Command;

use infra_check::{
    STAGES, Terraform, compose_environment, env_names_read_by_sources, load_yaml,
    terraform_queue_names, workspace_root,
};
use serde_norway::Value;

fn compose() -> BTreeMap<String, Value> {
    let file =
        load_yaml(&workspace_root().join("docker-compose.yml")).expect("docker-compose.yml parses");
    let services = file
        .get("services")
        .and_then(Value::as_mapping)
        .expect("a services map");
    services
        .iter()
        .map(|(name, service)| {
            (
                name.as_str().expect("service names are strings").to_owned(),
                service.clone(),
            )
        })
        .collect()
}

fn service<'a>(services: &'a BTreeMap<String, Value>, name: &str) -> &'a Value {
    services
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

fn command(service: &Value) -> Vec<String> {
    service
        .get("command")
        .and_then(Value::as_sequence)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

const PIPELINE_SERVICES: [&str; 4] = ["ingest-svc", "parse-svc", "recast-svc", "snapshot-svc"];

#[test]
fn compose_runs_the_emulators_the_init_the_simulator_the_four_services_and_a_night() {
    let services = compose();
    for name in ["localstack", "moto", "init", "tascomi-sim", "night"]
        .into_iter()
        .chain(PIPELINE_SERVICES)
    {
        service(&services, name);
    }
    let localstack = compose_environment(service(&services, "localstack"));
    let emulated: Vec<&str> = localstack["SERVICES"].split(',').map(str::trim).collect();
    // S3 and SQS for the data and the queues; EventBridge for snapshot-svc's announcements
    // (tests/e2e/tests/compose_on_localstack.rs runs the services on exactly these).
    for needed in ["s3", "sqs", "events"] {
        assert!(
            emulated.contains(&needed),
            "LocalStack SERVICES lacks {needed}: {emulated:?}"
        );
    }
    assert!(
        service(&services, "moto")
            .get("image")
            .and_then(Value::as_str)
            .unwrap()
            .starts_with("motoserver/moto")
    );

    for name in PIPELINE_SERVICES {
        assert_eq!(
            command(service(&services, name)),
            [name],
            "{name} runs its own binary"
        );
    }
    let sim = service(&services, "tascomi-sim");
    assert_eq!(
        command(sim).first().map(String::as_str),
        Some("tascomi-sim")
    );
    let ports = serde_norway::to_string(sim.get("ports").unwrap()).unwrap();
    assert!(
        ports.contains("8080:8080"),
        "the simulated API listens on 8080: {ports}"
    );
}

#[test]
fn compose_starts_the_services_after_the_init_has_created_the_queues() {
    let services = compose();
    for name in PIPELINE_SERVICES.into_iter().chain(["night"]) {
        let condition = service(&services, name)
            .get("depends_on")
            .and_then(|d| d.get("init"))
            .and_then(|i| i.get("condition"))
            .and_then(Value::as_str);
        assert_eq!(condition, Some("service_completed_successfully"), "{name}");
    }
}

#[test]
fn compose_points_glue_at_moto_and_every_other_aws_call_at_localstack() {
    let services = compose();
    for name in PIPELINE_SERVICES.into_iter().chain(["init", "night"]) {
        let env = compose_environment(service(&services, name));
        assert_eq!(
            env.get("AWS_ENDPOINT_URL").map(String::as_str),
            Some("http://localstack:4566"),
            "{name}"
        );
        assert_eq!(
            env.get("AWS_ENDPOINT_URL_GLUE").map(String::as_str),
            Some("http://moto:5000"),
            "{name}"
        );
        assert!(env.contains_key("AWS_REGION"), "{name}");
    }
}

#[test]
fn compose_environment_is_what_the_services_read() {
    let root = workspace_root();
    let read = env_names_read_by_sources(&root, &root.join("tests/infra-check")).unwrap();
    let services = compose();
    for name in PIPELINE_SERVICES.into_iter().chain(["tascomi-sim"]) {
        let env = compose_environment(service(&services, name));
        for variable in env.keys().filter(|k| k.starts_with("TASCOMI_")) {
            assert!(
                read.contains(variable),
                "{name}: {variable} is set but no crate reads it"
            );
        }
    }
    for (i, name) in PIPELINE_SERVICES.iter().enumerate() {
        let env = compose_environment(service(&services, name));
        let mut required = vec![
            "TASCOMI_QUEUE_URL",
            "TASCOMI_DEAD_LETTER_QUEUE_URL",
            "TASCOMI_RAW_BUCKET",
            "TASCOMI_REFINED_BUCKET",
            "TASCOMI_DATABASE_PREFIX",
            "TASCOMI_PIPELINE_FILE",
        ];
        if i + 1 < PIPELINE_SERVICES.len() {
            required.push("TASCOMI_NEXT_QUEUE_URL");
        }
        match *name {
            // Locally the keys come from the environment, not Secrets Manager.
            "ingest-svc" => required.extend([
                "TASCOMI_API_BASE_URL",
                "TASCOMI_PUBLIC_KEY",
                "TASCOMI_PRIVATE_KEY",
            ]),
            "recast-svc" => required.push("TASCOMI_COLUMN_TYPE_DICTIONARY"),
            _ => {}
        }
        for variable in required {
            assert!(env.contains_key(variable), "{name}: {variable} is not set");
        }
        // moto keeps nothing between runs: the services create a missing database themselves
        // (the default), unlike on AWS where Terraform manages them.
        assert_ne!(
            env.get("TASCOMI_MANAGE_DATABASES").map(String::as_str),
            Some("false"),
            "{name}: compose keeps TASCOMI_MANAGE_DATABASES at its default (true)"
        );
    }
}

#[test]
fn compose_queue_names_follow_the_terraform_pattern() {
    let services = compose();
    let tf = Terraform::load(&infra_check::module_dir()).unwrap();
    let init = compose_environment(service(&services, "init"));
    let name = &init["NAME"];
    let url = |queue: &str| format!("http://localstack:4566/000000000000/{queue}");

    let mut queue_urls = Vec::new();
    for (stage, service_name) in STAGES.iter().zip(PIPELINE_SERVICES) {
        let (queue, dlq) = terraform_queue_names(&tf, name, stage).unwrap();
        let env = compose_environment(service(&services, service_name));
        assert_eq!(env["TASCOMI_QUEUE_URL"], url(&queue), "{service_name}");
        assert_eq!(
            env["TASCOMI_DEAD_LETTER_QUEUE_URL"],
            url(&dlq),
            "{service_name}"
        );
        queue_urls.push(env["TASCOMI_QUEUE_URL"].clone());
    }
    for (i, service_name) in PIPELINE_SERVICES.iter().enumerate() {
        let env = compose_environment(service(&services, service_name));
        assert_eq!(
            env.get("TASCOMI_NEXT_QUEUE_URL"),
            queue_urls.get(i + 1),
            "{service_name}: next queue"
        );
    }
    let night = compose_environment(service(&services, "night"));
    assert_eq!(
        night["INGEST_QUEUE_URL"], queue_urls[0],
        "the night sends to the ingest queue"
    );

    // The init creates the same names: <NAME>-<stage> and <NAME>-<stage>-dlq for every stage.
    let script = std::fs::read_to_string(workspace_root().join("deploy/compose/init.sh")).unwrap();
    assert!(script.contains(&format!("for stage in {}; do", STAGES.join(" "))));
    assert!(script.contains("\"${NAME}-${stage}\"") && script.contains("\"${NAME}-${stage}-dlq\""));
    assert!(
        script.contains("-tascomi-${zone}-zone"),
        "the Glue databases of common::layout"
    );
}

#[test]
fn compose_services_share_the_buckets_and_databases_the_init_creates() {
    let services = compose();
    let init = compose_environment(service(&services, "init"));
    for name in PIPELINE_SERVICES {
        let env = compose_environment(service(&services, name));
        for variable in [
            "TASCOMI_RAW_BUCKET",
            "TASCOMI_REFINED_BUCKET",
            "TASCOMI_DATABASE_PREFIX",
        ] {
            assert_eq!(env.get(variable), init.get(variable), "{name}: {variable}");
        }
    }
}

#[test]
fn compose_mounts_the_dictionary_where_recast_reads_it() {
    let services = compose();
    let recast = service(&services, "recast-svc");
    let path = &compose_environment(recast)["TASCOMI_COLUMN_TYPE_DICTIONARY"];
    let volumes = serde_norway::to_string(recast.get("volumes").unwrap()).unwrap();
    assert!(
        volumes.contains(&format!(":{path}:ro")),
        "{path} is not mounted: {volumes}"
    );
    assert!(volumes.contains("${TASCOMI_DICTIONARY:-./ctl/demo/column-type-dictionary.json}"));
}

#[test]
fn compose_file_is_valid_for_docker_compose() {
    let file = workspace_root().join("docker-compose.yml");
    let output = match Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .args(["config", "-q"])
        .output()
    {
        Ok(output) => output,
        Err(err) => {
            eprintln!(
                "skipped: docker-compose is not on PATH ({err}); `apt-get install docker-compose` gives it"
            );
            return;
        }
    };
    assert!(
        output.status.success(),
        "docker-compose config -q: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs a deploy/compose script with a fake `aws` that records its arguments; returns one
/// argument list per call.
fn run_with_fake_aws(script: &str, env: &[(&str, &str)]) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    let fake = dir.path().join("aws");
    // Existence checks fail (so everything is created); every other call prints a value.
    std::fs::write(
        &fake,
        "#!/bin/sh\nfor arg in \"$@\"; do printf '%s\\n' \"$arg\"; done >> \"$CALLS\"\necho '--' >> \"$CALLS\"\n\
         case \"$2\" in head-bucket|get-database) exit 1 ;; esac\necho fake-value\n",
    )
    .unwrap();
    let status = Command::new("chmod").arg("+x").arg(&fake).status().unwrap();
    assert!(status.success());
    // sh, sed and printf from the system; aws from the fake.
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", dir.path().display());
    let output = Command::new("sh")
        .arg(workspace_root().join("deploy/compose").join(script))
        .env("PATH", path)
        .env("CALLS", &log)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .split("--\n")
        .filter(|call| !call.is_empty())
        .map(|call| call.lines().map(str::to_owned).collect())
        .collect()
}

fn argument_after<'a>(call: &'a [String], flag: &str) -> Option<&'a str> {
    call.iter()
        .position(|a| a == flag)
        .and_then(|i| call.get(i + 1))
        .map(String::as_str)
}

#[test]
fn night_sends_one_ingest_request_per_pipeline_table_that_the_service_accepts() {
    let pipeline = workspace_root().join("pipeline.yaml");
    let calls = run_with_fake_aws(
        "night.sh",
        &[
            (
                "INGEST_QUEUE_URL",
                "http://localstack:4566/000000000000/tascomi-local-ingest",
            ),
            ("PIPELINE_FILE", pipeline.to_str().unwrap()),
        ],
    );
    let tables = common::config::PipelineFile::load(&pipeline)
        .unwrap()
        .tables;
    assert_eq!(calls.len(), tables.len(), "one message per table");
    for (call, table) in calls.iter().zip(&tables) {
        assert_eq!(call[..2], ["sqs", "send-message"]);
        let body = argument_after(call, "--message-body").unwrap();
        let request: common::messages::IngestRequest =
            common::messages::decode(body, |_| true).unwrap_or_else(|err| panic!("{body}: {err}"));
        assert_eq!(request.table, table.name, "in pipeline-file order");
        assert_eq!(request.mode, common::messages::IngestMode::Incremental);
    }
}

#[test]
fn night_sends_only_the_named_tables_in_the_named_mode() {
    let calls = run_with_fake_aws(
        "night.sh",
        &[
            ("INGEST_QUEUE_URL", "q"),
            ("TABLES", "applications appeals"),
            ("MODE", "full"),
        ],
    );
    let bodies: Vec<&str> = calls
        .iter()
        .filter_map(|c| argument_after(c, "--message-body"))
        .collect();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies[0].contains("\"table\":\"applications\"") && bodies[0].contains("\"mode\":\"full\"")
    );
}

#[test]
fn init_creates_both_buckets_every_queue_with_its_dead_letter_queue_and_both_databases() {
    let calls = run_with_fake_aws(
        "init.sh",
        &[
            ("NAME", "tascomi-local"),
            ("TASCOMI_RAW_BUCKET", "raw-bucket"),
            ("TASCOMI_REFINED_BUCKET", "refined-bucket"),
            ("TASCOMI_DATABASE_PREFIX", "tascomi-local"),
        ],
    );
    let made = |service: &str, operation: &str, flag: &str| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c.len() > 1 && c[0] == service && c[1] == operation)
            .filter_map(|c| argument_after(c, flag).map(str::to_owned))
            .collect()
    };
    let buckets: Vec<String> = calls
        .iter()
        .filter(|c| c[..2] == ["s3", "mb"])
        .map(|c| c[2].clone())
        .collect();
    assert_eq!(buckets, ["s3://raw-bucket", "s3://refined-bucket"]);
    let mut queues = made("sqs", "create-queue", "--queue-name");
    queues.sort();
    let mut expected: Vec<String> = STAGES
        .iter()
        .flat_map(|s| {
            [
                format!("tascomi-local-{s}"),
                format!("tascomi-local-{s}-dlq"),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(queues, expected);
    // Each queue gets a redrive policy.
    assert_eq!(
        made("sqs", "set-queue-attributes", "--attributes").len(),
        STAGES.len()
    );
    assert_eq!(
        made("glue", "create-database", "--database-input"),
        [
            "Name=tascomi-local-tascomi-raw-zone",
            "Name=tascomi-local-tascomi-refined-zone"
        ]
    );
}
