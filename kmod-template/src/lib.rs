//! The C runtime core and Kbuild template of klp-build's livepatch modules, embedded so the
//! `klp-build` binary is self-contained. Input: the files under `c/`; output: their text and a
//! filled-in Kbuild file. Invariant: the C is the same for every module; all per-module data
//! comes from the tables klp-build writes (`klp_build_abi.h`) and the generated config header.

/// `klp_build_abi.h`: the table layout shared with klp-build's `src/contract/abi.rs`.
pub const ABI_H: &str = include_str!("../c/klp_build_abi.h");
/// `klp_build_core.c`: builds and enables the `struct klp_patch` from the tables at load time.
pub const CORE_C: &str = include_str!("../c/klp_build_core.c");
/// `klp-build.h`: the header for patch authors (shadow variable helpers, `KLP_BUILD_STATE`,
/// per-object callbacks, `KLP_BUILD_SYSCALL_DEFINEn`), put on the include path of the patched
/// build.
pub const KLP_BUILD_H: &str = include_str!("../c/klp-build.h");
/// `kpatch-macros.h`: kpatch-build's callback, hook, ignore and printk macros over
/// `klp-build.h`, for fixes written for kpatch-build.
pub const KPATCH_MACROS_H: &str = include_str!("../c/kpatch-macros.h");
/// `kpatch-syscall.h`: kpatch-build's `KPATCH_SYSCALL_DEFINEn` over `klp-build.h`.
pub const KPATCH_SYSCALL_H: &str = include_str!("../c/kpatch-syscall.h");
/// `livepatch_helpers.h`: the kernel's `<linux/livepatch_helpers.h>` interface (Linux 6.19+) over
/// `klp-build.h`, for trees without it.
pub const LIVEPATCH_HELPERS_H: &str = include_str!("../c/livepatch_helpers.h");
/// The Kbuild template, with `@NAME@` and `@OBJECTS@` placeholders; fill it with [`kbuild`].
pub const KBUILD_TEMPLATE: &str = include_str!("../c/Kbuild.in");

/// File name of [`ABI_H`] in the module's build dir.
pub const ABI_H_NAME: &str = "klp_build_abi.h";
/// File name of [`CORE_C`] in the module's build dir; the template links `klp_build_core.o`.
pub const CORE_C_NAME: &str = "klp_build_core.c";
/// File name of [`KLP_BUILD_H`] on the include path of the patched build.
pub const KLP_BUILD_H_NAME: &str = "klp-build.h";

/// The headers a fix may include, by the name it includes them with, and their text: each is
/// written beside the others, so that their own `#include "klp-build.h"` finds it.
pub const AUTHOR_HEADERS: &[(&str, &str)] = &[
    (KLP_BUILD_H_NAME, KLP_BUILD_H),
    ("kpatch-macros.h", KPATCH_MACROS_H),
    ("kpatch-syscall.h", KPATCH_SYSCALL_H),
    (LIVEPATCH_HELPERS_H_NAME, LIVEPATCH_HELPERS_H),
];
/// How a fix includes [`LIVEPATCH_HELPERS_H`]: `#include <linux/livepatch_helpers.h>`.
pub const LIVEPATCH_HELPERS_H_NAME: &str = "linux/livepatch_helpers.h";

/// The files a module's build dir needs besides the generated config header, the Kbuild file and
/// the prebuilt objects: `(file name, contents)`.
pub const CORE_FILES: &[(&str, &str)] = &[(ABI_H_NAME, ABI_H), (CORE_C_NAME, CORE_C)];

/// Object names the module's Kbuild file already uses for itself; prebuilt objects must not take
/// them: the core's object and the two kbuild makes for the module `name`.
pub fn reserved_objects(name: &str) -> [String; 3] {
    [
        "klp_build_core.o".to_string(),
        format!("{name}.o"),
        format!("{name}.mod.o"),
    ]
}

/// The Kbuild file of the module `name` (e.g. `livepatch-fix`, giving `livepatch-fix.ko`) that
/// links the runtime core with the prebuilt `objects` (file names relative to the module's build
/// dir). Names must be single make words; the caller checks them.
pub fn kbuild(name: &str, objects: &[&str]) -> String {
    KBUILD_TEMPLATE
        .replace("@NAME@", name)
        .replace("@OBJECTS@", &objects.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kbuild_fills_every_placeholder() {
        let k = kbuild("livepatch-fix", &["klp_tables.o", "cmdline.o"]);
        assert!(!k.contains('@'), "unfilled placeholder in:\n{k}");
        assert!(k.contains("obj-m := livepatch-fix.o\n"), "{k}");
        assert!(
            k.contains("livepatch-fix-y := klp_build_core.o klp_tables.o cmdline.o\n"),
            "{k}"
        );
    }

    #[test]
    fn core_includes_the_abi_header_by_its_file_name() {
        assert!(CORE_C.contains(&format!("#include \"{ABI_H_NAME}\"")));
        assert!(CORE_C.contains("MODULE_INFO(livepatch, \"Y\")"));
    }
}
