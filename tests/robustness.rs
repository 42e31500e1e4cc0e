//! No input breaks klp-build: real kernel objects of the lab, and the fixture objects with the
//! table layouts of other kernels, mutated by a seeded generator (truncated, random bytes in the
//! section headers, the symbol table and the relocations, out-of-range fields, special sections
//! cut to a partial entry, compressed debug sections that announce another size), each diffed
//! against its original by the real `klp-build diff` binary, which must exit 0 or 3 (a clean result) or 1 with a message
//! naming the file, within a time limit: never a panic (exit 101), never a hang. The symbol
//! listing readers (kallsyms text, `Module.symvers`, a module's symbol table) get the same
//! treatment in process. A failing input is kept under `target/tmp/robustness/` with the
//! mutation that made it.

mod kobj;
mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use object::elf::{FileHeader64, SHT_RELA, SHT_SYMTAB};
use object::read::elf::{FileHeader, SectionHeader};
use object::LittleEndian as LE;

/// The seed of every run: a failure reproduces with the same inputs.
const SEED: u64 = 0x6b6c_702d_6275_696c;

/// Per run; a diff of these objects takes well under a second.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Objects of different shapes: a small builtin file, one with the special sections
/// (`__bug_table`, `__jump_table`, `.altinstructions`, `__ex_table`, ORC) and many static locals,
/// and one with `.parainstructions` entries (paravirt `arch_local_irq_save()` sites).
const OBJECTS: &[(&str, usize)] = &[
    ("fs/proc/cmdline.o", 80),
    ("kernel/ksysfs.o", 80),
    ("fs/proc/base.o", 140),
];

/// SplitMix64: a few lines of a well-known generator, enough for choosing mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len())]
    }
}

/// Where the tables of an object are in its file.
struct Layout {
    shoff: usize,
    shnum: usize,
    /// (file offset, size, name) of every section with file contents.
    sections: Vec<(usize, usize, String, u32)>,
    symtab: (usize, usize),
    relas: Vec<(usize, usize)>,
}

fn layout(data: &[u8]) -> Layout {
    let h = FileHeader64::<LE>::parse(data).expect("a real object parses");
    let e = h.endian().unwrap();
    let table = h.sections(e, data).unwrap();
    let mut l = Layout {
        shoff: h.e_shoff(e) as usize,
        shnum: table.len(),
        sections: Vec::new(),
        symtab: (0, 0),
        relas: Vec::new(),
    };
    for sh in table.iter() {
        let name =
            String::from_utf8_lossy(table.section_name(e, sh).unwrap_or_default()).into_owned();
        let (off, size) = (sh.sh_offset(e) as usize, sh.sh_size(e) as usize);
        match sh.sh_type(e) {
            SHT_SYMTAB => l.symtab = (off, size),
            SHT_RELA => l.relas.push((off, size)),
            _ => {}
        }
        l.sections.push((off, size, name, sh.sh_type(e)));
    }
    l
}

fn put(data: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(d) = data.get_mut(at..at + bytes.len()) {
        d.copy_from_slice(bytes);
    }
}

/// Values that sit on the edges of what a field can hold.
fn edgy(rng: &mut Rng, near: u64) -> u64 {
    rng.pick(&[
        0,
        1,
        near.wrapping_sub(1),
        near,
        near + 1,
        near + 4,
        0x7fff_ffff,
        0xffff_ffff,
        u64::MAX,
        u64::MAX - 3,
        i64::MAX as u64,
        1 << 40,
    ])
}

/// One mutation of `orig`: the bytes and what was done, for the failure message.
fn mutate(rng: &mut Rng, orig: &[u8], l: &Layout) -> (Vec<u8>, String) {
    let mut d = orig.to_vec();
    let kind = rng.below(10);
    let what = match kind {
        0 => {
            let at = rng.below(d.len());
            d.truncate(at);
            format!("truncated at {at:#x}")
        }
        1 => {
            let n = 1 + rng.below(4);
            let mut w = Vec::new();
            for _ in 0..n {
                let at = l.shoff + rng.below(l.shnum * 64);
                let b = rng.next() as u8;
                put(&mut d, at, &[b]);
                w.push(format!("{at:#x}={b:#x}"));
            }
            format!("section header bytes {}", w.join(","))
        }
        2 => {
            let i = 1 + rng.below(l.shnum - 1);
            let base = l.shoff + i * 64;
            let (field, off, width) = rng.pick(&[
                ("sh_type", 4, 4),
                ("sh_offset", 24, 8),
                ("sh_size", 32, 8),
                ("sh_link", 40, 4),
                ("sh_info", 44, 4),
                ("sh_entsize", 56, 8),
                ("sh_name", 0, 4),
            ]);
            let near = if field == "sh_size" {
                l.sections[i].1 as u64
            } else {
                l.shnum as u64
            };
            let v = edgy(rng, near);
            put(&mut d, base + off, &v.to_le_bytes()[..width]);
            format!("section [{i}] {} {field}={v:#x}", l.sections[i].2)
        }
        3 | 4 => {
            let n = l.symtab.1 / 24;
            let k = 1 + rng.below(n.max(2) - 1);
            let base = l.symtab.0 + k * 24;
            if kind == 3 {
                let at = base + rng.below(24);
                let b = rng.next() as u8;
                put(&mut d, at, &[b]);
                format!("symbol {k} byte +{:#x}={b:#x}", at - base)
            } else {
                let (field, off, width) = rng.pick(&[
                    ("st_name", 0, 4),
                    ("st_info", 4, 1),
                    ("st_shndx", 6, 2),
                    ("st_value", 8, 8),
                    ("st_size", 16, 8),
                ]);
                let v = if field == "st_shndx" {
                    rng.pick(&[l.shnum as u64, 0xfff1, 0xfff2, 0xffff, 0xff20, 0])
                } else if field == "st_info" {
                    rng.pick(&[0x02, 0x12, 0x01, 0x03, 0x04, 0xff])
                } else {
                    edgy(rng, 0x100)
                };
                put(&mut d, base + off, &v.to_le_bytes()[..width]);
                format!("symbol {k} {field}={v:#x}")
            }
        }
        5 | 6 if !l.relas.is_empty() => {
            let (off, size) = l.relas[rng.below(l.relas.len())];
            let n = size / 24;
            if n == 0 {
                return (d, "nothing".into());
            }
            let k = rng.below(n);
            let base = off + k * 24;
            if kind == 5 {
                let at = base + rng.below(24);
                let b = rng.next() as u8;
                put(&mut d, at, &[b]);
                format!("relocation at {base:#x} byte +{:#x}={b:#x}", at - base)
            } else {
                let (field, o, width) = rng.pick(&[
                    ("r_offset", 0, 8),
                    ("r_type", 8, 4),
                    ("r_sym", 12, 4),
                    ("r_addend", 16, 8),
                ]);
                let v = match field {
                    "r_type" => rng.pick(&[0u64, 1, 2, 4, 10, 11, 24, 42, 43, 0xff, 0xffff]),
                    "r_sym" => edgy(rng, l.symtab.1 as u64 / 24),
                    _ => edgy(rng, 0x40),
                };
                put(&mut d, base + o, &v.to_le_bytes()[..width]);
                format!("relocation at {base:#x} {field}={v:#x}")
            }
        }
        7 => {
            // A special section cut to a partial entry (or its entry size changed): the shape
            // of a table of another kernel read with this kernel's sizes.
            let specials: Vec<usize> = l
                .sections
                .iter()
                .enumerate()
                .filter(|(_, s)| {
                    [
                        "__bug_table",
                        "__ex_table",
                        "__jump_table",
                        ".altinstructions",
                        ".altinstr_replacement",
                        ".orc_unwind_ip",
                        ".orc_unwind",
                        ".parainstructions",
                        "__mcount_loc",
                        ".static_call_sites",
                        ".return_sites",
                        ".retpoline_sites",
                        ".debug_info",
                        ".debug_line",
                    ]
                    .contains(&s.2.as_str())
                })
                .map(|(i, _)| i)
                .collect();
            if specials.is_empty() {
                return (d, "nothing".into());
            }
            let i = rng.pick(&specials);
            let base = l.shoff + i * 64;
            if l.sections[i].2.starts_with(".debug_") && rng.below(2) == 0 {
                // The size a compressed section's Elf64_Chdr announces (`-gz` objects); in an
                // uncompressed one, eight bytes of debug information.
                let v = edgy(rng, 0x100);
                put(&mut d, l.sections[i].0 + 8, &v.to_le_bytes());
                format!("{} ch_size={v:#x}", l.sections[i].2)
            } else if rng.below(2) == 0 {
                let cut = 1 + rng.below(8) as u64;
                let size = (l.sections[i].1 as u64).saturating_sub(cut);
                put(&mut d, base + 32, &size.to_le_bytes());
                format!("{} sh_size={size:#x}", l.sections[i].2)
            } else {
                let e = rng.pick(&[3u64, 5, 7, 8, 14, 16, 24, 1 << 20]);
                put(&mut d, base + 56, &e.to_le_bytes());
                format!("{} sh_entsize={e}", l.sections[i].2)
            }
        }
        8 => {
            // The ELF header's table fields.
            let (field, off, width) = rng.pick(&[
                ("e_shoff", 0x28, 8),
                ("e_shnum", 0x3c, 2),
                ("e_shstrndx", 0x3e, 2),
                ("e_shentsize", 0x3a, 2),
            ]);
            let v = edgy(rng, l.shnum as u64);
            put(&mut d, off, &v.to_le_bytes()[..width]);
            format!("{field}={v:#x}")
        }
        _ => {
            // Code bytes changed (so the diff finds changed functions and the output object is
            // built) plus one more mutation of another kind.
            let texts: Vec<usize> = l
                .sections
                .iter()
                .enumerate()
                .filter(|(_, s)| s.2.starts_with(".text") && s.1 > 0)
                .map(|(i, _)| i)
                .collect();
            if texts.is_empty() {
                return (d, "nothing".into());
            }
            let i = rng.pick(&texts);
            let (off, size, ref name, _) = l.sections[i];
            let at = off + rng.below(size);
            put(&mut d, at, &[0xcc]);
            let (d2, w) = loop {
                let (d2, w) = mutate(rng, &d, l);
                if !w.starts_with("code") {
                    break (d2, w);
                }
            };
            return (
                d2,
                format!("code byte {name}+{:#x}=0xcc, then {w}", at - off),
            );
        }
    };
    (d, what)
}

/// Runs `klp-build diff orig patched -o out` with a time limit: the exit code (`None` when
/// killed by a signal) and stderr, or `Err` on a timeout.
fn run_diff(orig: &Path, patched: &Path, out: &Path) -> Result<(Option<i32>, String), String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .arg("diff")
        .arg(orig)
        .arg(patched)
        .arg("-o")
        .arg(out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run klp-build");
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for klp-build") {
            let mut err = String::new();
            use std::io::Read;
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            return Ok((status.code(), err));
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no result after {TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn keep_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("robustness")
}

#[test]
fn mutated_kernel_objects_never_crash_diff() {
    let Some(lab) = support::lab("mutated_kernel_objects_never_crash_diff") else {
        return;
    };
    kobj::prepared(lab);
    let objects: Vec<(String, PathBuf, usize)> = OBJECTS
        .iter()
        .map(|&(rel, count)| {
            (
                rel.to_string(),
                kobj::kernel_object(&lab.src, &lab.dir, rel),
                count,
            )
        })
        .collect();
    probe(&objects);
}

/// Fixture cases whose objects have the tables of other kernels (issue 14): the last
/// `.parainstructions` entry without padding (4.18 to 6.5), a 13-byte `struct alt_instr` (before
/// 5.13), an alternative whose replacement is an undefined symbol (5.15's retpolines), and
/// compressed debug sections (`-gz`), each also with `-gz`.
const LAYOUT_CASES: &[&str] = &[
    "paravirt-unpadded-last-entry",
    "altinstr-13-byte",
    "altinstr-undefined-replacement",
    "debug-info-compressed",
];

/// The probes of [`mutated_kernel_objects_never_crash_diff`] on the objects of other kernels'
/// layouts, compiled from their fixture cases with Debian 6.1's flags (and `-gz=zlib`); needs gcc
/// only.
#[test]
fn mutated_objects_of_other_layouts_never_crash_diff() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/cases");
    let flags: Vec<String> = std::fs::read_to_string(dir.join("kernel-cflags"))
        .expect("reading testdata/cases/kernel-cflags")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.split_whitespace().map(str::to_string))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let mut objects = Vec::new();
    for case in LAYOUT_CASES {
        for (variant, extra) in [("", None), ("-gz", Some("-gz=zlib"))] {
            let out = tmp.path().join(format!("{case}{variant}.o"));
            let st = Command::new("gcc")
                .args(&flags)
                .args(extra)
                .arg("-DPATCHED")
                .arg("-c")
                .arg(dir.join(case).join("case.c"))
                .arg("-o")
                .arg(&out)
                .status()
                .expect("run gcc");
            assert!(st.success(), "gcc on {case}{variant}");
            objects.push((format!("{case}{variant}.o"), out, 40));
        }
    }
    probe(&objects);
}

/// Mutates each object `count` times and diffs every mutation against its object (mostly as
/// the patched side, every fifth as the original side); fails with each input that crashed or
/// hung `klp-build diff` or made it fail without naming the file.
fn probe(objects: &[(String, PathBuf, usize)]) {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(SEED);
    let mut failures = Vec::new();
    let (mut runs, mut clean, mut errors) = (0, 0, 0);
    let t0 = Instant::now();
    for (rel, path, count) in objects {
        let orig = std::fs::read(path).unwrap();
        let l = layout(&orig);
        let stem = rel.replace('/', "_").replace(".o", "");
        for n in 0..*count {
            let (bytes, what) = mutate(&mut rng, &orig, &l);
            let name = format!("{stem}-mut{n}.o");
            let mutated = tmp.path().join(&name);
            std::fs::write(&mutated, &bytes).unwrap();
            // Mostly the patched side; every fifth input is the original side instead.
            let (a, b) = if n % 5 == 4 {
                (&mutated, path)
            } else {
                (path, &mutated)
            };
            let out = tmp.path().join("out.o");
            runs += 1;
            let verdict = match run_diff(a, b, &out) {
                Err(e) => Some(e),
                Ok((Some(0 | 3), _)) => {
                    clean += 1;
                    None
                }
                Ok((Some(1), err)) if err.contains(&name) => {
                    errors += 1;
                    None
                }
                // A refusal of a change the mutation made (a relocation of a constant now
                // points elsewhere): a result of the diff, named after the pair's object.
                Ok((Some(1), err)) if err.contains("unpatchable change") => {
                    clean += 1;
                    None
                }
                Ok((Some(1), err)) => Some(format!("exit 1 without naming {name}: {err}")),
                Ok((code, err)) => Some(format!("exit {code:?}: {err}")),
            };
            if let Some(v) = verdict {
                let keep = keep_dir();
                std::fs::create_dir_all(&keep).unwrap();
                std::fs::copy(&mutated, keep.join(&name)).unwrap();
                failures.push(format!(
                    "{rel} ({what}), kept as {}: {v}",
                    keep.join(&name).display()
                ));
            }
        }
    }
    eprintln!(
        "{runs} mutated objects in {:.1}s: {clean} clean results, {errors} errors naming the file",
        t0.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {runs} inputs crashed or hung klp-build diff:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        errors > runs / 4 && clean > 10,
        "the mutations should reach both outcomes"
    );
}

/// Lines of a listing with random damage: bytes replaced, lines cut, fields dropped.
fn damage(rng: &mut Rng, text: &str) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        let i = rng.below(lines.len());
        let j = rng.below(lines.len());
        let line = &mut lines[i];
        match rng.below(5) {
            0 => line.truncate(rng.below(line.len() + 1)),
            1 => {
                let mut b = line.clone().into_bytes();
                if !b.is_empty() {
                    let at = rng.below(b.len());
                    b[at] = rng.next() as u8;
                }
                *line = String::from_utf8_lossy(&b).into_owned();
            }
            2 => line.push_str("\textra\tfields [x]"),
            3 => *line = line.replace(['\t', ' '], ""),
            _ => lines.swap(i, j),
        }
    }
    lines.join("\n")
}

#[test]
fn damaged_symbol_listings_are_errors_not_panics() {
    let Some(lab) = support::lab("damaged_symbol_listings_are_errors_not_panics") else {
        return;
    };
    let kallsyms = std::fs::read_to_string(&lab.kallsyms).unwrap();
    // The head of vmlinux and lines of modules: enough shapes, parsed in milliseconds.
    let mut sample: Vec<&str> = kallsyms.lines().take(3000).collect();
    sample.extend(kallsyms.lines().filter(|l| l.ends_with(']')).take(2000));
    let sample = sample.join("\n");
    let symvers = std::fs::read_to_string(lab.kbuild.join("Module.symvers")).unwrap();
    let symvers: String = symvers.lines().take(3000).collect::<Vec<_>>().join("\n");
    let mut rng = Rng(SEED);
    let path = Path::new("kallsyms-damaged");
    for n in 0..200 {
        let text = damage(&mut rng, &sample);
        let r = catch_unwind(AssertUnwindSafe(|| {
            klp_build::kernel::symbols::SymbolListing::parse_text(path, &text).map(|_| ())
        }));
        match r {
            Err(_) => panic!("kallsyms input {n} panicked the reader"),
            Ok(Err(e)) => assert!(format!("{e:#}").contains("kallsyms-damaged"), "{e:#}"),
            Ok(Ok(())) => {}
        }
        let text = damage(&mut rng, &symvers);
        let r = catch_unwind(AssertUnwindSafe(|| {
            klp_build::kernel::symvers::Exports::parse(&text).map(|_| ())
        }));
        match r {
            Err(_) => panic!("Module.symvers input {n} panicked the reader"),
            Ok(Err(e)) => assert!(format!("{e:#}").contains("line "), "{e:#}"),
            Ok(Ok(())) => {}
        }
    }
    // A module's symbol table, read for its kallsyms order: the ELF mutations of the diff test.
    let ko = lab.modules.join("kernel/net/vmw_vsock/vsock_loopback.ko");
    let bytes = std::fs::read(&ko).unwrap_or_else(|e| panic!("{}: {e}", ko.display()));
    let l = layout(&bytes);
    let tmp = tempfile::tempdir().unwrap();
    for n in 0..100 {
        let (mutated, what) = mutate(&mut rng, &bytes, &l);
        let path = tmp.path().join(format!("vsock_loopback-mut{n}.ko"));
        std::fs::write(&path, &mutated).unwrap();
        let r = catch_unwind(AssertUnwindSafe(|| {
            klp_build::kernel::symbols::SymbolListing::empty(&lab.kallsyms)
                .add_module("vsock_loopback", &path)
        }));
        match r {
            Err(_) => panic!("{} ({what}) panicked the module reader", path.display()),
            Ok(Err(e)) => assert!(
                format!("{e:#}").contains(&*path.to_string_lossy()),
                "{what}: {e:#}"
            ),
            Ok(Ok(())) => {}
        }
    }
}

/// Three functions, each with one paravirt patch site recorded the way 6.6 and 6.7 record them
/// (`_paravirt_alt`: `.long 771b-.`, type, length, 8-byte entries); `PATCHED` lengthens the third.
const PARAVIRT_66: &str = r#"
	.macro pvfunc name
	.section .text.\name,"ax",@progbits
	.globl \name
	.type \name,@function
\name:
	call __fentry__
771:	pushfq
	popq %rax
772:
	.ifdef PATCHED
	.ifc \name,baz
	nop
	.endif
	.endif
	ret
	.size \name, .-\name
	.pushsection .parainstructions,"a"
	.long 771b-.
	.byte 42
	.byte 772b-771b
	.balign 4
	.popsection
	.endm
	pvfunc foo
	pvfunc bar
	pvfunc baz
	.section .note.GNU-stack,"",@progbits
"#;

/// Objects of 6.6 and 6.7 have 8-byte `.parainstructions` entries with no `sh_entsize`; reading
/// them as 6.1's 16-byte entries sliced past the section's end (a panic) for the third entry.
#[test]
fn parainstructions_of_later_kernels_are_8_byte_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("pv.s");
    std::fs::write(&src, PARAVIRT_66).unwrap();
    let obj = |name: &str, defs: &[&str]| {
        let o = tmp.path().join(name);
        let st = Command::new("as")
            .args(defs)
            .arg("-o")
            .arg(&o)
            .arg(&src)
            .status()
            .expect("run as (binutils)");
        assert!(st.success(), "as {name}");
        o
    };
    let orig = obj("orig.o", &[]);
    let patched = obj("patched.o", &["--defsym", "PATCHED=1"]);
    let out = tmp.path().join("out.o");
    let (code, err) = run_diff(&orig, &patched, &out).unwrap();
    assert_eq!(code, Some(0), "{err}");
    let o: klp_build::elf::ElfObject<klp_build::elf::Any> =
        klp_build::elf::read_file(&out).unwrap();
    let pv = o
        .section_by_name(".parainstructions")
        .expect("the changed function's entry is carried");
    assert_eq!(o.data(pv).len(), 8, "one 8-byte entry, baz's");
    let relocs = o.relocs_of(pv);
    assert_eq!(relocs.len(), 1);
    assert_eq!(relocs[0].r_type, object::elf::R_X86_64_PC32);
}

/// fs/ext4/super.o with a `pr_info_once()` added near the top: gcc renumbers every later static
/// local (`__func__.N`, `__key.N`, `__already_done.N`), and the scope rule must still pair each
/// with the static of the same function, none by position. (How fast: `cargo bench --bench
/// diff_objects`.)
#[test]
fn renumbered_static_locals_of_a_large_object_pair_by_scope() {
    let Some(lab) = support::lab("renumbered_static_locals_of_a_large_object_pair_by_scope") else {
        return;
    };
    kobj::prepared(lab);
    let rel = "fs/ext4/super.o";
    let from = "\tif (le32_to_cpu(es->s_rev_level) > EXT4_GOOD_OLD_REV)\n\t\treturn;\n";
    let to = format!("{from}\tpr_info_once(\"ext4: updating to the dynamic revision\\n\");\n");
    let orig = kobj::kernel_object(&lab.src, &lab.dir, rel);
    let patched = kobj::patched_object(
        &lab.src,
        &lab.dir,
        rel,
        from,
        &to,
        &lab.dir.join("patched-objects"),
    )
    .unwrap_or_else(|e| panic!("{rel}: {e}"));
    let d = klp_build::diff::run(
        Path::new(rel),
        klp_build::contract::KlpObject::Vmlinux,
        &orig,
        &patched,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let statics: Vec<_> = d
        .orig
        .live_symbols()
        .filter(|(_, s)| s.is_object() && s.is_local() && s.name.starts_with("__func__."))
        .collect();
    assert!(
        statics.len() >= 15,
        "{rel}: only {} __func__ statics",
        statics.len()
    );
    for (o, s) in &statics {
        let p = d
            .twins
            .patched(*o)
            .unwrap_or_else(|| panic!("{rel}: {} has no twin", s.name));
        // A function's name string is its name: the twin holds the same bytes.
        let (os, ps) = (d.orig.symbol(*o), d.patched.symbol(p));
        let bytes = |obj: &[u8], v: u64, n: u64| obj[v as usize..(v + n) as usize].to_vec();
        assert_eq!(
            bytes(
                d.orig.data(os.section_id().unwrap()),
                os.st_value,
                os.st_size
            ),
            bytes(
                d.patched.data(ps.section_id().unwrap()),
                ps.st_value,
                ps.st_size
            ),
            "{rel}: {} paired with {}, the __func__ of another function",
            os.name,
            ps.name
        );
    }
    let renamed = statics
        .iter()
        .filter(|(o, s)| d.patched.symbol(d.twins.patched(*o).unwrap()).name != s.name)
        .count();
    assert!(
        renamed >= 5,
        "{rel}: the change should renumber the statics ({renamed} renamed)"
    );
    let position: Vec<_> = d
        .warnings
        .iter()
        .filter(|w| w.key == "correlate.position")
        .map(|w| w.location.clone())
        .collect();
    assert!(
        position.is_empty(),
        "{rel}: paired by position: {position:?}"
    );
    assert!(
        d.changed
            .iter()
            .any(|c| d.patched.symbol(c.sym).name == "ext4_update_dynamic_rev"),
        "{rel}: the changed function is reported"
    );
}
