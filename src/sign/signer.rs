//! Signing with the target's own `scripts/sign-file`. Input: the key (a PEM file or a PKCS#11
//! URI), its X.509 certificate, the target's kbuild dir (where sign-file is) and config (whose
//! `CONFIG_MODULE_SIG_HASH` names the digest). Output: a [`Signer`], then the [`Signature`] of each
//! module it signs, read back from the file. Invariant: a `Signer` exists only once sign-file has
//! made a trial signature with this key that verifies against this certificate, so an unreadable
//! key, a missing certificate, a key of another certificate or a target without sign-file is an
//! error before anything is compiled; and a signed module's content is exactly the module as it was
//! before signing.

use std::ffi::OsString;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use x509_cert::Certificate;

use super::{pkcs7, trailer, Signature, VerifyError};
use crate::input::{io_reason, Kind};

/// The private key, as sign-file takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM file (`-----BEGIN PRIVATE KEY-----`, RSA, EC or encrypted; a passphrase comes from
    /// `KBUILD_SIGN_PIN`).
    File(PathBuf),
    /// A PKCS#11 URI (`pkcs11:token=...;object=...`), for a key in a token or HSM; sign-file loads
    /// OpenSSL's pkcs11 provider or engine for it.
    Pkcs11(String),
}

impl KeySource {
    /// `arg` as given: a `pkcs11:` URI or a path (relative to `base` when given and relative).
    pub fn parse(arg: &std::ffi::OsStr, base: Option<&Path>) -> KeySource {
        match arg.to_str() {
            Some(s) if s.starts_with("pkcs11:") => KeySource::Pkcs11(s.to_string()),
            _ => KeySource::File(match base {
                Some(b) => b.join(arg),
                None => PathBuf::from(arg),
            }),
        }
    }

    /// The argument sign-file takes: the path or the URI.
    pub fn arg(&self) -> OsString {
        match self {
            KeySource::File(p) => p.clone().into_os_string(),
            KeySource::Pkcs11(u) => u.into(),
        }
    }

    /// How messages name it: the path or the URI.
    pub fn display(&self) -> String {
        match self {
            KeySource::File(p) => p.display().to_string(),
            KeySource::Pkcs11(u) => u.clone(),
        }
    }
}

/// How messages name the key and the certificate: `--sign-key`/`--sign-cert` on the command line,
/// `[sign] key`/`[sign] cert` in a release file.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// The key's option.
    pub key: &'static str,
    /// The certificate's option.
    pub cert: &'static str,
}

/// The build's options.
pub const OPTIONS: Names = Names {
    key: "--sign-key",
    cert: "--sign-cert",
};

/// The release file's `[sign]` table.
pub const RELEASE: Names = Names {
    key: "[sign] key",
    cert: "[sign] cert",
};

/// The key and certificate files, checked without a target: the certificate is a readable X.509
/// certificate, a key file is readable and holds a PEM private key. Returns the certificate.
pub fn check_files(key: &KeySource, cert: &Path, names: Names) -> anyhow::Result<Certificate> {
    let cert = super::load_certificate(cert, names.cert)?;
    if let KeySource::File(path) = key {
        let bytes = crate::input::read(path, Kind::Key, names.key).with_context(|| {
            "give the module signing key as a PEM file, or a PKCS#11 URI (pkcs11:...)".to_string()
        })?;
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        if !(has(b"-----BEGIN ") && has(b"PRIVATE KEY-----")) {
            bail!(
                "{} {}: not a PEM private key (no `-----BEGIN ... PRIVATE KEY-----` line); sign-file reads the key \
                 as PEM (e.g. the certs/signing_key.pem of a kernel build) or from a PKCS#11 URI (pkcs11:...)",
                names.key,
                path.display()
            );
        }
    }
    Ok(cert)
}

/// A checked key, certificate and target: what signs the module.
#[derive(Debug, Clone)]
pub struct Signer {
    /// The target's `scripts/sign-file`.
    pub sign_file: PathBuf,
    /// `CONFIG_MODULE_SIG_HASH` of the target (`sha256`).
    pub hash: String,
    /// The key.
    pub key: KeySource,
    /// The certificate's path.
    pub cert_path: PathBuf,
    /// The certificate.
    cert: Certificate,
    names: Names,
}

/// The longest a sign-file run may take: signing a module takes milliseconds, a PKCS#11 token a
/// few seconds; one that waits for a PIN on a terminal it cannot have must not hang the build.
const SIGN_LIMIT: Duration = Duration::from_secs(120);

impl Signer {
    /// Checks `key` and `cert` against the target whose kbuild dir is `kbuild` and config
    /// `config`, cheapest first, ending with a trial signature (see the module doc).
    pub fn new(
        key: KeySource,
        cert_path: &Path,
        kbuild: &Path,
        config: &Path,
        names: Names,
    ) -> anyhow::Result<Signer> {
        let cert = check_files(&key, cert_path, names)?;
        let sign_file = kbuild.join("scripts/sign-file");
        let executable = std::fs::metadata(&sign_file).is_ok_and(|m| {
            use std::os::unix::fs::PermissionsExt as _;
            m.is_file() && m.permissions().mode() & 0o111 != 0
        });
        if !executable {
            bail!(
                "{}: the target's kbuild dir {} has no scripts/sign-file to sign with; install the kbuild tools of \
                 the target (Debian: the linux-kbuild-<version> package that its linux-headers package names), or, \
                 in a kernel tree of your own, build them with `make scripts` (CONFIG_MODULE_SIG=y builds sign-file)",
                names.key,
                kbuild.display()
            );
        }
        let config_text = crate::input::read(config, Kind::Config, "the target's config")?;
        let kconfig = crate::kernel::config::KConfig::parse(&String::from_utf8_lossy(&config_text));
        let Some(hash) = kconfig
            .get("CONFIG_MODULE_SIG_HASH")
            .map(|h| h.trim_matches('"').to_string())
        else {
            bail!(
                "{}: the target's config {} has no CONFIG_MODULE_SIG_HASH: the kernel was built without module \
                 signing (CONFIG_MODULE_SIG), so it checks no signature; build without {} and {}",
                names.key,
                config.display(),
                names.key,
                names.cert
            );
        };
        if !pkcs7::known_digest(&hash) {
            bail!(
                "{}: the target's config {} has CONFIG_MODULE_SIG_HASH={hash:?}, not a digest of module signatures \
                 (sha1, sha224, sha256, sha384, sha512, sha3-256, sha3-384, sha3-512)",
                names.key,
                config.display()
            );
        }
        let signer = Signer {
            sign_file,
            hash,
            key,
            cert_path: cert_path.to_path_buf(),
            cert,
            names,
        };
        signer.trial()?;
        Ok(signer)
    }

    /// `--sign-key K with --sign-cert C`, for messages.
    fn pair(&self) -> String {
        format!(
            "{} {} with {} {}",
            self.names.key,
            self.key.display(),
            self.names.cert,
            self.cert_path.display()
        )
    }

    /// Signs a few bytes in a scratch dir and verifies the result against the certificate.
    fn trial(&self) -> anyhow::Result<()> {
        let dir = tempfile::Builder::new()
            .prefix("klp-build-sign")
            .tempdir()
            .context("creating a scratch dir for the trial signature")?;
        let unsigned = dir.path().join("trial.ko");
        let signed = dir.path().join("trial.ko.signed");
        std::fs::write(&unsigned, b"klp-build: trial module signature\n")
            .with_context(|| format!("writing {}", unsigned.display()))?;
        self.run(&unsigned, Some(&signed))?;
        let bytes = std::fs::read(&signed)
            .with_context(|| format!("reading the trial signature {}", signed.display()))?;
        super::verify_module(&bytes, &self.cert)
            .map_err(|e| self.verify_error(e, "a trial signature"))?;
        Ok(())
    }

    fn verify_error(&self, e: VerifyError, what: &str) -> anyhow::Error {
        match e {
            VerifyError::Mismatch | VerifyError::OtherSigner { .. } => anyhow::anyhow!(
                "{} {} does not match {} {} ({}): {what} made with the key does not verify against the \
                 certificate ({e}); give the certificate of this key, or the key of this certificate",
                self.names.key,
                self.key.display(),
                self.names.cert,
                self.cert_path.display(),
                pkcs7::cert_subject(&self.cert)
            ),
            VerifyError::Unsupported(why) => anyhow::anyhow!(
                "{}: klp-build cannot check {what}: {why}; sign with an RSA key or an ECDSA key on P-256 \
                 or P-384",
                self.pair()
            ),
            VerifyError::Malformed(m) => anyhow::anyhow!(
                "{}: {what} by {} is malformed: {m:#}",
                self.pair(),
                self.sign_file.display()
            ),
        }
    }

    /// `sign-file HASH KEY CERT MODULE [DEST]`, bounded by [`SIGN_LIMIT`]; its stderr in the error.
    fn run(&self, module: &Path, dest: Option<&Path>) -> anyhow::Result<()> {
        let mut cmd = Command::new(&self.sign_file);
        cmd.arg(&self.hash)
            .arg(self.key.arg())
            .arg(&self.cert_path)
            .arg(module);
        if let Some(d) = dest {
            cmd.arg(d);
        }
        let err_file = tempfile::tempfile().context("creating a file for sign-file's messages")?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err_file.try_clone().context("sign-file's stderr")?)
            .spawn()
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: cannot run {}: {}",
                    self.pair(),
                    self.sign_file.display(),
                    io_reason(&e)
                )
            })?;
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().context("waiting for sign-file")? {
                break s;
            }
            if start.elapsed() > SIGN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{}: {} ran for more than {} s and was stopped; a PKCS#11 token may be waiting for its PIN \
                     (give it in KBUILD_SIGN_PIN)",
                    self.pair(),
                    self.sign_file.display(),
                    SIGN_LIMIT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if status.success() {
            return Ok(());
        }
        let mut stderr = String::new();
        {
            use std::io::Seek as _;
            let mut f = err_file;
            let _ = f.seek(std::io::SeekFrom::Start(0));
            let _ = f.take(64 * 1024).read_to_string(&mut stderr);
        }
        let said: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let said = crate::text::field_max(&said[said.len().saturating_sub(6)..].join("; "), 1000);
        if stderr.contains("key values mismatch") || stderr.contains("does not match certificate") {
            bail!(
                "{} {} does not match {} {} ({}): sign-file refuses to sign with them (\"private key does not \
                 match certificate\"); give the certificate of this key, or the key of this certificate",
                self.names.key,
                self.key.display(),
                self.names.cert,
                self.cert_path.display(),
                pkcs7::cert_subject(&self.cert)
            );
        }
        bail!(
            "{}: the target's {} could not sign ({status}): {said}; check that the key is readable by sign-file \
             (a PEM key with a passphrase takes it from KBUILD_SIGN_PIN; a pkcs11: URI needs OpenSSL's pkcs11 \
             provider or engine) and that the certificate is the key's own",
            self.pair(),
            self.sign_file.display()
        )
    }

    /// Signs the module at `ko` in place (its last write) and reads the signature back: the
    /// content before it must be the module as it was, and it must verify against the certificate.
    pub fn sign(&self, ko: &Path) -> anyhow::Result<Signature> {
        let before = crate::input::read(ko, Kind::Module, "the built module")?;
        if trailer::split(&before).is_ok_and(|s| s.is_some()) {
            bail!(
                "{}: is signed already; klp-build signs the module once, after every other write to it",
                ko.display()
            );
        }
        self.run(ko, None)?;
        let after = crate::input::read(ko, Kind::Module, "the signed module")?;
        let signed = match trailer::split(&after) {
            Ok(Some(s)) => s,
            Ok(None) => bail!(
                "{}: {} exited 0 but appended no signature",
                ko.display(),
                self.sign_file.display()
            ),
            Err(e) => bail!(
                "{}: the signature {} appended is malformed: {e}",
                ko.display(),
                self.sign_file.display()
            ),
        };
        if signed.content != before.as_slice() {
            bail!(
                "{}: the signed module's content differs from the module before signing; {} changed more than \
                 it appended",
                ko.display(),
                self.sign_file.display()
            );
        }
        super::verify_module(&after, &self.cert).map_err(|e| {
            self.verify_error(e, "the signature")
                .context(format!("{}", ko.display()))
        })
    }
}
