//! Sympos of static symbols against the `/proc/kallsyms` captured from Debian's booted 6.1 kernel:
//! translation units rebuilt from the Debian source with `-ffunction-sections -fdata-sections`
//! must find their own instance among same-named statics of other units. Each expected value was
//! checked by hand against the listing's neighbours (quoted next to it).

mod kobj;
mod support;

use klp_build::kernel::symbols::{SymbolListing, SymposError, SymposRule, TranslationUnit};

/// The unit of `rel` (`kernel/kallsyms.o`), compiled in the prepared lab tree.
fn lab_unit(lab: &support::Lab, rel: &str) -> TranslationUnit {
    let obj = kobj::kernel_object(&lab.src, &lab.dir, rel);
    support::units::translation_unit(&obj, &rel.replace(".o", ".c"))
}

struct Case {
    object: &'static str,
    symbol: &'static str,
    sympos: u32,
    /// The neighbours of the expected line in the listing, which place it in this unit.
    evidence: &'static str,
}

const CASES: &[Case] = &[
    Case {
        object: "kernel/power/main.o",
        symbol: "state_show",
        sympos: 2,
        evidence: "wakeup_count_store wakeup_count_show state_store [state_show] pm_test_store",
    },
    Case {
        object: "kernel/kallsyms.o",
        symbol: "s_show",
        sympos: 2,
        evidence: "get_symbol_offset s_stop get_symbol_pos [s_show] bpf_iter_ksym_seq_stop",
    },
    Case {
        object: "mm/vmalloc.o",
        symbol: "s_show",
        sympos: 4,
        evidence:
            "register_vmap_purge_notifier unregister_vmap_purge_notifier [s_show] s_next s_start",
    },
    Case {
        object: "kernel/irq/irqdesc.o",
        symbol: "name_show",
        sympos: 1,
        evidence:
            "proc_dointvec_minmax_sysadmin actions_show [name_show] chip_name_show wakeup_show",
    },
    Case {
        object: "kernel/irq/irqdesc.o",
        symbol: "type_show",
        sympos: 3,
        evidence: "actions_show name_show chip_name_show wakeup_show [type_show] (3rd of 17)",
    },
    Case {
        object: "mm/huge_memory.o",
        symbol: "enabled_show",
        sympos: 2,
        evidence: "hpage_pmd_size_show defrag_show [enabled_show] defrag_store enabled_store",
    },
    Case {
        object: "fs/proc/task_mmu.o",
        symbol: "m_next",
        sympos: 4,
        evidence:
            "show_smap smaps_rollup_open smaps_pte_hole [m_next] pagemap_release proc_map_release",
    },
    Case {
        object: "kernel/module/procfs.o",
        symbol: "m_next",
        sympos: 1,
        evidence: "module_kallsyms_on_each_symbol m_show [m_next] m_stop m_start modules_open",
    },
    Case {
        object: "kernel/trace/trace_events_synth.o",
        symbol: "err_text",
        sympos: 2,
        evidence: "synth_event_funcs synth_event_ops lastcmd_mutex [err_text] trigger_hist_disable_cmd",
    },
    Case {
        object: "kernel/power/hibernate.o",
        symbol: "g",
        sympos: 2,
        evidence: "s2idle_wait_head mem_sleep_default mem_sleep_current [g] reserved_size_attr image_size_attr",
    },
];

#[test]
fn statics_of_rebuilt_units_find_their_instance() {
    let Some(lab) = support::lab("statics_of_rebuilt_units_find_their_instance") else {
        return;
    };
    kobj::prepared(lab);
    let listing = SymbolListing::load(&lab.kallsyms).unwrap();
    let mut failures = Vec::new();
    for case in CASES {
        let tu = lab_unit(lab, case.object);
        match listing.locate("vmlinux", case.symbol, &tu) {
            Ok(l) if l.sympos == case.sympos => {
                assert!(
                    matches!(l.rule, SymposRule::Neighbours { .. }),
                    "{}: {} chosen by {:?}",
                    case.object,
                    case.symbol,
                    l.rule
                );
                eprintln!(
                    "{} {}: sympos {} ({:?})",
                    case.object, case.symbol, l.sympos, l.rule
                );
            }
            Ok(l) => failures.push(format!(
                "{}: {}: got sympos {} ({:?}), expected {} ({})",
                case.object, case.symbol, l.sympos, l.rule, case.sympos, case.evidence
            )),
            Err(e) => failures.push(format!("{}: {}: {e}", case.object, case.symbol)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `last_cmd` is the only `.bss` symbol of trace_events_synth.c: in a listing without FILE symbols
/// nothing tells its line (sympos 1, after trace_events_filter.c's `ustring_per_cpu`) from
/// trace_events_hist.c's (sympos 2, after `last_cmd_loc`), so it must be refused, not guessed.
#[test]
fn lone_static_is_refused() {
    let Some(lab) = support::lab("lone_static_is_refused") else {
        return;
    };
    kobj::prepared(lab);
    let listing = SymbolListing::load(&lab.kallsyms).unwrap();
    let rel = "kernel/trace/trace_events_synth.o";
    let tu = lab_unit(lab, rel);
    match listing.sympos("vmlinux", "last_cmd", &tu) {
        Err(SymposError::Ambiguous(a)) => {
            assert_eq!(a.candidates.len(), 2);
            assert!(
                a.reason.contains("has no other symbol in .bss"),
                "{}",
                a.reason
            );
            let text = SymposError::Ambiguous(a).to_string();
            assert!(
                text.contains(
                    "between [perf_trace_buf, ustring_per_cpu] and [full_name.6, last_cmd_loc]"
                ),
                "{text}"
            );
            assert!(text.contains("FILE symbols"), "{text}");
        }
        other => panic!("last_cmd of {rel} must be refused, got {other:?}"),
    }
}

/// Every local symbol of a unit that the listing has more than once either resolves to an
/// instance surrounded by the unit's own symbols, or is refused; none may silently pick another
/// unit's instance. Checked on the units above: whatever is chosen must have, among its listing
/// neighbours, at least one other symbol of the same unit.
#[test]
fn every_duplicate_local_resolves_or_is_refused() {
    let Some(lab) = support::lab("every_duplicate_local_resolves_or_is_refused") else {
        return;
    };
    kobj::prepared(lab);
    let listing = SymbolListing::load(&lab.kallsyms).unwrap();
    let text = std::fs::read_to_string(&lab.kallsyms).unwrap();
    let lines: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.contains('['))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0], f[2])
        })
        .collect();
    let mut objects: Vec<&str> = CASES.iter().map(|c| c.object).collect();
    objects.dedup();
    let (mut resolved, mut refused) = (0, 0);
    for rel in objects {
        let tu = lab_unit(lab, rel);
        let own: std::collections::HashSet<&str> =
            tu.symbols.iter().map(|s| s.name.as_str()).collect();
        for s in tu.symbols.iter().filter(|s| s.local) {
            let count = lines.iter().filter(|(_, n)| *n == s.name).count();
            if count < 2 {
                continue;
            }
            match listing.locate("vmlinux", &s.name, &tu) {
                Ok(l) => {
                    resolved += 1;
                    let addr = format!("{:016x}", l.addr);
                    let at = lines
                        .iter()
                        .position(|(a, n)| *a == addr && *n == s.name)
                        .unwrap();
                    let near = lines[at.saturating_sub(3)..(at + 4).min(lines.len())]
                        .iter()
                        .filter(|(_, n)| *n != s.name && own.contains(n))
                        .count();
                    eprintln!(
                        "{rel}: {} ({}): sympos {} by {:?}",
                        s.name, s.section, l.sympos, l.rule
                    );
                    assert!(near >= 1, "{rel}: {} resolved to sympos {} ({:?}) with none of the unit's symbols near it", s.name, l.sympos, l.rule);
                }
                Err(SymposError::Ambiguous(a)) => {
                    refused += 1;
                    eprintln!("refused: {rel}: {}: {}", s.name, a.reason);
                    assert_eq!(a.candidates.len(), count, "{rel}: {}", s.name);
                }
                Err(e) => panic!("{rel}: {}: {e}", s.name),
            }
        }
    }
    eprintln!("duplicate locals: {resolved} resolved, {refused} refused");
    assert!(resolved > 20, "only {resolved} duplicate locals resolved");
}
