//! The RPM header format, as stored in the `Packages` table of `rpmdb.sqlite` (the header
//! without the lead and the header magic):
//!
//! ```text
//! il: u32 BE   number of index entries
//! dl: u32 BE   size of the data store
//! il × { tag: i32 BE, type: u32 BE, offset: i32 BE, count: u32 BE }
//! dl bytes of data; an entry's value starts at `offset` in it
//! ```
//!
//! The first entry is normally the immutable region tag (63), whose trailer entries mark which
//! entries were signed; entries after the region ("dribbles", added at install) override a
//! region entry with the same tag, which is what rpm's `headerImport` and go-rpmdb do. Only the
//! tags a package identity needs, and its file list (`DIRNAMES[DIRINDEXES[i]] + BASENAMES[i]`),
//! are decoded; every read is bounds-checked, and any inconsistency is an error (never a
//! guess). Headers of rpm < 4.0 listing files in `OLDFILENAMES` give no file list.

/// Tags read (rpmtag.h).
pub const NAME: i32 = 1000;
pub const VERSION: i32 = 1001;
pub const RELEASE: i32 = 1002;
pub const EPOCH: i32 = 1003;
pub const ARCH: i32 = 1022;
pub const SOURCERPM: i32 = 1044;
pub const DIRINDEXES: i32 = 1116;
pub const BASENAMES: i32 = 1117;
pub const DIRNAMES: i32 = 1118;

const INT32_TYPE: u32 = 4;
const STRING_TYPE: u32 = 6;
const STRING_ARRAY_TYPE: u32 = 8;
const I18NSTRING_TYPE: u32 = 9;
const MAX_TYPE: u32 = 9;

/// rpm's limits (header.c): at most 0xffff entries, 256 MiB of data.
const MAX_ENTRIES: u32 = 0xffff;
const MAX_DATA: u32 = 256 * 1024 * 1024;

/// The identity tags of one header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub name: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    pub epoch: Option<i32>,
    pub arch: Option<String>,
    pub source_rpm: Option<String>,
    pub basenames: Vec<String>,
    pub dirnames: Vec<String>,
    pub dirindexes: Vec<u32>,
}

impl Header {
    /// The installed files' absolute paths; `Err` when the three file tags disagree.
    pub fn files(&self) -> Result<Vec<String>, String> {
        if self.basenames.len() != self.dirindexes.len() {
            return Err(format!(
                "{} BASENAMES but {} DIRINDEXES",
                self.basenames.len(),
                self.dirindexes.len()
            ));
        }
        self.basenames
            .iter()
            .zip(&self.dirindexes)
            .map(|(base, dir)| {
                let dir = usize::try_from(*dir)
                    .ok()
                    .and_then(|i| self.dirnames.get(i))
                    .ok_or_else(|| {
                        format!("DIRINDEXES {dir} outside {} DIRNAMES", self.dirnames.len())
                    })?;
                Ok(format!("{dir}{base}"))
            })
            .collect()
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Parses a header blob; `Err` says what is wrong with it.
pub fn parse(blob: &[u8]) -> Result<Header, String> {
    let il = be_u32(blob, 0).ok_or("shorter than the 8-byte header preamble")?;
    let dl = be_u32(blob, 4).ok_or("shorter than the 8-byte header preamble")?;
    if il == 0 || il > MAX_ENTRIES {
        return Err(format!("bad index entry count {il}"));
    }
    if dl > MAX_DATA {
        return Err(format!("bad data length {dl}"));
    }
    let data_start = 8 + 16 * il as usize;
    let data_end = data_start + dl as usize;
    if data_end > blob.len() {
        return Err(format!(
            "truncated: {il} entries and {dl} data bytes need {data_end} bytes, the blob has {}",
            blob.len()
        ));
    }
    let data = &blob[data_start..data_end];

    let mut header = Header::default();
    for i in 0..il as usize {
        let at = 8 + 16 * i;
        let field = |n: usize| be_u32(blob, at + 4 * n).ok_or("truncated index entry");
        let tag = field(0)? as i32;
        let ty = field(1)?;
        let offset = field(2)? as i32;
        let count = field(3)?;
        if ty > MAX_TYPE {
            return Err(format!("entry {i} (tag {tag}): bad type {ty}"));
        }
        if !matches!(
            tag,
            NAME | VERSION | RELEASE | EPOCH | ARCH | SOURCERPM | DIRINDEXES | BASENAMES | DIRNAMES
        ) {
            continue;
        }
        let offset = usize::try_from(offset)
            .ok()
            .filter(|o| *o < data.len())
            .ok_or_else(|| format!("tag {tag}: offset {offset} outside the data ({dl} bytes)"))?;
        if tag == EPOCH {
            if ty != INT32_TYPE || count < 1 {
                return Err(format!(
                    "tag {tag}: type {ty} count {count}, expected INT32"
                ));
            }
            if !offset.is_multiple_of(4) {
                return Err(format!("tag {tag}: misaligned INT32 at {offset}"));
            }
            let value = be_u32(data, offset)
                .ok_or_else(|| format!("tag {tag}: INT32 at {offset} past the data end"))?;
            header.epoch = Some(value as i32);
            continue;
        }
        if tag == DIRINDEXES {
            header.dirindexes =
                int32_array(data, offset, ty, count).map_err(|e| format!("tag {tag}: {e}"))?;
            continue;
        }
        if matches!(tag, BASENAMES | DIRNAMES) {
            let strings =
                string_array(data, offset, ty, count).map_err(|e| format!("tag {tag}: {e}"))?;
            match tag {
                BASENAMES => header.basenames = strings,
                _ => header.dirnames = strings,
            }
            continue;
        }
        if !matches!(ty, STRING_TYPE | STRING_ARRAY_TYPE | I18NSTRING_TYPE) || count < 1 {
            return Err(format!(
                "tag {tag}: type {ty} count {count}, expected a string"
            ));
        }
        let rest = &data[offset..];
        let len = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| format!("tag {tag}: unterminated string at {offset}"))?;
        let value = String::from_utf8_lossy(&rest[..len]).into_owned();
        let slot = match tag {
            NAME => &mut header.name,
            VERSION => &mut header.version,
            RELEASE => &mut header.release,
            ARCH => &mut header.arch,
            _ => &mut header.source_rpm,
        };
        *slot = Some(value);
    }
    Ok(header)
}

/// `count` big-endian INT32 values at `offset` (4-aligned) of `data`.
fn int32_array(data: &[u8], offset: usize, ty: u32, count: u32) -> Result<Vec<u32>, String> {
    if ty != INT32_TYPE {
        return Err(format!("type {ty}, expected INT32"));
    }
    if !offset.is_multiple_of(4) {
        return Err(format!("misaligned INT32 at {offset}"));
    }
    let len = (count as usize)
        .checked_mul(4)
        .filter(|len| offset.saturating_add(*len) <= data.len())
        .ok_or_else(|| format!("{count} INT32 values at {offset} past the data end"))?;
    Ok(data[offset..offset + len]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// `count` NUL-terminated strings one after the other at `offset` of `data`.
fn string_array(data: &[u8], offset: usize, ty: u32, count: u32) -> Result<Vec<String>, String> {
    if ty != STRING_ARRAY_TYPE {
        return Err(format!("type {ty}, expected STRING_ARRAY"));
    }
    // Each string takes at least its NUL: a larger count cannot fit (and is not allocated).
    let mut rest = &data[offset..];
    if count as usize > rest.len() {
        return Err(format!("{count} strings at {offset} past the data end"));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| format!("unterminated string in the array at {offset}"))?;
        out.push(String::from_utf8_lossy(&rest[..len]).into_owned());
        rest = &rest[len + 1..];
    }
    Ok(out)
}

#[cfg(test)]
pub mod build {
    //! Builds header blobs for tests.

    use super::*;

    pub enum Value<'a> {
        Str(&'a str),
        Int(i32),
        Strs(&'a [&'a str]),
        Ints(&'a [i32]),
    }

    /// A header with a region tag first, then `entries` in order.
    pub fn blob(entries: &[(i32, Value<'_>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data: Vec<u8> = Vec::new();
        let push = |tag: i32, ty: u32, offset: usize, count: u32, index: &mut Vec<u8>| {
            index.extend_from_slice(&tag.to_be_bytes());
            index.extend_from_slice(&ty.to_be_bytes());
            index.extend_from_slice(&(offset as i32).to_be_bytes());
            index.extend_from_slice(&count.to_be_bytes());
        };
        // Region tag 63 (HEADERIMMUTABLE), BIN, 16 bytes of trailer at the end of the data.
        let mut entries_index = Vec::new();
        for (tag, value) in entries {
            match value {
                Value::Str(s) => {
                    let offset = data.len();
                    data.extend_from_slice(s.as_bytes());
                    data.push(0);
                    push(*tag, STRING_TYPE, offset, 1, &mut entries_index);
                }
                Value::Int(v) => {
                    while !data.len().is_multiple_of(4) {
                        data.push(0);
                    }
                    let offset = data.len();
                    data.extend_from_slice(&v.to_be_bytes());
                    push(*tag, INT32_TYPE, offset, 1, &mut entries_index);
                }
                Value::Strs(values) => {
                    let offset = data.len();
                    for s in *values {
                        data.extend_from_slice(s.as_bytes());
                        data.push(0);
                    }
                    let count = values.len() as u32;
                    push(*tag, STRING_ARRAY_TYPE, offset, count, &mut entries_index);
                }
                Value::Ints(values) => {
                    while !data.len().is_multiple_of(4) {
                        data.push(0);
                    }
                    let offset = data.len();
                    for v in *values {
                        data.extend_from_slice(&v.to_be_bytes());
                    }
                    let count = values.len() as u32;
                    push(*tag, INT32_TYPE, offset, count, &mut entries_index);
                }
            }
        }
        let trailer_offset = data.len();
        let il = entries.len() as u32 + 1;
        data.extend_from_slice(&63i32.to_be_bytes());
        data.extend_from_slice(&7u32.to_be_bytes());
        data.extend_from_slice(&(-(16 * il as i32)).to_be_bytes());
        data.extend_from_slice(&16u32.to_be_bytes());
        push(63, 7, trailer_offset, 16, &mut index);
        index.extend(entries_index);

        let mut out = Vec::new();
        out.extend_from_slice(&il.to_be_bytes());
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(data);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::build::{Value, blob};
    use super::*;

    #[test]
    fn round_trip() {
        let b = blob(&[
            (NAME, Value::Str("openssl-libs")),
            (VERSION, Value::Str("3.0.8")),
            (RELEASE, Value::Str("1.amzn2023.0.4")),
            (EPOCH, Value::Int(1)),
            (ARCH, Value::Str("x86_64")),
            (
                SOURCERPM,
                Value::Str("openssl-3.0.8-1.amzn2023.0.4.src.rpm"),
            ),
            (1004, Value::Str("summary, ignored")),
        ]);
        assert_eq!(
            parse(&b),
            Ok(Header {
                name: Some("openssl-libs".to_owned()),
                version: Some("3.0.8".to_owned()),
                release: Some("1.amzn2023.0.4".to_owned()),
                epoch: Some(1),
                arch: Some("x86_64".to_owned()),
                source_rpm: Some("openssl-3.0.8-1.amzn2023.0.4.src.rpm".to_owned()),
                ..Header::default()
            })
        );
    }

    #[test]
    fn later_entry_overrides() {
        let b = blob(&[(NAME, Value::Str("a")), (NAME, Value::Str("b"))]);
        assert_eq!(parse(&b).unwrap().name.as_deref(), Some("b"));
    }

    #[test]
    fn corrupt_blobs_are_errors() {
        let good = blob(&[(NAME, Value::Str("a")), (EPOCH, Value::Int(2))]);
        assert!(parse(&good).is_ok());
        // Too short, zero or huge counts.
        assert!(parse(&[]).is_err());
        assert!(parse(&good[..7]).is_err());
        assert!(parse(&[0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(parse(&[0, 1, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(parse(&[0, 0, 0, 1, 0x10, 0, 0, 1]).is_err());
        // Every truncation fails cleanly (no panic).
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "{n}");
        }
        // Offsets outside the data, bad type, missing NUL.
        let entry = |i: usize| 8 + 16 * i;
        let mut b = good.clone();
        b[entry(1) + 8..entry(1) + 12].copy_from_slice(&10_000i32.to_be_bytes());
        assert!(parse(&b).unwrap_err().contains("outside the data"));
        let mut b = good.clone();
        b[entry(1) + 8..entry(1) + 12].copy_from_slice(&(-1i32).to_be_bytes());
        assert!(parse(&b).is_err());
        let mut b = good.clone();
        b[entry(1) + 4..entry(1) + 8].copy_from_slice(&4u32.to_be_bytes());
        assert!(parse(&b).unwrap_err().contains("expected a string"));
        let mut b = good.clone();
        b[entry(1) + 4..entry(1) + 8].copy_from_slice(&99u32.to_be_bytes());
        assert!(parse(&b).unwrap_err().contains("bad type"));
        let mut b = good.clone();
        b[entry(2) + 8..entry(2) + 12].copy_from_slice(&2i32.to_be_bytes());
        assert!(parse(&b).unwrap_err().contains("misaligned"));
        // A string running to the end of the data without its NUL.
        let mut b = blob(&[(NAME, Value::Str("abc"))]);
        let name_data = 8 + 16 * 2;
        b[name_data + 3] = b'x';
        let dl = 4;
        b[4..8].copy_from_slice(&(dl as u32).to_be_bytes());
        b.truncate(name_data + dl);
        assert!(parse(&b).unwrap_err().contains("unterminated"));
    }

    #[test]
    fn file_list() {
        let b = blob(&[
            (NAME, Value::Str("python3-idna")),
            (
                BASENAMES,
                Value::Strs(&["site-packages", "PKG-INFO", "__init__.py"]),
            ),
            (DIRINDEXES, Value::Ints(&[0, 1, 2])),
            (
                DIRNAMES,
                Value::Strs(&[
                    "/usr/lib/python3.9/",
                    "/usr/lib/python3.9/site-packages/idna-2.10-py3.9.egg-info/",
                    "/usr/lib/python3.9/site-packages/idna/",
                ]),
            ),
        ]);
        let h = parse(&b).unwrap();
        assert_eq!(
            h.files().unwrap(),
            [
                "/usr/lib/python3.9/site-packages",
                "/usr/lib/python3.9/site-packages/idna-2.10-py3.9.egg-info/PKG-INFO",
                "/usr/lib/python3.9/site-packages/idna/__init__.py",
            ]
        );
        // A package without files (a meta package).
        let h = parse(&blob(&[(NAME, Value::Str("meta"))])).unwrap();
        assert_eq!(h.files().unwrap(), Vec::<String>::new());
        // Tags that disagree: no list.
        let mismatched = |indexes: &[i32]| {
            let b = blob(&[
                (BASENAMES, Value::Strs(&["a", "b"])),
                (DIRINDEXES, Value::Ints(indexes)),
                (DIRNAMES, Value::Strs(&["/x/"])),
            ]);
            parse(&b).unwrap().files().unwrap_err()
        };
        assert_eq!(mismatched(&[0]), "2 BASENAMES but 1 DIRINDEXES");
        assert_eq!(mismatched(&[0, 1]), "DIRINDEXES 1 outside 1 DIRNAMES");
        assert_eq!(
            mismatched(&[0, -1]),
            "DIRINDEXES 4294967295 outside 1 DIRNAMES"
        );
    }

    #[test]
    fn corrupt_file_tags_are_errors() {
        let entry = |i: usize| 8 + 16 * i;
        let good = blob(&[
            (BASENAMES, Value::Strs(&["a", "b"])),
            (DIRINDEXES, Value::Ints(&[0, 0])),
        ]);
        assert!(parse(&good).is_ok());
        for n in 0..good.len() {
            assert!(parse(&good[..n]).is_err(), "{n}");
        }
        // More strings than the data holds (not allocated), more integers than fit.
        let mut b = good.clone();
        b[entry(1) + 12..entry(1) + 16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(
            parse(&b).unwrap_err().contains("past the data end"),
            "{:?}",
            parse(&b)
        );
        // The array's last string running to the end of the data without its NUL.
        let mut b = blob(&[(BASENAMES, Value::Strs(&["a", "b"]))]);
        let data = 8 + 16 * 2;
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b.truncate(data + 3);
        assert!(
            parse(&b).unwrap_err().contains("unterminated"),
            "{:?}",
            parse(&b)
        );
        let mut b = good.clone();
        b[entry(2) + 12..entry(2) + 16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse(&b).unwrap_err().contains("past the data end"));
        // Wrong types.
        let mut b = good.clone();
        b[entry(1) + 4..entry(1) + 8].copy_from_slice(&STRING_TYPE.to_be_bytes());
        assert!(parse(&b).unwrap_err().contains("expected STRING_ARRAY"));
        let mut b = good.clone();
        b[entry(2) + 4..entry(2) + 8].copy_from_slice(&STRING_ARRAY_TYPE.to_be_bytes());
        assert!(parse(&b).unwrap_err().contains("expected INT32"));
    }
}
