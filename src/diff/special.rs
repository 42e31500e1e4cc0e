//! The x86_64 special sections: tables whose entries point into functions and must follow them
//! into the livepatch module. Input: a section name (and its `sh_entsize`). Output: how to treat it.
//! Invariant: every allocated section that points into an included function is either known here
//! or refused by the diff stage, never silently dropped: a dropped `__bug_table` entry turns a
//! `WARN_ON()` into an invalid-opcode oops; a dropped `__ex_table` entry turns a recoverable user
//! access fault into a crash.

/// What the diff stage does with a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// A table of fixed-size entries whose first field points at code: keep the entries of
    /// included functions.
    Entries {
        /// Entry size in bytes.
        size: u64,
    },
    /// `.altinstructions`: 12-byte `struct alt_instr` whose replacement bytes live in
    /// `.altinstr_replacement` (sliced per entry: offset 4 points at them, byte 11 is their length).
    Alternatives,
    /// `.orc_unwind_ip` (4-byte entries) with its parallel `.orc_unwind` (6-byte entries).
    OrcIp,
    /// Consumed with its partner (`.orc_unwind`, `.altinstr_replacement`).
    Partner,
    /// Build-time only or debugging data that the module does not need: `.discard.*`
    /// (objtool annotations), `.debug_*`, `.comment`, `.note.*`, `.printk_index`.
    Drop,
}

/// Sizes for kernels 5.x-6.x on x86_64 where the section carries no `sh_entsize`
/// (assembler-made tables; objtool-made ones set it).
const TABLE: &[(&str, u64)] = &[
    // struct bug_entry with GENERIC_BUG_RELATIVE_POINTERS and DEBUG_BUGVERBOSE: disp, file, line, flags.
    ("__bug_table", 12),
    // struct exception_table_entry: insn, fixup, data (5.16+).
    ("__ex_table", 12),
    // struct jump_entry: code, target, key.
    ("__jump_table", 16),
    // struct static_call_site: addr, key.
    (".static_call_sites", 8),
    // s32 offsets to LOCK prefixes.
    (".smp_locks", 4),
    // objtool's s32 site lists.
    (".retpoline_sites", 4),
    (".return_sites", 4),
    (".call_sites", 4),
    (".ibt_endbr_seal", 4),
    // unsigned long addresses of the ftrace call sites (-mrecord-mcount).
    ("__mcount_loc", 8),
    // struct paravirt_patch_site (before 6.8): instr pointer, type, len, padded to 16.
    (".parainstructions", 16),
];

/// How to treat section `name` whose header says `entsize`.
pub fn classify(name: &str, entsize: u64) -> Option<Special> {
    if name.starts_with(".discard")
        || name.starts_with(".debug_")
        || name.starts_with(".note")
        || name == ".comment"
        || name == ".printk_index"
        || name == "__patchable_function_entries"
    {
        return Some(Special::Drop);
    }
    match name {
        ".altinstructions" => return Some(Special::Alternatives),
        ".altinstr_replacement" | ".orc_unwind" => return Some(Special::Partner),
        ".orc_unwind_ip" => return Some(Special::OrcIp),
        _ => {}
    }
    TABLE
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, size)| Special::Entries {
            size: if entsize != 0 { entsize } else { size },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entsize_from_the_object_wins() {
        assert_eq!(
            classify(".return_sites", 4),
            Some(Special::Entries { size: 4 })
        );
        assert_eq!(
            classify("__bug_table", 0),
            Some(Special::Entries { size: 12 })
        );
        assert_eq!(
            classify("__jump_table", 0),
            Some(Special::Entries { size: 16 })
        );
        assert_eq!(classify(".discard.addressable", 0), Some(Special::Drop));
        assert_eq!(classify(".data.foo", 0), None);
    }
}
