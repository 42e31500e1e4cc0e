//! How long the main job takes on the kernel lab, and how much memory: `cargo bench --bench
//! build_case1` runs the release `klp-build` (cargo builds it for the bench, as
//! `CARGO_BIN_EXE_klp-build` = `target/release/klp-build`) on each patch of [`PATCHES`] against
//! Debian's 6.1 tree, `KLP_BENCH_RUNS` times (default 5), and prints one table per patch: each
//! stage of the JSON report's `timings` as min / median / max, the process's wall time, and its
//! peak RSS. Each patch gets an object cache of its own (`KLP_BUILD_CACHE`): its first run is cold
//! (every original built by kbuild's make), the others warm (originals from the cache, patched
//! objects by kbuild's recorded commands), and the two are also reported apart. Figures, not
//! assertions; the goals printed are the design's "a module in well under a minute" (total under
//! 30 s) and a warm build under 3 s. Arguments after `--` select patches by name (`-- cmdline`).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The end-to-end cases: a builtin one-liner, a static call with sympos 6, a kernel/ file.
const PATCHES: &[&str] = &["cmdline.patch", "proc-tty.patch", "ksysfs.patch"];

/// The goal for the total of one build, in seconds.
const GOAL_SECS: f64 = 30.0;

/// The goal for the total of a warm build (the originals in the object cache), in seconds.
const WARM_GOAL_SECS: f64 = 3.0;

/// One klp-build run: its stage timings (report order), wall time and memory.
struct Sample {
    stages: Vec<(String, f64)>,
    wall: f64,
    /// VmHWM of the klp-build process itself, sampled from /proc every 10 ms (kB).
    own_hwm_kb: Option<u64>,
    /// `ru_maxrss` from wait4: the largest of klp-build and the children it waited for (make,
    /// gcc's cc1, ld), in kB.
    tree_maxrss_kb: u64,
    /// klp-build said it waited for another build's tree lock: its target or build stage then
    /// includes that wait (the lab tree is shared with the tests).
    waited: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes --bench; `cargo test --benches` does not, and must not spend minutes.
    if !args.iter().any(|a| a == "--bench") {
        println!("build_case1: a benchmark; run it with `cargo bench --bench build_case1`");
        return;
    }
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let Some(lab) = support::lab("build_case1") else {
        println!("build_case1: skipped, the kernel lab is absent (see the SKIP line above)");
        return;
    };
    let runs = match std::env::var("KLP_BENCH_RUNS") {
        Ok(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .unwrap_or_else(|| panic!("KLP_BENCH_RUNS={v:?}: give a positive number of runs")),
        Err(_) => 5,
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_klp-build"));
    println!(
        "klp-build {} on {} ({} runs each, goal: total under {GOAL_SECS:.0} s)",
        bin.display(),
        lab.release,
        runs
    );
    // The machine is shared: a load above its cores slows the gcc runs that dominate the build.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "load average {} on {cores} cores at the start",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for patch in PATCHES {
        if !filters.is_empty() && !filters.iter().any(|f| patch.contains(f.as_str())) {
            continue;
        }
        let cache = tempfile::tempdir().expect("a temporary dir for the object cache");
        let samples: Vec<Sample> = (1..=runs)
            .map(|i| {
                eprintln!("build_case1: {patch} run {i}/{runs}");
                run_once(bin, lab, patch, cache.path())
            })
            .collect();
        print_table(patch, &samples);
    }
}

/// Builds `patch` once with its own work dir and output, and measures it.
// The child is reaped by wait4 in `wait_measured`, which std's `Child::wait` cannot replace: it
// drops the rusage.
#[allow(clippy::zombie_processes)]
fn run_once(bin: &Path, lab: &support::Lab, patch: &str, cache: &Path) -> Sample {
    let tmp = tempfile::tempdir().expect("a temporary dir");
    let report = tmp.path().join("report.json");
    let log = tmp.path().join("stderr");
    let patch_path = support::inputs::patch(patch);
    let start = Instant::now();
    let child = Command::new(bin)
        .args(support::inputs::klp_build_args(
            lab,
            &patch_path,
            &tmp.path().join("work"),
            &tmp.path().join("out.ko"),
        ))
        .args(["--report", "json"])
        .env("KLP_BUILD_CACHE", cache)
        .stdin(Stdio::null())
        .stdout(File::create(&report).expect("create the report file"))
        .stderr(File::create(&log).expect("create the log file"))
        .spawn()
        .expect("run klp-build");
    let (status, own_hwm_kb, tree_maxrss_kb) = wait_measured(child.id());
    let wall = start.elapsed().as_secs_f64();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    if status != 0 {
        panic!("klp-build failed on {patch} (wait status {status:#x}):\n{stderr}");
    }
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("read the report"))
            .expect("the JSON report");
    let stages = report["timings"]
        .as_array()
        .expect("the report's timings array")
        .iter()
        .map(|t| {
            (
                t[0].as_str().expect("stage name").to_string(),
                t[1].as_f64().expect("stage seconds"),
            )
        })
        .collect();
    Sample {
        stages,
        wall,
        own_hwm_kb,
        tree_maxrss_kb,
        waited: stderr.contains("waiting for another build"),
    }
}

/// Waits for `pid`, sampling its VmHWM meanwhile; returns the wait status, the last VmHWM seen
/// and wait4's `ru_maxrss`. std's `Child::wait` drops the rusage, hence wait4 here.
fn wait_measured(pid: u32) -> (i32, Option<u64>, u64) {
    let status_file = format!("/proc/{pid}/status");
    let mut hwm = None;
    loop {
        // Read before reaping: once reaped, the pid (and its /proc entry) may be reused.
        if let Some(kb) = vm_hwm_kb(&status_file) {
            hwm = Some(kb);
        }
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: pid is our child, not yet reaped (only this loop waits for it); both
        // pointers are to live locals.
        let r = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage) };
        match r {
            0 => std::thread::sleep(Duration::from_millis(10)),
            r if r == pid as i32 => return (status, hwm, usage.ru_maxrss as u64),
            _ => panic!("wait4({pid}): {}", std::io::Error::last_os_error()),
        }
    }
}

/// `VmHWM` of a live process, in kB; `None` once it has exited (a zombie has no memory).
fn vm_hwm_kb(status_file: &str) -> Option<u64> {
    let text = std::fs::read_to_string(status_file).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Min, median and max of `v` (not empty).
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (v[0], median, v[n - 1])
}

fn print_table(patch: &str, samples: &[Sample]) {
    // Stages in the order of the first run's report; a stage missing from a run counts as absent.
    let names: Vec<&str> = samples[0].stages.iter().map(|(s, _)| s.as_str()).collect();
    println!("\n{patch} ({} runs)", samples.len());
    println!(
        "  {:<28} {:>9} {:>9} {:>9}",
        "stage (s)", "min", "median", "max"
    );
    let row = |label: &str, values: Vec<f64>| {
        if values.is_empty() {
            return;
        }
        let (lo, mid, hi) = spread(values);
        println!("  {label:<28} {lo:>9.2} {mid:>9.2} {hi:>9.2}");
    };
    for name in &names {
        let values = samples
            .iter()
            .filter_map(|s| s.stages.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
            .collect();
        row(name, values);
    }
    row("wall (process)", samples.iter().map(|s| s.wall).collect());
    let mib = |kb: u64| kb as f64 / 1024.0;
    row(
        "peak RSS klp-build (MiB)",
        samples
            .iter()
            .filter_map(|s| s.own_hwm_kb.map(mib))
            .collect(),
    );
    row(
        "peak RSS incl. gcc (MiB)",
        samples.iter().map(|s| mib(s.tree_maxrss_kb)).collect(),
    );
    let total: Vec<f64> = samples
        .iter()
        .map(|s| {
            s.stages
                .iter()
                .find(|(n, _)| n == "total")
                .map_or(s.wall, |(_, v)| *v)
        })
        .collect();
    let waited = samples.iter().filter(|s| s.waited).count();
    if waited > 0 {
        println!(
            "  {waited} of {} runs waited for another build's tree lock (counted in target/build)",
            samples.len()
        );
    }
    println!("  cold total (run 1)             {:>9.2}", total[0]);
    if total.len() > 1 {
        let (lo, mid, hi) = spread(total[1..].to_vec());
        println!("  warm total (runs 2..)          {lo:>9.2} {mid:>9.2} {hi:>9.2}");
        let verdict = if mid < WARM_GOAL_SECS {
            "met"
        } else {
            "NOT met"
        };
        println!("  goal warm total < {WARM_GOAL_SECS:.0} s: {verdict} (median {mid:.2} s, worst {hi:.2} s)");
    }
    let (_, median, worst) = spread(total);
    let verdict = if worst < GOAL_SECS { "met" } else { "NOT met" };
    println!(
        "  goal total < {GOAL_SECS:.0} s: {verdict} (median {median:.2} s, worst {worst:.2} s)"
    );
}
