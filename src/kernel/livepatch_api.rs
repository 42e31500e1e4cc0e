//! What the target kernel's livepatch API can do, read from its `include/linux/livepatch.h`.
//! Input: the header's text. Output: [`LivepatchApi`]. Invariant: detection is one table of rows
//! (`REPLACE_ROWS`), so a new kernel variant (the replace-set series was renamed once already)
//! is one more row, not a rewrite; a header that matches no row is a kernel without atomic replace.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// How the target's `struct klp_patch` says which patches a new one replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceField {
    /// No atomic replace (before 5.1): patches always stack.
    None,
    /// `bool replace` (mainline 5.1 up to 7.2 at least): all or nothing.
    Bool,
    /// `unsigned int replace_set` (the v3 replace-set series and our reference kernel).
    ReplaceSet,
    /// `unsigned int provides` (the renamed series, `CONFIG_KLP_HAS_PROVIDES`).
    Provides,
}

/// The field names of the target's `struct klp_patch` that klp-build emits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LivepatchApi {
    /// The replace field.
    pub replace: ReplaceField,
    /// The list of other sets a patch also replaces: `supersedes` (with `nr_supersedes`) on our
    /// reference kernel, `obsoletes` on the renamed series; `None` when the struct has neither.
    pub supersedes_field: Option<&'static str>,
    /// `struct klp_state` and `klp_patch.states` exist (5.5+).
    pub states: bool,
    /// `struct klp_callbacks` with pre/post patch/unpatch exist (4.15+).
    pub callbacks: bool,
    /// `klp_shadow_get_or_alloc()` exists (4.13+).
    pub shadow: bool,
}

/// One row of the detection table: a declaration in `struct klp_patch` that selects a variant.
struct ReplaceRow {
    /// A declaration as it appears in the header, whitespace-normalised (`unsigned int replace_set;`).
    decl: &'static str,
    field: ReplaceField,
    /// The companion list field and its declaration, when the variant has one.
    list: Option<(&'static str, &'static str)>,
}

/// Most specific first: the first row whose declaration the header has wins.
const REPLACE_ROWS: &[ReplaceRow] = &[
    ReplaceRow {
        decl: "unsigned int replace_set;",
        field: ReplaceField::ReplaceSet,
        list: Some(("supersedes", "const unsigned int *supersedes;")),
    },
    ReplaceRow {
        decl: "unsigned int provides;",
        field: ReplaceField::Provides,
        list: Some(("obsoletes", "obsoletes")),
    },
    ReplaceRow {
        decl: "bool replace;",
        field: ReplaceField::Bool,
        list: None,
    },
];

impl LivepatchApi {
    /// Reads `<kbuild>/include/linux/livepatch.h`, falling back to `<source>/include/...` (a
    /// headers package has it; so does a source tree).
    pub fn detect(kbuild: &Path, source: &Path) -> anyhow::Result<LivepatchApi> {
        let rel = "include/linux/livepatch.h";
        let path = [kbuild.join(rel), source.join(rel)]
            .into_iter()
            .find(|p| p.is_file())
            .with_context(|| {
                format!(
                    "{}: no {rel}; the target's kbuild dir or source tree must have it (is the kernel built \
                     with CONFIG_LIVEPATCH?)",
                    kbuild.display()
                )
            })?;
        let text = crate::input::read(&path, crate::input::Kind::Tree, "")?;
        Ok(Self::parse(&String::from_utf8_lossy(&text)))
    }

    /// A kernel with states, callbacks and shadow variables (5.5 and later) and the given replace
    /// field: what every kernel klp-build targets has but for the replace-set variants.
    pub fn with_replace(
        replace: ReplaceField,
        supersedes_field: Option<&'static str>,
    ) -> LivepatchApi {
        LivepatchApi {
            replace,
            supersedes_field,
            states: true,
            callbacks: true,
            shadow: true,
        }
    }

    /// Detects the API from the header's text.
    pub fn parse(header: &str) -> LivepatchApi {
        let norm = normalise(header);
        let row = REPLACE_ROWS.iter().find(|r| norm.contains(r.decl));
        let replace = row.map_or(ReplaceField::None, |r| r.field);
        let supersedes_field = row
            .and_then(|r| r.list)
            .filter(|(_, decl)| norm.contains(decl))
            .map(|(name, _)| name);
        LivepatchApi {
            replace,
            supersedes_field,
            states: norm.contains("struct klp_state *states;"),
            callbacks: norm.contains("struct klp_callbacks {"),
            shadow: norm.contains("klp_shadow_get_or_alloc("),
        }
    }

    /// The replace modes a module for this kernel may have, each with the options that ask for
    /// it (the first is the default).
    pub fn allowed_modes(&self) -> Vec<String> {
        match self.replace {
            ReplaceField::None => vec!["stacked (the kernel has no atomic replace)".into()],
            ReplaceField::Bool => vec![
                "atomic: replaces every enabled livepatch (cumulative)".into(),
                "stacked: --no-replace".into(),
            ],
            ReplaceField::ReplaceSet | ReplaceField::Provides => {
                let mut v =
                    vec!["set: --replace-set N (0, the default, is the cumulative set)".into()];
                if self.replace == ReplaceField::ReplaceSet
                    && self.supersedes_field == Some("supersedes")
                {
                    v.push("set superseding others: --replace-set N --supersedes M[,M..]".into());
                }
                v
            }
        }
    }

    /// What the target has, in words, for messages that refuse an option.
    pub fn describe(&self) -> String {
        match (self.replace, self.supersedes_field) {
            (ReplaceField::None, _) => {
                "no atomic replace (klp_patch has no `replace` field)".into()
            }
            (ReplaceField::Bool, _) => {
                "`bool replace` (atomic replace of every patch, or stacking)".into()
            }
            (ReplaceField::ReplaceSet, Some(l)) => format!("`unsigned int replace_set` with `{l}`"),
            (ReplaceField::ReplaceSet, None) => "`unsigned int replace_set`".into(),
            (ReplaceField::Provides, Some(l)) => format!("`unsigned int provides` with `{l}`"),
            (ReplaceField::Provides, None) => "`unsigned int provides`".into(),
        }
    }
}

/// Collapses runs of whitespace to one space and drops comments, so that `unsigned int
/// \treplace_set;  /* ... */` matches the table's `unsigned int replace_set;`.
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
            out.push(' ');
            continue;
        }
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        rest = &rest[c.len_utf8()..];
        if c.is_whitespace() {
            if !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.replace(" ;", ";").replace("* ", "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAINLINE: &str =
        "struct klp_callbacks {\n\tint (*pre_patch)(struct klp_object *obj);\n};\n\
        struct klp_patch {\n\t/* external */\n\tstruct module *mod;\n\tstruct klp_object *objs;\n\
        \tstruct klp_state *states;\n\tbool replace;\n};\n\
        void *klp_shadow_get_or_alloc(void *obj, unsigned long id,";

    #[test]
    fn mainline_header_has_bool_replace_states_callbacks_shadow() {
        let api = LivepatchApi::parse(MAINLINE);
        assert_eq!(api.replace, ReplaceField::Bool);
        assert_eq!(api.supersedes_field, None);
        assert!(api.states && api.callbacks && api.shadow);
    }

    #[test]
    fn reference_kernel_has_replace_set_and_supersedes() {
        let h = MAINLINE.replace(
            "bool replace;",
            "unsigned int replace_set;   /* default 0 */\n\tconst unsigned int *supersedes;\n\tunsigned int nr_supersedes;",
        );
        let api = LivepatchApi::parse(&h);
        assert_eq!(api.replace, ReplaceField::ReplaceSet);
        assert_eq!(api.supersedes_field, Some("supersedes"));
    }

    #[test]
    fn replace_set_without_list_has_no_supersedes() {
        let api =
            LivepatchApi::parse(&MAINLINE.replace("bool replace;", "unsigned int\treplace_set;"));
        assert_eq!(api.replace, ReplaceField::ReplaceSet);
        assert_eq!(api.supersedes_field, None);
    }

    #[test]
    fn renamed_series_has_provides_and_obsoletes() {
        let h = MAINLINE.replace(
            "bool replace;",
            "unsigned int provides;\n\tconst unsigned int *obsoletes;",
        );
        let api = LivepatchApi::parse(&h);
        assert_eq!(api.replace, ReplaceField::Provides);
        assert_eq!(api.supersedes_field, Some("obsoletes"));
    }

    #[test]
    fn old_kernel_has_no_replace() {
        let api = LivepatchApi::parse("struct klp_patch {\n\tstruct module *mod;\n};");
        assert_eq!(api.replace, ReplaceField::None);
        assert!(!api.states && !api.callbacks && !api.shadow);
    }

    #[test]
    fn a_commented_out_declaration_does_not_count() {
        let api = LivepatchApi::parse(
            "struct klp_patch {\n/* unsigned int replace_set; */\n\tbool replace;\n};",
        );
        assert_eq!(api.replace, ReplaceField::Bool);
    }
}
