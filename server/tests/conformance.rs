//! One conformance suite for every storage backend: the same checks of accounts, tokens, the
//! push algorithm, pull pages and blobs, run against SQLite and against the PostgreSQL server at
//! 127.0.0.1:5432 (each test in its own database).

mod common;

use common::{caller, now_hlc, seed, Backend, Device, TestStorage, VILLAGE_A, VILLAGE_B};
use furrow_contract::wire::{PullResponse, PushResponse};
use furrow_server::on_both_backends;
use furrow_server::platform::{self, ModerationRequest, ServerClock};
use furrow_server::store::{self, BlobMeta, RowMeta, TokenRow, Upload};
use furrow_server::sync;
use furrow_server::Error;
use serde_json::{json, Value};

fn push(database: &dyn store::Database, who: &furrow_server::auth::Caller, request: &furrow_contract::wire::PushRequest) -> PushResponse {
    sync::check_push(request).expect("a well-formed batch");
    let clock = ServerClock::new();
    let outcome = store::write(database, |tx| sync::push(tx, who, &clock, request, furrow_contract::hlc::wall_ms())).expect("push");
    serde_json::from_str(&outcome.body).expect("response JSON")
}

fn pull(database: &dyn store::Database, who: &furrow_server::auth::Caller, cursor: Option<&str>, limit: i64) -> PullResponse {
    store::read(database, |tx| sync::pull(tx, who, cursor, limit, furrow_contract::wire::SCHEMA_VERSION, furrow_contract::hlc::wall_ms())).expect("pull")
}

fn statuses(response: &PushResponse) -> Vec<String> {
    response
        .results
        .iter()
        .map(|result| match &result.reason {
            Some(reason) => format!("{}/{reason}", result.status),
            None => result.status.clone(),
        })
        .collect()
}

fn accounts_and_tokens(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, bob) = seed(database.as_ref());
    assert_ne!(alice, bob);
    store::read(database.as_ref(), |tx| {
        assert_eq!(tx.scopes(alice)?, vec![VILLAGE_A.to_owned()]);
        assert_eq!(tx.user_by_name("alice")?.map(|user| user.id), Some(alice));
        assert_eq!(tx.user_by_name("nobody")?, None);
        assert_eq!(tx.village_name(VILLAGE_B)?.as_deref(), Some("龙潭村"));
        Ok(())
    })
    .expect("read accounts");
    let duplicate = store::write(database.as_ref(), |tx| tx.create_user("alice", "x", 0));
    assert!(matches!(duplicate, Err(Error::Duplicate(_))), "{duplicate:?}");
    store::write(database.as_ref(), |tx| {
        let row = TokenRow { kind: "access".into(), session_id: "s1".into(), user_id: alice, device_name: "d".into(), expires_at: 99 };
        tx.insert_token("hash-1", &row, 1)?;
        tx.insert_token("hash-2", &TokenRow { kind: "refresh".into(), ..row.clone() }, 1)?;
        assert_eq!(tx.token("hash-1")?, Some(row));
        assert_eq!(tx.delete_session("s1")?, 2);
        assert_eq!(tx.token("hash-2")?, None);
        tx.assign(alice, VILLAGE_B)?;
        tx.assign(alice, VILLAGE_B)?;
        assert_eq!(tx.scopes(alice)?.len(), 2);
        tx.unassign(alice, VILLAGE_B)?;
        assert!(tx.set_disabled(bob, true)?);
        assert!(tx.user_by_id(bob)?.is_some_and(|user| user.disabled));
        Ok(())
    })
    .expect("tokens");
    // A failed transaction leaves nothing behind.
    let failed: Result<(), Error> = store::write(database.as_ref(), |tx| {
        tx.create_user("carol", "x", 0)?;
        Err(Error::bad_request("test", "roll back"))
    });
    assert!(failed.is_err());
    assert_eq!(store::read(database.as_ref(), |tx| tx.user_by_name("carol")).expect("read"), None);
}

fn migrations_run_once_and_reopen(kind: Backend) {
    let backend = TestStorage::new(kind);
    let first = backend.open();
    seed(first.as_ref());
    drop(first);
    let second = backend.open();
    assert!(store::read(second.as_ref(), |tx| tx.user_by_name("alice")).expect("read").is_some());
}

fn push_then_pull_snapshot(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut device = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let request = device.household_batch(VILLAGE_A, &household, "王大山", now_hlc(0));
    let response = push(database.as_ref(), &who, &request);
    assert!(statuses(&response).iter().all(|status| status == "applied"), "{:?}", statuses(&response));
    assert_eq!(response.last_applied_seq, device.seq);
    let page = pull(database.as_ref(), &who, None, 100);
    assert!(!page.has_more);
    assert!(page.reset.is_none());
    let tables: Vec<&str> = page.rows.iter().map(|row| row.tbl.as_str()).collect();
    assert_eq!(tables, vec!["villages", "households"], "the village row then the household, in server order");
    let row = &page.rows[1];
    assert_eq!(row.id, household);
    assert_eq!(row.scope_id, VILLAGE_A);
    assert_eq!(row.fields["head_name"].0, json!("王大山"));
    assert_eq!(row.fields["scope_id"].0, json!(VILLAGE_A));
    assert_eq!(row.fields["head_name"].2, sync::node_base64(&device.node.0));
    // Nothing new: an empty page with the same cursor.
    let again = pull(database.as_ref(), &who, Some(&page.cursor), 100);
    assert!(again.rows.is_empty());
    assert_eq!(again.cursor, page.cursor);
}

fn replayed_batch_is_identical_and_logged_once(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut device = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let request = device.household_batch(VILLAGE_A, &household, "王大山", now_hlc(0));
    let first = store::write(database.as_ref(), |tx| sync::push(tx, &who, &ServerClock::new(), &request, furrow_contract::hlc::wall_ms())).expect("first");
    let second = store::write(database.as_ref(), |tx| sync::push(tx, &who, &ServerClock::new(), &request, furrow_contract::hlc::wall_ms())).expect("second");
    assert_eq!(first.body, second.body, "the stored response is replayed byte for byte");
    assert!(second.replayed);
    for change in &request.changes {
        let count = store::read(database.as_ref(), |tx| tx.change_log_count(&change.change_id)).expect("count");
        assert_eq!(count, 1, "change {} logged once", change.change_id);
    }
    // The same changes in a new batch (the stored response lost) are skipped by seq.
    let mut resent = request.clone();
    resent.batch_id = uuid::Uuid::new_v4().to_string();
    let third = push(database.as_ref(), &who, &resent);
    assert!(statuses(&third).iter().all(|status| status == "applied"));
    for change in &request.changes {
        assert_eq!(store::read(database.as_ref(), |tx| tx.change_log_count(&change.change_id)).expect("count"), 1);
    }
}

fn last_writer_wins_by_hlc_then_node(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut laptop = Device::new();
    let mut phone = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let base = now_hlc(0);
    push(database.as_ref(), &who, &laptop.household_batch(VILLAGE_A, &household, "王大山", base));
    // A later edit wins; an earlier one from another device loses and learns the current value.
    let later = laptop.change("households", &household, "head_name", json!("王大川"), base + 10, Some(base));
    assert_eq!(statuses(&push(database.as_ref(), &who, &laptop.batch(vec![later]))), vec!["applied"]);
    let earlier = phone.change("households", &household, "head_name", json!("王小山"), base + 5, Some(base));
    let response = push(database.as_ref(), &who, &phone.batch(vec![earlier]));
    assert_eq!(statuses(&response), vec!["superseded"]);
    let current = response.results[0].current.clone().expect("current value");
    assert_eq!(current.value, json!("王大川"));
    assert_eq!(current.hlc, base + 10);
    assert_eq!(current.actor.as_deref(), Some(format!("assistant:{alice}").as_str()));
    // Equal HLCs are ordered by node.
    let tie = base + 20;
    let (low, high) = if laptop.node < phone.node { (&mut laptop, &mut phone) } else { (&mut phone, &mut laptop) };
    let high_change = high.change("households", &household, "group_name", json!("高"), tie, None);
    let high_batch = high.batch(vec![high_change]);
    let low_change = low.change("households", &household, "group_name", json!("低"), tie, None);
    let low_batch = low.batch(vec![low_change]);
    assert_eq!(statuses(&push(database.as_ref(), &who, &high_batch)), vec!["applied"]);
    assert_eq!(statuses(&push(database.as_ref(), &who, &low_batch)), vec!["superseded"]);
    let stored = store::read(database.as_ref(), |tx| tx.field("households", &household, "group_name")).expect("read");
    assert_eq!(stored.map(|field| field.value), Some(json!("高")));
}

fn stale_base_server_only_and_forbidden(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, bob) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut device = Device::new();
    let (product, listing) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let start = now_hlc(0);
    let mut changes = device.product(VILLAGE_A, &product, start);
    changes.extend(device.listing(VILLAGE_A, &listing, &product, start));
    changes.push(device.change("listings", &listing, "sold_out", json!(true), start, None));
    changes.push(device.change("sales", &uuid::Uuid::now_v7().to_string(), "scope_id", json!(VILLAGE_A), start, None));
    let response = push(database.as_ref(), &who, &device.batch(changes));
    let mut expected = vec!["applied"; 12];
    expected.extend(["rejected/server_only"; 2]);
    assert_eq!(statuses(&response), expected);
    // A price edited from an old base is rejected with the current value.
    let fresh = device.change("listings", &listing, "price_fen", json!(1600), start + 5, Some(start));
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(vec![fresh]))), vec!["applied"]);
    let stale = device.change("listings", &listing, "price_fen", json!(1700), start + 9, Some(start));
    let response = push(database.as_ref(), &who, &device.batch(vec![stale]));
    assert_eq!(statuses(&response), vec!["rejected/stale_base"]);
    assert_eq!(response.results[0].current.as_ref().map(|current| current.value.clone()), Some(json!(1600)));
    // Bob, in another village, can neither edit Alice's listing, move it, nor create rows in
    // her village; a forged scope changes nothing. An edit, a move or a deletion of her row is
    // answered as for a row that does not exist, so he does not learn that it does.
    let bob_caller = caller(bob, &[VILLAGE_B]);
    let mut bobs = Device::new();
    let changes = vec![
        bobs.change("listings", &listing, "title", json!("偷改"), start + 50, None),
        bobs.change("listings", &listing, "scope_id", json!(VILLAGE_B), start + 50, None),
        bobs.change("households", &uuid::Uuid::now_v7().to_string(), "scope_id", json!(VILLAGE_A), start + 50, None),
        bobs.change("listings", &listing, "deleted", json!(1), start + 50, None),
    ];
    let response = push(database.as_ref(), &bob_caller, &bobs.batch(changes));
    assert_eq!(statuses(&response), vec!["rejected/invalid", "rejected/invalid", "rejected/forbidden", "rejected/invalid"]);
    let row = store::read(database.as_ref(), |tx| tx.row("listings", &listing)).expect("read");
    assert_eq!(row.map(|row| (row.scope_id, row.deleted)), Some((VILLAGE_A.to_owned(), false)));
    // Alice cannot move her own row into Bob's village either.
    let moved = device.change("listings", &listing, "scope_id", json!(VILLAGE_B), start + 60, None);
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(vec![moved]))), vec!["rejected/forbidden"]);
    // A row may not point at a parent in another village than its own, even for an assistant
    // working in both.
    let both = caller(alice, &[VILLAGE_A, VILLAGE_B]);
    let (foreign_product, own_listing) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let mut changes = device.product(VILLAGE_B, &foreign_product, start + 70);
    changes.extend(device.listing(VILLAGE_A, &own_listing, &product, start + 70));
    changes.push(device.change("listings", &own_listing, "product_id", json!(foreign_product), start + 71, None));
    let response = push(database.as_ref(), &both, &device.batch(changes));
    let mut expected = vec!["applied"; 12];
    expected.push("rejected/invalid");
    assert_eq!(statuses(&response), expected);
    // A client id belongs to the account that first used it.
    let stolen = device.batch(vec![]);
    let refused = store::write(database.as_ref(), |tx| sync::push(tx, &bob_caller, &ServerClock::new(), &stolen, 1));
    assert_eq!(refused.map(|outcome| outcome.body).map_err(|error| error.status().as_u16()), Err(403));
}

/// A push's answers without their change ids, to compare two pushes byte for byte.
fn answers(response: &PushResponse) -> Vec<String> {
    response
        .results
        .iter()
        .map(|result| {
            let mut answer = serde_json::to_value(result).expect("result JSON");
            answer.as_object_mut().expect("an object").remove("change_id");
            answer.to_string()
        })
        .collect()
}

fn a_create_with_a_foreign_id_is_answered_like_an_unusable_id(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, bob) = seed(database.as_ref());
    let (alice_caller, bob_caller) = (caller(alice, &[VILLAGE_A]), caller(bob, &[VILLAGE_B]));
    let (mut alices, mut bobs) = (Device::new(), Device::new());
    let start = now_hlc(0);
    let (taken, deleted) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let mut create = alices.household(VILLAGE_A, &taken, "王大山", start);
    create.extend(alices.household(VILLAGE_A, &deleted, "王二山", start));
    create.push(alices.change("households", &deleted, "deleted", json!(1), start + 1, None));
    assert_eq!(statuses(&push(database.as_ref(), &alice_caller, &alices.batch(create))), vec!["applied"; 11]);
    // Bob creates households in his own village under Alice's ids, a live one and a deleted one.
    let later = start + 50;
    let changes = bobs.household(VILLAGE_B, &taken, "冒名", later);
    let foreign = push(database.as_ref(), &bob_caller, &bobs.batch(changes));
    let changes = bobs.household(VILLAGE_B, &deleted, "冒名", later);
    let tombstone = push(database.as_ref(), &bob_caller, &bobs.batch(changes));
    // The same changes to an id nobody holds, the first not being a create: they cannot reveal
    // anything, since the id exists nowhere.
    let fresh = uuid::Uuid::now_v7().to_string();
    let mut unknown = vec![bobs.change("households", &fresh, "group_name", json!("一组"), later, None)];
    unknown.extend(bobs.household(VILLAGE_B, &fresh, "冒名", later).into_iter().skip(1));
    let unknown = push(database.as_ref(), &bob_caller, &bobs.batch(unknown));
    assert_eq!(statuses(&foreign), vec!["rejected/invalid"; 5]);
    assert_eq!(answers(&foreign), answers(&unknown), "a foreign id is answered like an id that exists nowhere");
    assert_eq!(answers(&tombstone), answers(&unknown));
    // A create naming a village Bob is not assigned to is forbidden, whether the id is taken or not.
    let changes = bobs.household(VILLAGE_A, &taken, "冒名", later);
    let into_a = push(database.as_ref(), &bob_caller, &bobs.batch(changes));
    let changes = bobs.household(VILLAGE_A, &fresh, "冒名", later);
    let fresh_into_a = push(database.as_ref(), &bob_caller, &bobs.batch(changes));
    assert_eq!(statuses(&into_a)[0], "rejected/forbidden");
    assert_eq!(answers(&into_a), answers(&fresh_into_a));
    // A create referencing Alice's household is answered like one referencing nothing.
    let (member, other) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let changes = bobs.member(VILLAGE_B, &member, &taken, "李四", later);
    let referencing = push(database.as_ref(), &bob_caller, &bobs.batch(changes));
    let nothing = uuid::Uuid::now_v7().to_string();
    let changes = bobs.member(VILLAGE_B, &other, &nothing, "李四", later);
    let dangling = push(database.as_ref(), &bob_caller, &bobs.batch(changes));
    assert_eq!(statuses(&referencing), vec!["rejected/invalid_record"; 3]);
    assert_eq!(answers(&referencing), answers(&dangling));
    // Nothing of Bob's landed.
    let row = store::read(database.as_ref(), |tx| tx.row("households", &taken)).expect("read").expect("kept");
    assert_eq!((row.scope_id.as_str(), row.deleted), (VILLAGE_A, false));
    let head = store::read(database.as_ref(), |tx| tx.field("households", &taken, "head_name")).expect("read");
    assert_eq!(head.map(|field| field.value), Some(json!("王大山")));
    assert!(!row_exists(database.as_ref(), "households", &fresh));
}

fn tombstones_are_kept_and_pulled(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut device = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let start = now_hlc(0);
    push(database.as_ref(), &who, &device.household_batch(VILLAGE_A, &household, "王大山", start));
    let page = pull(database.as_ref(), &who, None, 100);
    let deleted = device.change("households", &household, "deleted", json!(1), start + 1, None);
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(vec![deleted]))), vec!["applied"]);
    let next = pull(database.as_ref(), &who, Some(&page.cursor), 100);
    assert_eq!(next.rows.len(), 1);
    assert_eq!(next.rows[0].fields.keys().collect::<Vec<_>>(), vec!["deleted"], "only the changed field");
    assert_eq!(next.rows[0].fields["deleted"].0, json!(1));
    let row = store::read(database.as_ref(), |tx| tx.row("households", &household)).expect("read").expect("kept");
    assert!(row.deleted);
    // Income records are append-only: a second value for a field is refused.
    let (income, earner) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let mut create = device.household(VILLAGE_A, &earner, "王二山", start + 2);
    create.extend(device.income(VILLAGE_A, &income, &earner, 1000, start + 2));
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(create))), vec!["applied"; 11]);
    let edit = device.change("income_records", &income, "amount_fen", json!(2000), start + 3, None);
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(vec![edit]))), vec!["rejected/invalid"]);
}

fn pull_pages_in_order_and_resets_on_scope_change(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, bob) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut device = Device::new();
    let start = now_hlc(0);
    let mut ids = Vec::new();
    let mut changes = Vec::new();
    for index in 0..25 {
        let id = uuid::Uuid::now_v7().to_string();
        changes.extend(device.household(VILLAGE_A, &id, &format!("户主{index}"), start + index));
        ids.push(id);
    }
    push(database.as_ref(), &who, &device.batch(changes));
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut last_sv = 0;
    let mut pages = 0;
    loop {
        let page = pull(database.as_ref(), &who, cursor.as_deref(), 4);
        pages += 1;
        for row in &page.rows {
            assert!(row.sv > last_sv, "pages come in server order");
            last_sv = row.sv;
            assert_eq!(row.scope_id, VILLAGE_A);
            seen.push(row.id.clone());
        }
        cursor = Some(page.cursor.clone());
        if !page.has_more {
            break;
        }
    }
    assert_eq!(pages, 7, "26 rows (a village and 25 households) in pages of 4");
    for id in &ids {
        assert!(seen.contains(id));
    }
    // Bob sees only his village's row.
    let bobs = pull(database.as_ref(), &caller(bob, &[VILLAGE_B]), None, 100);
    assert_eq!(bobs.rows.len(), 1);
    assert_eq!(bobs.rows[0].scope_id, VILLAGE_B);
    // Alice is assigned village B too: her old cursor resets and the page re-snapshots.
    let widened = caller(alice, &[VILLAGE_A, VILLAGE_B]);
    let reset = pull(database.as_ref(), &widened, cursor.as_deref(), 1000);
    assert_eq!(reset.reset.map(|reset| reset.reason), Some("scope_changed".to_owned()));
    assert_eq!(reset.rows.len(), 27);
    // A cursor from the future or garbage is refused.
    let garbage = store::read(database.as_ref(), |tx| sync::pull(tx, &who, Some("not-a-cursor"), 10, 1, 0));
    assert_eq!(garbage.map(|_| ()).map_err(|error| error.status().as_u16()), Err(400));
}

fn a_row_moved_into_scope_arrives_whole(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let both = caller(alice, &[VILLAGE_A, VILLAGE_B]);
    let only_b = caller(alice + 1000, &[VILLAGE_B]);
    let mut device = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let start = now_hlc(0);
    push(database.as_ref(), &both, &device.household_batch(VILLAGE_A, &household, "王大山", start));
    let before = pull(database.as_ref(), &only_b, None, 100);
    assert!(before.rows.iter().all(|row| row.id != household));
    let moved = device.change("households", &household, "scope_id", json!(VILLAGE_B), start + 1, None);
    push(database.as_ref(), &both, &device.batch(vec![moved]));
    let after = pull(database.as_ref(), &only_b, Some(&before.cursor), 100);
    let row = after.rows.iter().find(|row| row.id == household).expect("the moved row");
    assert_eq!(row.fields["head_name"].0, json!("王大山"), "every field, not only the scope");
}

fn platform_writes_win_and_are_pulled(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut device = Device::new();
    let (product, listing, household) =
        (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let start = now_hlc(0);
    let mut changes = device.household(VILLAGE_A, &household, "王大山", start);
    changes.extend(device.product(VILLAGE_A, &product, start));
    changes.extend(device.listing(VILLAGE_A, &listing, &product, start));
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(changes))), vec!["applied"; 17]);
    let cursor = pull(database.as_ref(), &who, None, 100).cursor;
    let clock = ServerClock::new();
    let verdict = ModerationRequest {
        moderation_status: Some("rejected".into()),
        moderation_reason: Some("标题含极限词".into()),
        ..ModerationRequest::default()
    };
    // The moderator is the admin who signed in, named by the server, never by the body.
    store::write(database.as_ref(), |tx| platform::moderate(tx, &clock, "moderator:li", &listing, &verdict)).expect("moderate");
    let sale = platform::SaleRequest {
        id: None,
        listing_id: listing.clone(),
        platform: "taobao".into(),
        order_no: "TB1".into(),
        order_date: "2026-03-01".into(),
        qty: 2,
        unit_price_fen: 3000,
        gross_fen: 6000,
        net_to_seller_fen: 5400,
        status: "completed".into(),
        buyer_region: None,
        allocations: vec![platform::AllocationRequest { id: None, household_id: household.clone(), qty_g: Some(1000), amount_fen: 5400 }],
    };
    let recorded = store::write(database.as_ref(), |tx| platform::record_sale(tx, &clock, &sale)).expect("sale");
    let page = pull(database.as_ref(), &who, Some(&cursor), 100);
    let tables: Vec<&str> = page.rows.iter().map(|row| row.tbl.as_str()).collect();
    assert_eq!(tables, vec!["listings", "sales", "sale_allocations"]);
    assert_eq!(page.rows[0].fields["moderation_status"].0, json!("rejected"));
    assert_eq!(page.rows[2].id, recorded.allocation_ids[0]);
    assert_eq!(page.rows[2].fields["amount_fen"].0, json!(5400));
    let actor = store::read(database.as_ref(), |tx| tx.field("listings", &listing, "moderation_status")).expect("read");
    assert_eq!(actor.map(|field| field.actor), Some("moderator:li".to_owned()));
    // Allocations above what reached the seller are refused, and nothing is written.
    let mut greedy = sale.clone();
    greedy.allocations[0].amount_fen = 9999;
    let refused = store::write(database.as_ref(), |tx| platform::record_sale(tx, &clock, &greedy));
    assert_eq!(refused.map(|_| ()).map_err(|error| error.status().as_u16()), Err(400));
}

fn concurrent_writers_on_two_instances_leave_no_gaps(kind: Backend) {
    let backend = TestStorage::new(kind);
    let first = backend.open();
    let (alice, _) = seed(first.as_ref());
    let second = backend.open();
    let who = caller(alice, &[VILLAGE_A]);
    let mut handles = Vec::new();
    for (worker, database) in [first.clone(), second.clone(), first.clone(), second.clone()].into_iter().enumerate() {
        let who = who.clone();
        handles.push(std::thread::spawn(move || {
            let mut device = Device::new();
            let mut ids = Vec::new();
            for round in 0..10 {
                let id = uuid::Uuid::now_v7().to_string();
                let request = device.household_batch(VILLAGE_A, &id, &format!("户{worker}-{round}"), now_hlc(0));
                sync::check_push(&request).expect("valid");
                store::write(database.as_ref(), |tx| sync::push(tx, &who, &ServerClock::new(), &request, furrow_contract::hlc::wall_ms())).expect("push");
                ids.push(id);
            }
            ids
        }));
    }
    let mut expected = Vec::new();
    for handle in handles {
        expected.extend(handle.join().expect("worker"));
    }
    let mut seen = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = pull(second.as_ref(), &who, cursor.as_deref(), 7);
        for row in page.rows {
            seen.insert(row.id);
        }
        cursor = Some(page.cursor);
        if !page.has_more {
            break;
        }
    }
    for id in expected {
        assert!(seen.contains(&id), "row {id} was pulled");
    }
    let last = store::read(first.as_ref(), |tx| tx.current_seq()).expect("seq");
    assert_eq!(last, 2 * 3 + 40 * 5, "one sequence number per written field, none lost");
}

fn blob_and_upload_bookkeeping(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let sha = "ab".repeat(32);
    store::write(database.as_ref(), |tx| {
        let upload = Upload { id: "u1".into(), sha256: sha.clone(), size: 10, mime: "image/jpeg".into(), user_id: alice, offset: 0 };
        tx.put_upload(&upload, 1)?;
        assert!(tx.advance_upload("u1", 0, 4)?);
        assert!(!tx.advance_upload("u1", 0, 8)?, "a stale offset does not move the upload");
        assert_eq!(tx.upload("u1")?.map(|upload| upload.offset), Some(4));
        tx.delete_upload("u1")?;
        assert_eq!(tx.upload("u1")?, None);
        let blob = BlobMeta { sha256: sha.clone(), size: 10, mime: "image/jpeg".into(), uploaded_by: alice };
        tx.put_blob(&blob, 1)?;
        tx.put_blob(&blob, 2)?;
        assert_eq!(tx.blob(&sha)?, Some(blob));
        assert!(!tx.photo_in_scopes(&sha, &[VILLAGE_A.to_owned()])?);
        tx.put_row("photos", "p1", &RowMeta { scope_id: VILLAGE_A.into(), deleted: false, sv: 1_000 })?;
        let stored = furrow_server::store::StoredField {
            value: Value::String(sha.clone()),
            hlc: 1,
            node: vec![0; 16],
            server_seq: 1_000,
            actor: "assistant:1".into(),
        };
        tx.put_field("photos", "p1", "sha256", &stored)?;
        assert!(tx.photo_in_scopes(&sha, &[VILLAGE_A.to_owned()])?);
        assert!(!tx.photo_in_scopes(&sha, &[VILLAGE_B.to_owned()])?);
        Ok(())
    })
    .expect("blobs");
}

fn row_exists(database: &dyn store::Database, tbl: &str, row_id: &str) -> bool {
    let (row, fields) = store::read(database, |tx| Ok((tx.row(tbl, row_id)?, tx.fields(tbl, row_id)?))).expect("read");
    assert_eq!(row.is_some(), !fields.is_empty(), "a row's index entry and fields go together");
    row.is_some()
}

fn whole_records_are_checked_on_push(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut device = Device::new();
    let start = now_hlc(0);
    let before = store::read(database.as_ref(), |tx| tx.current_seq()).expect("seq");
    // A household without its head's name is refused whole: every change of it is rejected with
    // the failing field in both languages, and nothing of it is stored or logged.
    let nameless = uuid::Uuid::now_v7().to_string();
    let mut changes = device.household(VILLAGE_A, &nameless, "王大山", start);
    changes.retain(|change| change.field != "head_name");
    let response = push(database.as_ref(), &who, &device.batch(changes));
    assert_eq!(statuses(&response), vec!["rejected/invalid_record"; 4]);
    let message = response.results[0].message.clone().unwrap_or_default();
    assert!(message.contains("head_name") && message.contains("必填") && message.contains("is required (required)"), "{message}");
    assert!(response.results.iter().all(|result| result.current.is_none()), "a new row has no server value");
    assert!(!row_exists(database.as_ref(), "households", &nameless));
    let logged = store::read(database.as_ref(), |tx| tx.change_log_count(&response.results[0].change_id)).expect("count");
    assert_eq!(logged, 0);
    assert_eq!(store::read(database.as_ref(), |tx| tx.current_seq()).expect("seq"), before, "no sequence number was used");

    // A new household and its member in one batch: the member's reference finds the household
    // written earlier in the same batch, and both are applied.
    let (household, member) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let mut changes = device.household(VILLAGE_A, &household, "王大山", start + 1);
    changes.extend(device.member(VILLAGE_A, &member, &household, "王小明", start + 1));
    let response = push(database.as_ref(), &who, &device.batch(changes));
    assert_eq!(statuses(&response), vec!["applied"; 8]);
    assert!(row_exists(database.as_ref(), "members", &member));
    assert_eq!(store::read(database.as_ref(), |tx| tx.current_seq()).expect("seq"), before + 8, "no gap in the sequence");

    // Partial pushes are checked on the stored row with the change laid over it: a phone alone
    // is applied; clearing the head's name is rejected and the server keeps the name, which it
    // sends back so the device can show it.
    let phone = device.change("households", &household, "phone", json!("13800138000"), start + 2, None);
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(vec![phone]))), vec!["applied"]);
    for cleared in [json!(""), Value::Null] {
        let clear = device.change("households", &household, "head_name", cleared, start + 3, Some(start + 1));
        let response = push(database.as_ref(), &who, &device.batch(vec![clear]));
        assert_eq!(statuses(&response), vec!["rejected/invalid_record"]);
        assert_eq!(response.results[0].current.as_ref().map(|current| current.value.clone()), Some(json!("王大山")));
        let stored = store::read(database.as_ref(), |tx| tx.field("households", &household, "head_name")).expect("read");
        assert_eq!(stored.map(|field| field.value), Some(json!("王大山")));
    }
    // A wrong cross-field rule is refused the same way (the exit year before the year
    // identified), together with the rest of that row's changes in the batch.
    let changes = vec![
        device.change("households", &household, "group_name", json!("三组"), start + 4, None),
        device.change("households", &household, "identified_year", json!(2020), start + 4, None),
        device.change("households", &household, "exit_year", json!(2018), start + 4, None),
    ];
    let response = push(database.as_ref(), &who, &device.batch(changes));
    assert_eq!(statuses(&response), vec!["rejected/invalid_record"; 3]);
    assert!(response.results[0].message.as_deref().unwrap_or_default().contains("before_identified"));
    let group = store::read(database.as_ref(), |tx| tx.field("households", &household, "group_name")).expect("read");
    assert_eq!(group, None);

    // A refused household takes its new member with it (the reference no longer finds a row),
    // while an unrelated valid row of the same batch is applied; a replay answers the same.
    let (orphan_parent, orphan, other) =
        (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let mut changes = device.household(VILLAGE_A, &orphan_parent, "", start + 5);
    changes.extend(device.member(VILLAGE_A, &orphan, &orphan_parent, "李四", start + 5));
    changes.extend(device.household(VILLAGE_A, &other, "张三", start + 5));
    let request = device.batch(changes);
    let response = push(database.as_ref(), &who, &request);
    let mut expected = vec!["rejected/invalid_record"; 8];
    expected.extend(["applied"; 5]);
    assert_eq!(statuses(&response), expected);
    let member_message = response.results[5].message.clone().unwrap_or_default();
    assert!(member_message.contains("household_id") && member_message.contains("not_found"), "{member_message}");
    assert!(!row_exists(database.as_ref(), "households", &orphan_parent));
    assert!(!row_exists(database.as_ref(), "members", &orphan));
    assert!(row_exists(database.as_ref(), "households", &other));
    assert_eq!(push(database.as_ref(), &who, &request), response, "a replay answers the same");
    // Deleting is not a whole-record matter: a tombstone is applied.
    let delete = device.change("households", &other, "deleted", json!(1), start + 6, None);
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(vec![delete]))), vec!["applied"]);
}

fn pruning_purges_old_tombstones_and_resets_older_cursors(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut device = Device::new();
    let (gone, kept, late) = (uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string(), uuid::Uuid::now_v7().to_string());
    let start = now_hlc(0);
    let mut changes = device.household(VILLAGE_A, &gone, "王大山", start);
    changes.extend(device.household(VILLAGE_A, &kept, "李小河", start));
    changes.extend(device.household(VILLAGE_A, &late, "张三", start));
    push(database.as_ref(), &who, &device.batch(changes));
    let before_deletes = pull(database.as_ref(), &who, None, 100).cursor;
    std::thread::sleep(std::time::Duration::from_millis(5));
    let first_delete = device.change("households", &gone, "deleted", json!(1), start + 1, None);
    let delete_batch = device.batch(vec![first_delete]);
    assert_eq!(statuses(&push(database.as_ref(), &who, &delete_batch)), vec!["applied"]);
    let delete_change = delete_batch.changes[0].change_id.clone();
    std::thread::sleep(std::time::Duration::from_millis(5));
    let horizon = furrow_contract::hlc::wall_ms();
    std::thread::sleep(std::time::Duration::from_millis(5));
    // A row deleted after the horizon is kept, as is every live row.
    let second_delete = device.change("households", &late, "deleted", json!(1), start + 2, None);
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(vec![second_delete]))), vec!["applied"]);
    let after_deletes = pull(database.as_ref(), &who, Some(&before_deletes), 100).cursor;

    // The library refuses a horizon shorter than max_offline_days, as the command does.
    let refused = store::write(database.as_ref(), |tx| sync::prune_history(tx, 30, furrow_contract::hlc::wall_ms()));
    assert_eq!(refused.map(|_| ()).map_err(|error| error.status().as_u16()), Err(400));
    // 180 days back nothing here is old enough.
    let nothing = store::write(database.as_ref(), |tx| sync::prune_history(tx, sync::MIN_HISTORY_DAYS, furrow_contract::hlc::wall_ms())).expect("prune");
    assert_eq!((nothing.rows_purged, nothing.changes_purged, nothing.horizon_seq), (0, 0, 0));
    assert!(row_exists(database.as_ref(), "households", &gone));
    assert!(pull(database.as_ref(), &who, Some(&before_deletes), 100).reset.is_none());

    let pruned = store::write(database.as_ref(), |tx| sync::prune_history_before(tx, horizon, furrow_contract::hlc::wall_ms())).expect("prune");
    assert_eq!((pruned.rows_purged, pruned.changes_purged), (1, 6), "the tombstone with its five fields and its delete");
    assert!(!row_exists(database.as_ref(), "households", &gone));
    assert_eq!(store::read(database.as_ref(), |tx| tx.change_log_count(&delete_change)).expect("count"), 0);
    assert!(row_exists(database.as_ref(), "households", &kept));
    assert!(row_exists(database.as_ref(), "households", &late), "deleted after the horizon: kept");
    assert_eq!(store::read(database.as_ref(), |tx| tx.history_horizon()).expect("horizon"), pruned.horizon_seq);

    // A cursor from before the horizon may have missed the purged tombstone: it gets a fresh
    // snapshot, which holds the live row and the later tombstone but not the purged row.
    let page = pull(database.as_ref(), &who, Some(&before_deletes), 100);
    assert_eq!(page.reset.as_ref().map(|reset| reset.reason.as_str()), Some("history_pruned"));
    let ids: Vec<&str> = page.rows.iter().map(|row| row.id.as_str()).collect();
    assert!(ids.contains(&kept.as_str()) && ids.contains(&late.as_str()) && !ids.contains(&gone.as_str()), "{ids:?}");
    // The snapshot's cursor, a cursor from after the deletes and a first pull go on normally.
    assert!(pull(database.as_ref(), &who, Some(&page.cursor), 100).reset.is_none());
    assert!(pull(database.as_ref(), &who, Some(&after_deletes), 100).reset.is_none());
    assert!(pull(database.as_ref(), &who, None, 100).reset.is_none());
    // A later run with an older horizon does not move the horizon back.
    let again = store::write(database.as_ref(), |tx| sync::prune_history_before(tx, 0, furrow_contract::hlc::wall_ms())).expect("prune");
    assert_eq!((again.rows_purged, again.horizon_seq), (0, pruned.horizon_seq));
    // An edit of the purged row does not bring it back: the server no longer knows the row.
    let edit = device.change("households", &gone, "head_name", json!("复活"), start + 3, None);
    assert_eq!(statuses(&push(database.as_ref(), &who, &device.batch(vec![edit]))), vec!["rejected/invalid"]);
    assert!(!row_exists(database.as_ref(), "households", &gone));
}

/// Runs every check against both backends.
/// A device re-sending fields to a restored server names their writer when it is another device:
/// the server merges and stores them under that node, so the field comes back exactly as it was,
/// and the writer's own copy of the same stamp is then a no-op. A node that is not base64 of 16
/// bytes refuses the batch.
fn a_resent_field_keeps_its_writers_node(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let who = caller(alice, &[VILLAGE_A]);
    let mut laptop = Device::new();
    let mut tablet = Device::new();
    let household = uuid::Uuid::now_v7().to_string();
    let stamp = now_hlc(0);
    // The tablet re-sends the laptop's household, which the restored server lacks.
    let mut resent = tablet.household(VILLAGE_A, &household, "王大山", stamp);
    for change in &mut resent {
        change.node = Some(sync::node_base64(&laptop.node.0));
    }
    let response = push(database.as_ref(), &who, &tablet.batch(resent));
    assert!(statuses(&response).iter().all(|status| status == "applied"), "{:?}", statuses(&response));
    let page = pull(database.as_ref(), &who, None, 100);
    let row = page.rows.iter().find(|row| row.id == household).expect("the household is back");
    // The `deleted` flag of a row never deleted comes with the least stamp, not a written one.
    for (name, (_, hlc, node)) in row.fields.iter().filter(|(name, _)| name.as_str() != "deleted") {
        assert_eq!((*hlc, node.as_str()), (stamp, sync::node_base64(&laptop.node.0).as_str()), "{name} keeps its stamp");
    }
    // The laptop sending the same stamps is the same change: applied, nothing written again.
    let changes_before = store::read(database.as_ref(), |tx| tx.current_seq()).expect("the counter");
    let response = push(database.as_ref(), &who, &laptop.household_batch(VILLAGE_A, &household, "王大山", stamp));
    assert!(statuses(&response).iter().all(|status| status == "applied"), "{:?}", statuses(&response));
    assert_eq!(store::read(database.as_ref(), |tx| tx.current_seq()).expect("the counter"), changes_before);
    // A malformed node refuses the whole batch.
    for bad in ["not base64!", "AAAA", &sync::node_base64(&[7; 17])] {
        let mut change = tablet.change("households", &household, "notes", json!("备注"), now_hlc(1), None);
        change.node = Some(bad.to_owned());
        let refused = sync::check_push(&tablet.batch(vec![change])).expect_err("a malformed node is refused");
        assert_eq!(refused.status().as_u16(), 400, "{bad}: {refused:?}");
    }
}

fn housekeeping_forgets_only_what_expired(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let now = furrow_contract::hlc::wall_ms();
    store::write(database.as_ref(), |tx| {
        let row = TokenRow { kind: "access".into(), session_id: "s".into(), user_id: alice, device_name: "d".into(), expires_at: now - 1 };
        tx.insert_token("old", &row, 0)?;
        tx.insert_token("new", &TokenRow { expires_at: now + 60_000, ..row }, 0)?;
        tx.put_batch("client", "old-batch", "{}", now - sync::BATCH_RETENTION_MS - 1)?;
        tx.put_batch("client", "new-batch", "{}", now)?;
        let upload = Upload { id: "abandoned".into(), sha256: "ab".repeat(32), size: 10, mime: "image/jpeg".into(), user_id: alice, offset: 4 };
        tx.put_upload(&upload, now - sync::UPLOAD_RETENTION_MS - 1)?;
        tx.put_upload(&Upload { id: "recent".into(), ..upload }, now)?;
        let done = sync::housekeeping(tx, now)?;
        assert_eq!((done.tokens, done.batches, done.uploads), (1, 1, vec!["abandoned".to_owned()]));
        assert!(tx.upload("recent")?.is_some());
        assert!(tx.upload("abandoned")?.is_none());
        assert!(tx.token("new")?.is_some());
        assert!(tx.batch("client", "new-batch")?.is_some());
        assert!(tx.batch("client", "old-batch")?.is_none());
        Ok(())
    })
    .expect("housekeeping");
}

fn more_concurrent_requests_than_connections_all_succeed(kind: Backend) {
    let backend = TestStorage::new(kind);
    let database = backend.open();
    let (alice, _) = seed(database.as_ref());
    let threads: Vec<_> = (0..40)
        .map(|_| {
            let database = database.clone();
            std::thread::spawn(move || {
                store::read(database.as_ref(), |tx| {
                    // Holding the connection a moment makes the requests overlap.
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    tx.scopes(alice)
                })
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().expect("thread").expect("read"), vec![VILLAGE_A.to_owned()]);
    }
    if let Some(url) = backend.database_url() {
        let pool = std::sync::Arc::new(furrow_server::store::postgres::PostgresDatabase::open(url, None).expect("open"));
        let threads: Vec<_> = (0..40)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    store::read(pool.as_ref(), |tx| {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        tx.scopes(alice)
                    })
                })
            })
            .collect();
        for thread in threads {
            assert!(thread.join().expect("thread").is_ok());
        }
        let open = pool.open_connections();
        assert!((1..=furrow_server::store::postgres::MAX_CONNECTIONS).contains(&open), "{open} connections");
    }
}

on_both_backends!(
    more_concurrent_requests_than_connections_all_succeed,
    housekeeping_forgets_only_what_expired,
    accounts_and_tokens,
    migrations_run_once_and_reopen,
    push_then_pull_snapshot,
    replayed_batch_is_identical_and_logged_once,
    last_writer_wins_by_hlc_then_node,
    stale_base_server_only_and_forbidden,
    a_create_with_a_foreign_id_is_answered_like_an_unusable_id,
    tombstones_are_kept_and_pulled,
    pull_pages_in_order_and_resets_on_scope_change,
    a_row_moved_into_scope_arrives_whole,
    platform_writes_win_and_are_pulled,
    concurrent_writers_on_two_instances_leave_no_gaps,
    blob_and_upload_bookkeeping,
    whole_records_are_checked_on_push,
    pruning_purges_old_tombstones_and_resets_older_cursors,
    a_resent_field_keeps_its_writers_node,
);
