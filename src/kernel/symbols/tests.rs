//! Unit tests of the symbol listings on small hand-written listings.

use super::neighbours::walk;
use super::*;

fn tu(source: &str, syms: &[(&str, &str, bool)]) -> TranslationUnit {
    TranslationUnit {
        source: source.to_string(),
        symbols: syms
            .iter()
            .map(|(name, section, local)| TuSymbol {
                name: name.to_string(),
                kind: if section.contains("text") {
                    TuKind::Func
                } else {
                    TuKind::Object
                },
                section: section.to_string(),
                local: *local,
            })
            .collect(),
    }
}

fn listing(text: &str) -> SymbolListing {
    SymbolListing::parse_text(Path::new("test.kallsyms"), text).unwrap()
}

#[test]
fn base_sections() {
    let s = |name: &str, section: &str| TuSymbol {
        name: name.into(),
        kind: TuKind::Func,
        section: section.into(),
        local: true,
    };
    assert_eq!(s("show", ".text.show").base_section(), ".text");
    assert_eq!(
        s("foo.cold", ".text.unlikely.foo").base_section(),
        ".text.unlikely"
    );
    assert_eq!(s("foo.part.0", ".text.foo.part.0").base_section(), ".text");
    assert_eq!(s("x.0", ".bss.x.0").base_section(), ".bss");
    assert_eq!(
        s("__already_done.3", ".data.once").base_section(),
        ".data.once"
    );
    assert_eq!(s("setup", ".init.text").base_section(), ".init.text");
    assert_eq!(
        s("v", ".data..read_mostly").base_section(),
        ".data..read_mostly"
    );
}

const TWO_SHOWS: &str = "\
0000000000000000 A fixed_percpu_data
ffffffff81000000 T _text
ffffffff81001000 t a_open
ffffffff81001100 t show
ffffffff81001200 t a_write
ffffffff81001300 T a_init_global
ffffffff81002000 t b_open
ffffffff81002100 t b_helper
ffffffff81002200 t show
ffffffff81002300 t b_release
ffffffff81003000 T show_all
ffffffff82000000 d counter
ffffffff82000010 D counter_g
ffffffff82000020 d counter
ffffffffc0001000 t show\t[mymod]
";

#[test]
fn unique_and_neighbour_choice() {
    let l = listing(TWO_SHOWS);
    let b = tu(
        "fs/b.c",
        &[
            ("b_open", ".text.b_open", true),
            ("b_helper", ".text.b_helper", true),
            ("show", ".text.show", true),
            ("b_release", ".text.b_release", true),
        ],
    );
    let a = tu(
        "fs/a.c",
        &[
            ("a_open", ".text.a_open", true),
            ("show", ".text.show", true),
            ("a_write", ".text.a_write", true),
        ],
    );
    assert_eq!(l.sympos("vmlinux", "show_all", &b).unwrap(), 0);
    assert_eq!(l.sympos("vmlinux", "show", &a).unwrap(), 1);
    let got = l.locate("vmlinux", "show", &b).unwrap();
    assert_eq!(
        (got.sympos, got.addr, got.rule),
        (
            2,
            0xffffffff81002200,
            SymposRule::Neighbours {
                support: Support {
                    matched: 3,
                    distinct: 3,
                    gap: 0
                },
                runner_up: Support::default()
            }
        )
    );
    // Module lines are their own object.
    assert_eq!(l.sympos("mymod", "show", &a).unwrap(), 0);
    assert!(l.contains("mymod", "show") && !l.contains("mymod", "a_open"));
}

#[test]
fn local_and_global_of_one_name() {
    let l = listing(TWO_SHOWS);
    let g = tu("kernel/g.c", &[("counter_g", ".data.counter_g", false)]);
    assert_eq!(l.sympos("vmlinux", "counter_g", &g).unwrap(), 0);
    // No data neighbours to go by: both locals are equally likely.
    let c = tu("kernel/c.c", &[("counter", ".data.counter", true)]);
    let err = l.sympos("vmlinux", "counter", &c).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot tell which `counter` in vmlinux belongs to kernel/c.c"),
        "{msg}"
    );
    assert!(
        msg.contains("sympos 2: ffffffff82000020 d counter between [counter, counter_g] and []"),
        "{msg}"
    );
    assert!(msg.contains("FILE symbols"), "{msg}");
    // With a data neighbour, the second one is found.
    let c2 = tu(
        "kernel/c.c",
        &[
            ("counter_g", ".data.counter_g", false),
            ("counter", ".data.counter", true),
        ],
    );
    assert_eq!(l.sympos("vmlinux", "counter", &c2).unwrap(), 2);
}

#[test]
fn like_sections_with_like() {
    // `show` sits among init code: the unit's .text functions are no evidence for it.
    let l = listing(
        "ffffffff81001000 t a_open\nffffffff81001100 t show\nffffffff83000000 t a_setup\nffffffff83000100 t show\n",
    );
    let a = tu(
        "fs/a.c",
        &[
            ("a_open", ".text.a_open", true),
            ("a_setup", ".init.text", true),
            ("show", ".init.text", true),
        ],
    );
    assert_eq!(l.sympos("vmlinux", "show", &a).unwrap(), 2);
}

#[test]
fn missing_and_unknown_module() {
    let l = listing(TWO_SHOWS);
    let a = tu("fs/a.c", &[]);
    let e = l.sympos("vmlinux", "nope", &a).unwrap_err();
    assert!(matches!(
        e,
        SymposError::Missing {
            object_listed: true,
            ..
        }
    ));
    assert!(e
        .to_string()
        .contains("symbol `nope` (referenced from fs/a.c) is not in vmlinux"));
    let e = l.sympos("xfs", "xfs_foo", &a).unwrap_err();
    assert!(e.to_string().contains("no symbols of module xfs"), "{e}");
}

#[test]
fn bad_lines_are_named() {
    let error = |path: &str, text: &str| {
        format!(
            "{:#}",
            SymbolListing::parse_text(Path::new(path), text).unwrap_err()
        )
    };
    let err = error("k", "ffffffff81000000 T a\nzzzz T b\n");
    assert!(err.starts_with("k:2: address \"zzzz\" is not hex"), "{err}");
    // A binary file's "line" is cut short in the message.
    let noise = "\u{1}x".repeat(5000);
    let err = error("k", &noise);
    assert!(
        err.len() < 400 && err.contains("9920 more characters"),
        "{err}"
    );
    let err = error("k", "ffffffff81000000 T a\nffffffff80000000 T b\n");
    assert!(
        err.contains("k:2: address ffffffff80000000 is below"),
        "{err}"
    );
    let err = error(
        "System.map",
        "ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n",
    );
    assert!(err.contains("placeholder System.map"), "{err}");
}

#[test]
fn walk_stops_at_the_next_unit() {
    let names = ["b", "x", "c", "y", "z", "w", "q", "d", "c"];
    let text: String = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{:x} t {n}\n", 0x1000 + i))
        .collect();
    let l = listing(&text);
    let obj = &l.objects["vmlinux"];
    // b, then c across one stranger, then four strangers end the run before d.
    let s = walk(obj, 0..names.len(), &["b", "c", "d"]);
    assert_eq!(
        s,
        Support {
            matched: 2,
            distinct: 1,
            gap: 1
        }
    );
    // A unit name may be skipped: the listing lacks `a`.
    let s = walk(obj, 0..3, &["a", "b", "c"]);
    assert_eq!(
        s,
        Support {
            matched: 2,
            distinct: 1,
            gap: 1
        }
    );
}
