//! `klp-build inspect MODULE.ko`: what a livepatch module holds. Input: the `.ko`, built by
//! klp-build (its manifest) or by another tool (its ELF, through [`super::foreign`]). Output: text
//! (one fact a line) or JSON ([`Livepatch`]; for klp-build's modules the manifest as stored under
//! `manifest`). Invariant: what the module does not tell is printed as not known, never left out.

use std::fmt::Write as _;

use super::module::Livepatch;
use crate::cli::{InspectArgs, ReportFormat};
use crate::present::field;

/// `klp-build inspect MODULE.ko [--report json]`: prints the module; exit 0.
pub fn inspect(args: &InspectArgs) -> anyhow::Result<u8> {
    let m = Livepatch::read(&args.module)?;
    match args.report {
        ReportFormat::Json => crate::stdout::writeln(&serde_json::to_string_pretty(&m)?)?,
        ReportFormat::Text => crate::stdout::write(&text(&m))?,
    }
    Ok(0)
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
