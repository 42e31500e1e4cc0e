//! Which changed files a livepatch can carry. Input: a file's path in the tree and how the patch
//! changes it. Output: [`FileVerdict`]: used, ignored (not compiled into the x86_64 kernel), or refused
//! with what to do instead. Invariant: only `.c` and `.h` files that are compiled into the running
//! kernel or its modules are used; everything else is named, never silently patched.

use std::path::{Component, Path};

/// What the patch stage does with one changed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileVerdict {
    /// A C source or header of the kernel: applied and rebuilt.
    Use,
    /// Not compiled into the target (documentation, user-space tools, other architectures):
    /// skipped, with the reason said on stderr.
    Ignore(&'static str),
    /// Cannot be livepatched: the reason and what to do instead.
    Refuse(String),
}

/// How the patch changes a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Modified in place.
    Modify,
    /// Created (`--- /dev/null`).
    Create,
    /// Deleted (`+++ /dev/null`).
    Delete,
    /// Renamed or copied.
    Rename,
    /// A binary change.
    Binary,
}

/// The verdict for `path` (relative to the source tree) changed as `change`.
pub fn verdict(path: &Path, change: Change) -> FileVerdict {
    let comps: Vec<&str> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    if path.is_absolute()
        || path.components().any(|c| matches!(c, Component::ParentDir))
        || comps.is_empty()
    {
        return FileVerdict::Refuse(
            "the path leaves the source tree; make the patch with paths relative to the tree's top"
                .into(),
        );
    }
    let name = comps[comps.len() - 1];
    let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
    let top = comps[0];

    // Documentation, and files outside any build: fix patches carry them along (a selftest for
    // the fix under tools/testing/selftests, a Documentation/ update).
    if matches!(top, "Documentation" | "LICENSES")
        || matches!(ext, "rst" | "txt" | "md" | "yaml" | "json")
        || matches!(
            name,
            "MAINTAINERS" | "CREDITS" | "README" | ".mailmap" | ".gitignore"
        )
    {
        return FileVerdict::Ignore("documentation, not compiled");
    }
    if top == "tools" {
        return FileVerdict::Ignore("user-space tools and selftests, not part of the kernel");
    }
    // The target is x86_64 (design.md): other architectures' files are not compiled into it.
    if top == "arch" && comps.get(1).is_some_and(|a| *a != "x86") && comps.len() > 2 {
        return FileVerdict::Ignore("another architecture, not compiled for x86_64");
    }

    let what_to_do = "a livepatch replaces C functions of the running kernel";
    match change {
        Change::Modify => {}
        Change::Create => {
            return FileVerdict::Refuse(format!(
                "a new file is not built or included by the target's objects; {what_to_do}: put the new code into the \
                 patched .c file"
            ))
        }
        Change::Delete => return FileVerdict::Refuse(format!("deleting a file: {what_to_do}; drop this part of the patch")),
        Change::Rename => return FileVerdict::Refuse(format!("renaming a file: {what_to_do}; drop this part of the patch")),
        Change::Binary => return FileVerdict::Refuse(format!("a binary change: {what_to_do}; drop this part of the patch")),
    }

    // Code that does not run as the kernel's functions: ftrace cannot redirect it.
    let not_kernel = if comps.contains(&"vdso") {
        // arch/x86/entry/vdso/vclock_gettime.c, lib/vdso/gettimeofday.c: mapped into every
        // process and run in user space.
        Some("vDSO code runs in user space, outside the kernel's functions")
    } else if top == "arch"
        && matches!(
            comps.get(2).copied(),
            Some("boot" | "realmode" | "purgatory")
        )
    {
        // arch/x86/boot (setup and decompressor), arch/x86/realmode (the trampoline), and
        // arch/x86/purgatory (kexec) are separate images that run before or beside the kernel.
        Some("this code is a separate image (boot, real mode or kexec purgatory), not part of the running kernel")
    } else if matches!(top, "scripts" | "usr") {
        Some("build-time host tools and the initramfs builder are not part of the running kernel")
    } else {
        None
    };
    if let Some(why) = not_kernel {
        return FileVerdict::Refuse(format!(
            "{why}; drop this part of the patch, or ship the fix in a kernel update"
        ));
    }

    match ext {
        "c" | "h" => FileVerdict::Use,
        "S" | "s" => FileVerdict::Refuse(
            "assembly cannot be livepatched (its code has no ftrace call site to redirect); rewrite the fix in C, or \
             ship it in a kernel update"
                .into(),
        ),
        "rs" => FileVerdict::Refuse("Rust code is not supported yet; ship the fix in a kernel update".into()),
        _ if name.starts_with("Kconfig") || matches!(name, "Makefile" | "Kbuild") || ext == "mk" => FileVerdict::Refuse(format!(
            "a configuration or build change: {what_to_do}, it cannot change how the kernel was configured or built; drop \
             this part of the patch"
        )),
        _ => FileVerdict::Refuse(format!("not a C source or header: {what_to_do}; drop this part of the patch")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(p: &str) -> FileVerdict {
        verdict(Path::new(p), Change::Modify)
    }

    #[test]
    fn c_and_headers_are_used() {
        assert_eq!(v("fs/proc/cmdline.c"), FileVerdict::Use);
        assert_eq!(v("include/linux/seq_file.h"), FileVerdict::Use);
        assert_eq!(v("arch/x86/kernel/cpu/bugs.c"), FileVerdict::Use);
        assert_eq!(v("lib/string.c"), FileVerdict::Use);
    }

    #[test]
    fn unpatchable_code_is_refused() {
        for p in [
            "arch/x86/lib/memcpy_64.S",
            "arch/x86/entry/vdso/vclock_gettime.c",
            "lib/vdso/gettimeofday.c",
            "arch/x86/boot/compressed/misc.c",
            "arch/x86/realmode/rm/wakemain.c",
            "arch/x86/purgatory/purgatory.c",
            "scripts/mod/modpost.c",
            "fs/proc/Makefile",
            "fs/Kconfig.binfmt",
            "rust/kernel/lib.rs",
            "../etc/passwd",
        ] {
            assert!(matches!(v(p), FileVerdict::Refuse(_)), "{p}: {:?}", v(p));
        }
        assert!(matches!(
            verdict(Path::new("fs/proc/new.c"), Change::Create),
            FileVerdict::Refuse(_)
        ));
        assert!(matches!(
            verdict(Path::new("fs/proc/old.c"), Change::Delete),
            FileVerdict::Refuse(_)
        ));
    }

    #[test]
    fn files_outside_the_x86_kernel_are_ignored() {
        for p in [
            "Documentation/admin-guide/x.rst",
            "tools/testing/selftests/x/test.c",
            "arch/arm64/kernel/x.c",
            "MAINTAINERS",
        ] {
            assert!(matches!(v(p), FileVerdict::Ignore(_)), "{p}: {:?}", v(p));
        }
        // Deleting documentation is as harmless as changing it.
        assert!(matches!(
            verdict(Path::new("Documentation/x.rst"), Change::Delete),
            FileVerdict::Ignore(_)
        ));
    }
}
