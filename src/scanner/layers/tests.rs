//! Layers are built in the tests with `tar::Builder` (with hand-written header names where the
//! builder would refuse them) and the flate2 / zstd encoders.

use std::cell::Cell;
use std::io::{self, Read, Seek, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use sha2::{Digest, Sha256, Sha512};

use super::*;
use crate::scanner::files::FileSet;

// ---------------------------------------------------------------------------------------------
// helpers

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A real file from `shared/fixtures/pkgdb` (next to the crate), or `fallback` when the fixtures
/// are not there.
fn fixture(relative: &str, fallback: &[u8]) -> Vec<u8> {
    let path = format!(
        "{}/../shared/fixtures/pkgdb/{relative}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(path).unwrap_or_else(|_| fallback.to_vec())
}

fn dpkg_status() -> Vec<u8> {
    fixture(
        "debian/trivy-dpkg_apt/var/lib/dpkg/status",
        b"Package: apt\nStatus: install ok installed\nVersion: 1.6.3ubuntu0.1\n\n",
    )
}

fn os_release() -> Vec<u8> {
    fixture(
        "debian/os-release/debian-12/etc/os-release",
        b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
    )
}

#[derive(Clone, Copy)]
enum Spec<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Fifo(&'a str),
}

use Spec::{Dir, Fifo, File, Hardlink, Symlink};

fn put(field: &mut [u8], value: &str) {
    assert!(
        value.len() <= field.len(),
        "name too long for a plain header"
    );
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
}

/// A GNU header with the name written as is (the builder refuses `..` and absolute names).
fn header(name: &str, entry_type: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(entry_type);
    header.set_size(size);
    header.set_mode(if entry_type.is_dir() { 0o755 } else { 0o644 });
    header.set_mtime(1_700_000_000);
    let gnu = header.as_gnu_mut().expect("gnu header");
    put(&mut gnu.name, name);
    if let Some(link) = link {
        put(&mut gnu.linkname, link);
    }
    header.set_cksum();
    header
}

fn append(builder: &mut tar::Builder<Vec<u8>>, spec: Spec<'_>) {
    let (header, data): (tar::Header, &[u8]) = match spec {
        File(name, data) => (
            header(name, tar::EntryType::Regular, data.len() as u64, None),
            data,
        ),
        Dir(name) => (header(name, tar::EntryType::Directory, 0, None), b""),
        Symlink(name, target) => (header(name, tar::EntryType::Symlink, 0, Some(target)), b""),
        Hardlink(name, target) => (header(name, tar::EntryType::Link, 0, Some(target)), b""),
        Fifo(name) => (header(name, tar::EntryType::Fifo, 0, None), b""),
    };
    builder.append(&header, data).expect("append");
}

/// A complete tar (with the two end-of-archive blocks).
fn tar_of(specs: &[Spec<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for spec in specs {
        append(&mut builder, *spec);
    }
    builder.into_inner().expect("finish tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).expect("zstd")
}

fn only(paths: &'static [&'static str]) -> impl Fn(&str) -> bool {
    move |path| paths.contains(&path)
}

fn read_with(
    blob: &[u8],
    compression: Compression,
    required: &dyn Fn(&str) -> bool,
    limits: &Limits,
) -> Result<LayerContent, LayerError> {
    read_layer(blob, &sha256(blob), compression, required, limits)
}

/// Reads a gzip layer with its correct digest and default limits.
fn read_gz(blob: &[u8], required: &dyn Fn(&str) -> bool) -> Result<LayerContent, LayerError> {
    read_with(blob, Compression::Gzip, required, &Limits::default())
}

fn layer(specs: &[Spec<'_>], required: &dyn Fn(&str) -> bool) -> LayerContent {
    read_gz(&gzip(&tar_of(specs)), required).expect("valid layer")
}

fn text<'a>(files: &'a FileSet, path: &str) -> Option<&'a str> {
    files.get(path).map(|file| {
        std::str::from_utf8(file.content.as_memory().expect("in memory")).expect("utf-8")
    })
}

fn file<'a>(content: &'a LayerContent, path: &str) -> Option<&'a [u8]> {
    content
        .files
        .iter()
        .find(|(p, _)| p == path)
        .and_then(|(_, content)| content.as_memory())
}

/// Small deterministic PRNG (xorshift64*), so the tests need no extra crates.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// media types and compression

#[test]
fn media_types_map_to_compressions() {
    let cases = [
        ("application/vnd.oci.image.layer.v1.tar", Compression::None),
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::Zstd,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            Compression::None,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
            Compression::Zstd,
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar",
            Compression::None,
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar.zstd",
            Compression::Zstd,
        ),
        (
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            Compression::Gzip,
        ),
        (
            " Application/VND.OCI.image.layer.v1.tar+gzip; foo=bar",
            Compression::Gzip,
        ),
    ];
    for (media_type, expected) in cases {
        assert_eq!(
            Compression::from_media_type(media_type).expect(media_type),
            expected,
            "{media_type}"
        );
    }
    for bad in [
        "",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
        "application/vnd.oci.image.layer.v1.tar+bzip2",
        "application/octet-stream",
    ] {
        let err = Compression::from_media_type(bad).expect_err(bad);
        assert_eq!(err.code(), "UnsupportedMediaType");
        assert!(err.to_string().contains("unsupported layer media type"));
    }
}

#[test]
fn gzip_zstd_and_plain_layers_read_the_same() {
    let status = dpkg_status();
    let tar = tar_of(&[
        Dir("var/"),
        Dir("var/lib/"),
        Dir("var/lib/dpkg/"),
        File("var/lib/dpkg/status", &status),
        File("usr/bin/unrelated", &[7u8; 3000]),
    ]);
    let required = only(&["var/lib/dpkg/status"]);
    for (blob, declared) in [
        (gzip(&tar), Compression::Gzip),
        (zstd(&tar), Compression::Zstd),
        (tar.clone(), Compression::None),
    ] {
        let content = read_with(&blob, declared, &required, &Limits::default()).expect("read");
        assert_eq!(content.compression, declared);
        assert_eq!(content.digest, sha256(&blob));
        assert_eq!(content.files.len(), 1);
        assert_eq!(
            file(&content, "var/lib/dpkg/status"),
            Some(status.as_slice())
        );
        assert_eq!(content.dirs, ["var", "var/lib", "var/lib/dpkg"]);
        assert_eq!(content.entries, 5);
        assert_eq!(content.uncompressed_bytes, tar.len() as u64);
        assert_eq!(content.compressed_bytes, blob.len() as u64);
        assert_eq!(
            content.other_paths,
            [paths::fingerprint("usr/bin/unrelated")]
        );
    }
}

#[test]
fn compression_is_sniffed_not_taken_from_the_media_type() {
    let tar = tar_of(&[File("etc/os-release", b"ID=debian\n")]);
    let required = only(&["etc/os-release"]);
    let limits = Limits::default();
    // labelled gzip, really a plain tar
    let content = read_with(&tar, Compression::Gzip, &required, &limits).expect("plain as gzip");
    assert_eq!(content.compression, Compression::None);
    assert_eq!(file(&content, "etc/os-release"), Some(&b"ID=debian\n"[..]));
    // labelled uncompressed, really zstd; labelled zstd, really gzip
    let content =
        read_with(&zstd(&tar), Compression::None, &required, &limits).expect("zstd as tar");
    assert_eq!(content.compression, Compression::Zstd);
    let content =
        read_with(&gzip(&tar), Compression::Zstd, &required, &limits).expect("gzip as zstd");
    assert_eq!(content.compression, Compression::Gzip);
    // garbage labelled gzip: a corrupt layer whose message says what happened
    let garbage = vec![0x55u8; 4096];
    let err = read_with(&garbage, Compression::Gzip, &required, &limits).expect_err("garbage");
    assert_eq!(err.code(), "LayerCorrupt", "{err}");
    assert!(err.to_string().contains("media type says gzip"), "{err}");
    assert_eq!(
        Compression::sniff(&[0x50, 0x2a, 0x4d, 0x18]),
        Some(Compression::Zstd)
    );
    assert_eq!(Compression::sniff(&[0x1f]), None);
}

#[test]
fn multi_member_gzip_is_one_stream() {
    let status = dpkg_status();
    let tar = tar_of(&[
        File("etc/os-release", &os_release()),
        File("var/lib/dpkg/status", &status),
    ]);
    // cut the tar at arbitrary points (not block boundaries) into three gzip members
    let (a, rest) = tar.split_at(700);
    let (b, c) = rest.split_at(1300);
    let blob = [gzip(a), gzip(b), gzip(c)].concat();
    let content = read_gz(&blob, &only(&["var/lib/dpkg/status", "etc/os-release"])).expect("read");
    assert_eq!(
        file(&content, "var/lib/dpkg/status"),
        Some(status.as_slice())
    );
    assert_eq!(content.uncompressed_bytes, tar.len() as u64);
    assert_eq!(content.compressed_bytes, blob.len() as u64);

    // zstd: several frames too
    let blob = [zstd(a), zstd(b), zstd(c)].concat();
    let content = read_with(
        &blob,
        Compression::Zstd,
        &only(&["var/lib/dpkg/status"]),
        &Limits::default(),
    )
    .expect("multi-frame zstd");
    assert_eq!(
        file(&content, "var/lib/dpkg/status"),
        Some(status.as_slice())
    );
}

#[test]
fn trailing_garbage_after_gzip_is_corrupt() {
    let mut blob = gzip(&tar_of(&[File("a", b"a")]));
    blob.extend_from_slice(b"this is not a gzip member");
    let err = read_gz(&blob, &only(&[])).expect_err("trailing garbage");
    assert_eq!(err.code(), "LayerCorrupt", "{err}");
}

#[test]
fn empty_blob_is_an_empty_layer() {
    let content = read_gz(b"", &only(&[])).expect("empty");
    assert_eq!(content.entries, 0);
    assert_eq!(
        content.digest,
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    // the "empty layer" docker uses: gzip of 1024 zero bytes
    let content = read_gz(&gzip(&[0u8; 1024]), &only(&[])).expect("empty tar");
    assert_eq!(content.entries, 0);
}

// ---------------------------------------------------------------------------------------------
// whiteouts and merge

#[test]
fn whiteouts_across_three_layers() {
    // A file whited out in layer 2, a directory made opaque in layer 3, the package database
    // replaced in between: the shape of the whiteout test image pushed to a real registry.
    let status_l1 = dpkg_status();
    let status_l2 =
        b"Package: base-files\nStatus: install ok installed\nVersion: 12.4\n\n".to_vec();
    let required = |path: &str| {
        path == "var/lib/dpkg/status" || path.starts_with("opt/app/") || path.ends_with(".sh")
    };
    let l1 = layer(
        &[
            Dir("./"),
            File("etc/os-release", &os_release()),
            File("opt/app/a.txt", b"a\n"),
            File("opt/app/b.txt", b"b\n"),
            File("usr/local/bin/leftover.sh", b"#!/bin/sh\necho leftover\n"),
            File("var/lib/dpkg/status", &status_l1),
        ],
        &required,
    );
    let l2 = layer(
        &[
            File("usr/local/bin/.wh.leftover.sh", b""),
            File("var/lib/dpkg/status", &status_l2),
        ],
        &required,
    );
    let l3 = layer(
        &[
            Dir("opt/"),
            Dir("opt/app/"),
            File("opt/app/.wh..wh..opq", b""),
            File("opt/app/c.txt", b"c\n"),
        ],
        &required,
    );
    assert_eq!(l2.whiteouts, ["usr/local/bin/leftover.sh"]);
    assert_eq!(l3.opaque_dirs, ["opt/app"]);
    assert!(l3.files.iter().all(|(path, _)| !path.contains(".wh.")));

    let files = merge(&[l1.clone(), l2.clone(), l3.clone()], &required);
    let paths: Vec<&str> = files.iter().map(|(path, _)| path).collect();
    assert_eq!(paths, ["opt/app/c.txt", "var/lib/dpkg/status"]);
    assert_eq!(
        files
            .get("var/lib/dpkg/status")
            .and_then(|f| f.content.as_memory()),
        Some(&status_l2[..])
    );
    assert_eq!(
        files
            .get("var/lib/dpkg/status")
            .map(|f| f.layer_digest.as_str()),
        Some(l2.digest.as_str())
    );
    assert_eq!(
        files.get("opt/app/c.txt").map(|f| f.layer_digest.as_str()),
        Some(l3.digest.as_str())
    );

    // after the first two layers only: a.txt and b.txt are still there, leftover.sh is not
    let files = merge(&[l1, l2], &required);
    let paths: Vec<&str> = files.iter().map(|(path, _)| path).collect();
    assert_eq!(
        paths,
        ["opt/app/a.txt", "opt/app/b.txt", "var/lib/dpkg/status"]
    );
}

#[test]
fn opaque_dir_hides_only_lower_layers_and_only_below_it() {
    let required = |path: &str| path.starts_with("opt/");
    let l1 = layer(
        &[
            File("opt/app/a.txt", b"a"),
            File("opt/app/sub/b.txt", b"b"),
            File("opt/app.txt", b"sibling"),
            File("opt/other/o.txt", b"o"),
        ],
        &required,
    );
    let l2 = layer(
        &[
            File("opt/app/.wh..wh..opq", b""),
            File("opt/app/new.txt", b"new"),
        ],
        &required,
    );
    let files = merge(&[l1, l2], &required);
    let paths: Vec<&str> = files.iter().map(|(path, _)| path).collect();
    assert_eq!(paths, ["opt/app.txt", "opt/app/new.txt", "opt/other/o.txt"]);

    // an opaque root hides every lower file
    let required = |_: &str| true;
    let l1 = layer(&[File("etc/a", b"a"), File("b", b"b")], &required);
    let l2 = layer(&[File(".wh..wh..opq", b""), File("c", b"c")], &required);
    assert_eq!(l2.opaque_dirs, [""]);
    let files = merge(&[l1, l2], &required);
    let paths: Vec<&str> = files.iter().map(|(path, _)| path).collect();
    assert_eq!(paths, ["c"]);
}

#[test]
fn whiteout_then_recreate() {
    let required = |path: &str| path.starts_with("etc/");
    let l1 = layer(&[File("etc/x", b"one"), File("etc/y", b"y")], &required);
    let l2 = layer(&[File("etc/.wh.x", b"")], &required);
    let l3 = layer(&[File("etc/x", b"three")], &required);
    let files = merge(&[l1.clone(), l2.clone(), l3.clone()], &required);
    assert_eq!(text(&files, "etc/x"), Some("three"));
    assert_eq!(
        files.get("etc/x").map(|f| f.layer_digest.as_str()),
        Some(l3.digest.as_str())
    );
    assert_eq!(text(&files, "etc/y"), Some("y"));
    let files = merge(&[l1.clone(), l2], &required);
    assert_eq!(text(&files, "etc/x"), None);

    // a whiteout of a directory removes everything below it
    let l2 = layer(&[File(".wh.etc", b"")], &required);
    assert!(merge(&[l1.clone(), l2.clone()], &required).is_empty());
    let files = merge(&[l1, l2, l3], &required);
    let paths: Vec<&str> = files.iter().map(|(path, _)| path).collect();
    assert_eq!(paths, ["etc/x"]);
}

#[test]
fn whiteout_does_not_hide_its_own_layer() {
    let required = |_: &str| true;
    let l1 = layer(&[File("a/x", b"old")], &required);
    let l2 = layer(
        &[
            File("a/.wh.x", b""),
            File("a/x", b"new"),
            File("a/.wh..wh..opq", b""),
        ],
        &required,
    );
    let files = merge(&[l1, l2], &required);
    assert_eq!(text(&files, "a/x"), Some("new"));
}

#[test]
fn later_layers_replace_files_and_a_layer_replaces_its_own_duplicates() {
    let required = only(&["etc/os-release"]);
    let l1 = layer(&[File("etc/os-release", b"ID=one")], &required);
    let l2 = layer(
        &[
            File("etc/os-release", b"ID=two"),
            File("etc/os-release", b"ID=three"),
        ],
        &required,
    );
    assert_eq!(l2.files.len(), 1);
    let files = merge(&[l1, l2.clone()], &required);
    assert_eq!(text(&files, "etc/os-release"), Some("ID=three"));
    // a layer that has the file and then a fifo at the same path: the fifo wins
    let l3 = layer(
        &[File("etc/os-release", b"ID=four"), Fifo("etc/os-release")],
        &required,
    );
    assert!(l3.files.is_empty());
    assert!(merge(&[l2, l3], &required).is_empty());
}

#[test]
fn an_unkept_file_in_a_later_layer_replaces_a_kept_lower_one() {
    // The lower layer keeps usr/lib/os-release because its own symlink points there; the upper
    // one rewrites it without the symlink, so it is not kept. The stale lower copy must not be
    // reported through etc/os-release.
    let required = only(&["etc/os-release"]);
    let l1 = layer(
        &[
            Symlink("etc/os-release", "../usr/lib/os-release"),
            File("usr/lib/os-release", b"VERSION_ID=12.1"),
        ],
        &required,
    );
    let l2 = layer(&[File("usr/lib/os-release", b"VERSION_ID=12.9")], &required);
    assert!(l2.files.is_empty());
    assert_eq!(
        text(
            &merge(std::slice::from_ref(&l1), &required),
            "etc/os-release"
        ),
        Some("VERSION_ID=12.1")
    );
    assert!(merge(&[l1.clone(), l2], &required).is_empty());
    // when the analyzers ask for both names, the new content is found
    let both = only(&["etc/os-release", "usr/lib/os-release"]);
    let l2 = layer(&[File("usr/lib/os-release", b"VERSION_ID=12.9")], &both);
    let files = merge(&[l1, l2], &both);
    assert_eq!(text(&files, "etc/os-release"), Some("VERSION_ID=12.9"));
    assert_eq!(text(&files, "usr/lib/os-release"), Some("VERSION_ID=12.9"));
}

#[test]
fn a_directory_replaced_by_a_symlink_hides_its_lower_files() {
    let required = only(&["var/lib/dpkg/status"]);
    let l1 = layer(&[File("var/lib/dpkg/status", b"Package: a\n")], &required);
    let l2 = layer(&[Symlink("var/lib/dpkg", "/nonexistent")], &required);
    assert!(merge(&[l1.clone(), l2.clone()], &required).is_empty());
    // and a symlink replaced by a directory no longer redirects
    let required = only(&["lib/x"]);
    let l1 = layer(
        &[Symlink("lib", "usr/lib"), File("usr/lib/x", b"usr")],
        &required,
    );
    assert_eq!(
        text(&merge(std::slice::from_ref(&l1), &required), "lib/x"),
        Some("usr")
    );
    let l2 = layer(&[Dir("lib/")], &required);
    assert!(merge(&[l1, l2], &required).is_empty());
}

#[test]
fn merged_usr_does_not_report_files_twice() {
    // `lib -> usr/lib`: a pattern analyzer (Python METADATA) must see each file once, under its
    // physical path
    let required = |path: &str| path.ends_with(".dist-info/METADATA");
    let l1 = layer(
        &[
            Symlink("lib", "usr/lib"),
            File(
                "usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA",
                b"Name: six",
            ),
        ],
        &required,
    );
    let files = merge(&[l1], &required);
    let paths: Vec<&str> = files.iter().map(|(path, _)| path).collect();
    assert_eq!(
        paths,
        ["usr/lib/python3/dist-packages/six-1.16.0.dist-info/METADATA"]
    );
}

// ---------------------------------------------------------------------------------------------
// links

#[test]
fn symlinked_os_release_relative_target() {
    let content = os_release();
    let required = only(&["etc/os-release"]);
    let l1 = layer(
        &[
            Dir("etc/"),
            Symlink("etc/os-release", "../usr/lib/os-release"),
            Dir("usr/"),
            Dir("usr/lib/"),
            File("usr/lib/os-release", &content),
        ],
        &required,
    );
    // kept because the symlink before it in the same layer leads to a required path
    assert_eq!(file(&l1, "usr/lib/os-release"), Some(content.as_slice()));
    assert_eq!(
        l1.links,
        [(
            "etc/os-release".to_owned(),
            "../usr/lib/os-release".to_owned(),
            LinkKind::Symlink
        )]
    );
    let files = merge(std::slice::from_ref(&l1), &required);
    assert_eq!(files.len(), 1, "only what was asked for: {files:?}");
    assert_eq!(
        files
            .get("etc/os-release")
            .and_then(|f| f.content.as_memory()),
        Some(&content[..])
    );
    assert_eq!(
        files.get("etc/os-release").map(|f| f.layer_digest.as_str()),
        Some(l1.digest.as_str())
    );
}

#[test]
fn symlinked_os_release_absolute_target_and_chains() {
    let required = only(&["etc/os-release"]);
    let l1 = layer(
        &[
            Symlink("etc/os-release", "/usr/lib/os-release"),
            Symlink("usr/lib/os-release", "os-release.d/current"),
            File("usr/lib/os-release.d/current", b"ID=alpine"),
        ],
        &required,
    );
    let files = merge(&[l1], &required);
    assert_eq!(text(&files, "etc/os-release"), Some("ID=alpine"));
}

#[test]
fn symlink_to_a_required_file_in_a_lower_layer() {
    let required = only(&["etc/os-release", "usr/lib/os-release"]);
    let l1 = layer(&[File("usr/lib/os-release", b"ID=ubuntu")], &required);
    let l2 = layer(
        &[Symlink("etc/os-release", "../usr/lib/os-release")],
        &required,
    );
    let files = merge(&[l1.clone(), l2], &required);
    assert_eq!(text(&files, "etc/os-release"), Some("ID=ubuntu"));
    // the content comes from the layer that wrote the file
    assert_eq!(
        files.get("etc/os-release").map(|f| f.layer_digest.as_str()),
        Some(l1.digest.as_str())
    );
}

#[test]
fn symlink_loops_and_escapes_are_not_resolved() {
    let required = |path: &str| path != "etc/passwd";
    let l1 = layer(
        &[
            File("etc/passwd", b"root:x:0:0"),
            Symlink("a", "b"),
            Symlink("b", "a"),
            Symlink("self", "self"),
            Symlink("deep/escape", "../../../etc/passwd"),
            Symlink("abs-escape", "/../etc/passwd"),
            Symlink("empty", ""),
            Symlink("etc/os-release", "../usr/lib/os-release"),
        ],
        &required,
    );
    let files = merge(&[l1], &required);
    assert!(files.is_empty(), "{files:?}");

    // a long chain within the hop limit resolves, a longer one does not
    let required = only(&["start"]);
    let names: Vec<String> = (0..45).map(|i| format!("l{i}")).collect();
    let mut specs = vec![File("end", b"end")];
    specs.push(Symlink("start", &names[0]));
    for pair in names.windows(2) {
        specs.push(Symlink(&pair[0], &pair[1]));
    }
    specs.push(Symlink(&names[44], "end"));
    let short = [&specs[..2], &[Symlink(&names[0], "end")]].concat();
    let files = merge(&[layer(&short, &|_: &str| true)], &required);
    assert_eq!(text(&files, "start"), Some("end"));
    let files = merge(&[layer(&specs, &|_: &str| true)], &required);
    assert!(files.is_empty());
}

#[test]
fn files_below_a_symlinked_directory() {
    // apk-tools 3 moved the database: lib/apk/db -> ../../usr/lib/apk/db
    let installed = fixture(
        "alpine/apk-tools-alpine-3.21/lib/apk/db/installed",
        b"P:musl\nV:1.2.4-r2\n\n",
    );
    let required = only(&["lib/apk/db/installed"]);
    let l1 = layer(
        &[
            Dir("lib/"),
            Dir("lib/apk/"),
            Symlink("lib/apk/db", "../../usr/lib/apk/db"),
            Dir("usr/lib/apk/db/"),
            File("usr/lib/apk/db/installed", &installed),
            File("usr/lib/apk/db/lock", b""),
        ],
        &required,
    );
    assert_eq!(
        l1.files.len(),
        1,
        "only the file reachable under a required path"
    );
    let files = merge(&[l1], &required);
    assert_eq!(files.len(), 1);
    assert_eq!(
        files
            .get("lib/apk/db/installed")
            .and_then(|f| f.content.as_memory()),
        Some(&installed[..])
    );
}

#[test]
fn hard_links() {
    let required = only(&["etc/passwd", "etc/passwd-", "etc/shadow-"]);
    let l1 = layer(
        &[
            File("etc/passwd", b"root:x:0:0"),
            Hardlink("etc/passwd-", "etc/passwd"),
            File("etc/shadow", b"not kept"),
            Hardlink("etc/shadow-", "/etc/shadow"),
        ],
        &required,
    );
    assert!(
        l1.links
            .iter()
            .any(|(path, target, kind)| path == "etc/passwd-"
                && target == "etc/passwd"
                && *kind == LinkKind::Hardlink)
    );
    let files = merge(std::slice::from_ref(&l1), &required);
    assert_eq!(text(&files, "etc/passwd-"), Some("root:x:0:0"));
    // its target was not kept: not resolvable, and absent rather than wrong
    assert_eq!(text(&files, "etc/shadow-"), None);

    // a hardlink to a file of a lower layer, resolved when its layer is applied
    let l2 = layer(&[Hardlink("etc/passwd-", "etc/passwd")], &required);
    let l3 = layer(&[File("etc/passwd", b"changed")], &required);
    let files = merge(&[l1, l2.clone(), l3], &required);
    assert_eq!(text(&files, "etc/passwd"), Some("changed"));
    assert_eq!(text(&files, "etc/passwd-"), Some("root:x:0:0"));
    assert_eq!(
        files.get("etc/passwd-").map(|f| f.layer_digest.as_str()),
        Some(l2.digest.as_str())
    );
}

// ---------------------------------------------------------------------------------------------
// paths

#[test]
fn path_traversal_is_rejected() {
    for specs in [
        vec![File("../../etc/passwd", b"x")],
        vec![File("usr/../../etc/passwd", b"x")],
        vec![Dir("/../")],
        vec![Hardlink("etc/x", "../../etc/passwd")],
        vec![File("etc/.wh...", b"")],
    ] {
        let blob = gzip(&tar_of(&specs));
        let err = read_gz(&blob, &|_: &str| true).expect_err("traversal");
        assert_eq!(err.code(), "PathTraversal", "{err}");
        assert!(err.to_string().contains("escapes the image root"));
    }
    // `..` that stays inside the root is resolved, like Docker's filepath.Clean
    let content = layer(&[File("usr/../etc/x", b"x")], &only(&["etc/x"]));
    assert_eq!(file(&content, "etc/x"), Some(&b"x"[..]));
}

#[test]
fn paths_are_normalised() {
    let required = |_: &str| true;
    let content = layer(
        &[
            Dir("./"),
            Dir("/"),
            Dir("."),
            File("/etc/absolute", b"1"),
            File("./etc/dotted", b"2"),
            File("etc//double", b"3"),
            File("etc/./x/../single", b"4"),
            File("///etc/many", b"5"),
            Dir("./etc/"),
            Symlink("./etc/link", "/abs/target"),
        ],
        &required,
    );
    let paths: Vec<&str> = content
        .files
        .iter()
        .map(|(path, _)| path.as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "etc/absolute",
            "etc/dotted",
            "etc/double",
            "etc/many",
            "etc/single"
        ]
    );
    assert_eq!(content.dirs, ["etc"]);
    // symlink targets are kept as written
    assert_eq!(content.links[0].1, "/abs/target");
    assert_eq!(content.entries, 10);
}

#[test]
fn long_names_and_pax_paths() {
    let long = format!("usr/lib/python3/dist-packages/{}/METADATA", "x".repeat(180));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, &long, &b"meta"[..])
        .expect("gnu long name");
    // a PAX record overriding the name of the next entry
    let pax_path = format!("opt/{}/package.json", "p".repeat(200));
    let record_body = format!(" path={pax_path}\n");
    let mut length = record_body.len() + 1;
    while format!("{length}{record_body}").len() != length {
        length += 1;
    }
    let record = format!("{length}{record_body}");
    let pax_header = header_for_pax(record.len() as u64);
    builder.append(&pax_header, record.as_bytes()).expect("pax");
    append(&mut builder, File("short-name", b"{}"));
    let tar = builder.into_inner().expect("tar");

    let wanted = [long.clone(), pax_path.clone()];
    let required = move |path: &str| wanted.iter().any(|w| w == path);
    let content = read_gz(&gzip(&tar), &required).expect("read");
    assert_eq!(file(&content, &long), Some(&b"meta"[..]));
    assert_eq!(file(&content, &pax_path), Some(&b"{}"[..]));
}

fn header_for_pax(size: u64) -> tar::Header {
    header("PaxHeaders/x", tar::EntryType::XHeader, size, None)
}

// ---------------------------------------------------------------------------------------------
// digests and truncation

#[test]
fn digest_mismatch() {
    let blob = gzip(&tar_of(&[File("etc/os-release", &os_release())]));
    let required = only(&["etc/os-release"]);
    let limits = Limits::default();

    // a wrong expected digest for a valid blob
    let wrong = sha256(b"something else");
    let err =
        read_layer(&blob[..], &wrong, Compression::Gzip, &required, &limits).expect_err("mismatch");
    assert_eq!(err.code(), "DigestMismatch");
    assert!(err.is_transient());
    match err {
        LayerError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, sha256(&blob));
        }
        other => panic!("unexpected {other}"),
    }

    // one flipped byte anywhere: in the gzip header (still decodes), in the deflate data (decoding
    // fails), in the CRC trailer; always a digest mismatch against the original digest
    for index in [4, blob.len() / 2, blob.len() - 6] {
        let mut flipped = blob.clone();
        flipped[index] ^= 0x01;
        let err = read_layer(
            &flipped[..],
            &sha256(&blob),
            Compression::Gzip,
            &required,
            &limits,
        )
        .expect_err("flipped");
        assert_eq!(err.code(), "DigestMismatch", "byte {index}: {err}");
    }
}

#[test]
fn digests_are_validated_and_sha512_works() {
    let blob = gzip(&tar_of(&[File("a", b"a")]));
    let limits = Limits::default();
    for bad in [
        "",
        "sha256:",
        "md5:abcd",
        "sha256:xyz",
        "sha256",
        &sha256(&blob)[..70],
    ] {
        let err = read_layer(&blob[..], bad, Compression::Gzip, &only(&[]), &limits)
            .expect_err("invalid digest");
        assert_eq!(err.code(), "InvalidDigest", "{bad:?}");
    }
    let upper = sha256(&blob).to_uppercase().replace("SHA256", "sha256");
    let content =
        read_layer(&blob[..], &upper, Compression::Gzip, &only(&[]), &limits).expect("upper");
    assert_eq!(content.digest, sha256(&blob));
    let sha512 = format!("sha512:{}", hex::encode(Sha512::digest(&blob)));
    let content =
        read_layer(&blob[..], &sha512, Compression::Gzip, &only(&[]), &limits).expect("sha512");
    assert_eq!(content.digest, sha512);
}

#[test]
fn truncated_compressed_streams() {
    let status = dpkg_status();
    let tar = tar_of(&[
        File("var/lib/dpkg/status", &status),
        File("usr/share/doc/big", &vec![42u8; 200_000]),
    ]);
    let required = only(&["var/lib/dpkg/status"]);
    let limits = Limits::default();
    for (blob, compression) in [
        (gzip(&tar), Compression::Gzip),
        (zstd(&tar), Compression::Zstd),
    ] {
        let half = &blob[..blob.len() / 2];
        // the blob as published is cut (its digest is that of the cut bytes): the layer is broken
        let err = read_layer(half, &sha256(half), compression, &required, &limits)
            .expect_err("truncated");
        assert_eq!(err.code(), "LayerTruncated", "{compression}: {err}");
        assert!(!err.is_transient());
        assert!(err.to_string().contains("ends early"), "{err}");
        // the download was cut (the digest is that of the whole blob): the bytes are not the layer
        let err = read_layer(half, &sha256(&blob), compression, &required, &limits)
            .expect_err("cut download");
        assert_eq!(err.code(), "DigestMismatch", "{compression}: {err}");
        // cut right after the gzip/zstd header
        let tiny = &blob[..12];
        let err =
            read_layer(tiny, &sha256(tiny), compression, &required, &limits).expect_err("tiny");
        assert_eq!(err.code(), "LayerTruncated", "{compression}: {err}");
    }
}

/// A tar of `specs` (no end-of-archive blocks) and the offsets where each entry's data ends.
fn tar_without_end(specs: &[Spec<'_>]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut data_ends = Vec::new();
    for spec in specs {
        let mut builder = tar::Builder::new(Vec::new());
        append(&mut builder, *spec);
        let one = builder.into_inner().expect("tar");
        let size = match spec {
            File(_, data) => data.len(),
            _ => 0,
        };
        data_ends.push(bytes.len() + 512 + size);
        bytes.extend_from_slice(&one[..one.len() - 1024]);
    }
    (bytes, data_ends)
}

#[test]
fn truncated_tar_inside_a_valid_gzip_stream() {
    let content = vec![b'x'; 1000];
    let (tar, ends) = tar_without_end(&[
        File("etc/os-release", b"ID=debian\n"),
        File("var/lib/dpkg/status", &content),
    ]);
    // the second header says 1000 bytes, only 10 follow
    let cut = &tar[..ends[1] - 990];
    for required in [only(&["var/lib/dpkg/status"]), only(&[])] {
        for blob in [gzip(cut), zstd(cut), cut.to_vec()] {
            let err = read_gz(&blob, &required).expect_err("cut mid-entry");
            assert_eq!(err.code(), "LayerTruncated", "{err}");
        }
    }
    let err = read_gz(&gzip(cut), &only(&["var/lib/dpkg/status"])).expect_err("cut");
    assert!(
        err.to_string()
            .contains("header says 1000 bytes, 10 follow"),
        "{err}"
    );
    // cut inside the next header
    let cut = &tar[..ends[0].next_multiple_of(512) + 100];
    let err = read_gz(&gzip(cut), &only(&[])).expect_err("cut in a header");
    assert_eq!(err.code(), "LayerTruncated", "{err}");
}

#[test]
fn tar_without_end_of_archive_blocks_is_accepted() {
    // old `umoci insert`: no end blocks and no padding after the last entry's data
    let status = dpkg_status();
    assert_ne!(
        status.len() % 512,
        0,
        "the test needs an unpadded last entry"
    );
    let (tar, ends) = tar_without_end(&[
        File("etc/os-release", &os_release()),
        File("var/lib/dpkg/status", &status),
    ]);
    let variants = [
        ("no end blocks, padded", tar.clone()),
        ("no padding (umoci insert)", tar[..ends[1]].to_vec()),
        (
            "part of the padding",
            tar[..(ends[1] + tar.len()) / 2].to_vec(),
        ),
        ("one end block", [&tar[..], &[0u8; 512]].concat()),
    ];
    for (what, tar) in variants {
        for required in [only(&["var/lib/dpkg/status"]), only(&["etc/os-release"])] {
            for blob in [gzip(&tar), zstd(&tar), tar.clone()] {
                let content =
                    read_gz(&blob, &required).unwrap_or_else(|err| panic!("{what}: {err}"));
                assert_eq!(content.entries, 2, "{what}");
                if required("var/lib/dpkg/status") {
                    assert_eq!(
                        file(&content, "var/lib/dpkg/status"),
                        Some(status.as_slice())
                    );
                }
            }
        }
    }
}

/// A real layer written by `umoci insert` 0.4.7 (Debian bookworm's umoci, which has
/// opencontainers/umoci#436): `etc/os-release`, 267 bytes, with neither the padding of its data
/// nor the end-of-archive blocks (779 bytes of tar). GNU tar says "Unexpected EOF in archive".
const UMOCI_INSERT_LAYER: [&str; 6] = [
    "1f8b080000096e8800ffcc8f414bc33014c773cea728efa4079797ae551072501b66616b4bd60a9e4aab610e7529494a",
    "fdf8426532ab789181ffcb23bc5f7e7f9ef60fccb833ab5f74e334394a1011cfa3689c88389d18f139e1f11c797c8171",
    "1412e4212227011e388e96def9c612fc73d7e4a8c3d57f4ea16459ded7d9d54a0a4874bb6d76c122abd872bbebdf021e",
    "0627ad31cf83b1afa7407fa680de49b54ef3ac4e13013cfc7c0b98fcdf7337792247d7de4dd3443c8ee5f4365fc9ba52",
    "4b014fde77ee92b16118661fcb99b11b06745d1545aeca5f29d7779db11ee875b5a895fcceb7fdc67dd5be030000ffff",
    "0300577fae830b030000",
];

#[test]
fn real_umoci_insert_layer_is_accepted() {
    let blob = hex::decode(UMOCI_INSERT_LAYER.concat()).expect("hex");
    let digest = "sha256:b0474aab89f16d102321e57742d015a86fe8a4b5f0850762f14c8aeb5f6ea59a";
    assert_eq!(sha256(&blob), digest);

    // what the tar crate alone does: every entry, then an error
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&blob[..]));
    let results: Vec<bool> = archive
        .entries()
        .expect("entries")
        .map(|entry| entry.is_ok())
        .collect();
    assert_eq!(results, [true, false]);

    let required = only(&["etc/os-release"]);
    let content = read_layer(
        &blob[..],
        digest,
        Compression::Gzip,
        &required,
        &Limits::default(),
    )
    .expect("accepted");
    assert_eq!(content.entries, 1);
    assert_eq!(content.uncompressed_bytes, 779);
    let files = merge(&[content], &required);
    let os_release = text(&files, "etc/os-release").expect("os-release");
    assert_eq!(os_release.len(), 267);
    assert!(os_release.starts_with("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\""));
}

// ---------------------------------------------------------------------------------------------
// limits

/// A gzip bomb served lazily: a tar header for one 1 GiB file of zeros, as 1024 gzip members of
/// 1 MiB of zeros each (about 1 MiB compressed in total). Counts the bytes it serves.
struct Bomb {
    member: Vec<u8>,
    members_left: u32,
    buffer: Vec<u8>,
    position: usize,
    served: Rc<Cell<u64>>,
}

impl Bomb {
    const MEMBER: usize = 1024 * 1024;

    fn new(served: Rc<Cell<u64>>) -> (Self, u64) {
        let mut start = header("bomb", tar::EntryType::Regular, 1 << 30, None)
            .as_bytes()
            .to_vec();
        start.resize(Self::MEMBER, 0);
        let first = gzip(&start);
        let member = gzip(&vec![0u8; Self::MEMBER]);
        let total = (first.len() + 1023 * member.len()) as u64;
        let bomb = Bomb {
            buffer: first,
            member,
            members_left: 1023,
            position: 0,
            served,
        };
        (bomb, total)
    }
}

impl Read for Bomb {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position == self.buffer.len() {
            if self.members_left == 0 {
                return Ok(0);
            }
            self.members_left -= 1;
            self.buffer.clone_from(&self.member);
            self.position = 0;
        }
        let n = buf.len().min(self.buffer.len() - self.position);
        buf[..n].copy_from_slice(&self.buffer[self.position..self.position + n]);
        self.position += n;
        self.served.set(self.served.get() + n as u64);
        Ok(n)
    }
}

#[test]
fn gzip_bomb_stops_early() {
    let served = Rc::new(Cell::new(0));
    let (bomb, total) = Bomb::new(served.clone());
    assert!(total < 2 * 1024 * 1024, "the bomb is small: {total}");
    let limits = Limits {
        max_uncompressed_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    };
    let started = Instant::now();
    let digest = format!("sha256:{}", "0".repeat(64));
    let err = read_layer(bomb, &digest, Compression::Gzip, &only(&[]), &limits).expect_err("bomb");
    assert_eq!(err.code(), "LayerTooLarge", "{err}");
    assert!(err.to_string().contains("uncompressed"), "{err}");
    assert!(
        served.get() < total / 10,
        "stopped early: {} of {total} compressed bytes read",
        served.get()
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // the compressed limit
    let served = Rc::new(Cell::new(0));
    let (bomb, _) = Bomb::new(served.clone());
    let limits = Limits {
        max_compressed_bytes: 5_000,
        ..Limits::default()
    };
    let err = read_layer(bomb, &digest, Compression::Gzip, &only(&[]), &limits).expect_err("bomb");
    assert_eq!(err.code(), "LayerTooLarge", "{err}");
    assert!(err.to_string().contains("compressed layer bytes"), "{err}");
    assert!(served.get() < 10_000, "{}", served.get());
}

#[test]
fn too_many_entries() {
    let names: Vec<String> = (0..150).map(|i| format!("usr/share/f{i}")).collect();
    let specs: Vec<Spec<'_>> = names.iter().map(|name| File(name, b"")).collect();
    let blob = gzip(&tar_of(&specs));
    let limits = Limits {
        max_entries: 100,
        ..Limits::default()
    };
    let err = read_with(&blob, Compression::Gzip, &only(&[]), &limits).expect_err("entries");
    assert_eq!(err.code(), "LayerTooLarge");
    assert!(
        err.to_string()
            .contains("tar entries exceeds the limit of 100"),
        "{err}"
    );
    let limits = Limits {
        max_entries: 150,
        ..Limits::default()
    };
    read_with(&blob, Compression::Gzip, &only(&[]), &limits).expect("exactly at the limit");
}

#[test]
fn oversized_files() {
    let big = vec![1u8; 10_000];
    let blob = gzip(&tar_of(&[
        File("var/lib/rpm/rpmdb.sqlite", &big),
        File("other", &big),
    ]));
    let limits = Limits {
        max_file_bytes: 4096,
        ..Limits::default()
    };
    // a required file that is too big is an error, not silently skipped
    let err = read_with(
        &blob,
        Compression::Gzip,
        &only(&["var/lib/rpm/rpmdb.sqlite"]),
        &limits,
    )
    .expect_err("too big");
    assert_eq!(err.code(), "LayerTooLarge");
    assert!(
        err.to_string().contains("rpmdb.sqlite (10000 bytes)"),
        "{err}"
    );
    // files nobody asked for may be any size
    read_with(&blob, Compression::Gzip, &only(&[]), &limits).expect("not required");

    // all kept bytes of a layer
    let limits = Limits {
        max_kept_bytes: 15_000,
        ..Limits::default()
    };
    let err = read_with(&blob, Compression::Gzip, &|_: &str| true, &limits).expect_err("kept");
    assert_eq!(err.code(), "LayerTooLarge");
    assert!(
        err.to_string().contains("bytes kept from one layer"),
        "{err}"
    );
}

#[test]
fn huge_pax_header_is_refused() {
    let mut builder = tar::Builder::new(Vec::new());
    let data = vec![b'a'; 4 * 1024 * 1024];
    builder
        .append(&header_for_pax(data.len() as u64), &data[..])
        .expect("pax");
    append(&mut builder, File("x", b"x"));
    let blob = gzip(&builder.into_inner().expect("tar"));
    let err = read_gz(&blob, &only(&[])).expect_err("pax bomb");
    assert_eq!(err.code(), "LayerTooLarge");
    assert!(err.to_string().contains("tar header bytes"), "{err}");
}

#[test]
fn read_errors_and_timeouts() {
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0 == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "connection reset",
                ));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(0);
            self.0 -= n;
            Ok(n)
        }
    }
    let digest = format!("sha256:{}", "0".repeat(64));
    let err = read_layer(
        Failing(600),
        &digest,
        Compression::None,
        &only(&[]),
        &Limits::default(),
    )
    .expect_err("io");
    assert_eq!(err.code(), "LayerReadFailed", "{err}");
    assert!(err.is_transient());
    assert!(err.to_string().contains("connection reset"), "{err}");

    let limits = Limits {
        max_duration: Some(Duration::ZERO),
        ..Limits::default()
    };
    let blob = gzip(&tar_of(&[File("a", b"a")]));
    std::thread::sleep(Duration::from_millis(2));
    let err = read_with(&blob, Compression::Gzip, &only(&[]), &limits).expect_err("timeout");
    assert_eq!(err.code(), "LayerTimeout", "{err}");
}

#[test]
fn error_codes_are_stable() {
    let io_error = || io::Error::other("x");
    let cases = [
        (
            LayerError::Truncated {
                reason: String::new(),
            },
            "LayerTruncated",
        ),
        (
            LayerError::DigestMismatch {
                expected: String::new(),
                actual: String::new(),
            },
            "DigestMismatch",
        ),
        (
            LayerError::TooLarge {
                what: String::new(),
                limit: 1,
            },
            "LayerTooLarge",
        ),
        (
            LayerError::PathTraversal {
                path: String::new(),
            },
            "PathTraversal",
        ),
        (
            LayerError::UnsupportedMediaType {
                media_type: String::new(),
            },
            "UnsupportedMediaType",
        ),
        (
            LayerError::Corrupt {
                reason: String::new(),
            },
            "LayerCorrupt",
        ),
        (
            LayerError::InvalidDigest {
                digest: String::new(),
            },
            "InvalidDigest",
        ),
        (
            LayerError::Timeout {
                limit: Duration::ZERO,
            },
            "LayerTimeout",
        ),
        (LayerError::Io { source: io_error() }, "LayerReadFailed"),
    ];
    for (error, code) in cases {
        assert_eq!(error.code(), code);
        assert!(!error.to_string().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// robustness

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let status = dpkg_status();
    let seeds = [
        tar_of(&[
            Dir("etc/"),
            File("etc/os-release", b"ID=debian\n"),
            Symlink("etc/alt", "../usr/lib/os-release"),
            Hardlink("etc/hard", "etc/os-release"),
            File("var/lib/dpkg/status", &status[..status.len().min(1500)]),
            File("etc/.wh.gone", b""),
            File("opt/.wh..wh..opq", b""),
        ]),
        tar_without_end(&[File("a/b", b"hello"), Symlink("c", "/a/b")]).0,
    ];
    let required = |path: &str| !path.starts_with("usr/share");
    let limits = Limits {
        max_uncompressed_bytes: 1 << 20,
        max_file_bytes: 64 * 1024,
        ..Limits::default()
    };
    let mut outcomes = std::collections::BTreeMap::<&'static str, u32>::new();
    for round in 0..3000 {
        let mut blob: Vec<u8> = match round % 3 {
            // pure noise, sometimes behind a real magic number
            0 => {
                let len = rng.below(2048);
                let mut noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let magic: &[u8] = match rng.below(4) {
                    0 => &[0x1f, 0x8b, 0x08, 0x00],
                    1 => &[0x28, 0xb5, 0x2f, 0xfd],
                    _ => &[],
                };
                noise.splice(0..0, magic.iter().copied());
                noise
            }
            // a mutated tar, then compressed (exercises the tar parser)
            1 => {
                let mut tar = seeds[rng.below(seeds.len())].clone();
                mutate(&mut rng, &mut tar);
                match rng.below(3) {
                    0 => gzip(&tar),
                    1 => zstd(&tar),
                    _ => tar,
                }
            }
            // a valid compressed layer, then mutated (exercises the decoders)
            _ => {
                let tar = &seeds[rng.below(seeds.len())];
                let mut blob = if rng.below(2) == 0 {
                    gzip(tar)
                } else {
                    zstd(tar)
                };
                mutate(&mut rng, &mut blob);
                blob
            }
        };
        if blob.len() > 64 * 1024 {
            blob.truncate(64 * 1024);
        }
        let digest = if rng.below(4) == 0 {
            format!("sha256:{}", "ab".repeat(32))
        } else {
            sha256(&blob)
        };
        let declared = [Compression::Gzip, Compression::Zstd, Compression::None][rng.below(3)];
        match read_layer(&blob[..], &digest, declared, &required, &limits) {
            Ok(content) => {
                let files = merge(&[content.clone(), content], &required);
                assert!(files.iter().all(|(path, _)| required(path)));
                *outcomes.entry("ok").or_default() += 1;
            }
            Err(err) => *outcomes.entry(err.code()).or_default() += 1,
        }
    }
    // the inputs reach the interesting outcomes
    for code in ["ok", "LayerCorrupt", "LayerTruncated", "DigestMismatch"] {
        assert!(
            outcomes.contains_key(code),
            "{code} never happened: {outcomes:?}"
        );
    }
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    match rng.below(4) {
        0 => {
            let len = rng.below(bytes.len());
            bytes.truncate(len);
        }
        1 => {
            let at = rng.below(bytes.len());
            let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
            bytes.splice(at..at, junk);
        }
        _ => {
            for _ in 0..=rng.below(8) {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
        }
    }
}

/// A layer read that keeps ELF files wherever they are, as the binary analyzers ask.
fn read_selecting_elf(specs: &[Spec<'_>], limits: &Limits) -> LayerContent {
    let blob = gzip(&tar_of(specs));
    let select = Select {
        by_path: &only(&["var/lib/dpkg/status"]),
        by_content: &|_, head: &[u8]| head.starts_with(b"\x7fELF"),
    };
    read_layer_selecting(
        &blob[..],
        &sha256(&blob),
        Compression::Gzip,
        &select,
        limits,
    )
    .expect("valid layer")
}

fn elf(len: usize) -> Vec<u8> {
    let mut bytes = b"\x7fELF\x02\x01\x01".to_vec();
    bytes.extend((0..len - bytes.len()).map(|i| (i % 251) as u8));
    bytes
}

fn read_all(file: &crate::scanner::files::CollectedFile) -> Vec<u8> {
    let mut out = Vec::new();
    file.open()
        .expect("open")
        .read_to_end(&mut out)
        .expect("read");
    out
}

#[test]
fn files_are_kept_for_their_first_bytes_wherever_they_are() {
    let small = elf(4096);
    let big = elf(3 * SPOOL_BYTES as usize + 17);
    let not_elf = vec![b'#'; 4096];
    let content = read_selecting_elf(
        &[
            File("opt/app/server", &small),
            File("usr/local/bin/tool", &big),
            File("usr/bin/script", &not_elf),
            File("var/lib/dpkg/status", b"Package: a\n"),
            File("tiny", b"\x7fE"),
        ],
        &Limits::default(),
    );
    let kept: Vec<&str> = content.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        kept,
        [
            "opt/app/server",
            "usr/local/bin/tool",
            "var/lib/dpkg/status"
        ]
    );
    assert_eq!(
        content.kept_by_content.iter().collect::<Vec<_>>(),
        ["opt/app/server", "usr/local/bin/tool"]
    );
    // The large one is on disk, not in memory, and reads back exactly.
    let (_, spooled) = &content.files[1];
    assert!(matches!(spooled, Content::Spooled { .. }), "{spooled:?}");
    assert_eq!(spooled.in_memory(), 0);
    let files = merge(
        std::slice::from_ref(&content),
        &only(&["var/lib/dpkg/status"]),
    );
    assert_eq!(files.len(), 3, "{files:?}");
    let tool = files.get("usr/local/bin/tool").expect("kept by content");
    assert_eq!(tool.len(), big.len() as u64);
    assert_eq!(read_all(tool), big);
    assert_eq!(
        tool.bytes().expect("under the memory cap").as_ref(),
        &big[..]
    );
    // Two readers of one spooled file keep their own positions.
    let (mut a, mut b) = (tool.open().expect("open"), tool.open().expect("open"));
    a.seek(io::SeekFrom::End(-5)).expect("seek");
    let mut tail = [0u8; 5];
    a.read_exact(&mut tail).expect("tail");
    let mut head = [0u8; 4];
    b.read_exact(&mut head).expect("head");
    assert_eq!(
        (&tail[..], &head[..]),
        (&big[big.len() - 5..], &b"\x7fELF"[..])
    );
    assert_eq!(read_all(files.get("opt/app/server").expect("kept")), small);
}

#[test]
fn an_executable_past_the_file_limit_is_left_out_and_the_layer_still_reads() {
    let big = elf(8192);
    let limits = Limits {
        max_file_bytes: 4096,
        ..Limits::default()
    };
    let content = read_selecting_elf(
        &[
            File("usr/local/bin/huge", &big),
            File("var/lib/dpkg/status", b"Package: a\n"),
        ],
        &limits,
    );
    let kept: Vec<&str> = content.files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(kept, ["var/lib/dpkg/status"]);
    assert!(content.kept_by_content.is_empty());
}

#[test]
fn spooled_bytes_of_a_layer_are_bounded() {
    let big = elf(SPOOL_BYTES as usize + 1);
    let limits = Limits {
        max_spooled_bytes: 2 * SPOOL_BYTES + 1,
        ..Limits::default()
    };
    let blob = gzip(&tar_of(&[
        File("a", &big),
        File("b", &big),
        File("c", &big),
    ]));
    let select = Select {
        by_path: &|_| false,
        by_content: &|_, head: &[u8]| head.starts_with(b"\x7fELF"),
    };
    let err = read_layer_selecting(
        &blob[..],
        &sha256(&blob),
        Compression::Gzip,
        &select,
        &limits,
    )
    .expect_err("three spooled files are over the bound");
    assert!(
        matches!(err, LayerError::TooLarge { ref what, .. } if what.contains("spooled")),
        "{err:?}"
    );
}

#[test]
fn a_file_kept_by_content_is_gone_when_a_later_layer_deletes_or_replaces_it() {
    let bin = elf(2048);
    let lower = read_selecting_elf(
        &[File("opt/a", &bin), File("opt/b", &bin)],
        &Limits::default(),
    );
    let upper = read_selecting_elf(
        &[File("opt/.wh.a", b""), File("opt/b", b"#!/bin/sh\n")],
        &Limits::default(),
    );
    let files = merge(&[lower, upper], &only(&[]));
    assert!(files.is_empty(), "{files:?}");
}

/// Debian links `usr/share/java/commons-io.jar` to the jar in `usr/share/maven-repo/`: both names
/// are jars the Java analyzer asks for, but the package is one, named by the file it leads to.
#[test]
fn a_jar_reached_by_a_symlink_and_its_own_path_is_one_package() {
    use crate::scanner::analyzers::{analyze_all, defaults};
    let jar = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/debian-java/commons-io.jar"
    ))
    .expect("fixture jar");
    let physical = "usr/share/maven-repo/commons-io/commons-io/2.11.0/commons-io-2.11.0.jar";
    let analyzers = defaults();
    let required = |path: &str| crate::scanner::analyzers::required_by_any(&analyzers, path);
    let content = layer(
        &[
            File(physical, &jar),
            Symlink(
                "usr/share/java/commons-io.jar",
                "../maven-repo/commons-io/commons-io/2.11.0/commons-io-2.11.0.jar",
            ),
        ],
        &required,
    );
    let files = merge(std::slice::from_ref(&content), &required);
    assert_eq!(files.len(), 2, "both names are kept: {files:?}");
    assert_eq!(
        files
            .get("usr/share/java/commons-io.jar")
            .and_then(|f| f.alias_of.as_deref()),
        Some(physical)
    );
    let report = analyze_all(&analyzers, &files).expect("analysis");
    let found: Vec<(&str, &str, Option<&str>)> = report
        .inventory
        .packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str(), p.file_path.as_deref()))
        .collect();
    assert_eq!(found, [("commons-io:commons-io", "2.11.0", Some(physical))]);
}
