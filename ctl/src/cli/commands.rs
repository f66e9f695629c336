//! The commands that act: ingest, replay, reset and rollback, redrive, a local night, drift;
//! each prints what it did and returns the exit code that says whether all is well.

use std::process::ExitCode;

use anyhow::bail;
use chrono::NaiveDate;
use common::config::Env;
use common::layout::{TableName, date_value, london_today};
use common::messages::{self, IngestMode, IngestRequest, Message as _, PartitionReady};
use common::queue::Queue;

use super::TargetArgs;
use super::setup::{
    build_local, existing_data_dir, exit_code, load_pipeline, progress, repair_flags,
    tables_for_night, target,
};
use crate::local::DeadLetter;
use crate::ops;
use crate::stage::Stage;
use crate::target::Target;
use crate::verdict::{self, Expectation, ImportCheck, Repair, Verdicts};

/// `tascomi replay`: prints the messages and the snapshot dates they rebuild; with --local,
/// handles them here and judges the snapshots.
#[allow(clippy::print_stdout, clippy::too_many_arguments)]
pub(super) async fn replay(
    env: &Env,
    args: &TargetArgs,
    stage: Stage,
    table: Option<TableName>,
    from: NaiveDate,
    to: Option<NaiveDate>,
    dry_run: bool,
    as_of: Option<NaiveDate>,
) -> anyhow::Result<ExitCode> {
    let target = target(args, env).await?;
    let tables = ops::tables(&target, table.as_ref());
    let replay = ops::replay_messages(&target, stage, &tables, from, to, as_of).await?;
    if replay.is_empty() {
        bail!(
            "nothing to replay: no {} partition of {} dated {}{} (see `tascomi status`)",
            stage.layer().upstream().map_or("input", |l| l.name()),
            tables
                .iter()
                .map(TableName::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            date_value(from),
            to.map_or(" or later".into(), |to| format!(" to {}", date_value(to)))
        );
    }
    for message in &replay {
        println!("{}", messages::encode(message));
    }
    print!(
        "{}",
        ops::describe_snapshot_dates(&ops::snapshot_dates(&replay))
    );
    if dry_run {
        println!("dry run: {} message(s) not sent", replay.len());
        return Ok(ExitCode::SUCCESS);
    }
    match &target {
        Target::Local(local) => {
            let mark = local.mark();
            ops::send_all(&target, stage, &replay).await?;
            println!("sent {} message(s) to {stage}", replay.len());
            let verdicts = verdict::judge(
                local,
                &replayed(replay.iter()),
                &mark,
                &repair_flags(args, None),
            )
            .await?;
            Ok(report(&verdicts, "snapshot(s) replayed"))
        }
        Target::Aws(_) => {
            ops::send_all(&target, stage, &replay).await?;
            println!(
                "sent {} message(s) to {stage}: the services write the snapshots above; `tascomi status` shows them, and the dead-letter queues any failure",
                replay.len()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tascomi retype`: the plan (or that nothing differs); with --yes, carried out and judged.
#[allow(clippy::print_stdout)]
pub(super) async fn retype(
    env: &Env,
    args: &TargetArgs,
    table: &TableName,
    yes: bool,
    as_of: Option<NaiveDate>,
) -> anyhow::Result<ExitCode> {
    let target = target(args, env).await?;
    let dictionary = super::setup::load_dictionary(args, target.pipeline()).await?;
    match crate::retype::plan(&target, table, &dictionary, as_of).await? {
        crate::retype::Retype::Agrees(text) => {
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
        crate::retype::Retype::Rebuild(plan) => {
            confirm_and_execute(&target, &plan, yes, &repair_flags(args, None)).await
        }
    }
}

/// `tascomi adopt`: prints what it found per table; without --dry-run, registers and writes.
#[allow(clippy::print_stdout)]
pub(super) async fn adopt(
    env: &Env,
    args: &TargetArgs,
    table: Option<TableName>,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    let target = target(args, env).await?;
    let tables = ops::tables(&target, table.as_ref());
    let adoptions = crate::adopt::plan(target.platform(), &tables).await?;
    for adoption in &adoptions {
        print!("{}", adoption.describe(dry_run));
    }
    let partitions: usize = adoptions
        .iter()
        .flat_map(|a| &a.layers)
        .map(|l| l.to_register.len())
        .sum();
    if dry_run {
        println!(
            "dry run: {partitions} partition(s) of {} table(s) not registered, nothing written",
            adoptions.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::adopt::execute(target.platform(), &adoptions).await?;
    println!(
        "adopted {} table(s): {partitions} partition(s) registered; `tascomi status` shows them",
        adoptions.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `tascomi drift`: the tables whose data and dictionary disagree; non-zero when any does.
#[allow(clippy::print_stdout)]
pub(super) async fn drift(env: &Env, args: &TargetArgs) -> anyhow::Result<ExitCode> {
    let target = target(args, env).await?;
    let dictionary = super::setup::load_dictionary(args, target.pipeline()).await?;
    let drifts = ops::drift(&target, &dictionary).await?;
    let mut any = false;
    for d in drifts.iter().filter(|d| !d.is_empty()) {
        any = true;
        if d.missing_from_dictionary {
            println!(
                "{}: not in the column-type dictionary (every column stays text)",
                d.table
            );
        }
        if !d.new_columns.is_empty() {
            println!(
                "{}: new columns arriving as text: {}",
                d.table,
                d.new_columns.join(", ")
            );
        }
        if !d.missing_columns.is_empty() {
            println!(
                "{}: dictionary columns missing from the data: {}",
                d.table,
                d.missing_columns.join(", ")
            );
        }
    }
    if any {
        Ok(ExitCode::FAILURE)
    } else {
        println!("no drift: {} tables match the dictionary", drifts.len());
        Ok(ExitCode::SUCCESS)
    }
}

/// What replaying `messages` must produce: each table's snapshot under the message's date.
fn replayed<'a>(messages: impl IntoIterator<Item = &'a PartitionReady>) -> Vec<Expectation> {
    messages
        .into_iter()
        .map(|m| Expectation {
            table: m.table.clone(),
            snapshot: m.as_of.unwrap_or_else(|| m.date()),
            import: ImportCheck::None,
        })
        .collect()
}

/// Prints the verdicts and a total line, `<count> <what>, <failed> failed`; the exit code says
/// whether all is well.
#[allow(clippy::print_stdout)]
fn report(verdicts: &Verdicts, what: &str) -> ExitCode {
    report_with(verdicts, &[], what)
}

/// [`report`], with `lines` printed between the verdicts and the total line.
#[allow(clippy::print_stdout)]
fn report_with(verdicts: &Verdicts, lines: &[String], what: &str) -> ExitCode {
    print!("{}", verdicts.describe());
    for line in lines {
        println!("{line}");
    }
    let failed = verdicts.failed_tables() + verdicts.other_letters.len();
    println!("{} {what}, {failed} failed", verdicts.tables.len());
    interrupted_or(exit_code(verdicts.ok()), verdicts)
}

/// After Ctrl-C stopped the stages: says what finished and what the next run repeats, and
/// exits with the interrupted code; otherwise `code`.
#[allow(clippy::print_stdout)]
fn interrupted_or(code: ExitCode, verdicts: &Verdicts) -> ExitCode {
    if !crate::interrupt::requested() {
        return code;
    }
    let finished = verdicts.tables.len() - verdicts.failed_tables();
    println!(
        "interrupted (Ctrl-C) at a safe point: {finished} table(s) finished (`ok` above), {} not; \
         every message not handled is in its stage's dead-letter queue, and the `tascomi redrive` \
         commands above repeat exactly those (and every later stage), nothing else",
        verdicts.failed_tables()
    );
    ExitCode::from(crate::interrupt::EXIT_CODE)
}

/// `tascomi ingest`: on AWS, sends the request; with --local, runs it here and judges it.
#[allow(clippy::print_stdout)]
pub(super) async fn ingest(
    env: &Env,
    args: &TargetArgs,
    api_url: Option<&str>,
    table: TableName,
    mode: IngestMode,
    since: Option<NaiveDate>,
    as_of: Option<NaiveDate>,
) -> anyhow::Result<ExitCode> {
    let today = as_of.unwrap_or_else(london_today);
    if let Some(since) = since
        && since >= today
    {
        bail!(
            "--since {since} must be before the run's date {today}: an ingest fetches the days before its date"
        );
    }
    let request = IngestRequest {
        table: table.clone(),
        mode,
        requested_by: format!("operator:{}", env.get("USER").unwrap_or("unknown")),
        // Locally the run's date is fixed here, so the verdict checks the snapshot it writes.
        as_of: if args.local { Some(today) } else { as_of },
        since,
    };
    request
        .validate()
        .map_err(|reason| anyhow::anyhow!("not a valid ingest request: {reason}"))?;
    let describe = format!(
        "{table} ({}{}{})",
        mode_name(mode),
        since.map_or(String::new(), |d| format!(", every day since {d}")),
        as_of.map_or(String::new(), |d| format!(", as of {d}"))
    );
    if !args.local {
        let target = target(args, env).await?;
        target
            .send(Stage::Ingest, &messages::encode(&request))
            .await?;
        println!("sent an ingest request for {describe}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(api_url) = api_url else {
        bail!(
            "`ingest --local` runs the ingest stage here: pass --api-url (or TASCOMI_API_BASE_URL) and the keys"
        );
    };
    let local = build_local(args, env, Some(api_url), std::slice::from_ref(&table)).await?;
    let mark = local.mark();
    local
        .queue(Stage::Ingest)
        .send(
            &messages::encode(&request),
            &std::collections::BTreeMap::new(),
        )
        .await?;
    println!("running an ingest for {describe}");
    local.settle(progress()).await?;
    let expected = [Expectation {
        table,
        snapshot: today,
        import: if mode == IngestMode::RetryFailed {
            ImportCheck::Latest
        } else {
            ImportCheck::On(today)
        },
    }];
    let verdicts =
        verdict::judge(&local, &expected, &mark, &repair_flags(args, Some(api_url))).await?;
    Ok(report(
        &verdicts,
        &format!("table(s) ingested for {}", date_value(today)),
    ))
}

fn mode_name(mode: IngestMode) -> &'static str {
    match mode {
        IngestMode::Incremental => "incremental",
        IngestMode::Full => "full",
        IngestMode::RetryFailed => "retry-failed",
    }
}

/// `tascomi redrive`. With --local the messages are handled here and judged; on AWS they are
/// moved back to the stage's queue for its service.
#[allow(clippy::print_stdout)]
pub(super) async fn redrive(
    env: &Env,
    args: &TargetArgs,
    api_url: Option<&str>,
    stage: Stage,
) -> anyhow::Result<ExitCode> {
    if !args.local {
        let target = target(args, env).await?;
        let moved = target.redrive(stage).await?;
        print_redriven(&moved);
        println!(
            "{} message(s) sent back to {stage}: the {stage} service handles them; one that fails again returns to the dead-letter queue with its reason (`tascomi status` counts them)",
            moved.len()
        );
        if crate::interrupt::requested() {
            return Err(crate::interrupt::Interrupted(format!(
                "{} message(s) were sent back; the others are still in the {stage} dead-letter queue: run the same command again to send them",
                moved.len()
            ))
            .into());
        }
        if let Some((_, _, Some(left))) = target
            .queue_depths()
            .await?
            .into_iter()
            .find(|(s, _, _)| *s == stage)
            && left > 0
        {
            println!(
                "{left} message(s) still in the {stage} dead-letter queue (failed again already, or repeats of a message sent back): run redrive again after the fix"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    if stage == Stage::Ingest && api_url.is_none() {
        bail!(
            "redriving ingest on the embedded default runs the ingest stage: pass --api-url (or TASCOMI_API_BASE_URL) and the keys; the dead letters are left as they are"
        );
    }
    existing_data_dir(args)?;
    // Tables a run named beyond the pipeline file (`run --tables`) ran with the defaults; their
    // redriven messages do too, rather than fail again as unknown tables.
    let named: Vec<TableName> = build_local(args, env, None, &[])
        .await?
        .dead_letters(stage)
        .iter()
        .filter_map(|letter| TableName::new(letter.table()?).ok())
        .collect();
    let target = Target::Local(Box::new(build_local(args, env, api_url, &named).await?));
    let moved = target.redrive(stage).await?;
    let Some(local) = target.local() else {
        bail!("redrive --local: the target is not the embedded default")
    };
    print_redriven(&moved);
    // After the move: the letters from here on are those that failed again.
    let mark = local.mark();
    local.settle(progress()).await?;
    let today = london_today();
    let expected: Vec<Expectation> = moved
        .iter()
        .filter_map(|letter| redriven_expectation(stage, letter, today))
        .collect();
    let verdicts = verdict::judge(local, &expected, &mark, &repair_flags(args, api_url)).await?;
    print!("{}", verdicts.describe());
    let again = local.dead_letters_since(&mark).len();
    println!(
        "{} message(s) sent back to {stage} and handled: {again} failed again and are back in a dead-letter queue with the reason",
        moved.len()
    );
    Ok(interrupted_or(exit_code(verdicts.ok()), &verdicts))
}

#[allow(clippy::print_stdout)]
fn print_redriven(moved: &[DeadLetter]) {
    for letter in moved {
        println!(
            "redriven: {} (failed: {})",
            letter.table().unwrap_or_else(|| "?".into()),
            letter.reason()
        );
    }
}

/// What handling a redriven message must produce: the snapshot of its date. `None` for a body
/// that does not decode (it fails again, and is reported as a dead letter).
fn redriven_expectation(
    stage: Stage,
    letter: &DeadLetter,
    today: NaiveDate,
) -> Option<Expectation> {
    if stage == Stage::Ingest {
        let request: IngestRequest = messages::decode(&letter.body, |_| true).ok()?;
        let snapshot = request.as_of.unwrap_or(today);
        Some(Expectation {
            table: request.table,
            snapshot,
            import: if request.mode == IngestMode::RetryFailed {
                ImportCheck::Latest
            } else {
                ImportCheck::On(snapshot)
            },
        })
    } else {
        let ready: PartitionReady = messages::decode(&letter.body, |_| true).ok()?;
        Some(Expectation {
            table: ready.table,
            snapshot: ready.as_of.unwrap_or(today),
            import: ImportCheck::None,
        })
    }
}

#[allow(clippy::print_stdout)]
pub(super) async fn confirm_and_execute(
    target: &Target,
    plan: &ops::Plan,
    yes: bool,
    repair: &Repair,
) -> anyhow::Result<ExitCode> {
    print!("{}", plan.describe());
    if !yes {
        println!("nothing changed: run again with --yes to carry out this plan");
        return Ok(ExitCode::SUCCESS);
    }
    match target {
        Target::Local(local) => {
            let mark = local.mark();
            plan.execute(target).await?;
            let verdicts = verdict::judge(
                local,
                &replayed(plan.replay.iter().map(|(_, m)| m)),
                &mark,
                repair,
            )
            .await?;
            Ok(report(&verdicts, "snapshot(s) rebuilt"))
        }
        Target::Aws(_) => {
            plan.execute(target).await?;
            if plan.replay.is_empty() {
                println!("done");
            } else {
                println!(
                    "done: {} message(s) sent; the services write the snapshots above (`tascomi status` shows them)",
                    plan.replay.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[allow(clippy::print_stdout)]
pub(super) async fn run_local_night(
    args: &TargetArgs,
    env: &Env,
    api_url: &str,
    named: &[TableName],
    as_of: Option<NaiveDate>,
) -> anyhow::Result<ExitCode> {
    if !args.local {
        bail!(
            "`run` runs on the embedded default: pass --local (on AWS the schedule runs the night)"
        );
    }
    let today = as_of.unwrap_or_else(london_today);
    let mut pipeline = load_pipeline(args)?;
    let (tables, weekly) = tables_for_night(&mut pipeline, named, today);
    let local = build_local(args, env, Some(api_url), &tables).await?;
    let carried = crate::demo::with_snapshot(&local, &weekly).await?;
    let repair = repair_flags(args, Some(api_url));
    let verdicts =
        crate::demo::run_night(&local, &tables, &carried, today, progress(), &repair).await?;
    Ok(report_with(
        &verdicts,
        &crate::local::announcements(&local.events),
        &format!("table(s) run for {}", date_value(today)),
    ))
}
