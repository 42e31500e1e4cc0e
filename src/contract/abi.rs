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
/// `#define KLP_BUILD_REPLACE_MODE <n>`: which field of `struct klp_patch` the core sets, one of
/// the `MODE_*` values (named `KLP_BUILD_MODE_*` in `klp_build_abi.h`).
pub const CONFIG_REPLACE_MODE: &str = "KLP_BUILD_REPLACE_MODE";
/// `#define KLP_BUILD_HAS_SUPERSEDES 0|1`: the target's `struct klp_patch` has `supersedes` and
/// `nr_supersedes` (the reference replace-set kernel); the core fills them from
/// [`SUPERSEDES_SYMBOL`] and the `also_replace_sets` parameter, which it refuses when this is 0.
pub const CONFIG_HAS_SUPERSEDES: &str = "KLP_BUILD_HAS_SUPERSEDES";
/// `#define KLP_BUILD_HAS_STATES 0|1`: the target's `struct klp_patch` has `states` (5.5+).
pub const CONFIG_HAS_STATES: &str = "KLP_BUILD_HAS_STATES";
/// `#define KLP_BUILD_KERNEL_API "<words>"`: what the target's livepatch API has, for the core's
/// messages (`LivepatchApi::describe`).
pub const CONFIG_KERNEL_API: &str = "KLP_BUILD_KERNEL_API";

/// `klp_patch.replace = false`: the patch stacks on the enabled ones.
pub const MODE_STACKED: u32 = 0;
/// `klp_patch.replace = true`: the patch replaces every enabled one (cumulative).
pub const MODE_ATOMIC: u32 = 1;
/// `klp_patch.replace_set = klp_build_replace_set` (+ `supersedes`): the reference kernel.
pub const MODE_REPLACE_SET: u32 = 2;
/// `klp_patch.provides = klp_build_replace_set`: the renamed series (no `obsoletes` emitted).
pub const MODE_PROVIDES: u32 = 3;

// ---------------------------------------------------------------------------------------------
// The spec table: produced by `tables.rs` (klp_spec.o, from the `ModuleSpec`), consumed by
// `klp_build_core.c`. One read-only section, no relocations:
//
// offset  0: u32 klp_build_replace_set     the set (0 unless the mode is a set mode)
// offset  4: u32 klp_build_nr_supersedes
// offset  8: u32 klp_build_nr_states
// offset 12: u32 reserved, 0
// offset 16: struct klp_build_state klp_build_states[nr_states]   (16 bytes each)
// then:      u32 klp_build_supersedes[nr_supersedes]
// ---------------------------------------------------------------------------------------------

/// Object name of the spec table in the module's build dir.
pub const SPEC_OBJECT: &str = "klp_spec.o";
/// Section of klp_spec.o holding the spec table.
pub const SPEC_SECTION: &str = ".rodata.klp_build.spec";
/// `extern const unsigned int klp_build_replace_set`.
pub const REPLACE_SET_SYMBOL: &str = "klp_build_replace_set";
/// `extern const unsigned int klp_build_nr_supersedes`.
pub const NR_SUPERSEDES_SYMBOL: &str = "klp_build_nr_supersedes";
/// `extern const unsigned int klp_build_nr_states`.
pub const NR_STATES_SYMBOL: &str = "klp_build_nr_states";
/// `extern const struct klp_build_state klp_build_states[]`, sorted by id, ids unique and not 0.
pub const STATES_SYMBOL: &str = "klp_build_states";
/// `extern const unsigned int klp_build_supersedes[]`, sorted, unique, not the module's own set.
pub const SUPERSEDES_SYMBOL: &str = "klp_build_supersedes";
/// Offsets of the fields of the spec table's header.
pub const SPEC_REPLACE_SET: u64 = 0;
/// See [`SPEC_REPLACE_SET`].
pub const SPEC_NR_SUPERSEDES: u64 = 4;
/// See [`SPEC_REPLACE_SET`].
pub const SPEC_NR_STATES: u64 = 8;
/// Where `klp_build_states[]` starts.
pub const SPEC_STATES: u64 = 16;
/// Size of one `struct klp_build_state` on x86_64: `unsigned long id; unsigned int version;
/// unsigned int reserved;`.
pub const STATE_SIZE: u64 = 16;
/// Alignment of `struct klp_build_state`.
pub const STATE_ALIGN: u64 = 8;
/// Offset of `klp_build_state.id`.
pub const STATE_ID: u64 = 0;
/// Offset of `klp_build_state.version`.
pub const STATE_VERSION: u64 = 8;

// ---------------------------------------------------------------------------------------------
// Declarations in the patched source: produced by the macros of `klp-build.h` in the patched
// objects, read by `declarations.rs`. Non-alloc sections: they never reach a module's memory,
// and the `.discard.` prefix makes the kernel's module linker script drop them should one ever
// be linked into a module.
// ---------------------------------------------------------------------------------------------

/// `KLP_BUILD_STATE(id, version)`: one [`STATE_SIZE`] record per use, the layout of
/// `struct klp_build_state`.
pub const STATE_DECL_SECTION: &str = ".discard.klp_build.states";

// ---------------------------------------------------------------------------------------------
// The callback table: produced by `tables.rs` (klp_tables.o, from the registrations that
// `callbacks.rs` reads out of the patched objects), consumed by `klp_build_core.c`, which sets
// `klp_object.callbacks` of the object each entry names.
// ---------------------------------------------------------------------------------------------

/// Size of one `struct klp_build_callback` on x86_64.
pub const CALLBACK_SIZE: u64 = 24;
/// `const char *objname`: NULL for vmlinux, else the module name, as in `struct klp_build_func`.
pub const CALLBACK_OBJNAME: u64 = 0;
/// `unsigned long kind`: one of the `CALLBACK_*` kinds.
pub const CALLBACK_KIND: u64 = 8;
/// `void *fn`: the callback, an undefined symbol defined by another object of the module.
pub const CALLBACK_FN: u64 = 16;
/// Section of klp_tables.o holding `klp_build_callbacks[]` followed by `klp_build_nr_callbacks`.
pub const CALLBACKS_SECTION: &str = ".rodata.klp_build.callbacks";
/// `extern const struct klp_build_callback klp_build_callbacks[]`, sorted by object then kind.
pub const CALLBACKS_SYMBOL: &str = "klp_build_callbacks";
/// `extern const unsigned int klp_build_nr_callbacks`.
pub const NR_CALLBACKS_SYMBOL: &str = "klp_build_nr_callbacks";
/// `kind` of `klp_callbacks.pre_patch`.
pub const CALLBACK_PRE_PATCH: u64 = 0;
/// `kind` of `klp_callbacks.post_patch`.
pub const CALLBACK_POST_PATCH: u64 = 1;
/// `kind` of `klp_callbacks.pre_unpatch`.
pub const CALLBACK_PRE_UNPATCH: u64 = 2;
/// `kind` of `klp_callbacks.post_unpatch`.
pub const CALLBACK_POST_UNPATCH: u64 = 3;

/// Where a patched object registers its callbacks: the `KLP_*_CALLBACK` macros of `klp-build.h`
/// and its compatibility headers, and those of the kernel's own `<linux/livepatch_helpers.h>`,
/// write one pointer variable per registration here, named
/// `__klp_<pre|post>_<patch|unpatch>_callback_<suffix>`.
pub const CALLBACK_PTRS_SECTION: &str = ".discard.klp_callback_ptrs";

/// Module parameter of the runtime core: `also_replace_sets=X[,Y]`, sets whose enabled patches
/// the module also replaces (added to `supersedes` at load).
pub const PARAM_ALSO_REPLACE_SETS: &str = "also_replace_sets";

/// modinfo keys the config header writes (`MODULE_INFO`), read back by `modinfo` and `check`.
pub const MODINFO_REPLACE: &str = "klp_build_replace";
/// `klp_build_replace_set=N`, set modes only.
pub const MODINFO_REPLACE_SET: &str = "klp_build_replace_set";
/// `klp_build_supersedes=M,N`, only when the list is not empty.
pub const MODINFO_SUPERSEDES: &str = "klp_build_supersedes";
/// `klp_build_states=ID:VERSION,..` (decimal), only when the module declares states.
pub const MODINFO_STATES: &str = "klp_build_states";

// ---------------------------------------------------------------------------------------------
// Intermediate klp relocation records: produced by the emit stage (`klp_relocs.rs`) in each
// output object, consumed after the kbuild link by the post-link rewrite (`post_link.rs`), which
// turns them into `.klp.rela.*` sections and removes them. Rust on both sides; no C.
//
// Why records and not relocations: a klp relocation's symbol is not exported (that is why it is a
// klp relocation), so as an ordinary undefined symbol it would make modpost fail the link. The
// place keeps an ordinary relocation to a weak undefined tombstone symbol
// ([`KLP_TOMBSTONE_PREFIX`]) until the rewrite removes it: objtool checks the module at its link
// on kernels with IBT and needs the call, jump-label key and static-call relocations it reads.
// ---------------------------------------------------------------------------------------------

/// `.klp_build.relocs` (`SHF_ALLOC`, `SHT_PROGBITS`, entsize [`KLP_RELOC_SIZE`]): one record per
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
/// Section (`SHF_ALLOC`) holding the `.klp.sym.*` names that [`KLP_RELOC_SECTION`] records point
/// to. Both sections are `SHF_ALLOC` because modpost warns about a non-alloc `SHT_PROGBITS` section
/// it does not know ("unexpected non-allocatable section"); the rewrite removes them before the
/// module is ever loaded.
pub const KLP_STRINGS_SECTION: &str = ".klp_build.strings";
/// Prefix of the weak undefined symbol that stands for a klp relocation's symbol in the output
/// objects and the kbuild-linked module: `.klp.tombstone.<name>`. Weak, so modpost neither fails
/// nor records a dependency; the prefix keeps objtool from reading `__SCT__*` or `__SCK__*` names
/// as static calls it would list against a key the module cannot reach. The post-link rewrite
/// removes every relocation to one (each has a record at the same place) and the symbols.
pub const KLP_TOMBSTONE_PREFIX: &str = ".klp.tombstone.";
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

/// `.klp.rela.<obj>.<section>` for the relocation section applying to `section` of `object`:
/// `.text.cmdline_proc_show` of vmlinux gives `.klp.rela.vmlinux..text.cmdline_proc_show`, the
/// section's whole name after the object's, as kpatch writes it (module-elf-format.rst drops the
/// section's leading dot in its example). The kernel reads only `<obj>` back
/// (`sscanf(".klp.rela.%55[^.]")` in klp_apply_section_relocs()); the target section comes from
/// `sh_info`, so both spellings load. The post-link rewrite is the one producer.
pub fn klp_rela_name(object: &str, section: &str) -> String {
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
            ".klp.rela.vmlinux..text.cmdline_proc_show"
        );
        // What the kernel parses back: the object name, up to the first dot.
        let name = klp_rela_name("ext4", ".text.ext4_attr_store");
        let object = name
            .strip_prefix(KLP_RELA_PREFIX)
            .and_then(|r| r.split('.').next());
        assert_eq!(object, Some("ext4"));
    }

    #[test]
    fn record_fields_fit_the_record() {
        assert_eq!(KLP_RELOC_ADDEND + 8, KLP_RELOC_SIZE);
        assert_eq!(KLP_RELOC_RESERVED + 4, KLP_RELOC_ADDEND);
        assert_eq!(FUNC_OLD_SYMPOS + 8, FUNC_SIZE);
        assert_eq!(STATE_VERSION + 8, STATE_SIZE);
        assert_eq!(SPEC_NR_STATES + 8, SPEC_STATES);
        assert_eq!(SPEC_STATES % STATE_ALIGN, 0);
    }
}
