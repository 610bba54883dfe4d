//! A small ELF reader shared by the analyzers of executables ([`super::gobinary`],
//! [`super::rustaudit`]).
//!
//! It reads only what they need, through bounded seeks and reads of [`CollectedFile::open`]: the
//! file header, the program headers (to turn a virtual address into a file offset), the section
//! headers with their names, and the bytes of one section or of one range of addresses. 32- and
//! 64-bit files of either byte order. Every offset and length taken from the file is checked
//! against the file's length, and every read is capped, before anything is allocated: a file
//! whose tables point past its end is `Truncated`, one whose tables contradict themselves is
//! `Malformed`, one beyond a cap `TooLarge` — never a panic.
//!
//! Not supported: extended section numbering (`e_shnum == 0` with the count in section 0, only
//! used by files with more than 65279 sections): such a file is read as one without section
//! headers.

use std::io::SeekFrom;

use super::{Analysis, CollectedFile, FileSet, ReadSeek, UnreadableFile};

pub const MAGIC: &[u8; 4] = b"\x7fELF";

/// The most any one read of a table of names takes (`.shstrtab` is a few hundred bytes).
const MAX_NAMES: u64 = 1 << 20;

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const SHT_NOBITS: u32 = 8;

/// Whether a file's first bytes are those of an ELF file.
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Why a file could not be read: a stable code (`Truncated`, `Malformed`, `TooLarge`,
/// `Unsupported`, `ReadError`) and a reason for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    pub code: &'static str,
    pub reason: String,
}

impl Unreadable {
    pub fn new(code: &'static str, reason: impl Into<String>) -> Self {
        Unreadable {
            code,
            reason: reason.into(),
        }
    }

    fn io(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Unreadable::new("Truncated", "the file ends early")
        } else {
            Unreadable::new("ReadError", format!("reading the file: {e}"))
        }
    }
}

/// One section header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub name: Vec<u8>,
    kind: u32,
    offset: u64,
    size: u64,
}

/// One program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    kind: u32,
    flags: u32,
    offset: u64,
    pub vaddr: u64,
    filesz: u64,
}

/// The tables of one ELF file (not its contents, which are read on demand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf {
    len: u64,
    pub big_endian: bool,
    pub sections: Vec<Section>,
    pub segments: Vec<Segment>,
}

/// Where the fields of a header are, for one ELF class.
struct Layout {
    header_len: usize,
    /// Width of an address / offset / size field.
    word: usize,
    phoff: usize,
    shoff: usize,
    phentsize: usize,
    min_phent: usize,
    min_shent: usize,
}

const ELF32: Layout = Layout {
    header_len: 52,
    word: 4,
    phoff: 28,
    shoff: 32,
    phentsize: 42,
    min_phent: 32,
    min_shent: 40,
};

const ELF64: Layout = Layout {
    header_len: 64,
    word: 8,
    phoff: 32,
    shoff: 40,
    phentsize: 54,
    min_phent: 56,
    min_shent: 64,
};

/// Reads fixed-width unsigned integers of one byte order out of a table's bytes.
#[derive(Clone, Copy)]
struct Fields<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Fields<'_> {
    fn uint(&self, at: usize, width: usize) -> Result<u64, Unreadable> {
        let bytes = at
            .checked_add(width)
            .and_then(|end| self.bytes.get(at..end))
            .ok_or_else(|| Unreadable::new("Malformed", "a header field lies outside its table"))?;
        Ok(uint(bytes, self.big_endian))
    }

    fn u16(&self, at: usize) -> Result<u64, Unreadable> {
        self.uint(at, 2)
    }

    fn u32(&self, at: usize) -> Result<u32, Unreadable> {
        // A 4-byte field always fits in u32.
        self.uint(at, 4).map(|v| v as u32)
    }
}

/// An unsigned integer of up to 8 bytes in the given byte order.
pub fn uint(bytes: &[u8], big_endian: bool) -> u64 {
    let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
    if big_endian {
        bytes.iter().fold(0, fold)
    } else {
        bytes.iter().rev().fold(0, fold)
    }
}

impl Elf {
    /// Reads the header and the program and section header tables. `Ok(None)` when the file is
    /// not ELF at all.
    pub fn parse(file: &mut dyn ReadSeek, len: u64) -> Result<Option<Elf>, Unreadable> {
        let ident = read_at(file, len, 0, 16.min(len), 16)?;
        if !is_elf(&ident) {
            return Ok(None);
        }
        let layout = match ident.get(4) {
            Some(1) => &ELF32,
            Some(2) => &ELF64,
            _ => return Err(Unreadable::new("Malformed", "unknown ELF class")),
        };
        let big_endian = match ident.get(5) {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(Unreadable::new("Malformed", "unknown ELF byte order")),
        };
        let header_len = layout.header_len as u64;
        let header = read_at(file, len, 0, header_len, header_len)?;
        let h = Fields {
            bytes: &header,
            big_endian,
        };
        let phoff = h.uint(layout.phoff, layout.word)?;
        let shoff = h.uint(layout.shoff, layout.word)?;
        let phentsize = h.u16(layout.phentsize)?;
        let phnum = h.u16(layout.phentsize + 2)?;
        let shentsize = h.u16(layout.phentsize + 4)?;
        let shnum = h.u16(layout.phentsize + 6)?;
        let shstrndx = h.u16(layout.phentsize + 8)?;

        let mut elf = Elf {
            len,
            big_endian,
            sections: Vec::new(),
            segments: Vec::new(),
        };
        if phnum > 0 {
            let table = read_table(file, len, phoff, phnum, phentsize, layout.min_phent)?;
            for entry in table.chunks_exact(phentsize as usize) {
                elf.segments.push(segment(
                    Fields {
                        bytes: entry,
                        big_endian,
                    },
                    layout,
                )?);
            }
        }
        if shoff != 0 && shnum > 0 {
            let table = read_table(file, len, shoff, shnum, shentsize, layout.min_shent)?;
            let mut name_offsets = Vec::with_capacity(shnum as usize);
            for entry in table.chunks_exact(shentsize as usize) {
                let (name, section) = section(
                    Fields {
                        bytes: entry,
                        big_endian,
                    },
                    layout,
                )?;
                name_offsets.push(name);
                elf.sections.push(section);
            }
            let names = match elf.sections.get(shstrndx as usize) {
                Some(strtab) if shstrndx != 0 => elf.read_section(file, strtab, MAX_NAMES)?,
                _ => Vec::new(),
            };
            for (section, at) in elf.sections.iter_mut().zip(name_offsets) {
                section.name = names
                    .get(at as usize..)
                    .and_then(|rest| rest.split(|b| *b == 0).next())
                    .unwrap_or_default()
                    .to_vec();
            }
        }
        Ok(Some(elf))
    }

    /// The first section with this name.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name.as_bytes())
    }

    /// The first loadable segment that is writable and not executable: where the Go linker
    /// puts its data (and its build information) when there are no section headers.
    pub fn first_writable_segment(&self) -> Option<&Segment> {
        self.segments
            .iter()
            .find(|s| s.kind == PT_LOAD && s.flags & (PF_X | PF_W) == PF_W)
    }

    /// A section's bytes; `TooLarge` beyond `cap`. A section that takes no room in the file
    /// (`.bss`) is empty.
    pub fn read_section(
        &self,
        file: &mut dyn ReadSeek,
        section: &Section,
        cap: u64,
    ) -> Result<Vec<u8>, Unreadable> {
        if section.kind == SHT_NOBITS {
            return Ok(Vec::new());
        }
        read_at(file, self.len, section.offset, section.size, cap).map_err(|e| Unreadable {
            reason: format!(
                "section {}: {}",
                String::from_utf8_lossy(&section.name),
                e.reason
            ),
            ..e
        })
    }

    /// At most `len` bytes from virtual address `addr` of a loadable segment (fewer when the
    /// segment's file content ends first); `Malformed` when no segment holds the address.
    pub fn read_address(
        &self,
        file: &mut dyn ReadSeek,
        addr: u64,
        len: u64,
        cap: u64,
    ) -> Result<Vec<u8>, Unreadable> {
        let segment = self
            .segments
            .iter()
            .find(|s| s.kind == PT_LOAD && addr >= s.vaddr && addr - s.vaddr < s.filesz)
            .ok_or_else(|| {
                Unreadable::new(
                    "Malformed",
                    format!("no loadable segment holds address {addr:#x}"),
                )
            })?;
        let skip = addr - segment.vaddr;
        let available = segment.filesz - skip;
        let offset = segment
            .offset
            .checked_add(skip)
            .ok_or_else(|| Unreadable::new("Malformed", "a segment's offset overflows"))?;
        read_at(file, self.len, offset, len.min(available), cap)
    }
}

fn segment(f: Fields<'_>, layout: &Layout) -> Result<Segment, Unreadable> {
    Ok(if layout.word == 8 {
        Segment {
            kind: f.u32(0)?,
            flags: f.u32(4)?,
            offset: f.uint(8, 8)?,
            vaddr: f.uint(16, 8)?,
            filesz: f.uint(32, 8)?,
        }
    } else {
        Segment {
            kind: f.u32(0)?,
            offset: f.uint(4, 4)?,
            vaddr: f.uint(8, 4)?,
            filesz: f.uint(16, 4)?,
            flags: f.u32(24)?,
        }
    })
}

/// A section header without its name, and the offset of its name in `.shstrtab`.
fn section(f: Fields<'_>, layout: &Layout) -> Result<(u32, Section), Unreadable> {
    let (offset, size) = if layout.word == 8 {
        (f.uint(24, 8)?, f.uint(32, 8)?)
    } else {
        (f.uint(16, 4)?, f.uint(20, 4)?)
    };
    Ok((
        f.u32(0)?,
        Section {
            name: Vec::new(),
            kind: f.u32(4)?,
            offset,
            size,
        },
    ))
}

/// A table of `count` entries of `entry_len` bytes (at least `min_entry`) at `offset`.
fn read_table(
    file: &mut dyn ReadSeek,
    len: u64,
    offset: u64,
    count: u64,
    entry_len: u64,
    min_entry: usize,
) -> Result<Vec<u8>, Unreadable> {
    if entry_len < min_entry as u64 {
        return Err(Unreadable::new(
            "Malformed",
            format!("header table entries of {entry_len} bytes, fewer than {min_entry}"),
        ));
    }
    // Both are 16-bit fields: the table is at most 4 MiB.
    let size = count * entry_len;
    read_at(file, len, offset, size, size)
        .map_err(|e| Unreadable::new(e.code, format!("header table: {}", e.reason)))
}

/// Exactly `size` bytes at `offset` of a file of `len` bytes: `TooLarge` beyond `cap`,
/// `Truncated` past the end of the file.
fn read_at(
    file: &mut dyn ReadSeek,
    len: u64,
    offset: u64,
    size: u64,
    cap: u64,
) -> Result<Vec<u8>, Unreadable> {
    if size > cap {
        return Err(Unreadable::new(
            "TooLarge",
            format!("{size} bytes at offset {offset:#x}, more than the {cap} read at most"),
        ));
    }
    if offset.checked_add(size).is_none_or(|end| end > len) {
        return Err(Unreadable::new(
            "Truncated",
            format!("{size} bytes at offset {offset:#x} lie past the end of the {len}-byte file"),
        ));
    }
    file.seek(SeekFrom::Start(offset)).map_err(Unreadable::io)?;
    // `size` ≤ `cap` and lies inside the file: this allocation is bounded.
    let mut bytes = vec![0; size as usize];
    file.read_exact(&mut bytes).map_err(Unreadable::io)?;
    Ok(bytes)
}

/// Runs `read` on every ELF file of `files` (found by its first bytes, as
/// [`super::Analyzer::wants_content`] chose them), collecting what it finds. A file `read`
/// cannot read is reported in [`Analysis::unreadable`] and the others are still read.
pub fn analyze_elf_files(
    analyzer: &'static str,
    files: &FileSet,
    mut read: impl FnMut(
        &str,
        &CollectedFile,
        &mut dyn ReadSeek,
        &Elf,
        &mut Analysis,
    ) -> Result<(), Unreadable>,
) -> Analysis {
    let mut analysis = Analysis::default();
    for (path, file) in files.iter() {
        let outcome = file
            .open()
            .map_err(Unreadable::io)
            .and_then(|mut reader| match Elf::parse(&mut *reader, file.len())? {
                Some(elf) => read(path, file, &mut *reader, &elf, &mut analysis),
                None => Ok(()),
            });
        if let Err(e) = outcome {
            analysis
                .unreadable
                .push(UnreadableFile::new(analyzer, path, e.code, e.reason));
        }
    }
    analysis
}

/// Small ELF files written from scratch, for the tests of the analyzers of executables.
#[cfg(test)]
pub(super) mod testelf {
    /// One section; `addr` 0 means not loaded, otherwise a read-write `PT_LOAD` maps it there.
    pub struct TestSection {
        pub name: &'static str,
        pub addr: u64,
        pub data: Vec<u8>,
    }

    pub struct TestElf {
        pub class64: bool,
        pub big_endian: bool,
        /// Without section headers: `e_shoff`, `e_shnum` and `e_shstrndx` are 0.
        pub section_headers: bool,
        pub sections: Vec<TestSection>,
    }

    fn put(out: &mut Vec<u8>, value: u64, width: usize, big_endian: bool) {
        let bytes = value.to_le_bytes();
        let mut field = bytes[..width].to_vec();
        if big_endian {
            field.reverse();
        }
        out.extend_from_slice(&field);
    }

    impl TestElf {
        pub fn build(&self) -> Vec<u8> {
            let word = if self.class64 { 8 } else { 4 };
            let (ehsize, phentsize, shentsize) = if self.class64 {
                (64, 56, 64)
            } else {
                (52, 32, 40)
            };
            let loaded: Vec<&TestSection> = self.sections.iter().filter(|s| s.addr != 0).collect();
            let mut offset = ehsize + phentsize * loaded.len();
            let mut offsets = Vec::new();
            for section in &self.sections {
                offsets.push(offset);
                offset += section.data.len();
            }
            let mut shstrtab = vec![0u8];
            let mut name_offsets = Vec::new();
            for name in self.sections.iter().map(|s| s.name).chain([".shstrtab"]) {
                name_offsets.push(shstrtab.len());
                shstrtab.extend_from_slice(name.as_bytes());
                shstrtab.push(0);
            }
            let shstrtab_offset = offset;
            let shoff = shstrtab_offset + shstrtab.len();
            let shnum = self.sections.len() + 2;

            let be = self.big_endian;
            let mut out = b"\x7fELF".to_vec();
            out.extend([if self.class64 { 2 } else { 1 }, if be { 2 } else { 1 }, 1]);
            out.resize(16, 0);
            put(&mut out, 2, 2, be); // e_type: executable
            put(&mut out, 62, 2, be); // e_machine
            put(&mut out, 1, 4, be); // e_version
            put(&mut out, 0, word, be); // e_entry
            put(&mut out, ehsize as u64, word, be); // e_phoff
            let headers = self.section_headers;
            put(&mut out, if headers { shoff as u64 } else { 0 }, word, be);
            put(&mut out, 0, 4, be); // e_flags
            put(&mut out, ehsize as u64, 2, be);
            put(&mut out, phentsize as u64, 2, be);
            put(&mut out, loaded.len() as u64, 2, be);
            put(&mut out, shentsize as u64, 2, be);
            put(&mut out, if headers { shnum as u64 } else { 0 }, 2, be);
            put(&mut out, if headers { shnum as u64 - 1 } else { 0 }, 2, be);
            for (section, offset) in self.sections.iter().zip(&offsets) {
                if section.addr == 0 {
                    continue;
                }
                let (offset, len) = (*offset as u64, section.data.len() as u64);
                put(&mut out, 1, 4, be); // PT_LOAD
                if self.class64 {
                    put(&mut out, 6, 4, be); // PF_R | PF_W
                }
                for value in [offset, section.addr, section.addr, len, len] {
                    put(&mut out, value, word, be);
                }
                if !self.class64 {
                    put(&mut out, 6, 4, be);
                }
                put(&mut out, 16, word, be); // p_align
            }
            for section in &self.sections {
                out.extend_from_slice(&section.data);
            }
            out.extend_from_slice(&shstrtab);
            let header =
                |out: &mut Vec<u8>, name: usize, kind: u64, addr: u64, at: usize, len: usize| {
                    put(out, name as u64, 4, be);
                    put(out, kind, 4, be);
                    put(out, if addr != 0 { 3 } else { 0 }, word, be); // SHF_WRITE | SHF_ALLOC
                    for value in [addr, at as u64, len as u64] {
                        put(out, value, word, be);
                    }
                    put(out, 0, 4, be); // sh_link
                    put(out, 0, 4, be); // sh_info
                    put(out, 1, word, be); // sh_addralign
                    put(out, 0, word, be); // sh_entsize
                };
            header(&mut out, 0, 0, 0, 0, 0);
            for ((section, offset), name) in self.sections.iter().zip(&offsets).zip(&name_offsets) {
                header(
                    &mut out,
                    *name,
                    1,
                    section.addr,
                    *offset,
                    section.data.len(),
                );
            }
            let strtab_name = name_offsets[self.sections.len()];
            header(&mut out, strtab_name, 3, 0, shstrtab_offset, shstrtab.len());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testelf::{TestElf, TestSection};
    use super::*;
    use crate::scanner::analyzers::{Analyzer, GoBinaryAnalyzer, RustAuditAnalyzer};

    fn parse(bytes: &[u8]) -> Result<Option<Elf>, Unreadable> {
        Elf::parse(&mut std::io::Cursor::new(bytes), bytes.len() as u64)
    }

    fn sample(class64: bool, big_endian: bool) -> Vec<u8> {
        TestElf {
            class64,
            big_endian,
            section_headers: true,
            sections: vec![
                TestSection {
                    name: ".data",
                    addr: 0x40_0000,
                    data: b"0123456789".to_vec(),
                },
                TestSection {
                    name: ".note",
                    addr: 0,
                    data: b"abc".to_vec(),
                },
            ],
        }
        .build()
    }

    #[test]
    fn reads_sections_and_addresses_in_every_class_and_byte_order() {
        for (class64, big_endian) in [(true, false), (true, true), (false, false), (false, true)] {
            let bytes = sample(class64, big_endian);
            let elf = parse(&bytes).unwrap().unwrap();
            let mut file = std::io::Cursor::new(bytes.as_slice());
            let names: Vec<&[u8]> = elf.sections.iter().map(|s| s.name.as_slice()).collect();
            assert_eq!(
                names,
                [&b""[..], b".data", b".note", b".shstrtab"],
                "{class64} {big_endian}"
            );
            let note = elf.section(".note").unwrap();
            assert_eq!(elf.read_section(&mut file, note, 100).unwrap(), b"abc");
            assert_eq!(
                elf.read_section(&mut file, note, 2).unwrap_err().code,
                "TooLarge"
            );
            assert_eq!(
                elf.read_address(&mut file, 0x40_0004, 3, 100).unwrap(),
                b"456"
            );
            // A read is cut at the segment's end.
            assert_eq!(
                elf.read_address(&mut file, 0x40_0008, 100, 100).unwrap(),
                b"89"
            );
            let outside = elf.read_address(&mut file, 0x40_000a, 1, 100).unwrap_err();
            assert_eq!(outside.code, "Malformed");
            assert_eq!(
                elf.first_writable_segment().map(|s| s.vaddr),
                Some(0x40_0000)
            );
        }
    }

    #[test]
    fn hostile_headers_are_coded() {
        let good = sample(true, false);
        assert_eq!(parse(b"\x7fEL").unwrap(), None);
        assert_eq!(parse(b"not elf at all").unwrap(), None);
        assert_eq!(parse(b"\x7fELF").unwrap_err().code, "Malformed");
        assert_eq!(parse(&good[..40]).unwrap_err().code, "Truncated");

        let mut class = good.clone();
        class[4] = 9;
        assert_eq!(parse(&class).unwrap_err().code, "Malformed");

        // e_shoff far past the end, and at u64::MAX (the end overflows).
        for shoff in [good.len() as u64 + 4096, u64::MAX] {
            let mut past = good.clone();
            past[40..48].copy_from_slice(&shoff.to_le_bytes());
            let e = parse(&past).unwrap_err();
            assert_eq!(e.code, "Truncated", "{e:?}");
        }
        // e_shentsize smaller than a section header.
        let mut small = good.clone();
        small[58..60].copy_from_slice(&8u16.to_le_bytes());
        assert_eq!(parse(&small).unwrap_err().code, "Malformed");
    }

    /// Real binaries cut short and with bytes overwritten anywhere: every analyzer of
    /// executables either reads them or reports them, and never panics.
    #[test]
    fn garbled_real_binaries_never_panic() {
        let originals = [
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/go/hello"
            ))
            .unwrap(),
            std::fs::read(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/rust-auditable/tiny-auditable"
            ))
            .unwrap(),
        ];
        let analyzers: [&dyn Analyzer; 2] = [&GoBinaryAnalyzer, &RustAuditAnalyzer];
        // A fixed linear congruential sequence: the same copies on every run.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        let mut files = FileSet::new();
        for (n, original) in originals.iter().enumerate() {
            for cut in [
                0,
                3,
                20,
                63,
                64,
                200,
                original.len() / 3,
                original.len() - 1,
            ] {
                files.insert(
                    format!("cut/{n}/{cut}"),
                    CollectedFile::new(&original[..cut], "sha256:test"),
                );
            }
            for copy in 0..40 {
                let mut garbled = original.clone();
                for _ in 0..8 {
                    // Mostly the header and the tables at the ends, where offsets live.
                    let at = match next() % 3 {
                        0 => next() as usize % 256,
                        1 => garbled.len() - 1 - next() as usize % 4096,
                        _ => next() as usize % garbled.len(),
                    };
                    garbled[at] = next() as u8;
                }
                files.insert(
                    format!("garbled/{n}/{copy}"),
                    CollectedFile::new(garbled, "sha256:test"),
                );
            }
        }
        for analyzer in analyzers {
            let analysis = analyzer.analyze(&files).unwrap();
            let read: std::collections::BTreeSet<&str> = analysis
                .packages
                .iter()
                .filter_map(|p| p.file_path.as_deref())
                .collect();
            // The garbling reaches the tables (some copies are refused) and spares some copies.
            assert!(!analysis.unreadable.is_empty(), "{}", analyzer.name());
            assert!(!read.is_empty(), "{}", analyzer.name());
            for unreadable in &analysis.unreadable {
                assert!(
                    ["Truncated", "Malformed", "TooLarge"].contains(&unreadable.code),
                    "{unreadable:?}"
                );
            }
        }
    }
}
