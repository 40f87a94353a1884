//! Pulls of more than one page, over real HTTP on both backends: a row first met on a later page
//! carries every field changed since the pull began, whatever the page size, and a cursor of the
//! first format is answered with a fresh snapshot rather than a partial row.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::{now_hlc, Backend, Device, TestServer, VILLAGE_A};
use furrow_contract::wire::SCHEMA_VERSION;
use furrow_server::on_both_backends;
use serde_json::{json, Value};

/// Rows by (table, id), each with its fields by name, from pages applied in order (a later page's
/// field replaces an earlier one's, as on a device).
fn union(rows: &[Value]) -> BTreeMap<(String, String), BTreeMap<String, Value>> {
    let mut union: BTreeMap<(String, String), BTreeMap<String, Value>> = BTreeMap::new();
    for row in rows {
        let key = (row["tbl"].as_str().unwrap_or_default().to_owned(), row["id"].as_str().unwrap_or_default().to_owned());
        let fields = union.entry(key).or_default();
        for (name, field) in row["fields"].as_object().cloned().unwrap_or_default() {
            fields.insert(name, field);
        }
    }
    union
}

fn field_names(row: &Value) -> Vec<String> {
    row["fields"].as_object().map(|fields| fields.keys().cloned().collect()).unwrap_or_default()
}

async fn push_ok(server: &TestServer, token: &str, device: &Device, changes: Vec<furrow_contract::wire::Change>) {
    let (status, body) = server.push(token, &device.batch(changes)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["results"].as_array().expect("results").iter().all(|result| result["status"] == "applied"), "{body}");
}

/// The reproduction: H pushed whole, then K, then one more field of H. A new device pulling two
/// rows a page meets the village and K on page 1, and H on page 2, where H used to arrive with
/// `notes` alone.
async fn a_row_first_met_on_a_later_page_arrives_whole(kind: Backend) {
    let server = TestServer::seeded(kind);
    let token = server.login("alice").await.access_token;
    let mut device = Device::new();
    let (h, k) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let changes = device.household(VILLAGE_A, &h, "张建国", now_hlc(1));
    push_ok(&server, &token, &device, changes).await;
    let changes = device.household(VILLAGE_A, &k, "李秀英", now_hlc(2));
    push_ok(&server, &token, &device, changes).await;
    let notes = device.change("households", &h, "notes", json!("二〇二六年十一月回访"), now_hlc(3), None);
    push_ok(&server, &token, &device, vec![notes]).await;

    let (first_status, first) = server.pull(&token, None, 2).await;
    assert_eq!(first_status, 200, "{first}");
    assert_eq!(first["has_more"], json!(true));
    let first_ids: Vec<&str> = first["rows"].as_array().expect("rows").iter().map(|row| row["id"].as_str().unwrap_or_default()).collect();
    assert!(first_ids.contains(&k.as_str()) && !first_ids.contains(&h.as_str()), "page 1 holds K, not H: {first}");
    let (second_status, second) = server.pull(&token, first["cursor"].as_str(), 2).await;
    assert_eq!(second_status, 200, "{second}");
    assert_eq!(second["has_more"], json!(false));
    let row = second["rows"].as_array().expect("rows").iter().find(|row| row["id"] == json!(h)).expect("H is on page 2");
    assert_eq!(
        field_names(row),
        ["attribute", "deleted", "head_name", "notes", "poverty_status", "scope_id", "village_id"],
        "H arrives with every field, not with notes alone: {row}"
    );
    assert_eq!(row["fields"]["head_name"][0], json!("张建国"));

    // The union of the pages equals one page of everything, for every page size.
    let (whole, _) = server.pull_all(&token, 1000).await;
    // A snapshot says for every row whether it is deleted; a row never deleted carries 0 with the
    // least stamp, which any real deletion beats.
    for row in &whole {
        assert_eq!(row["fields"]["deleted"], json!([0, 0, "AAAAAAAAAAAAAAAAAAAAAA=="]), "{row}");
    }
    let deletion = device.change("households", &k, "deleted", json!(1), now_hlc(4), None);
    push_ok(&server, &token, &device, vec![deletion]).await;
    let (whole, _) = server.pull_all(&token, 1000).await;
    let tombstone = whole.iter().find(|row| row["id"] == json!(k)).expect("K's tombstone is in the snapshot");
    assert_eq!(tombstone["fields"]["deleted"][0], json!(1));
    assert!(tombstone["fields"]["deleted"][1].as_i64().unwrap_or(0) > 0, "a real deletion has its own clock: {tombstone}");
    for limit in [1, 2, 3, 7] {
        let (paged, _) = server.pull_all(&token, limit).await;
        assert_eq!(union(&paged), union(&whole), "pages of {limit}");
    }
}

/// An incremental pull that spans pages: rows created and edited after the pull's starting
/// cursor arrive whole, and a row edited again while the device pages arrives with every field
/// changed since the pull began.
async fn an_incremental_pull_across_pages_carries_every_field_since_it_began(kind: Backend) {
    let server = TestServer::seeded(kind);
    let token = server.login("alice").await.access_token;
    let mut device = Device::new();
    let old = uuid::Uuid::now_v7().to_string();
    let changes = device.household(VILLAGE_A, &old, "王芳", now_hlc(1));
    push_ok(&server, &token, &device, changes).await;
    let (_, start) = server.pull_all(&token, 1000).await;

    // After the device's cursor: a new household J, an edit of the old one, a second new
    // household, then more edits of J and of the old one.
    let (j, m) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let changes = device.household(VILLAGE_A, &j, "赵磊", now_hlc(2));
    push_ok(&server, &token, &device, changes).await;
    let phone = device.change("households", &old, "phone", json!("13800138000"), now_hlc(3), None);
    push_ok(&server, &token, &device, vec![phone]).await;
    let changes = device.household(VILLAGE_A, &m, "孙丽", now_hlc(4));
    push_ok(&server, &token, &device, changes).await;
    let notes = device.change("households", &j, "notes", json!("已开店"), now_hlc(5), None);
    push_ok(&server, &token, &device, vec![notes]).await;

    // Page 1 (one row): the old household, with its new phone only.
    let (_, page) = server.pull(&token, Some(&start), 1).await;
    assert_eq!(page["rows"][0]["id"], json!(old));
    assert_eq!(field_names(&page["rows"][0]), ["phone"], "{page}");
    // Meanwhile the old household is edited again; its phone comes again later with the new
    // field, because the pull has not ended.
    let group = device.change("households", &old, "group_name", json!("三组"), now_hlc(6), None);
    push_ok(&server, &token, &device, vec![group]).await;
    let mut rows = page["rows"].as_array().cloned().unwrap_or_default();
    let mut cursor = page["cursor"].as_str().map(str::to_owned);
    loop {
        let (status, page) = server.pull(&token, cursor.as_deref(), 1).await;
        assert_eq!(status, 200, "{page}");
        rows.extend(page["rows"].as_array().cloned().unwrap_or_default());
        cursor = page["cursor"].as_str().map(str::to_owned);
        if page["has_more"] != json!(true) {
            break;
        }
    }
    let pulled = union(&rows);
    let fields = |id: &str| pulled.get(&("households".to_owned(), id.to_owned())).cloned().unwrap_or_default();
    assert_eq!(
        fields(&j).keys().cloned().collect::<Vec<_>>(),
        ["attribute", "deleted", "head_name", "notes", "poverty_status", "scope_id", "village_id"],
        "J, created after the cursor and met after other pages, arrives whole"
    );
    assert_eq!(fields(&m).len(), 6, "M arrives whole");
    assert_eq!(fields(&old).keys().cloned().collect::<Vec<_>>(), ["group_name", "phone"]);

    // The pull ended: the next one from its cursor brings nothing, and a new change alone.
    let (_, next) = server.pull(&token, cursor.as_deref(), 1).await;
    assert_eq!(next["rows"], json!([]), "{next}");
    let again = device.change("households", &m, "notes", json!("待回访"), now_hlc(7), None);
    push_ok(&server, &token, &device, vec![again]).await;
    let (_, next) = server.pull(&token, next["cursor"].as_str(), 1).await;
    assert_eq!(next["rows"].as_array().map(Vec::len), Some(1));
    assert_eq!(field_names(&next["rows"][0]), ["notes"], "{next}");
}

/// A cursor of the first format (`c1:SEQ:SCOPE_HASH:VERSION`), as devices hold it from an older
/// server, cannot say how complete its device is: it is answered with a fresh snapshot whose rows
/// are whole, and the device's next cursor is of the new format.
async fn a_first_format_cursor_is_answered_with_a_snapshot_never_a_partial_row(kind: Backend) {
    let server = TestServer::seeded(kind);
    let token = server.login("alice").await.access_token;
    let mut device = Device::new();
    let (h, k) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let changes = device.household(VILLAGE_A, &h, "周强", now_hlc(1));
    push_ok(&server, &token, &device, changes).await;
    let changes = device.household(VILLAGE_A, &k, "吴敏", now_hlc(2));
    push_ok(&server, &token, &device, changes).await;
    let notes = device.change("households", &h, "notes", json!("新字段"), now_hlc(3), None);
    push_ok(&server, &token, &device, vec![notes]).await;
    // The cursor an older server gave after a first page that ended at K.
    let (_, first) = server.pull(&token, None, 2).await;
    let reached = first["rows"].as_array().expect("rows").iter().map(|row| row["sv"].as_i64().unwrap_or(0)).max().unwrap_or(0);
    let hash = furrow_server::sync::scope_hash(&[VILLAGE_A.to_owned()]);
    let old = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("c1:{reached}:{hash}:{SCHEMA_VERSION}"));

    let (status, page) = server.pull(&token, Some(&old), 1000).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["reset"]["reason"], json!("cursor_format"), "{page}");
    let row = page["rows"].as_array().expect("rows").iter().find(|row| row["id"] == json!(h)).expect("H is in the snapshot");
    assert_eq!(field_names(row).len(), 7, "H is whole: {row}");
    let cursor = furrow_server::sync::Cursor::decode(page["cursor"].as_str().unwrap_or_default()).expect("a cursor");
    assert!(cursor.epoch.is_some(), "the next cursor is of the new format");
    let (status, next) = server.pull(&token, page["cursor"].as_str(), 1000).await;
    assert_eq!((status, next["reset"].clone(), next["rows"].clone()), (200, Value::Null, json!([])));
}

on_both_backends!(
    async:
    a_row_first_met_on_a_later_page_arrives_whole,
    an_incremental_pull_across_pages_carries_every_field_since_it_began,
    a_first_format_cursor_is_answered_with_a_snapshot_never_a_partial_row,
);
