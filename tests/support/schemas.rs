//! The committed JSON Schemas (`schemas/*.schema.json`), for checking real outputs against them.
//! Input: a schema's name and a document. Output: a panic naming every violation and where it is.

use std::path::PathBuf;

/// The committed schema `schemas/<name>.schema.json`.
pub fn schema(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schemas")
        .join(format!("{name}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Panics unless `doc` (`what` names it) is valid against the committed schema `name`.
pub fn assert_valid(name: &str, doc: &serde_json::Value, what: &str) {
    let schema = schema(name);
    let validator = jsonschema::validator_for(&schema)
        .unwrap_or_else(|e| panic!("schemas/{name}.schema.json is not a valid schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("  at {}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what} does not match schemas/{name}.schema.json:\n{}\n{doc:#}",
        errors.join("\n")
    );
}
