//! `klp-build diff ORIG PATCHED --explain FUNC`: why a function counts as changed. Input: an
//! [`ObjectDiff`] and a function name. Output: an [`Explanation`]: the rule that paired it, the
//! verdict, and the first differing instruction of each side decoded with iced-x86 (offset,
//! bytes, assembly, relocation targets), or the first differing special-section entry. Invariant:
//! the instructions shown are the first pair, in code order, whose length, bytes or relocation
//! targets differ, the same comparison as [`Pair::function`].

use std::fmt;

use iced_x86::{Decoder, DecoderOptions, Formatter, GasFormatter, Instruction};
use serde::Serialize;

use crate::elf::{ElfObject, Orig, Patched, Reloc, Role, SectionId, SymbolId};

use super::changed::{describe, range, relocs_in, same_target, Pair, Verdict};
use super::decode::Decoded;
use super::entries::Entries;
use super::reloc_target::{resolve, RelocTarget};
use super::result::ObjectDiff;

/// Why a function counts as changed (or line-only).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The function.
    pub function: String,
    /// The object, as given.
    pub object: String,
    /// The funnel rule that paired it with its original.
    pub rule: String,
    /// `changed` or `line-only`.
    pub verdict: &'static str,
    /// The first difference, in the report's words (for line-only: each line value).
    pub why: String,
    /// The first differing instruction pair, when the code differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<InsnPair>,
    /// The first differing special-section entry, when the code is the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
}

/// The first differing instruction of each side; `None` on the side whose code ended first.
#[derive(Debug, Clone, Serialize)]
pub struct InsnPair {
    /// The original side.
    pub orig: Option<Insn>,
    /// The patched side.
    pub patched: Option<Insn>,
}

/// One decoded instruction.
#[derive(Debug, Clone, Serialize)]
pub struct Insn {
    /// Offset in the function.
    pub offset: u64,
    /// Its bytes, in hex (relocated fields are zero in an object).
    pub bytes: String,
    /// AT&T syntax, as `objdump -d` prints it.
    pub asm: String,
    /// The relocations inside it: `R_X86_64_PLT32 __might_sleep-0x4 at +0x1` with its resolved
    /// target (`-> __might_sleep+0x0`).
    pub relocs: Vec<String>,
}

/// Why `explain` gives no explanation; the messages name the function and what to do.
#[derive(Debug, thiserror::Error)]
pub enum NotExplained {
    /// In neither object.
    #[error(
        "{0}: no function of that name in either object; the report lists the functions that changed"
    )]
    Missing(String),
    /// Only in the patched object.
    #[error("{0} is new in the patched object (func.added): it has no original to compare with")]
    Added(String),
    /// Only in the original object.
    #[error(
        "{0} is only in the original object (func.removed: removed, inlined or renamed by gcc)"
    )]
    Removed(String),
    /// Paired and equal.
    #[error(
        "{0} did not change: its bytes, relocations and special-section entries are the same as the original's \
         [correlated: {1}]"
    )]
    Unchanged(String, String),
}

/// Explains function `name` of `d`.
pub fn explain(d: &ObjectDiff, name: &str) -> Result<Explanation, NotExplained> {
    let (orig, patched) = (&d.orig, &d.patched);
    let func_p = patched
        .live_symbols()
        .find(|(_, s)| s.name == name && s.is_func() && s.section_id().is_some())
        .map(|(i, _)| i);
    let func_o = orig
        .live_symbols()
        .find(|(_, s)| s.name == name && s.is_func() && s.section_id().is_some())
        .map(|(i, _)| i);
    let p = match (func_p, func_o) {
        (Some(p), _) => p,
        (None, Some(_)) => return Err(NotExplained::Removed(name.into())),
        (None, None) => return Err(NotExplained::Missing(name.into())),
    };
    let (Some(o), Some(rule)) = (d.twins.orig(p), d.twins.rule(p)) else {
        return Err(NotExplained::Added(name.into()));
    };
    let ent = (Entries::new(orig), Entries::new(patched));
    let pair = Pair {
        orig,
        patched,
        twins: &d.twins,
        dec: (&d.decoded.0, &d.decoded.1),
        entries: (&ent.0, &ent.1),
    };
    let (verdict, why) = match pair.function(o, p) {
        Verdict::Changed(why) => ("changed", why),
        Verdict::LineOnly(lines) => ("line-only", lines.join("; ")),
        Verdict::Same => {
            // A parent whose `.cold` part changed counts as changed through it.
            match d.changed.iter().find(|c| c.sym == p) {
                Some(c) => ("changed", c.why.clone()),
                None => {
                    return Err(NotExplained::Unchanged(name.into(), rule.to_string()));
                }
            }
        }
    };
    let instructions = first_instruction(&pair, o, p);
    let entry = match (&instructions, pair.entries_of(o, p)) {
        (None, Err(why)) => Some(why),
        (None, Ok(lines)) if !lines.is_empty() => Some(lines.join("; ")),
        _ => None,
    };
    Ok(Explanation {
        function: name.into(),
        object: d.object.display().to_string(),
        rule: rule.to_string(),
        verdict,
        why,
        instructions,
        entry,
    })
}

/// Decodes both functions in lockstep and returns the first pair that differs in length, bytes
/// or the targets of the relocations inside it.
fn first_instruction(pair: &Pair<'_>, o: SymbolId<Orig>, p: SymbolId<Patched>) -> Option<InsnPair> {
    let (orig, patched) = (pair.orig, pair.patched);
    let (osec, oa, ob) = range(orig, o)?;
    let (psec, pa, pb) = range(patched, p)?;
    let (ocode, pcode) = (code(orig, osec, oa, ob), code(patched, psec, pa, pb));
    let (ors, prs) = (
        relocs_in(orig, osec, oa, ob),
        relocs_in(patched, psec, pa, pb),
    );
    let mut od = Decoder::with_ip(64, ocode, oa, DecoderOptions::NONE);
    let mut pd = Decoder::with_ip(64, pcode, pa, DecoderOptions::NONE);
    let (mut oi, mut pi) = (Instruction::default(), Instruction::default());
    loop {
        let (o_more, p_more) = (od.can_decode(), pd.can_decode());
        if !o_more && !p_more {
            return None;
        }
        if o_more {
            od.decode_out(&mut oi);
        }
        if p_more {
            pd.decode_out(&mut pi);
        }
        let show_o = || insn(orig, osec, oa, &oi, ocode, &ors, pair.dec.0);
        let show_p = || insn(patched, psec, pa, &pi, pcode, &prs, pair.dec.1);
        if !o_more || !p_more {
            return Some(InsnPair {
                orig: o_more.then(show_o),
                patched: p_more.then(show_p),
            });
        }
        let (obytes, pbytes) = (bytes_of(ocode, oa, &oi), bytes_of(pcode, pa, &pi));
        let differs = oi.ip() - oa != pi.ip() - pa
            || obytes != pbytes
            || !same_relocs(pair, (osec, &oi, &ors), (psec, &pi, &prs));
        if differs {
            return Some(InsnPair {
                orig: Some(show_o()),
                patched: Some(show_p()),
            });
        }
    }
}

fn code<R: Role>(obj: &ElfObject<R>, sec: SectionId<R>, a: u64, b: u64) -> &[u8] {
    let d = obj.data(sec);
    let b = (b as usize).min(d.len());
    &d[(a as usize).min(b)..b]
}

/// The bytes of `i` in `code`, which starts at `base`.
fn bytes_of<'a>(code: &'a [u8], base: u64, i: &Instruction) -> &'a [u8] {
    let a = ((i.ip() - base) as usize).min(code.len());
    let b = (a + i.len()).min(code.len());
    &code[a..b]
}

/// The relocations of a function inside instruction `i`.
fn inside<'a, R: Role>(relocs: &[&'a Reloc<R>], i: &Instruction) -> Vec<&'a Reloc<R>> {
    relocs
        .iter()
        .copied()
        .filter(|r| r.r_offset >= i.ip() && r.r_offset < i.next_ip())
        .collect()
}

fn same_relocs(
    pair: &Pair<'_>,
    (osec, oi, ors): (SectionId<Orig>, &Instruction, &[&Reloc<Orig>]),
    (psec, pi, prs): (SectionId<Patched>, &Instruction, &[&Reloc<Patched>]),
) -> bool {
    let (a, b) = (inside(ors, oi), inside(prs, pi));
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x.r_offset - oi.ip() == y.r_offset - pi.ip()
                && x.r_type == y.r_type
                && same_target(
                    pair.orig,
                    pair.patched,
                    pair.twins,
                    &resolve(pair.orig, osec, x, pair.dec.0.get(osec)),
                    &resolve(pair.patched, psec, y, pair.dec.1.get(psec)),
                )
        })
}

fn insn<R: Role>(
    obj: &ElfObject<R>,
    sec: SectionId<R>,
    base: u64,
    i: &Instruction,
    code: &[u8],
    relocs: &[&Reloc<R>],
    dec: &Decoded<R>,
) -> Insn {
    let mut asm = String::new();
    let mut f = GasFormatter::new();
    f.options_mut().set_uppercase_hex(false);
    f.options_mut().set_branch_leading_zeros(false);
    f.format(i, &mut asm);
    let relocs = inside(relocs, i)
        .into_iter()
        .map(|r| {
            let t: RelocTarget<R> = resolve(obj, sec, r, dec.get(sec));
            let addend = if r.r_addend < 0 {
                format!("-{:#x}", r.r_addend.unsigned_abs())
            } else {
                format!("+{:#x}", r.r_addend)
            };
            format!(
                "{} {}{addend} at +{:#x} -> {}",
                reloc_type_name(r.r_type),
                obj.symbol_display_name(r.sym),
                r.r_offset - i.ip(),
                describe(obj, &t)
            )
        })
        .collect();
    Insn {
        offset: i.ip() - base,
        bytes: bytes_of(code, base, i)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" "),
        asm,
        relocs,
    }
}

/// The name of an x86_64 relocation type, as readelf prints it.
fn reloc_type_name(t: u32) -> String {
    use object::elf::*;
    let n = match t {
        R_X86_64_64 => "R_X86_64_64",
        R_X86_64_PC32 => "R_X86_64_PC32",
        R_X86_64_PLT32 => "R_X86_64_PLT32",
        R_X86_64_32 => "R_X86_64_32",
        R_X86_64_32S => "R_X86_64_32S",
        R_X86_64_PC64 => "R_X86_64_PC64",
        R_X86_64_GOTPCREL => "R_X86_64_GOTPCREL",
        R_X86_64_GOTPCRELX => "R_X86_64_GOTPCRELX",
        R_X86_64_REX_GOTPCRELX => "R_X86_64_REX_GOTPCRELX",
        _ => return format!("reloc type {t}"),
    };
    n.to_string()
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} {} [correlated: {}]",
            self.object, self.function, self.verdict, self.rule
        )?;
        writeln!(f, "  why: {}", self.why)?;
        if let Some(p) = &self.instructions {
            for (side, i) in [("orig", &p.orig), ("patched", &p.patched)] {
                match i {
                    Some(i) => {
                        writeln!(
                            f,
                            "  {side:<7} +{:#06x}: {:<30} {}",
                            i.offset, i.bytes, i.asm
                        )?;
                        for r in &i.relocs {
                            writeln!(f, "  {:<7}   reloc {r}", "")?;
                        }
                    }
                    None => writeln!(f, "  {side:<7} (code ends before)")?,
                }
            }
        }
        if let Some(e) = &self.entry {
            writeln!(f, "  entry: {e}")?;
        }
        Ok(())
    }
}
