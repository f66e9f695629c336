//! The snapshot scenarios on the embedded default: local files and the local catalog.

#[macro_use]
mod support;

use support::Lake;

async fn local_lake() -> Option<Lake> {
    let dir = tempfile::tempdir().unwrap();
    let platform = common::platform::Platform::local(dir.path());
    Some(Lake { platform, dir })
}

scenarios!(local_lake());
