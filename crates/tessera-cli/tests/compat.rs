//! Compatibility suites: the vendors' own Python clients against a real `tessera serve`.
//!
//! The suites live in `tests/compat/*.py`. Python comes from `TESSERA_PYTHON` (CI points it at
//! a venv with the SDKs) or `python3`. Without Python or the SDK the test prints a visible
//! SKIP and passes, so `cargo test` works on a bare machine; with `TESSERA_REQUIRE_COMPAT=1`
//! (set by `.ci/run`) a missing SDK is a failure instead.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

mod support;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> String {
    std::env::var("TESSERA_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn required() -> bool {
    std::env::var("TESSERA_REQUIRE_COMPAT").is_ok_and(|v| v == "1")
}

/// Whether `module` imports; prints the SKIP line when it does not.
fn have_module(module: &str) -> bool {
    let ok = Command::new(python())
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = format!("{} cannot import `{module}`; run .ci/run (or set TESSERA_PYTHON to a venv with the SDK) to run this compatibility suite", python());
        assert!(!required(), "{msg}");
        tessera_store_postgres::testing::skip(&msg);
    }
    ok
}

struct Server {
    child: Child,
    host: String,
    database: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("tessera.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .env("TESSERA_MASTER_KEY", support::MASTER_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("tessera serve starts");
    let base = support::listening_on(&mut child);
    let host = base
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http:// address: {base:?}"))
        .to_string();
    Server {
        child,
        host,
        database,
        _dir: dir,
    }
}

fn run_suite(script: &str, module: &str) {
    if !have_module(module) {
        return;
    }
    let server = start_server();
    let status = Command::new(python())
        .arg(repo_root().join("tests/compat").join(script))
        .env("TESSERA_HOST", &server.host)
        .env("TESSERA_BIN", env!("CARGO_BIN_EXE_tessera"))
        .env("TESSERA_DATABASE_URL", &server.database)
        .env("TESSERA_MASTER_KEY", support::MASTER_KEY)
        .status()
        .expect("python runs");
    assert!(status.success(), "{script} failed against the real server");
}

#[test]
fn signalwire_sdk_against_a_real_server() {
    run_suite("test_fabric_sdk.py", "signalwire.rest");
}

#[test]
fn vmware_sdk_against_a_real_server() {
    run_suite("test_accounts_sdk.py", "vmware.sddc_manager.v1_client");
}
