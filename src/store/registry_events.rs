use diesel::prelude::*;

use super::AnyConnection;
use super::schema::registry_events;

/// Remembers a notification; false when it was seen before (the registry delivers at least once).
pub fn record_once(
    conn: &mut AnyConnection,
    registry_id: &str,
    event_id: &str,
    now: i64,
) -> QueryResult<bool> {
    let written = on_each_backend!(conn, c => diesel::insert_into(registry_events::table)
        .values((
            registry_events::registry_id.eq(registry_id),
            registry_events::event_id.eq(event_id),
            registry_events::received_at.eq(now),
        ))
        .on_conflict_do_nothing()
        .execute(c))?;
    Ok(written == 1)
}

/// Forgets notifications received before `before` (a registry stops redelivering long before).
pub fn prune(conn: &mut AnyConnection, before: i64) -> QueryResult<usize> {
    diesel::delete(registry_events::table.filter(registry_events::received_at.lt(before)))
        .execute(conn)
}
