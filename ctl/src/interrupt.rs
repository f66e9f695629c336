//! Ctrl-C during long work: stop at the next safe point, say what finished and what will be
//! repeated.
//!
//! While careful work runs (a [`Careful`] guard is alive: the stages running here, a redrive, a
//! reset carrying out its plan), the first Ctrl-C asks it to stop at its next safe point (the
//! messages being handled finish, none is started; each publishes atomically or not at all); a
//! second one stops the work in progress at once (nothing half-published either: a partition is
//! switched in one catalog call); a third ends the process. Without careful work running,
//! Ctrl-C ends the process at once, as usual.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::Notify;

/// The exit code of a command stopped by Ctrl-C (128 + SIGINT).
pub const EXIT_CODE: u8 = 130;

/// How far the operator asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Running,
    /// Finish what is in progress, start nothing new.
    AtSafePoint,
    /// Stop what is in progress too.
    Now,
}

#[derive(Debug, Default)]
struct State {
    level: AtomicU8,
    careful: AtomicUsize,
    changed: Notify,
}

fn state() -> &'static Arc<State> {
    static STATE: OnceLock<Arc<State>> = OnceLock::new();
    STATE.get_or_init(Arc::default)
}

/// Listens for Ctrl-C for the rest of the process (call once, inside the runtime).
pub fn install() {
    let state = state().clone();
    tokio::spawn(async move {
        loop {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            let careful = state.careful.load(Ordering::SeqCst) > 0;
            let level = state.level.load(Ordering::SeqCst);
            if !careful || level >= 2 {
                eprintln!("\ninterrupted (Ctrl-C): stopped at once");
                std::process::exit(i32::from(EXIT_CODE));
            }
            state.level.store(level + 1, Ordering::SeqCst);
            state.changed.notify_waiters();
            if level == 0 {
                eprintln!(
                    "\ninterrupted (Ctrl-C): stopping at the next safe point, once the work in progress is finished (Ctrl-C again to stop it now, a third time to quit at once)"
                );
            } else {
                eprintln!(
                    "\ninterrupted again: stopping the work in progress now; nothing half-published is left (Ctrl-C once more to quit at once)"
                );
            }
        }
    });
}

/// The error of a command stopped by Ctrl-C at a safe point: says what was done and what the
/// next run repeats; the command exits with [`EXIT_CODE`].
#[derive(Debug)]
pub struct Interrupted(pub String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "interrupted (Ctrl-C): {}", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// How far the operator asked to stop, so far.
pub fn level() -> Level {
    match state().level.load(Ordering::SeqCst) {
        0 => Level::Running,
        1 => Level::AtSafePoint,
        _ => Level::Now,
    }
}

/// True once Ctrl-C was pressed during careful work.
pub fn requested() -> bool {
    level() >= Level::AtSafePoint
}

/// Waits until the operator asks to stop at `at_least` this level.
pub async fn reached(at_least: Level) {
    loop {
        let changed = state().changed.notified();
        tokio::pin!(changed);
        // Registered before the check, so a Ctrl-C in between is not missed.
        changed.as_mut().enable();
        if level() >= at_least {
            return;
        }
        changed.await;
    }
}

/// While alive, Ctrl-C asks the work to stop at a safe point instead of ending the process.
#[derive(Debug)]
pub struct Careful(());

impl Careful {
    pub fn begin() -> Self {
        state().careful.fetch_add(1, Ordering::SeqCst);
        Careful(())
    }
}

impl Drop for Careful {
    fn drop(&mut self) {
        state().careful.fetch_sub(1, Ordering::SeqCst);
    }
}
