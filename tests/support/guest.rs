//! Programs and report readings the boot tests share: a static helper binary for the guest (its
//! busybox lacks the applet) and the golden list of functions a build report patched.
//! Invariant: built with the host's gcc into the caller's dir, never into the source tree.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A static program for the guest, `setdomain NAME`: setdomainname(NAME), printing the error.
/// busybox has no applet that calls it, and the fixes that change `kernel/sys.c`'s
/// setdomainname() are checked through it.
pub fn setdomain_program(dir: &Path) -> PathBuf {
    let src = dir.join("setdomain.c");
    let bin = dir.join("setdomain");
    std::fs::write(
        &src,
        r#"#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	if (setdomainname(argv[1], strlen(argv[1]))) {
		printf("setdomainname: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}
"#,
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", src.display()));
    let st = Command::new("gcc")
        .args(["-static", "-Os", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("run gcc");
    assert!(
        st.success(),
        "gcc -static failed for {}: install libc6-dev",
        src.display()
    );
    bin
}

/// `object:function,sympos` of every function a build report (`--report json`) patched,
/// sorted, one per line: the golden list of the end-to-end fixes.
pub fn patched_functions(report: &serde_json::Value) -> String {
    let mut v: Vec<String> = report["objects"]
        .as_array()
        .expect("report.objects")
        .iter()
        .flat_map(|o| o["funcs"].as_array().expect("funcs").clone())
        .map(|f| {
            format!(
                "{}:{},{}",
                f["object"].as_str().unwrap_or_default(),
                f["name"].as_str().unwrap_or_default(),
                f["sympos"]
            )
        })
        .collect();
    v.sort();
    v.join("\n") + "\n"
}
