//! Opening the store: upgrades between migrations, refusal of a tampered or newer database, and
//! encryption at rest with a clear error for a wrong key that touches nothing.

mod common;

use common::Fixture;
use furrow::domain::household;
use furrow::store::MIGRATIONS;
use furrow::{Error, OpenOptions, Store};

fn file_bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn a_database_made_by_an_older_migration_opens_and_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let old = Store::open(&OpenOptions { migrate_to: Some(1), ..OpenOptions::file(&path) }).unwrap();
    assert_eq!(old.applied_migrations().unwrap().len(), 1);
    drop(old);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let lines: i64 = conn.query_row("SELECT count(*) FROM poverty_lines", [], |row| row.get(0)).unwrap();
        assert_eq!(lines, 0, "migration 2 has not run yet");
    }
    let upgraded = Store::open(&OpenOptions::file(&path)).unwrap();
    let applied = upgraded.applied_migrations().unwrap();
    assert_eq!(applied.len(), MIGRATIONS.len());
    assert_eq!(applied.last().unwrap().1, MIGRATIONS.last().unwrap().name);
    assert_eq!(furrow::domain::reference::poverty_lines(&upgraded).unwrap().len(), 4);
}

#[test]
fn work_saved_before_an_upgrade_survives_it_and_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("work.db");
    let old = Store::open(&OpenOptions { migrate_to: Some(1), ..OpenOptions::file(&path) }).unwrap();
    let node = old.node();
    drop(old);
    // What a build with only the first migration wrote: rows, their search document, and an
    // unsent outbox entry.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "INSERT INTO villages (id, scope_id, code, name) VALUES ('v1', '522633101001', '522633101001', '高坡村');
         INSERT INTO households (id, scope_id, village_id, head_name, attribute, poverty_status)
              VALUES ('h1', '522633101001', 'v1', '王小梅', 'general', 'not_exited');
         INSERT INTO household_search_doc (household_id, body) VALUES ('h1', '王小梅 高坡村');
         INSERT INTO sync_outbox (change_id, tbl, row_id, field, value, hlc, node)
              VALUES (x'01', 'households', 'h1', 'head_name', '\"王小梅\"', 1, x'00');",
    )
    .unwrap();
    drop(conn);

    let upgraded = Store::open(&OpenOptions::file(&path)).unwrap();
    assert_eq!(upgraded.applied_migrations().unwrap().len(), MIGRATIONS.len());
    assert_eq!(household::get(&upgraded, "h1").unwrap().head_name.as_deref(), Some("王小梅"));
    assert_eq!(upgraded.pending_changes().unwrap(), 1, "unsynced work is kept across an upgrade");
    assert_eq!(upgraded.node(), node, "the device keeps its identity");
    let found = household::search(&upgraded, &household::RosterQuery { text: Some("小梅".into()), ..Default::default() }).unwrap();
    assert_eq!(found.len(), 1, "the search index is rebuilt for what the new version indexes");
}

#[test]
fn a_tampered_migration_record_is_refused_without_changes() {
    let fixture = Fixture::new();
    let path = fixture.path();
    drop(fixture.store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1", []).unwrap();
    drop(conn);
    let before = file_bytes(&path);
    let error = Store::open(&OpenOptions::file(&path)).err().expect("refused");
    assert!(matches!(error, Error::MigrationMismatch(_)), "{error:?}");
    assert_eq!(error.code(), "migration_mismatch");
    assert!(error.message_zh().contains("数据库结构"), "{}", error.message_zh());
    assert_eq!(file_bytes(&path), before);
}

#[test]
fn a_database_from_a_newer_version_is_refused() {
    let fixture = Fixture::new();
    let path = fixture.path();
    drop(fixture.store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("INSERT INTO schema_migrations VALUES (99, '0099_future.sql', 'x', '2030-01-01')", []).unwrap();
    drop(conn);
    let error = Store::open(&OpenOptions::file(&path)).err().expect("refused");
    assert!(matches!(error, Error::NewerDatabase(_)), "{error:?}");
    assert!(error.message_zh().contains("更新版本"));
}

#[test]
fn an_encrypted_store_hides_its_text_and_refuses_a_wrong_key_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.db");
    let options = OpenOptions::file(&path).with_key("correct horse battery staple");
    let mut store = Store::open(&options).unwrap();
    let village = furrow::domain::village::save(
        &mut store,
        &furrow::domain::village::Village { code: Some("522633101001".into()), name: Some("高坡村".into()), ..Default::default() },
    )
    .unwrap();
    household::save(&mut store, &common::household_draft(village.id.as_deref().unwrap(), "王小梅")).unwrap();
    drop(store);

    // Checkpoint the WAL into the main file so the check below sees everything that was written.
    let reopened = Store::open(&options).unwrap();
    drop(reopened);
    let mut everything = file_bytes(&path);
    if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
        everything.extend(wal);
    }
    let name = "王小梅".as_bytes();
    assert!(!everything.windows(name.len()).any(|window| window == name), "the name is readable in the file");

    let before = file_bytes(&path);
    for wrong in [OpenOptions::file(&path).with_key("wrong key"), OpenOptions::file(&path)] {
        let error = Store::open(&wrong).err().expect("a wrong key is refused");
        assert!(matches!(error, Error::WrongKey), "{error:?}");
        assert!(error.message_zh().contains("密钥错误"));
    }
    assert_eq!(file_bytes(&path), before, "a refused open wrote nothing");
    let store = Store::open(&options).unwrap();
    let found = household::search(&store, &household::RosterQuery { text: Some("小梅".into()), ..Default::default() }).unwrap();
    assert_eq!(found.len(), 1);
}

#[test]
fn a_backup_of_an_encrypted_store_is_whole_and_opens_with_the_same_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let options = OpenOptions::file(dir.path().join("secret.db")).with_key("correct horse battery staple");
    let mut store = Store::open(&options).unwrap();
    let village = furrow::domain::village::save(
        &mut store,
        &furrow::domain::village::Village { code: Some("522633101001".into()), name: Some("高坡村".into()), ..Default::default() },
    )
    .unwrap();
    household::save(&mut store, &common::household_draft(village.id.as_deref().unwrap(), "王小梅")).unwrap();
    let backup = store.back_up(&dir.path().join("backups")).unwrap();
    drop(store);

    assert!(backup.starts_with(dir.path().join("backups")), "{}", backup.display());
    let name = "王小梅".as_bytes();
    assert!(!file_bytes(&backup).windows(name.len()).any(|window| window == name), "the name is readable in the backup");
    let error = Store::open(&OpenOptions::file(&backup)).err().expect("a backup without its key is refused");
    assert!(matches!(error, Error::WrongKey), "{error:?}");
    let copy = Store::open(&OpenOptions { key: options.key.clone(), ..OpenOptions::file(&backup) }).unwrap();
    let found = household::search(&copy, &household::RosterQuery { text: Some("小梅".into()), ..Default::default() }).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(copy.pending_records().unwrap(), 2, "the unsynced work is in the backup too");
}

#[test]
fn a_backup_of_a_plain_store_opens_as_one() {
    let mut fixture = Fixture::new();
    let village = fixture.village("522633101001", "高坡村");
    fixture.household(&village, "王小梅");
    let backup = fixture.store.back_up(&fixture.dir.path().join("backups")).unwrap();
    let copy = Store::open(&OpenOptions::file(&backup)).unwrap();
    assert_eq!(household::search(&copy, &household::RosterQuery::default()).unwrap().len(), 1);
}
