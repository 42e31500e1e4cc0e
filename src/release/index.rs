//! `index.json`, the release's contract: what CI, `collect`, the next release and `verify` read.
//! Input: the release, each target's outcome. Output: one JSON document. Invariant: versioned
//! (`schema_version`), keys sorted, no timestamps, no absolute or temporary paths (patch files are
//! relative to the release file, modules to the output directory), so two builds of the same
//! release and inputs are byte-identical.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::scan::ScannedFix;

/// The version of this document's layout; a reader refuses a newer one.
pub const SCHEMA_VERSION: u32 = 1;

/// The whole index.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Index {
    /// [`SCHEMA_VERSION`].
    #[schemars(extend("const" = SCHEMA_VERSION))]
    pub schema_version: u32,
    /// `klp-build <version>` that wrote it.
    pub tool: String,
    /// The release.
    pub release: ReleaseInfo,
    /// The fixes, in the release file's order.
    pub fixes: Vec<IndexFix>,
    /// Fixes of the previous release that this one no longer carries (allowed by `allow-drop`).
    #[serde(default)]
    pub dropped: Vec<String>,
    /// One entry per target, in the release file's order.
    pub targets: Vec<IndexTarget>,
}

/// The release's identity and replace mode.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReleaseInfo {
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: String,
    /// The module's file name without `.ko`.
    pub module: String,
    /// The previous release's version, when `previous` is set.
    pub previous: Option<String>,
    /// `replace-set`.
    pub replace_set: Option<u32>,
    /// `supersedes`.
    #[serde(default)]
    pub supersedes: Vec<u32>,
    /// `no-replace`.
    #[serde(default)]
    pub no_replace: bool,
    /// Every target of the release file, in its order (a part built with `--target` lists
    /// them all, so `collect` knows when the parts are complete).
    pub targets: Vec<String>,
}

/// One fix and its content.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndexFix {
    /// The fix's id.
    pub id: String,
    /// Its patches, relative to the release file, with their sha256.
    pub patches: Vec<IndexPatch>,
    /// Its backports: other patches for the kernels whose release matches.
    #[serde(default)]
    pub backports: Vec<IndexBackport>,
    /// Against the previous release: `new`, `same` or `revised`; absent without `previous`.
    pub change: Option<String>,
    /// For a revised fix, the previous release's sha256 of its patches.
    pub previous_sha256: Option<Vec<String>>,
}

/// A fix's patches for some kernels.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndexBackport {
    /// Glob patterns on the kernel release.
    pub kernels: Vec<String>,
    /// The patches.
    pub patches: Vec<IndexPatch>,
}

impl IndexFix {
    /// The sha256 of every patch of the fix, its own then its backports': a revision changes one.
    pub fn all_sha256(&self) -> Vec<String> {
        self.patches
            .iter()
            .chain(self.backports.iter().flat_map(|b| &b.patches))
            .map(|p| p.sha256.clone())
            .collect()
    }
}

/// One patch file.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndexPatch {
    /// Relative to the release file.
    pub file: String,
    /// sha256 of its bytes.
    pub sha256: String,
}

/// A target's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndexTarget {
    /// The kernel release (`uname -r`); for a tree target whose release could not be read, its
    /// name.
    pub kernel_release: String,
    /// How the release file names it (`debian = ...` or the tree's `name`).
    pub target: String,
    /// Its position among the release file's targets (0-based): the order of `targets`.
    pub position: usize,
    /// `built`, `not-affected`, `already-fixed`, `refused` or `unavailable`.
    pub status: String,
    /// The module, relative to the output directory.
    pub module: Option<String>,
    /// Its sha256.
    pub sha256: Option<String>,
    /// The fix ids it carries.
    pub fixes: Vec<String>,
    /// Why there is no module.
    pub reason: Option<String>,
    /// Per fix: applies, already-fixed, not-affected or refused, with why.
    pub scan: Vec<ScannedFix>,
    /// Against the previous release: the module it was checked against (relative to that
    /// release's directory), or why none.
    pub previous: Option<String>,
    /// The Debian package version the inputs came from.
    pub package_version: Option<String>,
    /// The module's signature as read back from it (`[sign]`): signer, key id, hash. Absent for
    /// an unsigned release, so its index is the same as before signing existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<crate::sign::Signature>,
    /// Bytes downloaded for this target by this run (not in the file: a warm run's differ).
    #[serde(skip)]
    pub downloaded: u64,
    /// Wall time of this target in this run, seconds (not in the file either).
    #[serde(skip)]
    pub seconds: f64,
}

/// The statuses a target can have, in the order `release build`'s summary lists them.
pub const STATUSES: &[&str] = &[
    "built",
    "not-affected",
    "already-fixed",
    "refused",
    "unavailable",
];

impl Index {
    /// The document, keys sorted (serde_json's `Value` keeps objects in a `BTreeMap`).
    pub fn to_json(&self) -> anyhow::Result<String> {
        let v = serde_json::to_value(self)?;
        Ok(serde_json::to_string_pretty(&v)? + "\n")
    }

    /// Reads `dir/index.json`.
    pub fn read(dir: &Path) -> anyhow::Result<Index> {
        let path = dir.join("index.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading {}: is {} the output directory of a `klp-build release build`?",
                path.display(),
                dir.display()
            )
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        let version = v.get("schema_version").and_then(serde_json::Value::as_u64);
        if version != Some(u64::from(SCHEMA_VERSION)) {
            anyhow::bail!(
                "{}: schema_version {:?}, this klp-build reads {SCHEMA_VERSION}; use the klp-build that wrote it",
                path.display(),
                version
            );
        }
        serde_json::from_value(v)
            .with_context(|| format!("{}: not a release index", path.display()))
    }

    /// Whether any target failed (`refused` or `unavailable`): the release's exit status is 1.
    pub fn failed(&self) -> bool {
        self.targets
            .iter()
            .any(|t| t.status == "refused" || t.status == "unavailable")
    }
}

/// sha256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
