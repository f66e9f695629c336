//! Invariants of the release workflow (`.github/workflows/release.yml`), checked offline in
//! place of actionlint (which cannot be installed here): it builds each architecture natively
//! on a runner of that architecture, scans the image it then pushes, pushes it to ECR under
//! immutable per-architecture tags joined in one tag, and attaches the `tascomi` command to the
//! release; with the least permissions, pinned actions, expressions that name what exists and
//! shell steps that parse.

use std::collections::BTreeSet;
use std::process::Command;

use infra_check::{load_yaml, workspace_root};
use serde_norway::Value;

fn workflow() -> Value {
    load_yaml(&workspace_root().join(".github/workflows/release.yml"))
        .expect(".github/workflows/release.yml parses")
}

fn job<'a>(workflow: &'a Value, name: &str) -> &'a Value {
    workflow
        .get("jobs")
        .and_then(|jobs| jobs.get(name))
        .unwrap_or_else(|| panic!("no job {name}"))
}

fn steps(job: &Value) -> &[Value] {
    job.get("steps")
        .and_then(Value::as_sequence)
        .map(Vec::as_slice)
        .expect("steps")
}

fn uses(step: &Value) -> &str {
    step.get("uses").and_then(Value::as_str).unwrap_or_default()
}

fn run(step: &Value) -> &str {
    step.get("run").and_then(Value::as_str).unwrap_or_default()
}

fn with<'a>(step: &'a Value, key: &str) -> Option<&'a str> {
    step.get("with")?.get(key)?.as_str()
}

fn position(steps: &[Value], what: &str, pred: impl Fn(&Value) -> bool) -> usize {
    steps
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("no step that {what}"))
}

/// The names of the Dockerfile's stages (`FROM ... AS <name>`).
fn dockerfile_stages() -> BTreeSet<String> {
    std::fs::read_to_string(workspace_root().join("Dockerfile"))
        .unwrap()
        .lines()
        .filter(|line| line.starts_with("FROM "))
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [.., as_kw, name] if as_kw.eq_ignore_ascii_case("as") => Some((*name).to_owned()),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn release_runs_on_a_published_release_or_by_hand_with_a_tag() {
    let workflow = workflow();
    let on = workflow
        .get("on")
        .expect("an `on` key (read as a string, not YAML 1.1 true)");
    let types = on
        .get("release")
        .and_then(|r| r.get("types"))
        .and_then(Value::as_sequence)
        .unwrap();
    assert_eq!(types, &[Value::from("published")]);
    let tag = on
        .get("workflow_dispatch")
        .and_then(|w| w.get("inputs"))
        .and_then(|i| i.get("tag"))
        .expect("a tag input");
    assert_eq!(tag.get("required").and_then(Value::as_bool), Some(true));
    let env_tag = workflow
        .get("env")
        .and_then(|e| e.get("TAG"))
        .and_then(Value::as_str)
        .unwrap();
    assert!(env_tag.contains("github.event.release.tag_name") && env_tag.contains("inputs.tag"));
}

#[test]
fn each_architecture_builds_natively_on_its_own_runner() {
    let workflow = workflow();
    let image = job(&workflow, "image");
    let include = image
        .get("strategy")
        .and_then(|s| s.get("matrix"))
        .and_then(|m| m.get("include"))
        .and_then(Value::as_sequence)
        .expect("a matrix of architectures");
    let mut arches = BTreeSet::new();
    for entry in include {
        let get = |key: &str| entry.get(key).and_then(Value::as_str).unwrap();
        let arch = get("arch");
        assert_eq!(get("platform"), format!("linux/{arch}"));
        let runner = get("runner");
        match arch {
            "arm64" => assert!(
                runner.ends_with("-arm"),
                "arm64 on an arm64 runner: {runner}"
            ),
            "amd64" => assert!(
                !runner.contains("arm"),
                "amd64 on an x86_64 runner: {runner}"
            ),
            other => panic!("unexpected architecture {other}"),
        }
        arches.insert(arch.to_owned());
    }
    assert_eq!(
        arches,
        BTreeSet::from(["amd64".to_owned(), "arm64".to_owned()])
    );
    assert_eq!(
        image.get("runs-on").and_then(Value::as_str),
        Some("${{ matrix.runner }}")
    );
    for (name, job) in workflow.get("jobs").unwrap().as_mapping().unwrap() {
        for step in steps(job) {
            assert!(
                !uses(step).starts_with("docker/setup-qemu-action"),
                "{name:?}: no emulation"
            );
        }
    }
    let build = steps(image)
        .iter()
        .find(|s| uses(s).starts_with("docker/build-push-action@"))
        .expect("a buildx build");
    assert_eq!(with(build, "platforms"), Some("${{ matrix.platform }}"));
    assert!(
        with(build, "cache-to").is_some_and(|c| c.contains("type=gha")),
        "the dependency layer is cached between releases"
    );

    // The targets it builds are the Dockerfile's production targets.
    let target = workflow
        .get("env")
        .and_then(|e| e.get("TARGET"))
        .and_then(Value::as_str)
        .unwrap();
    let stages = dockerfile_stages();
    for name in ["baked", "runtime"] {
        assert!(target.contains(&format!("'{name}'")), "{target}");
        assert!(stages.contains(name), "the Dockerfile has no stage {name}");
    }
    assert!(!target.contains("sim"), "the simulator is never released");
    assert_eq!(with(build, "target"), Some("${{ env.TARGET }}"));
}

#[test]
fn the_scanned_image_is_the_pushed_image() {
    let workflow = workflow();
    let image = job(&workflow, "image");
    let steps = steps(image);
    let build = position(steps, "builds", |s| {
        uses(s).starts_with("docker/build-push-action@")
    });
    let build_step = &steps[build];
    assert_eq!(
        build_step
            .get("with")
            .and_then(|w| w.get("load"))
            .and_then(Value::as_bool),
        Some(true)
    );
    assert_eq!(
        build_step
            .get("with")
            .and_then(|w| w.get("push"))
            .and_then(Value::as_bool),
        Some(false),
        "the build does not push: the push follows the scan"
    );
    let local_tag = with(build_step, "tags").unwrap();
    let scan = position(steps, "scans", |s| {
        uses(s).starts_with("aquasecurity/trivy-action@")
    });
    let scan_step = &steps[scan];
    assert_eq!(with(scan_step, "image-ref"), Some(local_tag));
    assert_eq!(
        with(scan_step, "exit-code"),
        Some("1"),
        "findings fail the release"
    );
    assert!(with(scan_step, "severity").is_some_and(|s| s.contains("CRITICAL")));
    let push = position(steps, "pushes", |s| run(s).contains("docker push"));
    let push_script = run(&steps[push]);
    assert!(build < scan && scan < push, "build, scan, then push");
    assert!(
        steps[scan..push]
            .iter()
            .all(|s| !uses(s).starts_with("docker/build-push-action@")),
        "no rebuild between the scan and the push"
    );
    let login = position(steps, "logs in to ECR", |s| {
        uses(s).starts_with("aws-actions/amazon-ecr-login@")
    });
    assert!(login < push);
    let smoke = position(steps, "smoke-tests", |s| run(s).contains("tascomi-sim"));
    assert!(smoke < push);
    for service in ["ingest-svc", "parse-svc", "recast-svc", "snapshot-svc"] {
        assert!(run(&steps[smoke]).contains(service), "{service}");
    }

    // One tag for both architectures, from the per-architecture tags the image job pushed.
    let manifest = job(&workflow, "manifest");
    assert_eq!(manifest.get("needs").and_then(Value::as_str), Some("image"));
    let create = self::steps(manifest)
        .iter()
        .map(run)
        .find(|r| r.contains("imagetools create"))
        .expect("docker buildx imagetools create");
    for arch in ["amd64", "arm64"] {
        assert!(create.contains(&format!("$TAG-{arch}\"")), "{create}");
    }
    assert!(push_script.contains("${TAG}-${{ matrix.arch }}"));
}

#[test]
fn the_tascomi_command_is_attached_to_the_release() {
    let workflow = workflow();
    let image = steps(job(&workflow, "image"));
    let extract = image
        .iter()
        .find(|s| run(s).contains("docker cp"))
        .expect("a step copying the binary out of the image");
    assert!(run(extract).contains(":/usr/local/bin/tascomi\""));
    assert!(run(extract).contains("sha256sum"));
    let upload = image
        .iter()
        .find(|s| uses(s).starts_with("actions/upload-artifact@"))
        .unwrap();
    assert_eq!(with(upload, "if-no-files-found"), Some("error"));

    let binaries = job(&workflow, "binaries");
    assert_eq!(
        binaries.get("if").and_then(Value::as_str),
        Some("github.event_name == 'release'")
    );
    let steps = steps(binaries);
    assert!(
        steps
            .iter()
            .any(|s| uses(s).starts_with("actions/download-artifact@"))
    );
    let attach = steps
        .iter()
        .map(run)
        .find(|r| r.contains("gh release upload"))
        .expect("gh release upload");
    assert!(attach.contains("\"$TAG\"") && attach.contains("tascomi-*.tar.gz"));
}

#[test]
fn permissions_are_the_least_each_job_needs() {
    let workflow = workflow();
    let read_only = |v: &Value| {
        v.as_mapping().is_some_and(|m| {
            m.iter().all(|(k, v)| {
                v.as_str() == Some("read")
                    || (k.as_str() == Some("id-token") && v.as_str() == Some("write"))
            })
        })
    };
    let top = workflow.get("permissions").expect("top-level permissions");
    assert_eq!(
        top.get("contents").and_then(Value::as_str),
        Some("read"),
        "read-only by default"
    );
    assert_eq!(top.as_mapping().unwrap().len(), 1);
    for (name, job) in workflow.get("jobs").unwrap().as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let permissions = job
            .get("permissions")
            .unwrap_or_else(|| panic!("{name}: job permissions"));
        let uses_aws = steps(job)
            .iter()
            .any(|s| uses(s).starts_with("aws-actions/configure-aws-credentials@"));
        let id_token = permissions.get("id-token").and_then(Value::as_str);
        assert_eq!(
            id_token == Some("write"),
            uses_aws,
            "{name}: an OIDC token exactly where AWS credentials are needed"
        );
        if name == "binaries" {
            assert_eq!(
                permissions.get("contents").and_then(Value::as_str),
                Some("write")
            );
            assert_eq!(permissions.as_mapping().unwrap().len(), 1);
        } else {
            assert!(read_only(permissions), "{name}: {permissions:?}");
        }
        for step in steps(job) {
            if uses(step).starts_with("aws-actions/configure-aws-credentials@") {
                assert!(
                    with(step, "role-to-assume").is_some(),
                    "{name}: OIDC role, no stored keys"
                );
                assert!(with(step, "aws-access-key-id").is_none());
            }
        }
    }
}

/// The `${{ ... }}` expressions of a text.
fn expressions(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        let after = &rest[start + 3..];
        let end = after.find("}}").expect("an unclosed ${{");
        found.push(after[..end].trim().to_owned());
        rest = &after[end + 2..];
    }
    found
}

/// Every string in a YAML value, with the job it is in (if any).
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(text) => out.push(text),
        Value::Sequence(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Mapping(map) => map.iter().for_each(|(k, v)| {
            strings(k, out);
            strings(v, out);
        }),
        Value::Tagged(tagged) => strings(&tagged.value, out),
        _ => {}
    }
}

/// The dotted context references of an expression (`steps.ecr.outputs.registry`), outside
/// string literals.
fn references(expression: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut in_string = false;
    let mut current = String::new();
    for c in expression.chars().chain([' ']) {
        if c == '\'' {
            in_string = !in_string;
            continue;
        }
        if !in_string && (c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
            current.push(c);
        } else {
            if !current.is_empty() && current.contains('.') {
                found.push(current.split('.').map(str::to_owned).collect());
            }
            current.clear();
        }
    }
    found
}

#[test]
fn expressions_name_contexts_steps_and_matrix_keys_that_exist() {
    let workflow = workflow();
    let contexts = [
        "github", "inputs", "vars", "secrets", "env", "matrix", "steps", "needs", "runner", "job",
        "strategy",
    ];
    let defined_env: BTreeSet<String> = workflow
        .get("env")
        .and_then(Value::as_mapping)
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    for (name, job) in workflow.get("jobs").unwrap().as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let step_ids: BTreeSet<&str> = steps(job)
            .iter()
            .filter_map(|s| s.get("id").and_then(Value::as_str))
            .collect();
        let matrix_keys: BTreeSet<String> = job
            .get("strategy")
            .and_then(|s| s.get("matrix"))
            .and_then(|m| m.get("include"))
            .and_then(Value::as_sequence)
            .map(|entries| {
                entries
                    .iter()
                    .flat_map(|e| e.as_mapping().unwrap().keys())
                    .map(|k| k.as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let mut texts = Vec::new();
        strings(job, &mut texts);
        for expression in texts.iter().flat_map(|t| expressions(t)) {
            for path in references(&expression) {
                let root = path[0].as_str();
                assert!(
                    contexts.contains(&root),
                    "{name}: unknown context in ${{{{ {expression} }}}}"
                );
                match (root, path.get(1)) {
                    ("steps", Some(id)) => assert!(
                        step_ids.contains(id.as_str()),
                        "{name}: no step with id {id}"
                    ),
                    ("matrix", Some(key)) => {
                        assert!(matrix_keys.contains(key), "{name}: no matrix key {key}")
                    }
                    ("env", Some(key)) => {
                        assert!(
                            defined_env.contains(key),
                            "{name}: env.{key} is not defined"
                        )
                    }
                    _ => {}
                }
            }
        }
    }
    // The workflow-level expressions use only what exists there.
    for key in ["env", "concurrency"] {
        let mut texts = Vec::new();
        strings(workflow.get(key).unwrap(), &mut texts);
        for expression in texts.iter().flat_map(|t| expressions(t)) {
            for path in references(&expression) {
                assert!(
                    ["github", "inputs", "vars"].contains(&path[0].as_str()),
                    "{key}: ${{{{ {expression} }}}}"
                );
            }
        }
    }
}

#[test]
fn actions_are_pinned_and_shell_steps_parse() {
    let workflow = workflow();
    let dir = tempfile::tempdir().unwrap();
    let mut scripts = Vec::new();
    for (name, job) in workflow.get("jobs").unwrap().as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        assert!(
            job.get("timeout-minutes").is_some(),
            "{name}: a timeout (a stuck build would hold a runner for six hours)"
        );
        for (i, step) in steps(job).iter().enumerate() {
            let action = uses(step);
            if !action.is_empty() {
                let (_, version) = action
                    .split_once('@')
                    .unwrap_or_else(|| panic!("{name}: {action} is not pinned"));
                assert!(
                    version.starts_with('v')
                        || version.chars().next().is_some_and(|c| c.is_ascii_digit()),
                    "{name}: {action}: pin a release or a commit, not a branch"
                );
            }
            let script = run(step);
            if script.is_empty() {
                continue;
            }
            // Expressions are substituted before the shell sees the script.
            let mut text = String::from("#!/usr/bin/env bash\nset -eo pipefail\n");
            let mut rest = script;
            while let Some(start) = rest.find("${{") {
                text.push_str(&rest[..start]);
                let end = rest[start..].find("}}").unwrap() + start + 2;
                text.push_str("EXPR");
                rest = &rest[end..];
            }
            text.push_str(rest);
            let path = dir.path().join(format!("{name}-{i}.sh"));
            std::fs::write(&path, text).unwrap();
            scripts.push(path);
        }
    }
    assert!(scripts.len() >= 5, "the run steps were not found");
    for script in &scripts {
        let status = Command::new("bash").arg("-n").arg(script).status().unwrap();
        assert!(status.success(), "{} does not parse", script.display());
    }
    // shellcheck, as actionlint would run it, when it is installed.
    match Command::new("shellcheck")
        .args(["--shell=bash", "--severity=warning"])
        .args(&scripts)
        .output()
    {
        Ok(output) => assert!(
            output.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&output.stdout)
        ),
        Err(err) => eprintln!("skipped shellcheck: not on PATH ({err})"),
    }
}
