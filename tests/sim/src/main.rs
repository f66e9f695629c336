//! `tascomi-sim --port P`: the simulated Tascomi API as a process (docker-compose, the local demo).

use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::NaiveDate;
use clap::Parser;
use common::dictionary::ColumnTypes;
use tascomi_sim::{History, SimApi, SimConfig};

#[derive(Debug, Parser)]
#[command(about = "A simulated Tascomi REST API that checks the real authentication hash")]
struct Args {
    /// Port to listen on (0: any free port).
    #[arg(long, env = "TASCOMI_SIM_PORT", default_value_t = 8090)]
    port: u16,
    /// Address to listen on.
    #[arg(long, env = "TASCOMI_SIM_HOST", default_value = "0.0.0.0")]
    host: std::net::IpAddr,
    /// The public key clients must send.
    #[arg(
        long,
        env = "TASCOMI_PUBLIC_KEY",
        default_value = "sim-public-key",
        hide_env_values = true
    )]
    public_key: String,
    /// The private key of the hash.
    #[arg(
        long,
        env = "TASCOMI_PRIVATE_KEY",
        default_value = "sim-private-key",
        hide_env_values = true
    )]
    private_key: String,
    /// The column-type dictionary: its tables are served, with their typed fields.
    #[arg(long, env = "TASCOMI_COLUMN_TYPE_DICTIONARY")]
    dictionary: Option<PathBuf>,
    /// Further tables to serve with generic fields (comma-separated).
    #[arg(long, value_delimiter = ',')]
    extra_tables: Vec<String>,
    /// Records per page.
    #[arg(long, default_value_t = 100)]
    per_page: u32,
    /// Seed of the generated records.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// First day of the history (YYYY-MM-DD).
    #[arg(long)]
    start: Option<NaiveDate>,
    /// Records that exist before the first day.
    #[arg(long)]
    initial_records: Option<u32>,
    /// Records created per day.
    #[arg(long)]
    new_per_day: Option<u32>,
    /// Records updated per day.
    #[arg(long)]
    updated_per_day: Option<u32>,
    /// Pretend today is this day (at the nightly run time); default the real clock.
    #[arg(long)]
    today: Option<NaiveDate>,
    /// Share of requests answered 500.
    #[arg(long, default_value_t = 0.0)]
    server_error_share: f64,
    /// Share of requests answered 429 (Retry-After: 1).
    #[arg(long, default_value_t = 0.0)]
    throttle_share: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = common::telemetry::init(&common::config::Env::from_process(), "tascomi-sim")?;
    let defaults = History::default();
    let history = History {
        start: args.start.unwrap_or(defaults.start),
        initial_records: args.initial_records.unwrap_or(defaults.initial_records),
        new_per_day: args.new_per_day.unwrap_or(defaults.new_per_day),
        updated_per_day: args.updated_per_day.unwrap_or(defaults.updated_per_day),
        ..defaults
    };
    let dictionary = match &args.dictionary {
        Some(path) => ColumnTypes::load(path)?,
        None => ColumnTypes::default(),
    };
    let mut config = SimConfig {
        public_key: args.public_key,
        private_key: args.private_key,
        dictionary,
        extra_tables: args.extra_tables,
        per_page: args.per_page,
        seed: args.seed,
        history,
        ..SimConfig::default()
    };
    config.faults.server_error_share = args.server_error_share;
    config.faults.throttle_share = args.throttle_share;
    config.faults.retry_after_secs = 1;
    config.now = args.today.map(|day| config.run_instant(day));
    let handle = SimApi::start_on(config, SocketAddr::new(args.host, args.port)).await?;
    tracing::info!(base_url = %handle.base_url, "simulated tascomi api listening");
    tokio::signal::ctrl_c().await?;
    handle.stop().await;
    Ok(())
}
