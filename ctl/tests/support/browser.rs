//! A real headless browser (Chromium from the distribution's packages) opening a page from a
//! file, for the report's tests.
//!
//! Without Chromium the test is skipped with the reason printed, unless it must run: in CI (`CI`
//! set) or under `scripts/test.sh`, which installs Chromium and sets
//! `TASCOMI_REQUIRE_BROWSER=1`; then a missing browser fails the test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The browser, or `None` after printing why the test is skipped.
pub fn chromium() -> Option<PathBuf> {
    let env = common::config::Env::from_process();
    let candidates: Vec<PathBuf> = env
        .get("TASCOMI_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            ["chromium", "chromium-browser", "google-chrome"]
                .iter()
                .filter_map(|name| which(name)),
        )
        .collect();
    if let Some(found) = candidates.into_iter().find(|p| p.is_file()) {
        return Some(found);
    }
    let required =
        env.get("CI").is_some() || env.get("TASCOMI_REQUIRE_BROWSER").is_some_and(|v| v == "1");
    assert!(
        !required,
        "Chromium is required here (CI or TASCOMI_REQUIRE_BROWSER=1) and was not found: \
         scripts/test.sh installs it (apt-get install -y chromium), or set TASCOMI_CHROMIUM"
    );
    eprintln!(
        "skipped: no Chromium (chromium, chromium-browser, google-chrome or TASCOMI_CHROMIUM); \
         scripts/test.sh installs it"
    );
    None
}

fn which(name: &str) -> Option<PathBuf> {
    common::config::Env::from_process()
        .get("PATH")
        .and_then(|paths| {
            std::env::split_paths(paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
}

/// What the browser made of a page.
#[derive(Debug)]
pub struct Rendered {
    /// The DOM after loading (`--dump-dom`).
    pub dom: String,
    /// The browser's own log: script errors and console messages appear here.
    pub log: String,
    /// How long loading and serialising the page took, the browser's start included.
    pub elapsed: Duration,
}

fn headless(browser: &Path, profile: &Path) -> Command {
    let mut command = Command::new(browser);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

fn file_url(page: &Path) -> String {
    format!("file://{}", page.canonicalize().unwrap().display())
}

/// Loads the page and returns its DOM and the browser's log.
pub fn dump_dom(browser: &Path, page: &Path) -> Rendered {
    let profile = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = headless(browser, profile.path())
        .arg("--dump-dom")
        .arg(file_url(page))
        .output()
        .expect("chromium runs");
    let elapsed = started.elapsed();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "chromium failed: {log}");
    Rendered {
        dom: String::from_utf8_lossy(&output.stdout).into_owned(),
        log,
        elapsed,
    }
}

/// Takes a PNG of the page, `width` x `height` pixels, and returns its bytes.
pub fn screenshot(browser: &Path, page: &Path, width: u32, height: u32) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let png = profile.path().join("page.png");
    let output = headless(browser, profile.path())
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--screenshot={}", png.display()))
        .arg(file_url(page))
        .output()
        .expect("chromium runs");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(&png).expect("chromium wrote the screenshot")
}

/// Lines of the browser's log that report a script error or a console message (there must be
/// none: the report has no script at all).
pub fn script_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("SyntaxError"))
        .collect()
}
