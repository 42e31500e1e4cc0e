//! The runtime core in the distro kernel, before any diff: hand-made modules (a replacement
//! compiled by kbuild, a function table, the core, linked by `kbuild::link_module`) boot in
//! QEMU with Debian's 6.1 kernel. The good one patches `cmdline_proc_show` (vmlinux) and defers
//! an `xfs` object that is not loaded, `/proc/cmdline` shows "patched", and disabling restores
//! it; the bad one names a function the kernel lacks and fails to load with the core's report.
//! A second boot replays the replace modes of that kernel (`bool replace`): a stacked hotfix
//! beside a cumulative module, a cumulative v2 that replaces both and reverts what only they
//! patched, a v2 without v1's state refused by the kernel, and `also_replace_sets` refused by
//! the core.

mod kmod_support;
mod support;

use std::path::PathBuf;

use klp_build::contract::spec::{ModuleSpec, ReplaceMode, ReplaceRequest, StateSpec};
use klp_build::emit::kbuild::{link_module, KmodInput, TABLES_OBJECT};
use klp_build::emit::tables::{write_tables, FuncEntry};
use klp_build::progress::Quiet;
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
        spec: &spec(kbuild, name, ReplaceMode::Stacked),
        objects,
        tables: &tables,
    };
    link_module(kbuild, &dir, &input, 2, &[], &mut Quiet).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A module spec with no states.
fn spec(kbuild: &std::path::Path, name: &str, replace: ReplaceMode) -> ModuleSpec {
    ModuleSpec {
        name: name.to_string(),
        replace,
        states: Vec::new(),
        api: kmod::livepatch_api(kbuild),
    }
}

/// `name` (a `/proc` show function) replaced by `klp_<tag>_<name>`, printing `text`.
fn show(tag: &str, name: &str, text: &str) -> (String, String) {
    (
        format!("{tag}_{name}.c"),
        format!(
            r#"#include <linux/seq_file.h>

int klp_{tag}_{name}(struct seq_file *m, void *v);

int klp_{tag}_{name}(struct seq_file *m, void *v)
{{
	seq_puts(m, "{text}\n");
	return 0;
}}
"#
        ),
    )
}

fn entry(tag: &str, name: &str) -> FuncEntry {
    FuncEntry {
        objname: None,
        old_name: name.into(),
        new_symbol: format!("klp_{tag}_{name}"),
        sympos: 0,
    }
}

const STATE: u64 = 0x4b4c_5001;

#[test]
fn cumulative_replaces_and_hotfix_stacks_on_the_distro_kernel() {
    let test = "cumulative_replaces_and_hotfix_stacks_on_the_distro_kernel";
    let Some(lab) = support::lab(test) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let sources = [
        show("v1", "cmdline_proc_show", "cmdline-v1"),
        show("v1", "version_proc_show", "version-v1"),
        show("hot", "loadavg_proc_show", "loadavg-hotfix"),
        show("v2", "cmdline_proc_show", "cmdline-v2"),
    ];
    let sources: Vec<(&str, &str)> = sources
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    let objects = kmod::compile_objects(&lab.kbuild, &tmp.path().join("src"), &sources);
    let obj = |tag: &str| -> Vec<PathBuf> {
        objects
            .iter()
            .filter(|o| {
                o.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&format!("{tag}_")))
            })
            .cloned()
            .collect()
    };
    let api = kmod::livepatch_api(&lab.kbuild);
    let cumulative = ReplaceRequest::default();
    let hotfix = ReplaceRequest {
        no_replace: true,
        ..Default::default()
    };
    let state = |version| StateSpec { id: STATE, version };
    let build = |name: &str,
                 req: &ReplaceRequest,
                 states: &[StateSpec],
                 tag: &str,
                 entries: &[FuncEntry]| {
        let spec = ModuleSpec::new(name, req, states, api.clone()).unwrap();
        kmod_support::link(&lab.kbuild, tmp.path(), &spec, &obj(tag), entries)
    };
    let v1 = build(
        "lp-v1",
        &cumulative,
        &[state(1)],
        "v1",
        &[
            entry("v1", "cmdline_proc_show"),
            entry("v1", "version_proc_show"),
        ],
    );
    let hot = build(
        "lp-hot",
        &hotfix,
        &[],
        "hot",
        &[entry("hot", "loadavg_proc_show")],
    );
    let v2 = build(
        "lp-v2",
        &cumulative,
        &[state(2)],
        "v2",
        &[entry("v2", "cmdline_proc_show")],
    );
    let v2_nostate = build(
        "lp-v2-nostate",
        &cumulative,
        &[],
        "v2",
        &[entry("v2", "cmdline_proc_show")],
    );

    // 6.1 has no sysfs `replace` attribute (added in 6.8): the modes show in what the patches do.
    let script = r#"
lp=/sys/kernel/livepatch
wait_for() { i=0; until eval "$1"; do i=$((i+1)); [ $i -lt 60 ] || { echo "replace-e2e: timeout: $1"; return 1; }; sleep 1; done; }
settled() { wait_for "[ \"\$(cat $lp/$1/transition)\" = 0 ]"; }

if insmod /modules/lp-v1.ko also_replace_sets=1; then echo "replace-e2e: also_replace_sets accepted"; exit 1; fi
dmesg | grep 'also_replace_sets=1 refused' | grep -q 'bool replace'
[ ! -d $lp/lp_v1 ]
grep -q console=ttyS0 /proc/cmdline
echo "replace-e2e: also_replace_sets refused"

insmod /modules/lp-v1.ko
settled lp_v1
[ "$(cat /proc/cmdline)" = cmdline-v1 ]
[ "$(cat /proc/version)" = version-v1 ]
echo "replace-e2e: v1 enabled"

insmod /modules/lp-hot.ko
settled lp_hot
[ "$(cat $lp/lp_v1/enabled)" = 1 ] && [ "$(cat $lp/lp_hot/enabled)" = 1 ]
[ "$(cat /proc/loadavg)" = loadavg-hotfix ]
[ "$(cat /proc/cmdline)" = cmdline-v1 ]
echo "replace-e2e: hotfix stacked beside v1"

if insmod /modules/lp-v2-nostate.ko; then echo "replace-e2e: v2 without the state loaded"; exit 1; fi
dmesg | grep -q 'Livepatch patch (lp_v2_nostate) is not compatible'
[ "$(cat $lp/lp_v1/enabled)" = 1 ] && [ "$(cat /proc/cmdline)" = cmdline-v1 ]
echo "replace-e2e: v2 without v1's state refused"

insmod /modules/lp-v2.ko
settled lp_v2
wait_for "[ ! -d $lp/lp_v1 ] && [ ! -d $lp/lp_hot ]"
[ "$(cat $lp/lp_v2/enabled)" = 1 ]
[ "$(cat /proc/cmdline)" = cmdline-v2 ]
grep -q '^Linux version' /proc/version
grep -vq loadavg-hotfix /proc/loadavg
echo "replace-e2e: v2 replaced v1 and the hotfix; version: $(cut -c1-13 /proc/version)"
rmmod lp_v1
rmmod lp_hot
echo "replace-e2e: replaced modules unloaded"
"#;
    let boot = support::boot(lab, test, &[&v1, &hot, &v2, &v2_nostate], script).unwrap();
    assert!(
        boot.passed,
        "the guest script failed; console log {}",
        boot.log_file.display()
    );
    for line in [
        "replace-e2e: also_replace_sets refused",
        "replace-e2e: v1 enabled",
        "replace-e2e: hotfix stacked beside v1",
        "replace-e2e: v2 without v1's state refused",
        "replace-e2e: v2 replaced v1 and the hotfix; version: Linux version",
        "replace-e2e: replaced modules unloaded",
    ] {
        assert!(
            boot.log.contains(line),
            "console log {} lacks {line:?}",
            boot.log_file.display()
        );
    }
}
