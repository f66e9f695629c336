//! The repository's pipeline.yaml: the tables and schedules of the council's existing lake
//! (docs/operations.md, "The tables"), overrides that name real columns, and no path outside the
//! repository (the column-type dictionary is the council's configuration, named at run time).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use common::config::{PipelineFile, Schedule};
use infra_check::workspace_root;

const DAILY: [&str; 21] = [
    "appeals",
    "applications",
    "asset_constraints",
    "communications",
    "contacts",
    "documents",
    "dtf_locations",
    "emails",
    "enforcements",
    "fee_payments",
    "fees",
    "public_comments",
    "users",
    "committee_application_map",
    "user_teams",
    "user_team_map",
    "pre_applications",
    "enforcement_breaches",
    "enforcement_outcomes",
    "enforcement_actions_taken",
    "enforcement_breach_details",
];

const WEEKLY: [&str; 27] = [
    "appeal_decision",
    "appeal_status",
    "appeal_types",
    "application_types",
    "breach_types",
    "committees",
    "communication_templates",
    "communication_types",
    "contact_types",
    "decision_levels",
    "decision_types",
    "document_types",
    "fee_types",
    "ps_development_codes",
    "public_consultations",
    "pre_application_categories",
    "nature_of_enquiries",
    "enquiry_outcome",
    "enquiry_stage",
    "wards",
    "appeal_formats",
    "enforcement_outcome_types",
    "enforcement_protocols",
    "priority_statuses",
    "complaint_sources",
    "file_closure_reasons",
    "enforcement_case_statuses",
];

fn pipeline() -> PipelineFile {
    PipelineFile::load(&workspace_root().join("pipeline.yaml")).expect("pipeline.yaml loads")
}

#[test]
fn the_pipeline_file_runs_exactly_the_councils_48_tables_on_their_schedules() {
    let want: BTreeMap<&str, Schedule> = DAILY
        .iter()
        .map(|t| (*t, Schedule::Daily))
        .chain(WEEKLY.iter().map(|t| (*t, Schedule::Weekly)))
        .collect();
    assert_eq!(want.len(), 48, "the lists overlap");
    let pipeline = pipeline();
    let got: BTreeMap<&str, Schedule> = pipeline
        .tables
        .iter()
        .map(|t| (t.name.as_str(), t.schedule))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn the_overrides_are_the_two_text_tables_and_public_consultations_document_id() {
    let pipeline = pipeline();
    let text: BTreeSet<&str> = pipeline
        .tables
        .iter()
        .filter(|t| t.keep_as_text)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        text,
        BTreeSet::from(["asset_constraints", "pre_applications"])
    );
    let completeness: BTreeMap<&str, &str> = pipeline
        .tables
        .iter()
        .filter(|t| t.completeness_column != "id")
        .map(|t| (t.name.as_str(), t.completeness_column.as_str()))
        .collect();
    assert_eq!(
        completeness,
        BTreeMap::from([("public_consultations", "document_id")])
    );
}

/// Run-time input from outside the repository: skipped, saying so, when it is absent.
#[test]
fn override_columns_are_columns_of_the_production_dictionary() {
    let path = workspace_root().join("../shared/tascomi/column-type-dictionary.json");
    if !path.is_file() {
        eprintln!(
            "skipped: the production dictionary {} is absent (it is never copied into the repository)",
            path.display()
        );
        return;
    }
    let dictionary = common::dictionary::ColumnTypes::load(&path).unwrap();
    for table in pipeline().tables {
        let name = table.name.as_str();
        if table.completeness_column != "id" {
            assert!(
                dictionary
                    .column_type(name, &table.completeness_column)
                    .is_some(),
                "{name}: completeness_column {} is not a column of the dictionary",
                table.completeness_column
            );
        }
        if table.keep_as_text {
            assert!(
                !dictionary.has_table(name),
                "{name} is kept as text but the dictionary types it: drop keep_as_text"
            );
        }
    }
}

#[test]
fn nothing_outside_the_repository_is_named_by_the_pipeline_file_or_the_build() {
    let root = workspace_root();
    let pipeline = pipeline();
    assert_eq!(
        pipeline.column_type_dictionary, None,
        "the dictionary is named at run time (TASCOMI_COLUMN_TYPE_DICTIONARY), not in pipeline.yaml"
    );
    for file in ["pipeline.yaml", "Dockerfile", "Makefile"] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            assert!(
                !line.contains("../shared") && !line.contains("shared/tascomi"),
                "{file} names a path outside the repository: {line}"
            );
        }
    }
    let mut offenders = Vec::new();
    for crate_dir in [
        "common",
        "ingest-svc",
        "parse-svc",
        "recast-svc",
        "snapshot-svc",
        "ctl",
        "bench",
    ] {
        scan(&root.join(crate_dir).join("src"), &mut offenders);
    }
    assert!(
        offenders.is_empty(),
        "the shipped sources read ../shared: {offenders:?}"
    );
}

/// `.rs` files below `dir` (tests excluded: they may read `../shared` at run time) whose code
/// outside comments names `../shared`.
fn scan(dir: &Path, offenders: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                scan(&path, offenders);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            for line in code.lines() {
                let line = line.trim_start();
                if !line.starts_with("//") && line.contains("../shared") {
                    offenders.push(format!("{}: {line}", path.display()));
                }
            }
        }
    }
}
