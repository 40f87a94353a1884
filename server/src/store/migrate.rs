//! Schema migrations: numbered SQL files embedded in the binary, applied in order once each.

use super::{Param, Sql};
use crate::error::{Error, Result};

/// A migration: its number, name and SQL.
pub struct Migration {
    /// The number, from the file name.
    pub version: i64,
    /// The file name.
    pub name: &'static str,
    /// The SQL.
    pub sql: &'static str,
}

/// Applies the migrations the database lacks, in order, and refuses a database that records a
/// migration this build does not know (written by a newer server) or one whose name differs.
pub(crate) fn migrate(sql: &mut dyn Sql, migrations: &[Migration], apply: &mut dyn FnMut(&str) -> Result<()>) -> Result<()> {
    sql.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        &[],
    )?;
    let applied = sql.query("SELECT version, name FROM schema_migrations ORDER BY version", &[])?;
    for row in &applied {
        let version = row[0].int()?;
        let name = row[1].text()?;
        match migrations.iter().find(|migration| migration.version == version) {
            Some(known) if known.name == name => {}
            Some(known) => {
                return Err(Error::MigrationRenamed { version, recorded: name, known: known.name })
            }
            None => return Err(Error::MigrationFromNewerServer { version, name }),
        }
    }
    for migration in migrations {
        let done = applied.iter().any(|row| row[0] == Param::Int(migration.version));
        if !done {
            apply(migration.sql)?;
            sql.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[migration.version.into(), migration.name.into(), furrow_contract::hlc::wall_ms().into()],
            )?;
        }
    }
    Ok(())
}
