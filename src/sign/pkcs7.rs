//! The PKCS#7 message of a module signature. Input: the DER bytes a trailer points at (untrusted)
//! and, to verify, the signed content and an X.509 certificate. Output: a [`Signature`] (who signed
//! with which hash), or the verdict of [`verify`]. Invariant: decoding is the `cms`/`x509-cert`
//! crates' strict DER, so a malformed message is an error, never a panic or a partial answer; a
//! message is accepted only in the shape the kernel verifies (`SignedData` with one signer and
//! detached content).
//!
//! `scripts/sign-file` writes `SignedData` without certificates and without signed attributes
//! (`CMS_NOCERTS | CMS_NOATTR`): the signature is then PKCS#1 v1.5 over the digest of the module
//! itself, and the signer is named by its certificate's issuer and serial number (or, with `-k`, its
//! subjectKeyIdentifier). Messages with signed attributes are verified too (RFC 5652 5.4: the
//! messageDigest attribute must hold the content's digest and the signature covers the attributes).
//! The key is RSA (PKCS#1 v1.5) or, as the kernel takes since 5.13
//! (`CONFIG_MODULE_SIG_KEY_TYPE_ECDSA`), ECDSA on NIST P-256 or P-384.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier, SignerInfo};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Decode, Encode};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use x509_cert::ext::pkix::SubjectKeyIdentifier;
use x509_cert::name::Name;
use x509_cert::Certificate;

use super::{KeyId, Signature};

const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const ID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const SECP256R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const SECP384R1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const ID_CN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The digest algorithms a module signature may use (`CONFIG_MODULE_SIG_HASH`), by the name
/// `sign-file` takes and the OID the message carries.
const DIGESTS: &[(&str, &str)] = &[
    ("sha1", "1.3.14.3.2.26"),
    ("sha224", "2.16.840.1.101.3.4.2.4"),
    ("sha256", "2.16.840.1.101.3.4.2.1"),
    ("sha384", "2.16.840.1.101.3.4.2.2"),
    ("sha512", "2.16.840.1.101.3.4.2.3"),
    ("sha3-256", "2.16.840.1.101.3.4.2.8"),
    ("sha3-384", "2.16.840.1.101.3.4.2.9"),
    ("sha3-512", "2.16.840.1.101.3.4.2.10"),
];

/// Signature algorithms by OID: the public-key algorithm alone (what sign-file writes) or combined
/// with a digest.
const SIGNATURE_ALGORITHMS: &[(&str, &str)] = &[
    ("1.2.840.113549.1.1.1", "rsa"),
    ("1.2.840.113549.1.1.5", "rsa"),
    ("1.2.840.113549.1.1.14", "rsa"),
    ("1.2.840.113549.1.1.11", "rsa"),
    ("1.2.840.113549.1.1.12", "rsa"),
    ("1.2.840.113549.1.1.13", "rsa"),
    ("1.2.840.113549.1.1.10", "rsa-pss"),
    ("1.2.840.10045.2.1", "ecdsa"),
    ("1.2.840.10045.4.3.2", "ecdsa"),
    ("1.2.840.10045.4.3.3", "ecdsa"),
    ("1.2.840.10045.4.3.4", "ecdsa"),
];

/// The sign-file name of a digest OID, or the OID itself.
fn digest_name(oid: &ObjectIdentifier) -> String {
    let s = oid.to_string();
    DIGESTS
        .iter()
        .find(|(_, o)| *o == s)
        .map_or(s, |(n, _)| (*n).to_string())
}

/// Whether `name` is a digest this module verifies (the names of `CONFIG_MODULE_SIG_HASH`).
pub fn known_digest(name: &str) -> bool {
    DIGESTS.iter().any(|(n, _)| *n == name)
}

fn algorithm_name(oid: &ObjectIdentifier) -> String {
    let s = oid.to_string();
    SIGNATURE_ALGORITHMS
        .iter()
        .find(|(o, _)| *o == s)
        .map_or(s, |(_, n)| (*n).to_string())
}

/// `AA:BB:CC`, as `modinfo` prints `sig_key`.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The value of the last common name in `name` (the most specific), if it has a string one.
fn common_name(name: &Name) -> Option<String> {
    name.0
        .iter()
        .rev()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == ID_CN)
        .filter_map(|atv| {
            let v = &atv.value;
            der::asn1::Utf8StringRef::try_from(v)
                .map(|s| s.as_str().to_string())
                .or_else(|_| {
                    der::asn1::PrintableStringRef::try_from(v).map(|s| s.as_str().to_string())
                })
                .or_else(|_| der::asn1::Ia5StringRef::try_from(v).map(|s| s.as_str().to_string()))
                .ok()
        })
        .next()
}

/// A decoded message: its one signer.
struct Message {
    signer: SignerInfo,
}

fn decode(pkcs7: &[u8]) -> anyhow::Result<Message> {
    let ci = ContentInfo::from_der(pkcs7)
        .map_err(|e| anyhow::anyhow!("the PKCS#7 message is not DER ContentInfo: {e}"))?;
    if ci.content_type != ID_SIGNED_DATA {
        anyhow::bail!(
            "the PKCS#7 message is of type {}, not SignedData (1.2.840.113549.1.7.2)",
            ci.content_type
        );
    }
    let sd: SignedData = ci
        .content
        .decode_as()
        .map_err(|e| anyhow::anyhow!("the PKCS#7 SignedData does not decode: {e}"))?;
    if sd.encap_content_info.econtent.is_some() {
        anyhow::bail!(
            "the PKCS#7 message carries content of its own; a module signature is detached (it signs the module before it)"
        );
    }
    let mut signers = sd.signer_infos.0.into_vec();
    if signers.len() != 1 {
        anyhow::bail!(
            "the PKCS#7 message has {} signers; a module signature has one",
            signers.len()
        );
    }
    Ok(Message {
        signer: signers.remove(0),
    })
}

/// What the PKCS#7 message `pkcs7` says about its signer; `signed_bytes` is the length of the
/// content before it.
pub fn describe(pkcs7: &[u8], signed_bytes: usize) -> anyhow::Result<Signature> {
    let m = decode(pkcs7)?;
    let si = &m.signer;
    let (signer, key_id) = match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer,
            serial_number,
        }) => (
            common_name(issuer).unwrap_or_else(|| issuer.to_string()),
            KeyId::IssuerSerial {
                issuer: issuer.to_string(),
                serial: colon_hex(serial_number.as_bytes()),
            },
        ),
        SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(id)) => (
            String::new(),
            KeyId::SubjectKeyIdentifier {
                id: colon_hex(id.as_bytes()),
            },
        ),
    };
    Ok(Signature {
        signer,
        key_id,
        hash: digest_name(&si.digest_alg.oid),
        algorithm: algorithm_name(&si.signature_algorithm.oid),
        signed_attributes: si.signed_attrs.is_some(),
        signed_bytes: signed_bytes as u64,
        pkcs7_bytes: pkcs7.len() as u64,
    })
}

/// Why a signature does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The message names another signer than the certificate.
    #[error("it is signed by {signer}, not by the certificate's key ({cert})")]
    OtherSigner {
        /// The message's signer identifier.
        signer: String,
        /// The certificate's issuer and serial (and key id).
        cert: String,
    },
    /// The digest or the signature does not match the content: the content changed after signing,
    /// or the signature was not made by the certificate's key.
    #[error("the signature does not match the module's content: the module was changed after it was signed, or the signature was not made with the certificate's key")]
    Mismatch,
    /// An algorithm this verifier does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// The message itself is malformed.
    #[error("{0:#}")]
    Malformed(anyhow::Error),
}

/// The certificate's identity as a signer: `issuer, serial` and its subjectKeyIdentifier.
pub fn cert_identity(cert: &Certificate) -> String {
    let tbs = &cert.tbs_certificate;
    let mut s = format!(
        "issuer {}, serial {}",
        tbs.issuer,
        colon_hex(tbs.serial_number.as_bytes())
    );
    if let Ok(Some((_, SubjectKeyIdentifier(id)))) = tbs.get::<SubjectKeyIdentifier>() {
        s.push_str(&format!(", key id {}", colon_hex(id.as_bytes())));
    }
    s
}

/// The certificate's subject, RFC 4514.
pub fn cert_subject(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

fn digest(name: &str, data: &[u8]) -> Option<(Vec<u8>, Pkcs1v15Sign)> {
    use sha2::Digest as _;
    Some(match name {
        "sha1" => (
            sha1::Sha1::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha1::Sha1>(),
        ),
        "sha224" => (
            sha2::Sha224::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha2::Sha224>(),
        ),
        "sha256" => (
            sha2::Sha256::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha2::Sha256>(),
        ),
        "sha384" => (
            sha2::Sha384::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha2::Sha384>(),
        ),
        "sha512" => (
            sha2::Sha512::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha2::Sha512>(),
        ),
        "sha3-256" => (
            sha3::Sha3_256::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha3::Sha3_256>(),
        ),
        "sha3-384" => (
            sha3::Sha3_384::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha3::Sha3_384>(),
        ),
        "sha3-512" => (
            sha3::Sha3_512::digest(data).to_vec(),
            Pkcs1v15Sign::new::<sha3::Sha3_512>(),
        ),
        _ => return None,
    })
}

/// Verifies that `pkcs7` is a signature of `content` by the key of `cert`.
pub fn verify(content: &[u8], pkcs7: &[u8], cert: &Certificate) -> Result<(), VerifyError> {
    let m = decode(pkcs7).map_err(VerifyError::Malformed)?;
    let si = &m.signer;
    let tbs = &cert.tbs_certificate;
    let named = match &si.sid {
        SignerIdentifier::IssuerAndSerialNumber(iasn) => {
            iasn.issuer == tbs.issuer && iasn.serial_number == tbs.serial_number
        }
        SignerIdentifier::SubjectKeyIdentifier(SubjectKeyIdentifier(id)) => {
            matches!(tbs.get::<SubjectKeyIdentifier>(), Ok(Some((_, SubjectKeyIdentifier(c)))) if c == *id)
        }
    };
    if !named {
        let signer = match describe(pkcs7, content.len()) {
            Ok(s) => s.key_id.to_string(),
            Err(e) => format!("{e:#}"),
        };
        return Err(VerifyError::OtherSigner {
            signer,
            cert: cert_identity(cert),
        });
    }
    let hash = digest_name(&si.digest_alg.oid);
    let Some((content_digest, scheme)) = digest(&hash, content) else {
        return Err(VerifyError::Unsupported(format!(
            "the digest algorithm {hash} is not one a module signature uses (sha1, sha2, sha3)"
        )));
    };
    let hashed = match &si.signed_attrs {
        None => content_digest,
        Some(attrs) => {
            let md = attrs
                .iter()
                .find(|a| a.oid == ID_MESSAGE_DIGEST)
                .and_then(|a| a.values.get(0))
                .and_then(|v| v.decode_as::<OctetString>().ok());
            match md {
                Some(md) if md.as_bytes() == content_digest.as_slice() => {}
                Some(_) => return Err(VerifyError::Mismatch),
                None => {
                    return Err(VerifyError::Malformed(anyhow::anyhow!(
                        "the PKCS#7 message has signed attributes without a messageDigest"
                    )))
                }
            }
            let der = attrs.to_der().map_err(|e| {
                VerifyError::Malformed(anyhow::anyhow!(
                    "the PKCS#7 signed attributes do not encode: {e}"
                ))
            })?;
            let Some((d, _)) = digest(&hash, &der) else {
                return Err(VerifyError::Unsupported(format!(
                    "the digest algorithm {hash}"
                )));
            };
            d
        }
    };
    let algorithm = algorithm_name(&si.signature_algorithm.oid);
    verify_digest(
        &tbs.subject_public_key_info,
        &algorithm,
        scheme,
        &hashed,
        si.signature.as_bytes(),
    )
}

/// Verifies `signature` (of the signature `algorithm` the message names) over `hashed` with the
/// certificate's key: RSA PKCS#1 v1.5 with `scheme`, or ECDSA on P-256 or P-384 over the digest as
/// it is (a DER `ECDSA-Sig-Value`).
fn verify_digest(
    spki: &x509_cert::spki::SubjectPublicKeyInfoOwned,
    algorithm: &str,
    scheme: Pkcs1v15Sign,
    hashed: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    let key_bytes = spki.subject_public_key.raw_bytes();
    let wrong_algorithm = |key: &str| {
        VerifyError::Unsupported(format!(
            "the signature algorithm is {algorithm}, but the certificate's key is {key}"
        ))
    };
    if spki.algorithm.oid == RSA_ENCRYPTION {
        if algorithm != "rsa" {
            return Err(wrong_algorithm("RSA"));
        }
        let key = RsaPublicKey::from_pkcs1_der(key_bytes).map_err(|e| {
            VerifyError::Unsupported(format!(
                "the certificate's RSA key cannot be used: {e} (keys of up to 4096 bits are read)"
            ))
        })?;
        return key
            .verify(scheme, hashed, signature)
            .map_err(|_| VerifyError::Mismatch);
    }
    if spki.algorithm.oid != ID_EC_PUBLIC_KEY {
        return Err(VerifyError::Unsupported(format!(
            "the certificate's key is {}; klp-build verifies RSA and ECDSA (P-256, P-384) module \
             signatures",
            algorithm_name(&spki.algorithm.oid)
        )));
    }
    if algorithm != "ecdsa" {
        return Err(wrong_algorithm("ECDSA"));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
    let bad_key = |e: &dyn std::fmt::Display| {
        VerifyError::Unsupported(format!("the certificate's ECDSA key cannot be used: {e}"))
    };
    // The same steps on each curve's own types. A signature that is not a DER ECDSA-Sig-Value of
    // the curve cannot verify: a mismatch.
    macro_rules! verify_on {
        ($curve:ident) => {{
            use $curve::ecdsa::signature::hazmat::PrehashVerifier;
            let key =
                $curve::ecdsa::VerifyingKey::from_sec1_bytes(key_bytes).map_err(|e| bad_key(&e))?;
            let sig =
                $curve::ecdsa::Signature::from_der(signature).map_err(|_| VerifyError::Mismatch)?;
            key.verify_prehash(hashed, &sig)
                .map_err(|_| VerifyError::Mismatch)
        }};
    }
    match curve {
        Some(c) if c == SECP256R1 => verify_on!(p256),
        Some(c) if c == SECP384R1 => verify_on!(p384),
        other => Err(VerifyError::Unsupported(format!(
            "the certificate's ECDSA key is on the curve {}; the kernel and klp-build take \
             P-256 and P-384",
            other.map_or_else(|| "(not named)".to_string(), |c| c.to_string())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error() {
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x80\x00\x00",
            b"\x30\x03\x06\x01\x00",
            &[0xff; 64],
        ] {
            assert!(describe(bytes, 1).is_err(), "{bytes:02x?}");
        }
    }

    #[test]
    fn digest_names() {
        assert!(known_digest("sha256") && known_digest("sha3-512") && !known_digest("md5"));
        let oid = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
        assert_eq!(digest_name(&oid), "sha256");
        assert_eq!(colon_hex(&[0x4b, 0x0d]), "4B:0D");
    }
}
