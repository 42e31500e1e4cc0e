//! `klp-build inspect MODULE.ko`: what a livepatch module holds. Input: the `.ko`, built by
//! klp-build (its manifest) or by another tool (its ELF, through [`super::foreign`]), and with
//! `--verify-signature` a certificate. Output: text (one fact a line) or JSON ([`Livepatch`]; for
//! klp-build's modules the manifest as stored under `manifest`; the signature under `signature`,
//! the verdict under `verified`). Invariant: what the module does not tell is printed as not known,
//! never left out; a signature that does not verify is an error (exit 1) after the report.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::module::Livepatch;
use crate::cli::{InspectArgs, ReportFormat};
use crate::sign;
use crate::text::{field, field_max};

/// The module and its signature, as `inspect --report json` prints them.
#[derive(Serialize)]
struct Inspected<'a> {
    #[serde(flatten)]
    module: &'a Livepatch,
    /// Unsigned, signed (who, which key, which hash), or malformed.
    signature: &'a sign::State,
    /// With `--verify-signature`: the verdict.
    #[serde(skip_serializing_if = "Option::is_none")]
    verified: Option<&'a Verified>,
}

/// The verdict of `--verify-signature`.
#[derive(Serialize)]
struct Verified {
    /// The certificate, as given.
    certificate: String,
    /// Its subject.
    subject: String,
    /// Whether the certificate's key signed exactly the module's content.
    ok: bool,
    /// Why not.
    reason: Option<String>,
}

/// `klp-build inspect MODULE.ko [--report json] [--verify-signature CERT]`: prints the module;
/// exit 0, or 1 when the signature does not verify against CERT.
pub fn inspect(args: &InspectArgs) -> anyhow::Result<u8> {
    let cert = match &args.verify_signature {
        Some(c) => Some((c, sign::load_certificate(c, "--verify-signature")?)),
        None => None,
    };
    let bytes = crate::input::read_module(&args.module, "")?;
    let state = sign::read(&bytes);
    let verified = cert.map(|(path, cert)| {
        let r = sign::verify_module(&bytes, &cert);
        Verified {
            certificate: path.display().to_string(),
            subject: sign::pkcs7::cert_subject(&cert),
            ok: r.is_ok(),
            reason: r.err().map(|e| e.to_string()),
        }
    });
    let m = match (Livepatch::read(&args.module), &verified) {
        (Ok(m), _) => m,
        // A change after signing can break what the module says too: the failed signature is
        // the finding, the unreadable module its consequence.
        (Err(e), Some(v)) if !v.ok => anyhow::bail!(
            "{}: the signature does not verify against {}: {} (and the module does not read: {e:#})",
            args.module.display(),
            v.certificate,
            v.reason.as_deref().unwrap_or("")
        ),
        (Err(e), _) => return Err(e),
    };
    let doc = Inspected {
        module: &m,
        signature: &state,
        verified: verified.as_ref(),
    };
    match args.report {
        ReportFormat::Json => crate::stdout::writeln(&serde_json::to_string_pretty(&doc)?)?,
        ReportFormat::Text => crate::stdout::write(&format!(
            "{}{}",
            text(&m),
            signature_text(&state, verified.as_ref())
        ))?,
    }
    if let Some(v) = verified.filter(|v| !v.ok) {
        anyhow::bail!(
            "{}: the signature does not verify against {}: {}",
            args.module.display(),
            Path::new(&v.certificate).display(),
            v.reason.unwrap_or_default()
        );
    }
    Ok(0)
}

/// The signature lines of the text form.
fn signature_text(state: &sign::State, verified: Option<&Verified>) -> String {
    let mut s = match state {
        sign::State::Unsigned => "signature: none (not signed)\n".to_string(),
        sign::State::Signed(sig) => format!("signature: {}\n", field_max(&sig.to_string(), 1000)),
        sign::State::Malformed { reason } => {
            format!("signature: malformed: {}\n", field_max(reason, 1000))
        }
    };
    if let Some(v) = verified {
        if v.ok {
            let _ = writeln!(
                s,
                "signature verified: signed by the key of {} ({})",
                field(&v.certificate),
                field(&v.subject)
            );
        } else {
            let _ = writeln!(
                s,
                "signature NOT verified against {}: {}",
                field(&v.certificate),
                field_max(v.reason.as_deref().unwrap_or(""), 1000)
            );
        }
    }
    s
}

/// The text form. Every field read from the module goes through [`field`]: escaped and cut, so a
/// crafted module cannot reach the terminal raw.
pub fn text(m: &Livepatch) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    let release = if m.kernel_release.is_empty() {
        "an unknown kernel".to_string()
    } else {
        field(&m.kernel_release)
    };
    line(format!(
        "{} for {release} ({})",
        field(&m.name),
        field(&m.built_by)
    ));
    if m.manifest.is_none() {
        line(format!(
            "{}: no .klp_build.manifest; read from its ELF",
            field(&m.file)
        ));
    }
    line(format!("replace: {}", field(&m.replace.describe())));
    match &m.states {
        None => line("states: not known".into()),
        Some(v) if v.is_empty() => line("states: none".into()),
        Some(v) => v
            .iter()
            .for_each(|st| line(format!("state {:#x} version {}", st.id, st.version))),
    }
    match &m.callbacks {
        None if m.manifest.is_some() => line("callbacks: not recorded in the manifest".into()),
        None => line("callbacks: not known".into()),
        Some(v) if v.is_empty() => line("callbacks: none".into()),
        Some(v) => v
            .iter()
            .for_each(|c| line(format!("callback {}", field(c)))),
    }
    match &m.fixes {
        None => line("fixes: not known".into()),
        Some(v) if v.is_empty() => line("fixes: none".into()),
        Some(v) => v.iter().for_each(|f| {
            line(format!(
                "fix {}: {} (sha256 {})",
                field(&f.name),
                field(&f.subject),
                field(&f.sha256)
            ));
        }),
    }
    match &m.functions {
        None => line("functions: not known".into()),
        Some(v) => v.iter().for_each(|f| {
            line(format!(
                "patches {}:{},{}",
                field(&f.object),
                field(&f.name),
                f.sympos
            ));
        }),
    }
    for k in &m.klp_symbols {
        let mut l = format!("klp relocation to {}", field(&k.object));
        if !k.name.is_empty() {
            let _ = write!(l, ":{},{}", field(&k.name), k.sympos);
        }
        line(l);
    }
    for u in &m.unknown {
        line(format!("not known: {}", field(u)));
    }
    s
}
