//! The real `bbdc` binary, with the component cache kept in the test target directory.

use std::process::Command;

/// A `bbdc` command whose component cache is shared by the tests and never the user's.
pub fn bbdc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bbdc"));
    c.env(
        "BBDC_CACHE_DIR",
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"),
    );
    c
}
