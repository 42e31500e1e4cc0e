//! `klp-build check` and its exit codes without the lab: 2 for a command line clap refuses, 1
//! with the file named for a module that cannot be read or is no livepatch.

use std::process::Command;

fn check(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_klp-build"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_without_against_is_a_usage_error() {
    let (code, err) = check(&["new.ko"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--against"), "{err}");
}

#[test]
fn unreadable_or_non_livepatch_modules_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.ko");
    let (code, err) = check(&[
        missing.to_str().unwrap(),
        "--against",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("missing.ko"), "{err}");

    let text = dir.path().join("text.ko");
    std::fs::write(&text, "not an ELF file\n").unwrap();
    let (code, err) = check(&[text.to_str().unwrap(), "--against", text.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("text.ko") && err.contains("ELF"), "{err}");
}
