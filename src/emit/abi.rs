//! The names and layouts that klp-build shares with the module's C runtime core and with its own
//! later stages: one place on the Rust side, each item saying who produces it and who consumes it.
//! Invariant: the C half of the function table ABI is `kmod-template/c/klp_build_abi.h`;
//! `tests/kmod_abi.rs` compiles that header with gcc and checks it against these constants.

// ---------------------------------------------------------------------------------------------
// The function table: produced by `tables.rs` (klp_tables.o), consumed by `klp_build_core.c`.
// ---------------------------------------------------------------------------------------------

/// Size of one `struct klp_build_func` on x86_64.
pub const FUNC_SIZE: u64 = 32;
/// Alignment of `struct klp_build_func` (pointers and `unsigned long`).
pub const FUNC_ALIGN: u64 = 8;
/// `const char *objname`: NULL for vmlinux, else the module name as `klp_object.name` wants it.
pub const FUNC_OBJNAME: u64 = 0;
/// `const char *old_name`: the function to replace (`klp_func.old_name`).
pub const FUNC_OLD_NAME: u64 = 8;
/// `void *new_func`: the replacement, an undefined symbol defined by another object of the module.
pub const FUNC_NEW_FUNC: u64 = 16;
/// `unsigned long old_sympos`: `klp_func.old_sympos`, 0 when the name is unique in its object.
pub const FUNC_OLD_SYMPOS: u64 = 24;

/// Section of klp_tables.o holding `klp_build_funcs[]` followed by `klp_build_nr_funcs`.
pub const FUNCS_SECTION: &str = ".rodata.klp_build";
/// Section of klp_tables.o holding the NUL-terminated names the table points to.
pub const FUNC_STRINGS_SECTION: &str = ".rodata.klp_build.str";
/// `extern const struct klp_build_func klp_build_funcs[]`, sorted so that the entries of one
/// object are consecutive, vmlinux first.
pub const FUNCS_SYMBOL: &str = "klp_build_funcs";
/// `extern const unsigned int klp_build_nr_funcs`: the number of entries (a 4-byte `u32`).
pub const NR_FUNCS_SYMBOL: &str = "klp_build_nr_funcs";

// ---------------------------------------------------------------------------------------------
// The per-module config header: produced by `kbuild.rs`, consumed by `klp_build_core.c`.
// ---------------------------------------------------------------------------------------------

/// File name of the generated config header, beside the core in the module's build dir.
pub const CONFIG_HEADER: &str = "klp_build_config.h";
/// `#define KLP_BUILD_REPLACE 1|0`: the value of `klp_patch.replace`.
pub const CONFIG_REPLACE: &str = "KLP_BUILD_REPLACE";

// ---------------------------------------------------------------------------------------------
// Intermediate klp relocation records: produced by the emit stage (`klp_relocs.rs`) in each
// output object, consumed after the kbuild link by the post-link rewrite (`post_link.rs`), which
// turns them into `.klp.rela.*` sections and removes them. Rust on both sides; no C.
//
// Why records and not relocations: a klp relocation's symbol is not exported (that is why it is a
// klp relocation), so as an ordinary undefined symbol it would make modpost fail the link.
// ---------------------------------------------------------------------------------------------

/// `.klp_build.relocs` (non-alloc, `SHT_PROGBITS`, entsize [`KLP_RELOC_SIZE`]): one record per
/// klp relocation, written into each output object by the emit stage, read after the kbuild link
/// by the post-link rewrite, which removes the section.
///
/// ```text
/// offset  0: u64 place    R_X86_64_64 relocation to the place the klp relocation applies to
///                         (section symbol + offset)
/// offset  8: u64 symbol   R_X86_64_64 relocation to a NUL-terminated name in
///                         `.klp_build.strings`: ".klp.sym.<obj>.<name>,<sympos>"
/// offset 16: u32 r_type   R_X86_64_*
/// offset 20: u32 reserved 0
/// offset 24: i64 r_addend
/// ```
pub const KLP_RELOC_SECTION: &str = ".klp_build.relocs";
/// Non-alloc section holding the `.klp.sym.*` names that [`KLP_RELOC_SECTION`] records point to.
pub const KLP_STRINGS_SECTION: &str = ".klp_build.strings";
/// Size (and `sh_entsize`) of one record of [`KLP_RELOC_SECTION`].
pub const KLP_RELOC_SIZE: u64 = 32;
/// Offset of the `place` field of a record (filled by an `R_X86_64_64` relocation).
pub const KLP_RELOC_PLACE: u64 = 0;
/// Offset of the `symbol` field of a record (filled by an `R_X86_64_64` relocation).
pub const KLP_RELOC_SYMBOL: u64 = 8;
/// Offset of the little-endian `u32 r_type` of a record.
pub const KLP_RELOC_TYPE: u64 = 16;
/// Offset of the reserved `u32` of a record, written as 0.
pub const KLP_RELOC_RESERVED: u64 = 20;
/// Offset of the little-endian `i64 r_addend` of a record.
pub const KLP_RELOC_ADDEND: u64 = 24;

// ---------------------------------------------------------------------------------------------
// The kernel's livepatch module ELF format (Documentation/livepatch/module-elf-format.rst):
// produced by the post-link rewrite, consumed by the module loader and klp_apply_section_relocs().
// ---------------------------------------------------------------------------------------------

/// `sh_flags` bit of a `.klp.rela.<obj>.<section>` section (include/uapi/linux/elf.h).
pub const SHF_RELA_LIVEPATCH: u64 = 0x0010_0000;
/// `st_shndx` of a `.klp.sym.<obj>.<name>,<sympos>` symbol (include/uapi/linux/elf.h).
pub const SHN_LIVEPATCH: u16 = 0xff20;
/// Prefix of a klp relocation section: `.klp.rela.<obj>.<section>`
/// (`.klp.rela.vmlinux.text.foo`).
pub const KLP_RELA_PREFIX: &str = ".klp.rela.";
/// Prefix of a klp symbol: `.klp.sym.<obj>.<name>,<sympos>`
/// (`.klp.sym.vmlinux.saved_command_line,0`).
pub const KLP_SYM_PREFIX: &str = ".klp.sym.";

/// Longest `<obj>` the kernel reads back from a klp name (`%55[^.]`: `MODULE_NAME_LEN` - 1).
pub const KLP_OBJNAME_MAX: usize = 55;
/// Longest `<name>` the kernel reads back from a klp symbol name (`%511[^,]`: `KSYM_NAME_LEN` - 1).
pub const KLP_SYMNAME_MAX: usize = 511;

/// A klp symbol name decomposed the way klp_resolve_symbols() reads it back with
/// `sscanf(".klp.sym.%55[^.].%511[^,],%lu")`: `<obj>` is `vmlinux` or a module name (no `.`),
/// `<name>` runs to the first `,` and may contain `.` (`foo.constprop.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KlpSym<'a> {
    /// `vmlinux` or the module name, as `klp_object.name` spells it (`_`, not `-`).
    pub object: &'a str,
    /// The symbol's name in that object.
    pub name: &'a str,
    /// 1-based position among same-named symbols in kallsyms order; 0 when unique.
    pub sympos: u32,
}

impl KlpSym<'_> {
    /// `.klp.sym.<obj>.<name>,<sympos>`.
    pub fn to_name(&self) -> String {
        format!(
            "{KLP_SYM_PREFIX}{}.{},{}",
            self.object, self.name, self.sympos
        )
    }
}

/// Parses `.klp.sym.<obj>.<name>,<sympos>` as the kernel does; `None` if `s` is not of that form
/// or a field is longer than the kernel reads.
pub fn parse_klp_sym(s: &str) -> Option<KlpSym<'_>> {
    let rest = s.strip_prefix(KLP_SYM_PREFIX)?;
    let (object, rest) = rest.split_once('.')?;
    let (name, pos) = rest.split_once(',')?;
    if object.is_empty()
        || name.is_empty()
        || object.len() > KLP_OBJNAME_MAX
        || name.len() > KLP_SYMNAME_MAX
    {
        return None;
    }
    Some(KlpSym {
        object,
        name,
        sympos: pos.parse().ok()?,
    })
}

/// `.klp.rela.<obj>.<section>` for the relocation section applying to `section` of `object`, in
/// the documented form: `.text.cmdline_proc_show` of vmlinux gives
/// `.klp.rela.vmlinux.text.cmdline_proc_show` (module-elf-format.rst). The kernel reads only
/// `<obj>` back (`sscanf(".klp.rela.%55[^.]")` in klp_apply_section_relocs()); the target section
/// comes from `sh_info`.
pub fn klp_rela_name(object: &str, section: &str) -> String {
    let section = section.strip_prefix('.').unwrap_or(section);
    format!("{KLP_RELA_PREFIX}{object}.{section}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn klp_sym_round_trips_names_with_dots() {
        let s = KlpSym {
            object: "vmlinux",
            name: "show_val.constprop.0",
            sympos: 2,
        };
        assert_eq!(s.to_name(), ".klp.sym.vmlinux.show_val.constprop.0,2");
        assert_eq!(parse_klp_sym(&s.to_name()), Some(s));
    }

    #[test]
    fn klp_sym_rejects_other_names() {
        assert_eq!(parse_klp_sym("saved_command_line"), None);
        assert_eq!(parse_klp_sym(".klp.sym.vmlinux.foo"), None);
        assert_eq!(parse_klp_sym(".klp.sym.vmlinux.foo,x"), None);
        assert_eq!(parse_klp_sym(".klp.sym..foo,0"), None);
    }

    #[test]
    fn klp_rela_name_is_the_documented_form() {
        assert_eq!(
            klp_rela_name("vmlinux", ".text.cmdline_proc_show"),
            ".klp.rela.vmlinux.text.cmdline_proc_show"
        );
        assert_eq!(
            klp_rela_name("ext4", ".text.ext4_attr_store"),
            ".klp.rela.ext4.text.ext4_attr_store"
        );
    }

    #[test]
    fn record_fields_fit_the_record() {
        assert_eq!(KLP_RELOC_ADDEND + 8, KLP_RELOC_SIZE);
        assert_eq!(KLP_RELOC_RESERVED + 4, KLP_RELOC_ADDEND);
        assert_eq!(FUNC_OLD_SYMPOS + 8, FUNC_SIZE);
    }
}
