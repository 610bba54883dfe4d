//! Where OSV records come from: a JSON or YAML file, a directory of them, a zip (osv.dev's
//! `all.zip` layout), an HTTP(S) URL to either, or a request body. Each yields named byte blobs.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use zip::ZipReadOptions;
use zip::unstable::read::ZipIterable;

use crate::scanner::advisories::osv;

/// The largest record file or zip entry read (a decompression-bomb guard; real records are < 1 MiB).
pub const MAX_RECORD_BYTES: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub enum Source {
    Path(PathBuf),
    Url(url::Url),
}

impl Source {
    /// `http(s)://…` is a URL, anything else a path.
    pub fn parse(arg: &str) -> Self {
        match url::Url::parse(arg) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Self::Url(url),
            _ => Self::Path(PathBuf::from(arg)),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Path(p) => p.display().to_string(),
            Self::Url(u) => u.to_string(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a readable zip archive: {reason}")]
    Zip { path: String, reason: String },
    #[error("cannot download {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("{name} is larger than {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    #[error("{name} is neither JSON nor a zip archive: {reason}")]
    NotRecords { name: String, reason: String },
    #[error("cannot download {url}: the server answered {}", status_text(*status))]
    Status { url: String, status: u16 },
    #[error("{name} holds no OSV record ({reason})")]
    NoRecords { name: String, reason: String },
}

fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status) {
        Ok(code) => code.to_string(),
        Err(_) => status.to_string(),
    }
}

/// One file's bytes, named for messages (`all.zip:DSA-1234-1.json`).
#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub bytes: Vec<u8>,
    pub format: RecordFormat,
}

/// How a record file is written: OSV publishes JSON; some databases (PyPA's advisory-database,
/// for one) publish the same schema as YAML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    Json,
    Yaml,
}

impl RecordFormat {
    /// By the file name's extension: `.json`, `.yaml` or `.yml`; anything else is not a record.
    pub fn of(name: &str) -> Option<Self> {
        let extension = Path::new(name).extension()?.to_str()?.to_ascii_lowercase();
        match extension.as_str() {
            "json" => Some(Self::Json),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }
}

/// Files a source held that were not records (READMEs, scripts), by name.
pub type Skipped = Vec<String>;

/// Calls `each` for every record file of a local source, front to back; a file that cannot be read
/// is reported through `each` as an error and does not stop the others. `name` stands for `path`
/// in entry names and messages (a downloaded or uploaded file's temporary path means nothing to
/// whoever reads them); the files of a directory are named by their paths.
pub fn for_each_entry(
    name: &str,
    path: &Path,
    skipped: &mut Skipped,
    each: &mut dyn FnMut(Result<Entry, SourceError>),
) -> Result<(), SourceError> {
    let io = |e| SourceError::Io {
        path: name.to_owned(),
        source: e,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        let mut files = Vec::new();
        walk(path, &mut files).map_err(io)?;
        files.sort();
        for file in files {
            let name = file.display().to_string();
            match RecordFormat::of(&name) {
                Some(format) => each(read_limited(&name, &file, format)),
                None => skipped.push(name),
            }
        }
        return Ok(());
    }
    let mut file = File::open(path).map_err(io)?;
    if is_zip(&mut file).map_err(io)? {
        return for_each_zip_entry(file, name, skipped, each);
    }
    // A single file is JSON unless its name says YAML (a request body has no name).
    let format = RecordFormat::of(name).unwrap_or(RecordFormat::Json);
    each(read_limited(name, path, format));
    Ok(())
}

/// Refuses a file that is neither a zip nor JSON (of any shape: records are checked one by one
/// later): a request body must be one or the other. `name` stands for `path` in messages.
pub fn require_json_or_zip(name: &str, path: &Path) -> Result<(), SourceError> {
    let io = |e| SourceError::Io {
        path: name.to_owned(),
        source: e,
    };
    let mut file = File::open(path).map_err(io)?;
    if is_zip(&mut file).map_err(io)? {
        return Ok(());
    }
    let entry = read_limited(name, path, RecordFormat::Json)?;
    serde_json::from_slice::<serde::de::IgnoredAny>(&entry.bytes)
        .map(|_| ())
        .map_err(|e| SourceError::NotRecords {
            name: name.to_owned(),
            reason: e.to_string(),
        })
}

/// Reads the zip's entries one at a time from its central directory: `ZipIterable` keeps no index
/// of them, so memory does not grow with the entry count as it does with `ZipArchive` (about a
/// quarter of a kilobyte an entry, half a gigabyte for osv.dev's all-ecosystems zip). The central
/// directory is walked once before any entry is handed out, so a damaged one refuses the whole
/// archive before anything is imported, as `ZipArchive` did. Sizes come from the central
/// directory, so entries written with data descriptors (Go's `archive/zip`) read as any other.
fn for_each_zip_entry<R: Read + Seek>(
    reader: R,
    name: &str,
    skipped: &mut Skipped,
    each: &mut dyn FnMut(Result<Entry, SourceError>),
) -> Result<(), SourceError> {
    let zip_error = |e: zip::result::ZipError| SourceError::Zip {
        path: name.to_owned(),
        reason: e.to_string(),
    };
    let mut archive =
        ZipIterable::try_new(reader, zip::read::Config::default()).map_err(zip_error)?;
    for header in archive.files().map_err(zip_error)? {
        header.map_err(zip_error)?;
    }
    let entries = archive.files().map_err(zip_error)?;
    while let Some(header) = entries.next() {
        let header = match header {
            Ok(header) => header,
            Err(e) => {
                each(Err(zip_error(e)));
                continue;
            }
        };
        let file_name = match header.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                each(Err(zip_error(e)));
                continue;
            }
        };
        let entry_name = format!("{name}:{file_name}");
        if header.is_dir() {
            continue;
        }
        let Some(format) = RecordFormat::of(&file_name) else {
            skipped.push(entry_name);
            continue;
        };
        if header.size() > MAX_RECORD_BYTES {
            each(Err(SourceError::TooLarge {
                name: entry_name,
                limit: MAX_RECORD_BYTES,
            }));
            continue;
        }
        let declared = header.size();
        let mut file = match header.with_reader(entries.reader_mut(), ZipReadOptions::default()) {
            Ok(file) => file,
            Err(e) => {
                each(Err(zip_error(e)));
                continue;
            }
        };
        let mut bytes = Vec::with_capacity(usize::try_from(declared).unwrap_or(0));
        // The declared size can lie; never read more than the limit.
        let read = (&mut file)
            .take(MAX_RECORD_BYTES + 1)
            .read_to_end(&mut bytes);
        match read {
            Ok(n) if n as u64 > MAX_RECORD_BYTES => each(Err(SourceError::TooLarge {
                name: entry_name,
                limit: MAX_RECORD_BYTES,
            })),
            Ok(_) => each(Ok(Entry {
                name: entry_name,
                bytes,
                format,
            })),
            Err(e) => each(Err(SourceError::Zip {
                path: entry_name,
                reason: e.to_string(),
            })),
        }
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn is_zip(file: &mut File) -> std::io::Result<bool> {
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    file.rewind()?;
    Ok(n == 4 && &magic == b"PK\x03\x04")
}

fn read_limited(name: &str, path: &Path, format: RecordFormat) -> Result<Entry, SourceError> {
    let name = name.to_owned();
    let io = |e| SourceError::Io {
        path: name.clone(),
        source: e,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .map_err(io)?
        .take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(SourceError::TooLarge {
            name,
            limit: MAX_RECORD_BYTES,
        });
    }
    Ok(Entry {
        name,
        bytes,
        format,
    })
}

/// Streams a URL to a temporary file (never whole in memory), up to `limit` bytes.
pub async fn download(url: &url::Url, limit: u64) -> Result<tempfile::NamedTempFile, SourceError> {
    let client = client(std::time::Duration::from_secs(30), None)
        .map_err(|reason| download_error(url, reason))?;
    match download_with(&client, url, limit, None).await? {
        Downloaded::Fresh { file, .. } => Ok(file),
        // Without validators a server has nothing to answer 304 to.
        Downloaded::NotModified => Err(download_error(url, "the server answered 304".to_owned())),
    }
}

/// An HTTP client for downloads: `connect` bounds connecting, `read` (when set) the wait for
/// each read, so a stalled server fails the download instead of hanging it.
pub fn client(
    connect: std::time::Duration,
    read: Option<std::time::Duration>,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().connect_timeout(connect);
    if let Some(read) = read {
        builder = builder.read_timeout(read);
    }
    builder.build().map_err(|e| e.to_string())
}

/// What the server said about a file the last time it was downloaded: the validators of a
/// conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug)]
pub enum Downloaded {
    /// 304: the file is as it was when `validators` were taken.
    NotModified,
    Fresh {
        file: tempfile::NamedTempFile,
        validators: Validators,
    },
}

fn download_error(url: &url::Url, reason: String) -> SourceError {
    SourceError::Download {
        url: url.to_string(),
        reason,
    }
}

/// Streams a URL to a temporary file (never whole in memory), up to `limit` bytes; with
/// `validators`, as a conditional GET (`If-None-Match`, `If-Modified-Since`).
pub async fn download_with(
    client: &reqwest::Client,
    url: &url::Url,
    limit: u64,
    validators: Option<&Validators>,
) -> Result<Downloaded, SourceError> {
    let fail = |reason: String| download_error(url, reason);
    let mut request = client.get(url.clone());
    if let Some(v) = validators {
        if let Some(etag) = &v.etag {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        if let Some(since) = &v.last_modified {
            request = request.header(reqwest::header::IF_MODIFIED_SINCE, since);
        }
    }
    let response = request.send().await.map_err(|e| fail(error_chain(&e)))?;
    let status = response.status();
    if status == reqwest::StatusCode::NOT_MODIFIED && validators.is_some() {
        return Ok(Downloaded::NotModified);
    }
    if !status.is_success() {
        return Err(SourceError::Status {
            url: url.to_string(),
            status: status.as_u16(),
        });
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let validators = Validators {
        etag: header(reqwest::header::ETAG),
        last_modified: header(reqwest::header::LAST_MODIFIED),
    };
    let temp = tempfile::NamedTempFile::new().map_err(|e| fail(e.to_string()))?;
    let mut file = tokio::fs::File::create(temp.path())
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut written: u64 = 0;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| fail(error_chain(&e)))?;
        written += chunk.len() as u64;
        if written > limit {
            return Err(SourceError::TooLarge {
                name: url.to_string(),
                limit,
            });
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| fail(e.to_string()))?;
    }
    file.flush().await.map_err(|e| fail(e.to_string()))?;
    Ok(Downloaded::Fresh {
        file: temp,
        validators,
    })
}

/// An error with its causes (reqwest's own message says only "error decoding response body").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Checks that a downloaded (or local) source is worth importing before anything is stored: it
/// opens (a zip must be whole: its directory sits at its end) and holds at least one OSV record
/// that parses. Stops at the first such record.
pub fn require_records(name: &str, path: &Path) -> Result<(), SourceError> {
    let mut found = false;
    let mut skipped = Skipped::new();
    let mut first_problem: Option<String> = None;
    for_each_entry(name, path, &mut skipped, &mut |entry| {
        if found {
            return;
        }
        match entry {
            Ok(entry) => {
                let parsed = match entry.format {
                    RecordFormat::Json => osv::parse_records(&entry.bytes),
                    RecordFormat::Yaml => osv::parse_yaml_records(&entry.bytes),
                };
                match parsed.into_iter().find_map(Result::ok) {
                    Some(_) => found = true,
                    None => {
                        first_problem
                            .get_or_insert_with(|| format!("{} is not an OSV record", entry.name));
                    }
                }
            }
            Err(e) => {
                first_problem.get_or_insert_with(|| e.to_string());
            }
        }
    })?;
    if found {
        return Ok(());
    }
    Err(SourceError::NoRecords {
        name: name.to_owned(),
        reason: first_problem.unwrap_or_else(|| "it holds no record files".to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    /// A zip as Go's `archive/zip` writes one: deflated entries whose sizes follow their data
    /// (data descriptors), as a writer that cannot seek back must.
    fn streamed_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new_stream(Vec::new());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in files {
            zip.start_file(*name, options).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    /// What a pass over `bytes` handed out: the records (name, bytes) and the skipped files.
    struct Pass {
        outcome: Result<(), SourceError>,
        records: Vec<(String, Vec<u8>)>,
        skipped: Skipped,
    }

    fn read_all(bytes: Vec<u8>) -> Pass {
        let (mut records, mut skipped) = (Vec::new(), Skipped::new());
        let outcome = for_each_zip_entry(Cursor::new(bytes), "all.zip", &mut skipped, &mut |e| {
            let entry = e.unwrap();
            records.push((entry.name, entry.bytes));
        });
        Pass {
            outcome,
            records,
            skipped,
        }
    }

    #[test]
    fn entries_with_data_descriptors_are_read_in_order() {
        let zip = streamed_zip(&[
            ("A-1.json", br#"{"id":"A-1"}"#),
            ("README.md", b"not a record"),
            ("B-2.json", br#"{"id":"B-2"}"#),
        ]);
        // Bit 3 of the first local header's flags: the sizes are in a data descriptor.
        assert_eq!(zip[6] & 0b1000, 0b1000);
        let read = read_all(zip);
        read.outcome.unwrap();
        assert_eq!(
            read.records,
            vec![
                ("all.zip:A-1.json".to_owned(), br#"{"id":"A-1"}"#.to_vec()),
                ("all.zip:B-2.json".to_owned(), br#"{"id":"B-2"}"#.to_vec()),
            ]
        );
        assert_eq!(read.skipped, vec!["all.zip:README.md".to_owned()]);
    }

    #[test]
    fn a_zip_cut_short_is_refused_before_any_entry_is_read() {
        let mut zip = streamed_zip(&[("A-1.json", br#"{"id":"A-1"}"#)]);
        zip.truncate(zip.len() - 10);
        let read = read_all(zip);
        assert!(
            matches!(read.outcome, Err(SourceError::Zip { .. })),
            "{:?}",
            read.outcome
        );
        assert!(read.records.is_empty());
    }
}
