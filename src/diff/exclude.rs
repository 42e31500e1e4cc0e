//! Small predicates that keep kernel idioms out of the correlation and the data checks. Input: a
//! symbol or section name. Output: yes or no. Invariant: each rule names the kernel construct that
//! motivated it.

use super::names::strip_suffix;

/// Static locals that each copy of a function may own privately: a new copy in the livepatch
/// module is harmless and referring to the kernel's instance is impossible (they are often not in
/// kallsyms) or pointless. The list is objtool's `is_uncorrelated_static_local()` (klp-diff.c),
/// plus two names of kernels before that list existed:
///
/// - `__already_done`: `WARN_ONCE()`, `printk_once()` (`DO_ONCE_LITE` in `once_lite.h`).
/// - `__func__`: the function-name string of `__func__`.
/// - `__key`: the `struct lock_class_key` of `mutex_init()`, `spin_lock_init()`,
///   `init_waitqueue_head()`, `percpu_counter_init()`: one lockdep class per call site.
/// - `__warned`: `WARN_ON_ONCE()` before 6.x, `VM_WARN_ON_ONCE_PAGE()` (`mmdebug.h`).
/// - `_entry`, `_entry_ptr`: the `struct pi_entry` of every `printk()` with
///   `CONFIG_PRINTK_INDEX` (`__printk_index_emit` in `printk.h`), in `.printk_index`.
/// - `_rs`: the `ratelimit_state` of `printk_ratelimited()`.
/// - `descriptor`: the `struct _ddebug` of `pr_debug_ratelimited()`, `dev_dbg_ratelimited()`,
///   `net_dbg_ratelimited()` (`DEFINE_DYNAMIC_DEBUG_METADATA(descriptor, fmt)`).
/// - `CSWTCH`: gcc's switch-conversion lookup tables (`-ftree-switch-conversion`), constants.
/// - `__print_once` (`printk_once()` before 4.x) and `__UNIQUE_ID_ddebug` (`pr_debug()`
///   descriptors since 5.x, registered per module by dynamic debug): not in objtool's list.
///
/// And whatever is in `.data..once` (`.data.once` before 6.2), the flags `DO_ONCE()` and
/// `DO_ONCE_LITE()` keep, whatever their name (`___done` of `net_get_random_once()`).
pub fn is_uncorrelated_static_local(name: &str, section: &str) -> bool {
    if section == ".data..once" || section == ".data.once" {
        return true;
    }
    if base_is_ddebug(name) {
        return true;
    }
    // gcc names a static local `<var>.<N>`; a global `descriptor` is the kernel's own variable.
    let base = strip_suffix(name);
    base != name
        && matches!(
            base,
            "__already_done"
                | "__func__"
                | "__key"
                | "__warned"
                | "_entry"
                | "_entry_ptr"
                | "_rs"
                | "descriptor"
                | "CSWTCH"
                | "__print_once"
        )
}

/// `__UNIQUE_ID_ddebug412`: numbered by `__UNIQUE_ID()`, without a dot.
fn base_is_ddebug(name: &str) -> bool {
    name.starts_with("__UNIQUE_ID_ddebug")
}

/// Sections whose contents only run at boot (`__init`, `__initdata`): a livepatch cannot change
/// what already ran, and the kernel freed them.
pub fn is_init_section(name: &str) -> bool {
    name.starts_with(".init.") || name.starts_with(".exit.") || name.starts_with(".meminit.")
}

/// Data sections whose changes the diff stage checks (and refuses): variables, constants and
/// read-mostly data; not strings, which are compared through the code that uses them.
pub fn is_checked_data_section(name: &str) -> bool {
    [".data", ".bss", ".rodata"]
        .iter()
        .any(|p| name == *p || name.starts_with(&format!("{p}.")))
        && !name.contains(".str")
        && !name.starts_with(".rodata.cst")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates() {
        assert!(is_uncorrelated_static_local(
            "__already_done.12",
            ".data.once"
        ));
        assert!(is_uncorrelated_static_local(
            "__UNIQUE_ID_ddebug412",
            "__dyndbg"
        ));
        assert!(is_uncorrelated_static_local("__key.3", ".bss.__key.3"));
        assert!(is_uncorrelated_static_local("descriptor.7", "__dyndbg"));
        assert!(is_uncorrelated_static_local(
            "CSWTCH.123",
            ".rodata.CSWTCH.123"
        ));
        assert!(is_uncorrelated_static_local(
            "_entry_ptr.5",
            ".printk_index"
        ));
        assert!(is_uncorrelated_static_local("___done.2", ".data..once"));
        assert!(!is_uncorrelated_static_local(
            "rcu_normal",
            ".data.rcu_normal"
        ));
        assert!(!is_uncorrelated_static_local("descriptor_table", ".data"));
        assert!(!is_uncorrelated_static_local(
            "descriptor",
            ".data.descriptor"
        ));
        assert!(is_init_section(".init.text"));
        assert!(!is_init_section(".text.init_thing"));
        assert!(is_checked_data_section(".bss.counter"));
        assert!(is_checked_data_section(".data..read_mostly"));
        assert!(!is_checked_data_section(".rodata.cmdline_proc_show.str1.1"));
    }
}
