//! The JSON Schemas of klp-build's machine-readable outputs, generated from the types that write
//! them: the build report (`--report json`: built, not built, or `--dry-run`), the module
//! manifest (`.klp_build.manifest`), a release's `index.json` and `verify`'s report. Input: none. Output: one
//! [`SchemaFile`] per document. Invariant: each schema's `$id` and `schema_version` carry the
//! version its document says in `schema_version`, and `schemas/*.schema.json` are exactly what
//! this generates (`tests/schemas.rs`; `KLP_BLESS=1` rewrites them).

use schemars::{JsonSchema, Schema};
use serde::Serialize;

use crate::contract::manifest::{self, Manifest};
use crate::contract::REPORT_SCHEMA_VERSION;
use crate::dry_run::DryRun;
use crate::pipeline::BuildReport;
use crate::present::NotBuilt;
use crate::release::index::{self, Index};
use crate::status::{self, Status};
use crate::verify::{self, VerifyReport};

/// One generated schema.
pub struct SchemaFile {
    /// Its file name under `schemas/` (`report.schema.json`).
    pub file: String,
    /// The version of the document it describes.
    pub version: u32,
    /// The schema.
    pub schema: serde_json::Value,
}

/// Every document `--report json` of the build writes, told apart by `outcome`.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
// Never built: the type exists for its schema, so the variants' sizes do not matter.
#[allow(dead_code, clippy::large_enum_variant)]
enum Report<'a> {
    /// `outcome: built`.
    Built(BuildReport),
    /// `outcome: no_change` or `refused`.
    NotBuilt(NotBuilt<'a>),
    /// `outcome: dry_run`.
    DryRun(DryRun),
}

/// Every schema klp-build has, in a stable order.
pub fn all() -> Vec<SchemaFile> {
    vec![
        file::<Report>(
            "report",
            REPORT_SCHEMA_VERSION,
            "The JSON report of a build (`klp-build --diff ... --report json`): a built module, a run \
             that built nothing (no change, refused), or the plan of `--dry-run`.",
        ),
        file::<Manifest>(
            "manifest",
            manifest::SCHEMA_VERSION,
            "The manifest klp-build stores in a module's `.klp_build.manifest` section (`readelf -p \
             .klp_build.manifest`, and `manifest` in `klp-build inspect --report json`).",
        ),
        file::<Index>(
            "index",
            index::SCHEMA_VERSION,
            "A release's index.json (`klp-build release build`/`collect`).",
        ),
        file::<Status>(
            "status",
            status::SCHEMA_VERSION,
            "The JSON report of `klp-build status [NEW.ko] --report json`: the running kernel's \
             livepatches and the prediction for NEW.ko.",
        ),
        file::<VerifyReport>(
            "verify",
            verify::SCHEMA_VERSION,
            "The JSON report of `klp-build verify MODULE.ko --kernel KERNEL --report json`: the \
             verdict, its reasons, each step in the guest, blocking tasks, kernel complaints and \
             the console.",
        ),
    ]
}

fn file<T: JsonSchema>(name: &'static str, version: u32, description: &str) -> SchemaFile {
    let mut schema: Schema = schemars::SchemaGenerator::default().into_root_schema_for::<T>();
    schema.insert(
        "$id".into(),
        format!("urn:klp-build:schema:{name}:v{version}").into(),
    );
    schema.insert(
        "title".into(),
        format!("klp-build {name}, version {version}").into(),
    );
    schema.insert("description".into(), description.into());
    SchemaFile {
        file: format!("{name}.schema.json"),
        version,
        schema: schema.to_value(),
    }
}

/// The text of a schema file: pretty JSON, keys sorted, a newline at the end.
pub fn render(s: &SchemaFile) -> String {
    serde_json::to_string_pretty(&sorted(&s.schema)).unwrap_or_default() + "\n"
}

/// `v` with every object's keys in order, whichever map serde_json was built with.
fn sorted(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            serde_json::Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
        x => x.clone(),
    }
}
