//! What `check` and `inspect` know about one livepatch module. Input: a `.ko` (its
//! `.klp_build.manifest`, or for modules of other tools what [`super::foreign`] reads from the ELF),
//! or a [`Manifest`] the build pipeline holds. Output: [`Livepatch`]. Invariant: a fact the module
//! does not carry is `None` or listed in [`Livepatch::unknown`], never filled with a default that a
//! rule could mistake for knowledge.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use super::foreign::{self, ForeignModule};
use crate::contract::manifest::{self, Manifest, ManifestFunc};
use crate::contract::spec::{ReplaceMode, StateSpec};
use crate::elf::{read_file, Any, ElfObject};
use crate::patch::Fix;

/// One livepatch module as the load rules see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Livepatch {
    /// How reports name it: the path as given on the command line.
    pub file: String,
    /// The module's name as the kernel knows it.
    pub name: String,
    /// The kernel release it is built for (first word of vermagic).
    pub kernel_release: String,
    /// `klp-build <version>`, or `another tool` for a module without `.klp_build.manifest`, whose
    /// facts are read from its ELF.
    pub built_by: String,
    /// How it relates to the patches enabled before it.
    pub replace: Replace,
    /// Its `klp_state`s; `None` when not known.
    pub states: Option<Vec<StateSpec>>,
    /// Callbacks per object (`vmlinux: pre_patch=fn`); `None` when not recorded (the manifest of
    /// schema 2 does not record them).
    pub callbacks: Option<Vec<String>>,
    /// Its fixes; `None` when not recorded (other tools).
    pub fixes: Option<Vec<Fix>>,
    /// The functions it patches; `None` when not known.
    pub functions: Option<Vec<ManifestFunc>>,
    /// For modules of other tools: the `.klp.sym` symbols its klp relocations resolve.
    pub klp_symbols: Vec<foreign::KlpSymbol>,
    /// What is not known about it, one sentence each.
    pub unknown: Vec<String>,
    /// The manifest as stored, for klp-build's modules.
    pub manifest: Option<Manifest>,
}

/// The replace behaviour, as far as the module tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Replace {
    /// Recorded by klp-build.
    Mode {
        /// The mode.
        mode: ReplaceMode,
    },
    /// Read from the ELF of another tool's module: the word at `klp_patch`+24, which is `bool
    /// replace` on kernels without replace sets and the set number on kernels with them; the rules
    /// decide which from the other modules of the check.
    Word {
        /// The word.
        word: u32,
    },
    /// Not readable.
    Unknown,
}

impl Replace {
    /// One line for reports.
    pub fn describe(&self) -> String {
        match self {
            Replace::Mode { mode } => mode.describe(),
            Replace::Word { word: 0 } => {
                "replace = false (stacked), read from klp_patch; on a kernel with replace sets: set 0".into()
            }
            Replace::Word { word: 1 } => {
                "replace = true (cumulative), read from klp_patch; on a kernel with replace sets: set 1".into()
            }
            Replace::Word { word } => format!(
                "replace word {word} read from klp_patch: a replace set on a kernel with replace sets (supersedes not known)"
            ),
            Replace::Unknown => "not known".into(),
        }
    }
}

impl Livepatch {
    /// The module as klp-build's manifest describes it; `file` is how reports name it.
    pub fn from_manifest(file: &str, m: &Manifest) -> Livepatch {
        Livepatch {
            file: file.to_string(),
            name: m.name.clone(),
            kernel_release: m.kernel_release.clone(),
            built_by: format!("klp-build {}", m.tool_version),
            replace: Replace::Mode {
                mode: m.replace.clone(),
            },
            states: Some(m.states.clone()),
            callbacks: None,
            fixes: Some(m.fixes.clone()),
            functions: Some(m.functions.clone()),
            klp_symbols: Vec::new(),
            unknown: Vec::new(),
            manifest: Some(m.clone()),
        }
    }

    /// Reads the module at `ko`: its manifest, or what its ELF says when another tool built it.
    pub fn read(ko: &Path) -> anyhow::Result<Livepatch> {
        let file = ko.display().to_string();
        let obj: ElfObject<Any> = read_file(ko)?;
        if let Some(sec) = obj.section_by_name(manifest::SECTION) {
            let m = manifest::parse(obj.data(sec))
                .with_context(|| format!("{file}: malformed {}", manifest::SECTION))?;
            return Ok(Livepatch::from_manifest(&file, &m));
        }
        let f = foreign::read(ko, &obj)?;
        if !f.livepatch {
            anyhow::bail!(
                "{file}: not a livepatch module: its .modinfo has no livepatch=Y (and it has no {}); give \
                 check and inspect livepatch modules",
                manifest::SECTION
            );
        }
        Ok(Livepatch::from_foreign(&file, f))
    }

    fn from_foreign(file: &str, f: ForeignModule) -> Livepatch {
        let name = f.name.clone().unwrap_or_else(|| {
            Path::new(file).file_stem().map_or_else(String::new, |s| {
                crate::kernel::normalize_modname(&s.to_string_lossy())
            })
        });
        let kernel_release = f
            .vermagic
            .as_deref()
            .and_then(|v| v.split_whitespace().next())
            .unwrap_or("")
            .to_string();
        let mut unknown = Vec::new();
        if f.name.is_none() {
            unknown.push("its name: .modinfo has no name=; the file name is used".into());
        }
        if f.vermagic.is_none() {
            unknown.push("its kernel release: .modinfo has no vermagic=".into());
        }
        unknown.extend(f.unknown.iter().cloned());
        let (replace, states, callbacks, functions) = match &f.patch {
            Some(p) => {
                // A module klp-build did not build has no manifest: its mode is the word at
                // klp_patch+24 where it can be read, and nothing where it cannot (a patch struct
                // at the end of its section, a relocated or truncated .data).
                unknown.push(match (&p.replace_word, &p.replace_unread) {
                    (Some(word), _) => format!(
                        "its exact replace mode: the word at offset 24 of its klp_patch ({}) is {word}, which \
                         is `bool replace` or a replace set depending on the kernel it was built for, and a list of superseded \
                         sets is not read",
                        p.at
                    ),
                    (None, why) => format!(
                        "its replace mode: the word at offset 24 of its klp_patch ({}) could not be read ({}), so whether it replaces \
                         other livepatches is not known; it is taken to replace nothing",
                        p.at,
                        why.as_deref().unwrap_or("no reason given")
                    ),
                });
                (
                    p.replace_word
                        .map_or(Replace::Unknown, |word| Replace::Word { word }),
                    Some(p.states.clone()),
                    Some(
                        p.objects
                            .iter()
                            .flat_map(|o| {
                                o.callbacks.iter().map(move |c| format!("{}: {c}", o.name))
                            })
                            .collect(),
                    ),
                    Some(
                        p.objects
                            .iter()
                            .flat_map(|o| {
                                o.functions.iter().map(move |fun| ManifestFunc {
                                    object: o.name.clone(),
                                    name: fun.name.clone(),
                                    sympos: fun.sympos,
                                })
                            })
                            .collect(),
                    ),
                )
            }
            None => {
                unknown
                    .push("its replace mode, states and callbacks: no klp_patch was read".into());
                (Replace::Unknown, None, None, None)
            }
        };
        let mut klp_symbols = f.klp_symbols.clone();
        // Objects only the klp relocation sections name (a patch built at run time).
        for o in &f.klp_rela_objects {
            if !klp_symbols.iter().any(|s| &s.object == o) {
                klp_symbols.push(foreign::KlpSymbol {
                    object: o.clone(),
                    name: String::new(),
                    sympos: 0,
                });
            }
        }
        Livepatch {
            file: file.to_string(),
            name,
            kernel_release,
            built_by: "another tool".into(),
            replace,
            states,
            callbacks,
            fixes: None,
            functions,
            klp_symbols,
            unknown,
            manifest: None,
        }
    }
}
