//! The release cycle of replace-set.md, every module built by the klp-build binary inside the
//! reference kernel's built tree (kbuild = the tree, symbols = its vmlinux) from the patches of
//! `testdata/patches/cycle/`, checked first by `klp-build check` and then by the kernel in one QEMU
//! boot (`testdata/kernel/release-cycle.sh`): Wed a cumulative 1a (set 1); Thu a hotfix 1b (set 2)
//! beside it; a hotfix 1x touching 1a's function, refused; Fri 1c replaces 1b; Mon a cumulative 2a
//! (set 1, supersedes 2, built with `--previous` 1a and 1c) replaces 1a and 1c in one transition;
//! a hotfix sharing 2a's state id, refused; Tue 2b (set 2) beside 2a; finally 1x with
//! `also_replace_sets=1` replaces set 1 at load.

mod support;

use std::path::{Path, PathBuf};
use support::run::{describe, klp_build};

fn patch(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/patches/cycle")
        .join(format!("{name}.patch"))
        .display()
        .to_string()
}

#[test]
fn release_cycle_on_the_replace_set_kernel() {
    let Some(kernel) = support::refkernel::ref_kernel("release_cycle_on_the_replace_set_kernel")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tree = kernel.tree.display().to_string();
    let vmlinux = kernel.vmlinux.display().to_string();
    // (module, patches, options)
    let modules: &[(&str, &[&str], &[&str])] = &[
        ("klp-1a", &["fix-a"], &["--replace-set", "1"]),
        ("klp-1b", &["fix-b"], &["--replace-set", "2"]),
        (
            "klp-1x",
            &["fix-x"],
            &["--replace-set", "3", "--state", "7:1"],
        ),
        ("klp-1c", &["fix-b2"], &["--replace-set", "2"]),
        (
            "klp-2a",
            &["fix-a", "fix-b2", "fix-c"],
            &[
                "--replace-set",
                "1",
                "--supersedes",
                "2",
                "--state",
                "7:1",
                "--previous",
                "klp-1a.ko",
                "--previous",
                "klp-1c.ko",
            ],
        ),
        (
            "klp-st",
            &["fix-d"],
            &["--replace-set", "4", "--state", "7:1"],
        ),
        ("klp-2b", &["fix-d"], &["--replace-set", "2"]),
    ];
    let mut built: Vec<PathBuf> = Vec::new();
    for (name, patches, options) in modules {
        let ko = format!("{name}.ko");
        let work = format!("work-{name}");
        let mut args: Vec<String> = patches
            .iter()
            .flat_map(|p| ["--diff".to_string(), patch(p)])
            .collect();
        args.extend(
            [
                "--source",
                &tree,
                "--symbols",
                &vmlinux,
                "--name",
                name,
                "-o",
                &ko,
                "--work-dir",
                &work,
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.extend(options.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = klp_build(dir, &refs);
        assert!(out.status.success(), "{name}: {}", describe(&out));
        // The manifest says the set the kernel will see.
        let inspect = klp_build(dir, &["inspect", &ko, "--report", "json"]);
        assert!(inspect.status.success(), "{}", describe(&inspect));
        let set = options[1];
        assert!(
            String::from_utf8_lossy(&inspect.stdout).contains(&format!("\"set\": {set}")),
            "{name}: inspect does not show set {set}:\n{}",
            describe(&inspect)
        );
        built.push(dir.join(ko));
    }

    // klp-build check answers before anything is loaded, as the kernel will.
    let x = klp_build(
        dir,
        &["check", "klp-1x.ko", "--against", "klp-1a.ko", "klp-1b.ko"],
    );
    assert_eq!(x.status.code(), Some(1), "{}", describe(&x));
    let text =
        String::from_utf8_lossy(&x.stdout).into_owned() + &String::from_utf8_lossy(&x.stderr);
    assert!(
        text.contains("check.func-overlap")
            && text.contains("klp-1a.ko")
            && text.contains("cmdline_proc_show"),
        "{}",
        describe(&x)
    );
    let st = klp_build(
        dir,
        &[
            "check",
            "klp-st.ko",
            "--against",
            "klp-1a.ko",
            "klp-1b.ko",
            "klp-1c.ko",
            "klp-2a.ko",
        ],
    );
    assert_eq!(st.status.code(), Some(1), "{}", describe(&st));
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("check.state-overlap"),
        "{}",
        describe(&st)
    );
    // Fri's hotfix v2 replaces fix-b by fix-b2: a drop the release says it means.
    let c = klp_build(
        dir,
        &["check", "klp-1c.ko", "--against", "klp-1a.ko", "klp-1b.ko"],
    );
    assert_eq!(c.status.code(), Some(1), "{}", describe(&c));
    assert!(
        String::from_utf8_lossy(&c.stdout).contains("check.fix-dropped"),
        "{}",
        describe(&c)
    );
    let c = klp_build(
        dir,
        &[
            "check",
            "klp-1c.ko",
            "--against",
            "klp-1a.ko",
            "klp-1b.ko",
            "--allow-drop",
            "fix-b",
        ],
    );
    assert_eq!(c.status.code(), Some(0), "{}", describe(&c));
    let b = klp_build(
        dir,
        &[
            "check",
            "klp-2b.ko",
            "--against",
            "klp-1a.ko",
            "klp-1c.ko",
            "klp-2a.ko",
        ],
    );
    assert_eq!(b.status.code(), Some(0), "{}", describe(&b));

    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/kernel/release-cycle.sh"),
    )
    .unwrap();
    let boot = support::refkernel::boot(kernel, "release-cycle", &built, &script, 600)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let failures: Vec<&str> = boot
        .log
        .lines()
        .filter(|l| l.starts_with("FAIL: "))
        .collect();
    assert!(
        boot.passed && failures.is_empty(),
        "failed checks: {failures:#?}\n{}",
        boot.log
    );
    for step in [
        "wed",
        "thu",
        "thu-x",
        "fri",
        "mon",
        "mon-state",
        "tue",
        "also",
    ] {
        assert!(
            boot.log.contains(&format!("PASS: {step}:")),
            "no check of step {step} passed:\n{}",
            boot.log
        );
    }
}

/// A `.h` change in the built tree rebuilds exactly the objects whose kbuild dep files name the
/// header (found independently here by reading every `.<object>.cmd` of the tree), and a change
/// that alters no function is "no functional change" (exit 3), the tree left as it was.
#[test]
fn header_patch_in_the_built_tree_rebuilds_exactly_its_dependents() {
    let Some(kernel) = support::refkernel::ref_kernel(
        "header_patch_in_the_built_tree_rebuilds_exactly_its_dependents",
    ) else {
        return;
    };
    let header = "fs/proc/internal.h";
    let mut want = std::collections::BTreeSet::new();
    let mut stack = vec![kernel.tree.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            } else if let Some(obj) = name
                .strip_prefix('.')
                .and_then(|n| n.strip_suffix(".o.cmd"))
            {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                if text
                    .lines()
                    .any(|l| l.trim_end_matches(" \\").trim().ends_with(header))
                {
                    let rel = p
                        .parent()
                        .unwrap()
                        .strip_prefix(&kernel.tree)
                        .unwrap()
                        .join(format!("{obj}.o"));
                    want.insert(rel);
                }
            }
        }
    }
    assert!(
        want.len() > 5,
        "the dep files name {header} in only {want:?}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let tree = kernel.tree.display().to_string();
    let vmlinux = kernel.vmlinux.display().to_string();
    let p = patch("header-unused");
    let out = klp_build(
        tmp.path(),
        &[
            "--diff",
            &p,
            "--source",
            &tree,
            "--symbols",
            &vmlinux,
            "--work-dir",
            "w",
            "-o",
            "x.ko",
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no functional change"),
        "{}",
        describe(&out)
    );
    let orig = tmp.path().join("w/2-rebuild/orig");
    let mut got = std::collections::BTreeSet::new();
    let mut stack = vec![orig.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "o") {
                got.insert(p.strip_prefix(&orig).unwrap().to_path_buf());
            }
        }
    }
    assert_eq!(got, want, "rebuilt objects vs the dependents of {header}");
}
