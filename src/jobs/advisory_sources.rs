//! Where OSV records come from: a JSON or YAML file, a directory of them, a zip (osv.dev's
//! `all.zip` layout), an HTTP(S) URL to either, or a request body. Each yields named byte blobs.

use std::fs::File;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

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
    let mut archive = zip::ZipArchive::new(reader).map_err(zip_error)?;
    for i in 0..archive.len() {
        let mut file = match archive.by_index(i) {
            Ok(file) => file,
            Err(e) => {
                each(Err(zip_error(e)));
                continue;
            }
        };
        let file_name = match file.name() {
            Ok(n) => n.into_owned(),
            Err(e) => {
                each(Err(zip_error(e)));
                continue;
            }
        };
        let entry_name = format!("{name}:{file_name}");
        if file.is_dir() {
            continue;
        }
        let Some(format) = RecordFormat::of(&file_name) else {
            skipped.push(entry_name);
            continue;
        };
        if file.size() > MAX_RECORD_BYTES {
            each(Err(SourceError::TooLarge {
                name: entry_name,
                limit: MAX_RECORD_BYTES,
            }));
            continue;
        }
        let mut bytes = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
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
