//! docs/errors.md names exactly the finding keys of `klp_build::keys::ALL`, each once with a
//! meaning, and lists every renamed key's old spelling.

use std::collections::BTreeSet;

use klp_build::keys::{ALL, RENAMED};

fn catalogue() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The keys of the `### \`key\`` headings, in order.
fn documented(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("### `")?.strip_suffix('`'))
        .map(str::to_string)
        .collect()
}

#[test]
fn errors_md_lists_exactly_the_keys_in_the_code() {
    let text = catalogue();
    let doc = documented(&text);
    let doc_set: BTreeSet<&str> = doc.iter().map(String::as_str).collect();
    assert_eq!(
        doc.len(),
        doc_set.len(),
        "a key is documented twice: {doc:?}"
    );
    let code: BTreeSet<&str> = ALL.iter().map(|k| k.as_str()).collect();
    let missing: Vec<_> = code.difference(&doc_set).collect();
    let extra: Vec<_> = doc_set.difference(&code).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/errors.md lacks {missing:?} and documents keys the code does not emit {extra:?}"
    );
}

#[test]
fn every_documented_key_says_what_it_is() {
    let text = catalogue();
    let mut sections = text.split("\n### `").skip(1);
    for section in sections.by_ref() {
        let (key, body) = section.split_once('\n').unwrap();
        let body = body.split("\n#").next().unwrap_or("").trim();
        let kind = ["Refusal", "Warning", "Note"]
            .iter()
            .any(|k| body.starts_with(k));
        assert!(
            kind,
            "{key} does not open with Refusal, Warning or Note: {body:?}"
        );
        assert!(body.len() > 40, "{key} has no meaning: {body:?}");
    }
}

#[test]
fn renamed_keys_are_listed_with_their_new_spelling() {
    let text = catalogue();
    for (old, new) in RENAMED {
        let row = format!("| `{old}` | `{new}` |");
        assert!(text.contains(&row), "docs/errors.md lacks the row {row}");
    }
}
