//! Throwaway databases: a SQLite file in a temp directory of its own, or a
//! uniquely named database on the PostgreSQL server of
//! `SHIPSYNC_TEST_POSTGRES_URL`. Either goes when its [`TestDb`] is dropped,
//! also when the test holding it panics.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The variable naming the PostgreSQL server that throwaway databases are
/// made on (a server URL; its database name is not used).
pub const POSTGRES_ENV: &str = "SHIPSYNC_TEST_POSTGRES_URL";

/// How long dropping a PostgreSQL database may take before it is given up
/// (with a warning): a test must not hang on its clean-up.
const DROP_TIMEOUT: Duration = Duration::from_secs(30);

/// The server URL of [`POSTGRES_ENV`], if set (and not blank).
pub fn postgres_server() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new empty directory; `label` is part of its name.
    pub fn new(label: &str) -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "shipsync-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // Left by an earlier process with the same id.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Self { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A throwaway database; dropped with this value.
#[derive(Debug)]
pub struct TestDb {
    /// The database URL to give shipsync.
    pub url: String,
    place: Place,
}

#[derive(Debug)]
enum Place {
    /// The directory holds the file and everything shipsync puts beside it
    /// (`-wal`, `-shm`, `.key`, `.admin-token`, `.lock`); held to be
    /// removed with the value.
    Sqlite {
        _dir: TempDir,
    },
    Postgres {
        server: String,
        name: String,
    },
}

impl TestDb {
    /// A new SQLite database.
    pub fn sqlite() -> Result<Self> {
        let dir = TempDir::new("test-db")?;
        Ok(Self {
            url: format!("sqlite://{}", dir.path().join("test.db").display()),
            place: Place::Sqlite { _dir: dir },
        })
    }

    /// A new database on the server of [`POSTGRES_ENV`]; `None`, with a
    /// notice on stderr, when it is not set.
    pub async fn postgres() -> Result<Option<Self>> {
        let Some(server) = postgres_server() else {
            eprintln!("skipped on PostgreSQL: {POSTGRES_ENV} is not set");
            return Ok(None);
        };
        Self::postgres_on(&server).await.map(Some)
    }

    /// A new database on the PostgreSQL server at `server`.
    pub async fn postgres_on(server: &str) -> Result<Self> {
        // Only digits and letters from here, never input: safe to splice
        // into the statement.
        let name = format!(
            "shipsync_test_{}_{:016x}",
            std::process::id(),
            rand::random::<u64>()
        );
        let url = database_url(server, &name)?;
        let mut conn = PgConnection::connect(server)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL ({POSTGRES_ENV})"))?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .with_context(|| format!("cannot create the database {name}"))?;
        let _ = conn.close().await;
        Ok(Self {
            url,
            place: Place::Postgres {
                server: server.to_owned(),
                name,
            },
        })
    }
}

/// `server` with its database name replaced by `name`.
fn database_url(server: &str, name: &str) -> Result<String> {
    let mut url = url::Url::parse(server)
        .with_context(|| format!("{POSTGRES_ENV} is not a URL such as postgres://user@host/db"))?;
    url.set_path(&format!("/{name}"));
    Ok(url.into())
}

async fn drop_database(server: &str, name: &str) -> Result<()> {
    let mut conn = PgConnection::connect(server).await?;
    // FORCE: a server a panicking test left running still holds connections.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await?;
    let _ = conn.close().await;
    Ok(())
}

impl Drop for TestDb {
    /// A SQLite database's directory goes with its [`TempDir`]. A
    /// PostgreSQL database is dropped on a thread of its own with its own
    /// runtime: `drop` cannot await, and may run on a runtime's thread (a
    /// test's, even while it unwinds from a panic), where starting another
    /// runtime is refused. The thread is joined, so the database is gone
    /// when `drop` returns.
    fn drop(&mut self) {
        let Place::Postgres { server, name } = &self.place else {
            return;
        };
        let (server, name) = (server.clone(), name.clone());
        let on_thread = name.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start a runtime")?
                .block_on(async {
                    tokio::time::timeout(DROP_TIMEOUT, drop_database(&server, &on_thread))
                        .await
                        .map_err(|_| anyhow!("no answer within {DROP_TIMEOUT:?}"))?
                })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: could not drop the test database {name}: {e:#}"),
            Err(_) => eprintln!("warning: dropping the test database {name} panicked"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_name() {
        for (server, want) in [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            (
                "postgres://u:p@h/test?sslmode=disable",
                "postgres://u:p@h/x?sslmode=disable",
            ),
            ("postgres://h:5432", "postgres://h:5432/x"),
        ] {
            assert_eq!(database_url(server, "x").expect("a URL"), want);
        }
        assert!(database_url("not a url", "x").is_err());
    }

    #[test]
    fn a_sqlite_database_goes_with_its_value() {
        let db = TestDb::sqlite().expect("test database");
        let file = PathBuf::from(db.url.trim_start_matches("sqlite://"));
        let dir = file.parent().expect("a directory").to_path_buf();
        std::fs::write(&file, b"x").expect("write");
        std::fs::write(dir.join("test.db.key"), b"x").expect("write");
        drop(db);
        assert!(!dir.exists(), "{} is left", dir.display());
    }

    /// The guard's point: a test that panics leaves no database behind.
    #[test]
    fn a_panicking_test_leaves_no_database() {
        let Some(server) = postgres_server() else {
            eprintln!("skipped on PostgreSQL: {POSTGRES_ENV} is not set");
            return;
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let name = std::sync::Mutex::new(String::new());
        let panicked = std::panic::catch_unwind(|| {
            rt.block_on(async {
                let db = TestDb::postgres_on(&server).await.expect("test database");
                let mut conn = PgConnection::connect(&db.url).await.expect("connect");
                sqlx::query("CREATE TABLE t (x INTEGER)")
                    .execute(&mut conn)
                    .await
                    .expect("create a table");
                if let Place::Postgres { name: n, .. } = &db.place {
                    *name.lock().expect("lock") = n.clone();
                }
                // The connection stays open, as a stopped test's would.
                std::mem::forget(conn);
                panic!("a failing test");
            })
        });
        assert!(panicked.is_err());
        let name = name.into_inner().expect("lock");
        assert!(name.starts_with("shipsync_test_"), "{name}");
        let left: Option<(i32,)> = rt.block_on(async {
            let mut conn = PgConnection::connect(&server).await.expect("connect");
            sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(&name)
                .fetch_optional(&mut conn)
                .await
                .expect("query")
        });
        assert_eq!(left, None, "{name} is left on the server");
    }
}
