//! Small predicates that keep kernel idioms out of the correlation and the data checks. Input: a
//! symbol or section name. Output: yes or no. Invariant: each rule names the kernel construct that
//! motivated it.

use super::correlate::strip_suffix;

/// Static locals that each copy of a function may own privately: a new copy in the livepatch
/// module is harmless and referring to the kernel's instance is impossible (they are often not in
/// kallsyms) or pointless. objtool's `is_uncorrelated_static_local()` keeps the same list:
/// `__already_done` (`WARN_ONCE`, `printk_once`), `__warned` (`WARN_ON_ONCE` before 6.x),
/// `__print_once`, `__func__` (the function-name string), `_rs` (`printk_ratelimited` state),
/// `__UNIQUE_ID_ddebug` (`pr_debug` descriptors, registered per module by dynamic debug).
pub fn is_uncorrelated_static_local(name: &str) -> bool {
    let base = strip_suffix(name);
    matches!(
        base,
        "__already_done" | "__warned" | "__print_once" | "__func__" | "_rs" | "__UNIQUE_ID_ddebug"
    ) || base.starts_with("__func__")
        || base.starts_with("__UNIQUE_ID_ddebug")
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
        assert!(is_uncorrelated_static_local("__already_done.12"));
        assert!(is_uncorrelated_static_local("__UNIQUE_ID_ddebug412"));
        assert!(!is_uncorrelated_static_local("rcu_normal"));
        assert!(is_init_section(".init.text"));
        assert!(!is_init_section(".text.init_thing"));
        assert!(is_checked_data_section(".bss.counter"));
        assert!(is_checked_data_section(".data..read_mostly"));
        assert!(!is_checked_data_section(".rodata.cmdline_proc_show.str1.1"));
    }
}
