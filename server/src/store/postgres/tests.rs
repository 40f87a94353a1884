//! Tests of the PostgreSQL backend against the test server: placeholders, exact numbers, typed
//! parameters and tables of rows.

use super::*;

#[test]
fn a_server_without_fsync_is_refused_with_a_clear_message() {
    assert!(check_fsync("on").is_ok());
    let refused = check_fsync("off").expect_err("fsync = off is refused");
    assert!(refused.to_string().contains("fsync = off"), "{refused}");
    assert!(check_fsync("OFF").is_err());
}

/// A database in a schema of its own on the test server, dropped afterwards.
struct Scratch {
    database: Option<PostgresDatabase>,
    schema: String,
}

impl Scratch {
    fn new() -> Self {
        let schema = format!("test_driver_{}", uuid::Uuid::new_v4().simple());
        let database = PostgresDatabase::open(&url(), Some(&schema)).expect("the test server at 127.0.0.1:5432");
        Self { database: Some(database), schema }
    }

    fn query(&self, sql: &str, params: &[Param]) -> Result<Vec<SqlRow>> {
        let mut rows = Vec::new();
        self.database.as_ref().expect("open").transaction(false, &mut |tx| {
            rows = tx.query(sql, params)?;
            Ok(())
        })?;
        Ok(rows)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        drop(self.database.take());
        if let Ok(mut client) = Client::connect(&url(), NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

fn url() -> String {
    std::env::var("FURROW_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}


/// A table of rows, read back whole (every kind of value, NULL, text with quotes and a
/// `$`), joined to a stored table, written with an upsert, and empty: the same answers on
/// both backends.
fn rows_round_trip(transaction: &mut dyn FnMut(&mut dyn FnMut(&mut dyn Sql) -> Result<()>) -> Result<()>) {
    let mut rows = Rows::new(&[Kind::Text, Kind::Int, Kind::Bytes]);
    rows.push(vec![Param::from("it's $1 价格"), Param::Int(i64::MAX), Param::Bytes(vec![0, 255, 7])]);
    rows.push(vec![Param::Null, Param::Int(-3), Param::Null]);
    transaction(&mut |sql| {
        let read = sql.query_rows("SELECT column1, column2, column3 FROM $rows AS k ORDER BY column2", &[], &rows)?;
        assert_eq!(read, vec![rows.rows()[1].clone(), rows.rows()[0].clone()]);
        sql.execute("CREATE TABLE rows_probe (name TEXT PRIMARY KEY, size BIGINT NOT NULL)", &[])?;
        let mut sizes = Rows::new(&[Kind::Text, Kind::Int]);
        sizes.push(vec!["a".into(), Param::Int(1)]);
        sizes.push(vec!["b".into(), Param::Int(2)]);
        let upsert = "INSERT INTO rows_probe (name, size) SELECT column1, column2 FROM $rows AS k WHERE true
                      ON CONFLICT (name) DO UPDATE SET size = excluded.size + $1";
        assert_eq!(sql.execute_rows(upsert, &[Param::Int(0)], &sizes)?, 2);
        let mut again = Rows::new(&[Kind::Text, Kind::Int]);
        again.push(vec!["b".into(), Param::Int(20)]);
        again.push(vec!["c".into(), Param::Int(3)]);
        sql.execute_rows(upsert, &[Param::Int(100)], &again)?;
        let stored = sql.query("SELECT name, size FROM rows_probe ORDER BY name", &[])?;
        assert_eq!(
            stored,
            vec![vec!["a".into(), Param::Int(1)], vec!["b".into(), Param::Int(120)], vec!["c".into(), Param::Int(3)]]
        );
        let mut wanted = Rows::new(&[Kind::Text]);
        wanted.push(vec!["c".into()]);
        wanted.push(vec!["nobody".into()]);
        let joined = sql.query_rows(
            "SELECT p.name, p.size FROM $rows AS k CROSS JOIN rows_probe p WHERE p.name = k.column1 AND p.size > $1",
            &[Param::Int(0)],
            &wanted,
        )?;
        assert_eq!(joined, vec![vec!["c".into(), Param::Int(3)]]);
        let none = sql.query_rows("SELECT column1 FROM $rows AS k", &[], &Rows::new(&[Kind::Text]))?;
        assert!(none.is_empty());
        let mut wrong = Rows::new(&[Kind::Int]);
        wrong.push(vec!["not a number".into()]);
        assert!(matches!(sql.query_rows("SELECT column1 FROM $rows AS k", &[], &wrong), Err(Error::ColumnKind { .. })));
        sql.execute("DROP TABLE rows_probe", &[])?;
        Ok(())
    })
    .expect("rows round trip");
}

#[test]
fn a_table_of_rows_is_bound_as_arrays() {
    let scratch = Scratch::new();
    let database = scratch.database.as_ref().expect("open");
    rows_round_trip(&mut |work| database.transaction(true, work));
    // However many rows, one statement text: prepared once per connection.
    database
        .transaction(false, &mut |sql| {
            for count in [1, 5, 50] {
                let mut rows = Rows::new(&[Kind::Int]);
                (0..count).for_each(|value| rows.push(vec![Param::Int(value)]));
                let sum = sql.query_rows("SELECT CAST(SUM(column1) AS BIGINT) FROM $rows AS k", &[], &rows)?;
                assert_eq!(sum, vec![vec![Param::Int(count * (count - 1) / 2)]]);
            }
            Ok(())
        })
        .expect("sums");
    let pool = database.pool.lock().expect("pool");
    let prepared: Vec<&String> = pool.idle.iter().flat_map(|connection| connection.statements.keys()).filter(|sql| sql.contains("SUM(column1)")).collect();
    assert_eq!(prepared.len(), 1, "{prepared:?}");
}

#[test]
fn a_dollar_inside_a_string_literal_reaches_the_database_as_written() {
    let scratch = Scratch::new();
    let rows = scratch.query("SELECT '$1', CAST($1 AS TEXT), 'it''s $2'", &["bound".into()]).expect("query");
    assert_eq!(rows, vec![vec![Param::from("$1"), Param::from("bound"), Param::from("it's $2")]]);
}

#[test]
fn a_real_value_reads_as_its_exact_integer_or_is_refused() {
    let scratch = Scratch::new();
    let rows = scratch.query("SELECT CAST(4 AS DOUBLE PRECISION), CAST(-7 AS REAL)", &[]).expect("exact integers");
    assert_eq!(rows, vec![vec![Param::Int(4), Param::Int(-7)]]);
    let refused = scratch.query("SELECT 1, CAST(2.5 AS DOUBLE PRECISION)", &[]).expect_err("2.5 is no integer");
    assert!(matches!(refused, Error::InexactNumber { column: 1, value } if value == 2.5), "{refused:?}");
    let refused = scratch.query("SELECT CAST(1e19 AS DOUBLE PRECISION)", &[]).expect_err("beyond a 64-bit integer");
    assert!(matches!(refused, Error::InexactNumber { column: 0, .. }), "{refused:?}");
}

#[test]
fn a_parameter_of_another_type_is_refused_not_reinterpreted() {
    let scratch = Scratch::new();
    let rows = scratch.query("SELECT CAST($1 AS INTEGER) + 1", &[Param::Int(41)]).expect("an integer that fits");
    assert_eq!(rows, vec![vec![Param::Int(42)]]);
    assert!(scratch.query("SELECT CAST($1 AS INTEGER)", &[Param::Int(i64::MAX)]).is_err(), "too large for INTEGER");
    // Eight bytes of an integer would read as a quite different double.
    assert!(scratch.query("SELECT CAST($1 AS DOUBLE PRECISION)", &[Param::Int(1)]).is_err());
    assert!(scratch.query("SELECT CAST($1 AS BIGINT)", &[Param::from("1")]).is_err());
}
