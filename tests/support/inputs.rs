//! klp-build's inputs on the kernel lab, as the stage tests and the CLI tests give them. Input: a
//! [`Lab`] and a patch of `testdata/patches/`. Output: the patch's path, the resolved [`Kernel`]
//! and the command line naming the lab's tree, headers, config and kallsyms. Invariant: the paths are
//! the lab's own, never copies, so every run on the lab takes the one tree lock of its tree.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use klp_build::kernel::{self, Kernel, KernelOptions};

use super::Lab;

/// `testdata/patches/<name>`.
pub fn patch(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/patches")
        .join(name)
}

/// The lab's tree resolved by the target stage with its headers (the config from `--kbuild`),
/// two make jobs.
pub fn target(lab: &Lab) -> Kernel {
    let k = kernel::resolve(&KernelOptions {
        source: lab.src.clone(),
        kbuild: Some(lab.kbuild.clone()),
        config: None,
        jobs: 2,
    })
    .unwrap_or_else(|e| panic!("resolving the lab target: {e:#}"));
    k.prepare(&mut klp_build::progress::Quiet)
        .unwrap_or_else(|e| panic!("preparing the lab target: {e:#}"));
    k
}

/// `--diff <patch> --source --kbuild --config --symbols` of the lab, `--work-dir <work>` and
/// `-o <ko>`: a full klp-build command line but for options of the test's own.
pub fn klp_build_args(lab: &Lab, patch: &Path, work: &Path, ko: &Path) -> Vec<OsString> {
    [
        ("--diff", patch),
        ("--source", &lab.src),
        ("--kbuild", &lab.kbuild),
        ("--config", &lab.config),
        ("--symbols", &lab.kallsyms),
        ("--work-dir", work),
        ("-o", ko),
    ]
    .into_iter()
    .flat_map(|(option, value)| [OsString::from(option), value.into()])
    .collect()
}
