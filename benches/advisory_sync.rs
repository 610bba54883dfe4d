//! Syncing an OSV source from a local copy of OSV's export (served over HTTP from disk): the first
//! sync of the Debian bundle (6,832 records, one `all.zip`), an incremental sync of 50 changed
//! records (the list, then one file each), and the peak RSS of a first sync of a large zip built by
//! repeating the bundle's records under new ids (`CROWSNEST_BENCH_SYNC_ZIP_MB`, default 1024;
//! SQLite only, `CROWSNEST_BENCH_SYNC_ZIP_MB=0` skips it).
//!
//! cargo bench --bench advisory_sync

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use common::{BenchDb, DEBIAN_ZIP, env_or};
use crowsnest::domain::SourceName;
use crowsnest::jobs::advisory_sync::{SourceSelection, SyncSettings, Syncer};
use crowsnest::store;

/// Serves files under `root` with an ETag (size and modification time), answering
/// `If-None-Match` with 304, and counts the requests.
struct Export {
    root: PathBuf,
    requests: AtomicU64,
}

async fn serve(req: HttpRequest, export: web::Data<Export>) -> HttpResponse {
    export.requests.fetch_add(1, Ordering::Relaxed);
    let relative = req.match_info().query("path").to_owned();
    if relative.split('/').any(|p| p == "..") {
        return HttpResponse::NotFound().finish();
    }
    let path = export.root.join(&relative);
    let Ok(meta) = std::fs::metadata(&path) else {
        return HttpResponse::NotFound().finish();
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let etag = format!("\"{}-{modified}\"", meta.len());
    let matches = req
        .headers()
        .get("If-None-Match")
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str());
    if matches {
        return HttpResponse::NotModified().finish();
    }
    let file = tokio::fs::File::open(&path).await.unwrap();
    HttpResponse::Ok()
        .insert_header(("ETag", etag))
        .insert_header(("Content-Length", meta.len().to_string()))
        .streaming(tokio_util::io::ReaderStream::new(file))
}

/// The Debian bundle laid out as OSV's export under `root/Debian/`.
fn debian_export(root: &Path) -> Vec<(String, String)> {
    let dir = root.join("Debian");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(DEBIAN_ZIP, dir.join("all.zip")).unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(DEBIAN_ZIP).unwrap()).unwrap();
    let mut listed = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let id = record["id"].as_str().unwrap().to_owned();
        std::fs::write(dir.join(format!("{id}.json")), &bytes).unwrap();
        listed.push((record["modified"].as_str().unwrap().to_owned(), id));
    }
    write_list(&dir, &mut listed);
    listed
}

fn write_list(dir: &Path, listed: &mut [(String, String)]) {
    listed.sort_by(|a, b| b.cmp(a));
    let text: String = listed.iter().map(|(m, id)| format!("{m},{id}\n")).collect();
    std::fs::write(dir.join("modified_id.csv"), text).unwrap();
}

/// Gives the first `n` records a newer `modified` and lists them so.
fn change(root: &Path, listed: &mut [(String, String)], n: usize) {
    let dir = root.join("Debian");
    for (i, (modified, id)) in listed.iter_mut().take(n).enumerate() {
        let path = dir.join(format!("{id}.json"));
        let mut record: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        *modified = format!("2027-01-01T00:{:02}:{:02}Z", i / 60, i % 60);
        record["modified"] = serde_json::json!(modified);
        std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    }
    write_list(&dir, listed);
}

/// `root/Big/all.zip` of at least `megabytes`, the bundle's records repeated under new ids
/// (stored, not deflated, as the size is the point); returns the records written.
fn big_export(root: &Path, megabytes: u64) -> u64 {
    let dir = root.join("Big");
    std::fs::create_dir_all(&dir).unwrap();
    let mut archive = zip::ZipArchive::new(std::fs::File::open(DEBIAN_ZIP).unwrap()).unwrap();
    let mut records = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        records.push(serde_json::from_slice::<serde_json::Value>(&bytes).unwrap());
    }
    let out = std::fs::File::create(dir.join("all.zip")).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::new(out));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let (mut written, mut count) = (0u64, 0u64);
    'outer: for round in 0.. {
        for record in &records {
            let mut copy = record.clone();
            let id = format!("{}-R{round}", record["id"].as_str().unwrap());
            copy["id"] = serde_json::json!(id);
            let bytes = serde_json::to_vec(&copy).unwrap();
            zip.start_file(format!("{id}.json"), options).unwrap();
            zip.write_all(&bytes).unwrap();
            written += bytes.len() as u64;
            count += 1;
            if written >= megabytes * 1024 * 1024 {
                break 'outer;
            }
        }
    }
    zip.finish().unwrap();
    count
}

/// The process's peak resident set size (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Resets VmHWM to the current RSS (Linux: `5` written to `clear_refs`).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    common::baseline::Baseline::measure();
    let root = tempfile::tempdir().unwrap();
    let mut listed = debian_export(root.path());
    let export = web::Data::new(Export {
        root: root.path().to_path_buf(),
        requests: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let base = runtime.block_on(async {
        let data = export.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/{path:.*}", web::get().to(serve))
        })
        .workers(2)
        .bind("127.0.0.1:0")
        .unwrap();
        let address = server.addrs()[0];
        tokio::spawn(server.run());
        url::Url::parse(&format!("http://{address}/")).unwrap()
    });
    let settings = |source: &str| SyncSettings {
        sources: SourceSelection::parse(source).unwrap(),
        osv_base: base.clone(),
        ..SyncSettings::default()
    };
    let mut first_db = true;
    for db in BenchDb::all() {
        if !first_db {
            // The same upstream for both backends.
            listed = debian_export(root.path());
        }
        first_db = false;
        let pool = store::connect(&db.url, 4).unwrap();
        store::migrate(&pool).unwrap();
        let syncer = Syncer::new(pool, settings("osv:Debian"), None).unwrap();
        let debian = [SourceName::Osv("Debian".into())];
        for (label, changed) in [("first sync", None), ("incremental, 50 changed", Some(50))] {
            if let Some(n) = changed {
                change(root.path(), &mut listed, n);
            }
            export.requests.store(0, Ordering::Relaxed);
            let start = Instant::now();
            let report = runtime.block_on(syncer.sync(&debian, None)).remove(0);
            let seconds = start.elapsed().as_secs_f64();
            assert!(report.error.is_none(), "{report:?}");
            println!(
                "{}: {label}: {:.2} s, {} requests, {} records, {} changed",
                db.label,
                seconds,
                export.requests.load(Ordering::Relaxed),
                report.records,
                report.changed
            );
        }
    }

    let megabytes: u64 = env_or("CROWSNEST_BENCH_SYNC_ZIP_MB", 1024);
    if megabytes == 0 {
        return;
    }
    let start = Instant::now();
    let records = big_export(root.path(), megabytes);
    let size = std::fs::metadata(root.path().join("Big/all.zip"))
        .unwrap()
        .len();
    println!(
        "built a {:.0} MiB zip of {records} records in {:.1} s",
        size as f64 / 1048576.0,
        start.elapsed().as_secs_f64()
    );
    let db = BenchDb::sqlite();
    let pool = store::connect(&db.url, 4).unwrap();
    store::migrate(&pool).unwrap();
    let syncer = Syncer::new(pool, settings("osv:Big"), None).unwrap();
    reset_peak_rss();
    let before = peak_rss_mib();
    let start = Instant::now();
    let report = runtime
        .block_on(syncer.sync(&[SourceName::Osv("Big".into())], None))
        .remove(0);
    assert!(report.error.is_none(), "{report:?}");
    println!(
        "{}: first sync of the {:.0} MiB zip: {:.1} s, {} records; peak RSS {:.0} MiB (RSS before {:.0} MiB)",
        db.label,
        size as f64 / 1048576.0,
        start.elapsed().as_secs_f64(),
        report.records,
        peak_rss_mib(),
        before
    );
}
