//! Invariants of the Dockerfile (no Docker engine here, so it is parsed): the production image
//! builds only the shipped packages, on a cached dependency layer, natively for its platform;
//! it ships every binary the deployments run and not the simulator, which has a target of its
//! own for docker-compose; it runs as the non-root user they name, with the pipeline file where
//! they look and a health check that asks the service itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use infra_check::{
    Terraform, attr, load_yaml, object_entries, string, workspace_members, workspace_root,
};

/// The packages the production image builds, and the binaries they make.
const SHIPPED_PACKAGES: [&str; 5] = [
    "ingest-svc",
    "parse-svc",
    "recast-svc",
    "snapshot-svc",
    "ctl",
];
const BINARIES: [&str; 5] = [
    "ingest-svc",
    "parse-svc",
    "recast-svc",
    "snapshot-svc",
    "tascomi",
];
const SIMULATOR: &str = "tascomi-sim";

/// One instruction of a Dockerfile: its keyword (upper case) and arguments, continuation lines
/// joined.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// A Dockerfile's stages, in order: name (the `AS` name, or the index of an unnamed stage),
/// what it is built `FROM`, and its instructions.
#[derive(Debug)]
struct Dockerfile {
    stages: Vec<(String, String, Vec<Instruction>)>,
    /// `ARG`s before the first `FROM` (usable in `FROM` lines).
    global_args: BTreeMap<String, String>,
}

impl Dockerfile {
    fn parse(text: &str) -> Self {
        let mut logical = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            // Comment lines are dropped, inside a continued instruction too (as Docker does).
            if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
                continue;
            }
            if let Some(body) = trimmed.strip_suffix('\\') {
                current.push_str(body.trim_end());
                current.push(' ');
            } else {
                current.push_str(trimmed);
                logical.push(std::mem::take(&mut current));
            }
        }
        assert!(
            current.is_empty(),
            "the Dockerfile ends inside a continuation"
        );

        let mut stages: Vec<(String, String, Vec<Instruction>)> = Vec::new();
        let mut global_args = BTreeMap::new();
        for line in logical {
            let (keyword, args) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
            let keyword = keyword.to_ascii_uppercase();
            let args = args.trim().to_owned();
            if keyword == "FROM" {
                let words: Vec<&str> = args
                    .split_whitespace()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let name = match words.as_slice() {
                    [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => (*name).to_owned(),
                    [_] => stages.len().to_string(),
                    _ => panic!("cannot read FROM {args}"),
                };
                stages.push((name, words[0].to_owned(), Vec::new()));
                continue;
            }
            match stages.last_mut() {
                Some((_, _, instructions)) => instructions.push(Instruction { keyword, args }),
                None if keyword == "ARG" => {
                    let (name, value) = args.split_once('=').unwrap_or((&args, ""));
                    global_args.insert(name.to_owned(), value.to_owned());
                }
                None => panic!("{keyword} before the first FROM"),
            }
        }
        Self {
            stages,
            global_args,
        }
    }

    fn stage(&self, name: &str) -> &[Instruction] {
        self.stages
            .iter()
            .find(|(stage, _, _)| stage == name)
            .map(|(_, _, instructions)| instructions.as_slice())
            .unwrap_or_else(|| panic!("the Dockerfile has no stage {name}"))
    }

    /// The stage a stage is built `FROM`, if it is another stage.
    fn parent(&self, name: &str) -> Option<&str> {
        let (_, from, _) = self.stages.iter().find(|(stage, _, _)| stage == name)?;
        self.stages
            .iter()
            .any(|(stage, _, _)| stage == from)
            .then_some(from.as_str())
    }

    /// A stage and the stages it is built on, nearest first.
    fn lineage(&self, name: &str) -> Vec<String> {
        let mut chain = vec![name.to_owned()];
        while let Some(parent) = self.parent(chain.last().unwrap()) {
            chain.push(parent.to_owned());
        }
        chain
    }

    /// Every instruction a stage's image is made of (its own and its ancestors').
    fn instructions_of(&self, name: &str) -> Vec<&Instruction> {
        let lineage = self.lineage(name);
        self.stages
            .iter()
            .filter(|(stage, _, _)| lineage.contains(stage))
            .flat_map(|(_, _, instructions)| instructions)
            .collect()
    }

    /// The stages whose files a stage's image holds: its lineage, and the stages it copies
    /// from (and theirs).
    fn reaches(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(stage) = todo.pop() {
            if !seen.insert(stage.clone()) {
                continue;
            }
            for instruction in self.instructions_of(&stage) {
                if instruction.keyword == "COPY"
                    && let Some(from) = copy_from(&instruction.args)
                {
                    todo.push(from.to_owned());
                }
            }
            todo.extend(self.lineage(&stage));
        }
        seen
    }

    fn last_stage(&self) -> &str {
        &self.stages.last().expect("at least one stage").0
    }
}

/// `COPY --from=<stage> ...` -> the stage.
fn copy_from(args: &str) -> Option<&str> {
    args.split_whitespace()
        .find_map(|word| word.strip_prefix("--from="))
}

/// The binaries a `COPY --from=<builder stage>` puts into the image: the `/out/<name>` sources.
fn copied_binaries(instructions: &[&Instruction]) -> BTreeSet<String> {
    instructions
        .iter()
        .filter(|i| i.keyword == "COPY" && copy_from(&i.args).is_some())
        .flat_map(|i| i.args.split_whitespace())
        .filter_map(|word| word.strip_prefix("/out/"))
        .map(str::to_owned)
        .collect()
}

/// The `-p` packages of every `<command>` in a stage's `RUN`s, and whether one builds the
/// whole workspace.
fn packages_in(instructions: &[Instruction], command: &str) -> (BTreeSet<String>, bool) {
    let mut packages = BTreeSet::new();
    let mut whole = false;
    for run in instructions.iter().filter(|i| i.keyword == "RUN") {
        for invocation in run.args.split("&&") {
            let Some(rest) = invocation.trim().strip_prefix(command) else {
                continue;
            };
            let words: Vec<&str> = rest.split_whitespace().collect();
            whole |= words.iter().any(|w| *w == "--workspace" || *w == "--all");
            for pair in words.windows(2) {
                if pair[0] == "-p" || pair[0] == "--package" {
                    packages.insert(pair[1].to_owned());
                }
            }
        }
    }
    (packages, whole)
}

fn dockerfile() -> Dockerfile {
    Dockerfile::parse(&dockerfile_text())
}

fn dockerfile_text() -> String {
    std::fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile")
}

/// Per workspace package: its name and the binaries it builds (`[[bin]]` names, or the
/// package name for a `src/main.rs` without `[[bin]]`).
fn workspace_packages() -> BTreeMap<String, BTreeSet<String>> {
    let root = workspace_root();
    let mut found = BTreeMap::new();
    for member in workspace_members(&root).unwrap() {
        let dir = root.join(&member);
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let mut section = String::new();
        let mut package_name = None;
        let mut bins = BTreeSet::new();
        let mut has_bin_section = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                has_bin_section |= line == "[[bin]]";
                continue;
            }
            if let Some(value) = line
                .strip_prefix("name")
                .map(str::trim)
                .and_then(|r| r.strip_prefix('='))
            {
                let value = value.trim().trim_matches('"').to_owned();
                if section == "[[bin]]" {
                    bins.insert(value);
                } else if section == "[package]" {
                    package_name = Some(value);
                }
            }
        }
        let name = package_name.unwrap_or_else(|| panic!("{member}: no package name"));
        if !has_bin_section && dir.join("src/main.rs").exists() {
            bins.insert(name.clone());
        }
        found.insert(name, bins);
    }
    found
}

#[test]
fn image_builds_only_the_shipped_packages_on_a_cached_dependency_layer() {
    let file = dockerfile();
    let packages = workspace_packages();
    let shipped: BTreeSet<String> = SHIPPED_PACKAGES.iter().map(|p| (*p).to_owned()).collect();
    let mut binaries = BTreeSet::new();
    for package in &shipped {
        let bins = packages
            .get(package)
            .unwrap_or_else(|| panic!("no workspace package {package} ({packages:?})"));
        binaries.extend(bins.iter().cloned());
    }
    let expected: BTreeSet<String> = BINARIES.iter().map(|b| (*b).to_owned()).collect();
    assert_eq!(
        binaries, expected,
        "the shipped packages build these binaries"
    );

    // The recipe is made from the whole source tree in a stage of its own; the builder cooks
    // it (the dependencies only) before it copies the sources, so that layer stays cached
    // until a manifest or Cargo.lock changes.
    let prepared = file.stages.iter().any(|(_, _, instructions)| {
        instructions
            .iter()
            .any(|i| i.keyword == "RUN" && i.args.contains("cargo chef prepare"))
    });
    assert!(prepared, "a stage runs `cargo chef prepare`");
    let builder = file.stage("builder");
    let position = |pred: &dyn Fn(&Instruction) -> bool| {
        builder
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("builder: missing step"))
    };
    let cook = position(&|i| i.keyword == "RUN" && i.args.contains("cargo chef cook"));
    let sources = position(&|i| i.keyword == "COPY" && i.args == ". .");
    let build = position(&|i| i.keyword == "RUN" && i.args.contains("cargo build"));
    assert!(
        cook < sources && sources < build,
        "builder: cook the recipe, then copy the sources, then build"
    );
    assert!(
        builder[..cook]
            .iter()
            .all(|i| i.keyword != "COPY" || i.args.contains("recipe.json")),
        "builder: only the recipe may be copied before the dependencies are cooked"
    );

    for command in ["cargo chef cook", "cargo build"] {
        let (built, whole) = packages_in(builder, command);
        assert!(
            !whole,
            "builder: `{command}` must not build the whole workspace"
        );
        assert_eq!(built, shipped, "builder: `{command}` packages");
    }
    for run in builder.iter().filter(|i| i.keyword == "RUN") {
        if run.args.contains("cargo chef cook") || run.args.contains("cargo build") {
            assert!(
                run.args.contains("--release") && run.args.contains("--locked"),
                "builder: release builds from Cargo.lock: {}",
                run.args
            );
        }
    }
    // No other stage builds the whole workspace either.
    for (name, _, instructions) in &file.stages {
        for command in ["cargo build", "cargo chef cook"] {
            assert!(
                !packages_in(instructions, command).1,
                "{name}: {command} --workspace"
            );
        }
    }
}

#[test]
fn image_ships_every_binary_the_deployments_run_and_not_the_simulator() {
    let file = dockerfile();
    let default = file.last_stage().to_owned();
    assert_eq!(default, "runtime", "the default target is the last stage");
    let expected: BTreeSet<String> = BINARIES.iter().map(|b| (*b).to_owned()).collect();
    for target in ["runtime", "baked"] {
        let instructions = file.instructions_of(target);
        assert_eq!(
            copied_binaries(&instructions),
            expected,
            "{target}: the binaries it ships"
        );
        assert!(
            instructions
                .iter()
                .filter(|i| i.keyword == "COPY" && copy_from(&i.args) == Some("builder"))
                .all(|i| i.args.trim_end().ends_with("/usr/local/bin/")),
            "{target}: binaries go to /usr/local/bin"
        );
        let reached = file.reaches(target);
        assert!(
            !reached.contains("sim") && !reached.contains("sim-builder"),
            "{target} must not hold the simulator (it reaches {reached:?})"
        );
    }

    // What the deployments run is in the image.
    let tf = Terraform::load(&infra_check::module_dir()).unwrap();
    let stages = object_entries(tf.local("stages").unwrap()).unwrap();
    for (stage, def) in stages {
        let service = string(object_entries(def).unwrap()["service"])
            .unwrap()
            .to_owned();
        assert!(
            BINARIES.contains(&service.as_str()),
            "stage {stage} runs {service}, not in the image"
        );
    }
    let compose = load_yaml(&workspace_root().join("docker-compose.yml")).unwrap();
    let services = compose
        .get("services")
        .and_then(|s| s.as_mapping())
        .unwrap();
    for (name, service) in services {
        let image = service
            .get("image")
            .and_then(|i| i.as_str())
            .unwrap_or_default();
        if !image.starts_with("tascomi-pipeline") {
            continue;
        }
        let command = service
            .get("command")
            .and_then(|c| c.as_sequence())
            .expect("a command");
        let binary = command[0].as_str().unwrap();
        assert!(
            BINARIES.contains(&binary),
            "compose service {name:?} runs {binary}, not in the image"
        );
    }
}

#[test]
fn the_simulator_has_its_own_target_that_only_compose_uses() {
    let file = dockerfile();
    let packages = workspace_packages();
    let sim_package = packages
        .iter()
        .find(|(_, bins)| bins.contains(SIMULATOR))
        .map(|(name, _)| name.clone())
        .expect("a workspace package builds the simulator");
    let sim_instructions = file.instructions_of("sim");
    assert_eq!(
        copied_binaries(&sim_instructions),
        BTreeSet::from([SIMULATOR.to_owned()]),
        "the sim target holds the simulator alone"
    );
    let sim_builder = copy_from(
        &sim_instructions
            .iter()
            .find(|i| i.keyword == "COPY" && i.args.contains(SIMULATOR))
            .unwrap()
            .args,
    )
    .unwrap()
    .to_owned();
    let (built, whole) = packages_in(file.stage(&sim_builder), "cargo build");
    assert!(!whole);
    assert_eq!(built, BTreeSet::from([sim_package]));
    assert_eq!(
        file.parent("sim"),
        file.parent("runtime-base"),
        "the simulator's image has the same base (user, certificates) as the pipeline's"
    );

    let compose = load_yaml(&workspace_root().join("docker-compose.yml")).unwrap();
    let services = compose.get("services").unwrap();
    let sim = services.get("tascomi-sim").expect("a tascomi-sim service");
    assert_eq!(
        sim.get("build")
            .and_then(|b| b.get("target"))
            .and_then(|t| t.as_str()),
        Some("sim"),
        "compose builds the simulator from the sim target"
    );
    let sim_image = sim.get("image").and_then(|i| i.as_str()).unwrap();
    for (name, service) in services.as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        if name == "tascomi-sim" {
            continue;
        }
        assert_ne!(
            service.get("image").and_then(|i| i.as_str()),
            Some(sim_image),
            "{name} runs the simulator's image"
        );
        // The pipeline services build the default target (the production image).
        if let Some(target) = service
            .get("build")
            .and_then(|b| b.get("target"))
            .and_then(|t| t.as_str())
        {
            assert_eq!(target, "runtime", "{name}");
        }
    }
}

#[test]
fn image_builds_natively_for_its_platform() {
    let file = dockerfile();
    // The build stages run on the target platform (no `FROM --platform=$BUILDPLATFORM`, which
    // would need a cross-compiler the build does not install) ...
    let text = dockerfile_text();
    for line in text.lines().filter(|l| l.starts_with("FROM ")) {
        assert!(
            !line.contains("--platform"),
            "{line}: build natively, not cross-compiled"
        );
    }
    // ... and refuse to run under emulation unless asked to.
    let chef = file.lineage("builder").last().unwrap().clone();
    let first = file.stage(&chef);
    let args: BTreeSet<&str> = first
        .iter()
        .filter(|i| i.keyword == "ARG")
        .map(|i| i.args.split('=').next().unwrap())
        .collect();
    for arg in [
        "BUILDPLATFORM",
        "TARGETPLATFORM",
        "TARGETARCH",
        "ALLOW_EMULATION",
    ] {
        assert!(args.contains(arg), "{chef}: ARG {arg}");
    }
    let guard = first
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("$BUILDPLATFORM"))
        .expect("a RUN comparing the build and target platforms");
    assert!(
        guard
            .args
            .contains("\"$BUILDPLATFORM\" != \"$TARGETPLATFORM\"")
            && guard.args.contains("ALLOW_EMULATION")
            && guard.args.contains("exit 1"),
        "{}",
        guard.args
    );
    assert!(
        file.lineage("sim-builder").contains(&chef),
        "the simulator builds on the same guarded stage"
    );
    // cargo-chef is pinned.
    let version = file
        .global_args
        .get("CARGO_CHEF_VERSION")
        .expect("ARG CARGO_CHEF_VERSION");
    assert!(
        version.split('.').count() == 3 && version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "cargo-chef pinned to an exact version, not {version:?}"
    );
    assert!(first.iter().any(|i| {
        i.keyword == "RUN"
            && i.args
                .contains("cargo install cargo-chef --locked --version \"${CARGO_CHEF_VERSION}\"")
    }));
}

/// Runs the image's health check script with a fake `/proc` holding `comms` and fake service
/// binaries on `PATH` that record their arguments and exit with `status`.
fn run_health_check(comms: &[&str], status: i32) -> (i32, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let proc_dir = dir.path().join("proc");
    for (pid, comm) in comms.iter().enumerate() {
        let process = proc_dir.join((pid + 1).to_string());
        std::fs::create_dir_all(&process).unwrap();
        std::fs::write(process.join("comm"), format!("{comm}\n")).unwrap();
    }
    std::fs::create_dir_all(proc_dir.join("self")).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let calls = dir.path().join("calls");
    for service in ["ingest-svc", "parse-svc", "recast-svc", "snapshot-svc"] {
        let script = bin.join(service);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"{service} $*\" >> '{}'\nexit {status}\n",
                calls.display()
            ),
        )
        .unwrap();
        make_executable(&script);
    }
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let output = Command::new("sh")
        .arg(workspace_root().join("deploy/image/healthcheck.sh"))
        .env("PATH", path)
        .env("HEALTHCHECK_PROC_DIR", &proc_dir)
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&calls)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    (output.status.code().unwrap_or(-1), calls)
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions).unwrap();
}

#[test]
fn image_and_task_definitions_probe_the_service_with_its_health_argument() {
    let file = dockerfile();
    let runtime = file.instructions_of("runtime");
    let health = runtime
        .iter()
        .find(|i| i.keyword == "HEALTHCHECK")
        .expect("the image has a HEALTHCHECK");
    assert!(
        health.args.contains("CMD [\"tascomi-healthcheck\"]"),
        "{}",
        health.args
    );
    assert!(
        runtime.iter().any(|i| i.keyword == "COPY"
            && i.args
                .ends_with("deploy/image/healthcheck.sh /usr/local/bin/tascomi-healthcheck")),
        "the health check script is in the image"
    );

    // The script asks the running service, behind an init process or not.
    assert_eq!(
        run_health_check(&["docker-init", "parse-svc"], 0),
        (0, vec!["parse-svc --health".to_owned()])
    );
    assert_eq!(
        run_health_check(&["snapshot-svc"], 3),
        (3, vec!["snapshot-svc --health".to_owned()]),
        "a failing probe fails the check"
    );
    assert_eq!(
        run_health_check(&["tascomi", "sh"], 1),
        (0, vec![]),
        "nothing to check in a container that runs no service"
    );

    // ECS runs the same probe, naming the stage's service.
    let tf = Terraform::load(&infra_check::module_dir()).unwrap();
    let task_def = tf.resource("aws_ecs_task_definition", "stage").unwrap();
    let definitions = infra_check::text(attr(task_def, "container_definitions").unwrap());
    let compact: String = definitions.split_whitespace().collect();
    assert!(
        compact.contains(
            "healthCheck={command=[\"CMD\",\"/usr/local/bin/${each.value.service}\",\"--health\"]"
        ),
        "the task definition's healthCheck runs `<service> --health`: {definitions}"
    );
}

#[test]
fn image_runs_as_the_non_root_user_the_deployments_name() {
    let text = dockerfile_text();
    assert!(text.contains("useradd --system --uid 10001"));
    let file = dockerfile();
    for target in ["runtime", "baked", "sim"] {
        let last_user = file
            .instructions_of(target)
            .into_iter()
            .rev()
            .find(|i| i.keyword == "USER")
            .unwrap_or_else(|| panic!("{target}: a USER line"));
        assert_eq!(last_user.args, "10001:10001", "{target}");
    }
    let tf = Terraform::load(&infra_check::module_dir()).unwrap();
    let task_def = tf.resource("aws_ecs_task_definition", "stage").unwrap();
    let definitions = infra_check::text(attr(task_def, "container_definitions").unwrap());
    assert!(
        definitions.contains("user = \"10001:10001\""),
        "{definitions}"
    );
}

#[test]
fn image_keeps_the_pipeline_file_where_the_deployments_point() {
    let file = dockerfile();
    assert!(
        file.instructions_of("runtime")
            .iter()
            .any(|i| i.keyword == "COPY"
                && i.args
                    .ends_with(" pipeline.yaml /etc/tascomi/pipeline.yaml")),
        "the image keeps pipeline.yaml at /etc/tascomi/pipeline.yaml"
    );
    let tf = Terraform::load(&infra_check::module_dir()).unwrap();
    assert_eq!(
        string(tf.local("pipeline_file_in_image").unwrap()),
        Some("/etc/tascomi/pipeline.yaml")
    );
}

#[test]
fn the_default_image_holds_no_dictionary_and_the_deployment_names_one_in_s3() {
    let file = dockerfile();
    // The default target needs nothing at build time but the repository: no named build
    // context, no dictionary, no variable pointing into the image.
    for instruction in file.instructions_of("runtime") {
        assert!(
            !instruction.args.contains("column-type-dictionary")
                && !instruction.args.contains("TASCOMI_COLUMN_TYPE_DICTIONARY")
                && !instruction.args.contains("--from=dictionary"),
            "runtime: {} {}",
            instruction.keyword,
            instruction.args
        );
    }
    // Terraform gives every service the s3:// URI of the object it uploads (or the council's).
    let tf = Terraform::load(&infra_check::module_dir()).unwrap();
    let common = object_entries(tf.local("common_environment").unwrap()).unwrap();
    assert_eq!(
        infra_check::text(common["TASCOMI_COLUMN_TYPE_DICTIONARY"]),
        "local.column_type_dictionary_uri"
    );
    let upload = tf
        .resource("aws_s3_object", "column_type_dictionary")
        .expect("aws_s3_object.column_type_dictionary");
    assert_eq!(
        infra_check::text(attr(upload, "source").unwrap()),
        "var.column_type_dictionary_path"
    );
    for name in [
        "column_type_dictionary_path",
        "column_type_dictionary_s3_uri",
    ] {
        let variable = tf
            .blocks("variable")
            .find(|b| infra_check::labels(b) == [name])
            .unwrap_or_else(|| panic!("variable {name}"));
        assert_eq!(
            attr(variable, "default").map(infra_check::text).as_deref(),
            Some("null"),
            "{name}: no default inside the image"
        );
    }
}

#[test]
fn image_builds_with_the_pinned_toolchain() {
    let toolchain = std::fs::read_to_string(workspace_root().join("rust-toolchain.toml")).unwrap();
    let channel = toolchain
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("channel")
                .and_then(|r| r.split('"').nth(1))
        })
        .expect("a channel in rust-toolchain.toml");
    let version: String = channel.split('.').take(2).collect::<Vec<_>>().join(".");
    assert_eq!(
        dockerfile()
            .global_args
            .get("RUST_IMAGE")
            .map(String::as_str),
        Some(format!("rust:{version}-slim-bookworm").as_str()),
        "the builder image must use Rust {version}"
    );
}

/// Whether `.dockerignore` leaves `path` in the build context: the last matching pattern wins,
/// `!` re-includes; a pattern matches the path or a folder above it, `*` one path segment.
fn in_build_context(patterns: &[String], path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    let matches = |pattern: &str| {
        let parts: Vec<&str> = pattern.split('/').collect();
        parts.len() <= segments.len()
            && parts.iter().zip(&segments).all(|(p, s)| {
                *p == "*"
                    || *p == *s
                    || p.strip_prefix("*.")
                        .is_some_and(|ext| s.ends_with(&format!(".{ext}")))
            })
    };
    let mut included = true;
    for pattern in patterns {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern.as_str()),
        };
        if matches(pattern) {
            included = negated;
        }
    }
    included
}

#[test]
fn dockerignore_keeps_what_the_build_needs() {
    let root = workspace_root();
    let patterns: Vec<String> = std::fs::read_to_string(root.join(".dockerignore"))
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_matches('/').to_owned())
        .collect();
    let mut needed = vec![
        "Cargo.toml".to_owned(),
        "Cargo.lock".into(),
        "pipeline.yaml".into(),
        "deploy/image/healthcheck.sh".into(),
    ];
    for member in workspace_members(&root).unwrap() {
        needed.push(format!("{member}/Cargo.toml"));
        needed.push(format!("{member}/src/lib.rs"));
    }
    for path in needed {
        assert!(
            in_build_context(&patterns, &path),
            ".dockerignore excludes {path}, which the build needs"
        );
    }
    for path in [
        "target/release/tascomi",
        "deploy/compose/init.sh",
        ".git/HEAD",
    ] {
        assert!(
            !in_build_context(&patterns, path),
            "{path} should stay out of the build context"
        );
    }
}

#[test]
fn dockerfile_parser_joins_continuations_and_names_stages() {
    let file = Dockerfile::parse(
        "ARG A=1\nFROM x AS one\nRUN a \\\n  # a comment\n  && b\nFROM one AS two\nCOPY --from=one /out/z /usr/local/bin/\nFROM two\n",
    );
    assert_eq!(file.global_args["A"], "1");
    assert_eq!(file.stage("one")[0].args, "a && b");
    assert_eq!(file.lineage("2"), ["2", "two", "one"]);
    assert!(file.reaches("2").contains("one"));
    assert_eq!(
        copied_binaries(&file.instructions_of("two")),
        BTreeSet::from(["z".to_owned()])
    );
    let builds = Dockerfile::parse(
        "FROM x AS b\nRUN cargo build --release -p a \\\n  -p b && cargo build --workspace\n",
    );
    let (packages, whole) = packages_in(builds.stage("b"), "cargo build");
    assert_eq!(packages, BTreeSet::from(["a".to_owned(), "b".to_owned()]));
    assert!(whole, "--workspace is seen");
    let ignore = ["deploy/*".to_owned(), "!deploy/image".to_owned()];
    assert!(in_build_context(&ignore, "deploy/image/healthcheck.sh"));
    assert!(!in_build_context(&ignore, "deploy/compose/init.sh"));
}
