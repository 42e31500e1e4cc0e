//! Symbol names as gcc makes them. Input: a symbol name. Output: the name without gcc's numbering,
//! or the function a compiler-made part belongs to. Invariant: pure string rules, no object
//! access, so every stage that compares names (correlation, exclusion, the emitter) agrees.

/// Removes compiler-numbered suffixes: `.NNN` (static locals, `.isra.0` keeps its own name up to the
/// number only when a further `.N` follows) and the digits that end `__UNIQUE_ID_<name>NNN`.
pub fn strip_suffix(name: &str) -> &str {
    let mut s = name;
    if let Some(dot) = s.rfind('.') {
        let tail = &s[dot + 1..];
        let clone = [".constprop", ".isra", ".part", ".cold", ".lto_priv"]
            .iter()
            .any(|c| s[..dot].ends_with(c));
        if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) && !clone {
            s = &s[..dot];
        }
    }
    if s.starts_with("__UNIQUE_ID_") {
        s = s.trim_end_matches(|c: char| c.is_ascii_digit());
    }
    s
}

/// The parent of a `.cold` part: `foo` for `foo.cold`; children follow their parents.
pub fn cold_parent(name: &str) -> Option<&str> {
    name.strip_suffix(".cold")
        .or_else(|| name.split_once(".cold.").map(|(p, _)| p))
}

/// The function a part of gcc's splits off: `foo` for `foo.cold` and for `foo.part.0`
/// (partial inlining); `None` for any other name.
pub fn part_parent(name: &str) -> Option<&str> {
    cold_parent(name).or_else(|| {
        let (base, n) = name.rsplit_once(".part.")?;
        (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(base)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(strip_suffix("__key.12"), "__key");
        assert_eq!(strip_suffix("__already_done.5"), "__already_done");
        assert_eq!(strip_suffix("foo.constprop.0"), "foo.constprop.0");
        assert_eq!(strip_suffix("foo.isra.0"), "foo.isra.0");
        assert_eq!(strip_suffix("foo.cold"), "foo.cold");
        assert_eq!(strip_suffix("__UNIQUE_ID_ddebug412"), "__UNIQUE_ID_ddebug");
        assert_eq!(strip_suffix("cmdline_proc_show"), "cmdline_proc_show");
    }

    #[test]
    fn parts_name_their_parent() {
        assert_eq!(cold_parent("ext4_put_super.cold"), Some("ext4_put_super"));
        assert_eq!(cold_parent("foo.cold.3"), Some("foo"));
        assert_eq!(cold_parent("coldplug"), None);
        assert_eq!(part_parent("foo.part.0"), Some("foo"));
        assert_eq!(part_parent("foo.cold"), Some("foo"));
        assert_eq!(part_parent("foo.part."), None);
        assert_eq!(part_parent("foo.isra.0"), None);
    }
}
