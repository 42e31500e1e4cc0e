//! Module signatures: the target's own `scripts/sign-file` signs a finished module (the last write
//! to it), and klp-build reads back what was appended. Input: a module's bytes (untrusted), a key
//! and certificate. Output: a [`Signature`] for the report, `index.json` and `inspect`, or a
//! verdict of [`verify_module`]. Invariant: what is reported is read from the signed file, never
//! taken from the options that asked for it, and a malformed trailer or message is an error that
//! says what is wrong, never a panic.
//!
//! | file | concern |
//! |---|---|
//! | `trailer.rs` | the appended `struct module_signature` and marker: where the PKCS#7 lies |
//! | `pkcs7.rs` | the CMS `SignedData`: signer, key id, hash; verification against a certificate |
//! | `signer.rs` | `--sign-key`/`--sign-cert` checked with a trial signature before anything is compiled; signing |

pub mod pkcs7;
pub mod signer;
pub mod trailer;

use std::fmt;
use std::path::Path;

use der::{Decode, DecodePem};
use serde::{Deserialize, Serialize};
use x509_cert::Certificate;

pub use pkcs7::VerifyError;
pub use signer::{KeySource, Signer};

/// What a module's signature says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Signature {
    /// The signer as `modinfo` names it: the common name of the certificate issuer the message
    /// names (the key's own name for a self-signed certificate, as the kernel's and Debian's are);
    /// empty when the signer is named by key id.
    pub signer: String,
    /// How the message names the signing key.
    pub key_id: KeyId,
    /// The digest algorithm, as `CONFIG_MODULE_SIG_HASH` names it (`sha256`).
    pub hash: String,
    /// The public-key algorithm (`rsa`).
    pub algorithm: String,
    /// Whether the message has signed attributes (sign-file writes none).
    pub signed_attributes: bool,
    /// Bytes the signature covers: the module before signing.
    pub signed_bytes: u64,
    /// Bytes of the PKCS#7 message.
    pub pkcs7_bytes: u64,
}

/// How a PKCS#7 signer names its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyId {
    /// The certificate's issuer (RFC 4514) and serial number (`AA:BB:..`, `modinfo`'s `sig_key`):
    /// what sign-file writes by default.
    IssuerSerial {
        /// The issuer's distinguished name.
        issuer: String,
        /// The serial number, colon-separated hex.
        serial: String,
    },
    /// The certificate's subjectKeyIdentifier (`sign-file -k`), colon-separated hex.
    SubjectKeyIdentifier {
        /// The key id.
        id: String,
    },
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyId::IssuerSerial { issuer, serial } => {
                write!(f, "issuer {issuer}, serial {serial}")
            }
            KeyId::SubjectKeyIdentifier { id } => write!(f, "key id {id}"),
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.signer.is_empty() {
            String::new()
        } else {
            format!("by {:?} ", self.signer)
        };
        write!(
            f,
            "{} {} {who}({}), PKCS#7 of {} bytes over {} bytes",
            self.hash, self.algorithm, self.key_id, self.pkcs7_bytes, self.signed_bytes
        )
    }
}

/// A module file's signature state, as `inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum State {
    /// No signature marker at the end of the file.
    Unsigned,
    /// A signature in the form the kernel checks.
    Signed(Signature),
    /// A marker, but a trailer or message the kernel would refuse.
    Malformed {
        /// What is wrong.
        reason: String,
    },
}

/// The signature state of the module file `bytes`.
pub fn read(bytes: &[u8]) -> State {
    match trailer::split(bytes) {
        Ok(None) => State::Unsigned,
        Err(e) => State::Malformed {
            reason: e.to_string(),
        },
        Ok(Some(s)) => match pkcs7::describe(s.pkcs7, s.content.len()) {
            Ok(sig) => State::Signed(sig),
            Err(e) => State::Malformed {
                reason: format!("{e:#}"),
            },
        },
    }
}

/// Verifies the module file `bytes` against `cert`: it must carry a well-formed signature that the
/// certificate's key made over exactly the bytes before it.
pub fn verify_module(bytes: &[u8], cert: &Certificate) -> Result<Signature, VerifyError> {
    let signed = match trailer::split(bytes) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(VerifyError::Malformed(anyhow::anyhow!(
                "it is not signed (no \"~Module signature appended~\" at its end)"
            )))
        }
        Err(e) => return Err(VerifyError::Malformed(e.into())),
    };
    pkcs7::verify(signed.content, signed.pkcs7, cert)?;
    pkcs7::describe(signed.pkcs7, signed.content.len()).map_err(VerifyError::Malformed)
}

/// Reads an X.509 certificate from `path` (named `what` in messages): PEM (the first
/// `CERTIFICATE` block, so the kernel's `signing_key.pem`, key and certificate in one file, works)
/// or DER, as sign-file reads it.
pub fn load_certificate(path: &Path, what: &str) -> anyhow::Result<Certificate> {
    let bytes = crate::input::read(path, crate::input::Kind::Key, what)?;
    let p = format!("{what} {}", path.display());
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let found = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let cert = if let Some(start) = found(&bytes, BEGIN) {
        let rest = &bytes[start..];
        let Some(end) = found(rest, END) else {
            anyhow::bail!(
                "{p}: a PEM CERTIFICATE block without its END line; give the whole certificate"
            );
        };
        Certificate::from_pem(&rest[..end + END.len()])
    } else if bytes.first() == Some(&0x30) {
        Certificate::from_der(&bytes)
    } else {
        anyhow::bail!(
            "{p}: not an X.509 certificate (no PEM CERTIFICATE block, and not DER); give the certificate of \
             the signing key, e.g. the certs/signing_key.x509 of a kernel build"
        );
    };
    cert.map_err(|e| {
        anyhow::anyhow!(
            "{p}: not a readable X.509 certificate ({e}); give the certificate of the signing key in PEM or DER"
        )
    })
}

#[cfg(test)]
mod tests;
