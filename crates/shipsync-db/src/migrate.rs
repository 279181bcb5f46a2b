//! Numbered migrations, embedded in the binary, applied in order inside a
//! transaction each. One SQL text serves both backends.
//!
//! A migration is a directory `migrations/NNNN_name/` (the version is
//! `NNNN`, recorded in `schema_migrations`) of statement files `NN_name.sql`,
//! run in name order, one statement a file: the text of a file goes to the
//! database whole, so a `;` in a string, a comment or a trigger body is just
//! SQL. `build.rs` lists the directories.

use sqlx::Executor;

use crate::{Backend, Db, DbError, now_micros};

/// One migration: its version and the statements of its directory.
#[derive(Debug)]
struct Migration {
    version: i64,
    /// The directory's name, for the log.
    name: &'static str,
    statements: &'static [&'static str],
}

const MIGRATIONS: &[Migration] = include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// A statement file's text for `backend`: `{BLOB}` becomes `BLOB` or
/// `BYTEA`, `{UNLOGGED}` nothing or `UNLOGGED `. A statement marked
/// `{POSTGRES ONLY}` is run on PostgreSQL only (`None` on SQLite).
fn for_backend(sql: &str, backend: Backend) -> Option<String> {
    const ONLY: &str = "{POSTGRES ONLY}";
    let (blob, unlogged) = match backend {
        Backend::Sqlite if sql.contains(ONLY) => return None,
        Backend::Sqlite => ("BLOB", ""),
        Backend::Postgres => ("BYTEA", "UNLOGGED "),
    };
    Some(
        sql.replace(ONLY, "")
            .replace("{BLOB}", blob)
            .replace("{UNLOGGED}", unlogged),
    )
}

impl Db {
    pub async fn migrate(&self) -> Result<(), DbError> {
        let mut conn = self.pool.acquire().await?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        drop(conn);
        for migration in MIGRATIONS {
            let version = migration.version;
            let mut tx = self.begin().await?;
            if self.backend == Backend::Postgres {
                // Serialise concurrent migrators (several nodes starting at once).
                tx.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                    .await?;
            }
            let done: Option<(i64,)> =
                sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            for statement in migration.statements {
                let Some(statement) = for_backend(statement, self.backend) else {
                    continue;
                };
                tx.execute(sqlx::AssertSqlSafe(statement))
                    .await
                    .map_err(|e| DbError::Migration {
                        version,
                        message: e.to_string(),
                    })?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, name = migration.name, "applied migration");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions `schema_migrations` of existing databases records: a
    /// renumbered or lost directory would apply again, or never.
    #[test]
    fn the_migrations_keep_their_versions() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(
            versions,
            [1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]
        );
        let statements: usize = MIGRATIONS.iter().map(|m| m.statements.len()).sum();
        assert_eq!(statements, 102);
        assert!(MIGRATIONS.iter().all(|m| {
            m.statements.iter().all(|s| {
                s.lines()
                    .any(|l| !l.trim().is_empty() && !l.trim().starts_with("--"))
            })
        }));
    }

    #[test]
    fn placeholders_become_each_backends_words() {
        let sql = "CREATE {UNLOGGED}TABLE t (x {BLOB})";
        assert_eq!(
            for_backend(sql, Backend::Postgres).as_deref(),
            Some("CREATE UNLOGGED TABLE t (x BYTEA)")
        );
        assert_eq!(
            for_backend(sql, Backend::Sqlite).as_deref(),
            Some("CREATE TABLE t (x BLOB)")
        );
        let pg = "-- why\n{POSTGRES ONLY}ALTER TABLE t ALTER COLUMN x SET COMPRESSION lz4";
        assert_eq!(
            for_backend(pg, Backend::Postgres).as_deref(),
            Some("-- why\nALTER TABLE t ALTER COLUMN x SET COMPRESSION lz4")
        );
        assert_eq!(for_backend(pg, Backend::Sqlite), None);
    }
}
