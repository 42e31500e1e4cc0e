//! Whether the tests run under CI, and the one way a test that cannot run says so. Input: the
//! `CI` environment variable. Output: [`under_ci`], [`skip`]. Invariant: every test file decides
//! the same way (`CI=true`, `CI=1` or any value but empty, `0` and `false`), so a test never
//! fails under one spelling of CI and silently skips under another.
#![allow(dead_code)]

use std::io::Write;

/// CI is set to something that means yes.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// A test that cannot run here: under CI it fails with `why`; by hand it says `SKIP test: why`
/// on the process's stderr directly, which libtest does not capture, so the note is seen.
pub fn skip(test: &str, why: &str) {
    assert!(!under_ci(), "{test}: {why} (required under CI)");
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}
