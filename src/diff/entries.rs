//! The special-section entries that belong to each function: `__bug_table`, `__jump_table`,
//! `__ex_table`, `.static_call_sites` and the other fixed-size tables of [`super::special`] whose
//! first field points into code. Input: one object. Output: per function, its entries in order of
//! the code they point at. Invariant: an entry belongs to the function that covers the place its
//! first field points at, and to nothing else; entries of tables whose layout is unknown are not
//! listed (the special-section check refuses those objects before the diff runs).
//!
//! A function's entries are part of what it does though they are not in its bytes: on x86
//! `WARN_ON()` and `WARN_ON_ONCE()` compile to the same `ud2`, and only the flags of the
//! `__bug_table` entry tell them apart; `static_branch_unlikely(&a)` and `(&b)` differ only in the
//! key of the `__jump_table` entry.

use std::collections::HashMap;

use crate::elf::{ElfObject, Reloc, Role, SectionId, SymbolId};

use super::special::{fields, layout, Special};

/// `struct bug_entry` on x86_64 with `CONFIG_GENERIC_BUG_RELATIVE_POINTERS` and
/// `CONFIG_DEBUG_BUGVERBOSE` (5.x to 6.12): `bug_addr_disp`, `file_disp`, `u16 line`, `u16 flags`.
pub const BUG_ENTRY_SIZE: u64 = 12;
/// The offset of `line` in that entry: the field a `__LINE__`-only change touches.
pub const BUG_ENTRY_LINE: u64 = 8;

/// One entry of a table.
#[derive(Debug, Clone, Copy)]
pub struct Entry<R: Role> {
    /// The table's section.
    pub table: SectionId<R>,
    /// The entry's offset in the table.
    pub start: u64,
    /// The entry's size.
    pub size: u64,
    /// Where its first field points, as an offset in the function.
    pub at: u64,
}

/// A function's range in its section: start, end, symbol.
type Span<R> = (u64, u64, SymbolId<R>);

/// The entries of every function of an object.
pub struct Entries<R: Role>(HashMap<SymbolId<R>, Vec<Entry<R>>>);

impl<R: Role> Entries<R> {
    /// Indexes the entries of every fixed-size table of `obj`. Linear in the tables' relocations:
    /// the function at a place is found by binary search over the functions of its section.
    pub fn new(obj: &ElfObject<R>) -> Self {
        let mut funcs: HashMap<SectionId<R>, Vec<Span<R>>> = HashMap::new();
        for (i, s) in obj.live_symbols() {
            if let (true, Some(sec)) = (s.is_func(), s.section_id()) {
                funcs.entry(sec).or_default().push((
                    s.st_value,
                    s.st_value.saturating_add(s.st_size),
                    i,
                ));
            }
        }
        for v in funcs.values_mut() {
            v.sort_unstable_by_key(|&(a, _, i)| (a, i));
        }
        let mut m: HashMap<SymbolId<R>, Vec<Entry<R>>> = HashMap::new();
        for (table, _) in obj.live_sections() {
            let Ok(Some(Special::Entries { size })) = layout(obj, table) else {
                continue;
            };
            if size == 0 {
                continue;
            }
            for r in obj.relocs_of(table) {
                if r.r_offset % size != 0 {
                    continue;
                }
                let sym = obj.symbol(r.sym);
                let Some(code) = sym.section_id() else {
                    continue;
                };
                let place = sym.st_value.wrapping_add_signed(r.r_addend);
                let Some(list) = funcs.get(&code) else {
                    continue;
                };
                let n = list.partition_point(|&(a, _, _)| a <= place);
                let Some(&(a, _, f)) = list[..n].iter().rev().find(|&&(_, b, _)| place < b) else {
                    continue;
                };
                m.entry(f).or_default().push(Entry {
                    table,
                    start: r.r_offset,
                    size,
                    at: place - a,
                });
            }
        }
        for v in m.values_mut() {
            v.sort_by_key(|e| (e.table, e.at, e.start));
        }
        Entries(m)
    }

    /// The entries of function `f`, grouped by table, each group in code order.
    pub fn of(&self, f: SymbolId<R>) -> &[Entry<R>] {
        self.0.get(&f).map_or(&[], Vec::as_slice)
    }
}

/// The relocations of `table` that lie in `[start, start + size)`, in offset order.
pub fn entry_relocs<'a, R: Role>(obj: &'a ElfObject<R>, e: &Entry<R>) -> Vec<&'a Reloc<R>> {
    obj.relocs_between(e.table, e.start, e.start.saturating_add(e.size))
}

/// The bytes of an entry's fields, empty when the table is shorter (the layout check rules that
/// out). Padding is left out: the last `.parainstructions` entry of a 4.18 object has none, and
/// the same entry elsewhere in the table has four zero bytes more ([`fields`]).
pub fn entry_bytes<'a, R: Role>(obj: &'a ElfObject<R>, e: &Entry<R>) -> &'a [u8] {
    let d = obj.data(e.table);
    let n = fields(&obj.section(e.table).name, e.size);
    let a = (e.start as usize).min(d.len());
    let b = (e.start.saturating_add(n) as usize).min(d.len());
    &d[a..b]
}
