//! Per-object callbacks that patch authors register in the patched source (`klp-build.h`'s
//! `KLP_BUILD_*_CALLBACK`, kpatch-build's `KPATCH_*_CALLBACK` and load/unload hooks, the kernel's
//! `KLP_*_CALLBACK` of `<linux/livepatch_helpers.h>`), read back from one patched object.
//! Input: the patched object. Output: each registration's kind and function. Invariant: every
//! registration is a pointer variable `__klp_<kind>_callback_<suffix>` of 8 bytes in
//! [`abi::CALLBACK_PTRS_SECTION`] with one `R_X86_64_64` relocation to a function defined in the
//! same object, and each kind is registered at most once; anything else is refused by name.

use std::fmt;

use object::elf;

use crate::diff::Finding;
use crate::elf::{ElfObject, Location, Patched, SymbolId};
use crate::keys;

use crate::contract::abi;

/// Which field of `struct klp_callbacks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `pre_patch`: before the object is patched; an error refuses the patch.
    PrePatch,
    /// `post_patch`: after the object is patched.
    PostPatch,
    /// `pre_unpatch`: before the object is unpatched.
    PreUnpatch,
    /// `post_unpatch`: after the object is unpatched.
    PostUnpatch,
}

impl Kind {
    /// Every kind, in `klp_build_abi.h`'s order.
    pub const ALL: [Kind; 4] = [
        Kind::PrePatch,
        Kind::PostPatch,
        Kind::PreUnpatch,
        Kind::PostUnpatch,
    ];

    /// `pre_patch`, the field of `struct klp_callbacks` and the middle of the variable's name.
    pub fn field(self) -> &'static str {
        match self {
            Kind::PrePatch => "pre_patch",
            Kind::PostPatch => "post_patch",
            Kind::PreUnpatch => "pre_unpatch",
            Kind::PostUnpatch => "post_unpatch",
        }
    }

    /// `struct klp_build_callback.kind`.
    pub fn abi(self) -> u64 {
        match self {
            Kind::PrePatch => abi::CALLBACK_PRE_PATCH,
            Kind::PostPatch => abi::CALLBACK_POST_PATCH,
            Kind::PreUnpatch => abi::CALLBACK_PRE_UNPATCH,
            Kind::PostUnpatch => abi::CALLBACK_POST_UNPATCH,
        }
    }

    /// The kind a registration variable's name gives (`__klp_pre_patch_callback_vmlinux`).
    pub fn of_variable(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| {
            name.strip_prefix("__klp_")
                .and_then(|r| r.strip_prefix(k.field()))
                .is_some_and(|r| r.starts_with("_callback_"))
        })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::PrePatch => "pre-patch",
            Kind::PostPatch => "post-patch",
            Kind::PreUnpatch => "pre-unpatch",
            Kind::PostUnpatch => "post-unpatch",
        })
    }
}

/// One registration.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Its kind.
    pub kind: Kind,
    /// The callback function, defined in the object.
    pub func: SymbolId<Patched>,
    /// The registration variable (`__klp_post_patch_callback_klp_build`).
    pub variable: String,
}

/// The callback functions `p` registers, for the output object writer, which carries them into
/// the module whether or not they changed; the registrations that [`registrations`] refuses are
/// left out (that call reports them).
pub fn functions(p: &ElfObject<Patched>) -> Vec<SymbolId<Patched>> {
    registrations(p)
        .map(|r| r.into_iter().map(|r| r.func).collect())
        .unwrap_or_default()
}

/// The registrations of `p`, sorted by kind; `Err` lists every malformed or repeated one.
pub fn registrations(p: &ElfObject<Patched>) -> Result<Vec<Registration>, Vec<Finding>> {
    let Some(sec) = p.section_by_name(abi::CALLBACK_PTRS_SECTION) else {
        return Ok(Vec::new());
    };
    let mut out: Vec<Registration> = Vec::new();
    let mut problems = Vec::new();
    let refuse = |problems: &mut Vec<Finding>, off: u64, message: String| {
        problems.push(Finding {
            key: keys::CALLBACK_MALFORMED,
            location: Location::new(p, sec, off.min(p.section_size(sec))).to_string(),
            message,
        });
    };
    for (_, s) in p.live_symbols() {
        if s.section_id() != Some(sec) || s.is_section() || s.name.is_empty() {
            continue;
        }
        let Some(kind) = Kind::of_variable(&s.name) else {
            refuse(
                &mut problems,
                s.st_value,
                format!(
                    "{} is in {} but is no callback registration (__klp_<pre|post>_<patch|unpatch>_callback_*); \
                     register callbacks with the KLP_*_CALLBACK macros only",
                    s.name,
                    abi::CALLBACK_PTRS_SECTION
                ),
            );
            continue;
        };
        if s.st_size != 8 {
            refuse(
                &mut problems,
                s.st_value,
                format!(
                    "{} is {} bytes, not one 8-byte function pointer",
                    s.name, s.st_size
                ),
            );
            continue;
        }
        let Some(r) = p.relocs_of(sec).iter().find(|r| r.r_offset == s.st_value) else {
            refuse(
                &mut problems,
                s.st_value,
                format!(
                    "{} points at no function (no relocation); register a function of this file",
                    s.name
                ),
            );
            continue;
        };
        let t = p.symbol(r.sym);
        let func = match t.section_id() {
            _ if r.r_type != elf::R_X86_64_64 => None,
            Some(_) if t.is_func() && r.r_addend == 0 => Some(r.sym),
            Some(tsec) if t.is_section() => u64::try_from(r.r_addend)
                .ok()
                .and_then(|off| p.func_at(tsec, off))
                .filter(|&f| p.symbol(f).st_value as i64 == r.r_addend),
            _ => None,
        };
        let Some(func) = func else {
            refuse(
                &mut problems,
                s.st_value,
                format!(
                    "{} registers {}{:+#x}, which is not a function defined in this file; the {kind} callback \
                     must be a function of the patched file that registers it",
                    s.name,
                    p.symbol_display_name(r.sym),
                    r.r_addend
                ),
            );
            continue;
        };
        if let Some(first) = out.iter().find(|o| o.kind == kind) {
            problems.push(Finding {
                key: keys::CALLBACK_DUPLICATE,
                location: Location::new(p, sec, s.st_value).to_string(),
                message: format!(
                    "two {kind} callbacks: {} ({}) and {} ({}); an object has one {kind} callback: call both \
                     from one function",
                    p.symbol(first.func).name,
                    first.variable,
                    p.symbol(func).name,
                    s.name
                ),
            });
            continue;
        }
        out.push(Registration {
            kind,
            func,
            variable: s.name.clone(),
        });
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    out.sort_by_key(|r| r.kind);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_variable_name() {
        assert_eq!(
            Kind::of_variable("__klp_pre_patch_callback_vmlinux"),
            Some(Kind::PrePatch)
        );
        assert_eq!(
            Kind::of_variable("__klp_post_unpatch_callback_klp_build"),
            Some(Kind::PostUnpatch)
        );
        assert_eq!(Kind::of_variable("__klp_pre_patch_cb"), None);
        assert_eq!(Kind::of_variable("__klp_patch_callback_x"), None);
        let abis: Vec<u64> = Kind::ALL.iter().map(|k| k.abi()).collect();
        assert_eq!(abis, [0, 1, 2, 3]);
    }
}
