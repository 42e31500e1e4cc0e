//! The runtime core in the distro kernel, before any diff: hand-made modules (a replacement
//! compiled by kbuild, a function table, the core, linked by `kbuild::link_module`) boot in
//! QEMU with Debian's 6.1 kernel. The good one patches `cmdline_proc_show` (vmlinux) and defers
//! an `xfs` object that is not loaded, `/proc/cmdline` shows "patched", and disabling restores
//! it; the bad one names a function the kernel lacks and fails to load with the core's report.

mod kmod_support;
mod support;

use std::path::PathBuf;

use klp_build::emit::kbuild::{link_module, KmodInput, TABLES_OBJECT};
use klp_build::emit::spec::{ModuleSpec, ReplaceMode};
use klp_build::emit::tables::{write_tables, FuncEntry};
use kmod_support as kmod;

/// A replacement for the xfs entry: the guest never loads xfs, so it is never called; it makes
/// the table span two objects, which the core must turn into two `klp_object`s.
const XFS_NEW: (&str, &str) = (
    "xfs_new.c",
    r#"struct xfsstats;

int klp_build_new_xfs_stats_format(struct xfsstats *stats, char *buf);

int klp_build_new_xfs_stats_format(struct xfsstats *stats, char *buf)
{
	return 0;
}
"#,
);

const GOOD: &str = "livepatch-kmod-e2e";
const BAD: &str = "livepatch-kmod-bad";
const MISSING: &str = "klp_build_no_such_function";

#[test]
fn hand_made_module_patches_and_unpatches_the_distro_kernel() {
    let test = "hand_made_module_patches_and_unpatches_the_distro_kernel";
    let Some(lab) = support::lab(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut sources = kmod::CMDLINE_OBJECTS.to_vec();
    sources.push(XFS_NEW);
    let objects = kmod::compile_objects(&lab.kbuild, &tmp.path().join("src"), &sources);

    let xfs = FuncEntry {
        objname: Some("xfs".into()),
        old_name: "xfs_stats_format".into(),
        new_symbol: "klp_build_new_xfs_stats_format".into(),
        sympos: 0,
    };
    let missing = FuncEntry {
        old_name: MISSING.into(),
        ..kmod::cmdline_entry()
    };
    let good = module(
        &lab.kbuild,
        tmp.path(),
        GOOD,
        &objects,
        &[xfs, kmod::cmdline_entry()],
    );
    let bad = module(
        &lab.kbuild,
        tmp.path(),
        BAD,
        &objects,
        &[kmod::cmdline_entry(), missing],
    );

    let sys = format!("/sys/kernel/livepatch/{}", GOOD.replace('-', "_"));
    let script = format!(
        r#"
wait_for() {{ i=0; until eval "$1"; do i=$((i+1)); [ $i -lt 60 ] || {{ echo "kmod-e2e: timeout: $1"; return 1; }}; sleep 1; done; }}
grep -q console=ttyS0 /proc/cmdline

if insmod /modules/{BAD}.ko; then echo "kmod-e2e: {BAD} loaded"; exit 1; fi
dmesg | grep -q 'klp_enable_patch() failed'
dmesg | grep -q 'object vmlinux: function {MISSING}, sympos 0'
grep -q console=ttyS0 /proc/cmdline
echo "kmod-e2e: bad module refused"

insmod /modules/{GOOD}.ko
wait_for '[ "$(cat {sys}/transition)" = 0 ]'
[ "$(cat {sys}/enabled)" = 1 ]
test -d {sys}/vmlinux/cmdline_proc_show,1
test -d {sys}/xfs/xfs_stats_format,1
echo "kmod-e2e: cmdline: $(cat /proc/cmdline)"
[ "$(cat /proc/cmdline)" = {patched} ]

echo 0 > {sys}/enabled
wait_for '[ ! -d {sys} ]'
grep -q console=ttyS0 /proc/cmdline
echo "kmod-e2e: restored"
rmmod {good_mod}
echo "kmod-e2e: unloaded"
"#,
        patched = kmod::CMDLINE_PATCHED,
        good_mod = GOOD.replace('-', "_"),
    );
    let boot = support::boot(lab, test, &[&good, &bad], &script).unwrap();
    let log = &boot.log;
    assert!(
        boot.passed,
        "the guest script failed; console log {}",
        boot.log_file.display()
    );
    for line in [
        "kmod-e2e: bad module refused",
        "kmod-e2e: cmdline: patched",
        "kmod-e2e: restored",
        "kmod-e2e: unloaded",
        "livepatch: enabling patch 'livepatch_kmod_e2e'",
        "livepatch: 'livepatch_kmod_e2e': patching complete",
        "livepatch: 'livepatch_kmod_e2e': unpatching complete",
        &format!("livepatch: symbol '{MISSING}' not found in symbol table"),
    ] {
        assert!(
            log.contains(line),
            "console log {} lacks {line:?}",
            boot.log_file.display()
        );
    }
}

/// Builds module `name` from the prebuilt `objects` and a table of `entries`, in `tmp/<name>`.
fn module(
    kbuild: &std::path::Path,
    tmp: &std::path::Path,
    name: &str,
    objects: &[PathBuf],
    entries: &[FuncEntry],
) -> PathBuf {
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let tables = dir.join(TABLES_OBJECT);
    write_tables(entries, &tables).unwrap();
    let input = KmodInput {
        spec: &spec(name, ReplaceMode::Stacked),
        objects,
        tables: &tables,
    };
    link_module(kbuild, &dir, &input, 2).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A module spec with no states.
fn spec(name: &str, replace: ReplaceMode) -> ModuleSpec {
    ModuleSpec {
        name: name.to_string(),
        replace,
        states: Vec::new(),
    }
}
