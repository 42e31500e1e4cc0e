//! Test keys for the signing tests, made by `openssl req` when a test asks for them. Input: a
//! directory and a name. Output: a PEM key and its self-signed X.509 certificate (`CN=<name>`).
//! Invariant: keys are made fresh per test process, never committed; a missing openssl fails the
//! test, naming the package.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A key and its certificate.
#[derive(Debug, Clone)]
pub struct TestKey {
    /// The private key, PEM.
    pub key: PathBuf,
    /// Its self-signed certificate, PEM.
    pub cert: PathBuf,
}

/// `openssl ARGS`, which must succeed; its stdout.
pub fn openssl<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("openssl is needed by the signing tests (apt-get install openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {:?}: {}",
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A 2048-bit RSA key and a self-signed certificate `CN=<name>` in `dir` (`<file>.key`,
/// `<file>.pem`).
pub fn test_key(dir: &Path, file: &str, name: &str) -> TestKey {
    test_key_with_subject(dir, file, &format!("/CN={name}"))
}

/// [`test_key`] with the whole subject as openssl takes it (`/O=org/CN=name`).
pub fn test_key_with_subject(dir: &Path, file: &str, subject: &str) -> TestKey {
    key_and_cert(dir, file, subject, &["-newkey", "rsa:2048"])
}

/// An ECDSA key on `curve` (`P-256`, `P-384`, as openssl names them) and a self-signed
/// certificate `CN=<name>`, as `CONFIG_MODULE_SIG_KEY_TYPE_ECDSA` kernels sign with.
pub fn ec_test_key(dir: &Path, file: &str, name: &str, curve: &str) -> TestKey {
    let paramgen = format!("ec_paramgen_curve:{curve}");
    key_and_cert(
        dir,
        file,
        &format!("/CN={name}"),
        &["-newkey", "ec", "-pkeyopt", &paramgen],
    )
}

/// `openssl req -x509` making `<file>.key` and `<file>.pem` in `dir` with the key options `newkey`.
fn key_and_cert(dir: &Path, file: &str, subject: &str, newkey: &[&str]) -> TestKey {
    let key = dir.join(format!("{file}.key"));
    let cert = dir.join(format!("{file}.pem"));
    let mut args: Vec<&std::ffi::OsStr> = [
        "req", "-new", "-nodes", "-x509", "-batch", "-utf8", "-sha256", "-days", "3650", "-subj",
    ]
    .iter()
    .map(std::ffi::OsStr::new)
    .collect();
    args.push(subject.as_ref());
    args.extend(newkey.iter().map(std::ffi::OsStr::new));
    args.extend([
        "-keyout".as_ref(),
        key.as_os_str(),
        "-out".as_ref(),
        cert.as_os_str(),
    ]);
    openssl(&args);
    TestKey { key, cert }
}

/// The certificate's serial number as `modinfo` prints `sig_key`: `AA:BB:..`.
pub fn serial(cert: &Path) -> String {
    let out = openssl(&[
        "x509".as_ref(),
        "-noout".as_ref(),
        "-serial".as_ref(),
        "-in".as_ref(),
        cert.as_os_str(),
    ]);
    let hex = out.trim().trim_start_matches("serial=").to_string();
    hex.as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(":")
}
