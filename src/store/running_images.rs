use std::collections::HashMap;

use diesel::prelude::*;

use super::AnyConnection;
use super::images::ImageRow;
use super::schema::{images, running_images};

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = running_images)]
pub struct RunningImageRow {
    pub subscription_id: String,
    pub cluster: String,
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub image: String,
    pub registry: Option<String>,
    pub repository: Option<String>,
    pub digest: Option<String>,
    pub reported_at: i64,
}

/// Makes `rows` the cluster's whole report (the previous one is dropped).
pub fn replace(
    conn: &mut AnyConnection,
    subscription: &str,
    cluster: &str,
    rows: &[RunningImageRow],
) -> QueryResult<()> {
    diesel::delete(
        running_images::table
            .filter(running_images::subscription_id.eq(subscription))
            .filter(running_images::cluster.eq(cluster)),
    )
    .execute(conn)?;
    // 10 columns: 3,000 parameters per statement, well below either backend's limit.
    for chunk in rows.chunks(300) {
        on_each_backend!(conn, c => diesel::insert_into(running_images::table).values(chunk).execute(c))?;
    }
    Ok(())
}

/// Which of `digests` (manifest or index digests) name an assessed image of `repository` in
/// `registry_id` (a registry row id).
pub fn assessed(
    conn: &mut AnyConnection,
    registry_id: &str,
    repository: &str,
    digests: &[String],
) -> QueryResult<Vec<String>> {
    let wanted: std::collections::HashSet<&str> = digests.iter().map(String::as_str).collect();
    let mut found = Vec::new();
    for chunk in digests.chunks(500) {
        let rows: Vec<(String, Option<String>)> = images::table
            .filter(images::registry_id.eq(registry_id))
            .filter(images::repository.eq(repository))
            .filter(
                images::digest
                    .eq_any(chunk)
                    .or(images::index_digest.eq_any(chunk)),
            )
            .filter(images::scanned_at.is_not_null())
            .select((images::digest, images::index_digest))
            .load(conn)?;
        for (digest, index_digest) in rows {
            found.extend(
                [Some(digest), index_digest]
                    .into_iter()
                    .flatten()
                    .filter(|d| wanted.contains(d.as_str())),
            );
        }
    }
    found.sort_unstable();
    found.dedup();
    Ok(found)
}

/// Every container a subscription's clusters run.
pub fn all(conn: &mut AnyConnection, subscription: &str) -> QueryResult<Vec<RunningImageRow>> {
    running_images::table
        .filter(running_images::subscription_id.eq(subscription))
        .select(RunningImageRow::as_select())
        .load(conn)
}

/// The containers running any of these digests.
pub fn running(
    conn: &mut AnyConnection,
    subscription: &str,
    digests: &[String],
) -> QueryResult<Vec<RunningImageRow>> {
    let mut out = Vec::new();
    for chunk in digests.chunks(500) {
        out.extend(
            running_images::table
                .filter(running_images::subscription_id.eq(subscription))
                .filter(running_images::digest.eq_any(chunk))
                .select(RunningImageRow::as_select())
                .order((
                    running_images::cluster.asc(),
                    running_images::namespace.asc(),
                    running_images::pod.asc(),
                    running_images::container.asc(),
                ))
                .load(conn)?,
        );
    }
    Ok(out)
}

/// The containers running any of these images that are marked running, by manifest or index digest.
pub fn of_images(conn: &mut AnyConnection, rows: &[ImageRow]) -> QueryResult<Vec<RunningImageRow>> {
    let mut out = Vec::new();
    let mut by_subscription: HashMap<&str, Vec<String>> = HashMap::new();
    for row in rows.iter().filter(|r| r.running) {
        let digests = by_subscription.entry(&row.subscription_id).or_default();
        digests.push(row.digest.clone());
        digests.extend(row.index_digest.clone());
    }
    for (subscription, digests) in by_subscription {
        out.extend(running(conn, subscription, &digests)?);
    }
    Ok(out)
}

/// Sets `images.running` for a subscription: true exactly for the images some cluster runs,
/// given as (registry row id, repository, digest) where the digest may be an index's.
pub fn mark_running(
    conn: &mut AnyConnection,
    subscription: &str,
    running: &[(String, String, String)],
) -> QueryResult<usize> {
    diesel::update(
        images::table
            .filter(images::subscription_id.eq(subscription))
            .filter(images::running.eq(true)),
    )
    .set(images::running.eq(false))
    .execute(conn)?;
    let mut by_repository: std::collections::BTreeMap<(&str, &str), Vec<&str>> =
        std::collections::BTreeMap::new();
    for (registry_id, repository, digest) in running {
        by_repository
            .entry((registry_id, repository))
            .or_default()
            .push(digest);
    }
    // One statement per repository and 500 digests, not one per image.
    let mut marked = 0;
    for ((registry_id, repository), digests) in by_repository {
        for chunk in digests.chunks(500) {
            marked += diesel::update(
                images::table
                    .filter(images::registry_id.eq(registry_id))
                    .filter(images::repository.eq(repository))
                    .filter(
                        images::digest
                            .eq_any(chunk)
                            .or(images::index_digest.eq_any(chunk)),
                    ),
            )
            .set(images::running.eq(true))
            .execute(conn)?;
        }
    }
    Ok(marked)
}

/// Whether some cluster of the subscription runs `repository` at one of `digests` from `registry`.
pub fn runs(
    conn: &mut AnyConnection,
    subscription: &str,
    registry: &str,
    repository: &str,
    digests: &[String],
) -> QueryResult<bool> {
    running_images::table
        .filter(running_images::subscription_id.eq(subscription))
        .filter(running_images::registry.eq(registry))
        .filter(running_images::repository.eq(repository))
        .filter(running_images::digest.eq_any(digests))
        .count()
        .get_result::<i64>(conn)
        .map(|n| n > 0)
}
