//! The kernel's own livepatch selftests (`tools/testing/selftests/livepatch` of the reference
//! tree, as `testdata/kernel/replace-set.patch` leaves them) run in QEMU on the reference kernel:
//! the test modules are built with kbuild against the tree, every script of the selftests
//! Makefile's `TEST_PROGS` runs in one boot with bash, kmod and the GNU tools the scripts call,
//! and each `TEST: <name> ... ok|not ok` line and each script's exit status is printed here.
//! Invariant: the test passes only when every script exits 0 and every `start_test` of every
//! script printed `ok`; the patch's changes to the selftests are the only expectations that move.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::refkernel::{boot_with_programs, build_modules, ref_kernel, RefKernel};

/// Host programs the selftests call where busybox's differ: `functions.sh` is bash, compares
/// kmod's insmod messages, and calls `date --rfc-3339=ns`, `/bin/stat --format`,
/// `sysctl --values` and `diff --label`; `test-syscall.sh` calls `getconf`.
const PROGRAMS: &[(&str, &str)] = &[
    ("bash", "/bin/bash"),
    ("kmod", "/sbin/insmod"),
    ("kmod", "/sbin/rmmod"),
    ("kmod", "/sbin/modinfo"),
    ("date", "/usr/local/bin/date"),
    ("stat", "/bin/stat"),
    ("sysctl", "/usr/local/bin/sysctl"),
    ("diff", "/usr/local/bin/diff"),
    ("getconf", "/usr/local/bin/getconf"),
    ("sleep", "/usr/local/bin/sleep"),
];

/// The guest's side: the scripts run from `/selftests` with the modules in `test_modules/`, as
/// the selftests' runner would lay them out; the console is quieted so that the scripts' lines
/// are not cut by kernel messages (the kernel log, which the scripts compare, keeps them all).
const GUEST: &str = r#"echo 1 > /proc/sys/kernel/printk
mkdir -p /selftests/test_modules
for f in /modules/*; do
    case $f in
        *.ko) cp "$f" /selftests/test_modules/ ;;
        *) cp "$f" /selftests/ ;;
    esac
done
chmod +x /selftests/test_klp-call_getpid
# check_result's diff reads bash's process substitutions from /dev/fd, which devtmpfs lacks.
ln -s /proc/self/fd /dev/fd
# kmod looks for its index there; an empty one keeps insmod and rmmod quiet.
mkdir -p "/lib/modules/$(uname -r)"
cd /selftests
# functions.sh's has_kdir wants the directory modules would be built in; they are built already.
export KDIR=/selftests
failed=0
for t in $KLP_SELFTESTS; do
    echo "KLP-SELFTEST-BEGIN $t"
    rc=0
    bash "./$t" || rc=$?
    echo "KLP-SELFTEST-END $t rc=$rc"
    [ "$rc" = 0 ] || failed=1
done
if [ "$failed" != 0 ]; then
    echo "KLP-SELFTEST-DMESG-BEGIN"
    dmesg
    echo "KLP-SELFTEST-DMESG-END"
fi
exit "$failed"
"#;

/// The scripts of `TEST_PROGS` in the selftests Makefile, in its order.
fn test_progs(makefile: &str) -> Vec<String> {
    let mut progs = Vec::new();
    let mut inside = false;
    for line in makefile.lines() {
        let rest = if inside {
            line
        } else if let Some(rest) = line.strip_prefix("TEST_PROGS :=") {
            inside = true;
            rest
        } else {
            continue;
        };
        let continued = rest.trim_end().ends_with('\\');
        progs.extend(
            rest.trim_end()
                .trim_end_matches('\\')
                .split_whitespace()
                .map(str::to_string),
        );
        if !continued {
            break;
        }
    }
    progs
}

/// The names a script gives `start_test`, in order (`start_test "name"` lines).
fn test_names(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("start_test \""))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

/// The host path of `name` on PATH (and the sbin dirs a non-root PATH may lack).
fn host_program(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not installed on this host (.ci/run installs it)"))
}

/// `test_klp-call_getpid`, static, since the guest has no C library of its own for it.
fn build_getpid(src: &Path, out: &Path) -> Result<PathBuf, String> {
    let bin = out.join("test_klp-call_getpid");
    let status = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(src.join("test_klp-call_getpid.c"))
        .stdin(Stdio::null())
        .status()
        .map_err(|e| format!("run gcc: {e}"))?;
    if !status.success() {
        return Err(format!(
            "gcc -static {} failed ({status}); is libc6-dev installed?",
            src.join("test_klp-call_getpid.c").display()
        ));
    }
    Ok(bin)
}

/// Builds what the guest needs and boots it; returns the boot and the scripts with their tests.
/// A selftest script and the names its `start_test` calls give, in order.
type Script = (String, Vec<String>);

/// What the guest printed for one script: each test's name and verdict (empty when none came),
/// and the script's exit status (`None` when it did not end).
#[derive(Debug, Default, Clone)]
struct Ran {
    tests: Vec<(String, String)>,
    rc: Option<String>,
}

fn run(kernel: &RefKernel) -> Result<(support::Boot, Vec<Script>), String> {
    let src = kernel.tree.join("tools/testing/selftests/livepatch");
    let makefile = std::fs::read_to_string(src.join("Makefile"))
        .map_err(|e| format!("read {}: {e}", src.join("Makefile").display()))?;
    let mut scripts = Vec::new();
    for prog in test_progs(&makefile) {
        let text = std::fs::read_to_string(src.join(&prog))
            .map_err(|e| format!("read {}: {e}", src.join(&prog).display()))?;
        scripts.push((prog, test_names(&text)));
    }
    let modules = build_modules(kernel, &src.join("test_modules"), "refkernel-selftests")
        .map_err(|e| format!("{e:#}"))?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&modules)
        .map_err(|e| format!("read {}: {e}", modules.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ko"))
        .collect();
    files.sort();
    files.push(build_getpid(&src, &modules)?);
    files.push(src.join("functions.sh"));
    files.extend(scripts.iter().map(|(prog, _)| src.join(prog)));
    let mut programs = Vec::new();
    for (name, dest) in PROGRAMS {
        programs.push(format!("{}:{dest}", host_program(name)?.display()));
    }
    let list: Vec<&str> = scripts.iter().map(|(prog, _)| prog.as_str()).collect();
    let script = format!("KLP_SELFTESTS='{}'\n{GUEST}", list.join(" "));
    let boot = boot_with_programs(
        kernel,
        "refkernel-selftests",
        &files,
        &programs,
        &script,
        1800,
    )
    .map_err(|e| format!("{e:#}"))?;
    Ok((boot, scripts))
}

/// Per script, the guest's `TEST: <name> ... <verdict>` results and its exit status.
fn results(log: &str) -> BTreeMap<String, Ran> {
    let mut out: BTreeMap<String, Ran> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in log.lines() {
        if let Some(prog) = line.strip_prefix("KLP-SELFTEST-BEGIN ") {
            current = Some(prog.trim().to_string());
            out.entry(prog.trim().to_string()).or_default();
        } else if let Some(end) = line.strip_prefix("KLP-SELFTEST-END ") {
            if let Some((prog, rc)) = end.trim().split_once(" rc=") {
                out.entry(prog.to_string()).or_default().rc = Some(rc.to_string());
            }
            current = None;
        } else if let (Some(prog), Some(test)) = (&current, line.strip_prefix("TEST: ")) {
            // `echo -n "TEST: name ... "`, then `ok` or `not ok` when check_result is done.
            if let Some((name, rest)) = test.split_once(" ... ") {
                let verdict = if is_verdict(rest) { rest.trim() } else { "" };
                out.entry(prog.clone())
                    .or_default()
                    .tests
                    .push((name.to_string(), verdict.to_string()));
            }
        } else if let Some(prog) = &current {
            // test-state.sh's modules raise console_loglevel, so kernel messages can come
            // between a test's name and its verdict: the verdict is then a line of its own.
            let tests = &mut out.entry(prog.clone()).or_default().tests;
            if let Some(last) = tests.last_mut().filter(|(_, v)| v.is_empty()) {
                if is_verdict(line) {
                    last.1 = line.trim().to_string();
                }
            }
        }
    }
    out
}

/// Whether `text` is a verdict that check_result prints: `ok` or `not ok`.
fn is_verdict(text: &str) -> bool {
    matches!(text.trim(), "ok" | "not ok")
}

#[test]
fn the_kernels_livepatch_selftests_pass_on_the_reference_kernel() {
    let name = "the_kernels_livepatch_selftests_pass_on_the_reference_kernel";
    let Some(kernel) = ref_kernel(name) else {
        return;
    };
    let (boot, scripts) = run(kernel).unwrap_or_else(|why| panic!("{name}: {why}"));
    let where_ = boot.log_file.display();
    let results = results(&boot.log);
    let mut report = String::new();
    let mut failures = Vec::new();
    for (prog, names) in &scripts {
        let Ran { tests, rc } = results.get(prog).cloned().unwrap_or_default();
        report.push_str(&format!(
            "{prog}: exit {}\n",
            rc.as_deref().unwrap_or("(did not end)")
        ));
        for (test, verdict) in &tests {
            report.push_str(&format!("  TEST: {test} ... {verdict}\n"));
        }
        if rc.as_deref() != Some("0") {
            failures.push(format!(
                "{prog} exited {}",
                rc.as_deref().unwrap_or("(did not end)")
            ));
        }
        for want in names {
            match tests.iter().find(|(t, _)| t == want) {
                Some((_, verdict)) if verdict == "ok" => {}
                Some((_, verdict)) if verdict.is_empty() => {
                    failures.push(format!("{prog}: {want}: no verdict"))
                }
                Some((_, verdict)) => failures.push(format!("{prog}: {want}: {verdict}")),
                None => failures.push(format!("{prog}: {want}: no result")),
            }
        }
    }
    // Straight to the process's stderr: libtest captures the output of passing tests, and each
    // selftest's result belongs in the test's output.
    let _ = write!(std::io::stderr(), "{report}");
    assert!(
        !scripts.is_empty() && scripts.iter().any(|(p, _)| p == "test-replace-sets.sh"),
        "{name}: the selftests Makefile lists no test-replace-sets.sh: {:?}",
        scripts.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    assert!(
        failures.is_empty() && boot.passed,
        "{name}: {}\n{report}see {where_}",
        if failures.is_empty() {
            "the guest script failed".to_string()
        } else {
            failures.join("\n")
        }
    );
}

#[test]
fn a_verdict_after_kernel_messages_belongs_to_its_test() {
    let log = "KLP-SELFTEST-BEGIN t.sh\nTEST: one ... ok\nTEST: two ... livepatch: x\nlivepatch: y\nnot ok\nTEST: three ... \nKLP-SELFTEST-END t.sh rc=1\n";
    let got = results(log);
    let ran = &got["t.sh"];
    assert_eq!(ran.rc.as_deref(), Some("1"));
    assert_eq!(
        ran.tests,
        &[
            ("one".to_string(), "ok".to_string()),
            ("two".to_string(), "not ok".to_string()),
            ("three".to_string(), String::new()),
        ]
    );
}

#[test]
fn test_progs_are_read_across_continued_lines() {
    let makefile =
        "TEST_GEN_FILES := x\nTEST_PROGS := \\\n\ta.sh \\\n\tb.sh\n\nTEST_FILES := settings\n";
    assert_eq!(test_progs(makefile), ["a.sh", "b.sh"]);
    assert_eq!(
        test_names("start_test \"one\"\nfoo\n\tstart_test \"two words\"\n"),
        ["one", "two words"]
    );
}
