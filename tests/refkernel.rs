//! The reference kernel patch itself (`testdata/kernel/replace-set.patch`, replace-set.md's
//! rules), proven in QEMU: the livepatches of `testdata/kernel/modules`, built with kbuild against
//! the patched tree, are loaded in one boot by `testdata/kernel/refkernel-test.sh`, which reads the
//! patched `/proc` files and `/sys/kernel/livepatch/*/{enabled,replace_set,transition}` after
//! every step and prints `PASS:`/`FAIL:` lines. Each test here asserts the lines of the steps
//! that prove its claim; the boot is shared (one per test process), since the steps build on each
//! other and a TCG boot costs a core for a while.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use support::refkernel::{boot, build_modules, ref_kernel};
use support::Boot;

/// The modules of `testdata/kernel/modules/Kbuild`, each named after what it does in the script.
const MODULES: &[&str] = &[
    "rk_s0_v1",
    "rk_s0_v2",
    "rk_h1",
    "rk_x_func",
    "rk_x_state",
    "rk_h1_nostate",
    "rk_h1_oldstate",
    "rk_h1_v2",
    "rk_h2",
    "rk_cum_nostate",
    "rk_cum",
    "rk_h2b",
];

static BOOT: OnceLock<Result<Boot, String>> = OnceLock::new();

/// The shared boot, or `None` when the test is skipped (no reference kernel, outside CI).
fn rules_boot(test: &str) -> Option<&'static Boot> {
    let kernel = ref_kernel(test)?;
    let boot = BOOT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kernel");
        let dir = build_modules(kernel, &root.join("modules"), "refkernel-modules")
            .map_err(|e| format!("{e:#}"))?;
        let files: Vec<PathBuf> = MODULES
            .iter()
            .map(|m| dir.join(format!("{m}.ko")))
            .collect();
        if let Some(missing) = files.iter().find(|f| !f.is_file()) {
            return Err(format!(
                "kbuild left no {} (is it in testdata/kernel/modules/Kbuild?)",
                missing.display()
            ));
        }
        let steps = std::fs::read_to_string(root.join("refkernel-test.sh"))
            .map_err(|e| format!("read testdata/kernel/refkernel-test.sh: {e}"))?;
        // The booted kernel is the one built from the patch: its release carries the
        // fragment's LOCALVERSION.
        let script = format!(
            "if [ \"$(uname -r)\" = \"{release}\" ]; then echo \"PASS: release {release}\"; \
             else echo \"FAIL: release {release}: it is $(uname -r)\"; exit 1; fi\n{steps}",
            release = kernel.release
        );
        boot(kernel, "refkernel_rules", &files, &script, 300).map_err(|e| format!("{e:#}"))
    });
    match boot {
        Ok(boot) => Some(boot),
        Err(why) => panic!("{test}: {why}"),
    }
}

/// Asserts that every step of `steps` ran, that none of its checks failed and that each of
/// `claims` (a check's text after `PASS: `) passed.
fn assert_steps(test: &str, steps: &[&str], claims: &[&str]) {
    let Some(boot) = rules_boot(test) else {
        return;
    };
    let log = &boot.log;
    let where_ = boot.log_file.display();
    assert!(
        log.contains(&format!(
            "PASS: release {}",
            ref_kernel(test).map_or("", |k| k.release.as_str())
        )),
        "{test}: the guest did not run the reference kernel; see {where_}"
    );
    assert!(
        log.contains("REFKERNEL-DONE"),
        "{test}: the script did not run to its end; see {where_}"
    );
    for step in steps {
        assert!(
            log.lines().any(|l| l == format!("REFKERNEL-STEP {step}")),
            "{test}: step {step} did not run; see {where_}"
        );
        let failed: Vec<&str> = log
            .lines()
            .filter(|l| l.starts_with(&format!("FAIL: {step}:")))
            .collect();
        assert!(
            failed.is_empty(),
            "{test}: step {step} failed:\n{}\nsee {where_}",
            failed.join("\n")
        );
    }
    for claim in claims {
        assert!(
            log.lines()
                .any(|l| l.starts_with(&format!("PASS: {claim}"))),
            "{test}: no `PASS: {claim}` line; see {where_}"
        );
    }
}

#[test]
fn set_0_keeps_atomic_replace_and_reverts_what_only_v1_patched() {
    assert_steps(
        "set_0_keeps_atomic_replace_and_reverts_what_only_v1_patched",
        &["1 set0-v1", "2 set0-v2-replaces-v1"],
        &[
            "1 set0-v1: /proc/version is rk_s0_v1",
            "2 set0-v2-replaces-v1: livepatches are rk_s0_v2:1:0:0",
            "2 set0-v2-replaces-v1: /proc/cmdline is rk_s0_v2",
            "2 set0-v2-replaces-v1: /proc/version is orig",
            "2 set0-v2-replaces-v1: rk_s0_v1 was replaced, not unpatched on its own",
            "2 set0-v2-replaces-v1: the replaced rk_s0_v1 unloads",
        ],
    );
}

#[test]
fn same_set_successor_replaces_its_predecessor() {
    assert_steps(
        "same_set_successor_replaces_its_predecessor",
        &["8 set1-successor-replaces"],
        &[
            "8 set1-successor-replaces: livepatches are rk_h1_v2:1:1:0 rk_s0_v2:1:0:0",
            "8 set1-successor-replaces: /proc/version is orig",
            "8 set1-successor-replaces: /proc/uptime is rk_h1_v2",
        ],
    );
}

#[test]
fn other_sets_coexist() {
    assert_steps(
        "other_sets_coexist",
        &["3 set1-coexists-with-set0", "9 set2-coexists"],
        &[
            "3 set1-coexists-with-set0: livepatches are rk_h1:1:1:0 rk_s0_v2:1:0:0",
            "3 set1-coexists-with-set0: /proc/cmdline is rk_s0_v2",
            "3 set1-coexists-with-set0: /proc/version is rk_h1",
            "9 set2-coexists: livepatches are rk_h1_v2:1:1:0 rk_h2:1:2:0 rk_s0_v2:1:0:0",
            "9 set2-coexists: /proc/loadavg is rk_h2",
        ],
    );
}

#[test]
fn a_function_patched_by_another_set_is_refused() {
    assert_steps(
        "a_function_patched_by_another_set_is_refused",
        &["4 refused-shared-function"],
        &[
            "4 refused-shared-function: insmod rk_x_func is refused",
            "4 refused-shared-function: the kernel says rk_x_func is not compatible",
            "4 refused-shared-function: the kernel names the conflict",
            "4 refused-shared-function: nothing changed",
        ],
    );
}

#[test]
fn a_state_id_used_by_another_set_is_refused() {
    assert_steps(
        "a_state_id_used_by_another_set_is_refused",
        &["5 refused-shared-state"],
        &[
            "5 refused-shared-state: insmod rk_x_state is refused",
            "5 refused-shared-state: the kernel says rk_x_state is not compatible",
            "5 refused-shared-state: the kernel names the conflict",
            "5 refused-shared-state: nothing changed",
        ],
    );
}

#[test]
fn a_successor_missing_a_state_or_with_an_older_version_is_refused() {
    assert_steps(
        "a_successor_missing_a_state_or_with_an_older_version_is_refused",
        &[
            "6 refused-missing-state",
            "7 refused-older-state",
            "10 refused-superseded-state",
        ],
        &[
            "6 refused-missing-state: insmod rk_h1_nostate is refused",
            "6 refused-missing-state: the kernel names the conflict",
            "6 refused-missing-state: nothing changed",
            "7 refused-older-state: insmod rk_h1_oldstate is refused",
            "7 refused-older-state: the kernel names the conflict",
            "7 refused-older-state: nothing changed",
            "10 refused-superseded-state: insmod rk_cum_nostate is refused",
            "10 refused-superseded-state: the kernel names the conflict",
            "10 refused-superseded-state: nothing changed",
        ],
    );
}

#[test]
fn supersedes_replaces_those_sets_in_one_transition_and_occupies_its_own_set_only() {
    assert_steps(
        "supersedes_replaces_those_sets_in_one_transition_and_occupies_its_own_set_only",
        &["11 supersedes", "12 superseding-patch-occupies-its-own-set-only"],
        &[
            "11 supersedes: livepatches are rk_cum:1:1:0 rk_s0_v2:1:0:0",
            "11 supersedes: /proc/version is rk_cum",
            "11 supersedes: /proc/loadavg is rk_cum",
            "11 supersedes: /proc/uptime is orig",
            "11 supersedes: one patching transition of rk_cum",
            "11 supersedes: no unpatching transition of the replaced patches",
            "12 superseding-patch-occupies-its-own-set-only: insmod rk_h2b loads",
            "12 superseding-patch-occupies-its-own-set-only: livepatches are rk_cum:1:1:0 rk_h2b:1:2:0 rk_s0_v2:1:0:0",
        ],
    );
}

#[test]
fn sysfs_shows_replace_set_and_no_replace() {
    assert_steps(
        "sysfs_shows_replace_set_and_no_replace",
        &["0 boot", "1 set0-v1", "13 disable-all"],
        &[
            "1 set0-v1: livepatches are rk_s0_v1:1:0:0",
            "1 set0-v1: no sysfs replace attribute",
            "1 set0-v1: replace_set is read-only",
            "13 disable-all: livepatches are",
            "13 disable-all: /proc/cmdline is orig",
        ],
    );
}
