//! Every key a finding can carry, in one list: the diff and emit findings of a build (`func.*`,
//! `data.*`, `reloc.*`, ...) and the findings of `check` (`check.*`). Input: none. Output: the
//! [`Key`] constants and [`ALL`]. Invariant: a [`Key`] is one of these constants (its field is
//! private), so no report can carry a key missing from [`ALL`], which `docs/errors.md` lists
//! exactly (`tests/errors_catalogue.rs`); every key is `<area>.<name>` with `name` in kebab-case.

use std::fmt;

/// A finding's stable key: what tools and tests match on, while people read the message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(&'static str);

impl Key {
    /// The key as reports spell it (`func.no-ftrace`).
    pub const fn as_str(self) -> &'static str {
        self.0
    }

    /// The key spelt `s`, in the current spelling or in one it had before (see [`RENAMED`]).
    pub fn parse(s: &str) -> Option<Key> {
        ALL.iter()
            .copied()
            .find(|k| k.0 == s)
            .or_else(|| RENAMED.iter().find(|(old, _)| *old == s).map(|(_, k)| *k))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl PartialEq<&str> for Key {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<str> for Key {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl schemars::JsonSchema for Key {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Key".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let keys: Vec<&str> = ALL.iter().map(|k| k.0).collect();
        schemars::json_schema!({
            "description": "A finding's stable key (docs/errors.md lists each with what to do).",
            "type": "string",
            "enum": keys,
        })
    }
}

macro_rules! keys {
    ($($(#[doc = $doc:literal])+ $name:ident = $key:literal;)+) => {
        $($(#[doc = $doc])+ pub const $name: Key = Key($key);)+
        /// Every key, in the order of `docs/errors.md`.
        pub const ALL: &[Key] = &[$($name),+];
    };
}

keys! {
    /// A function whose code changed: it is patched.
    FUNC_CHANGED = "func.changed";
    /// A new function, carried in the module.
    FUNC_ADDED = "func.added";
    /// A function of the original that the patched object lacks (warning).
    FUNC_REMOVED = "func.removed";
    /// A function whose only differences are `__LINE__` values: not patched (note).
    FUNC_LINE_ONLY = "func.line-only";
    /// A changed function marked `KPATCH_IGNORE_*`: not patched (warning).
    FUNC_IGNORED = "func.ignored";
    /// A changed `__init`/`__exit` function (refusal).
    FUNC_INIT_CHANGED = "func.init-changed";
    /// A changed function without an ftrace call site (refusal).
    FUNC_NO_FTRACE = "func.no-ftrace";
    /// A function marked `KPATCH_FORCE_UNSAFE` (refusal).
    FUNC_FORCE_UNSAFE = "func.force-unsafe";
    /// A changed function the target's symbols do not have, or have ambiguously (refusal).
    FUNC_UNRESOLVED = "func.unresolved";
    /// Data whose initial value changed (refusal).
    DATA_CHANGED = "data.changed";
    /// Data whose size changed (refusal).
    DATA_RESIZED = "data.resized";
    /// A symbol paired with its original by position only (warning).
    CORRELATE_POSITION = "correlate.position";
    /// A special static without a twin, carried as a fresh copy (note).
    CORRELATE_GATED = "correlate.gated";
    /// A data symbol without a twin on the other side (note).
    CORRELATE_NONE = "correlate.none";
    /// A kpatch mark that names no function or section (refusal).
    MARK_MALFORMED = "mark.malformed";
    /// A reference to the target that cannot be bound (refusal).
    RELOC_UNRESOLVED = "reloc.unresolved";
    /// A reference into anonymous data that no symbol covers (refusal).
    RELOC_ANONYMOUS = "reloc.anonymous";
    /// A reference into out-of-line code (`.altinstr_aux`) that cannot be carried (refusal).
    RELOC_AUX = "reloc.aux";
    /// Two objects of the patch define the same new global (refusal).
    SYMBOL_DUPLICATE = "symbol.duplicate";
    /// A special-section table entry that does not fit its section (refusal).
    OBJECT_MALFORMED = "object.malformed";
    /// A section klp-build does not know refers to patched code (warning).
    SPECIAL_UNKNOWN = "special.unknown";
    /// A special-section entry whose layout cannot be read, used by a changed function (refusal)
    /// or by an unchanged one (warning).
    SPECIAL_UNREADABLE = "special.unreadable";
    /// A jump label whose key lives in a module (refusal).
    SPECIAL_JUMP_LABEL_MODULE_KEY = "special.jump-label-module-key";
    /// A static call whose key lives in a module (refusal).
    SPECIAL_STATIC_CALL_MODULE_KEY = "special.static-call-module-key";
    /// A malformed callback registration (refusal).
    CALLBACK_MALFORMED = "callback.malformed";
    /// Two callbacks of one kind in one object (refusal).
    CALLBACK_DUPLICATE = "callback.duplicate";
    /// A callback that did not reach the output object (refusal).
    CALLBACK_NOT_CARRIED = "callback.not-carried";
    /// Something of a module that the check cannot know (note).
    CHECK_UNKNOWN = "check.unknown";
    /// Modules built for different kernel releases (refusal).
    CHECK_KERNEL_RELEASE = "check.kernel-release";
    /// Modules built for kernels with different livepatch APIs (refusal).
    CHECK_KERNEL_API = "check.kernel-api";
    /// Two modules of one name (refusal, or warning when the first is replaced).
    CHECK_SAME_NAME = "check.same-name";
    /// A module whose replace mode is not known (warning).
    CHECK_REPLACE_UNKNOWN = "check.replace-unknown";
    /// Two coexisting patches of one function (refusal).
    CHECK_FUNC_OVERLAP = "check.func-overlap";
    /// Two coexisting patches of one state (refusal).
    CHECK_STATE_OVERLAP = "check.state-overlap";
    /// A replacing module lacks a state of the one it replaces (refusal).
    CHECK_STATE_MISSING = "check.state-missing";
    /// A replacing module lowers a state's version (refusal).
    CHECK_STATE_OLDER = "check.state-older";
    /// A stacked module patches a function another enabled patch also patches (warning).
    CHECK_STACKED_SAME_FUNC = "check.stacked-same-func";
    /// A replacing module drops a fix of the one it replaces (refusal for the new module).
    CHECK_FIX_DROPPED = "check.fix-dropped";
    /// A dropped fix named by `--allow-drop` (warning).
    CHECK_FIX_DROPPED_ALLOWED = "check.fix-dropped-allowed";
    /// A fix carried under its id with other content than in the module it replaces (note).
    CHECK_FIX_REVISED = "check.fix-revised";
    /// An `--allow-drop` that names no dropped fix (warning).
    CHECK_ALLOW_DROP_UNUSED = "check.allow-drop-unused";
    /// A replacing module no longer patches a function the replaced one patched (warning).
    CHECK_REVERTS = "check.reverts";
}

/// Keys whose spelling changed when the style became uniform (old, new): reports written by an
/// older klp-build carry the old one; [`Key::parse`] takes both.
pub const RENAMED: &[(&str, Key)] = &[
    ("func.init_changed", FUNC_INIT_CHANGED),
    ("func.no_ftrace", FUNC_NO_FTRACE),
    ("func.force_unsafe", FUNC_FORCE_UNSAFE),
    (
        "special.jump_label_module_key",
        SPECIAL_JUMP_LABEL_MODULE_KEY,
    ),
    (
        "special.static_call_module_key",
        SPECIAL_STATIC_CALL_MODULE_KEY,
    ),
    ("callback.not_carried", CALLBACK_NOT_CARRIED),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_dotted_and_kebab_case() {
        let mut seen = std::collections::BTreeSet::new();
        for k in ALL {
            assert!(seen.insert(k.0), "{k} twice");
            let (area, name) = k.0.split_once('.').expect("dotted");
            for part in [area, name] {
                assert!(
                    !part.is_empty()
                        && part
                            .split('-')
                            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase())),
                    "{k} is not <area>.<kebab-case>"
                );
            }
        }
    }

    #[test]
    fn old_spellings_still_parse() {
        assert_eq!(Key::parse("func.no_ftrace"), Some(FUNC_NO_FTRACE));
        assert_eq!(Key::parse("func.no-ftrace"), Some(FUNC_NO_FTRACE));
        assert_eq!(Key::parse("func.nope"), None);
        for (old, new) in RENAMED {
            assert_eq!(old.replace('_', "-"), new.0);
        }
    }
}
