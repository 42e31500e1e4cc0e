//! Fixes written with the patch-author headers: kpatch-build's `kpatch-macros.h` and
//! `kpatch-syscall.h`, the kernel's `<linux/livepatch_helpers.h>` (which Debian's 6.1 tree lacks)
//! and klp-build's own `klp-build.h` (`testdata/patches/fixes/{kpatch,klp}-*.patch`), built by
//! klp-build against Debian's 6.1 source, loaded one after another in one QEMU boot of Debian's
//! vmlinuz (each script loads its module, checks the new behaviour and the callbacks' lines in
//! dmesg in order, disables and unloads it: they cannot interfere). Fixes that must be refused are
//! checked for their exit code and message. The syscall fixes and an upstream-callbacks fix also
//! load and work on Debian's 6.12. Two fixes register callbacks and change no function, one for
//! vmlinux and one for the binfmt_misc module (loaded before, then after the livepatch): their
//! objects have an empty, terminated function array, and the callbacks print in order. The
//! reading of callback registrations and the
//! callback table are tested on objects gcc compiles here, without the lab.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use klp_build::contract::abi;
use klp_build::elf::{read_file, Patched};
use klp_build::emit::callbacks::{registrations, Kind};
use klp_build::emit::tables::{tables_object_with, CallbackEntry, FuncEntry};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn out_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("klp-e2e-author-headers");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn module(name: &str) -> String {
    format!("livepatch-ah-{name}")
}

/// Runs klp-build on `testdata/patches/fixes/<name>.patch`: (exit code, stdout, stderr, module).
fn klp_build(lab: &support::Lab, name: &str) -> (Option<i32>, String, String, PathBuf) {
    // Per series: the two series' tests run in parallel and build fixes of the same name.
    let out = out_dir().join(&lab.series);
    std::fs::create_dir_all(&out).unwrap();
    let ko = out.join(format!("{}.ko", module(name)));
    let _ = std::fs::remove_file(&ko);
    let patch = root().join(format!("testdata/patches/fixes/{name}.patch"));
    let res = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .args(support::inputs::klp_build_args(
            lab,
            &patch,
            &out.join(format!("work-{name}")),
            &ko,
        ))
        .arg("--modules")
        .arg(&lab.modules)
        .arg("--name")
        .arg(module(name))
        .args(["--report", "json", "-j", "2"])
        .output()
        .expect("run klp-build");
    (
        res.status.code(),
        String::from_utf8_lossy(&res.stdout).into_owned(),
        String::from_utf8_lossy(&res.stderr).into_owned(),
        ko,
    )
}

/// A fix that builds: the functions it must patch, the callbacks it must register (`kind
/// function` of the report), and its guest script.
struct Works {
    name: &'static str,
    functions: &'static [&'static str],
    callbacks: &'static [&'static str],
    script: &'static str,
}

/// The guest part of a callback fix: the attribute shows `tag` while patched, and the four
/// callbacks print `<prefix> pre-patch callback` and the others, in the kernel's order.
const fn callbacks_script() -> &'static str {
    r#"
cb_check() { # name tag prefix
    dmesg -c > /dev/null
    grep -q "^[01]$" /sys/kernel/fscaps || fail "$1: fscaps reads $(cat /sys/kernel/fscaps) before the patch"
    load_patch "livepatch-ah-$1"
    grep -q "^[01] $2$" /sys/kernel/fscaps || fail "$1: fscaps reads $(cat /sys/kernel/fscaps) while patched"
    unload_patch "livepatch-ah-$1"
    grep -q "^[01]$" /sys/kernel/fscaps || fail "$1: fscaps reads $(cat /sys/kernel/fscaps) after the patch"
    got=$(dmesg | grep -o "klp-build: $3 .*" | tr '\n' ';')
    want="klp-build: $3 pre-patch callback;klp-build: $3 post-patch callback;klp-build: $3 pre-unpatch callback;klp-build: $3 post-unpatch callback;"
    [ "$got" = "$want" ] || fail "$1: callbacks printed '$got', want '$want'"
    step "$1: fscaps tagged while patched, callbacks in order: $got"
}

cb_only_vmlinux() { # name: callbacks for vmlinux and no function
    dmesg -c > /dev/null
    load_patch "livepatch-ah-$1"
    obj=/sys/kernel/livepatch/livepatch_ah_$(echo "$1" | tr - _)/vmlinux
    [ "$(cat $obj/patched)" = 1 ] || fail "$1: the vmlinux object is not patched"
    unload_patch "livepatch-ah-$1"
    got=$(dmesg | grep -o "klp-build: vmlinux-only .*" | tr '\n' ';')
    want="klp-build: vmlinux-only pre-patch callback;klp-build: vmlinux-only post-patch callback;klp-build: vmlinux-only pre-unpatch callback;klp-build: vmlinux-only post-unpatch callback;"
    [ "$got" = "$want" ] || fail "$1: callbacks printed '$got', want '$want'"
    step "$1: no function, vmlinux callbacks in order: $got"
}
"#
}

const WORKS: &[Works] = &[
    Works {
        name: "kpatch-syscall",
        functions: &["__ia32_sys_sethostname", "__x64_sys_sethostname"],
        callbacks: &[],
        script: r#"
hostname a/b || fail "kpatch-syscall: hostname a/b refused before the patch"
hostname klp-guest
load_patch livepatch-ah-kpatch-syscall
hostname a/b 2> /dev/null && fail "kpatch-syscall: hostname a/b accepted while patched"
[ "$(hostname)" = klp-guest ] || fail "kpatch-syscall: hostname changed to $(hostname)"
hostname klp-ok || fail "kpatch-syscall: a hostname without a slash refused"
unload_patch livepatch-ah-kpatch-syscall
hostname a/b || fail "kpatch-syscall: hostname a/b refused after the patch"
step "kpatch-syscall: sethostname refuses a slash only while patched"
"#,
    },
    Works {
        name: "klp-syscall",
        functions: &["__ia32_sys_setdomainname", "__x64_sys_setdomainname"],
        callbacks: &[],
        script: r#"
/modules/setdomain a/b || fail "klp-syscall: setdomainname a/b refused before the patch"
/modules/setdomain klp-domain
load_patch livepatch-ah-klp-syscall
out=$(/modules/setdomain a/b) && fail "klp-syscall: setdomainname a/b accepted while patched"
[ "$out" = "setdomainname: Invalid argument" ] || fail "klp-syscall: setdomainname a/b said '$out'"
[ "$(cat /proc/sys/kernel/domainname)" = klp-domain ] || fail "klp-syscall: domainname changed"
unload_patch livepatch-ah-klp-syscall
/modules/setdomain a/b || fail "klp-syscall: setdomainname a/b refused after the patch"
step "klp-syscall: setdomainname refuses a slash only while patched"
"#,
    },
    Works {
        name: "kpatch-callbacks",
        functions: &["fscaps_show"],
        callbacks: &[
            "pre-patch klp_fscaps_pre_patch",
            "post-patch klp_fscaps_post_patch",
            "pre-unpatch klp_fscaps_pre_unpatch",
            "post-unpatch klp_fscaps_post_unpatch",
        ],
        script: "cb_check kpatch-callbacks kpatch kpatch\n",
    },
    Works {
        name: "klp-callbacks",
        functions: &["fscaps_show"],
        callbacks: &[
            "pre-patch klp_fscaps_pre_patch",
            "post-patch klp_fscaps_post_patch",
            "pre-unpatch klp_fscaps_pre_unpatch",
            "post-unpatch klp_fscaps_post_unpatch",
        ],
        script: "cb_check klp-callbacks klp klp\n",
    },
    Works {
        name: "klp-build-callbacks",
        functions: &["fscaps_show"],
        callbacks: &[
            "pre-patch fscaps_pre_patch",
            "post-patch fscaps_post_patch",
            "pre-unpatch fscaps_pre_unpatch",
            "post-unpatch fscaps_post_unpatch",
        ],
        script: "cb_check klp-build-callbacks klp-build klp-build.h\n",
    },
    // Callbacks and no changed function: an object with an empty, terminated function array,
    // for vmlinux and for a module loaded before and after the livepatch.
    Works {
        name: "kpatch-callbacks-only",
        functions: &[],
        callbacks: &[
            "pre-patch klp_only_pre_patch",
            "post-patch klp_only_post_patch",
            "pre-unpatch klp_only_pre_unpatch",
            "post-unpatch klp_only_post_unpatch",
        ],
        script: "cb_only_vmlinux kpatch-callbacks-only\n",
    },
    Works {
        name: "kpatch-callbacks-only-module",
        functions: &[],
        callbacks: &[
            "pre-patch klp_binfmt_pre_patch",
            "post-patch klp_binfmt_post_patch",
            "pre-unpatch klp_binfmt_pre_unpatch",
            "post-unpatch klp_binfmt_post_unpatch",
        ],
        script: r#"
cbo_want() { for k in "$@"; do printf 'klp-build: binfmt-only %s callback;' "$k"; done; }
cbo_got() { dmesg | grep -o "klp-build: binfmt-only .*" | tr '\n' ';'; }
cbo_check() { # what, kinds...
    what=$1; shift
    [ "$(cbo_got)" = "$(cbo_want "$@")" ] || fail "kpatch-callbacks-only-module: $what: callbacks printed '$(cbo_got)', want '$(cbo_want "$@")'"
}
lp=livepatch-ah-kpatch-callbacks-only-module
obj=/sys/kernel/livepatch/livepatch_ah_kpatch_callbacks_only_module/binfmt_misc
dmesg -c > /dev/null
insmod /modules/binfmt_misc.ko || fail "insmod binfmt_misc.ko failed"
load_patch $lp
[ "$(cat $obj/patched)" = 1 ] || fail "kpatch-callbacks-only-module: the loaded binfmt_misc object is not patched"
cbo_check "module loaded first, livepatch enabled" pre-patch post-patch
unload_patch $lp
cbo_check "module loaded first, livepatch disabled" pre-patch post-patch pre-unpatch post-unpatch
rmmod binfmt_misc || fail "rmmod binfmt_misc failed"
step "kpatch-callbacks-only-module: module loaded before the livepatch: $(cbo_got)"
dmesg -c > /dev/null
load_patch $lp
[ "$(cat $obj/patched)" = 0 ] || fail "kpatch-callbacks-only-module: binfmt_misc patched before it was loaded"
cbo_check "livepatch enabled before the module"
insmod /modules/binfmt_misc.ko || fail "insmod binfmt_misc.ko failed"
[ "$(cat $obj/patched)" = 1 ] || fail "kpatch-callbacks-only-module: binfmt_misc not patched when it loaded"
cbo_check "module loaded after the livepatch" pre-patch post-patch
rmmod binfmt_misc || fail "rmmod binfmt_misc failed"
cbo_check "module removed under the livepatch" pre-patch post-patch pre-unpatch post-unpatch
unload_patch $lp
cbo_check "livepatch disabled after the module left" pre-patch post-patch pre-unpatch post-unpatch
step "kpatch-callbacks-only-module: module loaded after the livepatch: $(cbo_got)"
"#,
    },
    Works {
        name: "kpatch-hooks",
        // profiling_show changed too, but is marked KPATCH_IGNORE_FUNCTION.
        functions: &["fscaps_show"],
        callbacks: &[
            "post-patch __kpatch_load_hook_cb",
            "pre-unpatch __kpatch_unload_hook_cb",
        ],
        script: r#"
dmesg -c > /dev/null
load_patch livepatch-ah-kpatch-hooks
grep -q "^[01] hooks$" /sys/kernel/fscaps || fail "kpatch-hooks: fscaps reads $(cat /sys/kernel/fscaps)"
grep -q "ignored" /sys/kernel/profiling && fail "kpatch-hooks: the ignored profiling_show was patched"
unload_patch livepatch-ah-kpatch-hooks
got=$(dmesg | grep -o "klp-build: kpatch .* hook" | tr '\n' ';')
[ "$got" = "klp-build: kpatch load hook;klp-build: kpatch unload hook;" ] || fail "kpatch-hooks: hooks printed '$got'"
step "kpatch-hooks: load and unload hooks ran, the ignored function was left alone: $got"
"#,
    },
];

/// The fixes of [`WORKS`] that apply to Debian's 6.12 tree, and the klp-callbacks fix written for
/// that tree (its fscaps_show() uses sysfs_emit()) and the vmlinux callbacks-only one (other
/// lines follow its includes): 6.12 has no `<linux/livepatch_helpers.h>`
/// either, and its syscall wrappers are those KLP_BUILD_SYSCALL_DEFINEn follows.
const WORKS_6_12: &[Works] = &[
    Works {
        name: "kpatch-syscall",
        ..WORKS[0]
    },
    Works {
        name: "klp-syscall",
        ..WORKS[1]
    },
    Works {
        name: "klp-callbacks-612",
        functions: &["fscaps_show"],
        callbacks: &[
            "pre-patch klp_fscaps_pre_patch",
            "post-patch klp_fscaps_post_patch",
            "pre-unpatch klp_fscaps_pre_unpatch",
            "post-unpatch klp_fscaps_post_unpatch",
        ],
        script: "cb_check klp-callbacks-612 klp612 klp612\n",
    },
    Works {
        name: "kpatch-callbacks-only-612",
        script: "cb_only_vmlinux kpatch-callbacks-only-612\n",
        ..WORKS[5]
    },
    Works {
        name: "kpatch-callbacks-only-module",
        ..WORKS[6]
    },
];

/// `kind function` of every callback of the JSON report, and the patched functions' names.
fn report_of(stdout: &str) -> (Vec<String>, Vec<String>) {
    let report: serde_json::Value = serde_json::from_str(stdout).expect("JSON report");
    let objects = report["objects"].as_array().expect("report.objects");
    let mut funcs: Vec<String> = objects
        .iter()
        .flat_map(|o| o["funcs"].as_array().cloned().unwrap_or_default())
        .map(|f| f["name"].as_str().unwrap_or("?").to_string())
        .collect();
    funcs.sort();
    let callbacks = objects
        .iter()
        .flat_map(|o| o["callbacks"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let source = c[1].as_str().unwrap_or("?");
            let func = source.rsplit(": ").next().unwrap_or(source);
            format!("{} {func}", c[0].as_str().unwrap_or("?"))
        })
        .collect();
    (funcs, callbacks)
}

/// Builds `works` on `lab` and runs their guest scripts in one boot.
fn build_and_boot(lab: &support::Lab, boot_name: &str, works: &[Works]) {
    let mut modules = Vec::new();
    let mut script = std::fs::read_to_string(root().join("testdata/e2e/lib.sh")).unwrap();
    script.push_str(callbacks_script());
    for w in works {
        let (code, stdout, stderr, ko) = klp_build(lab, w.name);
        assert_eq!(
            code,
            Some(0),
            "klp-build failed for {} on {}:\n{stderr}",
            w.name,
            lab.series
        );
        let (funcs, callbacks) = report_of(&stdout);
        assert_eq!(funcs, w.functions, "{}: patched functions", w.name);
        assert_eq!(callbacks, w.callbacks, "{}: registered callbacks", w.name);
        modules.push(ko);
        script.push_str(w.script);
    }
    let setdomain = support::guest::setdomain_program(&out_dir());
    let mut files: Vec<&Path> = modules.iter().map(PathBuf::as_path).collect();
    files.push(&setdomain);
    // The distro's binfmt_misc module, for the callbacks of a module object (Debian's 6.1 and
    // 6.12 build it as a module; the lab's are uncompressed).
    let binfmt_misc = lab.modules.join("kernel/fs/binfmt_misc.ko");
    if works
        .iter()
        .any(|w| w.script.contains("/modules/binfmt_misc.ko"))
    {
        files.push(&binfmt_misc);
    }
    let boot = support::boot(lab, boot_name, &files, &script).expect("boot");
    assert!(
        boot.passed,
        "{boot_name}: the guest check failed (log {}):\n{}",
        boot.log_file.display(),
        boot.log
    );
    for w in works {
        assert!(
            boot.log.contains(&format!("E2E-STEP: {}:", w.name)),
            "{boot_name}: {} did not finish its checks:\n{}",
            w.name,
            boot.log
        );
    }
    assert!(
        !boot.log.contains("Call Trace"),
        "{boot_name}: the kernel printed a stack trace:\n{}",
        boot.log
    );
}

#[test]
fn fixes_with_author_headers_load_work_and_run_their_callbacks_in_one_boot() {
    let Some(lab) =
        support::lab("fixes_with_author_headers_load_work_and_run_their_callbacks_in_one_boot")
    else {
        return;
    };
    build_and_boot(lab, "author-headers", WORKS);
}

#[test]
fn syscall_and_callback_fixes_load_and_work_on_debian_6_12() {
    let Some(lab) = support::lab_series(
        "syscall_and_callback_fixes_load_and_work_on_debian_6_12",
        "6.12",
    ) else {
        return;
    };
    build_and_boot(lab, "author-headers-6.12", WORKS_6_12);
}

#[test]
fn force_unsafe_and_duplicate_callbacks_are_refused_with_their_message() {
    let Some(lab) =
        support::lab("force_unsafe_and_duplicate_callbacks_are_refused_with_their_message")
    else {
        return;
    };
    for (name, message) in [
        (
            "kpatch-err-force-unsafe",
            "func.force-unsafe kernel/ksysfs.o: fscaps_show+0x0 (.text.fscaps_show+0x0): \
             KPATCH_FORCE_UNSAFE(fscaps_show) asks to patch the function outside the livepatch \
             consistency model",
        ),
        (
            "klp-err-duplicate-callbacks",
            "two pre-patch callbacks for vmlinux: kernel/ksysfs.o: fscaps_pre_patch and \
             fs/proc/cmdline.o: cmdline_pre_patch",
        ),
    ] {
        let (code, _, stderr, ko) = klp_build(lab, name);
        assert_eq!(
            code,
            Some(1),
            "{name}: expected exit 1; got {code:?}\n{stderr}"
        );
        assert!(
            stderr.contains(message),
            "{name}: the refusal does not say \"{message}\":\n{stderr}"
        );
        assert!(!ko.exists(), "{name}: a refused fix left {}", ko.display());
    }
}

/// Compiles `c` with gcc the way the kernel compiles a patched file (one section per function)
/// and reads it as a patched object.
fn compiled(name: &str, c: &str) -> klp_build::elf::ElfObject<Patched> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(format!("{name}.c"));
    let obj = dir.path().join(format!("{name}.o"));
    std::fs::write(&src, c).unwrap();
    let out = Command::new("gcc")
        .args(["-c", "-O2", "-ffunction-sections", "-fdata-sections", "-o"])
        .arg(&obj)
        .arg(&src)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc {name}.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_file(&obj).unwrap()
}

/// The registrations of `klp-build.h` and of the kernel's `livepatch_helpers.h`, spelled out
/// without kernel headers: a `static` and a global pointer variable in the section.
const REGISTRATIONS: &str = r#"
struct klp_object;
#define SEC __attribute__((used, section(".discard.klp_callback_ptrs")))
int printf(const char *, ...);
static int fix_pre(struct klp_object *o) { return printf("pre\n"); }
static void fix_post(struct klp_object *o) { printf("post\n"); }
void fix_post_unpatch(struct klp_object *o) { printf("post-unpatch\n"); }
static int (*__klp_pre_patch_callback_klp_build)(struct klp_object *) SEC = fix_pre;
void (*__klp_post_patch_callback_vmlinux)(struct klp_object *) SEC = fix_post;
static void (*__klp_post_unpatch_callback_klp_build)(struct klp_object *) SEC = fix_post_unpatch;
"#;

#[test]
fn registrations_are_read_from_a_gcc_object_sorted_by_kind() {
    let p = compiled("regs", REGISTRATIONS);
    let regs = registrations(&p).expect("registrations");
    let got: Vec<(Kind, &str, &str)> = regs
        .iter()
        .map(|r| (r.kind, p.symbol(r.func).name.as_str(), r.variable.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                Kind::PrePatch,
                "fix_pre",
                "__klp_pre_patch_callback_klp_build"
            ),
            (
                Kind::PostPatch,
                "fix_post",
                "__klp_post_patch_callback_vmlinux"
            ),
            (
                Kind::PostUnpatch,
                "fix_post_unpatch",
                "__klp_post_unpatch_callback_klp_build"
            ),
        ]
    );
}

#[test]
fn a_kind_registered_twice_or_a_callback_of_another_file_is_refused_by_name() {
    let twice = compiled(
        "twice",
        &format!(
            "{REGISTRATIONS}\nstatic int other_pre(struct klp_object *o) {{ return 1; }}\n\
             int (*__klp_pre_patch_callback_vmlinux)(struct klp_object *) SEC = other_pre;\n"
        ),
    );
    let err: Vec<String> = registrations(&twice)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(err.len(), 1, "{err:#?}");
    assert!(err[0].starts_with("callback.duplicate"), "{}", err[0]);
    assert!(
        err[0].contains("two pre-patch callbacks: fix_pre (__klp_pre_patch_callback_klp_build) and other_pre (__klp_pre_patch_callback_vmlinux)")
            || err[0].contains("two pre-patch callbacks: other_pre (__klp_pre_patch_callback_vmlinux) and fix_pre (__klp_pre_patch_callback_klp_build)"),
        "{}",
        err[0]
    );

    let extern_fn = compiled(
        "extern",
        "struct klp_object;\nvoid elsewhere(struct klp_object *o);\n\
         void (*__klp_pre_unpatch_callback_vmlinux)(struct klp_object *) \
         __attribute__((used, section(\".discard.klp_callback_ptrs\"))) = elsewhere;\n",
    );
    let err = registrations(&extern_fn).unwrap_err();
    assert_eq!(err.len(), 1, "{err:#?}");
    assert!(
        err[0]
            .to_string()
            .contains("__klp_pre_unpatch_callback_vmlinux registers elsewhere+0x0, which is not a function defined in this file"),
        "{}",
        err[0]
    );
}

fn entry(objname: Option<&str>, old: &str) -> FuncEntry {
    FuncEntry {
        objname: objname.map(str::to_string),
        old_name: old.to_string(),
        new_symbol: format!("__klp_new.0.{old}"),
        sympos: 0,
    }
}

fn callback(objname: Option<&str>, kind: Kind, func: &str) -> CallbackEntry {
    CallbackEntry {
        objname: objname.map(str::to_string),
        kind,
        new_symbol: format!("__klp_cb.0.{}.{func}", kind.field()),
        source: format!("kernel/ksysfs.o: {func}"),
    }
}

#[test]
fn callback_table_holds_object_kind_and_function_of_each_entry() {
    let funcs = [entry(None, "fscaps_show"), entry(Some("xfs"), "xfs_foo")];
    let cbs = [
        callback(Some("xfs"), Kind::PostUnpatch, "xfs_done"),
        callback(None, Kind::PostPatch, "fix_post"),
        callback(None, Kind::PrePatch, "fix_pre"),
    ];
    let bytes = tables_object_with(&funcs, &cbs).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("klp_tables.o");
    std::fs::write(&path, bytes).unwrap();
    let o: klp_build::elf::ElfObject<klp_build::elf::Any> = read_file(&path).unwrap();
    let sec = o
        .section_by_name(abi::CALLBACKS_SECTION)
        .expect("the callback table");
    let data = o.data(sec);
    let n = 3;
    let size = abi::CALLBACK_SIZE as usize;
    assert_eq!(data.len(), n * size + 4);
    assert_eq!(u32::from_le_bytes(data[n * size..].try_into().unwrap()), 3);
    let strings = o.section_by_name(abi::FUNC_STRINGS_SECTION).unwrap();
    let mut rows = Vec::new();
    for i in 0..n {
        let base = (i * size) as u64;
        let kind = u64::from_le_bytes(
            data[base as usize + abi::CALLBACK_KIND as usize..][..8]
                .try_into()
                .unwrap(),
        );
        let at = |off: u64| o.relocs_of(sec).iter().find(|r| r.r_offset == base + off);
        let objname = at(abi::CALLBACK_OBJNAME).map(|r| {
            let s = &o.data(strings)[r.r_addend as usize..];
            String::from_utf8_lossy(&s[..s.iter().position(|&b| b == 0).unwrap()]).into_owned()
        });
        let func = o
            .symbol(at(abi::CALLBACK_FN).expect("fn relocation").sym)
            .name
            .clone();
        rows.push((objname, kind, func));
    }
    // vmlinux (NULL objname) first, then by kind.
    assert_eq!(
        rows,
        [
            (
                None,
                abi::CALLBACK_PRE_PATCH,
                "__klp_cb.0.pre_patch.fix_pre".into()
            ),
            (
                None,
                abi::CALLBACK_POST_PATCH,
                "__klp_cb.0.post_patch.fix_post".into()
            ),
            (
                Some("xfs".to_string()),
                abi::CALLBACK_POST_UNPATCH,
                "__klp_cb.0.post_unpatch.xfs_done".into()
            ),
        ]
    );
    for name in [abi::CALLBACKS_SYMBOL, abi::NR_CALLBACKS_SYMBOL] {
        assert!(o.symbol_by_name(name).is_some(), "{name} missing");
    }
}

#[test]
fn callback_table_refuses_a_second_callback_of_a_kind_not_an_object_without_functions() {
    let funcs = [entry(None, "fscaps_show")];
    let err = tables_object_with(
        &funcs,
        &[
            callback(None, Kind::PrePatch, "a_pre"),
            CallbackEntry {
                source: "fs/proc/cmdline.o: b_pre".into(),
                ..callback(None, Kind::PrePatch, "b_pre")
            },
        ],
    )
    .unwrap_err();
    assert!(
        format!("{err:#}").contains(
            "two pre-patch callbacks for vmlinux: kernel/ksysfs.o: a_pre and fs/proc/cmdline.o: b_pre"
        ),
        "{err:#}"
    );
    // A callback of an object without functions is one the core registers with an empty
    // function array (a fix that only adds callbacks).
    tables_object_with(&funcs, &[callback(Some("xfs"), Kind::PostPatch, "x")])
        .expect("a module object with callbacks only");
    // An empty callback table is still written: the core refers to it.
    let bytes = tables_object_with(&funcs, &[]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.o");
    std::fs::write(&path, bytes).unwrap();
    let o: klp_build::elf::ElfObject<klp_build::elf::Any> = read_file(&path).unwrap();
    let sec = o.section_by_name(abi::CALLBACKS_SECTION).unwrap();
    assert_eq!(o.data(sec), 0u32.to_le_bytes());
}

/// The callback table read through `klp_build_abi.h` the way `klp_build_core.c` reads it: a C
/// program linked with a `klp_tables.o` gets back each entry's object, kind and function, and the
/// header's sizes, offsets, names and kinds equal `abi.rs`.
#[test]
fn callback_table_reads_back_through_the_c_header() {
    let dir = tempfile::tempdir().unwrap();
    let funcs = [entry(None, "fscaps_show"), entry(Some("xfs"), "xfs_foo")];
    let cbs = [
        callback(Some("xfs"), Kind::PrePatch, "x"),
        callback(None, Kind::PostUnpatch, "y"),
    ];
    let tables = dir.path().join("klp_tables.o");
    std::fs::write(&tables, tables_object_with(&funcs, &cbs).unwrap()).unwrap();
    std::fs::write(
        dir.path().join(kmod_template::ABI_H_NAME),
        kmod_template::ABI_H,
    )
    .unwrap();
    let main_c = r#"
#include <stdio.h>
#include <stddef.h>
#include "klp_build_abi.h"
#define DEF(c, name) void c(void) __asm__(name); void c(void) {}
DEF(f0, "__klp_new.0.fscaps_show")
DEF(f1, "__klp_new.0.xfs_foo")
DEF(cx, "__klp_cb.0.pre_patch.x")
DEF(cy, "__klp_cb.0.post_unpatch.y")
int main(void)
{
	unsigned int i;

	printf("size %zu objname %zu kind %zu fn %zu\n", sizeof(struct klp_build_callback),
	       offsetof(struct klp_build_callback, objname),
	       offsetof(struct klp_build_callback, kind), offsetof(struct klp_build_callback, fn));
	printf("kinds %d %d %d %d %d\n", KLP_BUILD_CB_PRE_PATCH, KLP_BUILD_CB_POST_PATCH,
	       KLP_BUILD_CB_PRE_UNPATCH, KLP_BUILD_CB_POST_UNPATCH, KLP_BUILD_NR_CB_KINDS);
	printf("names %s %s %s %s\n", KLP_BUILD_CALLBACKS_SECTION, KLP_BUILD_CALLBACKS_SYMBOL,
	       KLP_BUILD_NR_CALLBACKS_SYMBOL, KLP_BUILD_CALLBACK_PTRS_SECTION);
	for (i = 0; i < klp_build_nr_callbacks; i++)
		printf("%s %lu %s\n",
		       klp_build_callbacks[i].objname ? klp_build_callbacks[i].objname : "vmlinux",
		       klp_build_callbacks[i].kind,
		       klp_build_callbacks[i].fn == (void *)cx ? "x" :
		       klp_build_callbacks[i].fn == (void *)cy ? "y" : "?");
	return 0;
}
"#;
    std::fs::write(dir.path().join("main.c"), main_c).unwrap();
    let exe = dir.path().join("main");
    // -no-pie: the table holds absolute pointers in a read-only section, as in a kernel module.
    let out = Command::new("gcc")
        .args(["-std=gnu11", "-Wall", "-Werror", "-no-pie", "-o"])
        .arg(&exe)
        .arg(dir.path().join("main.c"))
        .arg(&tables)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success());
    let got = String::from_utf8(run.stdout).unwrap();
    let want = format!(
        "size {} objname {} kind {} fn {}\nkinds {} {} {} {} 4\nnames {} {} {} {}\n\
         vmlinux {} y\nxfs {} x\n",
        abi::CALLBACK_SIZE,
        abi::CALLBACK_OBJNAME,
        abi::CALLBACK_KIND,
        abi::CALLBACK_FN,
        abi::CALLBACK_PRE_PATCH,
        abi::CALLBACK_POST_PATCH,
        abi::CALLBACK_PRE_UNPATCH,
        abi::CALLBACK_POST_UNPATCH,
        abi::CALLBACKS_SECTION,
        abi::CALLBACKS_SYMBOL,
        abi::NR_CALLBACKS_SYMBOL,
        abi::CALLBACK_PTRS_SECTION,
        abi::CALLBACK_POST_UNPATCH,
        abi::CALLBACK_PRE_PATCH,
    );
    assert_eq!(got, want);
}

/// Compiles `c` with the kernel's code-generation flags (`testdata/cases/kernel-cflags`: ftrace
/// call sites, one section per function) into `dir/<name>.o`.
fn kernel_object(dir: &Path, name: &str, c: &str) -> PathBuf {
    let flags = std::fs::read_to_string(root().join("testdata/cases/kernel-cflags")).unwrap();
    let src = dir.join(format!("{name}.c"));
    let obj = dir.join(format!("{name}.o"));
    std::fs::write(&src, c).unwrap();
    let out = Command::new("gcc")
        .args(
            flags
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .flat_map(str::split_whitespace),
        )
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc {name}.c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    obj
}

/// Three functions that each return a different number in the patched file: `KPATCH_IGNORE_*`
/// marks (written as kpatch-macros.h writes them) keep two out of the patch, and
/// `KPATCH_FORCE_UNSAFE` on the third is refused.
#[test]
fn kpatch_marks_ignore_functions_and_sections_and_refuse_force_unsafe() {
    let dir = tempfile::tempdir().unwrap();
    let body = |n: i32, marks: &str| {
        format!(
            "int kept(int x) {{ return x + {n}; }}\n\
             int ignored(int x) {{ return x * {n}; }}\n\
             __attribute__((section(\".text.quirks\"))) int quirk(int x) {{ return x - {n}; }}\n\
             {marks}"
        )
    };
    let orig = kernel_object(dir.path(), "orig", &body(1, ""));
    let ignore = "static void *__kpatch_ignore_func_ignored __attribute__((used, \
                  section(\".kpatch.ignore.functions\"))) = ignored;\n\
                  static const char *__kpatch_ignore_section_0 __attribute__((used, \
                  section(\".kpatch.ignore.sections\"))) = \".text.quirks\";\n";
    let patched = kernel_object(dir.path(), "patched", &body(2, ignore));
    let d = klp_build::diff::run(
        Path::new("marks.o"),
        klp_build::contract::KlpObject::Vmlinux,
        &orig,
        &patched,
    )
    .unwrap();
    let changed: Vec<&str> = d
        .changed
        .iter()
        .map(|c| d.patched.symbol(c.sym).name.as_str())
        .collect();
    assert_eq!(changed, ["kept"]);
    assert!(d.refusals.is_empty(), "{:#?}", d.refusals);
    let ignored: Vec<String> = d
        .warnings
        .iter()
        .filter(|w| w.key == "func.ignored")
        .map(ToString::to_string)
        .collect();
    assert_eq!(ignored.len(), 2, "{ignored:#?}");
    assert!(ignored
        .iter()
        .any(|w| w.contains("marks.o: ignored: changed") && w.contains("KPATCH_IGNORE_FUNCTION")));
    assert!(ignored.iter().any(|w| w.contains("marks.o: quirk: changed")
        && w.contains("KPATCH_IGNORE_SECTION(\".text.quirks\")")));

    let force = "static void *__kpatch_force_func_kept __attribute__((used, \
                 section(\".kpatch.force\"))) = kept;\n";
    let forced = kernel_object(dir.path(), "forced", &body(2, force));
    let d = klp_build::diff::run(
        Path::new("marks.o"),
        klp_build::contract::KlpObject::Vmlinux,
        &orig,
        &forced,
    )
    .unwrap();
    let refusals: Vec<String> = d.refusals.iter().map(ToString::to_string).collect();
    assert_eq!(refusals.len(), 1, "{refusals:#?}");
    assert!(
        refusals[0].starts_with("func.force-unsafe marks.o: kept+0x0")
            && refusals[0].contains("KPATCH_FORCE_UNSAFE(kept)"),
        "{}",
        refusals[0]
    );
}
