//! Invariants of the Terraform in infra/, checked on the parsed configuration (no provider, no
//! registry): every stage has its queue, dead-letter queue, service, task definition and role;
//! a schedule per table of the pipeline file; least privilege; encrypted private buckets; the
//! environment the services read.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use common::config::{PipelineFile, Schedule};
use common::layout::{Layer, Layout, TableName, Zone};
use common::messages::{IngestMode, IngestRequest};
use hcl::Block;
use hcl::expr::{Expression, TraversalOperator};
use infra_check::{
    STAGES, Scope, Terraform, attr, env_names_read_by_sources, key_value, nested, object,
    object_entries, object_keys, render, scope_values, string, string_list, substitute,
    terraform_queue_names, text, traversal_path, workspace_root,
};

fn terraform() -> Terraform {
    Terraform::load(&infra_check::module_dir()).expect("infra/modules/tascomi-pipeline/*.tf parse")
}

fn func_call<'a>(expr: &'a Expression, name: &str) -> Option<&'a [Expression]> {
    match expr {
        Expression::FuncCall(call) if call.name.name.to_string() == name => Some(&call.args),
        _ => None,
    }
}

/// `local.stages`: stage -> (service binary, next stage).
fn stages(tf: &Terraform) -> BTreeMap<String, (String, Option<String>)> {
    let entries = object_entries(tf.local("stages").expect("local.stages")).expect("an object");
    entries
        .into_iter()
        .map(|(stage, def)| {
            let def = object_entries(def).expect("a stage is an object");
            let service = string(def["service"])
                .expect("service is a literal")
                .to_owned();
            let next = match def["next"] {
                Expression::Null => None,
                other => Some(string(other).expect("next is a literal or null").to_owned()),
            };
            (stage, (service, next))
        })
        .collect()
}

#[test]
fn stages_are_the_four_services_in_pipeline_order() {
    let tf = terraform();
    let stages = stages(&tf);
    assert_eq!(
        stages.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        STAGES.into_iter().collect()
    );
    for (i, stage) in STAGES.iter().enumerate() {
        let (service, next) = &stages[*stage];
        assert_eq!(service, &format!("{stage}-svc"));
        assert_eq!(
            next.as_deref(),
            STAGES.get(i + 1).copied(),
            "next stage of {stage}"
        );
    }
}

#[test]
fn every_stage_has_its_queue_dead_letter_queue_service_task_definition_and_role() {
    let tf = terraform();
    let per_stage = [
        ("aws_sqs_queue", "stage"),
        ("aws_sqs_queue", "dead_letter"),
        ("aws_sqs_queue_redrive_allow_policy", "dead_letter"),
        ("aws_cloudwatch_log_group", "stage"),
        ("aws_ecs_task_definition", "stage"),
        ("aws_ecs_service", "stage"),
        ("aws_iam_role", "task"),
        ("aws_iam_role_policy", "task"),
        ("aws_appautoscaling_target", "stage"),
        ("aws_cloudwatch_metric_alarm", "queue_busy"),
        ("aws_cloudwatch_metric_alarm", "queue_idle"),
        ("aws_iam_policy_document", "stage_common"),
        ("aws_iam_policy_document", "task"),
    ];
    for (rtype, name) in per_stage {
        let block = tf
            .resource(rtype, name)
            .or_else(|| tf.data(rtype, name))
            .unwrap_or_else(|| panic!("{rtype}.{name} is missing"));
        let for_each =
            attr(block, "for_each").unwrap_or_else(|| panic!("{rtype}.{name} has no for_each"));
        assert_eq!(
            text(for_each),
            "local.stages",
            "{rtype}.{name} must exist once per stage"
        );
    }
    // Two per stage, keyed <stage>-<kind>.
    for (rtype, name, kinds) in [
        (
            "aws_cloudwatch_metric_alarm",
            "queue",
            ["dead-letters", "oldest-message"],
        ),
        (
            "aws_appautoscaling_policy",
            "step",
            ["scale-out", "scale-in"],
        ),
    ] {
        let want: BTreeSet<String> = STAGES
            .iter()
            .flat_map(|stage| kinds.map(|kind| format!("{stage}-{kind}")))
            .collect();
        assert_eq!(
            instances(&tf, rtype, name)
                .into_keys()
                .collect::<BTreeSet<_>>(),
            want,
            "{rtype}.{name}: one of each kind per stage"
        );
    }

    // The wiring: each service runs its own task definition, with its own role and policy.
    let task_def = tf.resource("aws_ecs_task_definition", "stage").unwrap();
    assert_eq!(
        text(attr(task_def, "task_role_arn").unwrap()),
        "aws_iam_role.task[each.key].arn"
    );
    let service = tf.resource("aws_ecs_service", "stage").unwrap();
    assert_eq!(
        text(attr(service, "task_definition").unwrap()),
        "aws_ecs_task_definition.stage[each.key].arn"
    );
    let role_policy = tf.resource("aws_iam_role_policy", "task").unwrap();
    assert_eq!(
        text(attr(role_policy, "role").unwrap()),
        "aws_iam_role.task[each.key].id"
    );
    assert_eq!(
        text(attr(role_policy, "policy").unwrap()),
        "data.aws_iam_policy_document.task[each.key].json"
    );

    // Each stage's policy: its own statements and its queue permissions (stage_common).
    let doc = tf.data("aws_iam_policy_document", "task").unwrap();
    let sources: String =
        text(attr(doc, "source_policy_documents").expect("source_policy_documents"))
            .split_whitespace()
            .collect();
    assert_eq!(
        sources, "[data.aws_iam_policy_document.stage_common[each.key].json]",
        "the task policy must include its queue permissions"
    );
    let own = object_entries(tf.local("task_statements").expect("local.task_statements")).unwrap();
    assert_eq!(
        own.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        STAGES.into_iter().collect(),
        "local.task_statements: the statements of each stage, and only of the stages"
    );
}

/// The instances of a `for_each` resource, by key, each with `each` bound for reading its
/// attributes (through [`substitute`]).
fn instances(
    tf: &Terraform,
    rtype: &str,
    name: &str,
) -> BTreeMap<String, Vec<(String, Expression)>> {
    let block = tf
        .resource(rtype, name)
        .unwrap_or_else(|| panic!("{rtype}.{name} is missing"));
    let for_each = attr(block, "for_each").unwrap_or_else(|| panic!("{rtype}.{name}: no for_each"));
    tf.instances(for_each, &[])
        .unwrap_or_else(|| panic!("{rtype}.{name}: cannot read {}", text(for_each)))
        .into_iter()
        .map(|(key, value)| {
            (
                key.clone(),
                vec![("each".to_owned(), key_value(key, value))],
            )
        })
        .collect()
}

/// A resource's attribute for one instance.
fn instance_attr(block: &Block, name: &str, scope: &Scope) -> Expression {
    substitute(
        attr(block, name).unwrap_or_else(|| panic!("no attribute {name}")),
        scope,
    )
}

#[test]
fn each_queue_sends_failures_to_its_own_dead_letter_queue() {
    let tf = terraform();
    let queue = tf.resource("aws_sqs_queue", "stage").unwrap();
    let redrive = attr(queue, "redrive_policy").expect("redrive_policy");
    let args = func_call(redrive, "jsonencode").expect("redrive_policy = jsonencode({...})");
    let policy = object_entries(&args[0]).expect("an object");
    assert_eq!(
        text(policy["deadLetterTargetArn"]),
        "aws_sqs_queue.dead_letter[each.key].arn"
    );
    assert_eq!(text(policy["maxReceiveCount"]), "var.max_receive_count");
    assert!(
        text(attr(queue, "visibility_timeout_seconds").unwrap())
            .contains("visibility_timeout_secs"),
        "the queue's visibility timeout is the stage's setting"
    );

    for name in ["stage", "dead_letter"] {
        let block = tf.resource("aws_sqs_queue", name).unwrap();
        for key in ["sqs_managed_sse_enabled", "kms_master_key_id"] {
            assert!(
                attr(block, key).is_some(),
                "aws_sqs_queue.{name} must set {key} (encryption)"
            );
        }
    }

    let allow = tf
        .resource("aws_sqs_queue_redrive_allow_policy", "dead_letter")
        .unwrap();
    assert!(
        text(attr(allow, "redrive_allow_policy").unwrap())
            .contains("aws_sqs_queue.stage[each.key].arn")
    );

    // The settings behind the timeouts: within what SQS allows.
    let defaults = object_entries(tf.local("stage_defaults").unwrap()).unwrap();
    for stage in STAGES {
        let settings = object_entries(defaults[stage]).unwrap();
        let timeout: u64 = text(settings["visibility_timeout_secs"]).parse().unwrap();
        assert!(
            (60..=43_200).contains(&timeout),
            "{stage}: visibility timeout {timeout}"
        );
    }
}

#[test]
fn queue_names_are_prefix_then_stage_then_dlq() {
    let tf = terraform();
    for stage in STAGES {
        let (queue, dlq) = terraform_queue_names(&tf, "council-prod", stage).unwrap();
        assert_eq!(queue, format!("council-prod-{stage}"));
        assert_eq!(dlq, format!("council-prod-{stage}-dlq"));
    }
    let name = tf.local("name").unwrap();
    let rendered = render(
        name,
        &[(
            "var",
            object(&[("name_prefix", "tascomi"), ("environment", "local")]),
        )],
    )
    .unwrap();
    assert_eq!(
        rendered,
        hcl::Value::from("tascomi-local"),
        "compose uses <name_prefix>-<environment> = tascomi-local"
    );
}

#[test]
fn databases_and_prefixes_are_the_ones_the_services_use() {
    let tf = terraform();
    let layout = Layout {
        raw_bucket: "raw".into(),
        refined_bucket: "refined".into(),
        database_prefix: "council-prod".into(),
    };
    for (local, zone) in [
        ("raw_database", Zone::Raw),
        ("refined_database", Zone::Refined),
    ] {
        let rendered = render(
            tf.local(local).unwrap(),
            &[("local", object(&[("database_prefix", "council-prod")]))],
        )
        .unwrap();
        assert_eq!(
            rendered,
            hcl::Value::from(layout.database(zone)),
            "local.{local}"
        );
    }

    let prefixes = object_entries(tf.local("prefixes").unwrap()).unwrap();
    let table = TableName::new("applications").unwrap();
    for (key, layer) in [
        ("api_responses", Layer::Raw),
        ("parsed", Layer::Parsed),
        ("increment", Layer::Increment),
        ("snapshot", Layer::Snapshot),
    ] {
        let prefix = string(prefixes[key]).unwrap();
        assert_eq!(
            format!("{prefix}applications/"),
            layer.table_prefix(&table),
            "prefixes.{key}"
        );
    }
    assert_eq!(
        string(prefixes["data_quality"]).unwrap(),
        common::platform::DEFAULT_METRICS_PREFIX
    );
}

#[test]
fn schedules_are_generated_from_the_pipeline_file() {
    let tf = terraform();
    let schedule = tf
        .resource("aws_scheduler_schedule", "ingest")
        .expect("aws_scheduler_schedule.ingest");
    assert_eq!(text(attr(schedule, "for_each").unwrap()), "local.tables");

    // local.tables = { for table, entry in local.pipeline.tables : table => try(entry.schedule, entry) }
    let Expression::ForExpr(tables) = tf.local("tables").expect("local.tables") else {
        panic!("local.tables must be a for expression over the pipeline file's tables");
    };
    assert_eq!(text(&tables.collection_expr), "local.pipeline.tables");
    let key_var = tables.key_var.as_ref().expect("a key variable").to_string();
    let value_var = tables.value_var.to_string();
    assert_eq!(tables.key_expr.as_ref().map(text), Some(key_var.clone()));
    let try_args = func_call(&tables.value_expr, "try").expect("try(entry.schedule, entry)");
    assert_eq!(
        traversal_path(&try_args[0]),
        Some(vec![value_var.clone(), "schedule".into()])
    );
    assert_eq!(traversal_path(&try_args[1]), Some(vec![value_var]));
    assert!(tables.cond_expr.is_none(), "every table gets a schedule");

    // local.pipeline = yamldecode(file(<the pipeline file>))
    let decode = func_call(tf.local("pipeline").unwrap(), "yamldecode").expect("yamldecode(...)");
    let file = func_call(&decode[0], "file").expect("yamldecode(file(...))");
    let path = text(&file[0]);
    assert!(
        path.contains("var.pipeline_file") && path.contains("pipeline.yaml"),
        "{path}"
    );

    // Fired on time, in London time, to the ingest queue.
    let window = &nested(schedule, "flexible_time_window")[0];
    assert_eq!(string(attr(window, "mode").unwrap()), Some("OFF"));
    assert_eq!(
        string(attr(schedule, "schedule_expression_timezone").unwrap()),
        Some("Europe/London")
    );
    let cron = object_entries(tf.local("cron").unwrap()).unwrap();
    assert_eq!(
        cron.keys().map(String::as_str).collect::<Vec<_>>(),
        ["daily", "weekly"]
    );
    assert!(text(cron["weekly"]).contains("var.weekly_day"));
    assert!(text(attr(schedule, "schedule_expression").unwrap()).contains("local.cron"));

    let target = &nested(schedule, "target")[0];
    assert_eq!(
        text(attr(target, "arn").unwrap()),
        "aws_sqs_queue.stage[\"ingest\"].arn"
    );
    assert!(
        !nested(target, "dead_letter_config").is_empty(),
        "undeliverable requests are kept"
    );
}

#[test]
fn the_scheduled_message_is_an_ingest_request_the_service_accepts() {
    let tf = terraform();
    let schedule = tf.resource("aws_scheduler_schedule", "ingest").unwrap();
    let target = &nested(schedule, "target")[0];
    let args =
        func_call(attr(target, "input").unwrap(), "jsonencode").expect("input = jsonencode({...})");
    let value = render(
        &args[0],
        &[(
            "each",
            object(&[("key", "applications"), ("value", "daily")]),
        )],
    )
    .unwrap();
    let body = serde_json::to_string(&value).unwrap();
    let request: IngestRequest =
        common::messages::decode(&body, |_| true).unwrap_or_else(|err| panic!("{body}: {err}"));
    assert_eq!(request.table.as_str(), "applications");
    assert_eq!(request.mode, IngestMode::Incremental);
    assert_eq!(request.requested_by, "schedule");
    assert_eq!(
        request.as_of, None,
        "a scheduled run takes the real London today"
    );
}

#[test]
fn every_table_of_the_pipeline_file_gets_exactly_one_schedule() {
    let root = workspace_root();
    let path = root.join("pipeline.yaml");
    let yaml: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let tables = yaml
        .get("tables")
        .and_then(|t| t.as_mapping())
        .expect("a tables map");

    // What Terraform's try(entry.schedule, entry) yields for each table: the for_each keys.
    let mut scheduled = BTreeMap::new();
    for (name, entry) in tables {
        let name = name.as_str().expect("table names are strings").to_owned();
        let schedule = entry
            .get("schedule")
            .unwrap_or(entry)
            .as_str()
            .unwrap_or_else(|| panic!("table {name}: no schedule"))
            .to_owned();
        assert!(
            ["daily", "weekly"].contains(&schedule.as_str()),
            "table {name}: schedule {schedule:?} has no cron expression in local.cron"
        );
        // EventBridge Scheduler: names of at most 64 characters.
        assert!(
            name.len() <= 64,
            "table {name}: too long for a schedule name"
        );
        assert!(
            scheduled.insert(name.clone(), schedule).is_none(),
            "table {name} twice"
        );
    }

    // The services read the same file the same way: same tables, same schedules.
    let pipeline = PipelineFile::load(&path).expect("the services accept pipeline.yaml");
    let read_by_services: BTreeMap<String, String> = pipeline
        .tables
        .iter()
        .map(|table| {
            let schedule = match table.schedule {
                Schedule::Daily => "daily",
                Schedule::Weekly => "weekly",
            };
            (table.name.to_string(), schedule.to_owned())
        })
        .collect();
    assert_eq!(scheduled, read_by_services);
    assert!(!scheduled.is_empty());
    eprintln!(
        "{} tables, {} schedules",
        pipeline.tables.len(),
        scheduled.len()
    );
}

/// A policy statement as read: (document, effect, actions, resource texts). The document of a
/// `for_each` instance is named with its key: `task["parse"]`.
type Statement = (String, String, Vec<String>, Vec<String>);

/// Every statement of every policy document, each document's own (those it takes from
/// `source_policy_documents` are read with the document they are written in). A `for_each`
/// document is read once per instance, `each` bound (conditionals on it decided, its `dynamic`
/// statements that instance's); with a stage, the per-stage documents (`for_each =
/// local.stages`) for that stage only.
fn statements(tf: &Terraform, stage: Option<&str>) -> Vec<Statement> {
    let mut found = Vec::new();
    for (doc, block) in tf.data_of_type("aws_iam_policy_document") {
        let per_stage = attr(block, "for_each").is_some_and(|e| text(e) == "local.stages");
        let key = stage.filter(|_| per_stage);
        for (name, scope) in document_instances(tf, doc, block, key) {
            found.extend(read_statements(
                tf,
                &name,
                tf.expand(block, "statement", &scope),
            ));
        }
    }
    found
}

/// What one stage's task role is allowed by its inline policy, the `task` document: its own
/// statements and those of the documents it names in `source_policy_documents`, followed to the
/// end (`stage_common[each.key]`, the data key's).
fn task_policy(tf: &Terraform, stage: &str) -> Vec<Statement> {
    let mut blocks = Vec::new();
    policy_blocks(tf, "task", Some(stage), &mut blocks);
    blocks
        .into_iter()
        .flat_map(|(doc, block)| read_statements(tf, &doc, [block]))
        .collect()
}

/// The statement blocks of a policy document (of its instance `key`, or of each instance) as
/// the provider receives them, then those of the documents named in its
/// `source_policy_documents`, followed to the end; each with the name of its document.
fn policy_blocks(tf: &Terraform, doc: &str, key: Option<&str>, out: &mut Vec<(String, Block)>) {
    let block = tf
        .data("aws_iam_policy_document", doc)
        .unwrap_or_else(|| panic!("data.aws_iam_policy_document.{doc} is missing"));
    for (name, scope) in document_instances(tf, doc, block, key) {
        out.extend(
            tf.expand(block, "statement", &scope)
                .into_iter()
                .map(|statement| (name.clone(), statement)),
        );
        let Some(sources) = attr(block, "source_policy_documents") else {
            continue;
        };
        let sources = match substitute(sources, &scope) {
            Expression::Array(items) => items,
            single => vec![single],
        };
        for source in sources {
            // data.aws_iam_policy_document.<name>[<key>].json, or <name>[*].json
            let named = match &source {
                Expression::Traversal(traversal) => {
                    match (&traversal.expr, traversal.operators.as_slice()) {
                        (
                            Expression::Variable(root),
                            [
                                TraversalOperator::GetAttr(kind),
                                TraversalOperator::GetAttr(source_doc),
                                rest @ ..,
                            ],
                        ) if root.as_str() == "data"
                            && kind.as_str() == "aws_iam_policy_document" =>
                        {
                            let key = rest.iter().find_map(|op| match op {
                                TraversalOperator::Index(Expression::String(key)) => {
                                    Some(key.clone())
                                }
                                _ => None,
                            });
                            Some((source_doc.to_string(), key))
                        }
                        _ => None,
                    }
                }
                _ => None,
            };
            let (source_doc, source_key) = named.unwrap_or_else(|| {
                panic!("{name}: source_policy_documents names {}", text(&source))
            });
            policy_blocks(tf, &source_doc, source_key.as_deref(), out);
        }
    }
}

/// The instances of a policy document to read, with their names and the scope their
/// statements are read in: the document itself, nothing bound, when it has no `for_each` (or
/// one that needs a plan); else each instance (only `key`'s, when given), `each` bound.
fn document_instances(
    tf: &Terraform,
    doc: &str,
    block: &Block,
    key: Option<&str>,
) -> Vec<(String, Vec<(String, Expression)>)> {
    let Some(instances) = attr(block, "for_each").and_then(|e| tf.instances(e, &[])) else {
        return vec![(doc.to_owned(), Vec::new())];
    };
    let found: Vec<_> = instances
        .into_iter()
        .filter(|(instance, _)| key.is_none_or(|key| key == instance))
        .map(|(instance, value)| {
            let name = format!("{doc}[\"{instance}\"]");
            (name, vec![("each".to_owned(), key_value(instance, value))])
        })
        .collect();
    assert!(!found.is_empty(), "{doc} has no instance {key:?}");
    found
}

/// Statement blocks of a document, as read: effect, actions, resources.
fn read_statements(
    tf: &Terraform,
    doc: &str,
    blocks: impl IntoIterator<Item = Block>,
) -> Vec<Statement> {
    let mut found = Vec::new();
    for statement in blocks {
        let effect = attr(&statement, "effect")
            .map(|e| string(e).expect("effect is a literal").to_owned())
            .unwrap_or_else(|| "Allow".into());
        assert!(
            attr(&statement, "not_actions").is_none()
                && attr(&statement, "not_resources").is_none(),
            "{doc}: not_actions/not_resources grant everything else"
        );
        let actions_expr = attr(&statement, "actions")
            .unwrap_or_else(|| panic!("{doc}: statement without actions"));
        let mut resources = Vec::new();
        if let Some(expr) = attr(&statement, "resources") {
            flatten_resources(tf, expr, &mut resources);
        }
        // Actions chosen by a condition that cannot be decided: a statement for each choice.
        for choice in choices(actions_expr) {
            let actions = string_list(tf.resolve(choice)).unwrap_or_else(|| {
                panic!(
                    "{doc}: actions must be literal strings: {}",
                    text(actions_expr)
                )
            });
            found.push((doc.to_owned(), effect.clone(), actions, resources.clone()));
        }
    }
    found
}

/// The branches a conditional expression may take: the one its condition decides (once the
/// variables it tests are bound, it is literals), else both, recursively. Any other expression
/// is its own only choice.
fn choices(expr: &Expression) -> Vec<&Expression> {
    let Expression::Conditional(cond) = expr else {
        return vec![expr];
    };
    match render(&cond.cond_expr, &[]) {
        Ok(hcl::Value::Bool(true)) => choices(&cond.true_expr),
        Ok(hcl::Value::Bool(false)) => choices(&cond.false_expr),
        _ => [choices(&cond.true_expr), choices(&cond.false_expr)].concat(),
    }
}

/// `each` for one stage of `local.stages`: `{ key = <stage>, value = { service, next } }`.
fn each(tf: &Terraform, stage: &str) -> (String, Expression) {
    let stages = object_entries(tf.local("stages").expect("local.stages")).expect("an object");
    let def = stages
        .get(stage)
        .unwrap_or_else(|| panic!("no stage {stage}"));
    (
        "each".to_owned(),
        key_value(stage.to_owned(), (*def).clone()),
    )
}

/// The places a `resources` expression names, as texts: lists, `concat(...)` and conditionals
/// are taken apart (a decided conditional gives its branch, else both).
fn flatten_resources(tf: &Terraform, expr: &Expression, out: &mut Vec<String>) {
    // A local is followed when it holds a list, or when it is a named entry of a local object
    // that is one place (`local.prefix_objects.parsed`); otherwise its name is what the place
    // is (`local.raw_bucket_arn`, `local.glue_resources.raw_api_responses`).
    let entry = matches!(expr, Expression::Traversal(t) if t.operators.len() > 1);
    let resolved = match tf.resolve(expr) {
        list @ (Expression::Array(_) | Expression::FuncCall(_)) => list,
        _ => match tf.local_value(expr).filter(|_| entry) {
            Some(place @ (Expression::String(_) | Expression::TemplateExpr(_))) => place,
            _ => expr,
        },
    };
    match resolved {
        Expression::Array(items) => items
            .iter()
            .for_each(|item| flatten_resources(tf, item, out)),
        Expression::FuncCall(call) if call.name.name.to_string() == "concat" => {
            call.args
                .iter()
                .for_each(|arg| flatten_resources(tf, arg, out));
        }
        Expression::Conditional(_) => choices(resolved)
            .into_iter()
            .for_each(|choice| flatten_resources(tf, choice, out)),
        other => out.push(text(other)),
    }
}

#[test]
fn no_allow_statement_grants_a_wildcard_action() {
    let tf = terraform();
    let statements = statements(&tf, None);
    assert!(
        statements.len() >= 20,
        "the policy documents were not found"
    );
    // Actions whose resource AWS defines as "*" (no resource-level permissions).
    let account_wide = [
        "ecr:GetAuthorizationToken",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    ];
    // In a key policy, resource "*" is the key itself: the documents a key's policy is made of.
    let mut key_policy_blocks = Vec::new();
    for (name, block) in tf.resources_of_type("aws_kms_key") {
        let policy = text(attr(block, "policy").unwrap());
        let doc = policy
            .strip_prefix("data.aws_iam_policy_document.")
            .and_then(|rest| rest.split(['[', '.']).next())
            .unwrap_or_else(|| panic!("aws_kms_key.{name}: policy {policy}"));
        policy_blocks(&tf, doc, None, &mut key_policy_blocks);
    }
    let key_policies: BTreeSet<String> =
        key_policy_blocks.into_iter().map(|(doc, _)| doc).collect();
    for (doc, effect, actions, resources) in &statements {
        // A Deny may be broad: the bucket policies deny every action without TLS.
        if effect == "Deny" {
            continue;
        }
        assert_eq!(effect, "Allow", "{doc}");
        for action in actions {
            let (service, name) = action
                .split_once(':')
                .unwrap_or_else(|| panic!("{doc}: {action}"));
            assert!(
                !service.is_empty() && !name.is_empty() && !action.contains('*'),
                "{doc}: wildcard action {action:?}"
            );
        }
        if resources.iter().any(|r| r == "\"*\"") && !key_policies.contains(doc) {
            assert!(
                actions.iter().all(|a| account_wide.contains(&a.as_str())),
                "{doc}: resource \"*\" for {actions:?}"
            );
        }
    }

    // Policies come only from these documents: no inline JSON, no AWS-managed policies. The
    // module's own managed policies (the per-table Glue lists, too long for inline policies)
    // are documents too, attached only to the task roles.
    assert!(tf.resources_of_type("aws_iam_policy_attachment").is_empty());
    let own_policies: BTreeSet<String> = tf
        .resources_of_type("aws_iam_policy")
        .into_iter()
        .map(|(name, block)| {
            let policy = text(attr(block, "policy").unwrap());
            assert!(
                policy.starts_with("data.aws_iam_policy_document."),
                "aws_iam_policy.{name}: {policy}"
            );
            format!("aws_iam_policy.{name}[each.key].arn")
        })
        .collect();
    for (name, block) in tf.resources_of_type("aws_iam_role_policy_attachment") {
        let arn = text(attr(block, "policy_arn").unwrap());
        assert!(
            own_policies.contains(&arn),
            "aws_iam_role_policy_attachment.{name} attaches {arn}, not one of the module's documents"
        );
        assert!(
            text(attr(block, "role").unwrap()).starts_with("aws_iam_role.task["),
            "aws_iam_role_policy_attachment.{name}: only task roles get managed policies"
        );
    }
    for (name, block) in tf.resources_of_type("aws_iam_role_policy") {
        // A policy chosen per instance (`each.value.policy`) is read for every instance.
        let scopes = match attr(block, "for_each").map(text).as_deref() {
            None | Some("local.stages") => vec![Vec::new()],
            Some(_) => instances(&tf, "aws_iam_role_policy", name)
                .into_values()
                .collect(),
        };
        for scope in scopes {
            let policy = text(&instance_attr(block, "policy", &scope));
            assert!(
                policy.starts_with("data.aws_iam_policy_document."),
                "aws_iam_role_policy.{name}: {policy}"
            );
        }
    }
}

/// The per-table Glue grants of one stage (`local.glue_table_lists`, made into managed
/// policies): `("publish", "glue:raw_tables")` = the pipeline's `<table>` tables in the raw zone.
fn glue_table_grants(tf: &Terraform, stage: &str) -> BTreeSet<(String, String)> {
    let lists = object_entries(
        tf.local("glue_table_lists")
            .expect("local.glue_table_lists"),
    )
    .expect("glue_table_lists is an object by stage");
    let Some(list) = lists.get(stage) else {
        return BTreeSet::new();
    };
    let Expression::Array(items) = list else {
        panic!("glue_table_lists.{stage} must be a list");
    };
    items
        .iter()
        .map(|item| {
            let entries = object_entries(item).expect("{ access, zone }");
            let access = string(entries["access"]).expect("a literal access");
            let zone = string(entries["zone"]).expect("a literal zone");
            assert!(["read", "publish"].contains(&access), "{stage}: {access}");
            assert!(["raw", "refined"].contains(&zone), "{stage}: {zone}");
            (access.to_owned(), format!("glue:{zone}_tables"))
        })
        .collect()
}

/// What one stage's task role may do with objects and tables, as (grant, place) pairs.
fn grants(tf: &Terraform, stage: &str) -> BTreeSet<(String, String)> {
    let mut grants = glue_table_grants(tf, stage);
    let next = stages(tf).remove(stage).and_then(|(_, next)| next);
    for (_doc, effect, actions, resources) in task_policy(tf, stage) {
        if effect != "Allow" {
            continue;
        }
        let has = |a: &str| actions.iter().any(|x| x == a);
        for resource in &resources {
            let place = place(resource, stage, next.as_deref());
            let grant = if has("s3:DeleteObject") && has("s3:PutObject") {
                "write"
            } else if has("s3:PutObject") {
                "put"
            } else if has("s3:GetObject") {
                "read"
            } else if has("s3:ListBucket") {
                "list"
            } else if has("glue:CreatePartition") {
                "publish"
            } else if has("glue:GetPartitions") {
                "read"
            } else if has("secretsmanager:GetSecretValue") {
                "secret"
            } else if has("sqs:ReceiveMessage") {
                "consume"
            } else if has("sqs:SendMessage") {
                "send"
            } else {
                continue;
            };
            grants.insert((grant.to_owned(), place));
        }
    }
    grants
}

/// A resource expression of one stage's policy reduced to what it names: `raw:api_responses`,
/// `glue:refined`, `queue:next` (the queue of the stage after `stage`), ...
fn place(resource: &str, stage: &str, next: Option<&str>) -> String {
    let queue =
        |kind: &str, stage: &str| resource.contains(&format!("aws_sqs_queue.{kind}[\"{stage}\"]"));
    let bucket = if resource.contains("local.raw_bucket_arn") {
        "raw"
    } else if resource.contains("local.refined_bucket_arn") {
        "refined"
    } else if resource.contains("local.glue_resources.") {
        return format!("glue:{}", resource.rsplit('.').next().unwrap_or_default());
    } else if queue("stage", stage) {
        return "queue:own".into();
    } else if next.is_some_and(|next| queue("stage", next)) {
        return "queue:next".into();
    } else if queue("dead_letter", stage) {
        return "queue:dead-letter".into();
    } else {
        return resource.to_owned();
    };
    match resource.split_once("local.prefixes.") {
        None => bucket.to_owned(),
        Some((_, rest)) => {
            let key: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `${local.prefixes.data_quality}parse/*`: the stage's own folder of results.
            let sub: String = rest[key.len()..]
                .trim_start_matches('}')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if sub.is_empty() {
                format!("{bucket}:{key}")
            } else {
                format!("{bucket}:{key}/{sub}")
            }
        }
    }
}

#[test]
fn task_roles_reach_only_their_own_prefixes_queues_and_databases() {
    let tf = terraform();
    let set = |items: &[(&str, &str)]| -> BTreeSet<(String, String)> {
        items
            .iter()
            .map(|(g, p)| ((*g).to_owned(), (*p).to_owned()))
            .collect()
    };
    // Every stage: its own queue, its dead-letter queue, and the column-type dictionary (the
    // one object of dictionary.tf, read at start-up).
    let queues = [
        ("consume", "queue:own"),
        ("send", "queue:dead-letter"),
        ("read", "local.column_type_dictionary_arn"),
    ];
    let expected = [
        (
            "ingest",
            set(&[
                ("list", "raw"),
                ("write", "raw:api_responses"),
                ("write", "raw:ingest_state"),
                ("publish", "glue:raw_api_responses"),
                ("secret", "var.tascomi_api_secret_arn"),
                ("send", "queue:next"),
            ]),
        ),
        (
            "parse",
            set(&[
                ("list", "raw"),
                ("list", "refined"),
                ("read", "raw:api_responses"),
                ("write", "raw:parsed"),
                ("put", "refined:data_quality/parse"),
                ("read", "glue:raw_api_responses"),
                ("publish", "glue:raw_tables"),
                ("send", "queue:next"),
            ]),
        ),
        (
            "recast",
            set(&[
                ("list", "raw"),
                ("list", "refined"),
                ("read", "raw:parsed"),
                ("write", "refined:increment"),
                ("put", "refined:data_quality/recast"),
                ("read", "glue:raw_tables"),
                ("publish", "glue:refined_increments"),
                ("send", "queue:next"),
            ]),
        ),
        (
            "snapshot",
            set(&[
                ("list", "refined"),
                ("read", "refined:increment"),
                ("write", "refined:snapshot"),
                ("put", "refined:data_quality/snapshot"),
                ("read", "glue:raw_api_responses"),
                ("read", "glue:raw_tables"),
                ("read", "glue:refined_increments"),
                ("publish", "glue:refined_tables"),
            ]),
        ),
    ];
    for (stage, mut want) in expected {
        want.extend(set(&queues));
        assert_eq!(grants(&tf, stage), want, "grants of the {stage} task role");
    }
}

#[test]
fn buckets_are_encrypted_private_and_tls_only() {
    let tf = terraform();
    let buckets = tf.resources_of_type("aws_s3_bucket");
    assert!(!buckets.is_empty(), "no aws_s3_bucket");
    for (name, _) in buckets {
        let reference = format!("aws_s3_bucket.{name}");
        let companion = |rtype: &str| {
            tf.resources_of_type(rtype)
                .into_iter()
                .find(|(_, block)| {
                    attr(block, "for_each").is_some_and(|e| text(e).contains(&reference))
                })
                .map(|(_, block)| block)
                .unwrap_or_else(|| panic!("{reference} has no {rtype}"))
        };

        let sse = companion("aws_s3_bucket_server_side_encryption_configuration");
        let default = &nested(
            nested(sse, "rule")[0],
            "apply_server_side_encryption_by_default",
        )[0];
        assert_eq!(
            string(attr(default, "sse_algorithm").unwrap()),
            Some("aws:kms")
        );

        let public = companion("aws_s3_bucket_public_access_block");
        for flag in [
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        ] {
            assert_eq!(
                attr(public, flag),
                Some(&Expression::Bool(true)),
                "{reference}: {flag}"
            );
        }

        let ownership = companion("aws_s3_bucket_ownership_controls");
        let rule = &nested(ownership, "rule")[0];
        assert_eq!(
            string(attr(rule, "object_ownership").unwrap()),
            Some("BucketOwnerEnforced")
        );

        let policy = companion("aws_s3_bucket_policy");
        let doc_ref = text(attr(policy, "policy").unwrap());
        let doc_name = doc_ref
            .strip_prefix("data.aws_iam_policy_document.")
            .and_then(|rest| rest.split('[').next())
            .unwrap_or_else(|| panic!("{reference}: policy {doc_ref}"));
        let doc = tf.data("aws_iam_policy_document", doc_name).unwrap();
        let tls = nested(doc, "statement").into_iter().any(|statement| {
            attr(statement, "effect").and_then(string) == Some("Deny")
                && nested(statement, "condition").iter().any(|condition| {
                    attr(condition, "variable").and_then(string) == Some("aws:SecureTransport")
                        && attr(condition, "values").and_then(string_list)
                            == Some(vec!["false".into()])
                })
        });
        assert!(
            tls,
            "{reference}: the policy must deny requests without TLS"
        );
    }
}

/// The service's container definition in the stage task definitions:
/// `jsonencode(concat([merge({ service }, <dependsOn or null>)], <the collector or nothing>))`.
fn container(tf: &Terraform) -> BTreeMap<String, Expression> {
    let task_def = tf.resource("aws_ecs_task_definition", "stage").unwrap();
    let args = func_call(
        attr(task_def, "container_definitions").unwrap(),
        "jsonencode",
    )
    .expect("container_definitions = jsonencode(...)");
    let parts = func_call(&args[0], "concat").expect("jsonencode(concat([service], sidecars))");
    assert_eq!(parts.len(), 2, "the service, then the optional sidecars");
    assert_eq!(
        text(&parts[1]),
        "local.trace_collector_containers[each.key]",
        "the only other container is the optional trace collector"
    );
    let Expression::Array(containers) = &parts[0] else {
        panic!("a list holding the service's container");
    };
    assert_eq!(containers.len(), 1, "one service container per task");
    let service = match func_call(&containers[0], "merge") {
        Some(merged) => {
            // merge({ service }, var.enable_trace_collector ? { dependsOn = ... } : null)
            assert_eq!(merged.len(), 2);
            let extra = text(&merged[1]);
            assert!(
                extra.starts_with("var.enable_trace_collector ?") && extra.contains("dependsOn"),
                "{extra}"
            );
            &merged[0]
        }
        None => &containers[0],
    };
    object_entries(service)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v.clone()))
        .collect()
}

#[test]
fn tasks_run_on_fargate_as_non_root_read_only_with_logs_and_a_stop_timeout() {
    let tf = terraform();
    let task_def = tf.resource("aws_ecs_task_definition", "stage").unwrap();
    assert_eq!(
        attr(task_def, "requires_compatibilities").and_then(string_list),
        Some(vec!["FARGATE".into()])
    );
    let container = container(&tf);
    assert_eq!(
        string(&container["user"]),
        Some("10001:10001"),
        "the image's non-root user"
    );
    assert_eq!(container["readonlyRootFilesystem"], Expression::Bool(true));
    assert_eq!(text(&container["stopTimeout"]), "var.stop_timeout_secs");
    assert!(text(&container["command"]).contains("each.value.service"));
    assert!(text(&container["environment"]).contains("local.environment[each.key]"));
    let logs = object_entries(&container["logConfiguration"]).unwrap();
    assert_eq!(string(logs["logDriver"]), Some("awslogs"));
    assert!(text(logs["options"]).contains("aws_cloudwatch_log_group.stage[each.key].name"));

    // Fargate gives at most 120 s; the services get 10 s less to finish their messages.
    let stop = tf
        .blocks("variable")
        .find(|b| infra_check::labels(b) == ["stop_timeout_secs"])
        .unwrap();
    let default: u64 = text(attr(stop, "default").unwrap()).parse().unwrap();
    assert!(default <= 120);
    let common_env = object_entries(tf.local("common_environment").unwrap()).unwrap();
    assert_eq!(
        text(common_env["TASCOMI_SHUTDOWN_GRACE_SECS"]),
        "tostring(var.stop_timeout_secs - 10)"
    );
}

#[test]
fn services_scale_on_their_queue_down_to_zero() {
    let tf = terraform();
    let target = tf.resource("aws_appautoscaling_target", "stage").unwrap();
    assert_eq!(text(attr(target, "min_capacity").unwrap()), "0");
    assert!(
        text(attr(target, "resource_id").unwrap()).contains("aws_ecs_service.stage[each.key].name")
    );

    let service = tf.resource("aws_ecs_service", "stage").unwrap();
    assert_eq!(text(attr(service, "desired_count").unwrap()), "0");
    let lifecycle = &nested(service, "lifecycle")[0];
    assert!(
        text(attr(lifecycle, "ignore_changes").unwrap()).contains("desired_count"),
        "scaling owns the count"
    );

    // Per stage: scaling out adds a task, two above the backlog; scaling in sets exactly zero.
    let policy = tf.resource("aws_appautoscaling_policy", "step").unwrap();
    let policies = instances(&tf, "aws_appautoscaling_policy", "step");
    for stage in STAGES {
        for (kind, adjustment_type, adjustments) in [
            ("scale-out", "ChangeInCapacity", vec!["1", "2"]),
            ("scale-in", "ExactCapacity", vec!["0"]),
        ] {
            let scope = &policies[&format!("{stage}-{kind}")];
            let config = &tf.expand(policy, "step_scaling_policy_configuration", scope)[0];
            assert_eq!(
                string(attr(config, "adjustment_type").unwrap()),
                Some(adjustment_type),
                "{stage}-{kind}"
            );
            let steps: Vec<String> = tf
                .expand(config, "step_adjustment", scope)
                .iter()
                .map(|step| text(attr(step, "scaling_adjustment").unwrap()))
                .collect();
            assert_eq!(steps, adjustments, "{stage}-{kind}");
        }

        // Each stage's alarms watch its queue and trigger its own policies.
        let scope = [each(&tf, stage)];
        for (alarm, kind) in [("queue_busy", "scale-out"), ("queue_idle", "scale-in")] {
            let block = tf.resource("aws_cloudwatch_metric_alarm", alarm).unwrap();
            let actions: String = text(&instance_attr(block, "alarm_actions", &scope))
                .split_whitespace()
                .collect();
            assert_eq!(
                actions,
                format!("[aws_appautoscaling_policy.step[\"{stage}-{kind}\"].arn]"),
                "{stage}: {alarm}"
            );
            let mut body = String::new();
            if attr(block, "dimensions").is_some() {
                body.push_str(&text(&instance_attr(block, "dimensions", &scope)));
            }
            for query in tf.expand(block, "metric_query", &scope) {
                for metric in nested(&query, "metric") {
                    body.push_str(&text(attr(metric, "dimensions").unwrap()));
                }
            }
            assert!(
                body.contains(&format!("aws_sqs_queue.stage[\"{stage}\"].name")),
                "{stage}: {alarm} watches the stage queue"
            );
        }
    }
    // Idle means nothing visible and nothing in flight: a working task is never scaled away.
    let idle = tf
        .resource("aws_cloudwatch_metric_alarm", "queue_idle")
        .unwrap();
    let metrics: BTreeSet<String> = tf
        .expand(idle, "metric_query", &[each(&tf, "parse")])
        .iter()
        .flat_map(|q| nested(q, "metric"))
        .filter_map(|m| attr(m, "metric_name").and_then(string).map(str::to_owned))
        .collect();
    assert!(metrics.contains("ApproximateNumberOfMessagesVisible"));
    assert!(metrics.contains("ApproximateNumberOfMessagesNotVisible"));
}

#[test]
fn alarms_watch_every_dead_letter_queue_and_the_oldest_message() {
    let tf = terraform();
    let block = tf
        .resource("aws_cloudwatch_metric_alarm", "queue")
        .expect("aws_cloudwatch_metric_alarm.queue");
    let alarms = instances(&tf, "aws_cloudwatch_metric_alarm", "queue");
    for stage in STAGES {
        for (kind, metric, queue) in [
            (
                "dead-letters",
                "ApproximateNumberOfMessagesVisible",
                "dead_letter",
            ),
            ("oldest-message", "ApproximateAgeOfOldestMessage", "stage"),
        ] {
            let alarm = format!("{stage}-{kind}");
            let scope = &alarms[&alarm];
            assert_eq!(
                string(&instance_attr(block, "metric_name", scope)),
                Some(metric),
                "{alarm}"
            );
            assert!(
                text(&instance_attr(block, "dimensions", scope))
                    .contains(&format!("aws_sqs_queue.{queue}[\"{stage}\"].name")),
                "{alarm} watches the {stage} {queue} queue"
            );
            assert_eq!(
                string(&instance_attr(block, "comparison_operator", scope)),
                Some("GreaterThanThreshold")
            );
            let actions: String = text(&instance_attr(block, "alarm_actions", scope))
                .split_whitespace()
                .collect();
            assert_eq!(actions, "[local.alarm_topic_arn]", "{alarm}");
            // Named as before the alarms were one resource: <name>-<stage>-<kind>.
            let mut vars = scope_values(scope);
            vars.push(("local", object(&[("name", "council-prod")])));
            assert_eq!(
                render(attr(block, "alarm_name").unwrap(), &vars).unwrap(),
                hcl::Value::from(format!("council-prod-{alarm}"))
            );
        }
        assert_eq!(
            text(&instance_attr(
                block,
                "threshold",
                &alarms[&format!("{stage}-dead-letters")]
            )),
            "0",
            "one dead letter is one too many"
        );
    }
}

#[test]
fn outputs_name_queues_buckets_and_athena_databases() {
    let tf = terraform();
    let outputs: BTreeSet<&str> = tf
        .blocks("output")
        .filter_map(|b| b.labels().first().map(|l| l.as_str()))
        .collect();
    for name in [
        "queue_urls",
        "dead_letter_queue_urls",
        "raw_bucket",
        "refined_bucket",
        "athena_databases",
    ] {
        assert!(outputs.contains(name), "output {name} is missing");
    }
}

/// The environment names of one stage's task definition: local.environment merges the common
/// names, the queue names and the stage's own.
fn terraform_environment(tf: &Terraform, stage: &str) -> BTreeSet<String> {
    let Expression::ForExpr(environment) = tf.local("environment").expect("local.environment")
    else {
        panic!("local.environment must be a for expression over the stages");
    };
    assert_eq!(text(&environment.collection_expr), "local.stages");
    let parts = func_call(&environment.value_expr, "merge").expect("merge(...)");
    let mut names = BTreeSet::new();
    for part in parts {
        let keys = match part {
            Expression::Object(_) => object_keys(part),
            Expression::Traversal(traversal) => {
                let root = text(&traversal.expr);
                match (root.as_str(), traversal.operators.as_slice()) {
                    ("local", [TraversalOperator::GetAttr(name)]) => {
                        object_keys(tf.local(name.as_str()).unwrap())
                    }
                    (
                        "local",
                        [
                            TraversalOperator::GetAttr(name),
                            TraversalOperator::Index(_),
                        ],
                    ) => {
                        let per_stage = object_entries(tf.local(name.as_str()).unwrap()).unwrap();
                        object_keys(per_stage[stage])
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        names.extend(keys.unwrap_or_else(|| panic!("cannot read the names of {}", text(part))));
    }
    names
}

/// The names every stage must be given, and those of one stage only.
fn required_environment(stage: &str) -> Vec<&'static str> {
    let mut required = vec![
        "TASCOMI_QUEUE_URL",
        "TASCOMI_DEAD_LETTER_QUEUE_URL",
        "TASCOMI_RAW_BUCKET",
        "TASCOMI_REFINED_BUCKET",
        "TASCOMI_DATABASE_PREFIX",
        "TASCOMI_PIPELINE_FILE",
        "TASCOMI_COLUMN_TYPE_DICTIONARY",
        "TASCOMI_LOG_FORMAT",
        "AWS_REGION",
    ];
    match stage {
        "ingest" => required.extend([
            "TASCOMI_NEXT_QUEUE_URL",
            "TASCOMI_API_BASE_URL",
            "TASCOMI_API_SECRET_ID",
        ]),
        "parse" => required.push("TASCOMI_NEXT_QUEUE_URL"),
        "recast" => required.push("TASCOMI_NEXT_QUEUE_URL"),
        _ => {}
    }
    required
}

#[test]
fn task_definition_environment_is_what_the_services_read() {
    let tf = terraform();
    let root = workspace_root();
    let read = env_names_read_by_sources(&root, &root.join("tests/infra-check")).unwrap();
    assert!(
        read.contains("TASCOMI_QUEUE_URL"),
        "the sources were not scanned: {read:?}"
    );
    for stage in STAGES {
        let set = terraform_environment(&tf, stage);
        for name in set.iter().filter(|n| n.starts_with("TASCOMI_")) {
            assert!(
                read.contains(name),
                "{stage}: {name} is set but no crate reads it"
            );
        }
        for name in required_environment(stage) {
            assert!(set.contains(name), "{stage}: {name} is not set");
        }
    }
}

#[test]
fn terraform_is_formatted() {
    let infra = workspace_root().join("infra");
    let output = match Command::new("terraform")
        .args(["fmt", "-check", "-recursive", "-diff"])
        .arg(&infra)
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
    {
        Ok(output) => output,
        Err(err) => {
            eprintln!("skipped: terraform is not on PATH ({err})");
            return;
        }
    };
    assert!(
        output.status.success(),
        "terraform fmt -check found unformatted files (run `terraform fmt -recursive infra`):\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alarm_topic_is_encrypted_with_a_key_alarms_and_eventbridge_may_use() {
    let tf = terraform();
    let topic = tf
        .resource("aws_sns_topic", "alarms")
        .expect("aws_sns_topic.alarms");
    let key = text(attr(topic, "kms_master_key_id").unwrap());
    assert!(
        !key.contains("alias/aws/sns"),
        "CloudWatch alarms cannot publish to a topic under aws/sns: {key}"
    );
    assert!(key.contains("aws_kms_key.alarms[0].arn"), "{key}");
    let kms_key = tf
        .resource("aws_kms_key", "alarms")
        .expect("aws_kms_key.alarms");
    assert_eq!(
        attr(kms_key, "enable_key_rotation"),
        Some(&Expression::Bool(true))
    );
    let publishers = string_list(tf.local("alarm_publishers").unwrap()).unwrap();
    assert_eq!(
        publishers,
        ["cloudwatch.amazonaws.com", "events.amazonaws.com"]
    );
    // The key's policy, with the documents it takes statements from.
    let mut key_policy = Vec::new();
    policy_blocks(&tf, "alarm_key", None, &mut key_policy);
    let grants_publishers = key_policy.iter().any(|(_, statement)| {
        nested(statement, "principals")
            .iter()
            .any(|p| text(attr(p, "identifiers").unwrap()) == "local.alarm_publishers")
            && string_list(attr(statement, "actions").unwrap())
                == Some(vec!["kms:Decrypt".into(), "kms:GenerateDataKey".into()])
    });
    assert!(
        grants_publishers,
        "the key policy lets the publishers use the key"
    );
    let admin = string_list(tf.local("kms_key_admin_actions").unwrap()).unwrap();
    assert!(
        admin.contains(&"kms:PutKeyPolicy".to_owned()),
        "no lock-out"
    );
}

#[test]
fn every_table_has_a_freshness_alarm_and_every_alarm_reaches_the_topic() {
    let tf = terraform();
    let freshness = tf
        .resource("aws_cloudwatch_metric_alarm", "snapshot_freshness")
        .expect("aws_cloudwatch_metric_alarm.snapshot_freshness");
    assert_eq!(text(attr(freshness, "for_each").unwrap()), "local.tables");
    assert_eq!(
        attr(freshness, "metric_name").and_then(string),
        Some("SnapshotAgeHours")
    );
    assert_eq!(
        attr(freshness, "namespace").and_then(string),
        Some("Tascomi")
    );
    assert_eq!(
        attr(freshness, "treat_missing_data").and_then(string),
        Some("breaching"),
        "no report at all is stale"
    );
    assert_eq!(
        common::metrics::NAMESPACE,
        "Tascomi",
        "the namespace the services emit"
    );

    // Every alarm other than the scaling ones notifies the topic.
    for (name, block) in tf.resources_of_type("aws_cloudwatch_metric_alarm") {
        if ["queue_busy", "queue_idle"].contains(&name) {
            continue;
        }
        let actions = text(attr(block, "alarm_actions").unwrap());
        assert!(
            actions.contains("local.alarm_topic_arn"),
            "alarm {name} notifies nobody: {actions}"
        );
    }
    for (name, block) in tf.resources_of_type("aws_cloudwatch_event_target") {
        let arn = text(attr(block, "arn").unwrap());
        assert!(
            arn.contains("local.alarm_topic_arn") || arn.contains("api_destination"),
            "event target {name}: {arn}"
        );
    }
}

#[test]
fn the_read_only_role_changes_nothing_and_the_operator_role_only_what_the_commands_need() {
    let tf = terraform();
    for (doc, _effect, actions, _resources) in statements(&tf, None) {
        if doc == "read_only" {
            for action in &actions {
                let name = action.split_once(':').unwrap().1;
                assert!(
                    !["Delete", "Put", "Send", "Create", "Update"]
                        .iter()
                        .any(|verb| name.starts_with(verb)),
                    "read_only may {action}"
                );
            }
        }
        if doc == "operator" {
            for action in &actions {
                assert!(
                    [
                        "sqs:SendMessage",
                        "sqs:ReceiveMessage",
                        "sqs:DeleteMessage",
                        "sqs:ChangeMessageVisibility",
                        "glue:DeletePartition",
                        "glue:BatchDeletePartition",
                        "s3:DeleteObject",
                        "kms:GenerateDataKey",
                        // adopt: register partitions (and a table the crawlers did not make),
                        // write the derived ingest state; retype: set a column's type.
                        "glue:CreateTable",
                        "glue:UpdateTable",
                        "glue:CreatePartition",
                        "glue:UpdatePartition",
                        "s3:PutObject",
                    ]
                    .contains(&action.as_str()),
                    "operator: {action} is more than the operator commands need"
                );
            }
        }
    }
    let operator = tf.data("aws_iam_policy_document", "operator").unwrap();
    let sources: String = text(attr(operator, "source_policy_documents").unwrap())
        .split_whitespace()
        .collect();
    assert_eq!(sources, "[data.aws_iam_policy_document.read_only.json]");
}

#[test]
fn the_module_has_no_provider_and_the_example_calls_it_with_a_partial_backend_and_a_lock_file() {
    let module = terraform();
    assert_eq!(
        module.blocks("provider").count(),
        0,
        "a module with a provider block cannot be called with the caller's provider"
    );
    let versions = module
        .blocks("terraform")
        .next()
        .expect("a terraform block");
    let providers = &nested(versions, "required_providers")[0];
    let aws = object_entries(attr(providers, "aws").unwrap()).unwrap();
    let range = string(aws["version"]).unwrap();
    assert!(range.contains("< 6.0"), "the tested major only: {range}");

    let example = Terraform::load(&infra_check::example_dir()).expect("infra/envs/example");
    let call = example
        .blocks("module")
        .next()
        .expect("the example calls the module");
    assert_eq!(
        attr(call, "source").and_then(string),
        Some("../../modules/tascomi-pipeline")
    );
    let settings = example.blocks("terraform").next().unwrap();
    let backend = &nested(settings, "backend")[0];
    assert_eq!(infra_check::labels(backend), ["s3"]);
    assert!(
        backend.body().attributes().next().is_none(),
        "a partial backend: its settings come from -backend-config"
    );

    let lock = std::fs::read_to_string(infra_check::example_dir().join(".terraform.lock.hcl"))
        .expect("infra/envs/example/.terraform.lock.hcl is committed");
    let version = lock
        .lines()
        .find_map(|l| l.trim().strip_prefix("version"))
        .and_then(|r| r.split('"').nth(1))
        .expect("a locked provider version");
    assert!(version.starts_with("5."), "locked {version}");
    assert!(
        lock.contains("h1:"),
        "the lock file records the provider's checksum"
    );
}

#[test]
fn the_services_never_create_the_databases_the_module_creates() {
    let tf = terraform();
    assert!(
        tf.resource("aws_glue_catalog_database", "zone").is_some(),
        "the module creates the Glue databases"
    );
    let common_env = object_entries(tf.local("common_environment").unwrap()).unwrap();
    assert_eq!(
        common_env
            .get("TASCOMI_MANAGE_DATABASES")
            .and_then(|e| string(e)),
        Some("false"),
        "the services must be told that Terraform manages the databases"
    );
    let write = string_list(tf.local("glue_write_actions").unwrap()).unwrap();
    assert!(
        write.contains(&"glue:GetDatabase".to_owned()),
        "with managed databases a publishing service checks its database exists (GetDatabase)"
    );
    for stage in STAGES {
        for (doc, _, actions, _) in statements(&tf, Some(stage)) {
            assert!(
                !actions.iter().any(|a| a == "glue:CreateDatabase"),
                "{doc}: no role may create a Glue database"
            );
        }
    }
}

/// The per-table managed policies are made from `local.glue_table_lists` and the pipeline
/// file's tables (by name, no pattern), attached to the stage's own role; the prefixed layers
/// are reached by their name pattern only.
#[test]
fn glue_grants_name_the_tables_of_the_pipeline_file() {
    let tf = terraform();
    let glue_resources = object_entries(tf.local("glue_resources").unwrap()).unwrap();
    for (key, pattern) in [
        ("raw_api_responses", "api_response_*"),
        ("refined_increments", "increment_*"),
    ] {
        let resources = text(glue_resources[key]);
        assert!(
            resources.contains(&format!("}}{pattern}\"")),
            "{key}: {resources}"
        );
    }
    assert!(
        text(tf.local("pipeline_table_names").unwrap()).contains("local.tables"),
        "the per-table lists are the pipeline file's tables"
    );
    let policies = text(tf.local("glue_table_policies").unwrap());
    for part in [
        "local.glue_table_lists",
        "chunklist(local.pipeline_table_names, local.glue_tables_per_policy)",
    ] {
        assert!(policies.contains(part), "glue_table_policies: {policies}");
    }

    let doc = tf
        .data("aws_iam_policy_document", "glue_tables")
        .expect("data.aws_iam_policy_document.glue_tables");
    assert_eq!(
        text(attr(doc, "for_each").unwrap()),
        "local.glue_table_policies"
    );
    let statements = nested(doc, "statement");
    assert_eq!(
        statements.len(),
        1,
        "one statement, its actions chosen by the access"
    );
    let resources = text(attr(statements[0], "resources").unwrap());
    assert!(
        resources.contains("each.value.tables") && !resources.contains('*'),
        "tables by name: {resources}"
    );
    for (access, actions) in [
        ("read", "glue_read_actions"),
        ("publish", "glue_write_actions"),
    ] {
        let value = format!("{{ access = \"{access}\" }}").parse().unwrap();
        let scope = [("each".to_owned(), key_value("part".into(), value))];
        let granted: Vec<_> =
            read_statements(&tf, "glue_tables", tf.expand(doc, "statement", &scope))
                .into_iter()
                .map(|(_, _, actions, _)| actions)
                .collect();
        assert_eq!(
            granted,
            [string_list(tf.local(actions).unwrap()).unwrap()],
            "a policy to {access} tables grants local.{actions}"
        );
    }

    let attachment = tf
        .resource("aws_iam_role_policy_attachment", "glue_tables")
        .unwrap();
    assert_eq!(
        text(attr(attachment, "role").unwrap()),
        "aws_iam_role.task[each.value.stage].name"
    );
    assert_eq!(
        text(attr(attachment, "for_each").unwrap()),
        "local.glue_table_policies"
    );
}

/// The trace collector is off by default; when on, it is the only other container of a task,
/// not essential, listening on the task's loopback only, exporting to X-Ray (HTTPS), and the
/// services export to it.
#[test]
fn the_trace_collector_is_optional_and_keeps_otlp_inside_the_task() {
    let tf = terraform();
    let variable = tf
        .blocks("variable")
        .find(|b| infra_check::labels(b) == ["enable_trace_collector"])
        .expect("variable enable_trace_collector");
    assert_eq!(attr(variable, "default"), Some(&Expression::Bool(false)));

    let common_env = object_entries(tf.local("common_environment").unwrap()).unwrap();
    assert_eq!(
        text(common_env["OTEL_EXPORTER_OTLP_ENDPOINT"]),
        "var.enable_trace_collector ? local.trace_collector_endpoint : var.otel_exporter_otlp_endpoint"
    );
    assert_eq!(
        tf.local("trace_collector_endpoint").and_then(string),
        Some("http://localhost:4317")
    );
    let config = text(tf.local("trace_collector_config").unwrap());
    let compact: String = config.split_whitespace().collect();
    for part in [
        "grpc={endpoint=\"127.0.0.1:4317\"}",
        "awsxray={region=var.aws_region,indexed_attributes=[\"stage\",\"table\"]}",
        "exporters=[\"awsxray\"]",
    ] {
        assert!(
            compact.contains(part),
            "collector config lacks {part}: {config}"
        );
    }
    assert!(
        !compact.contains("0.0.0.0"),
        "the collector listens on the loopback address only"
    );

    let containers = text(tf.local("trace_collector_containers").unwrap());
    let compact: String = containers.split_whitespace().collect();
    for part in [
        "var.enable_trace_collector?[",
        "essential=false",
        "readonlyRootFilesystem=true",
        "AOT_CONFIG_CONTENT",
        "awslogs-group=aws_cloudwatch_log_group.stage[stage].name",
    ] {
        assert!(compact.contains(part), "collector container lacks {part}");
    }
    // The service's container is the one the other tests read; the collector is the other.
    container(&tf);
}
