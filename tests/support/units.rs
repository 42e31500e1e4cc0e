//! Translation units for sympos lookups, read from compiled objects. Input: a relocatable object
//! (`-ffunction-sections -fdata-sections`, as klp-build rebuilds) and the `.c` it came from.
//! Output: the [`TranslationUnit`] that `SymbolListing::locate` takes. Invariant: it holds every
//! named function and data symbol defined in the object, ordered by section index then address
//! (the order the unit's code and data have in the object), read with `object`'s generic API
//! rather than klp-build's own ELF model, so the tests do not check the listing against itself.

use std::path::Path;

use klp_build::kernel::symbols::{TranslationUnit, TuKind, TuSymbol};
use object::{Object, ObjectSection, ObjectSymbol, SectionIndex, SymbolKind, SymbolSection};

/// The functions and data of the object `obj`, compiled from `source` (tree-relative, as the
/// listing's FILE symbols and messages name it).
pub fn translation_unit(obj: &Path, source: &str) -> TranslationUnit {
    let data = std::fs::read(obj).unwrap_or_else(|e| panic!("{}: {e}", obj.display()));
    let file = object::File::parse(&*data).unwrap_or_else(|e| panic!("{}: {e}", obj.display()));
    let mut syms: Vec<(SectionIndex, u64, TuSymbol)> = Vec::new();
    for s in file.symbols() {
        let kind = match s.kind() {
            SymbolKind::Text => TuKind::Func,
            SymbolKind::Data => TuKind::Object,
            _ => continue,
        };
        let SymbolSection::Section(index) = s.section() else {
            continue;
        };
        let name = s.name().unwrap();
        if name.is_empty() {
            continue;
        }
        let section = file
            .section_by_index(index)
            .unwrap()
            .name()
            .unwrap()
            .to_string();
        syms.push((
            index,
            s.address(),
            TuSymbol {
                name: name.to_string(),
                kind,
                section,
                local: s.is_local(),
            },
        ));
    }
    syms.sort_by_key(|(i, a, _)| (i.0, *a));
    TranslationUnit {
        source: source.to_string(),
        symbols: syms.into_iter().map(|(_, _, s)| s).collect(),
    }
}
