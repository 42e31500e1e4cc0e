//! The signature reader and verifier on messages made by `openssl cms` with keys made by
//! `openssl req` in the test: the shapes sign-file writes (no attributes, issuer and serial),
//! signed attributes, key ids, other digests; every change to the content or the message is refused
//! and no mutation of a message panics.

use std::path::Path;
use std::process::Command;

use super::*;

// The integration tests' key maker, one copy for both kinds of test.
#[path = "../../tests/support/signing.rs"]
#[allow(dead_code)]
mod signing;
use signing::{openssl, TestKey};

/// A key whose certificate has a two-part subject, `O=klp-build tests, CN=<name>`, so that the
/// issuer's rendering is checked with more than one RDN.
fn test_key(dir: &Path, name: &str) -> TestKey {
    signing::test_key_with_subject(dir, name, &format!("/O=klp-build tests/CN={name}"))
}

/// A detached CMS signature of `content` by `k`, DER; `extra` are openssl cms options.
fn cms_sign(dir: &Path, k: &TestKey, content: &[u8], md: &str, extra: &[&str]) -> Vec<u8> {
    let input = dir.join("content");
    let out = dir.join("sig.der");
    std::fs::write(&input, content).unwrap();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "cms".as_ref(),
        "-sign".as_ref(),
        "-binary".as_ref(),
        "-nocerts".as_ref(),
        "-outform".as_ref(),
        "DER".as_ref(),
        "-md".as_ref(),
        md.as_ref(),
        "-signer".as_ref(),
        k.cert.as_os_str(),
        "-inkey".as_ref(),
        k.key.as_os_str(),
        "-in".as_ref(),
        input.as_os_str(),
        "-out".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(|e| std::ffi::OsStr::new(*e)));
    openssl(&args);
    std::fs::read(out).unwrap()
}

/// One directory with two keys for the whole test binary.
fn keys() -> &'static (tempfile::TempDir, TestKey, TestKey) {
    static KEYS: std::sync::OnceLock<(tempfile::TempDir, TestKey, TestKey)> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let a = test_key(dir.path(), "klp-build test key");
        let b = test_key(dir.path(), "another key");
        (dir, a, b)
    })
}

const MODULE: &[u8] = b"\x7fELF a module's bytes, as they were before signing";

#[test]
fn sign_file_shape_reads_back_and_verifies() {
    let (dir, a, b) = keys();
    let scratch = tempfile::tempdir_in(dir.path()).unwrap();
    // What sign-file writes: no signed attributes, the signer by issuer and serial.
    let sig = cms_sign(scratch.path(), a, MODULE, "sha256", &["-noattr"]);
    let file = trailer::append(MODULE, &sig).unwrap();
    let State::Signed(s) = read(&file) else {
        panic!("{:?}", read(&file))
    };
    assert_eq!(s.signer, "klp-build test key");
    assert_eq!((s.hash.as_str(), s.algorithm.as_str()), ("sha256", "rsa"));
    assert!(!s.signed_attributes);
    assert_eq!(s.signed_bytes, MODULE.len() as u64);
    assert_eq!(s.pkcs7_bytes, sig.len() as u64);
    let KeyId::IssuerSerial { issuer, serial } = &s.key_id else {
        panic!("{:?}", s.key_id)
    };
    assert_eq!(issuer, "CN=klp-build test key,O=klp-build tests");
    // The serial is openssl's own: compare with what `openssl x509 -serial` prints.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(&a.cert)
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_string();
    assert_eq!(serial.replace(':', ""), want);

    let cert_a = load_certificate(&a.cert, "cert").unwrap();
    let cert_b = load_certificate(&b.cert, "cert").unwrap();
    assert_eq!(verify_module(&file, &cert_a).unwrap(), s);
    // Another certificate: named as another signer.
    let e = verify_module(&file, &cert_b).unwrap_err();
    assert!(matches!(e, VerifyError::OtherSigner { .. }), "{e}");
    // Every byte of the content matters.
    for at in [0, 7, MODULE.len() - 1] {
        let mut t = file.clone();
        t[at] ^= 1;
        let e = verify_module(&t, &cert_a).unwrap_err();
        assert!(matches!(e, VerifyError::Mismatch), "byte {at}: {e}");
        assert!(e.to_string().contains("changed after it was signed"), "{e}");
    }
    // A byte appended to the content (and so a signature over fewer bytes than the module).
    let mut longer = MODULE.to_vec();
    longer.push(0);
    let t = trailer::append(&longer, &sig).unwrap();
    assert!(matches!(
        verify_module(&t, &cert_a),
        Err(VerifyError::Mismatch)
    ));
    // Unsigned.
    let e = verify_module(MODULE, &cert_a).unwrap_err();
    assert!(e.to_string().contains("not signed"), "{e}");
}

#[test]
fn a_signature_by_another_key_with_the_right_name_is_refused() {
    let (dir, a, b) = keys();
    let scratch = tempfile::tempdir_in(dir.path()).unwrap();
    // The message names a's certificate, but b's key made the signature: openssl refuses to
    // sign such a pair, so b's signature value is put into a's message.
    let good = cms_sign(scratch.path(), a, MODULE, "sha256", &["-noattr"]);
    let other = cms_sign(scratch.path(), b, MODULE, "sha256", &["-noattr"]);
    let (ga, oa) = (good.len() - 256, other.len() - 256);
    let mut forged = good.clone();
    forged[ga..].copy_from_slice(&other[oa..]);
    let file = trailer::append(MODULE, &forged).unwrap();
    let cert_a = load_certificate(&a.cert, "cert").unwrap();
    assert!(matches!(read(&file), State::Signed(_)));
    assert!(matches!(
        verify_module(&file, &cert_a),
        Err(VerifyError::Mismatch)
    ));
}

#[test]
fn signed_attributes_key_ids_and_other_digests() {
    let (dir, a, _) = keys();
    let scratch = tempfile::tempdir_in(dir.path()).unwrap();
    let cert_a = load_certificate(&a.cert, "cert").unwrap();
    for (md, extra) in [
        ("sha256", &[][..]),
        ("sha384", &["-noattr"][..]),
        ("sha512", &["-noattr", "-keyid"][..]),
        ("sha1", &["-noattr"][..]),
        ("sha3-256", &["-noattr"][..]),
        ("sha256", &["-keyid"][..]),
    ] {
        let sig = cms_sign(scratch.path(), a, MODULE, md, extra);
        let file = trailer::append(MODULE, &sig).unwrap();
        let s = verify_module(&file, &cert_a).unwrap_or_else(|e| panic!("{md} {extra:?}: {e}"));
        assert_eq!(s.hash, md);
        assert_eq!(s.signed_attributes, !extra.contains(&"-noattr"));
        if extra.contains(&"-keyid") {
            assert!(
                matches!(s.key_id, KeyId::SubjectKeyIdentifier { .. }),
                "{s:?}"
            );
            assert!(s.signer.is_empty());
        }
        let mut t = file.clone();
        t[3] ^= 0x20;
        assert!(
            matches!(verify_module(&t, &cert_a), Err(VerifyError::Mismatch)),
            "{md} {extra:?}"
        );
    }
}

#[test]
fn ecdsa_signatures_on_p256_and_p384_verify_and_refuse_changes() {
    let (dir, a, _) = keys();
    let scratch = tempfile::tempdir_in(dir.path()).unwrap();
    let cert_rsa = load_certificate(&a.cert, "cert").unwrap();
    for (curve, md) in [
        ("P-256", "sha256"),
        ("P-384", "sha384"),
        ("P-384", "sha512"),
    ] {
        let k = signing::ec_test_key(scratch.path(), curve, &format!("ecdsa {curve}"), curve);
        let cert = load_certificate(&k.cert, "cert").unwrap();
        for extra in [&["-noattr"][..], &[][..]] {
            let sig = cms_sign(scratch.path(), &k, MODULE, md, extra);
            let file = trailer::append(MODULE, &sig).unwrap();
            let s = verify_module(&file, &cert)
                .unwrap_or_else(|e| panic!("{curve} {md} {extra:?}: {e}"));
            assert_eq!((s.hash.as_str(), s.algorithm.as_str()), (md, "ecdsa"));
            assert_eq!(s.signer, format!("ecdsa {curve}"));
            let mut t = file.clone();
            t[5] ^= 1;
            assert!(
                matches!(verify_module(&t, &cert), Err(VerifyError::Mismatch)),
                "{curve} {md} {extra:?}: a changed module verified"
            );
            // An RSA certificate does not name this signer.
            assert!(matches!(
                verify_module(&file, &cert_rsa),
                Err(VerifyError::OtherSigner { .. })
            ));
        }
    }
    // A curve the kernel does not take is refused with the reason, not as a mismatch.
    let k = signing::ec_test_key(scratch.path(), "p521", "ecdsa P-521", "P-521");
    let cert = load_certificate(&k.cert, "cert").unwrap();
    let sig = cms_sign(scratch.path(), &k, MODULE, "sha512", &["-noattr"]);
    let file = trailer::append(MODULE, &sig).unwrap();
    let e = verify_module(&file, &cert).unwrap_err();
    assert!(
        matches!(&e, VerifyError::Unsupported(why) if why.contains("P-256 and P-384")),
        "{e}"
    );
}

/// Every truncation and many byte changes of a real message: read and verified without a panic;
/// a changed message that still verifies changed only what the signature does not cover (the
/// versions, the outer digest list, the content type) and still describes the same signer, key and
/// hash.
#[test]
fn mutated_messages_never_panic_nor_verify() {
    let (dir, a, _) = keys();
    let scratch = tempfile::tempdir_in(dir.path()).unwrap();
    let cert_a = load_certificate(&a.cert, "cert").unwrap();
    let sig = cms_sign(scratch.path(), a, MODULE, "sha256", &["-noattr"]);
    let original = verify_module(&trailer::append(MODULE, &sig).unwrap(), &cert_a).unwrap();
    let mut still_verified = 0;
    for cut in 0..sig.len() {
        let file = trailer::append(MODULE, &sig[..cut]).unwrap();
        assert!(!matches!(read(&file), State::Signed(_)), "cut at {cut}");
        assert!(verify_module(&file, &cert_a).is_err());
    }
    let mut seed = 0x6b6c_702d_7369_676eu64;
    for n in 0..4000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut m = sig.clone();
        let at = (seed % m.len() as u64) as usize;
        let v = (seed >> 32) as u8;
        if m[at] == v {
            continue;
        }
        m[at] = v;
        let file = trailer::append(MODULE, &m).unwrap();
        let _ = read(&file);
        if let Ok(s) = verify_module(&file, &cert_a) {
            still_verified += 1;
            assert_eq!(
                (&s.signer, &s.key_id, &s.hash),
                (&original.signer, &original.key_id, &original.hash),
                "mutation {n} (byte {at} = {v:#x})"
            );
        }
    }
    // Most bytes are the issuer, serial, algorithms and signature: far from all may verify.
    assert!(
        still_verified < 400,
        "{still_verified} of 4000 mutations verify"
    );
}

#[test]
fn certificates_pem_der_and_with_a_key_first() {
    let (dir, a, _) = keys();
    let pem = load_certificate(&a.cert, "cert").unwrap();
    let der = dir.path().join("a.der");
    openssl(&[
        "x509".as_ref(),
        "-in".as_ref(),
        a.cert.as_os_str(),
        "-outform".as_ref(),
        "DER".as_ref(),
        "-out".as_ref(),
        der.as_os_str(),
    ]);
    assert_eq!(load_certificate(&der, "cert").unwrap(), pem);
    // The kernel's signing_key.pem: the key, then the certificate.
    let both = dir.path().join("signing_key.pem");
    let mut text = std::fs::read(&a.key).unwrap();
    text.extend(std::fs::read(&a.cert).unwrap());
    std::fs::write(&both, text).unwrap();
    assert_eq!(load_certificate(&both, "cert").unwrap(), pem);
    let e = load_certificate(&a.key, "--sign-cert")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--sign-cert") && e.contains("not an X.509 certificate"),
        "{e}"
    );
    let e = load_certificate(Path::new("/nonexistent.pem"), "--sign-cert")
        .unwrap_err()
        .to_string();
    assert!(e.contains("/nonexistent.pem"), "{e}");
}

#[test]
fn unsigned_and_malformed_states() {
    assert_eq!(read(b"\x7fELF"), State::Unsigned);
    assert!(matches!(read(trailer::MARKER), State::Malformed { .. }));
    let bad = trailer::append(b"\x7fELF", b"\x30\x00").unwrap();
    match read(&bad) {
        State::Malformed { reason } => assert!(reason.contains("PKCS#7"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn key_id_text() {
    let k = KeyId::IssuerSerial {
        issuer: "CN=x".into(),
        serial: "01".into(),
    };
    assert_eq!(k.to_string(), "issuer CN=x, serial 01");
}
