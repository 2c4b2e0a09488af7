//! Helpers shared by the integration tests that run the `vigil` binary. Each test crate uses a
//! subset, hence the `dead_code` allowance.
#![allow(dead_code, clippy::unwrap_used)]

pub mod mqtt;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const VTEST: &str = "/usr/share/doc/opencv-doc/examples/data/vtest.avi";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the `vigil` binary from the repository root.
pub fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil")).args(args).current_dir(root()).output().expect("vigil binary runs")
}

/// The sample clip; its absence is a setup error, never a silent skip.
pub fn vtest() -> &'static str {
    assert!(Path::new(VTEST).is_file(), "{VTEST} is missing: run scripts/setup.sh (Debian package opencv-doc)");
    VTEST
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn assert_ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}; stderr:\n{}", o.status.code(), stderr(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts the exit code, that stderr names every needle, and that nothing panicked.
#[track_caller]
pub fn assert_fails(o: &Output, code: i32, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(code), "expected exit {code}; stderr:\n{err}");
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    assert!(!err.contains("panicked"), "no panic:\n{err}");
}
