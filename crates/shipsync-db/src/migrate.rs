//! Numbered migrations, embedded in the binary, applied in order inside a
//! transaction each. One SQL text serves both backends.

use sqlx::Executor;

use crate::{Backend, Db, DbError, now_micros};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_initial.sql")),
    (
        2,
        include_str!("../migrations/0002_retired_webhook_keys.sql"),
    ),
    (3, include_str!("../migrations/0003_runs.sql")),
    (4, include_str!("../migrations/0004_sales_orders.sql")),
    (5, include_str!("../migrations/0005_users.sql")),
    (6, include_str!("../migrations/0006_user_merchants.sql")),
    (7, include_str!("../migrations/0007_rate_budgets.sql")),
    (10, include_str!("../migrations/0010_retention.sql")),
    (11, include_str!("../migrations/0011_accounts.sql")),
    (12, include_str!("../migrations/0012_store_auth.sql")),
];

/// The statements of a migration: comments removed first (they may contain
/// `;`), then split on `;`.
fn statements(sql: &str, backend: Backend) -> Vec<String> {
    let (blob, unlogged) = match backend {
        Backend::Sqlite => ("BLOB", ""),
        Backend::Postgres => ("BYTEA", "UNLOGGED "),
    };
    let body: String = sql
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{BLOB}", blob)
        .replace("{UNLOGGED}", unlogged);
    body.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Db {
    pub async fn migrate(&self) -> Result<(), DbError> {
        let mut conn = self.pool.acquire().await?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .await?;
        drop(conn);
        for (version, sql) in MIGRATIONS {
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
            for statement in statements(sql, self.backend) {
                tx.execute(sqlx::AssertSqlSafe(statement))
                    .await
                    .map_err(|e| DbError::Migration {
                        version: *version,
                        message: e.to_string(),
                    })?;
            }
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(now_micros())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            tracing::info!(version, "applied migration");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_with_semicolons_do_not_split_statements() {
        let s = statements(
            "-- a; b\nCREATE TABLE t (x {BLOB});\n  -- c; d\nCREATE INDEX i ON t (x);",
            Backend::Postgres,
        );
        assert_eq!(
            s,
            vec!["CREATE TABLE t (x BYTEA)", "CREATE INDEX i ON t (x)"]
        );
    }
}
