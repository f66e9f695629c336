//! The Python interpreter of the tests that read our Parquet with an independent reader (pyarrow,
//! DuckDB) or write Parquet as Spark does.

/// The interpreter with pyarrow and duckdb: `TASCOMI_PYTHON`, which `scripts/test.sh` sets.
/// `None`, with the reason printed, when it is unset outside CI; in CI (env `CI`) that fails.
pub fn python() -> Option<String> {
    let env = common::config::Env::from_process();
    match env.get("TASCOMI_PYTHON") {
        Some(python) => Some(python.to_owned()),
        None if env.get("CI").is_some() => {
            panic!("TASCOMI_PYTHON must be set in CI (scripts/test.sh sets it)")
        }
        None => {
            eprintln!("skipped: TASCOMI_PYTHON is not set (run scripts/test.sh)");
            None
        }
    }
}
