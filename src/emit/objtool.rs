//! What the target's objtool needs at the module link, and what it says there. Input: the kbuild
//! dir (its `include/linux/objtool.h` tells the annotation format), the function table object
//! and the output objects of a module; kbuild's log of the link. Output: an annotation object for
//! the module's build dir, or none; the objtool warnings of the link, as an error that names each.
//! Invariant: a function is annotated only when it is a replacement function (the function table
//! points at it) that does not start with ENDBR; nothing else of objtool's checks is switched off,
//! and where objtool runs at the link it makes its sections for the whole module.
//!
//! On a kernel with IBT (Debian's 6.12, the lab's reference kernel) kbuild runs objtool on the
//! whole module when it links it. objtool wants an ENDBR wherever data points into code ("data
//! relocation to !ENDBR"), and the function table points at each replacement function. gcc gives a
//! function an ENDBR only when its address may be taken, so a replacement of a local function
//! called directly has none (`__set_oom_adj.isra.0`, `copy_process`). The livepatch never branches
//! to it indirectly: the ftrace handler stores it as the return address of the ftrace trampoline,
//! which reaches it by `ret`, which IBT does not check. That is what `ANNOTATE_NOENDBR` says, and
//! the annotation object says it for those functions, in the target's own format. (The kernel's
//! own klp-build has objtool skip its `__klp_funcs` table instead, a change to objtool that the
//! objtool of a released kernel does not have.)

use std::path::{Path, PathBuf};

use anyhow::Context;
use object::elf;

use crate::contract::abi;
use crate::elf::{read_file, Any, Content, ElfObject, Out, Reloc, Section, Symbol};

/// Sections objtool makes when it checks an object (`create_*_sections()` in
/// tools/objtool/check.c, `orc_create()`), with their relocation sections. objtool refuses to make
/// one that exists ("file already has .call_sites section, skipping"), so a module part that
/// carries them from its own objtool run (fs/binfmt_misc.o, a single-object module, is checked when
/// it is compiled) would leave the whole module, the runtime core included, with only those.
const OBJTOOL_MADE: &[&str] = &[
    ".orc_unwind",
    ".orc_unwind_ip",
    ".return_sites",
    ".call_sites",
    ".retpoline_sites",
    ".static_call_sites",
    ".cfi_sites",
    ".ibt_endbr_seal",
];

/// Whether the target's kbuild runs objtool on a module when it links it (`delay-objtool` of
/// scripts/Makefile.build: `CONFIG_X86_KERNEL_IBT` or `CONFIG_LTO_CLANG`), read from the kbuild
/// dir's `include/config/auto.conf`. Otherwise objtool runs only when kbuild compiles a `.c`, never
/// on klp-build's prebuilt objects, which then carry what objtool made for their functions.
pub fn runs_at_link(kbuild_dir: &Path) -> bool {
    crate::input::read_text(
        &kbuild_dir.join("include/config/auto.conf"),
        crate::input::Kind::Tree,
        "",
    )
    .is_ok_and(|conf| {
        conf.lines()
            .any(|l| l == "CONFIG_X86_KERNEL_IBT=y" || l == "CONFIG_LTO_CLANG=y")
    })
}

/// Writes `src` to `dst` the way objtool at the module link reads it: without the sections objtool
/// makes, so that it makes them for the whole module, and with its annotations (`.discard.*`)
/// against section symbols: objtool 6.12 reads `.discard.reachable` and most others only so
/// ("unexpected relocation symbol type in .rela.discard.reachable"), while the emit stage carries
/// an entry against the symbol of the function it points into.
pub fn write_for_link(src: &Path, dst: &Path) -> anyhow::Result<()> {
    let mut o: ElfObject<Any> = read_file(src)?;
    let annotations: Vec<_> = o
        .live_sections()
        .filter_map(|(id, s)| match &s.content {
            Content::Relocs { target, .. } if o.section(*target).name.starts_with(".discard.") => {
                Some(id)
            }
            _ => None,
        })
        .collect();
    for rela in annotations {
        let Content::Relocs { relocs, .. } = &o.section(rela).content else {
            continue;
        };
        let mut relocs = relocs.clone();
        for r in &mut relocs {
            let sym = o.symbol(r.sym);
            let (Some(sec), false) = (sym.section_id(), sym.is_section()) else {
                continue;
            };
            let value = sym.st_value;
            r.sym = o.ensure_section_symbol(sec);
            r.r_addend = r.r_addend.wrapping_add_unsigned(value);
        }
        if let Content::Relocs { relocs: old, .. } = &mut o.section_mut(rela).content {
            *old = relocs;
        }
    }
    let made: Vec<_> = o
        .live_sections()
        .filter(|(_, s)| OBJTOOL_MADE.contains(&s.name.as_str()))
        .map(|(id, _)| id)
        .collect();
    for id in made {
        if let Some(rela) = o.relocs_for(id) {
            o.section_mut(rela).deleted = true;
        }
        o.section_mut(id).deleted = true;
        if let Some(sym) = o.section_symbol(id) {
            o.symbol_mut(sym).deleted = true;
        }
    }
    o.path = dst.to_path_buf();
    o.write_to(dst)
        .with_context(|| format!("writing {} for the module link", dst.display()))
}

/// `endbr64`.
const ENDBR64: [u8; 4] = [0xf3, 0x0f, 0x1e, 0xfa];

/// How the target's objtool reads `ANNOTATE_NOENDBR` (`include/linux/objtool.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoendbrForm {
    /// 5.18 to 6.13: `.discard.noendbr`, one `.long <insn>` (`R_X86_64_32`) per annotation.
    Noendbr,
    /// 6.14 on: `.discard.annotate_insn` (entsize 8), `.long <insn> - .` (`R_X86_64_PC32`) then
    /// `.long <type>`, the type `ANNOTYPE_NOENDBR` of `include/linux/objtool_types.h`.
    AnnotateInsn {
        /// The value of `ANNOTYPE_NOENDBR`.
        noendbr_type: u32,
    },
}

/// The annotation format of the kernel whose kbuild dir is `kbuild_dir`; `None` when its headers
/// have no `ANNOTATE_NOENDBR` (before 5.18: no IBT, nothing to say).
pub fn noendbr_form(kbuild_dir: &Path) -> Option<NoendbrForm> {
    // 7.x moved the annotation macros from objtool.h to annotate.h (sid's 7.2 has
    // `.discard.annotate_insn` only there): read both.
    let trees = source_trees(kbuild_dir);
    let read = |h: &str| -> Option<String> {
        trees
            .iter()
            .find_map(|t| crate::input::read_text(&t.join(h), crate::input::Kind::Tree, "").ok())
    };
    let header: String = ["include/linux/objtool.h", "include/linux/annotate.h"]
        .iter()
        .filter_map(|h| read(h))
        .collect::<Vec<_>>()
        .join("\n");
    if header.is_empty() {
        return None;
    }
    if header.contains(".discard.annotate_insn") {
        let types = read("include/linux/objtool_types.h")?;
        let noendbr_type = types.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("#define") && w.next() == Some("ANNOTYPE_NOENDBR"))
                .then(|| w.next()?.parse().ok())
                .flatten()
        })?;
        return Some(NoendbrForm::AnnotateInsn { noendbr_type });
    }
    header
        .contains(".discard.noendbr")
        .then_some(NoendbrForm::Noendbr)
}

/// Where a kbuild dir's headers are: the dir itself (a built tree), and the source tree its
/// Makefile includes. Debian's headers split in two: `linux-headers-R` holds the config and the
/// generated files, and its Makefile is `include /usr/src/linux-headers-<abi>-common/Makefile`,
/// where `include/linux/` is (6.12's and 7.x's objtool.h and annotate.h among them).
fn source_trees(kbuild_dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![kbuild_dir.to_path_buf()];
    let text = crate::input::read_text(&kbuild_dir.join("Makefile"), crate::input::Kind::Tree, "")
        .unwrap_or_default();
    for line in text.lines() {
        let Some(path) = line.trim().strip_prefix("include ") else {
            continue;
        };
        // A mended private copy writes its own directory as `$(klp_build_here)`.
        let path = path
            .trim()
            .replace("$(klp_build_here)", &kbuild_dir.to_string_lossy());
        if path.contains("$(") {
            continue;
        }
        if let Some(dir) = kbuild_dir.join(path).parent() {
            out.push(dir.to_path_buf());
        }
    }
    out
}

/// The replacement functions the function table object `tables` points at (`new_func` of each
/// `struct klp_build_func`), by name.
fn table_targets(tables: &Path) -> anyhow::Result<Vec<String>> {
    let t: ElfObject<Any> = read_file(tables)?;
    let Some(sec) = t.section_by_name(abi::FUNCS_SECTION) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = t
        .relocs_of(sec)
        .iter()
        .filter(|r| r.r_offset % abi::FUNC_SIZE == abi::FUNC_NEW_FUNC)
        .map(|r| t.symbol(r.sym).name.clone())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// The replacement functions among `names` defined in `objects` that do not start with ENDBR.
fn without_endbr(names: &[String], objects: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    for path in objects {
        let o: ElfObject<Any> = read_file(path)?;
        for (_, s) in o.live_symbols() {
            if !s.is_func() || names.binary_search(&s.name).is_err() {
                continue;
            }
            let Some(sec) = s.section_id() else { continue };
            let start = usize::try_from(s.st_value).unwrap_or(usize::MAX);
            let head = o.data(sec).get(start..start.saturating_add(ENDBR64.len()));
            if head != Some(&ENDBR64[..]) {
                out.push(s.name.clone());
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// An object holding `ANNOTATE_NOENDBR` for each of `funcs` (undefined here, defined by the
/// module's other objects), in `form`.
fn notes_object(path: &Path, funcs: &[String], form: NoendbrForm) -> ElfObject<Out> {
    let mut o: ElfObject<Out> = ElfObject::new(path.to_path_buf());
    let (name, entry, r_type, flags, entsize) = match form {
        NoendbrForm::Noendbr => (".discard.noendbr", 4u64, elf::R_X86_64_32, 0u64, 0u64),
        NoendbrForm::AnnotateInsn { .. } => (
            ".discard.annotate_insn",
            8,
            elf::R_X86_64_PC32,
            u64::from(elf::SHF_MERGE),
            8,
        ),
    };
    let mut data = vec![0u8; funcs.len() * entry as usize];
    if let NoendbrForm::AnnotateInsn { noendbr_type } = form {
        for chunk in data.chunks_mut(8) {
            chunk[4..].copy_from_slice(&noendbr_type.to_le_bytes());
        }
    }
    let mut relocs = Vec::with_capacity(funcs.len());
    for (i, f) in funcs.iter().enumerate() {
        let sym = o.add_symbol(Symbol::undefined_global(f.as_str()));
        relocs.push(Reloc {
            r_offset: i as u64 * entry,
            sym,
            r_type,
            r_addend: 0,
        });
    }
    let mut sec = Section::new(name, elf::SHT_PROGBITS, flags, 4, Content::Data(data));
    sec.sh_entsize = entsize;
    let id = o.add_section(sec);
    o.add_section(Section::rela(name, id, relocs));
    o
}

/// Writes the annotation object of a module into `path` when the target's objtool needs one:
/// returns whether it did. `tables` is the function table object, `objects` the output objects.
pub fn write_notes(
    kbuild_dir: &Path,
    tables: &Path,
    objects: &[PathBuf],
    path: &Path,
) -> anyhow::Result<bool> {
    let Some(form) = noendbr_form(kbuild_dir) else {
        return Ok(false);
    };
    let funcs = without_endbr(&table_targets(tables)?, objects)?;
    if funcs.is_empty() {
        return Ok(false);
    }
    notes_object(path, &funcs, form)
        .write_to(path)
        .with_context(|| format!("writing the objtool annotations {}", path.display()))?;
    Ok(true)
}

/// The objtool lines of a kbuild log (`<object>: warning: objtool: <func>+<off>: <what>`, and
/// its errors).
pub fn findings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("warning: objtool:") || l.contains("error: objtool:"))
        .map(str::trim)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_objtool_lines_only() {
        let log = "  LD [M]  /w/5-kmod/livepatch-x.o\n\
                   /w/5-kmod/livepatch-x.o: warning: objtool: __jump_table+0x8: can't find key reloc\n\
                   WARNING: modpost: missing MODULE_DESCRIPTION() in livepatch-x.o\n\
                   /w/5-kmod/livepatch-x.o: error: objtool: bad .discard.noendbr entry\n";
        assert_eq!(
            findings(log),
            [
                "/w/5-kmod/livepatch-x.o: warning: objtool: __jump_table+0x8: can't find key reloc",
                "/w/5-kmod/livepatch-x.o: error: objtool: bad .discard.noendbr entry"
            ]
        );
    }

    #[test]
    fn forms_are_read_from_the_target_headers() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(noendbr_form(dir.path()), None);
        let inc = dir.path().join("include/linux");
        std::fs::create_dir_all(&inc).unwrap();
        // 6.12's include/linux/objtool.h
        std::fs::write(
            inc.join("objtool.h"),
            "#define ANNOTATE_NOENDBR \\\n\t\"986: \\n\\t\" \\\n\t\".pushsection .discard.noendbr\\n\\t\"",
        )
        .unwrap();
        assert_eq!(noendbr_form(dir.path()), Some(NoendbrForm::Noendbr));
        // 6.14 on
        std::fs::write(
            inc.join("objtool.h"),
            "#define ASM_ANNOTATE(type) __ASM_ANNOTATE(.discard.annotate_insn, 911b, type)",
        )
        .unwrap();
        std::fs::write(
            inc.join("objtool_types.h"),
            "#define ANNOTYPE_NOENDBR\t\t1\n#define ANNOTYPE_RETPOLINE_SAFE\t2\n",
        )
        .unwrap();
        assert_eq!(
            noendbr_form(dir.path()),
            Some(NoendbrForm::AnnotateInsn { noendbr_type: 1 })
        );
        // Debian's split headers: the arch dir's Makefile includes the common dir's.
        let split = tempfile::tempdir().unwrap();
        let arch = split.path().join("linux-headers-7.2-amd64");
        let common = split.path().join("linux-headers-7.2-common/include/linux");
        std::fs::create_dir_all(&arch).unwrap();
        std::fs::create_dir_all(&common).unwrap();
        std::fs::write(
            arch.join("Makefile"),
            "include ../linux-headers-7.2-common/Makefile\n",
        )
        .unwrap();
        std::fs::copy(inc.join("objtool.h"), common.join("objtool.h")).unwrap();
        std::fs::copy(inc.join("objtool_types.h"), common.join("objtool_types.h")).unwrap();
        assert_eq!(
            noendbr_form(&arch),
            Some(NoendbrForm::AnnotateInsn { noendbr_type: 1 })
        );
        // 7.x: the macros live in annotate.h, objtool.h only includes it.
        std::fs::write(inc.join("objtool.h"), "#include <linux/annotate.h>\n").unwrap();
        std::fs::write(
            inc.join("annotate.h"),
            "#define ASM_ANNOTATE(type) __ASM_ANNOTATE(.discard.annotate_insn, 911b, type)",
        )
        .unwrap();
        assert_eq!(
            noendbr_form(dir.path()),
            Some(NoendbrForm::AnnotateInsn { noendbr_type: 1 })
        );
    }

    #[test]
    fn notes_point_at_each_function_in_the_target_format() {
        let funcs = ["__klp_new.0.a".to_string(), "__klp_new.0.b".to_string()];
        let o = notes_object(
            Path::new("n.o"),
            &funcs,
            NoendbrForm::AnnotateInsn { noendbr_type: 1 },
        );
        let sec = o.section_by_name(".discard.annotate_insn").unwrap();
        assert_eq!(
            o.data(sec),
            [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0]
        );
        let relocs = o.relocs_of(sec);
        assert_eq!(relocs.len(), 2);
        assert_eq!(relocs[1].r_offset, 8);
        assert_eq!(relocs[1].r_type, elf::R_X86_64_PC32);
        assert_eq!(o.symbol(relocs[1].sym).name, "__klp_new.0.b");

        let o = notes_object(Path::new("n.o"), &funcs, NoendbrForm::Noendbr);
        let sec = o.section_by_name(".discard.noendbr").unwrap();
        assert_eq!(o.data(sec).len(), 8);
        let relocs = o.relocs_of(sec);
        assert_eq!(relocs[1].r_offset, 4);
        assert_eq!(relocs[1].r_type, elf::R_X86_64_32);
        assert!(o.to_bytes().is_ok());
    }
}
