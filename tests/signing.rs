//! Signing on the kernel lab's Debian 6.1 target, with test keys made by openssl in the test:
//! `--sign-key`/`--sign-cert` sign the module with the headers' own `scripts/sign-file` and the
//! config's `CONFIG_MODULE_SIG_HASH`; the signature in the report and in `inspect` is the one
//! kmod's `modinfo` and `openssl cms -verify` read from the file; `inspect --verify-signature`
//! accepts it and refuses another certificate, a changed module and an unsigned one; a key of
//! another certificate, an unreadable key, a missing certificate, a target without sign-file or
//! without module signing are errors before anything is compiled; a release's `[sign]` signs each
//! target and records the signature in `index.json`. The QEMU proof is in `e2e_signing.rs`.
//!
//! The lab tests skip with a printed reason without the lab, and fail under `CI`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use support::run::describe;
use support::signing::{test_key, TestKey};

/// A fresh directory under cargo's target dir for one test.
fn scratch(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let d = tmp.parent().unwrap_or(tmp).join("klp-signing").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn klp<S: AsRef<std::ffi::OsStr>>(dir: &Path, args: &[S]) -> Output {
    support::run::klp_build(dir, args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Two keys for the whole test binary: the signing key and another one.
fn keys() -> &'static (PathBuf, TestKey, TestKey) {
    static KEYS: OnceLock<(PathBuf, TestKey, TestKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let d = scratch("keys");
        let a = test_key(&d, "signing", "klp-build test key");
        let b = test_key(&d, "other", "another test key");
        (d, a, b)
    })
}

/// The build command for the lab with `cmdline.patch`, writing `dir/<name>.ko`, plus `extra`.
fn build_args(
    lab: &support::Lab,
    dir: &Path,
    extra: &[&std::ffi::OsStr],
) -> Vec<std::ffi::OsString> {
    let mut a = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &dir.join("work"),
        &dir.join("livepatch-cmdline.ko"),
    );
    a.extend(["-j".into(), "2".into()]);
    a.extend(extra.iter().map(|e| e.to_os_string()));
    a
}

/// The lab's CONFIG_MODULE_SIG_HASH.
fn lab_hash(lab: &support::Lab) -> String {
    let text = std::fs::read_to_string(&lab.config).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("CONFIG_MODULE_SIG_HASH="))
        .expect("the lab's config has CONFIG_MODULE_SIG_HASH")
        .trim_matches('"')
        .to_string()
}

// ---- errors before anything is compiled ----

/// Each bad signing option ends the run in the plan: exit 1 (2 for a usage error), a message
/// naming the file and what to do, no work dir and no stage started.
#[test]
fn bad_signing_options_are_errors_before_anything_is_compiled() {
    let Some(lab) = support::lab("bad_signing_options_are_errors_before_anything_is_compiled")
    else {
        return;
    };
    let (kd, a, b) = keys();
    let d = scratch("before-compile");
    // A kbuild dir like the lab's but without scripts/sign-file.
    let no_sign_file = d.join("kbuild-without-sign-file");
    std::fs::create_dir_all(no_sign_file.join("scripts")).unwrap();
    for e in std::fs::read_dir(&lab.kbuild).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "scripts" {
            std::os::unix::fs::symlink(e.path(), no_sign_file.join(e.file_name())).unwrap();
        }
    }
    for e in std::fs::read_dir(lab.kbuild.join("scripts")).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "sign-file" {
            std::os::unix::fs::symlink(e.path(), no_sign_file.join("scripts").join(e.file_name()))
                .unwrap();
        }
    }
    // The lab's config without module signing.
    let unsigned_config = d.join("config-without-module-sig");
    let text: String = std::fs::read_to_string(&lab.config)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("CONFIG_MODULE_SIG"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&unsigned_config, text).unwrap();
    let missing = kd.join("missing.pem");
    let cert_copy = d.join("copy-of-the-certificate.pem");
    std::fs::copy(&a.cert, &cert_copy).unwrap();

    let s = |p: &Path| p.as_os_str().to_os_string();
    let cases: Vec<(&str, Vec<std::ffi::OsString>, i32, Vec<String>)> = vec![
        (
            "a key of another certificate",
            vec![
                "--sign-key".into(),
                s(&b.key),
                "--sign-cert".into(),
                s(&a.cert),
            ],
            1,
            vec![
                format!(
                    "--sign-key {} does not match --sign-cert {}",
                    b.key.display(),
                    a.cert.display()
                ),
                "CN=klp-build test key".into(),
                "give the certificate of this key".into(),
            ],
        ),
        (
            "a missing certificate",
            vec![
                "--sign-key".into(),
                s(&a.key),
                "--sign-cert".into(),
                s(&missing),
            ],
            1,
            vec![format!(
                "--sign-cert {}: No such file or directory",
                missing.display()
            )],
        ),
        (
            "a missing key",
            vec![
                "--sign-key".into(),
                s(&missing),
                "--sign-cert".into(),
                s(&a.cert),
            ],
            1,
            vec![
                format!(
                    "--sign-key {}: No such file or directory",
                    missing.display()
                ),
                "PEM file, or a PKCS#11 URI".into(),
            ],
        ),
        (
            "a directory as the key",
            vec!["--sign-key".into(), s(kd), "--sign-cert".into(), s(&a.cert)],
            1,
            vec![format!("--sign-key {}: is a directory", kd.display())],
        ),
        (
            "a certificate as the key",
            vec![
                "--sign-key".into(),
                s(&a.cert),
                "--sign-cert".into(),
                s(&a.cert),
            ],
            1,
            vec![format!(
                "--sign-key {}: not a PEM private key",
                a.cert.display()
            )],
        ),
        (
            "a key as the certificate",
            vec![
                "--sign-key".into(),
                s(&a.key),
                "--sign-cert".into(),
                s(&a.key),
            ],
            1,
            vec![format!(
                "--sign-cert {}: not an X.509 certificate",
                a.key.display()
            )],
        ),
        (
            "a PKCS#11 URI without a token",
            vec![
                "--sign-key".into(),
                "pkcs11:token=klp-build-test;object=none".into(),
                "--sign-cert".into(),
                s(&a.cert),
            ],
            1,
            vec![
                "--sign-key pkcs11:token=klp-build-test;object=none with --sign-cert".into(),
                "could not sign".into(),
            ],
        ),
        (
            "a target without sign-file",
            vec![
                "--sign-key".into(),
                s(&a.key),
                "--sign-cert".into(),
                s(&a.cert),
                "--kbuild".into(),
                s(&no_sign_file),
            ],
            1,
            vec![
                "has no scripts/sign-file".into(),
                no_sign_file.display().to_string(),
                "linux-kbuild".into(),
            ],
        ),
        (
            "a target without module signing",
            vec![
                "--sign-key".into(),
                s(&a.key),
                "--sign-cert".into(),
                s(&a.cert),
                "--config".into(),
                s(&unsigned_config),
            ],
            1,
            vec![
                "has no CONFIG_MODULE_SIG_HASH".into(),
                unsigned_config.display().to_string(),
            ],
        ),
        (
            "-o naming the certificate",
            vec![
                "--sign-key".into(),
                s(&a.key),
                "--sign-cert".into(),
                s(&cert_copy),
                "-o".into(),
                s(&cert_copy),
            ],
            2,
            vec![format!("is the input --sign-cert {}", cert_copy.display())],
        ),
        (
            "a key without its certificate",
            vec!["--sign-key".into(), s(&a.key)],
            2,
            vec!["--sign-cert".into()],
        ),
    ];
    for (what, extra, code, needles) in cases {
        let _ = std::fs::remove_dir_all(d.join("work"));
        let extra: Vec<&std::ffi::OsStr> = extra.iter().map(|e| e.as_os_str()).collect();
        // A case's --kbuild, --config or -o replaces the lab's.
        let args = build_args(lab, &d, &extra);
        let args = dedup_last(args);
        let o = klp(&d, &args);
        assert_eq!(o.status.code(), Some(code), "{what}: {}", describe(&o));
        let err = stderr(&o);
        for n in &needles {
            assert!(
                err.contains(n.as_str()),
                "{what}: the message lacks {n:?}:\n{err}"
            );
        }
        assert!(
            !err.contains("klp-build: prepare") && !err.contains("klp-build: rebuild"),
            "{what}: a stage ran before the error:\n{err}"
        );
        assert!(!d.join("work").exists(), "{what}: the work dir was made");
        assert!(
            !d.join("livepatch-cmdline.ko").exists(),
            "{what}: a module was written"
        );
    }
}

/// `--kbuild`, `--config` and `-o` given by a case replace the lab's (clap takes one value).
fn dedup_last(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        let later = |name: &str| a == name && args[i + 1..].iter().any(|x| x == name);
        if later("--kbuild") || later("--config") || later("-o") {
            i += 2;
            continue;
        }
        out.push(a.clone());
        i += 1;
    }
    out
}

// ---- a signed module ----

/// The module built once with the test key: (dir, module, JSON report).
fn signed_module() -> Option<&'static (PathBuf, PathBuf, serde_json::Value)> {
    static SIGNED: OnceLock<Option<(PathBuf, PathBuf, serde_json::Value)>> = OnceLock::new();
    SIGNED
        .get_or_init(|| {
            let lab = support::lab("signed_module")?;
            let (_, a, _) = keys();
            let d = scratch("signed");
            let args = build_args(
                lab,
                &d,
                &[
                    "--sign-key".as_ref(),
                    a.key.as_os_str(),
                    "--sign-cert".as_ref(),
                    a.cert.as_os_str(),
                    "--report".as_ref(),
                    "json".as_ref(),
                ],
            );
            let o = klp(&d, &args);
            assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
            assert!(
                stderr(&o).contains("klp-build: sign..."),
                "{}",
                describe(&o)
            );
            let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            Some((d.clone(), d.join("livepatch-cmdline.ko"), report))
        })
        .as_ref()
}

fn modinfo(ko: &Path, field: &str) -> String {
    let o = Command::new("modinfo")
        .args(["-F", field])
        .arg(ko)
        .output()
        .expect("modinfo (apt-get install kmod)");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn the_report_and_inspect_show_the_signature_that_kmod_and_openssl_read() {
    let Some(lab) =
        support::lab("the_report_and_inspect_show_the_signature_that_kmod_and_openssl_read")
    else {
        return;
    };
    let (d, ko, report) = signed_module().unwrap();
    let (_, a, _) = keys();
    let sig = &report["signature"];
    assert_eq!(sig["signer"], "klp-build test key", "{report:#}");
    assert_eq!(sig["hash"], lab_hash(lab).as_str());
    assert_eq!(sig["algorithm"], "rsa");
    assert_eq!(sig["key_id"]["kind"], "issuer_serial");
    assert_eq!(
        sig["key_id"]["serial"],
        support::signing::serial(&a.cert).as_str()
    );
    // kmod's own reading of the file.
    assert_eq!(modinfo(ko, "sig_id"), "PKCS#7");
    assert_eq!(modinfo(ko, "signer"), "klp-build test key");
    assert_eq!(
        modinfo(ko, "sig_key"),
        sig["key_id"]["serial"].as_str().unwrap()
    );
    assert_eq!(modinfo(ko, "sig_hashalgo"), lab_hash(lab));
    // The signature covers the module with its manifest: the bytes before it are the module as
    // klp-build finished it, whose manifest inspect reads.
    let bytes = std::fs::read(ko).unwrap();
    let signed = klp_build::sign::trailer::split(&bytes).unwrap().unwrap();
    assert_eq!(sig["signed_bytes"], signed.content.len() as u64);
    let unsigned = d.join("unsigned.ko");
    std::fs::write(&unsigned, signed.content).unwrap();
    let manifest = klp_build::contract::manifest::read(&unsigned).unwrap();
    assert_eq!(manifest.fixes[0].name, "cmdline");
    // openssl verifies the detached message over those bytes with the certificate.
    let p7 = d.join("sig.p7");
    std::fs::write(&p7, signed.pkcs7).unwrap();
    let o = Command::new("openssl")
        .args([
            "cms",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-noverify",
            "-in",
        ])
        .arg(&p7)
        .arg("-content")
        .arg(&unsigned)
        .arg("-certfile")
        .arg(&a.cert)
        .arg("-nointern")
        .args(["-out", "/dev/null"])
        .output()
        .unwrap();
    assert!(o.status.success(), "openssl cms -verify: {}", describe(&o));
    // inspect, text and JSON.
    let o = klp(d, &["inspect".as_ref(), ko.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(&format!(
            "signature: {} rsa by \"klp-build test key\"",
            lab_hash(lab)
        )),
        "{text}"
    );
    let o = klp(
        d,
        &[
            "inspect".as_ref(),
            ko.as_os_str(),
            "--report".as_ref(),
            "json".as_ref(),
        ],
    );
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["signature"]["status"], "signed");
    assert_eq!(j["signature"]["key_id"], sig["key_id"]);
    assert!(j.get("verified").is_none());
    let o = klp(d, &["inspect".as_ref(), unsigned.as_os_str()]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("signature: none (not signed)"));
}

#[test]
fn verify_signature_accepts_the_signed_module_and_refuses_changes_other_keys_and_no_signature() {
    let Some(_lab) = support::lab(
        "verify_signature_accepts_the_signed_module_and_refuses_changes_other_keys_and_no_signature",
    ) else {
        return;
    };
    let (d, ko, _) = signed_module().unwrap();
    let (_, a, b) = keys();
    let verify = |module: &Path, cert: &Path, json: bool| {
        let mut args = vec![
            "inspect".as_ref(),
            module.as_os_str(),
            "--verify-signature".as_ref(),
            cert.as_os_str(),
        ];
        if json {
            args.extend([
                std::ffi::OsStr::new("--report"),
                std::ffi::OsStr::new("json"),
            ]);
        }
        klp(d, &args)
    };
    let o = verify(ko, &a.cert, false);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!(
            "signature verified: signed by the key of {} (CN=klp-build test key)",
            a.cert.display()
        )),
        "{}",
        describe(&o)
    );
    let o = verify(ko, &a.cert, true);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["verified"]["ok"], true, "{j:#}");
    // Another certificate.
    let o = verify(ko, &b.cert, false);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        stderr(&o).contains("not by the certificate's key"),
        "{}",
        describe(&o)
    );
    // One byte changed after signing: in the manifest, and in the code.
    let bytes = std::fs::read(ko).unwrap();
    let find = |needle: &[u8]| {
        bytes
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("the manifest in the module")
    };
    let version_at = find(b"\"tool_version\": \"") + b"\"tool_version\": \"".len();
    let fixes_at = find(b"\"fixes\"") + 1;
    for (what, at, mask) in [
        ("the manifest's tool version", version_at, 0x01),
        ("the manifest's layout", fixes_at, 0x20),
        ("the ELF header", 20, 0x20),
    ] {
        let mut t = bytes.clone();
        t[at] ^= mask;
        let changed = d.join("changed.ko");
        std::fs::write(&changed, &t).unwrap();
        let o = verify(&changed, &a.cert, true);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", describe(&o));
        assert!(
            stderr(&o).contains("the module was changed after it was signed"),
            "{what}: {}",
            describe(&o)
        );
        if at == version_at {
            let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert_eq!(j["verified"]["ok"], false);
        }
    }
    // The signature cut off.
    let split = klp_build::sign::trailer::split(&bytes).unwrap().unwrap();
    let unsigned = d.join("cut.ko");
    std::fs::write(&unsigned, split.content).unwrap();
    let o = verify(&unsigned, &a.cert, false);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(stderr(&o).contains("it is not signed"), "{}", describe(&o));
    // A certificate that is not one: an error before anything is printed.
    let o = verify(ko, &a.key, false);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        stderr(&o).contains("--verify-signature"),
        "{}",
        describe(&o)
    );
    assert!(o.stdout.is_empty());
}

// ---- a signed release ----

#[test]
fn a_releases_sign_table_signs_each_target_and_index_json_records_it() {
    let Some(lab) =
        support::lab("a_releases_sign_table_signs_each_target_and_index_json_records_it")
    else {
        return;
    };
    let (_, a, b) = keys();
    let d = scratch("release");
    std::fs::create_dir_all(d.join("fixes")).unwrap();
    std::fs::create_dir_all(d.join("keys")).unwrap();
    std::fs::copy(
        support::inputs::patch("cmdline.patch"),
        d.join("fixes/cmdline.patch"),
    )
    .unwrap();
    std::fs::copy(&a.key, d.join("keys/signing.key")).unwrap();
    std::fs::copy(&a.cert, d.join("keys/signing.pem")).unwrap();
    std::fs::copy(&b.key, d.join("keys/other.key")).unwrap();
    let target = format!(
        "[[target]]\nname = \"lab\"\nsource = \"{}\"\nkbuild = \"{}\"\nconfig = \"{}\"\nsymbols = \"{}\"\nmodules = \"{}\"\n",
        lab.src.display(),
        lab.kbuild.display(),
        lab.config.display(),
        lab.kallsyms.display(),
        lab.modules.display()
    );
    let release = |key: &str| {
        format!(
            "name = \"acme\"\nversion = \"1\"\n[[fix]]\nid = \"cmdline\"\npatches = [\"fixes/cmdline.patch\"]\n\
             {target}[sign]\nkey = \"keys/{key}\"\ncert = \"keys/signing.pem\"\n"
        )
    };
    let cache = scratch("release-cache");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_klp-build"))
            .args(args)
            .current_dir(&d)
            .env("KLP_BUILD_CACHE", &cache)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    std::fs::write(d.join("release.toml"), release("signing.key")).unwrap();
    let o = run(&["release", "build", "release.toml", "-o", "out", "-j", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("signed sha256 by \"klp-build test key\""),
        "{}",
        describe(&o)
    );
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/index.json")).unwrap()).unwrap();
    let t = &index["targets"][0];
    assert_eq!(t["status"], "built", "{index:#}");
    assert_eq!(t["signature"]["signer"], "klp-build test key", "{index:#}");
    assert_eq!(t["signature"]["hash"], lab_hash(lab).as_str());
    assert_eq!(
        t["signature"]["key_id"]["serial"],
        support::signing::serial(&a.cert).as_str()
    );
    let ko = d.join("out").join(t["module"].as_str().unwrap());
    let o = klp(
        &d,
        &[
            "inspect".as_ref(),
            ko.as_os_str(),
            "--verify-signature".as_ref(),
            a.cert.as_os_str(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    // RSA PKCS#1 v1.5 without signed attributes is deterministic: the index's sha256 is the
    // signed module's, the same in a second build.
    let o = run(&["release", "build", "release.toml", "-o", "again", "-j", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(
        std::fs::read(d.join("again/index.json")).unwrap(),
        std::fs::read(d.join("out/index.json")).unwrap()
    );
    // A key of another certificate: the target is refused by its build's plan, before it
    // compiles, with the build's message.
    std::fs::write(d.join("release.toml"), release("other.key")).unwrap();
    let o = run(&[
        "release",
        "build",
        "release.toml",
        "-o",
        "mismatch",
        "-j",
        "2",
        "--report",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let index: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let t = &index["targets"][0];
    assert_eq!(t["status"], "refused", "{index:#}");
    let reason = t["reason"].as_str().unwrap();
    assert!(reason.contains("does not match --sign-cert"), "{reason}");
    assert!(t.get("signature").is_none(), "{index:#}");
    let log = d
        .join("mismatch")
        .join(t["kernel_release"].as_str().unwrap())
        .join("build.log");
    let log = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    assert!(
        log.contains("does not match") && !log.contains("klp-build: rebuild"),
        "{log}"
    );
    // A missing certificate: the release file names its line, before any target is built.
    std::fs::write(
        d.join("release.toml"),
        release("signing.key").replace("keys/signing.pem", "keys/missing.pem"),
    )
    .unwrap();
    let o = run(&["release", "build", "release.toml", "-o", "missing"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        stderr(&o).contains("[sign] cert = \"keys/missing.pem\""),
        "{}",
        describe(&o)
    );
    assert!(!d.join("missing").exists());
    // A certificate that is not one: refused before the first fetch.
    std::fs::write(
        d.join("release.toml"),
        release("signing.key").replace("keys/signing.pem", "keys/other.key"),
    )
    .unwrap();
    let o = run(&["release", "build", "release.toml", "-o", "notcert"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(stderr(&o).contains("[sign] cert"), "{}", describe(&o));
    assert!(
        stderr(&o).contains("not an X.509 certificate"),
        "{}",
        describe(&o)
    );
}

/// An ECDSA key (`CONFIG_MODULE_SIG_KEY_TYPE_ECDSA` kernels sign with P-384) goes through the same
/// path: the trial signature, the target's sign-file, the read-back into the report, and
/// `inspect --verify-signature`, which refuses the module once a byte of it changes.
#[test]
fn an_ecdsa_key_signs_through_the_targets_sign_file_and_verifies() {
    let name = "an_ecdsa_key_signs_through_the_targets_sign_file_and_verifies";
    let Some(lab) = support::lab(name) else {
        return;
    };
    let d = scratch("ecdsa");
    let k = support::signing::ec_test_key(&d, "ecdsa", "klp-build ECDSA key", "P-384");
    let args = build_args(
        lab,
        &d,
        &[
            "--sign-key".as_ref(),
            k.key.as_os_str(),
            "--sign-cert".as_ref(),
            k.cert.as_os_str(),
            "--report".as_ref(),
            "json".as_ref(),
        ],
    );
    let o = klp(&d, &args);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sig = &report["signature"];
    assert_eq!(sig["algorithm"], "ecdsa", "{report:#}");
    assert_eq!(sig["signer"], "klp-build ECDSA key", "{report:#}");
    assert_eq!(sig["hash"], lab_hash(lab).as_str(), "{report:#}");
    let ko = d.join("livepatch-cmdline.ko");
    assert_eq!(modinfo(&ko, "signer"), "klp-build ECDSA key");
    let inspect = |module: &Path| {
        klp(
            &d,
            &[
                "inspect".as_ref(),
                module.as_os_str(),
                "--verify-signature".as_ref(),
                k.cert.as_os_str(),
            ],
        )
    };
    let o = inspect(&ko);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let mut bytes = std::fs::read(&ko).unwrap();
    bytes[100] ^= 1;
    let changed = d.join("changed.ko");
    std::fs::write(&changed, &bytes).unwrap();
    let o = inspect(&changed);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        stderr(&o).contains("changed after it was signed"),
        "{}",
        describe(&o)
    );
}
