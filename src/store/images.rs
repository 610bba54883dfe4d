use std::collections::HashMap;

use diesel::prelude::*;

use super::filter::{
    Condition, Cursor, FilterError, KeyType, KeyValue, Kind, List, Listing, NULL_TIME, Property,
    Test, by_id, keyset, nullable_test, sql, test,
};
use super::registries::RegistryRow;
use super::schema::{image_tags, images};
use super::{AnyConnection, MultiBackend};
use crate::domain::odata::{Expr, OrderBy};
use crate::domain::{HealthCode, health_cause};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = images)]
pub struct ImageRow {
    pub id: String,
    pub registry_id: String,
    pub subscription_id: String,
    pub repository: String,
    pub digest: String,
    pub index_digest: Option<String>,
    pub platform: Option<String>,
    pub os: Option<String>,
    pub health: String,
    pub health_reason: Option<String>,
    pub pushed_at: Option<i64>,
    pub pulled_at: Option<i64>,
    pub scanned_at: Option<i64>,
    pub running: bool,
    pub created_at: i64,
    /// The assessment's `EcosystemCoverage` list, JSON.
    pub coverage: Option<String>,
    /// The oldest load time of the advisory data the assessment used.
    pub advisories_synced_at: Option<i64>,
    /// Executables and archives of the image no analyzer could read.
    pub unreadable_files: i32,
    /// The media type of the manifest it was scanned from; none before its first scan.
    pub media_type: Option<String>,
    /// Its OS release in Azure's spelling (`debian_linux_12`), when it has one.
    pub os_version: Option<String>,
}

impl ImageRow {
    /// An image not assessed yet (NotApplicable, NotScanned), as first recorded by a push, a
    /// scan or a cluster report.
    pub fn unscanned(registry: &RegistryRow, repository: &str, digest: &str, now: i64) -> Self {
        Self {
            id: super::new_id(),
            registry_id: registry.id.clone(),
            subscription_id: registry.subscription_id.clone(),
            repository: repository.to_owned(),
            digest: digest.to_owned(),
            index_digest: None,
            platform: None,
            os: None,
            health: HealthCode::NotApplicable.as_str().to_owned(),
            health_reason: Some(health_cause::NOT_SCANNED.to_owned()),
            pushed_at: None,
            pulled_at: None,
            scanned_at: None,
            running: false,
            created_at: now,
            coverage: None,
            advisories_synced_at: None,
            unreadable_files: 0,
            media_type: None,
            os_version: None,
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = image_tags)]
pub struct ImageTagRow {
    pub registry_id: String,
    pub repository: String,
    pub tag: String,
    pub image_id: String,
    pub updated_at: i64,
}

pub fn find_by_digest(
    conn: &mut AnyConnection,
    registry_id: &str,
    repository: &str,
    digest: &str,
) -> QueryResult<Option<ImageRow>> {
    images::table
        .filter(images::registry_id.eq(registry_id))
        .filter(images::repository.eq(repository))
        .filter(images::digest.eq(digest))
        .select(ImageRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut AnyConnection, row: &ImageRow) -> QueryResult<()> {
    diesel::insert_into(images::table)
        .values(row)
        .execute(conn)
        .map(drop)
}

/// Points `tag` at the image, moving it away from whichever image held it before.
pub fn set_tag(conn: &mut AnyConnection, image: &ImageRow, tag: &str, now: i64) -> QueryResult<()> {
    let tag = ImageTagRow {
        registry_id: image.registry_id.clone(),
        repository: image.repository.clone(),
        tag: tag.to_owned(),
        image_id: image.id.clone(),
        updated_at: now,
    };
    // One statement: a delete then insert let two writers of the same new tag both insert.
    on_each_backend!(conn, c => diesel::insert_into(image_tags::table)
        .values(&tag)
        .on_conflict((image_tags::registry_id, image_tags::repository, image_tags::tag))
        .do_update()
        .set((
            image_tags::image_id.eq(&tag.image_id),
            image_tags::updated_at.eq(tag.updated_at),
        ))
        .execute(c))
    .map(drop)
}

pub fn tags(conn: &mut AnyConnection, image_id: &str) -> QueryResult<Vec<String>> {
    image_tags::table
        .filter(image_tags::image_id.eq(image_id))
        .select(image_tags::tag)
        .order(image_tags::tag.asc())
        .load(conn)
}

/// The image row for registry + repository + digest, created (NotApplicable, NotScanned) when
/// missing. `pushed_at` moves when given.
pub fn ensure(
    conn: &mut AnyConnection,
    template: &ImageRow,
    pushed_at: Option<i64>,
) -> QueryResult<ImageRow> {
    if let Some(mut found) = find_by_digest(
        conn,
        &template.registry_id,
        &template.repository,
        &template.digest,
    )? {
        if let Some(at) = pushed_at {
            diesel::update(images::table.find(&found.id))
                .set(images::pushed_at.eq(at))
                .execute(conn)?;
            found.pushed_at = Some(at);
        }
        return Ok(found);
    }
    let row = ImageRow {
        pushed_at: pushed_at.or(template.pushed_at),
        ..template.clone()
    };
    let inserted = on_each_backend!(conn, c => diesel::insert_into(images::table)
        .values(&row)
        .on_conflict_do_nothing()
        .execute(c))?;
    if inserted == 1 {
        return Ok(row);
    }
    // Created by a concurrent writer between the look-up and the insert.
    find_by_digest(conn, &row.registry_id, &row.repository, &row.digest)?
        .ok_or(diesel::result::Error::NotFound)
}

/// Records a pull of `digest` (an image, or an index whose children are images).
pub fn record_pull(
    conn: &mut AnyConnection,
    registry_id: &str,
    repository: &str,
    digest: &str,
    at: i64,
) -> QueryResult<usize> {
    diesel::update(images::table.filter(at_digest(registry_id, repository, digest)))
        .set(images::pulled_at.eq(at))
        .execute(conn)
}

/// Removes `digest` (an image, or an index and its children) with its tags and findings.
pub fn delete_digest(
    conn: &mut AnyConnection,
    registry_id: &str,
    repository: &str,
    digest: &str,
) -> QueryResult<usize> {
    let ids: Vec<String> = images::table
        .filter(at_digest(registry_id, repository, digest))
        .select(images::id)
        .load(conn)?;
    if ids.is_empty() {
        return Ok(0);
    }
    // Explicit rather than relying on ON DELETE CASCADE, which SQLite applies only with foreign keys on.
    diesel::delete(
        super::schema::findings::table.filter(super::schema::findings::image_id.eq_any(&ids)),
    )
    .execute(conn)?;
    diesel::delete(image_tags::table.filter(image_tags::image_id.eq_any(&ids))).execute(conn)?;
    diesel::delete(images::table.filter(images::id.eq_any(&ids))).execute(conn)
}

pub fn remove_tag(
    conn: &mut AnyConnection,
    registry_id: &str,
    repository: &str,
    tag: &str,
) -> QueryResult<usize> {
    diesel::delete(
        image_tags::table
            .filter(image_tags::registry_id.eq(registry_id))
            .filter(image_tags::repository.eq(repository))
            .filter(image_tags::tag.eq(tag)),
    )
    .execute(conn)
}

/// What a scan learnt about an image.
#[derive(Debug, Clone)]
pub struct Assessed {
    pub index_digest: Option<String>,
    pub platform: Option<String>,
    pub os: Option<String>,
    pub health: String,
    pub health_reason: Option<String>,
    pub scanned_at: i64,
    pub coverage: String,
    pub advisories_synced_at: Option<i64>,
    pub unreadable_files: i32,
    pub media_type: Option<String>,
    pub os_version: Option<String>,
}

pub fn record_assessment(
    conn: &mut AnyConnection,
    image_id: &str,
    a: &Assessed,
) -> QueryResult<()> {
    diesel::update(images::table.find(image_id))
        .set((
            images::index_digest.eq(&a.index_digest),
            images::platform.eq(&a.platform),
            images::os.eq(&a.os),
            images::health.eq(&a.health),
            images::health_reason.eq(&a.health_reason),
            images::scanned_at.eq(a.scanned_at),
            images::coverage.eq(&a.coverage),
            images::advisories_synced_at.eq(a.advisories_synced_at),
            images::unreadable_files.eq(a.unreadable_files),
            images::media_type.eq(&a.media_type),
            images::os_version.eq(&a.os_version),
        ))
        .execute(conn)
        .map(drop)
}

/// Assessed images with an ecosystem of one of these families (`Debian` finds `Debian:12` and
/// `Debian`) that lacked advisory data (none, or stale) for some ecosystem: the ones new data may
/// change the verdict of.
pub fn lacking_data(conn: &mut AnyConnection, bases: &[String]) -> QueryResult<Vec<ImageRow>> {
    use super::filter::escape_like;
    let mut out: Vec<ImageRow> = Vec::new();
    for base in bases {
        // Coverage is stored as serde writes `EcosystemCoverage`: `{"ecosystem":"Debian:12",…`.
        let quoted = escape_like(&serde_json::to_string(base).unwrap_or_default());
        let exact = format!("%\"ecosystem\":{quoted}%");
        let release = format!(
            "%\"ecosystem\":{}:%",
            quoted.strip_suffix('"').unwrap_or(&quoted)
        );
        let found: Vec<ImageRow> = images::table
            .filter(images::scanned_at.is_not_null())
            .filter(
                images::coverage
                    .like(exact)
                    .escape('\\')
                    .or(images::coverage.like(release).escape('\\')),
            )
            .filter(
                images::coverage
                    .like("%\"advisories\":\"none\"%")
                    .or(images::coverage.like("%\"stale\":true%")),
            )
            .select(ImageRow::as_select())
            .load(conn)?;
        for image in found {
            if !out.iter().any(|o| o.id == image.id) {
                out.push(image);
            }
        }
    }
    Ok(out)
}

/// Healthy images whose advisory data was loaded before `synced_before`, up to `limit`: their
/// verdict rests on data that has aged past the maximum since they were assessed.
pub fn healthy_on_data_before(
    conn: &mut AnyConnection,
    synced_before: i64,
    limit: i64,
) -> QueryResult<Vec<ImageRow>> {
    images::table
        .filter(images::health.eq(HealthCode::Healthy.as_str()))
        .filter(images::advisories_synced_at.lt(synced_before))
        .order(images::advisories_synced_at.asc())
        .limit(limit)
        .select(ImageRow::as_select())
        .load(conn)
}

/// Sets an image's OS release in Azure's spelling.
pub fn set_os_version(
    conn: &mut AnyConnection,
    image_id: &str,
    os_version: Option<&str>,
) -> QueryResult<()> {
    diesel::update(images::table.find(image_id))
        .set(images::os_version.eq(os_version))
        .execute(conn)
        .map(drop)
}

/// Sets an image's health and its cause.
pub fn set_health(
    conn: &mut AnyConnection,
    image_id: &str,
    health: &str,
    reason: Option<&str>,
) -> QueryResult<()> {
    diesel::update(images::table.find(image_id))
        .set((images::health.eq(health), images::health_reason.eq(reason)))
        .execute(conn)
        .map(drop)
}

/// Marks an image whose scan failed, unless an earlier scan assessed it (that health stands).
pub fn record_failure(conn: &mut AnyConnection, image_id: &str, reason: &str) -> QueryResult<()> {
    diesel::update(
        images::table
            .find(image_id)
            .filter(images::scanned_at.is_null()),
    )
    .set((
        images::health.eq("NotApplicable"),
        images::health_reason.eq(reason),
    ))
    .execute(conn)
    .map(drop)
}

/// A subscription's images never assessed whose cause is `cause` (`NotScanned`, `PlanDisabled`).
pub fn unscanned_with_cause(
    conn: &mut AnyConnection,
    subscription: &str,
    cause: &str,
) -> QueryResult<Vec<ImageRow>> {
    images::table
        .filter(images::subscription_id.eq(subscription))
        .filter(images::scanned_at.is_null())
        .filter(images::health_reason.eq(cause))
        .select(ImageRow::as_select())
        .order(images::id.asc())
        .load(conn)
}

/// Gives a subscription's never-assessed images whose cause is `from` the cause `to`; returns how
/// many.
pub fn recause_unscanned(
    conn: &mut AnyConnection,
    subscription: &str,
    from: &str,
    to: &str,
) -> QueryResult<usize> {
    diesel::update(
        images::table
            .filter(images::subscription_id.eq(subscription))
            .filter(images::scanned_at.is_null())
            .filter(images::health_reason.eq(from)),
    )
    .set((
        images::health.eq(HealthCode::NotApplicable.as_str()),
        images::health_reason.eq(to),
    ))
    .execute(conn)
}

/// Images last assessed before `assessed_before` that were pulled, pushed or first seen since
/// `active_since` (an image scanned on request has no push time), or are running; oldest
/// assessment first, after the (scanned_at, id) cursor `after`. A cursor rather than an offset:
/// images scanned meanwhile leave the set without shifting the ones still to come.
pub fn due_for_rescan(
    conn: &mut AnyConnection,
    assessed_before: i64,
    active_since: i64,
    limit: i64,
    after: Option<(i64, &str)>,
) -> QueryResult<Vec<ImageRow>> {
    let mut query = images::table
        .filter(images::scanned_at.lt(assessed_before))
        .filter(
            images::pulled_at
                .ge(active_since)
                .or(images::pushed_at.ge(active_since))
                .or(images::created_at.ge(active_since))
                .or(images::running.eq(true)),
        )
        .select(ImageRow::as_select())
        .order((images::scanned_at.asc(), images::id.asc()))
        .limit(limit)
        .into_boxed();
    if let Some((scanned_at, id)) = after {
        query = query.filter(
            images::scanned_at.gt(scanned_at).or(images::scanned_at
                .eq(scanned_at)
                .and(images::id.gt(id.to_owned()))),
        );
    }
    query.load(conn)
}

/// Scanned images whose stored inventory holds a package (binary or source name) in `names`.
pub fn holding_packages(conn: &mut AnyConnection, names: &[String]) -> QueryResult<Vec<ImageRow>> {
    use super::schema::packages;
    let mut digests: Vec<String> = Vec::new();
    for chunk in names.chunks(500) {
        digests.extend(
            packages::table
                .filter(packages::name.eq_any(chunk))
                .select(packages::manifest_digest)
                .distinct()
                .load::<String>(conn)?,
        );
        digests.extend(
            packages::table
                .filter(packages::source_name.eq_any(chunk))
                .select(packages::manifest_digest)
                .distinct()
                .load::<String>(conn)?,
        );
    }
    digests.sort_unstable();
    digests.dedup();
    let mut out = Vec::new();
    for chunk in digests.chunks(500) {
        out.extend(
            images::table
                .filter(images::digest.eq_any(chunk))
                .filter(images::scanned_at.is_not_null())
                .select(ImageRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// Whether the children of index `digest` were assessed already.
pub fn index_assessed(
    conn: &mut AnyConnection,
    registry_id: &str,
    repository: &str,
    digest: &str,
) -> QueryResult<bool> {
    images::table
        .filter(images::registry_id.eq(registry_id))
        .filter(images::repository.eq(repository))
        .filter(images::index_digest.eq(digest))
        .filter(images::scanned_at.is_not_null())
        .count()
        .get_result::<i64>(conn)
        .map(|n| n > 0)
}

/// A condition that may be NULL (it reads the nullable `index_digest`); NULL filters a row out.
pub type NullableCondition = Box<
    dyn BoxableExpression<
            images::table,
            super::MultiBackend,
            SqlType = diesel::sql_types::Nullable<diesel::sql_types::Bool>,
        >,
>;

/// The image with manifest `digest`, or the images of index `digest`.
fn holds_digest(digest: &str) -> NullableCondition {
    Box::new(
        images::digest
            .eq(digest.to_owned())
            .or(images::index_digest.eq(digest.to_owned())),
    )
}

/// [`holds_digest`] in one repository of one registry (by row id).
pub fn at_digest(registry_id: &str, repository: &str, digest: &str) -> NullableCondition {
    Box::new(
        images::registry_id
            .eq(registry_id.to_owned())
            .and(images::repository.eq(repository.to_owned()))
            .nullable()
            .and(holds_digest(digest)),
    )
}

/// The images a scope reaches (resource groups through their registries), as a condition.
fn in_scope(scope: &super::findings::FindingScope) -> super::filter::Condition<images::table> {
    use super::findings::FindingScope;
    use super::schema::registries;
    match scope.clone() {
        FindingScope::Subscription(sub) => Box::new(images::subscription_id.eq(sub)),
        FindingScope::ResourceGroup(sub, rg) => Box::new(
            images::registry_id.eq_any(
                registries::table
                    .filter(registries::subscription_id.eq(sub))
                    .filter(registries::resource_group.eq(rg))
                    .select(registries::id),
            ),
        ),
        FindingScope::Registry(registry_id) => Box::new(images::registry_id.eq(registry_id)),
    }
}

/// One page of a scope's images, filtered, ordered and after the cursor as `listing` says.
pub fn list(
    conn: &mut AnyConnection,
    scope: &super::findings::FindingScope,
    listing: &Listing<Images>,
    limit: i64,
) -> QueryResult<Vec<ImageRow>> {
    listing
        .query()
        .filter(in_scope(scope))
        .select(ImageRow::as_select())
        .limit(limit)
        .load(conn)
}

/// The scope's images with this manifest (or index) digest, in every repository that holds it.
pub fn with_digest(
    conn: &mut AnyConnection,
    scope: &super::findings::FindingScope,
    digest: &str,
) -> QueryResult<Vec<ImageRow>> {
    images::table
        .filter(in_scope(scope))
        .filter(holds_digest(digest))
        .select(ImageRow::as_select())
        .order(images::id.asc())
        .limit(1000)
        .load(conn)
}

/// Images per (health code, cause) in a scope.
pub fn health_counts(
    conn: &mut AnyConnection,
    scope: &super::findings::FindingScope,
) -> QueryResult<Vec<(String, Option<String>, i64)>> {
    images::table
        .filter(in_scope(scope))
        .group_by((images::health, images::health_reason))
        .select((
            images::health,
            images::health_reason,
            diesel::dsl::count_star(),
        ))
        .load(conn)
}

/// Active findings (present, not exempt) of these images, counted per (image, severity,
/// patchable).
pub fn finding_counts(
    conn: &mut AnyConnection,
    image_ids: &[String],
) -> QueryResult<Vec<(String, String, bool, i64)>> {
    use super::schema::findings;
    let mut out = Vec::new();
    for chunk in image_ids.chunks(500) {
        out.extend(
            findings::table
                .filter(findings::image_id.eq_any(chunk))
                .filter(findings::resolved_at.is_null())
                .filter(findings::exempted_by.is_null())
                .group_by((findings::image_id, findings::severity, findings::patchable))
                .select((
                    findings::image_id,
                    findings::severity,
                    findings::patchable,
                    diesel::dsl::count_star(),
                ))
                .load::<(String, String, bool, i64)>(conn)?,
        );
    }
    Ok(out)
}

/// Present findings of these images that an exemption matches, per image id.
pub fn exempt_counts(
    conn: &mut AnyConnection,
    image_ids: &[String],
) -> QueryResult<Vec<(String, i64)>> {
    use super::schema::findings;
    let mut out = Vec::new();
    for chunk in image_ids.chunks(500) {
        out.extend(
            findings::table
                .filter(findings::image_id.eq_any(chunk))
                .filter(findings::resolved_at.is_null())
                .filter(findings::exempted_by.is_not_null())
                .group_by(findings::image_id)
                .select((findings::image_id, diesel::dsl::count_star()))
                .load::<(String, i64)>(conn)?,
        );
    }
    Ok(out)
}

/// Images by id, for rendering rows that refer to them.
pub fn by_ids(conn: &mut AnyConnection, ids: &[String]) -> QueryResult<HashMap<String, ImageRow>> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        for row in images::table
            .filter(images::id.eq_any(chunk))
            .select(ImageRow::as_select())
            .load::<ImageRow>(conn)?
        {
            out.insert(row.id.clone(), row);
        }
    }
    Ok(out)
}

/// Tags of these images, as (image id, tag).
pub fn tags_of(
    conn: &mut AnyConnection,
    image_ids: &[String],
) -> QueryResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    for chunk in image_ids.chunks(500) {
        out.extend(
            image_tags::table
                .filter(image_tags::image_id.eq_any(chunk))
                .select((image_tags::image_id, image_tags::tag))
                .order((image_tags::image_id.asc(), image_tags::tag.asc()))
                .load::<(String, String)>(conn)?,
        );
    }
    Ok(out)
}

/// Whether an image with this digest (or index digest) was assessed in the registry.
pub fn assessed(
    conn: &mut AnyConnection,
    registry_id: &str,
    repository: &str,
    digest: &str,
) -> QueryResult<bool> {
    images::table
        .filter(at_digest(registry_id, repository, digest))
        .filter(images::scanned_at.is_not_null())
        .count()
        .get_result::<i64>(conn)
        .map(|n| n > 0)
}

/// What a page of images shows besides the rows and the containers running them
/// (`running_images::of_images`).
pub struct ImageContext {
    /// The images' registries, by row id.
    pub registries: HashMap<String, RegistryRow>,
    /// Active findings (present, not exempt) per (image id, severity, patchable).
    pub finding_counts: Vec<(String, String, bool, i64)>,
    /// Present findings an exemption matches, per image id.
    pub exempt_counts: Vec<(String, i64)>,
    /// (image id, tag).
    pub tags: Vec<(String, String)>,
}

/// The [`ImageContext`] of a page of `rows`, read in a few queries.
pub fn context(conn: &mut AnyConnection, rows: &[ImageRow]) -> QueryResult<ImageContext> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let registry_ids: Vec<String> = rows.iter().map(|r| r.registry_id.clone()).collect();
    Ok(ImageContext {
        registries: super::registries::by_row_ids(conn, &registry_ids)?,
        finding_counts: finding_counts(conn, &ids)?,
        exempt_counts: exempt_counts(conn, &ids)?,
        tags: tags_of(conn, &ids)?,
    })
}

// ---------------------------------------------------------------------------------------------
// The image list: its `$filter` properties, sort keys and keyset query

/// The image list.
#[derive(Debug, Clone, Copy)]
pub struct Images;

#[derive(Debug, Clone, PartialEq)]
pub enum ImageLeaf {
    Repository(Test<String>),
    Digest(Test<String>),
    Os(Test<String>),
    Platform(Test<String>),
    Health(Vec<String>),
    HealthCause(Test<String>),
    Running(bool),
    PushedAt(Test<i64>),
    PulledAt(Test<i64>),
    ScannedAt(Test<i64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKey {
    Id,
    Repository,
    PushedAt,
    PulledAt,
    ScannedAt,
}

/// `HealthCode` names.
const HEALTH_CODES: &[&str] = &["Healthy", "Unhealthy", "NotApplicable"];

impl List for Images {
    type Row = ImageRow;
    type Leaf = ImageLeaf;
    type Key = ImageKey;
    const NAME: &'static str = "images";
    const PROPERTIES: &'static [Property<ImageLeaf>] = &[
        Property {
            path: "properties/repository",
            kind: Kind::Text(ImageLeaf::Repository),
        },
        Property {
            path: "properties/digest",
            kind: Kind::Text(ImageLeaf::Digest),
        },
        Property {
            path: "properties/os",
            kind: Kind::Text(ImageLeaf::Os),
        },
        Property {
            path: "properties/platform",
            kind: Kind::Text(ImageLeaf::Platform),
        },
        Property {
            path: "properties/health/code",
            kind: Kind::Choice(HEALTH_CODES, ImageLeaf::Health),
        },
        Property {
            path: "properties/health/cause",
            kind: Kind::Text(ImageLeaf::HealthCause),
        },
        Property {
            path: "properties/running",
            kind: Kind::Flag(ImageLeaf::Running),
        },
        Property {
            path: "properties/lastPushedAt",
            kind: Kind::Time(ImageLeaf::PushedAt),
        },
        Property {
            path: "properties/lastPulledAt",
            kind: Kind::Time(ImageLeaf::PulledAt),
        },
        Property {
            path: "properties/lastScannedAt",
            kind: Kind::Time(ImageLeaf::ScannedAt),
        },
    ];
    const KEYS: &'static [(&'static str, ImageKey)] = &[
        ("name", ImageKey::Id),
        ("properties/repository", ImageKey::Repository),
        ("properties/lastPushedAt", ImageKey::PushedAt),
        ("properties/lastPulledAt", ImageKey::PulledAt),
        ("properties/lastScannedAt", ImageKey::ScannedAt),
    ];
    const ID: ImageKey = ImageKey::Id;

    fn key_type(key: ImageKey) -> Option<KeyType> {
        match key {
            ImageKey::Id => None,
            ImageKey::Repository => Some(KeyType::Text),
            ImageKey::PushedAt | ImageKey::PulledAt | ImageKey::ScannedAt => Some(KeyType::Int),
        }
    }

    fn key_value(key: ImageKey, row: &ImageRow) -> Option<KeyValue> {
        let time = |t: Option<i64>| Some(KeyValue::Int(t.unwrap_or(NULL_TIME)));
        match key {
            ImageKey::Id => None,
            ImageKey::Repository => Some(KeyValue::Text(row.repository.clone())),
            ImageKey::PushedAt => time(row.pushed_at),
            ImageKey::PulledAt => time(row.pulled_at),
            ImageKey::ScannedAt => time(row.scanned_at),
        }
    }

    fn id(row: &ImageRow) -> &str {
        &row.id
    }
}

fn image_condition(leaf: &ImageLeaf) -> Condition<images::table> {
    type T = images::table;
    match leaf {
        ImageLeaf::Repository(t) => test!(T, images::repository, t),
        ImageLeaf::Digest(t) => test!(T, images::digest, t),
        ImageLeaf::Os(t) => nullable_test!(T, images::os, t),
        ImageLeaf::Platform(t) => nullable_test!(T, images::platform, t),
        ImageLeaf::Health(names) => Box::new(images::health.eq_any(names.clone())),
        ImageLeaf::HealthCause(t) => nullable_test!(T, images::health_reason, t),
        ImageLeaf::Running(b) => Box::new(images::running.eq(*b)),
        ImageLeaf::PushedAt(t) => nullable_test!(T, images::pushed_at, t),
        ImageLeaf::PulledAt(t) => nullable_test!(T, images::pulled_at, t),
        ImageLeaf::ScannedAt(t) => nullable_test!(T, images::scanned_at, t),
    }
}

impl Listing<Images> {
    /// All images (no scope yet) that pass the filter, in order, after the cursor.
    pub fn query(&self) -> images::BoxedQuery<'static, MultiBackend> {
        let mut query = images::table.into_boxed();
        if let Some(condition) = self.condition(image_condition) {
            query = query.filter(condition);
        }
        let after = self.after.clone();
        let d = self.descending;
        let time = |c: Cursor| (c.key.map_or(0, |k| k.int()), c.id);
        match self.key {
            ImageKey::Id => by_id!(query, images::id, d, after.map(|c| c.id)),
            ImageKey::Repository => keyset!(
                query,
                images::repository,
                images::id,
                d,
                after.map(|c| (c.key.map_or_else(String::new, |k| k.text()), c.id))
            ),
            ImageKey::PushedAt => keyset!(
                query,
                sql::or_else(images::pushed_at, NULL_TIME),
                images::id,
                d,
                after.map(time)
            ),
            ImageKey::PulledAt => keyset!(
                query,
                sql::or_else(images::pulled_at, NULL_TIME),
                images::id,
                d,
                after.map(time)
            ),
            ImageKey::ScannedAt => keyset!(
                query,
                sql::or_else(images::scanned_at, NULL_TIME),
                images::id,
                d,
                after.map(time)
            ),
        }
    }
}

/// The image listing of a request.
pub fn listing(
    filter: Option<&Expr>,
    order: Option<&OrderBy>,
) -> Result<Listing<Images>, FilterError> {
    Listing::new(filter, order)
}
