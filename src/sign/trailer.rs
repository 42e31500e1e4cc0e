//! The signature trailer of a module file. Input: the bytes of any file (untrusted). Output: where
//! the signed content and the PKCS#7 message lie, or why the trailer is malformed, or nothing when
//! the file is not signed. Invariant: the rules are the kernel's own (`module_sig_check` and
//! `mod_check_sig`, kernel/module/signing.c and kernel/module_signature.c of 6.1), every length is
//! checked before it is used, and no input panics.
//!
//! A signed module is `content || PKCS#7 || struct module_signature || MARKER`, where the 12-byte
//! `struct module_signature` holds `algo`, `hash`, `id_type`, `signer_len`, `key_id_len`, three
//! pad bytes and `sig_len` (big-endian u32, the PKCS#7's length). Since the PKCS#7 era only
//! `id_type` (2, PKCS#7) and `sig_len` carry anything; every other byte must be zero.

/// What `scripts/sign-file` appends last (`MODULE_SIG_STRING`).
pub const MARKER: &[u8] = b"~Module signature appended~\n";

/// `sizeof(struct module_signature)`.
pub const INFO_LEN: usize = 12;

/// `PKEY_ID_PKCS7`: the only `id_type` the kernel accepts.
pub const PKEY_ID_PKCS7: u8 = 2;

/// A signed file, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed<'a> {
    /// The bytes the signature covers: the module as it was before signing.
    pub content: &'a [u8],
    /// The PKCS#7 (CMS `SignedData`) message, DER.
    pub pkcs7: &'a [u8],
}

/// Why a file that ends with [`MARKER`] is no valid signed module (the kernel refuses it, with or
/// without enforcement).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Too short for `struct module_signature` before the marker.
    #[error("the file ends with the signature marker but has {0} bytes before it, fewer than the 12 of struct module_signature")]
    Short(usize),
    /// `sig_len` does not leave any content before the PKCS#7.
    #[error("struct module_signature says the PKCS#7 message has {sig_len} bytes, but only {room} bytes precede the structure")]
    Length {
        /// `sig_len`.
        sig_len: u32,
        /// Bytes before `struct module_signature`.
        room: usize,
    },
    /// `id_type` is not PKCS#7 (an old PGP or X.509 signature format).
    #[error("struct module_signature has id_type {0}, not 2 (PKCS#7); the kernel refuses other signature formats")]
    IdType(u8),
    /// A field that must be zero is not.
    #[error("struct module_signature has non-zero algo/hash/signer_len/key_id_len/pad bytes ({0:02x?}); the kernel refuses it")]
    NonZero([u8; 8]),
}

/// Splits `file` into its signed content and PKCS#7 message: `Ok(None)` when it does not end with
/// [`MARKER`] (an unsigned module), `Err` when the trailer is one the kernel refuses.
pub fn split(file: &[u8]) -> Result<Option<Signed<'_>>, Malformed> {
    let Some(body) = file.strip_suffix(MARKER) else {
        return Ok(None);
    };
    // The kernel: `modlen <= sizeof(ms)` is -EBADMSG.
    if body.len() <= INFO_LEN {
        return Err(Malformed::Short(body.len()));
    }
    let info_at = body.len() - INFO_LEN;
    let (before, info) = body.split_at(info_at);
    let mut head = [0u8; 8];
    head.copy_from_slice(&info[..8]);
    let sig_len = u32::from_be_bytes([info[8], info[9], info[10], info[11]]);
    // The kernel: `sig_len >= file_len - sizeof(ms)` is -EBADMSG, so at least one byte of content
    // precedes the message.
    let too_long = usize::try_from(sig_len).map_or(true, |n| n >= before.len());
    if too_long {
        return Err(Malformed::Length {
            sig_len,
            room: before.len(),
        });
    }
    if head[2] != PKEY_ID_PKCS7 {
        return Err(Malformed::IdType(head[2]));
    }
    if head.iter().enumerate().any(|(i, b)| i != 2 && *b != 0) {
        return Err(Malformed::NonZero(head));
    }
    // sig_len < before.len() was checked above.
    let (content, pkcs7) = before.split_at(before.len() - sig_len as usize);
    Ok(Some(Signed { content, pkcs7 }))
}

/// `content || pkcs7 || struct module_signature || MARKER`: what `sign-file` writes.
pub fn append(content: &[u8], pkcs7: &[u8]) -> Option<Vec<u8>> {
    let sig_len = u32::try_from(pkcs7.len()).ok()?;
    let mut out = Vec::with_capacity(content.len() + pkcs7.len() + INFO_LEN + MARKER.len());
    out.extend_from_slice(content);
    out.extend_from_slice(pkcs7);
    out.extend_from_slice(&[0, 0, PKEY_ID_PKCS7, 0, 0, 0, 0, 0]);
    out.extend_from_slice(&sig_len.to_be_bytes());
    out.extend_from_slice(MARKER);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let file = append(b"\x7fELF module", b"0\x82pkcs7").unwrap();
        let s = split(&file).unwrap().unwrap();
        assert_eq!(s.content, b"\x7fELF module");
        assert_eq!(s.pkcs7, b"0\x82pkcs7");
    }

    #[test]
    fn unsigned_is_none() {
        assert_eq!(split(b""), Ok(None));
        assert_eq!(split(b"\x7fELF"), Ok(None));
        assert_eq!(split(&MARKER[1..]), Ok(None));
    }

    #[test]
    fn kernel_rules() {
        // Marker alone, or with fewer than 13 bytes before it.
        assert_eq!(split(MARKER), Err(Malformed::Short(0)));
        let mut f = vec![0u8; 12];
        f.extend_from_slice(MARKER);
        assert_eq!(split(&f), Err(Malformed::Short(12)));
        // No content byte left before the message.
        let mut f = append(b"x", b"sig").unwrap();
        let at = f.len() - MARKER.len() - 4;
        f[at..at + 4].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(
            split(&f),
            Err(Malformed::Length {
                sig_len: 4,
                room: 4
            })
        );
        f[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(split(&f), Err(Malformed::Length { .. })));
        // Another id type, and a stray non-zero byte.
        let mut f = append(b"x", b"sig").unwrap();
        let info = f.len() - MARKER.len() - INFO_LEN;
        f[info + 2] = 1;
        assert_eq!(split(&f), Err(Malformed::IdType(1)));
        f[info + 2] = PKEY_ID_PKCS7;
        f[info + 7] = 9;
        assert!(matches!(split(&f), Err(Malformed::NonZero(_))));
    }

    /// Every truncation and every single-byte change of a signed file's trailer is split without
    /// a panic, and what comes back always lies within the file.
    #[test]
    fn no_input_panics() {
        let file = append(&[0x7f; 40], &[0x30; 30]).unwrap();
        for cut in 0..=file.len() {
            let _ = split(&file[cut..]);
            let _ = split(&file[..cut]);
        }
        let tail = MARKER.len() + INFO_LEN + 4;
        for at in file.len() - tail..file.len() {
            for v in [0u8, 1, 2, 0x7f, 0x80, 0xff] {
                let mut f = file.clone();
                f[at] = v;
                if let Ok(Some(s)) = split(&f) {
                    assert!(s.content.len() + s.pkcs7.len() + INFO_LEN + MARKER.len() == f.len());
                    assert!(!s.content.is_empty());
                }
            }
        }
    }
}
