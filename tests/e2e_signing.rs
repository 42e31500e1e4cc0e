//! Signed modules on Debian's own 6.1 kernel in QEMU. `cmdline.patch` is built for the lab's
//! kernel and signed with a test key made by openssl here; the same module is also kept unsigned
//! and signed with another test key (by the headers' own `scripts/sign-file`). Booted with
//! `module.sig_enforce=1`, the kernel refuses all three, and says why: the signed ones are
//! "module with unavailable key" (it read the signature and looked for the key on its keyring,
//! which holds Debian's keys only), the unsigned one "unsigned module". Booted without
//! enforcement, the signed module loads and patches `/proc/cmdline`: signing changed nothing the
//! kernel runs.
//!
//! The reference kernel's signing variant (`lab/refkernel.sh --variant sig`: built with
//! `CONFIG_MODULE_SIG_FORCE`, its own `certs/signing_key.pem` on its keyring) is booted once: a
//! module klp-build signed with that key loads and patches, the same module unsigned and signed
//! with another key are refused with the kernel's reasons.
//!
//! Skips with a printed reason without the lab, and fails under `CI`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::run::describe;
use support::signing::test_key;

/// A fresh directory of the test `name`'s own: the tests of this file run in parallel.
fn scratch(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let d = tmp
        .parent()
        .unwrap_or(tmp)
        .join("klp-e2e-signing")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The lines of the boot log that start with `prefix`, without it.
fn lines<'a>(log: &'a str, prefix: &str) -> Vec<&'a str> {
    log.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(str::trim)
        .collect()
}

/// The module `signed` again, unsigned and signed with `other` by the target's `sign_file` with
/// the hash of the target's `config`: `(<stem>-unsigned.ko, <stem>-other.ko)`, each in a
/// directory of its own under `dir`.
fn unsigned_and_other(
    signed: &Path,
    dir: &Path,
    sign_file: &Path,
    config: &Path,
    other: &support::signing::TestKey,
) -> (PathBuf, PathBuf) {
    let bytes = std::fs::read(signed).unwrap();
    let content = klp_build::sign::trailer::split(&bytes)
        .unwrap()
        .expect("the module is signed")
        .content;
    let stem = signed.file_stem().unwrap().to_string_lossy();
    let (dir_unsigned, dir_other) = (dir.join("unsigned"), dir.join("other"));
    std::fs::create_dir_all(&dir_unsigned).unwrap();
    std::fs::create_dir_all(&dir_other).unwrap();
    let unsigned = dir_unsigned.join(format!("{stem}-unsigned.ko"));
    let signed_other = dir_other.join(format!("{stem}-other.ko"));
    std::fs::write(&unsigned, content).unwrap();
    let hash = std::fs::read_to_string(config)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CONFIG_MODULE_SIG_HASH="))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let o = Command::new(sign_file)
        .arg(&hash)
        .arg(&other.key)
        .arg(&other.cert)
        .arg(&unsigned)
        .arg(&signed_other)
        .output()
        .unwrap();
    assert!(o.status.success(), "sign-file: {}", describe(&o));
    (unsigned, signed_other)
}

/// Asserts that the boot log shows each `(module, reason)` refused: the kernel's "Loading of
/// <reason> is rejected" (`KLP-SIG-KERNEL: <module>: ` lines) and insmod's EKEYREJECTED
/// (`KLP-SIG-INSMOD: <module>: `), and prints what both said under `title`.
fn assert_refused(log: &str, title: &str, refusals: &[(&str, &str)]) {
    let kernel = lines(log, "KLP-SIG-KERNEL: ");
    let insmod = lines(log, "KLP-SIG-INSMOD: ");
    // What the kernel said, as the test report shows it.
    eprintln!("{title}:");
    for l in kernel.iter().chain(&insmod) {
        eprintln!("  {l}");
    }
    for (module, reason) in refusals {
        let said = format!("{module}: ");
        let k: Vec<&&str> = kernel.iter().filter(|l| l.starts_with(&said)).collect();
        assert!(
            k.iter()
                .any(|l| l.ends_with(&format!("Loading of {reason} is rejected"))),
            "{module}: the kernel did not say \"Loading of {reason} is rejected\": {k:?}\n{log}"
        );
        let i: Vec<&&str> = insmod.iter().filter(|l| l.starts_with(&said)).collect();
        assert!(
            i.iter().any(|l| l.contains("Key was rejected by service")),
            "{module}: insmod did not fail with EKEYREJECTED: {i:?}\n{log}"
        );
    }
}

#[test]
fn debians_kernel_enforcing_signatures_refuses_modules_signed_with_a_key_it_does_not_hold() {
    let name =
        "debians_kernel_enforcing_signatures_refuses_modules_signed_with_a_key_it_does_not_hold";
    let Some(lab) = support::lab(name) else {
        return;
    };
    let d = scratch("debian");
    let a = test_key(&d, "signing", "klp-build test key");
    let b = test_key(&d, "other", "another test key");
    let signed = d.join("livepatch-cmdline.ko");
    let mut args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &d.join("work"),
        &signed,
    );
    args.extend(
        [
            "--sign-key".as_ref(),
            a.key.as_os_str(),
            "--sign-cert".as_ref(),
            a.cert.as_os_str(),
            "-j".as_ref(),
            "2".as_ref(),
        ]
        .map(std::ffi::OsStr::to_os_string),
    );
    let o = support::run::klp_build(&d, &args);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));

    // The same module unsigned, and signed with the other key by the target's sign-file.
    let (unsigned, other) = unsigned_and_other(
        &signed,
        &d,
        &lab.kbuild.join("scripts/sign-file"),
        &lab.config,
        &b,
    );
    let other_sig = match klp_build::sign::read(&std::fs::read(&other).unwrap()) {
        klp_build::sign::State::Signed(s) => s,
        s => panic!("{s:?}"),
    };
    assert_eq!(other_sig.signer, "another test key");

    // Enforcing: each insmod fails, and the kernel's own message of each is kept.
    let script = r#"
echo "KLP-SIG: sig_enforce=$(cat /sys/module/module/parameters/sig_enforce)"
dmesg -c >/dev/null
for m in livepatch-cmdline livepatch-cmdline-unsigned livepatch-cmdline-other; do
    if insmod /modules/$m.ko 2>/tmp/err; then echo "KLP-SIG: $m LOADED"; exit 1; fi
    echo "KLP-SIG-INSMOD: $m: $(cat /tmp/err)"
    dmesg -c | sed "s/^/KLP-SIG-KERNEL: $m: /"
done
if [ -e /sys/kernel/livepatch/livepatch_cmdline ]; then echo "KLP-SIG: a livepatch is enabled"; exit 1; fi
if grep -q klp-build /proc/cmdline; then echo "KLP-SIG: /proc/cmdline is patched"; exit 1; fi
"#;
    let boot = support::boot_with(
        lab,
        "signing-enforced",
        &[&signed, &unsigned, &other],
        script,
        "module.sig_enforce=1",
    )
    .unwrap();
    assert!(
        boot.passed,
        "the enforcing boot failed; log {}:\n{}",
        boot.log_file.display(),
        boot.log
    );
    let log = &boot.log;
    assert!(log.contains("KLP-SIG: sig_enforce=Y"), "{log}");
    assert_refused(
        log,
        "the kernel, booted with module.sig_enforce=1",
        &[
            ("livepatch-cmdline", "module with unavailable key"),
            ("livepatch-cmdline-unsigned", "unsigned module"),
            ("livepatch-cmdline-other", "module with unavailable key"),
        ],
    );

    // Not enforcing: the signed module loads and works.
    let script = r#"
sysfs=/sys/kernel/livepatch/livepatch_cmdline
insmod /modules/livepatch-cmdline.ko
[ "$(cat $sysfs/enabled)" = 1 ]
i=0
until [ "$(cat $sysfs/transition)" = 0 ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "KLP-SIG: transition timed out"; exit 1; }; sleep 0.1
done
echo "KLP-SIG: cmdline $(cat /proc/cmdline)"
grep -q klp-build=patched /proc/cmdline
echo 0 > $sysfs/enabled
i=0
until [ ! -e $sysfs ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "KLP-SIG: disable timed out"; exit 1; }; sleep 0.1
done
rmmod livepatch_cmdline
"#;
    let boot = support::boot(lab, "signing-not-enforced", &[&signed], script).unwrap();
    assert!(
        boot.passed,
        "the signed module did not work on a kernel without enforcement; log {}:\n{}",
        boot.log_file.display(),
        boot.log
    );
}

#[test]
fn a_kernel_that_forces_signatures_loads_only_the_module_signed_with_its_key() {
    let name = "a_kernel_that_forces_signatures_loads_only_the_module_signed_with_its_key";
    let Some(kernel) = support::refkernel::ref_kernel_sig(name) else {
        return;
    };
    let config = std::fs::read_to_string(&kernel.config).unwrap();
    assert!(
        config.lines().any(|l| l == "CONFIG_MODULE_SIG_FORCE=y"),
        "{}: the signing variant does not force signatures",
        kernel.config.display()
    );
    let d = scratch("refkernel");
    // The build's own key (kbuild made it at the first build), on the kernel's keyring.
    let own_key = kernel.tree.join("certs/signing_key.pem");
    let signed = d.join("livepatch-new-function.ko");
    let mut args = support::refkernel::klp_build_args(
        kernel,
        &support::inputs::patch("fixes/new-function.patch"),
        &d.join("work"),
        &signed,
    );
    args.extend(
        [
            "--sign-key".as_ref(),
            own_key.as_os_str(),
            "--sign-cert".as_ref(),
            kernel.tree.join("certs/signing_key.x509").as_os_str(),
        ]
        .map(std::ffi::OsStr::to_os_string),
    );
    let o = support::run::klp_build(&d, &args);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));

    // The same module unsigned, and signed by the tree's sign-file with a key the kernel lacks.
    let other_key = test_key(&d, "other", "a key the kernel does not hold");
    let (unsigned, other) = unsigned_and_other(
        &signed,
        &d,
        &kernel.tree.join("scripts/sign-file"),
        &kernel.config,
        &other_key,
    );

    // One boot: the unsigned module and the one signed with the other key are refused with the
    // kernel's reasons; the one signed with the kernel's key loads, patches and unloads.
    let script = r#"
echo "KLP-SIG: sig_enforce=$(cat /sys/module/module/parameters/sig_enforce)"
dmesg -c >/dev/null
for m in livepatch-new-function-unsigned livepatch-new-function-other; do
    if insmod /modules/$m.ko 2>/tmp/err; then echo "KLP-SIG: $m LOADED"; exit 1; fi
    echo "KLP-SIG-INSMOD: $m: $(cat /tmp/err)"
    dmesg -c | sed "s/^/KLP-SIG-KERNEL: $m: /"
done
sysfs=/sys/kernel/livepatch/livepatch_new_function
insmod /modules/livepatch-new-function.ko
i=0
until [ "$(cat $sysfs/transition)" = 0 ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "KLP-SIG: transition timed out"; exit 1; }; sleep 0.1
done
echo "KLP-SIG: version $(cat /proc/version)"
grep -qx 'klp-build: livepatched' /proc/version
echo 0 > $sysfs/enabled
i=0
until [ ! -e $sysfs ]; do
    i=$((i + 1)); [ $i -lt 300 ] || { echo "KLP-SIG: disable timed out"; exit 1; }; sleep 0.1
done
rmmod livepatch_new_function
echo "KLP-SIG: signed module loaded, patched and unloaded"
"#;
    let boot = support::refkernel::boot(
        kernel,
        "signing-forced-refkernel",
        &[signed, unsigned, other],
        script,
        300,
    )
    .unwrap_or_else(|e| panic!("{e:#}"));
    let log = &boot.log;
    assert!(
        boot.passed,
        "the forcing boot failed; log {}:\n{log}",
        boot.log_file.display()
    );
    assert!(log.contains("KLP-SIG: sig_enforce=Y"), "{log}");
    assert!(
        log.contains("KLP-SIG: signed module loaded, patched and unloaded"),
        "{log}"
    );
    assert_refused(
        log,
        "the reference kernel with CONFIG_MODULE_SIG_FORCE",
        &[
            ("livepatch-new-function-unsigned", "unsigned module"),
            (
                "livepatch-new-function-other",
                "module with unavailable key",
            ),
        ],
    );
}
