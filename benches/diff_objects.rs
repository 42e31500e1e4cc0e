//! How long `klp-build diff` takes on large kernel objects, and how much memory: `cargo bench
//! --bench diff_objects` compiles each object of [`OBJECTS`] from the lab's Debian 6.1 tree with
//! the kernel's own command line (kbuild's `.cmd` file, objtool included), once as it is and once
//! with a one-line change made in a copy of the source outside the tree, then runs the release
//! `klp-build diff ORIG PATCHED -o OUT` `KLP_BENCH_RUNS` times (default 5) and prints the object's
//! section, symbol and relocation counts, min / median / max wall time and the peak RSS. The goal
//! printed: under 50 ms and 100 MB per object, whatever its number of static locals (the scope
//! rule once resolved every relocation for every static: 61 s on one such object). Figures, not
//! assertions. Arguments after `--` select objects by path (`-- sched`).

#[path = "../tests/kobj/mod.rs"]
mod kobj;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use klp_build::elf::{read_file, Any, Content, ElfObject};

/// Large translation units with many static locals, and the one-line change made to each: the
/// first occurrence of the first string is replaced by the second. The ext4 change adds a
/// `pr_info_once()` near the top of the file, so gcc renumbers every later static local
/// (`__func__.N`, `__key.N`, `__already_done.N`) and the scope rule must pair them all.
const OBJECTS: &[(&str, &str, &str)] = &[
    (
        "fs/proc/base.o",
        "seq_printf(m, \"%d\\n\", task->patch_state);",
        "seq_printf(m, \"%d \\n\", task->patch_state);",
    ),
    (
        "kernel/sched/core.o",
        "seq_printf(sf, \"nr_periods %d\\n\", cfs_b->nr_periods);",
        "seq_printf(sf, \"nr_periods %d \\n\", cfs_b->nr_periods);",
    ),
    (
        "net/core/dev.o",
        "seq_printf(seq, \"ifindex:\\t%u\\n\", ifindex);",
        "seq_printf(seq, \"ifindex: \\t%u\\n\", ifindex);",
    ),
    (
        "fs/ext4/super.o",
        "\tif (le32_to_cpu(es->s_rev_level) > EXT4_GOOD_OLD_REV)\n\t\treturn;\n",
        "\tif (le32_to_cpu(es->s_rev_level) > EXT4_GOOD_OLD_REV)\n\t\treturn;\n\
         \tpr_info_once(\"ext4: updating to the dynamic revision\\n\");\n",
    ),
];

/// The goal for one diff (issue 8): under 50 ms and 100 MB per object on a 2-core machine.
const GOAL_SECS: f64 = 0.050;
const GOAL_MB: u64 = 100;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("diff_objects: a benchmark; run it with `cargo bench --bench diff_objects`");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(lab) = support::lab("diff_objects") else {
        println!("diff_objects: skipped, the kernel lab is absent (see the SKIP line above)");
        return;
    };
    let runs = std::env::var("KLP_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(5);
    kobj::prepared(lab);
    let bin = Path::new(env!("CARGO_BIN_EXE_klp-build"));
    let tmp = tempfile::tempdir().expect("a temporary dir");
    println!(
        "klp-build diff ({}), {runs} runs each, goal: under {:.0} ms and {GOAL_MB} MB",
        bin.display(),
        GOAL_SECS * 1000.0
    );
    for &(rel, from, to) in OBJECTS {
        if !filters.is_empty() && !filters.iter().any(|f| rel.contains(f.as_str())) {
            continue;
        }
        let orig = kobj::kernel_object(&lab.src, &lab.dir, rel);
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("diff_objects");
        let patched = match kobj::patched_object(&lab.src, &lab.dir, rel, from, to, &keep) {
            Ok(p) => p,
            Err(e) => {
                println!("{rel}: cannot build the patched object: {e}");
                continue;
            }
        };
        let (sections, symbols, relocs) = counts(&orig);
        let size = std::fs::metadata(&orig).map_or(0, |m| m.len());
        println!(
            "{rel}: {} KB, {sections} sections, {symbols} symbols, {relocs} relocations\n  {} -> {}",
            size / 1024,
            orig.display(),
            patched.display()
        );
        let mut walls = Vec::new();
        let mut rss = 0;
        for _ in 0..runs {
            let out = tmp.path().join("out.o");
            let (wall, maxrss, code) = run(bin, &orig, &patched, &out);
            if code != Some(0) {
                println!("  klp-build diff exited {code:?}");
            }
            walls.push(wall);
            rss = rss.max(maxrss);
        }
        walls.sort_by(f64::total_cmp);
        let median = walls[walls.len() / 2];
        println!(
            "  wall min {:.3} s / median {median:.3} s / max {:.3} s, peak RSS {} MB: {}",
            walls[0],
            walls[walls.len() - 1],
            rss / 1024,
            if median < GOAL_SECS && rss / 1024 < GOAL_MB {
                "goal met"
            } else {
                "GOAL MISSED"
            }
        );
    }
}

/// Sections, symbols and relocations of an object.
fn counts(path: &Path) -> (usize, usize, usize) {
    let o: ElfObject<Any> = read_file(path).expect("read the object");
    let relocs = o
        .sections()
        .iter()
        .map(|s| match &s.content {
            Content::Relocs { relocs, .. } => relocs.len(),
            _ => 0,
        })
        .sum();
    (o.sections().len(), o.symbols().len(), relocs)
}

/// One run: wall time, peak RSS in kB (`ru_maxrss` of the child), exit code.
// wait4 reaps the child (for its own rusage); `Child::wait` only runs when wait4 failed.
#[allow(clippy::zombie_processes)]
fn run(bin: &Path, orig: &Path, patched: &Path, out: &Path) -> (f64, u64, Option<i32>) {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .arg("diff")
        .arg(orig)
        .arg(patched)
        .arg("-o")
        .arg(out)
        .stdout(Stdio::null())
        .spawn()
        .expect("run klp-build");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not yet waited for; status and usage are valid pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = t.elapsed().as_secs_f64();
    let code = if r == pid && libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        let _ = child.wait();
        None
    };
    (wall, usage.ru_maxrss as u64, code)
}
