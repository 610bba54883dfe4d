//! Throughput and memory of `read_layer` against a plain decode of the same blob.
//!
//! ```sh
//! cargo bench --bench layers [-- uncompressed MB, default 100]
//! ```
//! Generates a layer of realistic shape (directories, many small and some large files of
//! compressible text, a dpkg status file, an os-release symlink) as gzip and zstd blobs in the
//! temp directory, then times, best of three:
//! - a plain `MultiGzDecoder` / zstd decode to a sink,
//! - the same plus SHA-256 of the compressed bytes (the work `read_layer` cannot avoid),
//! - `read_layer` keeping two files,
//!
//! and reports the peak RSS (`VmHWM`, reset before each run through `/proc/self/clear_refs`).

mod common;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crowsnest::scanner::layers::{Compression, Limits, merge, read_layer};
use sha2::{Digest, Sha256};

type AnyError = Box<dyn std::error::Error>;

fn main() -> Result<(), AnyError> {
    // Printed first, so that every figure below can be read against this machine's speed.
    common::baseline::Baseline::measure();
    let megabytes: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse())
        .transpose()?
        .unwrap_or(100);
    let dir = std::env::temp_dir().join(format!("layer-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = run(&dir, megabytes);
    std::fs::remove_dir_all(&dir)?;
    result
}

fn run(dir: &Path, megabytes: u64) -> Result<(), AnyError> {
    let gz_path = dir.join("layer.tar.gz");
    let zst_path = dir.join("layer.tar.zst");
    let started = Instant::now();
    let (tar_bytes, entries) = generate(megabytes * 1_000_000, &gz_path, &zst_path)?;
    println!(
        "generated {entries} entries, {:.1} MB tar in {:.1?}: gzip {:.1} MB, zstd {:.1} MB",
        mb(tar_bytes),
        started.elapsed(),
        mb(std::fs::metadata(&gz_path)?.len()),
        mb(std::fs::metadata(&zst_path)?.len()),
    );
    println!("peak RSS so far (generation): {} kB", vm("VmHWM")?);
    println!();
    println!(
        "{:<34} {:>9} {:>14} {:>13}",
        "run (best of 3)", "time", "MB/s (tar)", "peak RSS kB"
    );

    for (path, compression) in [
        (&gz_path, Compression::Gzip),
        (&zst_path, Compression::Zstd),
    ] {
        let digest = file_digest(path)?;
        measure(&format!("{compression}: plain decode"), tar_bytes, || {
            let mut decoder = decoder(path, compression, false)?;
            io::copy(&mut decoder, &mut io::sink())?;
            Ok(())
        })?;
        measure(
            &format!("{compression}: decode + sha256"),
            tar_bytes,
            || {
                let mut decoder = decoder(path, compression, true)?;
                io::copy(&mut decoder, &mut io::sink())?;
                Ok(())
            },
        )?;
        measure(&format!("{compression}: read_layer"), tar_bytes, || {
            let required = |path: &str| path == "var/lib/dpkg/status" || path == "etc/os-release";
            let reader = BufReader::new(File::open(path)?);
            let content = read_layer(reader, &digest, compression, &required, &Limits::default())?;
            let files = merge(std::slice::from_ref(&content), &required);
            assert_eq!(files.len(), 2, "{files:?}");
            Ok(())
        })?;
    }
    Ok(())
}

fn measure(
    what: &str,
    tar_bytes: u64,
    mut run: impl FnMut() -> Result<(), AnyError>,
) -> Result<(), AnyError> {
    let mut best = Duration::MAX;
    let mut peak = 0;
    for _ in 0..3 {
        // reset the peak RSS (Linux >= 4.0)
        std::fs::write("/proc/self/clear_refs", "5")?;
        let started = Instant::now();
        run()?;
        best = best.min(started.elapsed());
        peak = peak.max(vm("VmHWM")?);
    }
    println!(
        "{what:<34} {:>8.3}s {:>14.1} {peak:>13}",
        best.as_secs_f64(),
        mb(tar_bytes) / best.as_secs_f64(),
    );
    Ok(())
}

fn decoder(path: &Path, compression: Compression, hash: bool) -> Result<Box<dyn Read>, AnyError> {
    let file = Hashing {
        inner: File::open(path)?,
        hasher: hash.then(Sha256::new),
    };
    Ok(match compression {
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(file)?),
        Compression::None => Box::new(BufReader::new(file)),
    })
}

struct Hashing<R> {
    inner: R,
    hasher: Option<Sha256>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(hasher) = &mut self.hasher {
            hasher.update(&buf[..n]);
        }
        Ok(n)
    }
}

fn file_digest(path: &PathBuf) -> Result<String, AnyError> {
    let mut reader = Hashing {
        inner: File::open(path)?,
        hasher: Some(Sha256::new()),
    };
    io::copy(&mut reader, &mut io::sink())?;
    let hasher = reader.hasher.ok_or("no hasher")?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// Writes the same tar through gzip (level 6, the usual) and zstd (level 3) at once.
fn generate(target: u64, gz_path: &Path, zst_path: &Path) -> Result<(u64, u64), AnyError> {
    let gz = flate2::write::GzEncoder::new(
        BufWriter::new(File::create(gz_path)?),
        flate2::Compression::default(),
    );
    let zst = zstd::stream::write::Encoder::new(BufWriter::new(File::create(zst_path)?), 3)?;
    let mut builder = tar::Builder::new(Tee {
        a: gz,
        b: zst,
        written: 0,
    });
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut entries = 0u64;

    let status: String = (0..2000)
        .map(|i| format!("Package: pkg{i}\nStatus: install ok installed\nVersion: 1.{i}-1\n\n"))
        .collect();
    append_file(&mut builder, "var/lib/dpkg/status", status.as_bytes())?;
    append_symlink(&mut builder, "etc/os-release", "../usr/lib/os-release")?;
    append_file(
        &mut builder,
        "usr/lib/os-release",
        b"ID=debian\nVERSION_ID=\"12\"\n",
    )?;
    entries += 3;

    let mut content = Vec::new();
    let mut dir = 0;
    while builder.get_ref().written < target {
        if entries.is_multiple_of(50) {
            dir += 1;
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_size(0);
            builder.append_data(&mut header, format!("usr/share/d{dir}/"), io::empty())?;
            entries += 1;
        }
        // mostly small files, some large ones
        let size = if next(&mut rng).is_multiple_of(20) {
            200_000 + next(&mut rng) % 800_000
        } else {
            500 + next(&mut rng) % 20_000
        };
        words(&mut rng, size as usize, &mut content);
        append_file(
            &mut builder,
            &format!("usr/share/d{dir}/file{entries}.txt"),
            &content,
        )?;
        entries += 1;
    }
    let tee = builder.into_inner()?;
    let written = tee.written;
    tee.a.finish()?.flush()?;
    tee.b.finish()?.flush()?;
    Ok((written, entries))
}

fn append_file<W: Write>(builder: &mut tar::Builder<W>, path: &str, data: &[u8]) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o644);
    header.set_size(data.len() as u64);
    builder.append_data(&mut header, path, data)
}

fn append_symlink<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &str,
    target: &str,
) -> io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Symlink);
    header.set_mode(0o777);
    header.set_size(0);
    builder.append_link(&mut header, path, target)
}

/// Text from a small vocabulary: compresses about 3:1 with gzip, like real file systems.
fn words(rng: &mut u64, size: usize, out: &mut Vec<u8>) {
    const WORDS: [&str; 16] = [
        "the", "layer", "package", "version", "lib", "usr", "share", "config", "debian", "status",
        "install", "0x7f3a", "error", "=", "\n", "/",
    ];
    out.clear();
    while out.len() < size {
        let r = next(rng);
        out.extend_from_slice(WORDS[(r % 16) as usize].as_bytes());
        out.extend_from_slice(&[
            b"abcdefghijklmnopqrstuvwxyz0123456789"[(r >> 8) as usize % 36],
            b' ',
        ]);
    }
    out.truncate(size);
}

fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

struct Tee<A, B> {
    a: A,
    b: B,
    written: u64,
}

impl<A: Write, B: Write> Write for Tee<A, B> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.a.write_all(buf)?;
        self.b.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.a.flush()?;
        self.b.flush()
    }
}

fn vm(field: &str) -> Result<u64, AnyError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .ok_or_else(|| format!("{field} not in /proc/self/status"))?;
    Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}
