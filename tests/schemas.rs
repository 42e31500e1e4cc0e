//! The JSON Schemas under `schemas/`: (a) each file is exactly what the Rust types generate now
//! (`KLP_BLESS=1 cargo test --test schemas` rewrites them, and the test then fails, so a
//! regeneration is never silent), and (b) real outputs validate against them: the manifests in the
//! `inspect --report json` goldens, a `--dry-run --report json` on the lab's tree, and the
//! index.json of a release built on it (the built report is checked in `workdir_resume`, which
//! builds one).

mod support;

use std::path::{Path, PathBuf};

use klp_build::schemas;
use support::run::{describe, klp_build};
use support::schemas::assert_valid;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn committed_schemas_are_what_the_types_generate() {
    let dir = root().join("schemas");
    let bless = std::env::var_os("KLP_BLESS").is_some();
    let mut stale = Vec::new();
    let generated = schemas::all();
    for s in &generated {
        let want = schemas::render(s);
        let path = dir.join(&s.file);
        let got = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            if bless {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &want).unwrap();
            }
            stale.push(s.file.clone());
        }
    }
    let mut extra = Vec::new();
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !generated.iter().any(|s| s.file == name) {
            if bless {
                std::fs::remove_file(e.path()).unwrap();
            }
            extra.push(name);
        }
    }
    assert!(
        stale.is_empty() && extra.is_empty(),
        "schemas/ is not what the types generate: differ {stale:?}, not generated {extra:?}; \
         KLP_BLESS=1 cargo test --test schemas rewrites them{}",
        if bless { " (done: run again)" } else { "" }
    );
}

#[test]
fn each_schema_is_versioned_and_names_its_version() {
    for s in schemas::all() {
        let id = s.schema["$id"].as_str().unwrap_or_default();
        assert!(
            id.ends_with(&format!(":v{}", s.version)),
            "{}: $id {id}",
            s.file
        );
        // The document's own schema_version: at the root, or in each branch of a root `anyOf`
        // (the report's built, not built and dry run), not in the documents it embeds.
        let branch = |b: &serde_json::Value| -> serde_json::Value {
            match b["$ref"].as_str().and_then(|r| r.strip_prefix("#/$defs/")) {
                Some(name) => s.schema["$defs"][name].clone(),
                None => b.clone(),
            }
        };
        let roots: Vec<serde_json::Value> = match s.schema["anyOf"].as_array() {
            Some(branches) => branches.iter().map(branch).collect(),
            None => vec![s.schema.clone()],
        };
        let versions: Vec<serde_json::Value> = roots
            .iter()
            .filter_map(|r| r.pointer("/properties/schema_version/const").cloned())
            .collect();
        assert_eq!(
            versions.len(),
            roots.len(),
            "{}: a document without schema_version",
            s.file
        );
        assert!(!versions.is_empty(), "{}: no schema_version", s.file);
        assert!(
            versions.iter().all(|v| *v == serde_json::json!(s.version)),
            "{}: {versions:?}",
            s.file
        );
    }
}

/// The JSON documents of a golden file's `$ klp-build ... --report json ...` sections.
fn golden_json(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for section in text.split("\n$ ").filter(|s| s.contains("--report json")) {
        let body = section.split_once('\n').map_or("", |(_, b)| b);
        let end = body.find("\n$ ").unwrap_or(body.len());
        if let Ok(v) = serde_json::from_str(&body[..end]) {
            out.push(v);
        }
    }
    out
}

#[test]
fn manifests_of_the_inspect_goldens_match_the_manifest_schema() {
    let mut checked = 0;
    for e in std::fs::read_dir(root().join("testdata/check")).unwrap() {
        let path = e.unwrap().path();
        for doc in golden_json(&path) {
            if let Some(m) = doc.get("manifest").filter(|m| !m.is_null()) {
                assert_valid("manifest", m, &path.display().to_string());
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no manifest in testdata/check/*.golden");
}

#[test]
fn a_wrong_document_is_refused() {
    let bad = serde_json::json!({ "schema_version": 2, "tool_version": "x" });
    let schema = support::schemas::schema("manifest");
    let v = jsonschema::validator_for(&schema).unwrap();
    assert!(!v.is_valid(&bad));
    let mut old = serde_json::json!({ "schema_version": 1 });
    old["x"] = 1.into();
    assert!(
        !jsonschema::validator_for(&support::schemas::schema("index"))
            .unwrap()
            .is_valid(&old)
    );
}

#[test]
fn a_dry_run_report_matches_the_report_schema() {
    let Some(lab) = support::lab("a_dry_run_report_matches_the_report_schema") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ko = tmp.path().join("livepatch-cmdline.ko");
    let mut args = support::inputs::klp_build_args(
        lab,
        &support::inputs::patch("cmdline.patch"),
        &tmp.path().join("klp-tmp"),
        &ko,
    );
    args.extend(["--dry-run".into(), "--report".into(), "json".into()]);
    let o = klp_build(tmp.path(), &args);
    assert!(o.status.success(), "{}", describe(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid("report", &doc, "klp-build --dry-run --report json");
    assert_eq!(doc["outcome"], "dry_run");
}

#[test]
fn a_release_index_matches_the_index_schema() {
    let Some(lab) = support::lab("a_release_index_matches_the_index_schema") else {
        return;
    };
    // A fix the lab's kernel already has: the scan finds it, nothing is compiled.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    std::fs::create_dir_all(d.join("fixes")).unwrap();
    std::fs::copy(
        root().join("testdata/release/fixes/cmdline-newline.patch"),
        d.join("fixes/cmdline-newline.patch"),
    )
    .unwrap();
    let toml = format!(
        "name = \"acme\"\nversion = \"1\"\n[[fix]]\nid = \"OLD-1\"\npatches = [\"fixes/cmdline-newline.patch\"]\n\
         [[target]]\nname = \"lab\"\nsource = \"{}\"\nkbuild = \"{}\"\nconfig = \"{}\"\nsymbols = \"{}\"\nmodules = \"{}\"\n",
        lab.src.display(),
        lab.kbuild.display(),
        lab.config.display(),
        lab.kallsyms.display(),
        lab.modules.display()
    );
    std::fs::write(d.join("release.toml"), toml).unwrap();
    let o = klp_build(d, &["release", "build", "release.toml", "-o", "out"]);
    assert!(o.status.success(), "{}", describe(&o));
    let text = std::fs::read_to_string(d.join("out/index.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_valid("index", &doc, "index.json");
    assert_eq!(doc["targets"][0]["status"], "already-fixed", "{doc:#}");
}
