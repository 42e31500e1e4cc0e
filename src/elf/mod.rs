//! One ELF model for the orig, patched and output relocatable objects (x86_64, ELF64 little endian).
//!
//! Input: the bytes of a relocatable object (`.o` or a kbuild-linked `.ko`). Output: an
//! [`ElfObject`] whose sections, symbols and relocations are tables addressed by typed ids, and the
//! bytes written back from it. Invariant: ids stay valid for the life of an object (deletion sets a
//! flag), and ids of different roles (orig, patched, out) are different types.
#![deny(missing_docs)]

mod ids;
mod location;
mod object;
mod read;
mod write;

pub use ids::{Any, Orig, Out, Patched, Role, SectionId, SymbolId};
pub use location::Location;
pub use object::{Content, ElfObject, Reloc, Section, SymSection, Symbol};
pub use read::{parse, read_file};

/// Errors of the ELF model: they name the file and the thing that is wrong in it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read or is not a relocatable x86_64 ELF64 object.
    #[error("{path}: {what}")]
    Malformed {
        /// The object file.
        path: String,
        /// What is wrong, naming the section or symbol.
        what: String,
    },
    /// The checked reader refused the file or could not read it; the message names the path.
    #[error("{0}")]
    Input(String),
    /// I/O error reading or writing the file.
    #[error("{path}: {io}")]
    Io {
        /// The object file.
        path: String,
        /// The underlying error (in the message, not a `source`: `{:#}` would print it twice).
        io: std::io::Error,
    },
}
