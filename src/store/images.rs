use diesel::prelude::*;

use super::AnyConnection;
use super::schema::{image_tags, images};

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
pub fn set_tag(conn: &mut AnyConnection, tag: &ImageTagRow) -> QueryResult<()> {
    diesel::delete(
        image_tags::table
            .filter(image_tags::registry_id.eq(&tag.registry_id))
            .filter(image_tags::repository.eq(&tag.repository))
            .filter(image_tags::tag.eq(&tag.tag)),
    )
    .execute(conn)?;
    diesel::insert_into(image_tags::table)
        .values(tag)
        .execute(conn)
        .map(drop)
}

pub fn tags(conn: &mut AnyConnection, image_id: &str) -> QueryResult<Vec<String>> {
    image_tags::table
        .filter(image_tags::image_id.eq(image_id))
        .select(image_tags::tag)
        .order(image_tags::tag.asc())
        .load(conn)
}
