//! What the target kernel's livepatch API can do, read from its `include/linux/livepatch.h`.
//! Input: the header's text. Output: [`LivepatchApi`]. Invariant: detection is one table of rows
//! (`REPLACE_ROWS`), so a new kernel variant (the replace-set series was renamed once already)
//! is one more row, not a rewrite; a header that matches no row is a kernel without atomic replace.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::config::KConfig;

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

/// The replace variants, most specific first: a `struct klp_patch` member of this name and kind
/// selects the variant.
struct ReplaceRow {
    /// The member's name (`replace_set`).
    name: &'static str,
    /// What the member's type must be: an integer for a set number, `bool` for mainline.
    kind: MemberKind,
    field: ReplaceField,
    /// The companion list member (a pointer to integers), when the variant has one.
    list: Option<&'static str>,
}

/// The type classes a detection row accepts. A list on the mailing list spelled the set number
/// `u32 provides;` where the series had `unsigned int provides;`: any integer type is the same
/// field to the module's C core, which only assigns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemberKind {
    Integer,
    Bool,
    IntegerPointer,
}

/// Most specific first: the first row whose member the struct has wins.
const REPLACE_ROWS: &[ReplaceRow] = &[
    ReplaceRow {
        name: "replace_set",
        kind: MemberKind::Integer,
        field: ReplaceField::ReplaceSet,
        list: Some("supersedes"),
    },
    ReplaceRow {
        name: "provides",
        kind: MemberKind::Integer,
        field: ReplaceField::Provides,
        list: Some("obsoletes"),
    },
    ReplaceRow {
        name: "replace",
        kind: MemberKind::Bool,
        field: ReplaceField::Bool,
        list: None,
    },
];

impl LivepatchApi {
    /// Reads `<kbuild>/include/linux/livepatch.h`, falling back to `<source>/include/...` (a
    /// headers package has it; so does a source tree).
    /// With the target's `config`, a header that contradicts `CONFIG_KLP_HAS_PROVIDES` is refused.
    pub fn detect(
        kbuild: &Path,
        source: &Path,
        config: Option<&KConfig>,
    ) -> anyhow::Result<LivepatchApi> {
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
        let api = Self::parse(&String::from_utf8_lossy(&text));
        if let Some(config) = config {
            api.check_config(config, &path)?;
        }
        Ok(api)
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

    /// Detects the API from the header's text: the members of `struct klp_patch` decide the
    /// replace variant, whatever integer type spells the set number.
    pub fn parse(header: &str) -> LivepatchApi {
        let norm = normalise(header);
        let members = struct_members(&norm, "klp_patch");
        let member = |name: &str, kind: MemberKind| {
            members
                .iter()
                .any(|m| m.name == name && m.kind() == Some(kind))
        };
        let row = REPLACE_ROWS.iter().find(|r| member(r.name, r.kind));
        let replace = row.map_or(ReplaceField::None, |r| r.field);
        let supersedes_field = row
            .and_then(|r| r.list)
            .filter(|list| member(list, MemberKind::IntegerPointer));
        LivepatchApi {
            replace,
            supersedes_field,
            states: members
                .iter()
                .any(|m| m.name == "states" && m.ty == "struct klp_state" && m.pointer),
            callbacks: norm.contains("struct klp_callbacks {"),
            shadow: norm.contains("klp_shadow_get_or_alloc("),
        }
    }

    /// Checks the header's reading against the target's config: the renamed series announces
    /// itself with `CONFIG_KLP_HAS_PROVIDES=y`, and a header that then shows no `provides` member
    /// (an unusual spelling, a macro) must stop the build instead of emitting `.replace`, which
    /// would not compile against that kernel, or worse, a module of the wrong mode.
    pub fn check_config(&self, config: &KConfig, header: &Path) -> anyhow::Result<()> {
        let announced = matches!(
            config.options.get("CONFIG_KLP_HAS_PROVIDES"),
            Some(Some(v)) if v == "y"
        );
        if announced && self.replace != ReplaceField::Provides {
            anyhow::bail!(
                "{}: the target's config has CONFIG_KLP_HAS_PROVIDES=y, but `struct klp_patch` in this \
                 header shows {}; klp-build reads the member `provides` of any integer type (and \
                 `obsoletes`, a pointer to integers). Point --kbuild at the headers of the kernel \
                 that config belongs to",
                header.display(),
                self.describe()
            );
        }
        Ok(())
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

/// One member declaration of a struct, as far as detection needs it.
#[derive(Debug, PartialEq, Eq)]
struct Member {
    /// The type words, `const` dropped, one space between (`unsigned int`, `struct klp_state`).
    ty: String,
    /// The declarator is a pointer.
    pointer: bool,
    name: String,
}

impl Member {
    fn kind(&self) -> Option<MemberKind> {
        let words: Vec<&str> = self.ty.split(' ').collect();
        let integer = !words.is_empty()
            && (words.iter().all(|w| {
                matches!(
                    *w,
                    "unsigned" | "signed" | "int" | "short" | "long" | "char"
                )
            }) || (words.len() == 1 && is_integer_typedef(words[0])));
        let boolean = words == ["bool"] || words == ["_Bool"];
        match (self.pointer, integer, boolean) {
            (false, true, _) => Some(MemberKind::Integer),
            (true, true, _) => Some(MemberKind::IntegerPointer),
            (false, _, true) => Some(MemberKind::Bool),
            _ => None,
        }
    }
}

/// The kernel's fixed-width integer typedefs (`u32`, `__u32`, `s8`, `uint32_t`, `int64_t`).
fn is_integer_typedef(word: &str) -> bool {
    let w = word.trim_start_matches('_');
    let bits = match w.strip_prefix("uint").or_else(|| w.strip_prefix("int")) {
        Some(rest) => rest.strip_suffix("_t"),
        None => w.strip_prefix('u').or_else(|| w.strip_prefix('s')),
    };
    matches!(bits, Some("8" | "16" | "32" | "64"))
}

/// The member declarations of `struct NAME { ... };` in whitespace-normalised text: each
/// top-level `;`-ended declaration, with nested struct or union bodies skipped, and several
/// declarators (`int a, *b;`) split. Empty when the text has no such definition.
fn struct_members(norm: &str, name: &str) -> Vec<Member> {
    let open = format!("struct {name} {{");
    let Some(start) = norm.find(&open) else {
        return Vec::new();
    };
    let body = &norm[start + open.len()..];
    let mut members = Vec::new();
    let mut depth = 0usize;
    let mut decl = String::new();
    for c in body.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ';' if depth == 0 => {
                members.extend(declarators(&decl));
                decl.clear();
            }
            _ if depth == 0 => decl.push(c),
            _ => {}
        }
    }
    members
}

/// `const unsigned int *a, b : 3` → members `a` (pointer) and `b`, both `unsigned int`.
fn declarators(decl: &str) -> Vec<Member> {
    let mut parts = decl.split(',');
    let first = parts.next().unwrap_or("");
    // The type is the words of the first declarator before its name.
    let first = first.split(':').next().unwrap_or("").replace('*', " * ");
    let words: Vec<&str> = first
        .split_whitespace()
        .filter(|w| !matches!(*w, "const" | "volatile"))
        .collect();
    let Some(name_at) = words.iter().rposition(|w| *w != "*") else {
        return Vec::new();
    };
    let ty: Vec<&str> = words[..name_at]
        .iter()
        .copied()
        .filter(|w| *w != "*")
        .collect();
    if ty.is_empty() {
        return Vec::new();
    }
    let ty = ty.join(" ");
    let mut out = vec![Member {
        ty: ty.clone(),
        pointer: words[..name_at].contains(&"*"),
        name: clean_name(words[name_at]),
    }];
    for more in parts {
        let more = more.split(':').next().unwrap_or("").trim();
        let pointer = more.starts_with('*');
        out.push(Member {
            ty: ty.clone(),
            pointer,
            name: clean_name(more.trim_start_matches(['*', ' '])),
        });
    }
    out
}

/// A declarator's name without an array suffix (`sets[4]` → `sets`).
fn clean_name(word: &str) -> String {
    word.split('[').next().unwrap_or("").trim().to_string()
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
    /// The set number as the series, the list and other trees have spelled it: each is the
    /// same field to the C core, which only assigns it.
    #[test]
    fn the_set_number_is_read_whatever_its_integer_type() {
        for ty in [
            "unsigned int",
            "u32",
            "__u32",
            "unsigned",
            "uint32_t",
            "unsigned long",
            "u8",
            "int",
        ] {
            for (member, field) in [
                ("provides", ReplaceField::Provides),
                ("replace_set", ReplaceField::ReplaceSet),
            ] {
                let h = MAINLINE.replace("bool replace;", &format!("{ty}  {member};"));
                let api = LivepatchApi::parse(&h);
                assert_eq!(api.replace, field, "`{ty} {member};`");
            }
        }
    }

    #[test]
    fn the_list_is_read_whatever_its_integer_type_and_qualifiers() {
        for decl in [
            "const unsigned int *obsoletes;",
            "const u32 *obsoletes;",
            "u32 const * obsoletes;",
            "unsigned int *obsoletes;",
        ] {
            let h = MAINLINE.replace("bool replace;", &format!("u32 provides;\n\t{decl}"));
            let api = LivepatchApi::parse(&h);
            assert_eq!(api.replace, ReplaceField::Provides, "{decl}");
            assert_eq!(api.supersedes_field, Some("obsoletes"), "{decl}");
        }
    }

    #[test]
    fn a_member_of_another_struct_or_kind_does_not_count() {
        // `provides` in struct klp_state, and a pointer named `provides` in klp_patch: neither
        // is the set number.
        let h = format!(
            "struct klp_state {{ unsigned long id; unsigned int provides; }};\n{}",
            MAINLINE.replace("bool replace;", "bool replace;\n\tconst char *provides;")
        );
        assert_eq!(LivepatchApi::parse(&h).replace, ReplaceField::Bool);
        // A bool named replace_set is not a set number.
        let h = MAINLINE.replace("bool replace;", "bool replace_set;");
        assert_eq!(LivepatchApi::parse(&h).replace, ReplaceField::None);
    }

    #[test]
    fn nested_bodies_and_several_declarators_are_read() {
        let h = MAINLINE.replace(
            "bool replace;",
            "struct { int a; bool replace; } inner;\n\tunsigned int x, provides : 16;",
        );
        let api = LivepatchApi::parse(&h);
        assert_eq!(api.replace, ReplaceField::Provides);
        assert!(api.states);
    }

    #[test]
    fn a_config_announcing_provides_refuses_a_header_without_it() {
        let config = KConfig::parse("CONFIG_LIVEPATCH=y\nCONFIG_KLP_HAS_PROVIDES=y\n");
        let header = Path::new("include/linux/livepatch.h");
        let err = LivepatchApi::parse(MAINLINE)
            .check_config(&config, header)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("CONFIG_KLP_HAS_PROVIDES=y") && err.contains("`bool replace`"),
            "{err}"
        );
        let provides = LivepatchApi::parse(&MAINLINE.replace("bool replace;", "u32 provides;"));
        provides.check_config(&config, header).unwrap();
        // Without the option, any header is taken as it reads.
        let plain = KConfig::parse("CONFIG_LIVEPATCH=y\n");
        LivepatchApi::parse(MAINLINE)
            .check_config(&plain, header)
            .unwrap();
    }
}
