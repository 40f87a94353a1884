//! The HTTP contract over real HTTP: the server on 127.0.0.1:0, reqwest as the client.

mod common;

use std::io::{Read, Write};

use common::{now_hlc, Backend, Device, TestServer, ADMIN_TOKEN, VILLAGE_A, VILLAGE_B};
use furrow_contract::wire::{ErrorBody, PullResponse, PushRequest, PushResponse, TokenResponse, SCHEMA_VERSION};
use furrow_server::on_both_backends;
use furrow_server::store;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Everything the server has written so far, as one number: the sequence counter moves with
/// every accepted field change, so an unchanged counter means unchanged synced data.
async fn written(server: &TestServer) -> i64 {
    let database = server.state.database().clone();
    tokio::task::spawn_blocking(move || store::read(database.as_ref(), |tx| tx.current_seq()))
        .await
        .expect("task")
        .expect("read")
}

async fn error_body(response: reqwest::Response) -> (u16, ErrorBody) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body: ErrorBody = serde_json::from_str(&text).unwrap_or_else(|error| panic!("not an error body ({error}): {text}"));
    assert!(!body.error.is_empty() && !body.message.is_empty(), "{text}");
    (status, body)
}

fn statuses(body: &Value) -> Vec<String> {
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|result| match result["reason"].as_str() {
            Some(reason) => format!("{}/{reason}", result["status"].as_str().unwrap_or_default()),
            None => result["status"].as_str().unwrap_or_default().to_owned(),
        })
        .collect()
}

async fn sign_in_refresh_and_out(kind: Backend) {
    let server = TestServer::seeded(kind);
    let tokens = server.login("alice").await;
    assert_eq!(tokens.scopes, vec![VILLAGE_A.to_owned()]);
    assert!(tokens.expires_at > furrow_contract::hlc::wall_ms() + 50 * 60 * 1000, "about an hour");
    let (status, _) = server.pull(&tokens.access_token, None, 10).await;
    assert_eq!(status, 200);
    // Refresh rotates: the old refresh token and the old access token stop working.
    let refreshed: TokenResponse = server
        .http
        .post(server.endpoint("/auth/v1/refresh"))
        .json(&json!({"refresh_token": tokens.refresh_token}))
        .send()
        .await
        .expect("refresh")
        .json()
        .await
        .expect("tokens");
    assert_ne!(refreshed.access_token, tokens.access_token);
    let (status, body) = server.pull(&tokens.access_token, None, 10).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("unauthorized")));
    let reuse = server.http.post(server.endpoint("/auth/v1/refresh")).json(&json!({"refresh_token": tokens.refresh_token})).send().await.expect("reuse");
    assert_eq!(error_body(reuse).await.0, 401);
    // Logout revokes the session.
    let out = server.http.post(server.endpoint("/auth/v1/logout")).json(&json!({"refresh_token": refreshed.refresh_token})).send().await.expect("logout");
    assert_eq!(out.status(), 204);
    let (status, _) = server.pull(&refreshed.access_token, None, 10).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn wrong_credentials_look_the_same_and_are_rate_limited() {
    let server = TestServer::seeded(Backend::Sqlite);
    let attempt = |username: &str, password: &str| {
        server
            .http
            .post(server.endpoint("/auth/v1/login"))
            .json(&json!({"username": username, "password": password, "device_name": "d"}))
            .send()
    };
    let unknown = attempt("nobody", "whatever1").await.expect("login");
    let unknown = error_body(unknown).await;
    let wrong = attempt("alice", "wrong password").await.expect("login");
    let wrong = error_body(wrong).await;
    assert_eq!(unknown, wrong, "the same answer whether the account exists or not");
    assert_eq!(unknown.0, 401);
    for _ in 0..4 {
        assert_eq!(attempt("alice", "wrong password").await.expect("login").status(), 401);
    }
    // After the fifth failure the account waits at this address, even with the right password.
    let locked = attempt("alice", "correct horse").await.expect("login");
    assert_eq!(locked.status(), 429);
    assert!(locked.headers().contains_key("retry-after"));
    assert_eq!(error_body(locked).await.1.error, "rate_limited");
    // Another account from the same address (a township's shared NAT) is not locked out.
    assert_eq!(attempt("bob", "correct horse").await.expect("login").status(), 200);
    // Malformed sign-in bodies are 400, not 401 or 500.
    let malformed = server.http.post(server.endpoint("/auth/v1/login")).body("{not json").send().await.expect("login");
    assert_eq!(error_body(malformed).await.1.error, "invalid_json");
}

async fn push_is_idempotent(kind: Backend) {
    let server = TestServer::seeded(kind);
    let tokens = server.login("alice").await;
    let mut device = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let request = device.household_batch(VILLAGE_A, &household, "王大山", now_hlc(0));
    let first = server
        .http
        .post(server.endpoint("/sync/v1/push"))
        .bearer_auth(&tokens.access_token)
        .header("Idempotency-Key", &request.batch_id)
        .json(&request)
        .send()
        .await
        .expect("push");
    assert_eq!(first.status(), 200);
    let first = first.text().await.expect("body");
    let before = written(&server).await;
    let second = server
        .http
        .post(server.endpoint("/sync/v1/push"))
        .bearer_auth(&tokens.access_token)
        .header("Idempotency-Key", &request.batch_id)
        .json(&request)
        .send()
        .await
        .expect("push");
    assert_eq!(second.headers().get("idempotent-replayed").map(|value| value.as_bytes()), Some(&b"true"[..]));
    assert_eq!(second.text().await.expect("body"), first, "an exact replay");
    assert_eq!(written(&server).await, before, "nothing written twice");
    let response: PushResponse = serde_json::from_str(&first).expect("push response");
    assert_eq!(response.results.len(), 5);
    assert!(response.server_time > 0);
    let database = server.state.database().clone();
    let ids: Vec<String> = request.changes.iter().map(|change| change.change_id.clone()).collect();
    let counts = tokio::task::spawn_blocking(move || {
        store::read(database.as_ref(), |tx| ids.iter().map(|id| tx.change_log_count(id)).collect::<Result<Vec<_>, _>>())
    })
    .await
    .expect("task")
    .expect("counts");
    assert_eq!(counts, vec![1; 5], "one change-log entry per change");
}

/// The stored field of a row, read straight from the server's storage.
async fn stored_field(server: &TestServer, tbl: &str, row_id: &str, field: &str) -> Option<Value> {
    let database = server.state.database().clone();
    let (tbl, row_id, field) = (tbl.to_owned(), row_id.to_owned(), field.to_owned());
    tokio::task::spawn_blocking(move || store::read(database.as_ref(), |tx| tx.field(&tbl, &row_id, &field)))
        .await
        .expect("task")
        .expect("read")
        .map(|stored| stored.value)
}

async fn a_batch_id_is_not_reused_for_another_body(kind: Backend) {
    let server = TestServer::seeded(kind);
    let tokens = server.login("alice").await;
    let mut device = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let request = device.household_batch(VILLAGE_A, &household, "王大山", now_hlc(0));
    let (status, first) = server.push(&tokens.access_token, &request).await;
    assert_eq!(status, 200, "{first}");
    let before = written(&server).await;
    // The same batch id with other changes (a new household) is refused, and none of it applied.
    let other = uuid::Uuid::now_v7().to_string();
    let reused = PushRequest { changes: device.household(VILLAGE_A, &other, "李小河", now_hlc(1)), ..request.clone() };
    let response = server
        .http
        .post(server.endpoint("/sync/v1/push"))
        .bearer_auth(&tokens.access_token)
        .header("Idempotency-Key", &reused.batch_id)
        .json(&reused)
        .send()
        .await
        .expect("push");
    assert!(response.headers().get("idempotent-replayed").is_none());
    let (status, error) = error_body(response).await;
    assert_eq!((status, error.error.as_str()), (422, "idempotency_key_reused"));
    assert_eq!(written(&server).await, before, "nothing of the second body is applied");
    assert_eq!(stored_field(&server, "households", &other, "head_name").await, None);
    // The first body again is still an exact replay.
    let (status, again) = server.push(&tokens.access_token, &request).await;
    assert_eq!((status, &again), (200, &first));
    // A batch stored before digests were kept replays to any body, as it always did.
    let database = server.state.database().clone();
    let (client, stored) = (device.id(), first.to_string());
    tokio::task::spawn_blocking(move || {
        store::write(database.as_ref(), |tx| tx.put_batch(&client, "batch-without-digest", &stored, furrow_contract::hlc::wall_ms()))
    })
    .await
    .expect("task")
    .expect("store");
    let third = uuid::Uuid::now_v7().to_string();
    let legacy = PushRequest {
        batch_id: "batch-without-digest".into(),
        changes: device.household(VILLAGE_A, &third, "赵小山", now_hlc(2)),
        ..request.clone()
    };
    let (status, replayed) = server.push(&tokens.access_token, &legacy).await;
    assert_eq!((status, &replayed), (200, &first));
    assert_eq!(written(&server).await, before);
}

async fn a_new_change_under_an_applied_seq_is_refused(kind: Backend) {
    let server = TestServer::seeded(kind);
    let tokens = server.login("alice").await;
    let mut device = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let start = now_hlc(0);
    let request = device.household_batch(VILLAGE_A, &household, "王大山", start);
    let (status, body) = server.push(&tokens.access_token, &request).await;
    assert_eq!((status, body["last_applied_seq"].as_i64()), (200, Some(5)), "{body}");
    // The head's name is corrected (seq 6), after which the first name is superseded.
    let correction = device.change("households", &household, "head_name", json!("王大川"), start + 10, Some(start));
    let (status, body) = server.push(&tokens.access_token, &device.batch(vec![correction])).await;
    assert_eq!((status, statuses(&body)), (200, vec!["applied".to_owned()]));
    let before = written(&server).await;
    // Re-sends of old changes whose stored answers expired (under a new batch id) keep their
    // answers: what the server holds, or superseded by the newer stored value.
    let (status, body) = server.push(&tokens.access_token, &device.batch(request.changes.clone())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(statuses(&body), vec!["applied", "applied", "superseded", "applied", "applied"]);
    assert_eq!(body["results"][2]["current"]["value"], json!("王大川"));
    assert_eq!(written(&server).await, before);
    // A new change under an applied seq, as from a device restored from an old copy, refuses the
    // whole batch, a legitimate re-send in it included, and names the last applied seq.
    let mut reused = device.change("households", &household, "notes", json!("新房"), start + 20, None);
    reused.seq = 4;
    let batch = device.batch(vec![request.changes[0].clone(), reused.clone()]);
    let response = server
        .http
        .post(server.endpoint("/sync/v1/push"))
        .bearer_auth(&tokens.access_token)
        .header("Idempotency-Key", &batch.batch_id)
        .json(&batch)
        .send()
        .await
        .expect("push");
    let (status, error) = error_body(response).await;
    assert_eq!((status, error.error.as_str(), error.last_applied_seq), (409, "seq_reused", Some(6)), "{}", error.message);
    assert_eq!(written(&server).await, before, "nothing is written");
    assert_eq!(stored_field(&server, "households", &household, "notes").await, None);
    // Renumbered above it and sent under a new batch id, the change is applied.
    reused.seq = 7;
    let (status, body) = server.push(&tokens.access_token, &device.batch(vec![reused])).await;
    assert_eq!((status, statuses(&body), body["last_applied_seq"].as_i64()), (200, vec!["applied".to_owned()], Some(7)));
    assert_eq!(stored_field(&server, "households", &household, "notes").await, Some(json!("新房")));
}

#[tokio::test]
async fn merge_outcomes_over_http() {
    let server = TestServer::seeded(Backend::Sqlite);
    // Each device signs in for itself: a session is bound to the device that uses it.
    let tokens = server.login("alice").await;
    let phone_tokens = server.login("alice").await;
    let mut laptop = Device::new();
    let mut phone = Device::new();
    let (product, listing) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let start = now_hlc(0);
    let mut create = laptop.product(VILLAGE_A, &product, start);
    create.extend(laptop.listing(VILLAGE_A, &listing, &product, start));
    for change in create.iter_mut().filter(|change| change.field == "title") {
        change.value = json!("核桃");
    }
    let (status, body) = server.push(&tokens.access_token, &laptop.batch(create)).await;
    assert_eq!((status, statuses(&body)), (200, vec!["applied".to_owned(); 12]));
    let changes = vec![
        phone.change("listings", &listing, "title", json!("旧标题"), start - 1000, Some(start)),
        phone.change("listings", &listing, "price_fen", json!(900), start + 10, Some(start - 5)),
        phone.change("listings", &listing, "moderation_status", json!("approved"), start + 10, None),
        phone.change("listings", &listing, "title", json!("新标题"), start + 10, Some(start)),
    ];
    let (status, body) = server.push(&phone_tokens.access_token, &phone.batch(changes)).await;
    assert_eq!(status, 200);
    assert_eq!(statuses(&body), vec!["superseded", "rejected/stale_base", "rejected/server_only", "applied"]);
    assert_eq!(body["results"][0]["current"]["value"], json!("核桃"));
    assert_eq!(body["results"][1]["current"]["value"], json!(1500));
    assert_eq!(body["results"][1]["current"]["actor"], json!("assistant:1"));
    // A change stamped far in the future is refused whole with the server's time.
    let ahead = phone.change("listings", &listing, "title", json!("未来"), furrow_contract::hlc::pack(furrow_contract::hlc::wall_ms() + 3_600_000, 0), None);
    let before = written(&server).await;
    let response = server
        .http
        .post(server.endpoint("/sync/v1/push"))
        .bearer_auth(&phone_tokens.access_token)
        .json(&phone.batch(vec![ahead]))
        .send()
        .await
        .expect("push");
    let (status, error) = error_body(response).await;
    assert_eq!((status, error.error.as_str()), (409, "clock_ahead"));
    assert!(error.server_time.is_some_and(|time| (time - furrow_contract::hlc::wall_ms()).abs() < 60_000));
    assert_eq!(written(&server).await, before);
    // Too old or too new a schema is 426, and nothing is written.
    let title = phone_title(&mut phone, &listing);
    let mut old = phone.batch(vec![title]);
    old.schema_version = 0;
    let (status, body) = server.push(&phone_tokens.access_token, &old).await;
    assert_eq!((status, body["error"].as_str()), (426, Some("schema_unsupported")));
    let response = server
        .http
        .get(server.endpoint("/sync/v1/pull"))
        .bearer_auth(&phone_tokens.access_token)
        .header("X-Schema-Version", (SCHEMA_VERSION + 1).to_string())
        .send()
        .await
        .expect("pull");
    assert_eq!(response.status(), 426);
    assert_eq!(written(&server).await, before);
}

fn phone_title(phone: &mut Device, listing: &str) -> furrow_contract::wire::Change {
    phone.change("listings", listing, "title", json!("x"), now_hlc(0), None)
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_changes_nothing() {
    let server = TestServer::seeded(Backend::Sqlite);
    let tokens = server.login("alice").await;
    let mut device = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let (status, _) = server.push(&tokens.access_token, &device.household_batch(VILLAGE_A, &household, "王大山", now_hlc(0))).await;
    assert_eq!(status, 200);
    let before = written(&server).await;
    let valid = |device: &mut Device| device.change("households", &household, "head_name", json!("王二"), now_hlc(5), None);
    let raw = |body: String| {
        server
            .http
            .post(server.endpoint("/sync/v1/push"))
            .bearer_auth(&tokens.access_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let mut cases: Vec<(&str, String, u16, &str)> = Vec::new();
    cases.push(("malformed JSON", "{\"client_id\": ".into(), 400, "invalid_json"));
    cases.push(("not an object", "[1, 2, 3]".into(), 400, "invalid_body"));
    let change = valid(&mut device);
    let mut wrong_type = serde_json::to_value(device.batch(vec![change])).expect("json");
    wrong_type["changes"][0]["hlc"] = json!("soon");
    cases.push(("hlc of the wrong type", wrong_type.to_string(), 400, "invalid_body"));
    let mut changes = vec![valid(&mut device)];
    changes.push(device.change("no_such_table", &household, "x", json!(1), now_hlc(6), None));
    cases.push(("unknown table", serde_json::to_string(&device.batch(changes)).expect("json"), 400, "unknown_table"));
    let changes = vec![valid(&mut device), device.change("households", &household, "password", json!("x"), now_hlc(6), None)];
    cases.push(("unknown field", serde_json::to_string(&device.batch(changes)).expect("json"), 400, "unknown_field"));
    let changes = vec![valid(&mut device), device.change("households", &household, "cultivated_land_mu", json!("lots"), now_hlc(6), None)];
    cases.push(("value of the wrong type", serde_json::to_string(&device.batch(changes)).expect("json"), 400, "invalid_value"));
    let changes = vec![valid(&mut device), device.change("households", &household, "phone", json!("12345"), now_hlc(6), None)];
    cases.push(("value failing its check", serde_json::to_string(&device.batch(changes)).expect("json"), 400, "invalid_value"));
    let changes = vec![valid(&mut device), device.change("households", "not-a-uuid", "head_name", json!("x"), now_hlc(6), None)];
    cases.push(("row id that is no UUID", serde_json::to_string(&device.batch(changes)).expect("json"), 400, "invalid_change"));
    let change = valid(&mut device);
    let mut bad_client = device.batch(vec![change]);
    bad_client.client_id = "me".into();
    cases.push(("client id that is no UUID", serde_json::to_string(&bad_client).expect("json"), 400, "invalid_client_id"));
    let many: Vec<_> = (0..501).map(|_| valid(&mut device)).collect();
    cases.push(("501 changes", serde_json::to_string(&device.batch(many)).expect("json"), 413, "too_large"));
    let big: Vec<_> = (0..300)
        .map(|index| device.change("households", &household, "notes", json!("长".repeat(1000)), now_hlc(10 + index), None))
        .collect();
    cases.push(("a body over 256 KB", serde_json::to_string(&device.batch(big)).expect("json"), 413, "too_large"));
    for (what, body, status, code) in cases {
        let response = raw(body).await.expect("push");
        let (got, error) = error_body(response).await;
        assert_eq!((got, error.error.as_str()), (status, code), "{what}: {}", error.message);
        assert_eq!(written(&server).await, before, "{what} changed nothing");
    }
    // Missing or wrong credentials.
    let response = server.http.post(server.endpoint("/sync/v1/push")).json(&json!({})).send().await.expect("push");
    assert_eq!(error_body(response).await.0, 401);
    let response = server.http.get(server.endpoint("/sync/v1/pull")).bearer_auth("forged").send().await.expect("pull");
    assert_eq!(error_body(response).await.0, 401);
    let response = server.http.get(server.endpoint("/sync/v1/pull?cursor=zzz")).bearer_auth(&tokens.access_token).send().await.expect("pull");
    let (status, error) = error_body(response).await;
    assert_eq!((status, error.error.as_str()), (400, "invalid_cursor"));
    let response = server.http.get(server.endpoint("/sync/v1/pull?limit=-4")).bearer_auth(&tokens.access_token).send().await.expect("pull");
    assert_eq!(error_body(response).await.1.error, "invalid_query");
    let response = server.http.get(server.endpoint("/no/such/path")).send().await.expect("get");
    assert_eq!(error_body(response).await.0, 404);
    assert_eq!(written(&server).await, before);
}

async fn upload(server: &TestServer, token: &str, bytes: &[u8], sha256: &str) -> reqwest::Response {
    let created = server
        .http
        .post(server.endpoint("/blobs/uploads"))
        .bearer_auth(token)
        .json(&json!({"sha256": sha256, "size": bytes.len(), "mime": "image/jpeg"}))
        .send()
        .await
        .expect("create upload");
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().expect("location").to_owned();
    server
        .http
        .patch(server.endpoint(&location))
        .bearer_auth(token)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("patch")
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test]
async fn resumable_upload_and_ranged_download() {
    let server = TestServer::seeded(Backend::Sqlite);
    let token = server.login("alice").await.access_token;
    let photo: Vec<u8> = (0..300_000u32).map(|index| (index % 251) as u8).collect();
    let sha = digest(&photo);
    let missing = server.http.head(server.endpoint(&format!("/blobs/{sha}"))).bearer_auth(&token).send().await.expect("head");
    assert_eq!(missing.status(), 404);
    let created = server
        .http
        .post(server.endpoint("/blobs/uploads"))
        .bearer_auth(&token)
        .json(&json!({"sha256": sha, "size": photo.len(), "mime": "image/jpeg"}))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    assert_eq!(created.headers()["upload-offset"], "0");
    let location = created.headers()["location"].to_str().expect("location").to_owned();
    assert!(location.starts_with("/blobs/uploads/"));
    let chunk = |offset: usize, bytes: &[u8]| {
        server
            .http
            .patch(server.endpoint(&location))
            .bearer_auth(&token)
            .header("Upload-Offset", offset.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(bytes.to_vec())
            .send()
    };
    let first = chunk(0, &photo[..131_072]).await.expect("chunk");
    assert_eq!(first.status(), 204);
    assert_eq!(first.headers()["upload-offset"], "131072");
    // After a drop the client asks where to resume.
    let offset = server.http.head(server.endpoint(&location)).bearer_auth(&token).send().await.expect("head");
    assert_eq!(offset.headers()["upload-offset"], "131072");
    // A chunk sent again from an old offset is refused with the right one.
    let repeated = chunk(0, &photo[..131_072]).await.expect("chunk");
    assert_eq!(repeated.headers()["upload-offset"], "131072");
    assert_eq!(error_body(repeated).await.1.error, "offset_mismatch");
    // A wrong content type is refused.
    let wrong_type = server
        .http
        .patch(server.endpoint(&location))
        .bearer_auth(&token)
        .header("Upload-Offset", "131072")
        .header("Content-Type", "application/octet-stream")
        .body(photo[131_072..].to_vec())
        .send()
        .await
        .expect("chunk");
    assert_eq!(error_body(wrong_type).await.0, 415);
    let last = chunk(131_072, &photo[131_072..]).await.expect("chunk");
    assert_eq!(last.status(), 204);
    assert_eq!(last.headers()["upload-offset"], photo.len().to_string().as_str());
    let exists = server.http.head(server.endpoint(&format!("/blobs/{sha}"))).bearer_auth(&token).send().await.expect("head");
    assert_eq!(exists.status(), 200);
    let whole = server.http.get(server.endpoint(&format!("/blobs/{sha}"))).bearer_auth(&token).send().await.expect("get");
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.bytes().await.expect("bytes").as_ref(), photo.as_slice());
    let part = server
        .http
        .get(server.endpoint(&format!("/blobs/{sha}")))
        .bearer_auth(&token)
        .header("Range", "bytes=1000-")
        .send()
        .await
        .expect("get");
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], format!("bytes 1000-{}/{}", photo.len() - 1, photo.len()).as_str());
    assert_eq!(part.bytes().await.expect("bytes").as_ref(), &photo[1000..]);
    let beyond = server
        .http
        .get(server.endpoint(&format!("/blobs/{sha}")))
        .bearer_auth(&token)
        .header("Range", "bytes=999999999-")
        .send()
        .await
        .expect("get");
    assert_eq!(error_body(beyond).await.0, 416);
    // Starting an upload of a blob that exists answers at once that nothing is needed.
    let again = server
        .http
        .post(server.endpoint("/blobs/uploads"))
        .bearer_auth(&token)
        .json(&json!({"sha256": sha, "size": photo.len(), "mime": "image/jpeg"}))
        .send()
        .await
        .expect("create");
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.expect("json")["exists"], json!(true));
}

#[tokio::test]
async fn bad_uploads_are_refused_and_a_cut_chunk_keeps_what_arrived() {
    let server = TestServer::seeded(Backend::Sqlite);
    let token = server.login("alice").await.access_token;
    let photo = vec![7u8; 5000];
    // Bytes that do not hash to the promised digest: 422, and the upload is gone.
    let wrong = digest(b"something else");
    let response = upload(&server, &token, &photo, &wrong).await;
    let (status, error) = error_body(response).await;
    assert_eq!((status, error.error.as_str()), (422, "hash_mismatch"));
    let head = server.http.head(server.endpoint(&format!("/blobs/{wrong}"))).bearer_auth(&token).send().await.expect("head");
    assert_eq!(head.status(), 404);
    // Bad upload declarations.
    for (body, code) in [
        (json!({"sha256": "xyz", "size": 10, "mime": "image/jpeg"}), "invalid_digest"),
        (json!({"sha256": digest(&photo), "size": 0, "mime": "image/jpeg"}), "invalid_body"),
        (json!({"sha256": digest(&photo), "size": 10, "mime": "jpeg"}), "invalid_body"),
        (json!({"sha256": digest(&photo), "size": 10}), "invalid_body"),
    ] {
        let response = server.http.post(server.endpoint("/blobs/uploads")).bearer_auth(&token).json(&body).send().await.expect("create");
        let (status, error) = error_body(response).await;
        assert_eq!((status, error.error.as_str()), (400, code), "{body}");
    }
    // A chunk longer than the declared size.
    let sha = digest(&photo);
    let created: Value = server
        .http
        .post(server.endpoint("/blobs/uploads"))
        .bearer_auth(&token)
        .json(&json!({"sha256": sha, "size": photo.len(), "mime": "image/jpeg"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let location = created["location"].as_str().expect("location").to_owned();
    let too_long = server
        .http
        .patch(server.endpoint(&location))
        .bearer_auth(&token)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(vec![7u8; 6000])
        .send()
        .await
        .expect("patch");
    assert_eq!(error_body(too_long).await.0, 413);
    // A truncated chunk: the connection ends before the promised Content-Length.
    let address = server.url.trim_start_matches("http://").to_owned();
    let request = format!(
        "PATCH {location} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 5000\r\n\r\n"
    );
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).expect("connect");
        stream.write_all(request.as_bytes()).expect("headers");
        stream.write_all(&[7u8; 2000]).expect("part of the body");
        stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .expect("task");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "a truncated chunk is never a success: {answer}");
    let offset = server.http.head(server.endpoint(&location)).bearer_auth(&token).send().await.expect("head");
    // The 2,000 bytes that arrived are kept (tus semantics): the upload goes on from there, so
    // a drop costs only the bytes that were in flight.
    assert_eq!(offset.headers()["upload-offset"], "2000", "the part of the truncated chunk that arrived was kept");
}

#[tokio::test]
async fn every_endpoint_keeps_to_the_callers_villages() {
    let server = TestServer::seeded(Backend::Sqlite);
    let alice = server.login("alice").await.access_token;
    let bob = server.login("bob").await.access_token;
    let mut device = Device::new();
    let (household, photo_row) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let start = now_hlc(0);
    let (status, _) = server.push(&alice, &device.household_batch(VILLAGE_A, &household, "王大山", start)).await;
    assert_eq!(status, 200);
    // Alice uploads a photo of the household and records it.
    let picture = vec![42u8; 4096];
    let sha = digest(&picture);
    assert_eq!(upload(&server, &alice, &picture, &sha).await.status(), 204);
    let photo = vec![
        device.change("photos", &photo_row, "scope_id", json!(VILLAGE_A), start + 1, None),
        device.change("photos", &photo_row, "owner_type", json!("household"), start + 1, None),
        device.change("photos", &photo_row, "owner_id", json!(household), start + 1, None),
        device.change("photos", &photo_row, "sha256", json!(sha), start + 1, None),
        device.change("photos", &photo_row, "bytes", json!(picture.len()), start + 1, None),
        device.change("photos", &photo_row, "kind", json!("evidence"), start + 1, None),
    ];
    let (status, body) = server.push(&alice, &device.batch(photo)).await;
    assert_eq!((status, statuses(&body)), (200, vec!["applied".to_owned(); 6]));
    let before = written(&server).await;

    // Pull: Bob sees only his own village.
    let (rows, _) = server.pull_all(&bob, 2).await;
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|row| row["scope_id"] == json!(VILLAGE_B)), "{rows:?}");

    // Push: Bob can neither edit, delete, move nor claim Alice's rows, nor create rows in her
    // village, nor point his rows at hers; forged scopes in the body change nothing.
    let mut bobs = Device::new();
    let (own, bob_photo) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let later = now_hlc(100);
    let changes = vec![
        bobs.change("households", &household, "head_name", json!("冒名"), later, None),
        bobs.change("households", &household, "deleted", json!(1), later, None),
        bobs.change("households", &household, "scope_id", json!(VILLAGE_B), later, None),
        bobs.change("households", &uuid::Uuid::now_v7().to_string(), "scope_id", json!(VILLAGE_A), later, None),
        bobs.change("members", &own, "scope_id", json!(VILLAGE_B), later, None),
        bobs.change("members", &own, "household_id", json!(household), later, None),
        bobs.change("photos", &photo_row, "sha256", json!("0".repeat(64)), later, None),
        bobs.change("photos", &bob_photo, "scope_id", json!(VILLAGE_B), later, None),
        bobs.change("photos", &bob_photo, "owner_type", json!("household"), later, None),
        bobs.change("photos", &bob_photo, "owner_id", json!(household), later, None),
    ];
    let (status, body) = server.push(&bob, &bobs.batch(changes)).await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(&body),
        vec![
            "rejected/invalid",
            "rejected/invalid",
            "rejected/invalid",
            "rejected/forbidden",
            "rejected/invalid_record",
            "rejected/invalid_record",
            "rejected/invalid",
            "rejected/invalid_record",
            "rejected/invalid_record",
            "rejected/invalid_record"
        ]
    );
    // Alice's rows are answered as rows that do not exist, and references to them as references
    // to nothing: Bob learns nothing of them. His own new rows, whose references count as missing,
    // are refused whole: nothing at all was written.
    assert_eq!(written(&server).await, before, "nothing was written");
    let (rows, _) = server.pull_all(&alice, 100).await;
    let row = rows.iter().find(|row| row["id"] == json!(household)).expect("Alice's household");
    assert_eq!(row["fields"]["head_name"][0], json!("王大山"));
    // Bob's deletion did not land: the row is live, never deleted (the least stamp).
    assert_eq!(row["fields"]["deleted"], json!([0, 0, "AAAAAAAAAAAAAAAAAAAAAA=="]));
    // Bob cannot push through Alice's device either.
    let (status, body) = server.push(&bob, &device.batch(vec![])).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")));

    // Blobs: Bob cannot read Alice's photo, nor see or continue her uploads.
    let get = server.http.get(server.endpoint(&format!("/blobs/{sha}"))).bearer_auth(&bob).send().await.expect("get");
    assert_eq!(error_body(get).await.0, 404);
    let get = server.http.get(server.endpoint(&format!("/blobs/{sha}"))).bearer_auth(&alice).send().await.expect("get");
    assert_eq!(get.status(), 200);
    let pending: Value = server
        .http
        .post(server.endpoint("/blobs/uploads"))
        .bearer_auth(&alice)
        .json(&json!({"sha256": digest(b"other"), "size": 5, "mime": "image/jpeg"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let location = pending["location"].as_str().expect("location");
    let head = server.http.head(server.endpoint(location)).bearer_auth(&bob).send().await.expect("head");
    assert_eq!(head.status(), 404);
    let patch = server
        .http
        .patch(server.endpoint(location))
        .bearer_auth(&bob)
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(b"other".to_vec())
        .send()
        .await
        .expect("patch");
    assert_eq!(error_body(patch).await.0, 404);

    // The platform's endpoints refuse an assistant's token.
    for (path, body) in [
        ("/admin/v1/villages", json!({"code": "520402101209", "name": "新村"})),
        ("/admin/v1/assistants", json!({"username": "mallory", "password": "12345678", "villages": [VILLAGE_A]})),
        (&*format!("/admin/v1/listings/{household}/moderation"), json!({"sold_out": true})),
    ] {
        let response = server.http.post(server.endpoint(path)).bearer_auth(&bob).json(&body).send().await.expect("admin");
        assert_eq!(error_body(response).await.0, 401, "{path}");
    }
    assert_eq!(written(&server).await, before);
}

#[tokio::test]
async fn pull_pages_and_resets_over_http() {
    let server = TestServer::seeded(Backend::Sqlite);
    let alice = server.login("alice").await.access_token;
    let mut device = Device::new();
    let mut changes = Vec::new();
    for index in 0..30 {
        changes.extend(device.household(VILLAGE_A, &uuid::Uuid::now_v7().to_string(), &format!("户{index}"), now_hlc(index)));
    }
    let (status, _) = server.push(&alice, &device.batch(changes)).await;
    assert_eq!(status, 200);
    let (rows, cursor) = server.pull_all(&alice, 7).await;
    assert_eq!(rows.len(), 31, "the village and 30 households");
    let svs: Vec<i64> = rows.iter().map(|row| row["sv"].as_i64().expect("sv")).collect();
    assert!(svs.windows(2).all(|pair| pair[0] < pair[1]), "server order");
    let first = &rows[1];
    assert!(first["fields"]["head_name"].as_array().is_some_and(|field| field.len() == 3), "[value, hlc, node]");
    // An edit after the cursor comes alone.
    let id = rows[5]["id"].as_str().expect("id").to_owned();
    let edit = device.change("households", &id, "group_name", json!("三组"), now_hlc(500), None);
    server.push(&alice, &device.batch(vec![edit])).await;
    let (status, page) = server.pull(&alice, Some(&cursor), 100).await;
    assert_eq!(status, 200);
    let page: PullResponse = serde_json::from_value(page).expect("pull response");
    assert_eq!(page.rows.len(), 1);
    assert_eq!(page.rows[0].fields.keys().collect::<Vec<_>>(), vec!["group_name"]);
    // The platform assigns Alice a second village: her cursor resets to a fresh snapshot.
    let database = server.state.database().clone();
    tokio::task::spawn_blocking(move || store::write(database.as_ref(), |tx| tx.assign(1, VILLAGE_B)))
        .await
        .expect("task")
        .expect("assign");
    let (status, page) = server.pull(&alice, Some(&page.cursor), 1000).await;
    assert_eq!(status, 200);
    assert_eq!(page["reset"]["reason"], json!("scope_changed"));
    assert_eq!(page["rows"].as_array().map(Vec::len), Some(32));
}

#[tokio::test]
async fn the_platform_moderates_sells_and_creates_accounts() {
    let server = TestServer::seeded(Backend::Sqlite);
    let admin = |path: &str, body: Value| server.http.post(server.endpoint(path)).bearer_auth(ADMIN_TOKEN).json(&body).send();
    let created = admin("/admin/v1/assistants", json!({"username": "carol", "password": "correct horse", "villages": [VILLAGE_A]}))
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let duplicate = admin("/admin/v1/assistants", json!({"username": "carol", "password": "correct horse", "villages": []})).await.expect("create");
    assert_eq!(error_body(duplicate).await.0, 409);
    let unknown_village = admin("/admin/v1/assistants", json!({"username": "dave", "password": "correct horse", "villages": ["999999999999"]}))
        .await
        .expect("create");
    assert_eq!(error_body(unknown_village).await.0, 404);
    let carol = server.login("carol").await.access_token;
    let mut device = Device::new();
    let (product, listing, household) =
        (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let start = now_hlc(0);
    let mut changes = device.household(VILLAGE_A, &household, "王大山", start);
    changes.extend(device.product(VILLAGE_A, &product, start));
    changes.extend(device.listing(VILLAGE_A, &listing, &product, start));
    let (_, body) = server.push(&carol, &device.batch(changes)).await;
    assert_eq!(statuses(&body), vec!["applied".to_owned(); 17]);
    let (_, cursor) = server.pull_all(&carol, 100).await;
    let verdict = admin(&format!("/admin/v1/listings/{listing}/moderation"), json!({"moderator": "li", "moderation_status": "approved", "platform_item_id": "TB-1"}))
        .await
        .expect("moderate");
    assert_eq!(verdict.status(), 204);
    let bad_verdict = admin(&format!("/admin/v1/listings/{listing}/moderation"), json!({"moderation_status": "maybe"})).await.expect("moderate");
    assert_eq!(error_body(bad_verdict).await.0, 400);
    // A draft was never submitted: its submissions are an empty list; an unknown listing is 404,
    // and the list needs the admin token.
    let list = |id: String, token: String| server.http.get(server.endpoint(&format!("/admin/v1/listings/{id}/submissions"))).bearer_auth(token).send();
    let none: Value = list(listing.clone(), ADMIN_TOKEN.into()).await.expect("list").json().await.expect("json");
    assert_eq!(none, json!({"listing_id": listing, "submissions": []}));
    assert_eq!(error_body(list(uuid::Uuid::now_v7().to_string(), ADMIN_TOKEN.into()).await.expect("list")).await.0, 404);
    assert_eq!(error_body(list(listing.clone(), carol.clone()).await.expect("list")).await.0, 401);
    let sale = admin(
        "/admin/v1/sales",
        json!({"listing_id": listing, "platform": "taobao", "order_no": "TB9", "order_date": "2026-03-01", "qty": 1,
               "unit_price_fen": 3000, "gross_fen": 3000, "net_to_seller_fen": 2700, "status": "completed",
               "allocations": [{"household_id": household, "amount_fen": 2700, "qty_g": 500}]}),
    )
    .await
    .expect("sale");
    assert_eq!(sale.status(), 201);
    let (status, page) = server.pull(&carol, Some(&cursor), 100).await;
    assert_eq!(status, 200);
    let tables: Vec<&str> = page["rows"].as_array().expect("rows").iter().filter_map(|row| row["tbl"].as_str()).collect();
    assert_eq!(tables, vec!["listings", "sales", "sale_allocations"]);
    assert_eq!(page["rows"][0]["fields"]["moderation_status"][0], json!("approved"));
    assert_eq!(page["rows"][2]["fields"]["amount_fen"][0], json!(2700));
    // The device's later push of a server-only field is refused.
    let grab = device.change("listings", &listing, "moderation_status", json!("rejected"), now_hlc(900), None);
    let (_, body) = server.push(&carol, &device.batch(vec![grab])).await;
    assert_eq!(statuses(&body), vec!["rejected/server_only"]);
    // Without the admin token nothing is accepted.
    let anonymous = server.http.post(server.endpoint("/admin/v1/villages")).json(&json!({"code": "520402101209", "name": "x"})).send().await.expect("post");
    assert_eq!(error_body(anonymous).await.0, 401);
}

#[tokio::test]
async fn two_instances_share_one_postgres_database() {
    let first = TestServer::seeded(Backend::Postgres);
    let second = first.start_another_instance();
    let token = first.login("alice").await.access_token;
    let mut laptop = Device::new();
    let mut phone = Device::new();
    let (one, two) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let (from_laptop, from_phone) =
        (laptop.household_batch(VILLAGE_A, &one, "甲", now_hlc(0)), phone.household_batch(VILLAGE_A, &two, "乙", now_hlc(0)));
    let phone_token = second.login("alice").await.access_token;
    let (a, b) = tokio::join!(first.push(&token, &from_laptop), second.push(&phone_token, &from_phone));
    assert_eq!((a.0, b.0), (200, 200));
    let (rows, _) = second.pull_all(&token, 1).await;
    let ids: Vec<&str> = rows.iter().filter_map(|row| row["id"].as_str()).collect();
    assert!(ids.contains(&one.as_str()) && ids.contains(&two.as_str()));
}

#[tokio::test]
async fn the_openapi_document_is_served() {
    let server = TestServer::seeded(Backend::Sqlite);
    let text = server.http.get(server.endpoint("/openapi.yaml")).send().await.expect("get").text().await.expect("text");
    assert!(text.starts_with("openapi: 3"));
    for path in ["/auth/v1/login", "/sync/v1/push", "/sync/v1/pull", "/blobs/uploads/{id}", "/admin/v1/sales"] {
        assert!(text.contains(&format!("  {path}:")), "{path} is documented");
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("compress");
    encoder.finish().expect("compress")
}

#[tokio::test]
async fn gzip_bodies_both_ways() {
    let server = TestServer::seeded(Backend::Sqlite);
    let token = server.login("alice").await.access_token;
    let mut device = Device::new();
    let mut changes = Vec::new();
    for index in 0..100 {
        changes.extend(device.household(VILLAGE_A, &uuid::Uuid::now_v7().to_string(), &format!("户主{index}"), now_hlc(index)));
    }
    let request = device.batch(changes);
    let plain = serde_json::to_vec(&request).expect("json");
    let compressed = gzip(&plain);
    // The figure docs/sync.md section 12 asks about: bytes per field change on the wire.
    println!(
        "push of {} field changes: {} bytes, {} gzip, {:.1} B per change",
        request.changes.len(),
        plain.len(),
        compressed.len(),
        compressed.len() as f64 / request.changes.len() as f64
    );
    let response = server
        .http
        .post(server.endpoint("/sync/v1/push"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(compressed)
        .send()
        .await
        .expect("push");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert!(statuses(&body).iter().all(|status| status == "applied"));
    // A gzip body that is not gzip is a 4xx, never a 5xx.
    let response = server
        .http
        .post(server.endpoint("/sync/v1/push"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(b"not gzip at all".to_vec())
        .send()
        .await
        .expect("push");
    assert!(response.status().is_client_error(), "{}", response.status());
    // Pull pages are compressed for clients that accept it. This client leaves the body
    // compressed, whatever features another crate turns on.
    let raw = reqwest::Client::builder().no_gzip().build().expect("client");
    let response = raw
        .get(server.endpoint("/sync/v1/pull?limit=1000"))
        .bearer_auth(&token)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("pull");
    assert_eq!(response.headers().get("content-encoding").map(|value| value.as_bytes()), Some(&b"gzip"[..]));
    let bytes = response.bytes().await.expect("bytes");
    let mut decoder = flate2::read::GzDecoder::new(bytes.as_ref());
    let mut text = String::new();
    decoder.read_to_string(&mut text).expect("gunzip");
    let page: PullResponse = serde_json::from_str(&text).expect("page");
    let fields: usize = page.rows.iter().map(|row| row.fields.len()).sum();
    println!("pull page of {} rows, {fields} fields: {} bytes gzip, {:.1} B per field", page.rows.len(), bytes.len(), bytes.len() as f64 / fields as f64);
    assert_eq!(page.rows.len(), 101);
}

#[tokio::test]
async fn the_platform_reassigns_and_disables_accounts() {
    let server = TestServer::seeded(Backend::Sqlite);
    let admin = |path: &str, body: Value| server.http.post(server.endpoint(path)).bearer_auth(ADMIN_TOKEN).json(&body).send();
    let alice = server.login("alice").await.access_token;
    let (_, first) = server.pull(&alice, None, 100).await;
    let cursor = first["cursor"].as_str().expect("cursor").to_owned();
    let assigned: Value = admin("/admin/v1/assistants/alice/villages", json!({"villages": [VILLAGE_B]}))
        .await
        .expect("assign")
        .json()
        .await
        .expect("json");
    assert_eq!(assigned["scopes"], json!([VILLAGE_A, VILLAGE_B]));
    let (_, page) = server.pull(&alice, Some(&cursor), 100).await;
    assert_eq!(page["reset"]["reason"], json!("scope_changed"));
    let unknown = admin("/admin/v1/assistants/alice/villages", json!({"villages": ["999999999999"]})).await.expect("assign");
    assert_eq!(error_body(unknown).await.0, 404);
    let nobody = admin("/admin/v1/assistants/nobody/villages", json!({"villages": [VILLAGE_B]})).await.expect("assign");
    assert_eq!(error_body(nobody).await.0, 404);
    // Disabling revokes the tokens at once and refuses sign-in; enabling allows it again.
    let disabled = admin("/admin/v1/assistants/alice/status", json!({"disabled": true})).await.expect("disable");
    assert_eq!(disabled.status(), 204);
    let (status, _) = server.pull(&alice, None, 10).await;
    assert_eq!(status, 401);
    let refused = server
        .http
        .post(server.endpoint("/auth/v1/login"))
        .json(&json!({"username": "alice", "password": "correct horse", "device_name": "d"}))
        .send()
        .await
        .expect("login");
    assert_eq!(error_body(refused).await.0, 401);
    let enabled = admin("/admin/v1/assistants/alice/status", json!({"disabled": false})).await.expect("enable");
    assert_eq!(enabled.status(), 204);
    server.login("alice").await;
}

on_both_backends!(
    async:
    sign_in_refresh_and_out,
    push_is_idempotent,
    a_batch_id_is_not_reused_for_another_body,
    a_new_change_under_an_applied_seq_is_refused,
);
