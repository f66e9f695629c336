//! The command line: parse, pick the target, run the command, map the result to an exit code.
//! The grammar is in `args`, the set-up shared by the commands in `setup`, the commands that
//! act in `commands`, `status` and `report` in `status`.

mod args;
mod commands;
mod setup;
mod status;

use std::process::ExitCode;

use clap::Parser;
use common::config::Env;

pub use args::{ApiArgs, Cli, Command, RebuildArgs, TargetArgs, parse_date_arg};
pub use setup::tables_for_night;
pub use status::{status_report, status_text, write_report};

use crate::health;
use crate::ops;
use crate::verdict::Repair;
use commands::{confirm_and_execute, ingest, redrive, run_local_night};
use setup::{exit_code, repair_flags, target, target_repair};

/// Parses the process arguments and runs the command.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    init_logs(&env);
    crate::interrupt::install();
    match run(cli.command, &env).await {
        Ok(code) => code,
        Err(err)
            if err
                .downcast_ref::<crate::interrupt::Interrupted>()
                .is_some() =>
        {
            eprintln!("{err:#}");
            ExitCode::from(crate::interrupt::EXIT_CODE)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(env: &Env) {
    let filter = tracing_subscriber::EnvFilter::try_new(env.get("RUST_LOG").unwrap_or("warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

#[allow(clippy::print_stdout)]
async fn run(command: Command, env: &Env) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo { data_dir, nights } => crate::demo::demo(&data_dir, nights).await,
        Command::Run {
            target,
            api_url,
            tables,
            as_of,
        } => run_local_night(&target, env, &api_url, &tables, as_of).await,
        Command::Ingest {
            table,
            mode,
            since,
            as_of,
            api,
            target: args,
        } => {
            ingest(
                env,
                &args,
                api.api_url.as_deref(),
                table,
                mode,
                since,
                as_of,
            )
            .await
        }
        Command::Replay {
            stage,
            table,
            all: _,
            from,
            to,
            dry_run,
            as_of,
            target: args,
        } => commands::replay(env, &args, stage, table, from, to, dry_run, as_of).await,
        Command::Reset {
            table,
            stage,
            from,
            rebuild:
                RebuildArgs {
                    yes,
                    as_of,
                    target: args,
                },
        } => {
            let target = target(&args, env).await?;
            let plan = ops::plan_reset(&target, &table, stage, from, as_of).await?;
            confirm_and_execute(&target, &plan, yes, &repair_flags(&args, None)).await
        }
        Command::Rollback {
            table,
            to,
            yes,
            target: args,
        } => {
            let target = target(&args, env).await?;
            let plan = ops::plan_rollback(&target, &table, to).await?;
            confirm_and_execute(&target, &plan, yes, &Repair::default()).await
        }
        Command::Redrive {
            stage,
            api,
            target: args,
        } => redrive(env, &args, api.api_url.as_deref(), stage).await,
        Command::Status {
            as_of,
            verbose,
            target: args,
        } => {
            let target = target(&args, env).await?;
            let options = health::Options {
                as_of,
                repair: target_repair(&args),
                ..health::Options::default()
            };
            let health = health::collect(&target, &options).await?;
            print!("{}", status_text(&health, verbose));
            Ok(exit_code(health.all_fresh()))
        }
        Command::Report {
            out,
            nights,
            as_of,
            target: args,
        } => {
            let target = target(&args, env).await?;
            write_report(&target, &out, nights, as_of, &target_repair(&args)).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Retype {
            table,
            rebuild:
                RebuildArgs {
                    yes,
                    as_of,
                    target: args,
                },
        } => commands::retype(env, &args, &table, yes, as_of).await,
        Command::Compare {
            compare,
            target: args,
        } => {
            let target = target(&args, env).await?;
            let outcome = crate::compare::run(compare, &target).await?;
            print!("{}", outcome.render());
            Ok(outcome.exit_code())
        }
        Command::Adopt {
            table,
            dry_run,
            target: args,
        } => commands::adopt(env, &args, table, dry_run).await,
        Command::Drift { target: args } => commands::drift(env, &args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn dates_are_read_in_both_formats() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
        assert_eq!(parse_date_arg("2026-11-21"), Ok(day));
        assert_eq!(parse_date_arg("20261121"), Ok(day));
        for bad in [
            "2026-13-01",
            "21/11/2026",
            "",
            "2026112",
            "2026-1-012",
            "+2026-11-21",
        ] {
            let err = parse_date_arg(bad).unwrap_err();
            assert!(err.contains("YYYY-MM-DD or YYYYMMDD"), "{bad}: {err}");
        }
    }

    /// Every option of every command says what it is for, and every command has an example.
    #[test]
    fn every_option_has_a_description_and_every_command_an_example() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let mut missing = Vec::new();
        for command in cli.get_subcommands() {
            let name = command.get_name();
            let example = command
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !example.contains("Example") || !example.contains(&format!("tascomi {name}")) {
                missing.push(format!("{name}: no example running it"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if help.trim().is_empty() {
                    missing.push(format!("{name} --{id}: no description"));
                }
                let dated = arg
                    .get_value_names()
                    .is_some_and(|names| names.iter().any(|n| n.as_str() == "DATE"));
                if dated && !help.contains("YYYY-MM-DD or YYYYMMDD") {
                    missing.push(format!("{name} --{id}: the date format is not named"));
                }
            }
        }
        assert!(missing.is_empty(), "{missing:#?}");
    }

    #[test]
    fn ingest_takes_since_and_as_of() {
        let cli = Cli::try_parse_from([
            "tascomi",
            "ingest",
            "--table",
            "appeals",
            "--since",
            "20261101",
            "--as-of",
            "2026-11-10",
        ])
        .unwrap();
        let Command::Ingest { since, as_of, .. } = cli.command else {
            panic!("not an ingest: {:?}", cli.command)
        };
        assert_eq!(since, NaiveDate::from_ymd_opt(2026, 11, 1));
        assert_eq!(as_of, NaiveDate::from_ymd_opt(2026, 11, 10));
    }
}
