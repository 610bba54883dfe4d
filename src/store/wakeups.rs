//! Wake-ups across processes on PostgreSQL: a transaction that queues scans sends a notification
//! on [`SCANS_QUEUED`] (PostgreSQL delivers it when the transaction commits, and once however many
//! scans it queued), and every process listens on a connection of its own and wakes its idle
//! workers. The workers' poll stays as the fallback (a listener reconnecting misses what was sent
//! meanwhile) and is the only mechanism on SQLite, which has no notifications.

use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{AnyConnection, DatabaseUrl};

/// The channel scans-queued notifications travel on.
pub const SCANS_QUEUED: &str = "crowsnest_scans_queued";

/// How often the listener reads what arrived on its connection. Reading the socket's buffer costs
/// no round trip; diesel offers no way to block on the socket itself.
const READ_EVERY: Duration = Duration::from_millis(20);
/// How often an idle listener checks that its connection is alive.
const CHECK_EVERY: Duration = Duration::from_secs(30);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Tells every listening process that scans were queued: when the caller's transaction commits,
/// or at once outside one. Nothing on SQLite.
pub fn notify_scans_queued(conn: &mut AnyConnection) -> QueryResult<()> {
    if let AnyConnection::Postgresql(c) = conn {
        diesel::sql_query("SELECT pg_notify($1, '')")
            .bind::<Text, _>(SCANS_QUEUED)
            .execute(c)?;
    }
    Ok(())
}

/// Listens on [`SCANS_QUEUED`] and calls `woken` for every batch of notifications, and once after
/// each (re)connection (what was sent while nobody listened is lost), until `stopped` says so.
/// Blocks: run it on a thread of its own. Returns at once on SQLite.
pub fn listen_scans_queued(url: &DatabaseUrl, stopped: &dyn Fn() -> bool, woken: &dyn Fn()) {
    let DatabaseUrl::Postgres(url) = url else {
        return;
    };
    let mut backoff = Duration::from_secs(1);
    while !stopped() {
        match listen_once(url, stopped, woken) {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "scan wake-ups: the listening connection failed; idle workers poll meanwhile");
            }
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stopped() {
            std::thread::sleep(READ_EVERY * 5);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: `Ok` when stopped, the error that ended it otherwise.
fn listen_once(
    url: &str,
    stopped: &dyn Fn() -> bool,
    woken: &dyn Fn(),
) -> Result<(), Box<dyn std::error::Error>> {
    let mut conn = PgConnection::establish(url)?;
    conn.batch_execute(&format!("LISTEN {SCANS_QUEUED}"))?;
    woken();
    let mut checked = Instant::now();
    while !stopped() {
        let mut arrived = false;
        for notification in conn.notifications_iter() {
            notification?;
            arrived = true;
        }
        if arrived {
            woken();
        }
        if checked.elapsed() >= CHECK_EVERY {
            conn.batch_execute("SELECT 1")?;
            checked = Instant::now();
        }
        std::thread::sleep(READ_EVERY);
    }
    Ok(())
}
