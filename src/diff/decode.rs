//! Instruction boundaries of an object's code. Input: an object. Output: per text section the
//! sorted ends of its instructions, each function decoded from its own start. Invariant: decoded
//! once per object and shared by correlation, comparison, `--explain` and the emitter, which all
//! need to know where an instruction ends to read a relocation's real target.

use std::collections::HashMap;

use crate::elf::{ElfObject, Role, SectionId};

use super::reloc_target::InsnEnds;

/// Decoded instruction ends of every text section, computed once per object.
pub struct Decoded<R: Role>(HashMap<SectionId<R>, InsnEnds>);

impl<R: Role> Decoded<R> {
    /// Decodes the functions of `obj`, each from its own start (sections can hold several).
    pub fn new(obj: &ElfObject<R>) -> Self {
        let mut m: HashMap<SectionId<R>, Vec<u64>> = HashMap::new();
        for (_, s) in obj.live_symbols() {
            if let (true, Some(sec)) = (s.is_func(), s.section_id()) {
                let data = obj.data(sec);
                let (a, b) = (
                    s.st_value as usize,
                    (s.st_value.saturating_add(s.st_size) as usize).min(data.len()),
                );
                if a < b {
                    let ends = InsnEnds::decode(&data[a..b], s.st_value);
                    m.entry(sec).or_default().extend_from_slice(ends.ends());
                }
            }
        }
        Decoded(
            m.into_iter()
                .map(|(k, mut v)| {
                    v.sort_unstable();
                    v.dedup();
                    (k, InsnEnds::from_vec(v))
                })
                .collect(),
        )
    }
    /// The instruction ends of `sec`, if it is code.
    pub fn get(&self, sec: SectionId<R>) -> Option<&InsnEnds> {
        self.0.get(&sec)
    }
}
