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
pub mod advisory_coverage;
pub mod advisory_sources;
pub mod billing;
pub mod exemptions;
pub mod exploit_intel;
pub mod filter;
pub mod findings;
pub mod images;
pub mod inventories;
pub mod pricings;
pub mod registries;
pub mod registry_events;
pub mod running_images;
pub mod scans;
pub mod schema;
pub mod severity_ratings;
pub mod summary;
pub mod vex;
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

/// Why a query failed: the error of every `QueryResult`, for code that names it without diesel.
pub type QueryError = diesel::result::Error;

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
            (
                "PostgreSQL",
                owned(c.run_pending_migrations(POSTGRES_MIGRATIONS)),
            )
        }
        AnyConnection::Sqlite(c) => ("SQLite", owned(c.run_pending_migrations(SQLITE_MIGRATIONS))),
    };
    // What SQL cannot compute: the derived names of findings stored before they were kept.
    let applied = applied.and_then(|applied| {
        findings::fill_mdvm_names(&mut conn)
            .map(|_| applied)
            .map_err(|e| format!("cannot store the MDVM names of earlier findings: {e}"))
    });
    if let AnyConnection::Postgresql(c) = &mut *conn {
        let _ = c.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"));
    }
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

/// [`run`] with all of `work` in one write transaction (see [`transaction`]): it commits when
/// `work` returns `Ok`. `work` may run more than once.
pub async fn run_transaction<T, F>(pool: &Pool, work: F) -> Result<T, StoreError>
where
    F: Fn(&mut AnyConnection) -> QueryResult<T> + Send + 'static,
    T: Send + 'static,
{
    run(pool, move |c| transaction(c, &work)).await
}

/// Attempts at a transaction the database aborted to resolve a clash with a concurrent one.
const TRANSACTION_ATTEMPTS: u32 = 6;

/// Runs `work` in one write transaction and commits when it returns `Ok`. PostgreSQL may abort a
/// transaction to break a deadlock (40P01) or a serialization conflict (40001): it is run again,
/// a bounded number of times, so callers never see an error that only says "try again". On
/// SQLite it begins IMMEDIATE: a deferred transaction that read first could not upgrade to a
/// writer once another connection committed (SQLITE_BUSY at once, the busy timeout does not
/// apply), while taking the write lock at BEGIN waits its turn. Inside an open transaction it is
/// a savepoint, not retried (the outer transaction is the one to run again).
pub fn transaction<T>(
    c: &mut AnyConnection,
    work: impl Fn(&mut AnyConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    use diesel::connection::TransactionManager;
    let nested =
        <AnyConnection as Connection>::TransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()
            .ok()
            .flatten()
            .is_some();
    if nested {
        return c.transaction(|c| work(c));
    }
    let mut attempt = 1;
    loop {
        match transaction_once(c, &work) {
            Err(e) if attempt < TRANSACTION_ATTEMPTS && is_transient(&e) => {
                tracing::debug!(attempt, error = %e, "transaction aborted by a concurrent one; running it again");
                std::thread::sleep(retry_pause(attempt));
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn transaction_once<T>(
    c: &mut AnyConnection,
    work: &impl Fn(&mut AnyConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    type Manager = <AnyConnection as Connection>::TransactionManager;
    match c {
        AnyConnection::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
        }
        AnyConnection::Postgresql(_) => Manager::begin_transaction(c)?,
    }
    match work(c) {
        Ok(value) => {
            Manager::commit_transaction(c)?;
            Ok(value)
        }
        Err(e) => match Manager::rollback_transaction(c) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(e),
            Err(rollback) => Err(rollback),
        },
    }
}

/// A short pause that grows with the attempt, with jitter so that two transactions that clashed
/// do not clash again in step.
fn retry_pause(attempt: u32) -> Duration {
    let base = 5u64 << attempt.min(6);
    let jitter = (uuid::Uuid::new_v4().as_u128() % u128::from(base)) as u64;
    Duration::from_millis(base + jitter)
}

/// The database aborted the transaction only because of a concurrent one: running it again
/// succeeds (PostgreSQL's serialization failure and deadlock; SQLite's busy database).
pub fn is_transient(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match e {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        Error::DatabaseError(DatabaseErrorKind::Unknown, info) => {
            let message = info.message();
            message.contains("deadlock detected") || message.contains("database is locked")
        }
        _ => false,
    }
}

/// The error is a clash with a concurrent writer (a key or reference written meanwhile, a
/// deadlock or serialization failure), not an unreachable database.
pub fn is_conflict(e: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    is_transient(e)
        || matches!(
            e,
            Error::DatabaseError(
                DatabaseErrorKind::UniqueViolation | DatabaseErrorKind::ForeignKeyViolation,
                _
            )
        )
}

impl StoreError {
    /// See [`is_conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Query(e) if is_conflict(e))
    }
}

/// Serialises the writers of the same keys until the transaction ends. On PostgreSQL these are
/// transaction-scoped advisory locks, all taken at once, in one global order (by lock id): two
/// transactions locking overlapping keys never wait for each other in a circle, whatever order
/// their callers named the keys in. SQLite needs none: a write transaction holds the whole
/// database. Call it first in a transaction, before any row is written, and once.
///
/// Every writer first takes one lock over all keys: shared when it names up to [`MANY_KEYS`],
/// exclusive beyond (a 20,000-pod report). PostgreSQL's lock table holds only about 64 locks per
/// connection on average, so a writer of thousands of keys waits for every other writer instead of
/// taking a lock per key and failing with "out of shared memory".
pub fn lock_keys<K: AsRef<str>>(
    c: &mut AnyConnection,
    keys: impl IntoIterator<Item = K>,
) -> QueryResult<()> {
    use diesel::RunQueryDsl;
    let AnyConnection::Postgresql(pg) = c else {
        return Ok(());
    };
    let mut ids: Vec<i64> = keys.into_iter().map(|k| lock_id(k.as_ref())).collect();
    ids.sort_unstable();
    ids.dedup();
    let all_keys = lock_id(ALL_KEYS);
    if ids.len() > MANY_KEYS {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
            .bind::<diesel::sql_types::BigInt, _>(all_keys)
            .execute(pg)?;
        return Ok(());
    }
    // One round trip: unnest yields the sorted ids in array order, and each row's lock is taken
    // before the next row is read, so the order above holds.
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock_shared($1) \
         UNION ALL SELECT pg_advisory_xact_lock(id) FROM unnest($2::bigint[]) AS id",
    )
    .bind::<diesel::sql_types::BigInt, _>(all_keys)
    .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(ids)
    .execute(pg)?;
    Ok(())
}

/// Holds a subscription's Defender plan until the transaction ends: `exclusive` for a change of
/// tier, shared for writers that decide by it (a push queueing a scan or not), so pushes of one
/// subscription never wait for each other and no push acts on a tier being changed. Taken before
/// [`lock_keys`] (a change of tier takes no other key), so the global order holds. Nothing on
/// SQLite, whose writer holds the whole database.
pub fn lock_pricing(c: &mut AnyConnection, subscription: &str, exclusive: bool) -> QueryResult<()> {
    use diesel::RunQueryDsl;
    let AnyConnection::Postgresql(pg) = c else {
        return Ok(());
    };
    let lock = if exclusive {
        "SELECT pg_advisory_xact_lock($1)"
    } else {
        "SELECT pg_advisory_xact_lock_shared($1)"
    };
    diesel::sql_query(lock)
        .bind::<diesel::sql_types::BigInt, _>(lock_id(&format!("pricing {subscription}")))
        .execute(pg)
        .map(drop)
}

/// Holds subscriptions' exemptions until the transaction ends: `exclusive` for a writer of
/// exemptions (a PUT, a DELETE, an expiry, a VEX import), shared for a scan storing findings that
/// it weighs against them, so that no finding is written against exemptions being changed, and
/// scans never wait for each other. Taken in sorted order before [`lock_keys`]. Nothing on SQLite,
/// whose writer holds the whole database.
pub fn lock_exemptions<S: AsRef<str>>(
    c: &mut AnyConnection,
    subscriptions: &[S],
    exclusive: bool,
) -> QueryResult<()> {
    use diesel::RunQueryDsl;
    let AnyConnection::Postgresql(pg) = c else {
        return Ok(());
    };
    let mut ids: Vec<i64> = subscriptions
        .iter()
        .map(|s| lock_id(&format!("exemptions {}", s.as_ref())))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let lock = if exclusive {
        "SELECT pg_advisory_xact_lock(id) FROM unnest($1::bigint[]) AS id"
    } else {
        "SELECT pg_advisory_xact_lock_shared(id) FROM unnest($1::bigint[]) AS id"
    };
    diesel::sql_query(lock)
        .bind::<diesel::sql_types::Array<diesel::sql_types::BigInt>, _>(ids)
        .execute(pg)
        .map(drop)
}

/// Beyond this many keys, [`lock_keys`] locks them all at once.
pub const MANY_KEYS: usize = 256;

/// The key every writer locks first (see [`lock_keys`]).
const ALL_KEYS: &str = "all keys";

/// A key's advisory lock id: the first 8 bytes of its SHA-256 (stable across processes).
fn lock_id(key: &str) -> i64 {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(first)
}

/// The lock key of an image: a registry's repository at a digest.
pub fn image_key(registry_id: &str, repository: &str, digest: &str) -> String {
    format!("image {registry_id} {repository} {digest}")
}

/// The lock key of a tag in a registry's repository.
pub fn tag_key(registry_id: &str, repository: &str, tag: &str) -> String {
    format!("tag {registry_id} {repository} {tag}")
}

/// The lock key of a manifest's stored inventory, shared by every registry holding the digest.
pub fn manifest_key(digest: &str) -> String {
    format!("manifest {digest}")
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

    #[test]
    fn only_aborted_transactions_are_run_again() {
        use diesel::result::{DatabaseErrorKind, Error};
        let error = |kind, message: &str| Error::DatabaseError(kind, Box::new(message.to_owned()));
        assert!(is_transient(&error(
            DatabaseErrorKind::SerializationFailure,
            "could not serialize"
        )));
        assert!(is_transient(&error(
            DatabaseErrorKind::Unknown,
            "deadlock detected"
        )));
        assert!(is_transient(&error(
            DatabaseErrorKind::Unknown,
            "database is locked"
        )));
        // A key written meanwhile is a conflict to report, not to hide by running the same
        // statements again.
        let duplicate = error(DatabaseErrorKind::UniqueViolation, "duplicate key");
        assert!(!is_transient(&duplicate));
        assert!(is_conflict(&duplicate));
        assert!(!is_conflict(&Error::NotFound));
        assert!(!is_conflict(&error(
            DatabaseErrorKind::ClosedConnection,
            "closed"
        )));
    }

    #[test]
    fn lock_ids_are_stable_and_distinct() {
        assert_eq!(
            lock_id("image r repo sha256:1"),
            lock_id("image r repo sha256:1")
        );
        assert_ne!(
            lock_id("image r repo sha256:1"),
            lock_id("image r repo sha256:2")
        );
        assert_ne!(lock_id(&manifest_key("sha256:1")), MIGRATION_LOCK);
    }
}
