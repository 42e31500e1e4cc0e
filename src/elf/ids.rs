//! Typed ids of sections and symbols. Input: a role marker (`Orig`, `Patched`, `Out`). Output: ids
//! that only index objects of that role. Invariant: an orig symbol id can never be used to look up a
//! patched object: mixing them up does not compile (objtool's `twin`/`clone` pointers made this a
//! run-time bug class).

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

/// The role of an object in a diff: which of the three objects an id belongs to.
pub trait Role: 'static + Copy + Clone + fmt::Debug + PartialEq + Eq + Hash {
    /// Short name used in debug output (`orig`, `patched`, `out`).
    const NAME: &'static str;
}

macro_rules! role {
    ($t:ident, $n:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $t;
        impl Role for $t {
            const NAME: &'static str = $n;
        }
    };
}
role!(Orig, "orig", "The object built from the original source.");
role!(
    Patched,
    "patched",
    "The object built from the patched source."
);
role!(
    Out,
    "out",
    "The output object that goes into the livepatch module."
);
role!(
    Any,
    "elf",
    "An object read on its own (a linked `.ko`, a round-trip test)."
);

macro_rules! id {
    ($t:ident, $prefix:literal, $doc:literal) => {
        #[doc = $doc]
        pub struct $t<R>(u32, PhantomData<R>);
        impl<R> $t<R> {
            /// The id of table entry `index`.
            pub const fn new(index: usize) -> Self {
                $t(index as u32, PhantomData)
            }
            /// The table index (the ELF index of the object as read).
            pub const fn index(self) -> usize {
                self.0 as usize
            }
        }
        impl<R> Clone for $t<R> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<R> Copy for $t<R> {}
        impl<R> PartialEq for $t<R> {
            fn eq(&self, o: &Self) -> bool {
                self.0 == o.0
            }
        }
        impl<R> Eq for $t<R> {}
        impl<R> PartialOrd for $t<R> {
            fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(o))
            }
        }
        impl<R> Ord for $t<R> {
            fn cmp(&self, o: &Self) -> std::cmp::Ordering {
                self.0.cmp(&o.0)
            }
        }
        impl<R> Hash for $t<R> {
            fn hash<H: Hasher>(&self, h: &mut H) {
                self.0.hash(h)
            }
        }
        impl<R: Role> fmt::Debug for $t<R> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}-{}{}", R::NAME, $prefix, self.0)
            }
        }
    };
}
id!(
    SectionId,
    "sec",
    "Index of a section in an [`crate::elf::ElfObject`] of role `R`."
);
id!(
    SymbolId,
    "sym",
    "Index of a symbol in an [`crate::elf::ElfObject`] of role `R`."
);
