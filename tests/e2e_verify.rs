//! `klp-build verify` on Debian's own kernels in QEMU, one verdict per boot:
//! - 6.1: `ksysfs-warn.patch` passes with a check script that stores 1 in
//!   `/sys/kernel/rcu_expedited` (the kernel given as a Debian release, its image from the
//!   release cache); the same module fails when the check stores 2, with the `WARN_ONCE` it
//!   then hits, its trace and the W taint; a check script that exits 3 fails the verdict;
//!   `pipe-read.patch` with a reader blocked in `pipe_read` (started by `--setup`) never finishes
//!   its transition, and the report names the task and its stack.
//! - Debian 12's 6.12: `binfmt-misc.patch` (a fix in a module) passes with `--with-module
//!   binfmt_misc`, loaded from the image's `.ko.xz` before the livepatch, and a check that reads
//!   the patched status file; the same module given 6.1's kernel is refused before any boot.
//! - the replace-set reference kernel, given as its built tree: a module built in that tree
//!   passes, and the `pipe_read` fix with a blocked reader is named the same way;
//! - SIGTERM while the guest runs: klp-build exits 130, QEMU is gone, and its temporary
//!   initramfs too.
//!
//! Skips with a printed reason without the lab, and fails under `CI`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use support::run::describe;
use support::Lab;

/// One guest at a time: emulation takes a whole core.
static QEMU: Mutex<()> = Mutex::new(());

fn scratch(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let d = tmp
        .parent()
        .unwrap_or(tmp)
        .join("klp-e2e-verify")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Builds `patch` for the lab's kernel into `dir`.
fn build(lab: &Lab, patch: &str, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let ko = dir.join("livepatch.ko");
    let args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch(patch),
        &dir.join("work"),
        &ko,
    );
    let o = support::run::klp_build(dir, &args);
    assert!(o.status.success(), "building {patch}: {}", describe(&o));
    ko
}

/// Runs `klp-build verify ARGS --report json` and returns its exit code and report.
fn verify(dir: &Path, args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let _one = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let o = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .arg("verify")
        .args(args)
        .args(["--report", "json", "--accel", "tcg"])
        .current_dir(dir)
        .env("KLP_BUILD_CACHE", release_cache())
        .stdin(Stdio::null())
        .output()
        .expect("run klp-build verify");
    let report = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("verify's report is no JSON ({e}): {}", describe(&o)));
    support::schemas::assert_valid("verify", &report, "verify --report json");
    (o.status.code(), report, describe(&o))
}

/// The release tests' cache, where `--kernel <release>` finds (or fetches) Debian's image.
fn release_cache() -> PathBuf {
    std::env::var_os("KLP_LAB_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/klp-build-lab")
        })
        .join("release-cache")
}

fn script(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn steps(r: &serde_json::Value) -> Vec<(String, String)> {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A pass, with every step of a run with a check script done.
fn assert_passed_every_step(code: Option<i32>, r: &serde_json::Value, out: &str) {
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(r["verdict"], "pass", "{out}");
    let all_ok: Vec<(String, String)> = [
        "modules",
        "load",
        "transition",
        "check",
        "disable",
        "unload",
    ]
    .iter()
    .map(|n| (n.to_string(), "ok".to_string()))
    .collect();
    assert_eq!(steps(r), all_ok, "{out}");
}

#[test]
fn verify_on_debian_61_passes_a_good_module_and_fails_a_warn_a_failing_check_and_a_stuck_transition(
) {
    let name = "verify_on_debian_61_passes_a_good_module_and_fails_a_warn_a_failing_check_and_a_stuck_transition";
    let Some(lab) = support::lab(name) else {
        return;
    };
    let d = scratch("6.1");
    let ko = build(lab, "ksysfs-warn.patch", &d.join("warn"));
    let ko_s = ko.display().to_string();
    let vmlinuz = lab.vmlinuz.display().to_string();

    // A good run, the kernel named by its release.
    let good = script(
        &d,
        "good.sh",
        "echo 1 > /sys/kernel/rcu_expedited\ngrep -qx 1 /sys/kernel/rcu_expedited\necho checked\n",
    );
    let (code, r, out) = verify(&d, &[&ko_s, "--kernel", &lab.release, "--check", &good]);
    assert_passed_every_step(code, &r, &out);
    assert_eq!(r["kernel_release"], lab.release.as_str());
    assert_eq!(r["name"], "livepatch_ksysfs_warn");
    assert!(r["transition_seconds"].as_f64().is_some(), "{out}");
    assert_eq!(r["check"]["exit"], 0);
    assert!(
        r["check"]["output"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "checked"),
        "{out}"
    );
    assert_eq!(r["reasons"].as_array().unwrap().len(), 0, "{out}");

    // The patched function's WARN_ONCE: a trace and the W taint fail it, though every step ran.
    let warn = script(&d, "warn.sh", "echo 2 > /sys/kernel/rcu_expedited\n");
    let (code, r, out) = verify(&d, &[&ko_s, "--kernel", &vmlinuz, "--check", &warn]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["verdict"], "fail", "{out}");
    let warnings: Vec<&serde_json::Value> = r["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "warning" && p["during_verify"] == true)
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    let lines = warnings[0]["lines"].as_array().unwrap();
    assert!(
        lines[0].as_str().unwrap().contains("kernel/ksysfs.c")
            && lines[0].as_str().unwrap().contains("rcu_expedited_store"),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.as_str().unwrap() == "Call Trace:"),
        "{out}"
    );
    assert_eq!(
        r["unexpected_taint"],
        serde_json::json!(["W (kernel issued a warning)"]),
        "{out}"
    );

    // A check script that fails.
    let bad = script(&d, "bad.sh", "echo about to fail\nexit 3\n");
    let (code, r, out) = verify(&d, &[&ko_s, "--kernel", &vmlinuz, "--check", &bad]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["check"]["exit"], 3, "{out}");
    assert!(
        r["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x == "step check failed: exit 3"),
        "{out}"
    );
    assert_eq!(r["unexpected_taint"], serde_json::json!([]), "{out}");

    // A reader asleep in pipe_read holds the transition; the guest names it, then reverts.
    let pipe = build(lab, "pipe-read.patch", &d.join("pipe"));
    let setup = script(&d, "setup.sh", "sleep 1000 | cat > /dev/null &\nsleep 1\n");
    let (code, r, out) = verify(
        &d,
        &[
            &pipe.display().to_string(),
            "--kernel",
            &vmlinuz,
            "--setup",
            &setup,
            "--transition-timeout",
            "5",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    let transition = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "transition")
        .unwrap_or_else(|| panic!("no transition step: {out}"));
    assert_eq!(transition["status"], "failed", "{out}");
    let blockers = r["blocking_tasks"].as_array().unwrap();
    let cat = blockers
        .iter()
        .find(|b| b["comm"] == "cat")
        .unwrap_or_else(|| panic!("the blocked reader is not named: {out}"));
    assert_eq!(cat["step"], "transition");
    assert!(
        cat["stack"][0].as_str().unwrap().contains("pipe_read+"),
        "{out}"
    );
    // Reverted and unloaded all the same: the module leaves nothing behind.
    let unload = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "unload")
        .unwrap_or_else(|| panic!("no unload step: {out}"));
    assert_eq!(unload["status"], "ok", "{out}");
}

#[test]
fn verify_on_debian_612_loads_the_target_module_from_its_compressed_file_first() {
    let name = "verify_on_debian_612_loads_the_target_module_from_its_compressed_file_first";
    let Some(lab) = support::lab_series(name, "6.12") else {
        return;
    };
    let d = scratch("6.12");
    let ko = build(lab, "6.12/binfmt-misc.patch", &d.join("binfmt"));
    let check = script(
        &d,
        "check.sh",
        "mount -t binfmt_misc none /proc/sys/fs/binfmt_misc\n\
         cat /proc/sys/fs/binfmt_misc/status\n\
         grep -qx 'enabled (klp-build)' /proc/sys/fs/binfmt_misc/status\n",
    );
    let (code, r, out) = verify(
        &d,
        &[
            &ko.display().to_string(),
            "--kernel",
            &lab.vmlinuz.display().to_string(),
            "--modules",
            &lab.modules.display().to_string(),
            "--with-module",
            "binfmt_misc",
            "--check",
            &check,
        ],
    );
    assert_passed_every_step(code, &r, &out);
    assert_eq!(r["with_modules"], serde_json::json!(["binfmt_misc.ko"]));

    // The same module on 6.1's kernel: refused from its vermagic and the image's boot header,
    // before anything boots.
    let Some(l61) = support::lab(name) else {
        return;
    };
    let o = support::run::klp_build(
        &d,
        &[
            "verify".as_ref(),
            ko.as_os_str(),
            "--kernel".as_ref(),
            l61.vmlinuz.as_os_str(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("is built for {}", lab.release))
            && err.contains(&format!("is {}: the kernel would refuse it", l61.release))
            && !err.contains("booting"),
        "{}",
        describe(&o)
    );
    assert!(o.stdout.is_empty(), "{}", describe(&o));
}

/// Every process whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

#[test]
fn sigterm_while_the_guest_runs_stops_qemu_and_leaves_no_temporary_files() {
    let name = "sigterm_while_the_guest_runs_stops_qemu_and_leaves_no_temporary_files";
    let Some(lab) = support::lab(name) else {
        return;
    };
    let d = scratch("sigterm");
    let ko = build(lab, "cmdline.patch", &d.join("cmdline"));
    let tmp = d.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let _one = QEMU.lock().unwrap_or_else(|e| e.into_inner());
    let child = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .arg("verify")
        .arg(&ko)
        .arg("--kernel")
        .arg(&lab.vmlinuz)
        .args(["--accel", "tcg"])
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until QEMU runs (its -initrd lies under our TMPDIR), then SIGTERM klp-build alone.
    let tmp_s = tmp.display().to_string();
    let mut waited = 0;
    while processes_mentioning(&format!("-initrd {tmp_s}")).is_empty() {
        assert!(waited < 600, "QEMU never started");
        std::thread::sleep(std::time::Duration::from_millis(100));
        waited += 1;
    }
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("interrupted by SIGTERM while the guest ran"),
        "{}",
        describe(&o)
    );
    assert_eq!(
        processes_mentioning(&format!("-initrd {tmp_s}")),
        Vec::<String>::new(),
        "QEMU outlived klp-build"
    );
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "temporary files left in {tmp_s}"
    );
}

#[test]
fn verify_on_the_reference_kernel_tree_passes_a_good_module_and_names_a_blocked_reader() {
    let name =
        "verify_on_the_reference_kernel_tree_passes_a_good_module_and_names_a_blocked_reader";
    let Some(kernel) = support::refkernel::ref_kernel(name) else {
        return;
    };
    let d = scratch("refkernel");
    let build_in_tree = |patch: &str, out: &str| -> PathBuf {
        let ko = d.join(out);
        let args = support::refkernel::klp_build_args(
            kernel,
            &support::inputs::patch(patch),
            &d.join(format!("work-{out}")),
            &ko,
        );
        let o = support::run::klp_build(&d, &args);
        assert!(o.status.success(), "building {patch}: {}", describe(&o));
        ko
    };
    let tree = kernel.tree.display().to_string();
    let good = build_in_tree("fixes/new-function.patch", "livepatch-new-function.ko");
    let check = script(
        &d,
        "check.sh",
        "grep -qx 'klp-build: livepatched' /proc/version\n",
    );
    let (code, r, out) = verify(
        &d,
        &[
            &good.display().to_string(),
            "--kernel",
            &tree,
            "--check",
            &check,
        ],
    );
    assert_passed_every_step(code, &r, &out);
    assert_eq!(r["kernel_release"], kernel.release.as_str());

    let pipe = build_in_tree("pipe-read.patch", "livepatch-pipe-read.ko");
    let setup = script(&d, "setup.sh", "sleep 1000 | cat > /dev/null &\nsleep 1\n");
    let (code, r, out) = verify(
        &d,
        &[
            &pipe.display().to_string(),
            "--kernel",
            &tree,
            "--setup",
            &setup,
            "--transition-timeout",
            "5",
        ],
    );
    assert_eq!(code, Some(1), "{out}");
    let cat = r["blocking_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["comm"] == "cat")
        .unwrap_or_else(|| panic!("the blocked reader is not named: {out}"));
    assert!(
        cat["stack"][0].as_str().unwrap().contains("pipe_read+"),
        "{out}"
    );
}
