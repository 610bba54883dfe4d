//! The database: diesel only lives here. Query functions take `&mut AnyConnection` and return
//! `QueryResult`, so callers compose them inside one transaction; async code reaches them via [`run`].

/// Runs the same diesel code on the concrete connection, for what diesel cannot express through
/// `MultiBackend` (multi-row INSERTs).
macro_rules! on_each_backend {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::AnyConnection::Postgresql($c) => $body,
            $crate::store::AnyConnection::Sqlite($c) => $body,
        }
    };
}

pub mod advisories;
pub mod billing;
pub mod filter;
pub mod findings;
pub mod images;
pub mod inventories;
pub mod registries;
pub mod registry_events;
pub mod running_images;
pub mod scans;
pub mod schema;
pub mod summary;
pub mod wakeups;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::result::QueryResult;
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(PgConnection),
    Sqlite(SqliteConnection),
}

pub type Pool = diesel::r2d2::Pool<ConnectionManager>;

/// Where the data lives, chosen by the URL's scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Postgres(String),
    Sqlite(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database URL scheme {0:?}: use postgres://…, postgresql://…, sqlite://PATH or a file path"
    )]
    UnsupportedScheme(String),
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("migrations failed on {target}: {reason}")]
    Migration { target: String, reason: String },
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, StoreError> {
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_owned()));
        }
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        match raw.split_once("://") {
            Some((scheme, _)) => Err(StoreError::UnsupportedScheme(scheme.to_owned())),
            None => Ok(Self::Sqlite(PathBuf::from(raw))),
        }
    }

    /// The URL as it may be shown: PostgreSQL passwords are replaced by `***`.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("SQLite database {}", path.display()),
            Self::Postgres(url) => match url::Url::parse(url) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    format!("PostgreSQL at {parsed}")
                }
                Err(_) => "PostgreSQL (unparsable URL)".to_owned(),
            },
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Self::Sqlite(_))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// An r2d2 manager that opens the backend the URL names and reports why a connection failed
/// (diesel's derived `establish` only says "invalid connection url").
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConnectError(String);

impl diesel::r2d2::ManageConnection for ConnectionManager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        let fail = |e: &dyn fmt::Display| {
            ConnectError(format!("cannot connect to {}: {e}", self.url.redacted()))
        };
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn = PgConnection::establish(url).map_err(|e| fail(&e))?;
                conn.batch_execute("SET TIME ZONE 'UTC'")
                    .map_err(|e| fail(&e))?;
                Ok(AnyConnection::Postgresql(conn))
            }
            DatabaseUrl::Sqlite(path) => {
                let path = path
                    .to_str()
                    .ok_or_else(|| fail(&"the path is not UTF-8"))?;
                let mut conn = SqliteConnection::establish(path).map_err(|e| fail(&e))?;
                // WAL lets readers work while a writer commits; the busy timeout queues writers instead of failing.
                conn.batch_execute(
                    "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                )
                .map_err(|e| fail(&e))?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        conn.batch_execute("SELECT 1")
            .map_err(|e| ConnectError(e.to_string()))
    }

    fn has_broken(&self, _conn: &mut AnyConnection) -> bool {
        false
    }
}

/// Opens a pool, failing at once with the real reason when the database cannot be reached.
pub fn connect(url: &DatabaseUrl, max_size: u32) -> Result<Pool, StoreError> {
    let manager = ConnectionManager { url: url.clone() };
    let first =
        diesel::r2d2::ManageConnection::connect(&manager).map_err(|e| StoreError::Connect {
            target: url.redacted(),
            reason: e
                .0
                .trim_start_matches(&format!("cannot connect to {}: ", url.redacted()))
                .to_owned(),
        })?;
    drop(first);
    diesel::r2d2::Pool::builder()
        .max_size(max_size.max(1))
        .connection_timeout(Duration::from_secs(10))
        .build(manager)
        .map_err(|e| StoreError::Connect {
            target: url.redacted(),
            reason: e.to_string(),
        })
}

/// Applies the embedded migrations of the pool's backend; returns the names of those applied now.
/// Key of the PostgreSQL advisory lock held while migrating ("crowsnest" in ASCII, shortened).
const MIGRATION_LOCK: i64 = 0x63726f77736e6573;

pub fn migrate(pool: &Pool) -> Result<Vec<String>, StoreError> {
    let mut conn = pool
        .get()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let owned = |r: diesel::migration::Result<Vec<diesel::migration::MigrationVersion<'_>>>| {
        r.map(|versions| versions.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| e.to_string())
    };
    let (target, applied) = match &mut *conn {
        AnyConnection::Postgresql(c) => {
            // Replicas starting together on a new database would race to create the same tables:
            // one migrates while the others wait, then find nothing left to do.
            c.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
                .map_err(|e| StoreError::Migration {
                    target: "PostgreSQL".to_owned(),
                    reason: format!("cannot take the migration lock: {e}"),
                })?;
            let applied = owned(c.run_pending_migrations(POSTGRES_MIGRATIONS));
            let _ = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
            ("PostgreSQL", applied)
        }
        AnyConnection::Sqlite(c) => ("SQLite", owned(c.run_pending_migrations(SQLITE_MIGRATIONS))),
    };
    applied.map_err(|reason| StoreError::Migration {
        target: target.to_owned(),
        reason,
    })
}

/// Runs blocking database work on tokio's blocking pool, never on the async executor.
pub async fn run<T, F>(pool: &Pool, work: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut AnyConnection) -> QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = pool
            .get()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        work(&mut conn).map_err(StoreError::from)
    })
    .await
    .map_err(|e| StoreError::Unavailable(format!("database task failed: {e}")))?
}

/// [`run`] with all of `work` in one transaction: it commits when `work` returns `Ok`.
pub async fn run_transaction<T, F>(pool: &Pool, work: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut AnyConnection) -> QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    run(pool, move |c| c.transaction(work)).await
}

/// The database answers a trivial query.
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    run(pool, |c| c.batch_execute("SELECT 1")).await
}

/// [`run`] for callers outside the async runtime (the CLI).
pub fn run_blocking<T>(
    pool: &Pool,
    work: impl FnOnce(&mut AnyConnection) -> QueryResult<T>,
) -> Result<T, StoreError> {
    let mut conn = pool
        .get()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    work(&mut conn).map_err(StoreError::from)
}

/// A fresh id for rows that have no natural key.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A fresh id that sorts by creation time (UUID v7): lists paged by id come out oldest first.
pub fn new_ordered_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_chooses_the_backend() {
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert!(matches!(
            DatabaseUrl::parse("postgresql://h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        assert_eq!(
            DatabaseUrl::parse("sqlite:///tmp/x.db").unwrap(),
            DatabaseUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("crowsnest.db").unwrap(),
            DatabaseUrl::Sqlite("crowsnest.db".into())
        );
        assert!(
            matches!(DatabaseUrl::parse("mysql://h/db"), Err(StoreError::UnsupportedScheme(s)) if s == "mysql")
        );
    }

    #[test]
    fn passwords_never_show() {
        let url = DatabaseUrl::parse("postgres://user:hunter2@db:5432/crowsnest").unwrap();
        assert!(!url.redacted().contains("hunter2"));
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn unreachable_postgres_says_why() {
        let url =
            DatabaseUrl::parse("postgres://nobody@127.0.0.1:1/none?connect_timeout=2").unwrap();
        let err = connect(&url, 1).err().unwrap().to_string();
        assert!(err.contains("cannot connect to PostgreSQL at"), "{err}");
        assert!(!err.contains("invalid connection url"), "{err}");
        assert!(
            err.to_lowercase().contains("refused") || err.contains("connect"),
            "{err}"
        );
    }
}
