//! The server under attack (issue 14): guesses at passwords sent all at once or sprayed over
//! many accounts and addresses, floods of sign-ins, slow and half-sent requests, blobs named by
//! a hash learnt elsewhere, control characters in text, and weak passwords. Each test drives the
//! real server over HTTP or raw TCP on 127.0.0.1.

mod common;

use std::time::Duration;

use common::{Backend, TestServer};
use furrow_server::auth::{PasswordCost, SignInPolicy};
use furrow_server::on_both_backends;
use furrow_server::store;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// How long a test waits for something the server must do on its own (close a connection, stop)
/// before it calls the server stuck. Far above the short limits the tests configure, so a slow
/// machine never fails a test; only a server that never acts does.
const PATIENCE: Duration = Duration::from_secs(20);

/// A sign-in from `address` (the server trusts `X-Forwarded-For` in these tests); returns the
/// status and the `Retry-After` header.
async fn sign_in(server: &TestServer, username: &str, password: &str, address: &str) -> (u16, Option<String>) {
    let response = server
        .http
        .post(server.endpoint("/auth/v1/login"))
        .header("x-forwarded-for", address)
        .json(&json!({"username": username, "password": password, "device_name": "laptop"}))
        .send()
        .await
        .expect("sign-in request");
    let retry = response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
    (response.status().as_u16(), retry)
}

/// A server trusting `X-Forwarded-For`, so one test can speak from many addresses.
fn server_behind_proxy(kind: Backend) -> TestServer {
    TestServer::seeded_with(kind, |settings| settings.trust_forwarded_for = true)
}

// Finding 1: the limit holds under concurrency.

async fn guesses_sent_at_once_cannot_pass_the_limit(kind: Backend) {
    let server = server_behind_proxy(kind);
    let free = SignInPolicy::default().free_failures as usize;
    let mut guesses = JoinSet::new();
    for index in 0..250 {
        let (http, url) = (server.http.clone(), server.endpoint("/auth/v1/login"));
        guesses.spawn(async move {
            let body = json!({"username": "alice", "password": format!("guess-{index}"), "device_name": "x"});
            let response = http.post(url).header("x-forwarded-for", "203.0.113.9").json(&body).send().await.expect("guess");
            response.status().as_u16()
        });
    }
    let mut statuses = Vec::new();
    while let Some(status) = guesses.join_next().await {
        statuses.push(status.expect("guess task"));
    }
    let verified = statuses.iter().filter(|status| **status == 401).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert!(verified <= free, "{verified} of 250 guesses sent at once were verified; the limit is {free}");
    assert_eq!(verified + refused, 250, "every other guess is refused: {statuses:?}");
    // The right password from the attacker's address waits too; the user elsewhere gets in.
    let (status, retry) = sign_in(&server, "alice", "correct horse", "203.0.113.9").await;
    assert_eq!(status, 429);
    assert!(retry.is_some_and(|seconds| seconds.parse::<u64>().is_ok_and(|seconds| seconds >= 1)));
    assert_eq!(sign_in(&server, "alice", "correct horse", "198.51.100.20").await.0, 200);
}

// Finding 2: password verifications are bounded; the rest wait or are told to come back.

async fn sign_ins_beyond_the_queue_are_told_to_come_back(kind: Backend) {
    let server = TestServer::seeded_with(kind, |settings| {
        settings.trust_forwarded_for = true;
        settings.password_concurrency = Some((1, 2));
    });
    // Every verification slot is taken, so the sign-ins queue behind it.
    let held = server.state.password_gate().hold_all().await;
    let mut sign_ins = JoinSet::new();
    for index in 0..10 {
        let (http, url) = (server.http.clone(), server.endpoint("/auth/v1/login"));
        sign_ins.spawn(async move {
            let body = json!({"username": "alice", "password": "correct horse", "device_name": "x"});
            let response =
                http.post(url).header("x-forwarded-for", format!("198.51.100.{index}")).json(&body).send().await.expect("sign-in");
            let retry = response.headers().get("retry-after").and_then(|value| value.to_str().ok()).map(str::to_owned);
            let status = response.status().as_u16();
            let error = response.json::<Value>().await.ok().and_then(|body| body["error"].as_str().map(str::to_owned));
            (status, retry, error)
        });
    }
    // Two wait their turn; the other eight are refused at once, with a time to come back.
    for _ in 0..8 {
        let (status, retry, error) = sign_ins.join_next().await.expect("an answer").expect("task");
        assert_eq!((status, error.as_deref()), (503, Some("busy")));
        assert!(retry.is_some_and(|seconds| seconds.parse::<u64>().is_ok_and(|seconds| seconds >= 1)));
    }
    drop(held);
    while let Some(answer) = sign_ins.join_next().await {
        let (status, _, _) = answer.expect("task");
        assert_eq!(status, 200, "a sign-in that waited its turn gets in");
    }
    // A refused sign-in did not count as a failed one: the accounts sign in as before.
    assert_eq!(sign_in(&server, "alice", "correct horse", "198.51.100.0").await.0, 200);
}

// Finding 4: the attacker slows himself, not the assistant, and spraying is stopped.

async fn an_attacker_slows_himself_not_the_assistant(kind: Backend) {
    let server = server_behind_proxy(kind);
    let attacker = "203.0.113.50";
    for _ in 0..5 {
        assert_eq!(sign_in(&server, "alice", "wrong password", attacker).await.0, 401);
    }
    assert_eq!(sign_in(&server, "alice", "wrong password", attacker).await.0, 429, "the attacker waits");
    // The assistant, from another address, gets in at once.
    assert_eq!(sign_in(&server, "alice", "correct horse", "198.51.100.7").await.0, 200);
    // Another assistant behind the attacker's address (a township NAT) is not locked out.
    assert_eq!(sign_in(&server, "bob", "correct horse", attacker).await.0, 200);
}

async fn spraying_many_accounts_from_many_addresses_is_stopped(kind: Backend) {
    let server = server_behind_proxy(kind);
    let accounts: Vec<String> = (0..20).map(|index| format!("user{index:02}")).collect();
    let database = server.state.database().clone();
    let names = accounts.clone();
    tokio::task::spawn_blocking(move || {
        let hash = furrow_server::auth::hash_password("correct horse", PasswordCost::CHEAP_FOR_TESTS).expect("hash");
        store::write(database.as_ref(), |tx| {
            for name in &names {
                furrow_server::platform::add_assistant(tx, name, &hash, &[common::VILLAGE_A.to_owned()])?;
            }
            Ok(())
        })
    })
    .await
    .expect("task")
    .expect("accounts");
    // The assistants signed in from home before the attack.
    for account in &accounts {
        assert_eq!(sign_in(&server, account, "correct horse", "198.51.100.1").await.0, 200);
    }
    // 20 addresses × 20 accounts × 4 guesses, every address staying under the free failures.
    let mut verified = std::collections::HashMap::<String, usize>::new();
    let mut refused = 0;
    for (round, address) in (0..4).flat_map(|round| (0..20).map(move |address| (round, address))) {
        // One address guesses at every account at once; the addresses take turns.
        let mut guesses = JoinSet::new();
        {
            for account in &accounts {
                let (http, url, account) = (server.http.clone(), server.endpoint("/auth/v1/login"), account.clone());
                guesses.spawn(async move {
                    let body = json!({"username": account, "password": format!("spray-{round}"), "device_name": "x"});
                    let response =
                        http.post(url).header("x-forwarded-for", format!("203.0.113.{address}")).json(&body).send().await.expect("guess");
                    (account, response.status().as_u16())
                });
            }
        }
        while let Some(answer) = guesses.join_next().await {
            let (account, status) = answer.expect("task");
            match status {
                401 => *verified.entry(account).or_default() += 1,
                429 => refused += 1,
                other => panic!("a guess got {other}"),
            }
        }
    }
    let ceiling = SignInPolicy::default().account_ceiling as usize;
    for account in &accounts {
        let count = verified.get(account).copied().unwrap_or(0);
        assert!(count <= ceiling, "{count} guesses at {account} were verified; the ceiling is {ceiling}");
    }
    assert!(refused >= 1600 - 20 * ceiling, "only {refused} of 1,600 sprayed guesses were refused");
    // The assistants still get in from where they signed in before; a new address waits.
    for account in &accounts {
        assert_eq!(sign_in(&server, account, "correct horse", "198.51.100.1").await.0, 200, "{account} from home");
    }
    assert_eq!(sign_in(&server, "user03", "correct horse", "192.0.2.77").await.0, 429);
}

// Finding 3: slow and half-sent requests, too many connections, and a bounded shutdown.

/// Reads from a raw connection until the server closes it; returns what it sent, or `None` if it
/// kept the connection open past [`PATIENCE`].
async fn read_until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let outcome = tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(count) => received.extend_from_slice(&buffer[..count]),
            }
        }
    })
    .await;
    outcome.ok().map(|()| String::from_utf8_lossy(&received).into_owned())
}

fn address_of(server: &TestServer) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn half_sent_headers_are_cut_off() {
    let server = TestServer::seeded_with(Backend::Sqlite, |settings| settings.connections.header_timeout = Duration::from_millis(300));
    let mut stream = TcpStream::connect(address_of(&server)).await.expect("connect");
    stream.write_all(b"POST /auth/v1/login HTTP/1.1\r\nHost: furrow\r\nContent-Type: application/json\r\n").await.expect("write");
    assert!(read_until_closed(&mut stream).await.is_some(), "a request whose headers never end holds its connection");
    // Legitimate requests are served meanwhile and after.
    let health = server.http.get(server.endpoint("/health")).send().await.expect("health");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_body_trickled_a_byte_at_a_time_is_refused() {
    let server = TestServer::seeded_with(Backend::Sqlite, |settings| {
        settings.connections.body_grace = Duration::from_millis(300);
        settings.connections.body_min_rate = 100;
    });
    let mut stream = TcpStream::connect(address_of(&server)).await.expect("connect");
    stream
        .write_all(b"POST /auth/v1/login HTTP/1.1\r\nHost: furrow\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n")
        .await
        .expect("write");
    let (mut reader, mut writer) = stream.into_split();
    // One byte every 100 ms is 10 bytes per second, a tenth of the least pace; the writer stops
    // after 80 bytes whatever the server does.
    let trickle = tokio::spawn(async move {
        for _ in 0..80 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        writer
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(count) => {
                    answer.extend_from_slice(&buffer[..count]);
                    if answer.windows(4).any(|window| window == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the trickled body was waited for without end");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    trickle.abort();
}

#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = TestServer::seeded_with(Backend::Sqlite, |settings| settings.connections.max_connections_per_address = 3);
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(address_of(&server)).await.expect("connect"));
    }
    // The connections are served one by one, so a request on each proves they are counted.
    for stream in &mut idle {
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: furrow\r\n\r\n").await.expect("write");
        let mut buffer = [0u8; 1024];
        let count = stream.read(&mut buffer).await.expect("read");
        assert!(String::from_utf8_lossy(&buffer[..count]).starts_with("HTTP/1.1 200"));
    }
    let mut fourth = TcpStream::connect(address_of(&server)).await.expect("connect");
    let _ = fourth.write_all(b"GET /health HTTP/1.1\r\nHost: furrow\r\n\r\n").await;
    let answer = read_until_closed(&mut fourth).await.expect("the fourth connection is closed, not kept waiting");
    assert!(!answer.contains("200 OK"), "the fourth connection was served: {answer}");
    // Once one closes, the address is served again.
    drop(idle.pop());
    let mut served = false;
    for _ in 0..200 {
        let mut again = TcpStream::connect(address_of(&server)).await.expect("connect");
        let _ = again.write_all(b"GET /health HTTP/1.1\r\nHost: furrow\r\nConnection: close\r\n\r\n").await;
        if read_until_closed(&mut again).await.is_some_and(|answer| answer.starts_with("HTTP/1.1 200")) {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "a connection freed by the address is never reused");
}

#[tokio::test]
async fn the_server_holds_no_more_connections_than_its_limit() {
    let server = TestServer::seeded_with(Backend::Sqlite, |settings| settings.connections.max_connections = 2);
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(address_of(&server)).await.expect("connect");
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: furrow\r\n\r\n").await.expect("write");
        let mut buffer = [0u8; 1024];
        let count = stream.read(&mut buffer).await.expect("read");
        assert!(String::from_utf8_lossy(&buffer[..count]).starts_with("HTTP/1.1 200"));
        held.push(stream);
    }
    // A third client waits in the listen queue while both places are taken: no answer comes.
    let mut third = TcpStream::connect(address_of(&server)).await.expect("connect");
    third.write_all(b"GET /health HTTP/1.1\r\nHost: furrow\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut buffer = [0u8; 1024];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buffer)).await;
    assert!(early.is_err(), "a third connection was served beside two held ones");
    // Once a place is free it is served.
    drop(held.pop());
    let answer = read_until_closed(&mut third).await.expect("the waiting connection is served once a place is free");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_stopping_server_does_not_wait_for_requests_that_never_end() {
    let backend = std::sync::Arc::new(common::TestStorage::new(Backend::Sqlite));
    let opened = backend.clone();
    let state = tokio::task::spawn_blocking(move || {
        let database = opened.open();
        common::seed(database.as_ref());
        let blobs = opened.blobs();
        let mut settings = furrow_server::Settings { password_cost: PasswordCost::CHEAP_FOR_TESTS, ..Default::default() };
        settings.connections.header_timeout = Duration::from_secs(3600);
        settings.connections.shutdown_grace = Duration::from_millis(300);
        furrow_server::AppState::new(database, blobs, settings).expect("state")
    })
    .await
    .expect("task");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(furrow_server::http::serve_until(listener, state, async move {
        let _ = stopped.await;
    }));
    let mut half_sent = TcpStream::connect(address).await.expect("connect");
    half_sent.write_all(b"POST /sync/v1/push HTTP/1.1\r\nHost: furrow\r\n").await.expect("write");
    let mut slow_body = TcpStream::connect(address).await.expect("connect");
    slow_body.write_all(b"POST /auth/v1/login HTTP/1.1\r\nHost: furrow\r\nContent-Length: 100\r\n\r\n{").await.expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).expect("stop");
    let finished = tokio::time::timeout(PATIENCE, serving).await;
    assert!(finished.is_ok(), "the server kept waiting for requests that never end");
    finished.expect("in time").expect("task").expect("served");
}

// Finding 5: blobs are scoped by village.

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Uploads `bytes` in one chunk; returns the status of the chunk.
async fn upload(server: &TestServer, token: &str, bytes: &[u8]) -> u16 {
    let created = server
        .http
        .post(server.endpoint("/blobs/uploads"))
        .bearer_auth(token)
        .json(&json!({"sha256": digest(bytes), "size": bytes.len(), "mime": "image/jpeg"}))
        .send()
        .await
        .expect("create upload");
    assert_eq!(created.status(), 201, "a new upload");
    let location = created.headers()["location"].to_str().expect("location").to_owned();
    let chunk = server
        .http
        .patch(server.endpoint(&location))
        .bearer_auth(token)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("chunk");
    chunk.status().as_u16()
}

/// A household and a photo of it in `village` naming `sha256` and `thumb_sha256`.
fn household_photo(device: &mut common::Device, village: &str, sha256: &str, thumb_sha256: &str, size: usize) -> Vec<furrow_contract::wire::Change> {
    let (household, photo) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let stamp = common::now_hlc(0);
    let mut changes = device.household(village, &household, "王大山", stamp);
    for (field, value) in [
        ("scope_id", json!(village)),
        ("owner_type", json!("household")),
        ("owner_id", json!(household)),
        ("sha256", json!(sha256)),
        ("bytes", json!(size)),
        ("kind", json!("household")),
        ("thumb_sha256", json!(thumb_sha256)),
    ] {
        changes.push(device.change("photos", &photo, field, value, stamp, None));
    }
    changes
}

async fn blob_status(server: &TestServer, token: &str, method: reqwest::Method, sha256: &str) -> u16 {
    let request = server.http.request(method, server.endpoint(&format!("/blobs/{sha256}"))).bearer_auth(token);
    request.send().await.expect("blob request").status().as_u16()
}

async fn blobs_are_readable_only_where_they_were_uploaded_or_legitimately_named(kind: Backend) {
    let server = TestServer::seeded(kind);
    let database = server.state.database().clone();
    tokio::task::spawn_blocking(move || {
        let hash = furrow_server::auth::hash_password("correct horse", PasswordCost::CHEAP_FOR_TESTS).expect("hash");
        store::write(database.as_ref(), |tx| furrow_server::platform::add_assistant(tx, "carol", &hash, &[common::VILLAGE_A.to_owned()]))
    })
    .await
    .expect("task")
    .expect("carol");
    let (alice, bob, carol) = (
        server.login("alice").await.access_token,
        server.login("bob").await.access_token,
        server.login("carol").await.access_token,
    );
    let photo: Vec<u8> = (0..50_000u32).map(|index| (index % 241) as u8).collect();
    let thumb: Vec<u8> = (0..5_000u32).map(|index| (index % 199) as u8).collect();
    let (photo_sha, thumb_sha) = (digest(&photo), digest(&thumb));
    assert_eq!(upload(&server, &alice, &photo).await, 204);
    assert_eq!(upload(&server, &alice, &thumb).await, 204);
    let mut laptop = common::Device::new();
    let changes = household_photo(&mut laptop, common::VILLAGE_A, &photo_sha, &thumb_sha, photo.len());
    let (status, body) = server.push(&alice, &laptop.batch(changes)).await;
    assert_eq!(status, 200, "{body}");
    // Another assistant of the village reads the photo and its thumbnail.
    for sha in [&photo_sha, &thumb_sha] {
        assert_eq!(blob_status(&server, &carol, reqwest::Method::GET, sha).await, 200, "carol reads {sha}");
    }
    // An assistant of another village learns nothing of them: not their existence, nor their size.
    for method in [reqwest::Method::HEAD, reqwest::Method::GET] {
        assert_eq!(blob_status(&server, &bob, method, &photo_sha).await, 404);
    }
    let dedupe = server
        .http
        .post(server.endpoint("/blobs/uploads"))
        .bearer_auth(&bob)
        .json(&json!({"sha256": photo_sha, "size": photo.len(), "mime": "image/jpeg"}))
        .send()
        .await
        .expect("create upload");
    assert_eq!(dedupe.status(), 201, "the upload is not skipped for someone who cannot read the blob");
    // Naming the hash in a photo of his own village is stored like any photo, and grants nothing.
    let mut phone = common::Device::new();
    let changes = household_photo(&mut phone, common::VILLAGE_B, &photo_sha, &thumb_sha, photo.len());
    let (status, body) = server.push(&bob, &phone.batch(changes)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["results"].as_array().expect("results").iter().all(|result| result["status"] == "applied"), "{body}");
    for sha in [&photo_sha, &thumb_sha] {
        assert_eq!(blob_status(&server, &bob, reqwest::Method::GET, sha).await, 404, "bob reads {sha} through a forged photo");
        assert_eq!(blob_status(&server, &bob, reqwest::Method::HEAD, sha).await, 404);
    }
    // Sending the bytes proves he has them: then he, and his village, may read them.
    assert_eq!(upload(&server, &bob, &photo).await, 204);
    assert_eq!(blob_status(&server, &bob, reqwest::Method::GET, &photo_sha).await, 200);
    assert_eq!(blob_status(&server, &bob, reqwest::Method::GET, &thumb_sha).await, 404, "the thumbnail's bytes were never sent");
}

// Finding 6: control characters in text are refused with 400 control_character.

/// The server's sequence counter: unchanged means nothing synced was written.
async fn written(server: &TestServer) -> i64 {
    let database = server.state.database().clone();
    tokio::task::spawn_blocking(move || store::read(database.as_ref(), |tx| tx.current_seq())).await.expect("task").expect("read")
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("an error body");
    (status, body["error"].as_str().unwrap_or_default().to_owned())
}

async fn control_characters_are_refused(kind: Backend) {
    let server = TestServer::seeded(kind);
    let control = |status_and_code: (u16, String)| assert_eq!(status_and_code, (400, "control_character".to_owned()));
    // A sign-in without a token, its user name holding a NUL.
    let response = server
        .http
        .post(server.endpoint("/auth/v1/login"))
        .json(&json!({"username": "ali\u{0}ce", "password": "correct horse", "device_name": "laptop"}))
        .send()
        .await
        .expect("sign-in");
    control(error_code(response).await);
    let response = server
        .http
        .post(server.endpoint("/auth/v1/login"))
        .json(&json!({"username": "alice", "password": "correct horse", "device_name": "lap\ntop"}))
        .send()
        .await
        .expect("sign-in");
    control(error_code(response).await);
    let token = server.login("alice").await.access_token;
    let mut device = common::Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let (status, _) = server.push(&token, &device.household_batch(common::VILLAGE_A, &household, "王大山", common::now_hlc(0))).await;
    assert_eq!(status, 200);
    let before = written(&server).await;
    let push = |changes: Vec<furrow_contract::wire::Change>, device: &common::Device| {
        let request = device.batch(changes);
        server.http.post(server.endpoint("/sync/v1/push")).bearer_auth(&token).json(&request).send()
    };
    // A NUL in an id, and a newline or a NUL in a one-line name, refuse the batch whole.
    let mut nul_id = device.change("households", &household, "group_name", json!("三组"), common::now_hlc(1), None);
    nul_id.change_id = "change\u{0}1".into();
    control(error_code(push(vec![nul_id], &device).await.expect("push")).await);
    let newline = device.change("households", &household, "head_name", json!("王\n大山"), common::now_hlc(2), None);
    control(error_code(push(vec![newline], &device).await.expect("push")).await);
    let nul = device.change("households", &household, "notes", json!("a\u{0}b"), common::now_hlc(3), None);
    control(error_code(push(vec![nul], &device).await.expect("push")).await);
    assert_eq!(written(&server).await, before, "nothing of a refused batch is written");
    // A path or a query holding one is refused before anything is looked up.
    let response = server
        .http
        .post(server.endpoint("/admin/v1/assistants/ali%00ce/status"))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("status");
    control(error_code(response).await);
    let response = server.http.get(server.endpoint("/sync/v1/pull?cursor=%00")).bearer_auth(&token).send().await.expect("pull");
    control(error_code(response).await);
    // Notes may run over lines and hold tabs.
    let notes = device.change("households", &household, "notes", json!("第一行\n第二行\t备注"), common::now_hlc(4), None);
    let response = push(vec![notes], &device).await.expect("push");
    assert_eq!(response.status(), 200);
}

// Finding 7: weak passwords are refused.

async fn weak_passwords_are_refused(kind: Backend) {
    let server = TestServer::seeded(kind);
    let create = |username: &str, password: &str| {
        server
            .http
            .post(server.endpoint("/admin/v1/assistants"))
            .bearer_auth(common::ADMIN_TOKEN)
            .json(&json!({"username": username, "password": password, "villages": [common::VILLAGE_A]}))
            .send()
    };
    for (username, password) in [
        ("carol", "12345678"),
        ("carol", "password"),
        ("carol", "PassWord"),
        ("carol", "        "),
        ("carol", "qwertyuiop"),
        ("carol", "woaini1314"),
        ("carol", "88888888"),
        ("carol", "abcdefghi"),
        ("carol", "carol.2024"),
        ("carolwang", "CarolWang"),
        ("carol", "short"),
    ] {
        let (status, code) = error_code(create(username, password).await.expect("create")).await;
        assert_eq!((status, code.as_str()), (400, "weak_password"), "{username} / {password:?}");
    }
    // A phrase nobody has on a list is fine, composition rules or not.
    let response = create("carol", "山高水长种满核桃").await.expect("create");
    assert_eq!(response.status(), 201);
    let response = create("dave", "tea garden on the hill").await.expect("create");
    assert_eq!(response.status(), 201);
}

// Finding 8: refresh tokens and sessions.

async fn sign_in_from(server: &TestServer, device: &str) -> furrow_contract::wire::TokenResponse {
    let response = server
        .http
        .post(server.endpoint("/auth/v1/login"))
        .header("x-client-id", device)
        .json(&json!({"username": "alice", "password": "correct horse", "device_name": "laptop"}))
        .send()
        .await
        .expect("sign-in");
    assert_eq!(response.status(), 200);
    response.json().await.expect("tokens")
}

async fn refresh_from(server: &TestServer, device: &str, refresh_token: &str) -> (u16, Option<furrow_contract::wire::TokenResponse>) {
    let response = server
        .http
        .post(server.endpoint("/auth/v1/refresh"))
        .header("x-client-id", device)
        .json(&json!({"refresh_token": refresh_token}))
        .send()
        .await
        .expect("refresh");
    let status = response.status().as_u16();
    (status, if status == 200 { response.json().await.ok() } else { None })
}

async fn pull_status(server: &TestServer, access_token: &str) -> u16 {
    server.pull(access_token, None, 10).await.0
}

async fn sessions_resist_stolen_tokens(kind: Backend) {
    let server = TestServer::seeded(kind);
    let laptop = common::Device::new().id();
    // A refresh token used twice (a stolen copy) revokes the whole session, the new tokens too.
    let first = sign_in_from(&server, &laptop).await;
    let (status, second) = refresh_from(&server, &laptop, &first.refresh_token).await;
    assert_eq!(status, 200);
    let second = second.expect("tokens");
    assert_eq!(pull_status(&server, &second.access_token).await, 200);
    assert_eq!(refresh_from(&server, &laptop, &first.refresh_token).await.0, 401, "the rotated token is refused");
    assert_eq!(pull_status(&server, &second.access_token).await, 401, "the session's newer access token is revoked");
    assert_eq!(refresh_from(&server, &laptop, &second.refresh_token).await.0, 401, "the session's newer refresh token is revoked");
    // A session is bound to its device: a refresh from another device revokes it, and a push
    // naming another device is refused.
    let tokens = sign_in_from(&server, &laptop).await;
    let mut thief = common::Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let (status, body) = server.push(&tokens.access_token, &thief.household_batch(common::VILLAGE_A, &household, "王大山", common::now_hlc(0))).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
    assert_eq!(refresh_from(&server, &thief.id(), &tokens.refresh_token).await.0, 401);
    assert_eq!(pull_status(&server, &tokens.access_token).await, 401, "the session is revoked");
    // At most ten sessions an account: the eleventh sign-in ends the oldest.
    let mut sessions = Vec::new();
    for _ in 0..11 {
        sessions.push(sign_in_from(&server, &common::Device::new().id()).await);
    }
    assert_eq!(pull_status(&server, &sessions[0].access_token).await, 401, "the oldest session ended");
    for tokens in &sessions[1..] {
        assert_eq!(pull_status(&server, &tokens.access_token).await, 200);
    }
}

async fn a_session_ends_at_its_absolute_lifetime(kind: Backend) {
    // Sessions that last a moment: the refresh after it is refused however recently the
    // refresh token was issued.
    let server = TestServer::seeded_with(kind, |settings| settings.lifetimes.session_ms = 1);
    let laptop = common::Device::new().id();
    let tokens = sign_in_from(&server, &laptop).await;
    assert!(tokens.expires_at <= furrow_contract::hlc::wall_ms() + 1000, "the access token ends with the session");
    assert_eq!(refresh_from(&server, &laptop, &tokens.refresh_token).await.0, 401);
}

// Finding 10: a photo's owner, implausible dates, racing chunks, and foreign row ids.

fn results(body: &Value) -> Vec<(String, String, String)> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| {
            let text = |name: &str| result[name].as_str().unwrap_or_default().to_owned();
            (text("status"), text("reason"), text("message"))
        })
        .collect()
}

async fn small_checks_hold(kind: Backend) {
    let server = TestServer::seeded(kind);
    let alice = server.login("alice").await.access_token;
    let bob = server.login("bob").await.access_token;
    let mut laptop = common::Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let (status, _) = server.push(&alice, &laptop.household_batch(common::VILLAGE_A, &household, "王大山", common::now_hlc(0))).await;
    assert_eq!(status, 200);
    // A photo's owner must exist and be of the kind the photo declares.
    let photo = |device: &mut common::Device, owner_type: &str, owner_id: &str| {
        let row = uuid::Uuid::now_v7().to_string();
        let stamp = common::now_hlc(1);
        [
            ("scope_id", json!(common::VILLAGE_A)),
            ("owner_type", json!(owner_type)),
            ("owner_id", json!(owner_id)),
            ("sha256", json!("a".repeat(64))),
            ("bytes", json!(1000)),
            ("kind", json!("household")),
        ]
        .into_iter()
        .map(|(field, value)| device.change("photos", &row, field, value, stamp, None))
        .collect::<Vec<_>>()
    };
    for (owner_type, owner_id) in [("listing", household.clone()), ("household", uuid::Uuid::now_v7().to_string())] {
        let changes = photo(&mut laptop, owner_type, &owner_id);
        let (status, body) = server.push(&alice, &laptop.batch(changes)).await;
        assert_eq!(status, 200);
        assert!(results(&body).iter().all(|(status, reason, _)| status == "rejected" && reason == "invalid_record"), "{body}");
    }
    let changes = photo(&mut laptop, "household", &household);
    let (_, body) = server.push(&alice, &laptop.batch(changes)).await;
    assert!(results(&body).iter().all(|(status, _, _)| status == "applied"), "{body}");
    // A date in the year 9999 is refused like any value that cannot be right.
    let member = uuid::Uuid::now_v7().to_string();
    let mut changes = laptop.member(common::VILLAGE_A, &member, &household, "王小梅", common::now_hlc(2));
    changes.push(laptop.change("members", &member, "birth_date", json!("9999-12-31"), common::now_hlc(2), None));
    let (status, body) = server.push(&alice, &laptop.batch(changes)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_value")), "{body}");
    assert!(body["message"].as_str().is_some_and(|message| message.contains("implausible_date")), "{body}");
    // A row of another village is answered exactly like a row that does not exist, and a
    // reference to it exactly like a reference to nothing.
    let mut phone = common::Device::new();
    let unknown = uuid::Uuid::now_v7().to_string();
    let edit = |device: &mut common::Device, row: &str| device.change("households", row, "head_name", json!("冒名"), common::now_hlc(3), None);
    let changes = vec![edit(&mut phone, &household)];
    let (_, foreign) = server.push(&bob, &phone.batch(changes)).await;
    let changes = vec![edit(&mut phone, &unknown)];
    let (_, missing) = server.push(&bob, &phone.batch(changes)).await;
    assert_eq!(results(&foreign), results(&missing));
    let pointing = |device: &mut common::Device, target: &str| {
        device.member(common::VILLAGE_B, &uuid::Uuid::now_v7().to_string(), target, "李四", common::now_hlc(4))
    };
    let changes = pointing(&mut phone, &household);
    let (_, foreign) = server.push(&bob, &phone.batch(changes)).await;
    let changes = pointing(&mut phone, &unknown);
    let (_, missing) = server.push(&bob, &phone.batch(changes)).await;
    assert_eq!(results(&foreign), results(&missing));
    assert!(results(&foreign).iter().all(|(status, _, _)| status == "rejected"), "{foreign}");
}

async fn chunks_racing_at_one_offset_cannot_corrupt_an_upload(kind: Backend) {
    let server = TestServer::seeded(kind);
    let token = server.login("alice").await.access_token;
    for round in 0..20u32 {
        let photo: Vec<u8> = (0..4000u32).map(|index| ((index * 7 + round) % 251) as u8).collect();
        let forged: Vec<u8> = photo[..2000].iter().map(|byte| byte ^ 0xff).collect();
        let created = server
            .http
            .post(server.endpoint("/blobs/uploads"))
            .bearer_auth(&token)
            .json(&json!({"sha256": digest(&photo), "size": photo.len(), "mime": "image/jpeg"}))
            .send()
            .await
            .expect("create upload");
        let location = created.headers()["location"].to_str().expect("location").to_owned();
        let chunk = |offset: usize, bytes: Vec<u8>| {
            server
                .http
                .patch(server.endpoint(&location))
                .bearer_auth(&token)
                .header("Upload-Offset", offset.to_string())
                .header("Content-Type", "application/offset+octet-stream")
                .body(bytes)
                .send()
        };
        let (right, wrong) = tokio::join!(chunk(0, photo[..2000].to_vec()), chunk(0, forged.clone()));
        let (right, wrong) = (right.expect("chunk").status().as_u16(), wrong.expect("chunk").status().as_u16());
        let mut outcome = [right, wrong];
        outcome.sort();
        assert_eq!(outcome, [204, 409], "one chunk wins, the other is refused");
        // What the winner sent is what the partial file holds: the rest completes the blob
        // when the right bytes won, and fails its digest when the forged ones did.
        let last = chunk(2000, photo[2000..].to_vec()).await.expect("chunk").status().as_u16();
        if right == 204 {
            assert_eq!(last, 204, "round {round}: the right bytes won, yet the upload is corrupt");
            let stored = server.http.get(server.endpoint(&format!("/blobs/{}", digest(&photo)))).bearer_auth(&token).send().await.expect("get");
            assert_eq!(stored.bytes().await.expect("bytes").as_ref(), photo.as_slice());
        } else {
            assert_eq!(last, 422, "round {round}: the forged bytes won, yet the digest matched");
        }
    }
}

// Finding 9: admins are named accounts; the bootstrap token is long and rate-limited.

async fn admin_moderation(server: &TestServer, token: &str, listing: &str, body: Value) -> reqwest::Response {
    server
        .http
        .post(server.endpoint(&format!("/admin/v1/listings/{listing}/moderation")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("moderation")
}

async fn admins_are_named_accounts(kind: Backend) {
    let server = server_behind_proxy(kind);
    let database = server.state.database().clone();
    tokio::task::spawn_blocking(move || {
        let hash = furrow_server::auth::hash_password("tea terraces at dawn", PasswordCost::CHEAP_FOR_TESTS).expect("hash");
        store::write(database.as_ref(), |tx| furrow_server::platform::add_admin(tx, "lihong", &hash))
    })
    .await
    .expect("task")
    .expect("admin");
    let alice = server.login("alice").await.access_token;
    let mut device = common::Device::new();
    let (product, listing) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let mut changes = device.product(common::VILLAGE_A, &product, common::now_hlc(0));
    changes.extend(device.listing(common::VILLAGE_A, &listing, &product, common::now_hlc(0)));
    assert_eq!(server.push(&alice, &device.batch(changes)).await.0, 200);
    // The admin signs in like an assistant, and the moderator recorded is the admin, whatever
    // name the body gives.
    let (status, _) = sign_in(&server, "lihong", "tea terraces at dawn", "198.51.100.60").await;
    assert_eq!(status, 200);
    let response = server
        .http
        .post(server.endpoint("/auth/v1/login"))
        .header("x-forwarded-for", "198.51.100.60")
        .json(&json!({"username": "lihong", "password": "tea terraces at dawn", "device_name": "office"}))
        .send()
        .await
        .expect("sign-in");
    let admin: furrow_contract::wire::TokenResponse = response.json().await.expect("tokens");
    let verdict = json!({"moderator": "somebody-else", "moderation_status": "approved"});
    assert_eq!(admin_moderation(&server, &admin.access_token, &listing, verdict.clone()).await.status(), 204);
    let database = server.state.database().clone();
    let id = listing.clone();
    let stored = tokio::task::spawn_blocking(move || store::read(database.as_ref(), |tx| tx.field("listings", &id, "moderation_status")))
        .await
        .expect("task")
        .expect("read")
        .expect("moderated");
    assert_eq!(stored.actor, "moderator:lihong");
    // An assistant's token opens nothing there; the bootstrap token still works.
    assert_eq!(admin_moderation(&server, &alice, &listing, verdict.clone()).await.status(), 401);
    assert_eq!(admin_moderation(&server, common::ADMIN_TOKEN, &listing, verdict.clone()).await.status(), 204);
    // An admin's sign-in is limited like anyone's.
    for _ in 0..5 {
        assert_eq!(sign_in(&server, "lihong", "wrong password", "203.0.113.70").await.0, 401);
    }
    assert_eq!(sign_in(&server, "lihong", "tea terraces at dawn", "203.0.113.70").await.0, 429);
    // Guesses at the bootstrap token from one address are slowed down like guesses at a password.
    let guess = |token: String| {
        server
            .http
            .post(server.endpoint(&format!("/admin/v1/listings/{listing}/moderation")))
            .header("x-forwarded-for", "203.0.113.80")
            .bearer_auth(token)
            .json(&json!({"sold_out": true}))
            .send()
    };
    for index in 0..5 {
        assert_eq!(guess(format!("guess-{index:032}")).await.expect("guess").status(), 401);
    }
    assert_eq!(guess(common::ADMIN_TOKEN.to_owned()).await.expect("guess").status(), 429);
}

#[tokio::test]
async fn a_short_bootstrap_token_is_refused() {
    let backend = common::TestStorage::new(Backend::Sqlite);
    let refused = tokio::task::spawn_blocking(move || {
        let database = backend.open();
        let blobs = backend.blobs();
        let settings = furrow_server::Settings { admin_token: Some("short-token".into()), ..Default::default() };
        furrow_server::AppState::new(database, blobs, settings).err().map(|error| error.to_string())
    })
    .await
    .expect("task");
    assert!(refused.is_some_and(|message| message.contains("weak_admin_token")));
}

// Finding 11: the audit log.

async fn audit_entries(server: &TestServer, token: &str) -> (u16, Vec<Value>) {
    let response = server.http.get(server.endpoint("/admin/v1/audit?limit=1000")).bearer_auth(token).send().await.expect("audit");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["entries"].as_array().cloned().unwrap_or_default())
}

async fn sign_ins_admin_actions_and_scope_changes_are_audited(kind: Backend) {
    let server = server_behind_proxy(kind);
    assert_eq!(sign_in(&server, "alice", "correct horse", "198.51.100.90").await.0, 200);
    assert_eq!(sign_in(&server, "alice", "wrong password", "203.0.113.91").await.0, 401);
    let assigned = server
        .http
        .post(server.endpoint("/admin/v1/assistants/alice/villages"))
        .header("x-forwarded-for", "198.51.100.92")
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"villages": [common::VILLAGE_B]}))
        .send()
        .await
        .expect("assign");
    assert_eq!(assigned.status(), 200);
    let (status, entries) = audit_entries(&server, common::ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    let has = |kind: &str, actor: &str, address: &str, subject: &str| {
        entries.iter().any(|entry| entry["kind"] == kind && entry["actor"] == actor && entry["address"] == address && entry["subject"] == subject)
    };
    assert!(has("sign_in", "alice", "198.51.100.90", "alice"), "{entries:#?}");
    assert!(has("sign_in_failed", "alice", "203.0.113.91", "alice"), "{entries:#?}");
    assert!(has("scope_change", "bootstrap", "198.51.100.92", "alice"), "{entries:#?}");
    assert!(has("admin_action", "bootstrap", "198.51.100.92", "POST /admin/v1/assistants/alice/villages"), "{entries:#?}");
    let ids: Vec<i64> = entries.iter().filter_map(|entry| entry["id"].as_i64()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] > pair[1]), "newest first");
    // Only admins read it.
    let alice = server.login("alice").await.access_token;
    assert_eq!(audit_entries(&server, &alice).await.0, 401);
    // Entries older than 180 days are removed by housekeeping, newer ones kept.
    let database = server.state.database().clone();
    let state = server.state.clone();
    tokio::task::spawn_blocking(move || {
        let old = furrow_server::store::AuditEntry {
            id: 0,
            at: furrow_contract::hlc::wall_ms() - 181 * 24 * 60 * 60 * 1000,
            kind: "sign_in".into(),
            actor: "someone-long-ago".into(),
            address: "-".into(),
            subject: "someone-long-ago".into(),
            detail: String::new(),
        };
        store::write(database.as_ref(), |tx| tx.audit(&old)).expect("old entry");
        state.housekeeping().expect("housekeeping");
    })
    .await
    .expect("task");
    let (_, entries) = audit_entries(&server, common::ADMIN_TOKEN).await;
    assert!(!entries.iter().any(|entry| entry["actor"] == "someone-long-ago"), "kept past 180 days");
    assert!(entries.iter().any(|entry| entry["kind"] == "sign_in" && entry["actor"] == "alice"), "a recent entry was removed");
}

async fn sign_ins_refused_by_the_limiter_are_audited_once_per_window(kind: Backend) {
    let server = server_behind_proxy(kind);
    let free = SignInPolicy::default().free_failures as usize;
    for _ in 0..free {
        assert_eq!(sign_in(&server, "alice", "wrong password", "203.0.113.95").await.0, 401);
    }
    // Ten guesses past the limit, all within the first backoff, at the account and at a name
    // that does not exist.
    for _ in 0..10 {
        assert_eq!(sign_in(&server, "alice", "wrong password", "203.0.113.95").await.0, 429);
    }
    for _ in 0..free {
        assert_eq!(sign_in(&server, "nobody", "wrong password", "203.0.113.95").await.0, 401);
    }
    for _ in 0..3 {
        assert_eq!(sign_in(&server, "nobody", "wrong password", "203.0.113.95").await.0, 429);
    }
    let (status, entries) = audit_entries(&server, common::ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    let limited = |account: &str| {
        entries
            .iter()
            .filter(|entry| entry["kind"] == "sign_in_limited" && entry["actor"] == account && entry["subject"] == account)
            .collect::<Vec<_>>()
    };
    let alice = limited("alice");
    assert_eq!(alice.len(), 1, "one entry per account, address and window: {entries:#?}");
    assert_eq!(alice[0]["address"], "203.0.113.95");
    assert!(alice[0]["detail"].as_str().is_some_and(|detail| detail.starts_with("refused for ")), "{:?}", alice[0]);
    assert_eq!(limited("nobody").len(), 1, "{entries:#?}");
    assert_eq!(entries.iter().filter(|entry| entry["kind"] == "sign_in_limited").count(), 2);
}

async fn guesses_at_the_admin_endpoints_are_audited_once_per_window(kind: Backend) {
    let server = server_behind_proxy(kind);
    let guess = |token: &'static str| {
        let (http, url) = (server.http.clone(), server.endpoint("/admin/v1/audit?limit=1"));
        async move { http.get(url).header("x-forwarded-for", "203.0.113.77").bearer_auth(token).send().await.expect("guess").status().as_u16() }
    };
    let free = SignInPolicy::default().free_failures as usize;
    for _ in 0..free {
        assert_eq!(guess("not-the-bootstrap-token-0000000000000").await, 401);
    }
    for _ in 0..8 {
        assert_eq!(guess("not-the-bootstrap-token-0000000000000").await, 429);
    }
    let (status, entries) = audit_entries(&server, common::ADMIN_TOKEN).await;
    assert_eq!(status, 200);
    let limited: Vec<&Value> = entries.iter().filter(|entry| entry["kind"] == "admin_limited").collect();
    assert_eq!(limited.len(), 1, "one entry per address and window: {entries:#?}");
    assert_eq!(limited[0]["address"], "203.0.113.77");
    assert_eq!(limited[0]["subject"], "GET /admin/v1/audit");
    assert!(limited[0]["detail"].as_str().is_some_and(|detail| detail.starts_with("refused for ")), "{:?}", limited[0]);
}

on_both_backends!(
    async:
    sign_ins_refused_by_the_limiter_are_audited_once_per_window,
    guesses_at_the_admin_endpoints_are_audited_once_per_window,
    guesses_sent_at_once_cannot_pass_the_limit,
    sign_ins_beyond_the_queue_are_told_to_come_back,
    an_attacker_slows_himself_not_the_assistant,
    spraying_many_accounts_from_many_addresses_is_stopped,
    blobs_are_readable_only_where_they_were_uploaded_or_legitimately_named,
    control_characters_are_refused,
    weak_passwords_are_refused,
    sessions_resist_stolen_tokens,
    a_session_ends_at_its_absolute_lifetime,
    small_checks_hold,
    chunks_racing_at_one_offset_cannot_corrupt_an_upload,
    admins_are_named_accounts,
    sign_ins_admin_actions_and_scope_changes_are_audited,
);
