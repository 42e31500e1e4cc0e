//! An ELF vmlinux as the symbol source: a small kernel-like image linked by `ld` from C files
//! compiled by gcc with kernel code-model flags, with same-named statics in units that share a
//! basename (`a/core.c`, `b/core.c`) and one that does not. Its listing must hold what `nm -n`
//! shows after `scripts/mksysmap`'s filter (percpu symbols as `A`), in address order; FILE
//! symbols pick a unit's static by basename, neighbours settle the rest, and a System.map made
//! from the same image gives the same positions.

mod support;

use std::path::Path;
use std::process::Command;

use klp_build::kernel::symbols::{SymbolListing, SymposRule};

const CORE_A: &str = r#"
static int count;
int a_total;
static __attribute__((noinline)) int show(int x) { return x + count++; }
static __attribute__((noinline)) int a_helper(int x) { return show(x) * 3; }
__attribute__((section(".data..percpu"))) static int pcpu_hits;
int a_entry(int x) { pcpu_hits++; a_total += a_helper(x); return a_total; }
"#;

const CORE_B: &str = r#"
static int count = 5;
static int b_state;
static int b_limit = 9;
static __attribute__((noinline)) int b_first(int x) { return x ^ b_state ^ b_limit; }
static __attribute__((noinline)) int show(int x) { return b_first(x) - count--; }
__attribute__((section(".data..percpu"))) static int pcpu_hits;
int b_entry(int x) { pcpu_hits--; b_limit++; b_state = show(x); return b_state; }
"#;

const MISC: &str = r#"
static int count = 7;
static __attribute__((noinline)) int show(int x) { return x * count++; }
int misc_entry(int x) { return show(x) + 1; }
void _start(void) { }
"#;

const LDS: &str = r#"
SECTIONS {
  . = 0xffffffff81000000;
  .text : { _stext = .; *(.text .text.*) _etext = .; }
  .rodata : { *(.rodata .rodata.*) }
  .data..percpu 0 : AT(ADDR(.rodata) + SIZEOF(.rodata)) { __per_cpu_start = .; *(.data..percpu) __per_cpu_end = .; }
  . = ADDR(.rodata) + SIZEOF(.rodata) + 0x1000;
  .data : { *(.data .data.*) }
  .bss : { *(.bss .bss.*) }
  /DISCARD/ : { *(.note.*) *(.comment) *(.eh_frame) }
}
"#;

const UNITS: &[(&str, &str)] = &[
    ("a/core.c", CORE_A),
    ("b/core.c", CORE_B),
    ("c/misc.c", MISC),
];

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// gcc with the kernel's code model; `sections` adds what klp-build adds for its rebuilds.
fn compile(dir: &Path, src: &str, sections: bool) -> std::path::PathBuf {
    let out = dir
        .join(src)
        .with_extension(if sections { "fs.o" } else { "o" });
    let mut cmd = Command::new("gcc");
    cmd.current_dir(dir)
        .args([
            "-O2",
            "-mcmodel=kernel",
            "-fno-pie",
            "-fno-asynchronous-unwind-tables",
            "-c",
            src,
            "-o",
        ])
        .arg(&out);
    if sections {
        cmd.args(["-ffunction-sections", "-fdata-sections"]);
    }
    run(&mut cmd);
    out
}

#[test]
fn elf_vmlinux_and_its_system_map() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut objs = Vec::new();
    let mut tus = Vec::new();
    for (src, text) in UNITS {
        std::fs::create_dir_all(dir.join(src).parent().unwrap()).unwrap();
        std::fs::write(dir.join(src), text).unwrap();
        objs.push(compile(dir, src, false));
        tus.push(support::units::translation_unit(
            &compile(dir, src, true),
            src,
        ));
    }
    std::fs::write(dir.join("vmlinux.lds"), LDS).unwrap();
    let vmlinux = dir.join("vmlinux");
    run(Command::new("ld")
        .args(["-static", "-e", "_start", "-T"])
        .arg(dir.join("vmlinux.lds"))
        .arg("-o")
        .arg(&vmlinux)
        .args(&objs));

    let elf = SymbolListing::load(&vmlinux).unwrap();
    // `scripts/mksysmap`: nm -n without a N U w lines; then kallsyms makes percpu symbols `A`.
    let nm = run(Command::new("nm").arg("-n").arg(&vmlinux));
    let mut map = String::new();
    let mut expected: Vec<(u64, char, String)> = Vec::new();
    let mut percpu = false;
    for line in nm.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let ty = f[1].chars().next().unwrap();
        if "aNUw".contains(ty) {
            continue;
        }
        map.push_str(line);
        map.push('\n');
        let addr = u64::from_str_radix(f[0], 16).unwrap();
        percpu |= f[2] == "__per_cpu_start";
        let ty = if percpu { 'A' } else { ty };
        percpu &= f[2] != "__per_cpu_end";
        expected.push((addr, ty, f[2].to_string()));
    }
    let mut got: Vec<(u64, char, String)> = elf
        .listed("vmlinux")
        .into_iter()
        .map(|(a, t, n)| (a, t, n.to_string()))
        .collect();
    assert!(
        got.windows(2).all(|w| w[0].0 <= w[1].0),
        "ELF listing not in address order: {got:?}"
    );
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "ELF listing differs from nm -n");
    assert!(
        got.iter().any(|e| e.1 == 'A' && e.2 == "pcpu_hits"),
        "percpu statics must be A: {got:?}"
    );

    let system_map = dir.join("System.map");
    std::fs::write(&system_map, &map).unwrap();
    let text = SymbolListing::load(&system_map).unwrap();

    let addr_of = |name: &str| -> u64 {
        let l = elf.listed("vmlinux");
        l.iter().find(|e| e.2 == name).unwrap().0
    };
    // Link order a, b, c: each unit's `show` is at its position in address order.
    for (k, tu) in tus.iter().enumerate() {
        let expected = k as u32 + 1;
        let e = elf.locate("vmlinux", "show", tu).unwrap();
        assert_eq!(e.sympos, expected, "{}: show from the ELF", tu.source);
        // misc.c is the only core-less basename: its FILE symbol decides; the two core.c need
        // their neighbours.
        if tu.source == "c/misc.c" {
            assert_eq!(e.rule, SymposRule::File, "{}", tu.source);
        } else {
            assert!(
                matches!(e.rule, SymposRule::Neighbours { .. }),
                "{}: {:?}",
                tu.source,
                e.rule
            );
        }
        let t = text.locate("vmlinux", "show", tu).unwrap();
        assert_eq!(
            (t.sympos, t.addr),
            (expected, e.addr),
            "{}: show from System.map",
            tu.source
        );
        // The unit's entry point is a unique global next to it.
        let entry = ["a_entry", "b_entry", "misc_entry"][k];
        assert_eq!(elf.sympos("vmlinux", entry, tu).unwrap(), 0);
        assert!(addr_of(entry) > 0);
    }
    // `count`: a .bss static in a, .data statics in b and c (like sections with like).
    let counts: Vec<u32> = tus
        .iter()
        .map(|tu| elf.sympos("vmlinux", "count", tu).unwrap())
        .collect();
    let mut sorted = counts.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec![1, 2, 3],
        "each unit's count at its own position: {counts:?}"
    );
    // In the image .data (b, c) precedes .bss (a).
    assert_eq!(counts, vec![3, 1, 2]);
}

#[test]
fn relocatable_and_compressed_images_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("m.c"), MISC).unwrap();
    let obj = compile(dir, "m.c", false);
    let err = SymbolListing::load(&obj).unwrap_err();
    assert!(format!("{err:#}").contains("not vmlinux.o"), "{err:#}");
    let mut bz = vec![0u8; 0x400];
    bz[0x202..0x206].copy_from_slice(b"HdrS");
    std::fs::write(dir.join("vmlinuz"), &bz).unwrap();
    let err = SymbolListing::load(&dir.join("vmlinuz")).unwrap_err();
    assert!(
        format!("{err:#}").contains("compressed kernel image"),
        "{err:#}"
    );
}
