//! The served OpenAPI document against the real server, on both backends: a property-based API
//! tester (installed by scripts/setup.sh) generates a bounded number of requests per operation,
//! valid and invalid, from `GET /openapi.yaml`, and checks that the server never answers 5xx and
//! that every status it answers is one the document lists.

mod common;

use std::process::Command;

use common::{Backend, TestServer};
use furrow_server::on_both_backends;

/// Requests generated per operation and phase: enough to reach every documented status of
/// this contract, few enough for CI on two cores.
const EXAMPLES: &str = "100";

/// Where the tester is: `FURROW_API_TESTER` names it; otherwise the virtual environment
/// scripts/setup.sh installs it in, when there is one; otherwise the command on the path.
fn tester() -> String {
    if let Ok(path) = std::env::var("FURROW_API_TESTER") {
        return path;
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|value| !value.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".cache")));
    let installed = cache.map(|cache| cache.join("furrow/api-tester/bin/schemathesis"));
    match installed.filter(|path| path.is_file()) {
        Some(path) => path.to_string_lossy().into_owned(),
        None => "schemathesis".to_owned(),
    }
}

/// Runs the tester over the operations whose path matches (or, with `exclude`, does not match)
/// `paths`, sending `token`; returns its summary, failing the test with its whole output when it
/// finds a problem.
async fn run_tester(server: &TestServer, token: &str, paths: &str, exclude: bool) -> String {
    let (base, token, paths) = (server.url.clone(), token.to_owned(), paths.to_owned());
    let report = tempfile::tempdir().expect("a report directory");
    let report_dir = report.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(tester())
            .args(["run", &format!("{base}/openapi.yaml"), "--url", &base])
            .args([if exclude { "--exclude-path-regex" } else { "--include-path-regex" }, &paths])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--checks", "not_a_server_error,status_code_conformance"])
            .args(["--max-examples", EXAMPLES, "--seed", "14", "--workers", "1"])
            .args(["--generation-database", "none", "--no-color", "--request-timeout", "30"])
            .arg("--report-dir")
            .arg(&report_dir)
            .env("NO_COLOR", "1")
            // Teaches the tester to send upload chunks (tests/contract_hooks.py).
            .env("SCHEMATHESIS_HOOKS", "contract_hooks")
            .env("PYTHONPATH", concat!(env!("CARGO_MANIFEST_DIR"), "/tests"))
            .output()
    })
    .await
    .expect("task")
    .unwrap_or_else(|error| panic!("the API tester could not run ({error}); scripts/setup.sh installs it with pip"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the API tester found problems:\n{stdout}\n{stderr}");
    stdout.lines().filter(|line| line.contains(" generated, ")).map(str::trim).collect::<Vec<_>>().join(" ")
}

async fn the_served_contract_holds(kind: Backend) {
    let server = TestServer::seeded(kind);
    let token = server.login("alice").await.access_token;
    // The assistant's operations with an assistant's token, the platform's with the bootstrap
    // token, so neither is refused wholesale for the wrong credentials.
    let assistant = run_tester(&server, &token, "^/admin/", true).await;
    let platform = run_tester(&server, common::ADMIN_TOKEN, "^/admin/", false).await;
    // The tester's counts, kept in the test's output as the figures of this run.
    println!("{kind:?}: assistant operations: {assistant}; platform operations: {platform}");
}

on_both_backends!(
    async:
    the_served_contract_holds,
);
