//! A throwaway PostgreSQL database for one run, created on the server of
//! `SHIPSYNC_TEST_POSTGRES_URL` and dropped afterwards.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

use anyhow::{Context, Result};

pub const ENV: &str = "SHIPSYNC_TEST_POSTGRES_URL";

/// The server URL from the environment, if set.
pub fn server_url() -> Option<String> {
    std::env::var(ENV).ok().filter(|v| !v.trim().is_empty())
}

/// A database created for this run; [`Throwaway::drop_now`] removes it.
pub struct Throwaway {
    admin_url: String,
    pub name: String,
    pub url: String,
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{name}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

impl Throwaway {
    pub async fn create(admin_url: &str, label: &str) -> Result<Self> {
        let name = format!(
            "shipsync_bench_{label}_{}_{}",
            std::process::id(),
            jiff::Timestamp::now().as_millisecond()
        );
        let mut c = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL ({ENV})"))?;
        // `name` is built here from digits and a fixed label, never from input.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        let _ = c.close().await;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        })
    }

    pub async fn drop_now(self) -> Result<()> {
        let mut c = PgConnection::connect(&self.admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut c)
        .await?;
        let _ = c.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        use super::with_database;
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
