//! Invariants of the Dockerfile (no Docker engine here): it builds and ships every binary the
//! deployments run, as the non-root user they name, with the pipeline file where they look.

use std::collections::BTreeSet;

use infra_check::{
    Terraform, attr, load_yaml, object_entries, string, workspace_members, workspace_root,
};

fn dockerfile() -> String {
    std::fs::read_to_string(workspace_root().join("Dockerfile")).expect("Dockerfile")
}

const BINARIES: [&str; 6] = [
    "ingest-svc",
    "parse-svc",
    "recast-svc",
    "snapshot-svc",
    "tascomi",
    "tascomi-sim",
];

/// The binaries the workspace builds: `[[bin]]` names, or the package name of a crate with a
/// `src/main.rs` and no `[[bin]]`.
fn workspace_binaries() -> BTreeSet<String> {
    let root = workspace_root();
    let mut found = BTreeSet::new();
    for member in workspace_members(&root).unwrap() {
        let dir = root.join(&member);
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let mut in_bin = false;
        let mut package_name = None;
        let mut has_bin_section = false;
        let mut section = String::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                in_bin = line == "[[bin]]";
                has_bin_section |= in_bin;
                continue;
            }
            if let Some(value) = line
                .strip_prefix("name")
                .map(str::trim)
                .and_then(|r| r.strip_prefix('='))
            {
                let value = value.trim().trim_matches('"').to_owned();
                if in_bin {
                    found.insert(value);
                } else if section == "[package]" {
                    package_name = Some(value);
                }
            }
        }
        if !has_bin_section && dir.join("src/main.rs").exists() {
            found.extend(package_name);
        }
    }
    found
}

#[test]
fn image_builds_and_ships_every_binary_the_deployments_run() {
    let dockerfile = dockerfile();
    assert!(dockerfile.contains("cargo build --release --locked --workspace"));
    let built = workspace_binaries();
    for binary in BINARIES {
        assert!(
            built.contains(binary),
            "no workspace crate builds {binary} (found {built:?})"
        );
        assert!(
            dockerfile.contains(&format!("/out/{binary} "))
                || dockerfile.contains(&format!("/out/{binary}\n")),
            "the runtime image does not copy {binary}"
        );
    }
    let copied_into_bin = dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY --from=builder"))
        .all(|l| l.trim_end().ends_with("/usr/local/bin/"));
    assert!(copied_into_bin, "binaries go to /usr/local/bin");

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
fn image_runs_as_the_non_root_user_the_deployments_name() {
    let dockerfile = dockerfile();
    assert!(dockerfile.contains("useradd --system --uid 10001"));
    let last_user = dockerfile
        .lines()
        .rev()
        .find(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert_eq!(last_user.trim(), "USER 10001:10001");
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
    let dockerfile = dockerfile();
    assert!(
        dockerfile
            .lines()
            .any(|l| l.starts_with("COPY ")
                && l.ends_with(" pipeline.yaml /etc/tascomi/pipeline.yaml")),
        "the image keeps pipeline.yaml at /etc/tascomi/pipeline.yaml"
    );
    let tf = Terraform::load(&infra_check::module_dir()).unwrap();
    assert_eq!(
        string(tf.local("pipeline_file_in_image").unwrap()),
        Some("/etc/tascomi/pipeline.yaml")
    );
    // The dictionary's place in the image is the default the task definitions use.
    assert!(dockerfile.contains("/etc/tascomi/column-type-dictionary.json"));
    let variable = tf
        .blocks("variable")
        .find(|b| infra_check::labels(b) == ["column_type_dictionary_path"])
        .unwrap();
    assert_eq!(
        attr(variable, "default").and_then(string),
        Some("/etc/tascomi/column-type-dictionary.json")
    );
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
    assert!(
        dockerfile().contains(&format!("rust:{version}-slim-bookworm")),
        "the builder image must use Rust {version}"
    );
}

#[test]
fn dockerignore_keeps_what_the_build_needs() {
    let root = workspace_root();
    let ignored: Vec<String> = std::fs::read_to_string(root.join(".dockerignore"))
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
    ];
    needed.extend(
        workspace_members(&root)
            .unwrap()
            .into_iter()
            .map(|m| m.split('/').next().unwrap().to_owned()),
    );
    for path in needed {
        assert!(
            !ignored.contains(&path),
            ".dockerignore excludes {path}, which the build needs"
        );
    }
}
