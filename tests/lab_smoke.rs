//! The kernel lab itself: the distro kernel boots in QEMU with livepatch support, a failing test
//! script fails the boot (so end-to-end verdicts mean something), the captured kallsyms is the
//! complete listing of that kernel, and the kernel's own sample livepatch, built against the lab's
//! headers, loads: a failure there is the lab's, not klp-build's.

mod support;

use std::collections::HashMap;
use std::process::Command;

#[test]
fn distro_kernel_boots_with_livepatch_support() {
    let Some(lab) = support::lab("distro_kernel_boots_with_livepatch_support") else {
        return;
    };
    let kallsyms_lines = std::fs::read_to_string(&lab.kallsyms)
        .unwrap()
        .lines()
        .count();
    let script = format!(
        r#"
test -d /sys/kernel/livepatch
grep -q 'console=ttyS0' /proc/cmdline
[ "$(uname -r)" = "{release}" ]
# The captured listing belongs to this kernel: same symbol count (addresses move with KASLR).
[ "$(wc -l < /proc/kallsyms)" = "{kallsyms_lines}" ]
grep -q ' t cmdline_proc_show$' /proc/kallsyms
echo "smoke: release $(uname -r)"
"#,
        release = lab.release
    );
    let boot = support::boot(lab, "lab_smoke_boot", &[], &script).unwrap();
    assert!(
        boot.passed,
        "the smoke script failed; see {}",
        boot.log_file.display()
    );
    assert!(
        boot.log
            .contains(&format!("smoke: release {}", lab.release)),
        "the script's output is missing from the console log {}",
        boot.log_file.display()
    );
}

#[test]
fn failing_script_fails_the_boot() {
    let Some(lab) = support::lab("failing_script_fails_the_boot") else {
        return;
    };
    let script = "echo smoke: before\nsh -c 'exit 7'\necho smoke: not reached\n";
    let boot = support::boot(lab, "lab_smoke_fail", &[], script).unwrap();
    assert!(
        !boot.passed,
        "a script exiting 7 passed; see {}",
        boot.log_file.display()
    );
    assert!(
        boot.log.contains("smoke: before"),
        "the script did not run; see {}",
        boot.log_file.display()
    );
    assert!(
        !boot.log.contains("smoke: not reached"),
        "the script went on after a failure (no sh -e)"
    );
    assert!(
        boot.log.contains("\nKLP-TEST-RESULT: FAIL (7)\n"),
        "no FAIL (7) verdict line in {}",
        boot.log_file.display()
    );
}

#[test]
fn kallsyms_lists_the_distro_kernel() {
    let Some(lab) = support::lab("kallsyms_lists_the_distro_kernel") else {
        return;
    };
    let text = std::fs::read_to_string(&lab.kallsyms).unwrap();
    let mut count: HashMap<&str, usize> = HashMap::new();
    let mut zero = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(addr), Some(_kind), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            panic!("{}: malformed line {line:?}", lab.kallsyms.display());
        };
        zero += usize::from(addr.bytes().all(|b| b == b'0'));
        *count.entry(name).or_default() += 1;
    }
    let lines = text.lines().count();
    assert!(
        lines > 50_000,
        "{}: only {lines} lines",
        lab.kallsyms.display()
    );
    // kptr_restrict would zero every address; only a few per-CPU symbols sit at offset 0.
    assert!(
        zero < 10,
        "{}: {zero} zero addresses, captured under kptr_restrict?",
        lab.kallsyms.display()
    );
    // Unique names get sympos 0; 6.1 has one cmdline_proc_show (fs/proc/cmdline.c) and the
    // livepatch core. A static name in many files needs a sympos: type_show is in dozens of drivers.
    for name in ["cmdline_proc_show", "klp_enable_patch", "proc_cmdline_init"] {
        assert_eq!(
            count.get(name),
            Some(&1),
            "{name} is not listed exactly once in {}",
            lab.kallsyms.display()
        );
    }
    assert!(
        count.get("type_show").copied().unwrap_or(0) > 1,
        "type_show is not listed several times"
    );
}

/// Debian's 6.12 has IBT and call padding: most functions have a `__pfx_<name>` symbol for the 16
/// bytes of padding before them, listed right before the function. sympos counts the functions
/// of one name, so the prefixes are other names and never shift a position.
#[test]
fn kallsyms_of_6_12_lists_pfx_symbols_before_their_functions() {
    let test = "kallsyms_of_6_12_lists_pfx_symbols_before_their_functions";
    let Some(lab) = support::lab_series(test, "6.12") else {
        return;
    };
    let text = std::fs::read_to_string(&lab.kallsyms).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter(|l| l.split_whitespace().nth(3).is_none())
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert!(
        names.len() > 100_000,
        "{}: only {} vmlinux lines",
        lab.kallsyms.display(),
        names.len()
    );
    let at = names
        .iter()
        .position(|n| *n == "cmdline_proc_show")
        .expect("cmdline_proc_show listed");
    assert_eq!(names[at - 1], "__pfx_cmdline_proc_show");
    let count = |name: &str| names.iter().filter(|n| **n == name).count();
    assert_eq!(count("cmdline_proc_show"), 1);
    assert!(
        count("t_next") > 1,
        "t_next is a static name of several files"
    );
    assert_eq!(count("__pfx_t_next"), count("t_next"));
}

#[test]
fn sample_livepatch_loads() {
    let Some(lab) = support::lab("sample_livepatch_loads") else {
        return;
    };
    // samples/livepatch/livepatch-sample.c replaces cmdline_proc_show; it is built outside the
    // tree, against the installed headers, so vermagic and modversions must match the kernel.
    let tmp = tempfile::tempdir().unwrap();
    let sample = lab.src.join("samples/livepatch/livepatch-sample.c");
    std::fs::copy(&sample, tmp.path().join("livepatch-sample.c")).unwrap();
    std::fs::write(tmp.path().join("Kbuild"), "obj-m := livepatch-sample.o\n").unwrap();
    let make = Command::new("make")
        .arg("-C")
        .arg(&lab.kbuild)
        .arg(format!("M={}", tmp.path().display()))
        .arg("modules")
        .output()
        .unwrap();
    assert!(
        make.status.success(),
        "building {} against {} failed:\n{}",
        sample.display(),
        lab.kbuild.display(),
        String::from_utf8_lossy(&make.stderr)
    );
    let ko = tmp.path().join("livepatch-sample.ko");
    let script = r#"
p=/sys/kernel/livepatch/livepatch_sample
before=$(cat /proc/cmdline)
insmod /modules/livepatch-sample.ko
[ "$(cat $p/enabled)" = 1 ]
i=0; while [ "$(cat $p/transition)" != 0 ]; do i=$((i+1)); [ $i -lt 300 ]; sleep 0.1; done
[ "$(cat /proc/cmdline)" = "this has been live patched" ]
echo 0 > $p/enabled
i=0; while [ -e $p ]; do i=$((i+1)); [ $i -lt 300 ]; sleep 0.1; done
[ "$(cat /proc/cmdline)" = "$before" ]
rmmod livepatch_sample
echo "smoke: sample livepatch applied and removed"
"#;
    let boot = support::boot(lab, "lab_smoke_sample", &[&ko], script).unwrap();
    assert!(
        boot.passed,
        "the sample livepatch failed; see {}",
        boot.log_file.display()
    );
    assert!(boot
        .log
        .contains("livepatch: 'livepatch_sample': patching complete"));
    assert!(boot
        .log
        .contains("smoke: sample livepatch applied and removed"));
}
