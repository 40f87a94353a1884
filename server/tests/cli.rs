//! The operator commands, run as the real binary: what scripts depend on.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{postgres_url, Backend};
use furrow_server::on_both_backends;

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_furrow-server"))
}

/// Runs the binary with arguments and optional standard input; prints everything on failure.
fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = binary()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("FURROW_DATA_DIR")
        .env_remove("FURROW_DATABASE_URL")
        .spawn()
        .expect("start furrow-server");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn succeeds(args: &[&str], stdin: Option<&str>) -> String {
    let output = run(args, stdin);
    assert!(
        output.status.success(),
        "furrow-server {}\nstatus {:?}\nstdout {}\nstderr {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fails_with_usage(args: &[&str], stdin: Option<&str>, expected: &str) {
    let output = run(args, stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "furrow-server {} should exit 2; stderr {stderr}", args.join(" "));
    assert!(stderr.to_lowercase().contains(expected), "furrow-server {}: {stderr:?} should mention {expected:?}", args.join(" "));
}

fn manage_accounts(storage: &[&str]) {
    let with = |args: &[&'static str]| -> Vec<&str> { args.iter().copied().chain(storage.iter().copied()).collect() };
    succeeds(&with(&["village", "add", "--code", "520402101201", "--name", "石门村"]), None);
    succeeds(&with(&["village", "add", "--code", "520402101202", "--name", "龙潭村"]), None);
    let out = succeeds(
        &with(&["assistant", "add", "--username", "alice", "--password-stdin", "--village", "520402101201"]),
        Some("correct horse\n"),
    );
    assert!(out.contains("alice"), "{out}");
    succeeds(&with(&["assistant", "assign", "--username", "alice", "--village", "520402101202"]), None);
    succeeds(&with(&["assistant", "reset-password", "--username", "alice", "--password-stdin"]), Some("battery staple\n"));
    succeeds(&with(&["assistant", "disable", "--username", "alice"]), None);
    succeeds(&with(&["assistant", "disable", "--username", "alice", "--enable"]), None);
    // Wrong arguments and wrong input: a clear message and exit status 2.
    fails_with_usage(&with(&["village", "add", "--name", "无代码"]), None, "--code");
    fails_with_usage(&with(&["village", "add", "--code", "123", "--name", "短"]), None, "12-digit");
    fails_with_usage(&with(&["assistant", "add", "--username", "bob", "--password-stdin", "--village", "999999999999"]), Some("correct horse\n"), "999999999999");
    fails_with_usage(&with(&["assistant", "add", "--username", "alice", "--password-stdin"]), Some("correct horse\n"), "already exists");
    fails_with_usage(&with(&["assistant", "add", "--username", "carol", "--password-stdin"]), Some("short\n"), "8");
    // Weak passwords are refused: common ones, runs, and ones holding the user name.
    fails_with_usage(&with(&["assistant", "add", "--username", "carol", "--password-stdin"]), Some("12345678\n"), "run");
    fails_with_usage(&with(&["assistant", "add", "--username", "carol", "--password-stdin"]), Some("password\n"), "common");
    fails_with_usage(&with(&["assistant", "add", "--username", "carol", "--password-stdin"]), Some("carol2024!\n"), "user name");
    // An admin's account: the same password rules, no villages.
    fails_with_usage(&with(&["admin", "add", "--username", "lihong", "--password-stdin"]), Some("qwertyuiop\n"), "common");
    let out = succeeds(&with(&["admin", "add", "--username", "lihong", "--password-stdin"]), Some("tea terraces at dawn\n"));
    assert!(out.contains("admin lihong"), "{out}");
    // The bootstrap token never comes from the command line, and is long enough to be unguessable.
    fails_with_usage(&with(&["serve", "--admin-token", "0123456789abcdef0123456789abcdef"]), None, "process list");
    let short = std::env::temp_dir().join(format!("furrow-short-token-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&short, "too-short").expect("token file");
    let mut serve_short: Vec<&str> = vec!["serve", "--admin-token-file", short.to_str().expect("utf-8 path")];
    serve_short.extend(storage.iter().copied());
    fails_with_usage(&serve_short, None, "at least 32");
    let _ = std::fs::remove_file(&short);
    fails_with_usage(&with(&["assistant", "disable", "--username", "nobody"]), None, "nobody");
    fails_with_usage(&with(&["assistant", "frobnicate"]), None, "frobnicate");
    // Pruning keeps at least 180 days of history; a shorter horizon is refused before anything
    // is touched, and a missing or non-numeric one is a usage error too.
    fails_with_usage(&with(&["prune", "--older-than-days", "30"]), None, "at least 180");
    fails_with_usage(&with(&["prune", "--older-than-days", "-1"]), None, "180");
    fails_with_usage(&with(&["prune"]), None, "--older-than-days");
    fails_with_usage(&with(&["prune", "--older-than-days", "half a year"]), None, "invalid value");
    let out = succeeds(&with(&["prune", "--older-than-days", "180"]), None);
    assert!(out.contains("pruned 0 deleted rows") && out.contains("180 days"), "{out}");
    // After a restore from a backup the operator gives the history a new epoch; each run names
    // a fresh one.
    let epoch_of = |out: &str| out.split("epoch ").nth(1).and_then(|rest| rest.split(';').next()).map(str::to_owned);
    let first = succeeds(&with(&["new-epoch"]), None);
    let second = succeeds(&with(&["new-epoch"]), None);
    let (first, second) = (epoch_of(&first).expect(&first), epoch_of(&second).expect(&second));
    assert_eq!(first.len(), 16, "{first}");
    assert_ne!(first, second);
    fails_with_usage(&with(&["new-epoch", "--now"]), None, "--now");
}

/// The operator commands on a fresh SQLite data directory, or on PostgreSQL inside a schema of
/// their own named by the URL's options.
fn operator_commands(backend: Backend) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let data = dir.path().join("data");
            let data = data.to_str().expect("utf-8 path");
            manage_accounts(&["--data-dir", data]);
            assert!(dir.path().join("data/furrow.db").is_file());
        }
        Backend::Postgres => {
            let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
            let mut client = ::postgres::Client::connect(&postgres_url(), ::postgres::NoTls).expect("connect to PostgreSQL");
            client.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("schema");
            let url = format!("{}?options=-csearch_path%3D{schema}", postgres_url());
            manage_accounts(&["--database-url", &url]);
            let count: i64 = client
                .query_one(&format!("SELECT COUNT(*) FROM {schema}.users WHERE username = 'alice'"), &[])
                .expect("count")
                .get(0);
            assert_eq!(count, 1);
            client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).expect("drop");
        }
    }
}

#[test]
fn serve_answers_a_sign_in_made_by_the_operator_commands() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let data = data.to_str().expect("utf-8 path");
    succeeds(&["village", "add", "--data-dir", data, "--code", "520402101201", "--name", "石门村"], None);
    succeeds(
        &["assistant", "add", "--data-dir", data, "--username", "alice", "--password-stdin", "--village", "520402101201"],
        Some("correct horse\n"),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    let listen = format!("127.0.0.1:{port}");
    let mut server = binary()
        .args(["serve", "--data-dir", data, "--listen", &listen])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the server");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answer = String::new();
    while Instant::now() < deadline {
        if let Ok(mut stream) = std::net::TcpStream::connect(&listen) {
            let body = r#"{"username":"alice","password":"correct horse","device_name":"cli test"}"#;
            let request = format!(
                "POST /auth/v1/login HTTP/1.1\r\nHost: {listen}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).expect("send");
            stream.read_to_string(&mut answer).expect("read");
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"scopes\":[\"520402101201\"]"), "{answer}");
}

on_both_backends!(operator_commands);
