//! Module listings against the kernel itself: Debian's 6.1 kernel boots in QEMU, loads distro
//! modules and prints their `/proc/kallsyms` lines; the listing klp-build derives from each `.ko`
//! must hold the same symbols in the same order (livepatch counts sympos in that order), and a
//! rebuilt translation unit of the module must find its own static among same-named ones.

mod kobj;
mod support;

use std::path::{Path, PathBuf};

use klp_build::kernel::symbols::{SymbolListing, SymposRule};

/// Modules without dependencies: minix has same-named statics in two objects (itree_v1.c and
/// itree_v2.c both include itree_common.c), nilfs2 is large and has `.init` and `.exit` code.
const MODULES: &[&str] = &["minix", "nilfs2"];

fn ko(lab: &support::Lab, name: &str) -> PathBuf {
    let dep = std::fs::read_to_string(lab.modules.join("modules.dep")).unwrap();
    let rel = dep
        .lines()
        .filter_map(|l| l.split(':').next())
        .find(|p| p.rsplit('/').next() == Some(&format!("{name}.ko")))
        .unwrap_or_else(|| panic!("{name}.ko is not in modules.dep"));
    lab.modules.join(rel)
}

/// The `/proc/kallsyms` lines of `MODULES`, loaded in the booted kernel; cached under the lab.
fn captured(lab: &support::Lab) -> PathBuf {
    let cache = lab
        .dir
        .join("test-cache")
        .join(format!("kallsyms-{}", MODULES.join("-")));
    if cache.exists() {
        return cache;
    }
    let kos: Vec<PathBuf> = MODULES.iter().map(|m| ko(lab, m)).collect();
    let files: Vec<&Path> = kos.iter().map(|p| p.as_path()).collect();
    let mut script = String::new();
    for m in MODULES {
        script.push_str(&format!("insmod /modules/{m}.ko\n"));
    }
    // Quiet the console so no kernel message splits a listing line.
    script.push_str("echo 1 > /proc/sys/kernel/printk\n");
    let tags = MODULES.join("|");
    script.push_str(&format!(
        "grep -E '\\[({tags})\\]$' /proc/kallsyms | sed 's/^/KSYM /'\n"
    ));
    let boot = support::boot(lab, "symbols_modules", &files, &script).unwrap();
    assert!(
        boot.passed,
        "the capture boot failed, see {}",
        boot.log_file.display()
    );
    let lines: String = boot
        .log
        .lines()
        .filter_map(|l| l.strip_prefix("KSYM "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        lines.lines().count() > 200,
        "too few module lines captured, see {}",
        boot.log_file.display()
    );
    std::fs::create_dir_all(cache.parent().unwrap()).unwrap();
    std::fs::write(&cache, lines).unwrap();
    cache
}

#[test]
fn ko_listing_is_the_kernels_order() {
    let Some(lab) = support::lab("ko_listing_is_the_kernels_order") else {
        return;
    };
    let capture = SymbolListing::load(&captured(lab)).unwrap();
    for m in MODULES {
        let mut from_ko = SymbolListing::empty(Path::new("modules"));
        from_ko.add_module(m, &ko(lab, m)).unwrap();
        let kernel: Vec<&str> = capture.listed(m).iter().map(|e| e.2).collect();
        let ours: Vec<&str> = from_ko.listed(m).iter().map(|e| e.2).collect();
        if kernel != ours {
            let diff = similar::TextDiff::from_slices(&kernel, &ours);
            let text: String = diff
                .iter_all_changes()
                .filter(|c| c.tag() != similar::ChangeTag::Equal)
                .take(20)
                .map(|c| format!("{}{}\n", c.tag(), c.value()))
                .collect();
            panic!("{m}: the .ko listing differs from the kernel's (- kernel, + ours):\n{text}");
        }
        // Type letters agree too, but for exported symbols (the kernel uppercases only those).
        for ((_, kt, n), (_, ot, _)) in capture.listed(m).iter().zip(from_ko.listed(m).iter()) {
            assert_eq!(
                kt.to_ascii_lowercase(),
                ot.to_ascii_lowercase(),
                "{m}: type of {n}"
            );
        }
        eprintln!("{m}: {} symbols in kernel order", ours.len());
    }
}

#[test]
fn module_statics_find_their_instance() {
    let Some(lab) = support::lab("module_statics_find_their_instance") else {
        return;
    };
    kobj::prepared(lab);
    let capture = SymbolListing::load(&captured(lab)).unwrap();
    let mut from_ko = SymbolListing::empty(Path::new("modules"));
    from_ko.add_module("minix", &ko(lab, "minix")).unwrap();
    for (rel, name, expected) in [
        ("fs/minix/itree_v1.o", "get_block", 1),
        ("fs/minix/itree_v2.o", "get_block", 2),
        ("fs/minix/itree_v1.o", "free_branches", 1),
        ("fs/minix/itree_v2.o", "free_branches", 2),
    ] {
        let obj = kobj::kernel_object(&lab.src, &lab.dir, rel);
        let tu = support::units::translation_unit(&obj, &rel.replace(".o", ".c"));
        for (what, listing) in [
            ("captured /proc/kallsyms", &capture),
            ("minix.ko", &from_ko),
        ] {
            let got = listing
                .locate("minix", name, &tu)
                .unwrap_or_else(|e| panic!("{rel}: {what}: {e}"));
            eprintln!(
                "{rel} {name} ({what}): sympos {} by {:?}",
                got.sympos, got.rule
            );
            assert_eq!(got.sympos, expected, "{rel}: {name} in {what}");
            assert!(
                matches!(got.rule, SymposRule::Neighbours { .. }),
                "{rel}: {name}: {:?}",
                got.rule
            );
        }
    }
}
