//! Where something is in an object, for messages. Input: an object, a section and an offset.
//! Output: `fs/proc/cmdline.o: cmdline_proc_show+0x1c (.text.cmdline_proc_show+0x1c)`, the shape
//! of objtool's `offstr()`. Invariant: the function name is the symbol that covers the offset, so
//! the text matches what `objdump -dr` shows.

use std::fmt;

use super::ids::{Role, SectionId};
use super::object::{ElfObject, SymSection};

/// A place in an object: a section and an offset, with the covering symbol found at creation.
#[derive(Debug, Clone)]
pub struct Location {
    object: String,
    section: String,
    offset: u64,
    symbol: Option<(String, u64)>,
}

impl Location {
    /// The place `offset` bytes into `sec` of `obj`.
    pub fn new<R: Role>(obj: &ElfObject<R>, sec: SectionId<R>, offset: u64) -> Self {
        let symbol = obj
            .live_symbols()
            .filter(|(_, s)| {
                !s.is_section()
                    && !s.name.is_empty()
                    && s.section == SymSection::Section(sec)
                    && s.st_value <= offset
                    && (offset < s.st_value.saturating_add(s.st_size.max(1)))
            })
            .max_by_key(|(_, s)| s.st_value)
            .map(|(_, s)| (s.name.clone(), offset - s.st_value));
        Location {
            object: obj.display(),
            section: obj.section(sec).name.clone(),
            offset,
            symbol,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.symbol {
            Some((name, off)) => write!(
                f,
                "{}: {name}+{off:#x} ({}+{:#x})",
                self.object, self.section, self.offset
            ),
            None => write!(f, "{}: {}+{:#x}", self.object, self.section, self.offset),
        }
    }
}
