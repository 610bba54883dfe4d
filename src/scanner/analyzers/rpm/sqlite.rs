//! Reading the header blobs of an `rpmdb.sqlite` held in memory, through diesel's SQLite
//! connection (the main crate links exactly one SQLite, `libsqlite3-sys` bundled, via diesel).

use std::path::Path;

use diesel::prelude::*;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Binary};
use diesel::sqlite::SqliteConnection;

const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

#[derive(QueryableByName)]
struct HeaderRow {
    #[diesel(sql_type = BigInt)]
    hnum: i64,
    #[diesel(sql_type = Binary)]
    blob: Vec<u8>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `(hnum, header blob)` of every row of the `Packages` table, in `hnum` order. `db` is the
/// database file, `wal` its write-ahead log when the image has a non-empty one.
pub fn header_blobs(db: &[u8], wal: Option<&[u8]>) -> Result<Vec<(i64, Vec<u8>)>, String> {
    if !db.starts_with(SQLITE_MAGIC) {
        return Err("not a SQLite database".to_owned());
    }
    let dir = tempfile::Builder::new()
        .prefix("crowsnest-rpmdb-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
    let path = dir.path().join("rpmdb.sqlite");
    std::fs::write(&path, db).map_err(|e| format!("cannot write a temporary copy: {e}"))?;
    let mut uri = format!("file:{}?mode=ro", uri_path(&path)?);
    match wal {
        Some(wal) => std::fs::write(dir.path().join("rpmdb.sqlite-wal"), wal)
            .map_err(|e| format!("cannot write a temporary copy of the WAL: {e}"))?,
        // Nothing can change the file: SQLite need not lock it nor look for a WAL.
        None => uri.push_str("&immutable=1"),
    }
    let result = read(&uri);
    // The connection is closed (inside `read`) before the directory is removed.
    drop(dir);
    result
}

fn read(uri: &str) -> Result<Vec<(i64, Vec<u8>)>, String> {
    let mut conn =
        SqliteConnection::establish(uri).map_err(|e| format!("cannot open the database: {e}"))?;
    let query_error = |e: diesel::result::Error| format!("cannot read the database: {e}");
    // Defence in depth against a crafted file: no schema-defined functions run.
    sql_query("PRAGMA trusted_schema = OFF")
        .execute(&mut conn)
        .map_err(query_error)?;
    let tables: Vec<CountRow> = sql_query(
        "SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'Packages'",
    )
    .load(&mut conn)
    .map_err(query_error)?;
    if tables.first().is_none_or(|r| r.n == 0) {
        return Err("no Packages table: not an rpm database".to_owned());
    }
    let rows: Vec<HeaderRow> = sql_query("SELECT hnum, blob FROM Packages ORDER BY hnum")
        .load(&mut conn)
        .map_err(query_error)?;
    Ok(rows.into_iter().map(|r| (r.hnum, r.blob)).collect())
}

/// A path for a `file:` URI: everything but unreserved characters and `/` percent-encoded.
fn uri_path(path: &Path) -> Result<String, String> {
    let s = path
        .to_str()
        .ok_or_else(|| format!("temporary path {} is not UTF-8", path.display()))?;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_paths() {
        assert_eq!(
            uri_path(Path::new("/tmp/a b/c?d#e%f/rpmdb.sqlite")).unwrap(),
            "/tmp/a%20b/c%3Fd%23e%25f/rpmdb.sqlite"
        );
    }

    #[test]
    fn not_sqlite() {
        assert_eq!(
            header_blobs(b"hello", None).unwrap_err(),
            "not a SQLite database"
        );
        // SQLite magic and garbage after it.
        let mut bytes = SQLITE_MAGIC.to_vec();
        bytes.extend_from_slice(&[0xAB; 4000]);
        let err = header_blobs(&bytes, None).unwrap_err();
        assert!(err.starts_with("cannot "), "{err}");
    }
}
