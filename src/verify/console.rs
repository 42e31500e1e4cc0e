//! The guest's console, read back. Input: the console text of one boot (kernel messages and the
//! `KLP-VERIFY:` lines of [`super::guest`]). Output: [`Console`]: steps with their times, the
//! tasks that blocked a transition with their stacks, the scripts' output, the taint before and
//! after, and the kernel's complaints (WARNING, BUG, Oops, Call Trace, panic) with their lines.
//! Invariant: parsing never fails; a line it does not know is only console text, and what is
//! missing (no `done` line: the guest died or hung) is visible as missing.

use serde::Serialize;

use super::guest::MARK;

/// One step of the guest's sequence.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Step {
    /// `modules`, `setup`, `load`, `transition`, `check`, `disable`, `unload`.
    pub name: String,
    /// `ok`, `failed`, or `unfinished` (begun, never ended: the guest died in it).
    pub status: String,
    /// Seconds from its start to its end, by the guest's clock.
    pub seconds: Option<f64>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// A task that a transition waited for when its time ran out.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct BlockingTask {
    /// The step whose transition it blocked (`transition` or `disable`).
    pub step: String,
    /// Its process.
    pub pid: u32,
    /// Its thread.
    pub tid: u32,
    /// Its command name.
    pub comm: String,
    /// Its kernel stack, innermost first, as `/proc/<pid>/task/<tid>/stack` shows it.
    pub stack: Vec<String>,
}

/// A kernel complaint on the console.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Problem {
    /// `warning`, `bug`, `oops`, `panic`, `call-trace`, `hung-task`.
    pub kind: String,
    /// Whether it came after the guest's first step began (else the kernel said it while booting,
    /// before anything of the module ran).
    pub during_verify: bool,
    /// Its lines, timestamps stripped, up to its end marker (or 60 lines).
    pub lines: Vec<String>,
}

/// A script's run.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ScriptRun {
    /// Its exit status.
    pub exit: Option<i32>,
    /// What it printed (with any kernel messages printed meanwhile).
    pub output: Vec<String>,
}

/// What a console says.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Console {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// The tasks that blocked a transition.
    pub blocking: Vec<BlockingTask>,
    /// The kernel's complaints.
    pub problems: Vec<Problem>,
    /// `/proc/sys/kernel/tainted` before the first step and after the last.
    pub taint_before: Option<u64>,
    /// See `taint_before`.
    pub taint_after: Option<u64>,
    /// `uname -r` in the guest.
    pub uname: Option<String>,
    /// The setup script's run.
    pub setup: Option<ScriptRun>,
    /// The check script's run.
    pub check: Option<ScriptRun>,
    /// The guest reached its last line.
    pub done: bool,
}

/// A console line without its `[    1.234567]` timestamp (and `\r`).
fn strip_time(line: &str) -> &str {
    let l = line.trim_end_matches('\r');
    if let Some(rest) = l.strip_prefix('[') {
        if let Some((stamp, after)) = rest.split_once(']') {
            if stamp.trim().chars().all(|c| c.is_ascii_digit() || c == '.') {
                return after.strip_prefix(' ').unwrap_or(after);
            }
        }
    }
    l
}

/// The kind of complaint a line opens, if it opens one.
fn opens_problem(l: &str) -> Option<&'static str> {
    let l = l.trim_start();
    if l.starts_with("WARNING:") {
        Some("warning")
    } else if l.starts_with("BUG:") || l.starts_with("kernel BUG at") {
        Some("bug")
    } else if l.starts_with("Oops:") || l.contains("] Oops:") {
        Some("oops")
    } else if l.starts_with("Kernel panic") {
        Some("panic")
    } else if l.starts_with("INFO: task ") && l.contains("blocked for more than") {
        Some("hung-task")
    } else if l == "Call Trace:" {
        Some("call-trace")
    } else {
        None
    }
}

/// Whether a line closes the complaint of `kind` that is open: a WARNING, BUG, Oops or panic
/// ends with the kernel's `---[ end ...` line (after its trace's `</TASK>`); a bare stack dump
/// (`dump_stack()`) has no end line and ends with its `</TASK>`.
fn closes_problem(kind: &str, l: &str) -> bool {
    l.starts_with("---[ end") || (kind == "call-trace" && l.starts_with("</TASK>"))
}

impl Console {
    /// Reads a console.
    pub fn parse(text: &str) -> Console {
        let mut c = Console::default();
        let mut started = false;
        let mut open: Option<Problem> = None;
        let mut output: Option<(String, Vec<String>)> = None;
        let mut begun: Vec<(String, f64)> = Vec::new();
        for raw in text.lines() {
            let l = strip_time(raw);
            if let Some(rest) = l.trim_start().strip_prefix(MARK) {
                started = true;
                c.protocol(rest.trim(), &mut begun, &mut output);
                continue;
            }
            if let Some((_, lines)) = output.as_mut() {
                lines.push(l.to_string());
            }
            if let Some(mut p) = open.take() {
                // A Call Trace inside a WARNING or BUG belongs to it; another opening line
                // starts a complaint of its own.
                if opens_problem(l).is_some() && l.trim() != "Call Trace:" {
                    c.problems.push(p);
                } else {
                    p.lines.push(l.to_string());
                    if closes_problem(&p.kind, l.trim()) || p.lines.len() >= 60 {
                        c.problems.push(p);
                    } else {
                        open = Some(p);
                    }
                    continue;
                }
            }
            if let Some(kind) = opens_problem(l) {
                open = Some(Problem {
                    kind: kind.to_string(),
                    during_verify: started,
                    lines: vec![l.to_string()],
                });
            }
        }
        if let Some(p) = open {
            c.problems.push(p);
        }
        if let Some((name, lines)) = output {
            // Never ended: the guest died while the script ran.
            let run = ScriptRun {
                exit: None,
                output: lines,
            };
            c.set_script(&name, run);
        }
        for (name, _) in begun {
            c.steps.push(Step {
                name,
                status: "unfinished".into(),
                seconds: None,
                reason: Some("the guest never ended this step (see the console)".into()),
            });
        }
        c
    }

    fn protocol(
        &mut self,
        rest: &str,
        begun: &mut Vec<(String, f64)>,
        output: &mut Option<(String, Vec<String>)>,
    ) {
        let mut w = rest.splitn(2, ' ');
        let (verb, args) = (w.next().unwrap_or(""), w.next().unwrap_or("").trim());
        match verb {
            "begin" => {
                let mut a = args.split_whitespace();
                if let (Some(name), Some(t)) = (a.next(), a.next().and_then(|t| t.parse().ok())) {
                    begun.push((name.to_string(), t));
                }
            }
            "ok" | "fail" => {
                let mut a = args.splitn(3, ' ');
                let name = a.next().unwrap_or("").to_string();
                let t: Option<f64> = a.next().and_then(|t| t.parse().ok());
                let reason = a.next().map(str::to_string);
                let start = begun
                    .iter()
                    .position(|(n, _)| *n == name)
                    .map(|i| begun.remove(i).1);
                self.steps.push(Step {
                    name,
                    status: if verb == "ok" { "ok" } else { "failed" }.into(),
                    seconds: match (start, t) {
                        (Some(s), Some(e)) => Some(((e - s) * 100.0).round() / 100.0),
                        _ => None,
                    },
                    reason,
                });
            }
            "blocked" => {
                let mut a = args.splitn(3, ' ');
                let pid = a.next().and_then(|p| p.parse().ok());
                let tid = a.next().and_then(|p| p.parse().ok());
                if let (Some(pid), Some(tid)) = (pid, tid) {
                    self.blocking.push(BlockingTask {
                        step: begun.last().map(|b| b.0.clone()).unwrap_or_default(),
                        pid,
                        tid,
                        comm: a.next().unwrap_or("").to_string(),
                        stack: Vec::new(),
                    });
                }
            }
            "stack" => {
                if let Some((tid, frame)) = args.split_once(' ') {
                    if let Some(t) = self
                        .blocking
                        .iter_mut()
                        .rev()
                        .find(|t| tid.parse() == Ok(t.tid))
                    {
                        t.stack.push(frame.trim().to_string());
                    }
                }
            }
            "taint-before" => self.taint_before = args.parse().ok(),
            "taint-after" => self.taint_after = args.parse().ok(),
            "uname" => self.uname = Some(args.to_string()),
            "output-begin" => *output = Some((args.to_string(), Vec::new())),
            "output-end" => {
                let mut a = args.split_whitespace();
                let name = a.next().unwrap_or("").to_string();
                let exit = a.next().and_then(|e| e.parse().ok());
                if let Some((_, lines)) = output.take() {
                    self.set_script(
                        &name,
                        ScriptRun {
                            exit,
                            output: lines,
                        },
                    );
                }
            }
            "done" => self.done = true,
            _ => {}
        }
    }

    fn set_script(&mut self, name: &str, run: ScriptRun) {
        match name {
            "setup" => self.setup = Some(run),
            _ => self.check = Some(run),
        }
    }
}

/// The kernel's taint flags (`Documentation/admin-guide/tainted-kernels.rst`), bit by bit.
pub const TAINT_LETTERS: &[(u32, char, &str)] = &[
    (0, 'P', "proprietary module"),
    (1, 'F', "module force loaded"),
    (2, 'S', "kernel running on an out-of-spec system"),
    (3, 'R', "module force unloaded"),
    (4, 'M', "machine check"),
    (5, 'B', "bad page"),
    (6, 'U', "taint requested by userspace"),
    (7, 'D', "kernel died (oops or BUG)"),
    (8, 'A', "ACPI table overridden"),
    (9, 'W', "kernel issued a warning"),
    (10, 'C', "staging driver"),
    (11, 'I', "platform firmware bug worked around"),
    (12, 'O', "out-of-tree module"),
    (13, 'E', "unsigned module"),
    (14, 'L', "soft lockup"),
    (15, 'K', "kernel live patched"),
    (16, 'X', "auxiliary taint"),
    (17, 'T', "built with struct randomization"),
    (18, 'N', "in-kernel test"),
    (
        19,
        'J',
        "userspace used a mutating debug operation in fwctl",
    ),
];

/// Taints a livepatch module brings by itself: live patched, out-of-tree, and unsigned (on a
/// kernel that does not enforce signatures).
pub const EXPECTED_TAINTS: u64 = (1 << 15) | (1 << 12) | (1 << 13);

/// The letters and meanings of the bits of `mask`.
pub fn describe_taint(mask: u64) -> Vec<String> {
    (0..64)
        .filter(|b| mask & (1u64 << b) != 0)
        .map(|b| {
            TAINT_LETTERS
                .iter()
                .find(|(bit, _, _)| *bit == b)
                .map_or_else(
                    || format!("bit {b}"),
                    |(_, letter, what)| format!("{letter} ({what})"),
                )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WARN: &str = "\
[    0.500000] Run /init as init process
KLP-VERIFY: taint-before 0
KLP-VERIFY: uname 6.1.0-57-amd64
KLP-VERIFY: begin modules 1.00
KLP-VERIFY: ok modules 1.01
KLP-VERIFY: begin load 1.02
[    1.100000] livepatch: enabling patch 'livepatch_ksysfs_warn'
KLP-VERIFY: ok load 1.30
KLP-VERIFY: begin transition 1.31
KLP-VERIFY: ok transition 2.31
KLP-VERIFY: begin check 2.40
KLP-VERIFY: output-begin check
[    2.500000] ------------[ cut here ]------------
[    2.500001] klp-build: rcu_expedited=2 clamped to 1
[    2.500002] WARNING: CPU: 0 PID: 60 at kernel/ksysfs.c:169 rcu_expedited_store+0x5a/0x80 [livepatch_ksysfs_warn]
[    2.500003] Modules linked in: livepatch_ksysfs_warn(OEK)
[    2.500004] Call Trace:
[    2.500005]  <TASK>
[    2.500006]  kernfs_fop_write_iter+0x11c/0x1f0
[    2.500007]  </TASK>
[    2.500008] ---[ end trace 0000000000000000 ]---
done writing
KLP-VERIFY: output-end check 0
KLP-VERIFY: ok check 2.60
KLP-VERIFY: begin disable 2.61
KLP-VERIFY: begin unload 3.00
KLP-VERIFY: taint-after 45568
";

    #[test]
    fn a_warning_its_trace_steps_times_and_taints_are_read() {
        let c = Console::parse(WARN);
        assert_eq!(c.taint_before, Some(0));
        assert_eq!(c.taint_after, Some(45568));
        assert_eq!(c.uname.as_deref(), Some("6.1.0-57-amd64"));
        assert!(!c.done, "no done line: the guest did not finish");
        let names: Vec<(&str, &str)> = c
            .steps
            .iter()
            .map(|s| (s.name.as_str(), s.status.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("modules", "ok"),
                ("load", "ok"),
                ("transition", "ok"),
                ("check", "ok"),
                ("disable", "unfinished"),
                ("unload", "unfinished")
            ]
        );
        assert_eq!(c.steps[2].seconds, Some(1.0));
        assert_eq!(c.problems.len(), 1, "{:#?}", c.problems);
        let p = &c.problems[0];
        assert_eq!(p.kind, "warning");
        assert!(p.during_verify);
        assert!(p.lines[0].starts_with("WARNING: CPU: 0 PID: 60 at kernel/ksysfs.c:169"));
        assert!(p.lines.iter().any(|l| l.contains("kernfs_fop_write_iter")));
        assert!(p.lines.last().unwrap().starts_with("---[ end trace"));
        let check = c.check.unwrap();
        assert_eq!(check.exit, Some(0));
        assert!(check.output.contains(&"done writing".to_string()));
        // 45568 = W (bit 9) + O (12) + E (13) + K (15).
        let unexpected = 45568 & !EXPECTED_TAINTS;
        assert_eq!(describe_taint(unexpected), ["W (kernel issued a warning)"]);
    }

    #[test]
    fn a_blocked_transition_names_its_tasks_and_stacks() {
        let c = Console::parse(
            "KLP-VERIFY: begin transition 5.00\n\
             KLP-VERIFY: blocked 71 71 cat\n\
             KLP-VERIFY: stack 71 [<0>] pipe_read+0x31b/0x460\n\
             KLP-VERIFY: stack 71 [<0>] vfs_read+0x2b5/0x2f0\n\
             KLP-VERIFY: fail transition 15.00 the transition did not finish in 10 s\n\
             KLP-VERIFY: done 1\n",
        );
        assert!(c.done);
        assert_eq!(c.steps[0].status, "failed");
        assert_eq!(c.steps[0].seconds, Some(10.0));
        assert_eq!(
            c.steps[0].reason.as_deref(),
            Some("the transition did not finish in 10 s")
        );
        assert_eq!(
            c.blocking,
            [BlockingTask {
                step: "transition".into(),
                pid: 71,
                tid: 71,
                comm: "cat".into(),
                stack: vec![
                    "[<0>] pipe_read+0x31b/0x460".into(),
                    "[<0>] vfs_read+0x2b5/0x2f0".into()
                ]
            }]
        );
    }

    #[test]
    fn a_warning_while_booting_is_told_apart_from_one_during_verify() {
        let c = Console::parse(
            "[    0.1] WARNING: CPU: 0 PID: 1 at arch/x86/kernel/fpu.c:1 x\n[    0.2] ---[ end trace 1 ]---\n\
             KLP-VERIFY: taint-before 512\n",
        );
        assert_eq!(c.problems.len(), 1);
        assert!(!c.problems[0].during_verify);
    }

    #[test]
    fn garbage_is_console_text_and_never_a_panic() {
        for text in [
            "",
            "KLP-VERIFY:",
            "KLP-VERIFY: ok",
            "KLP-VERIFY: begin x notatime",
            "KLP-VERIFY: blocked x y z",
            "KLP-VERIFY: stack",
            "KLP-VERIFY: output-end",
            "[ 1.0",
            "[abc] WARNING:",
            "\u{0}\u{ff}KLP-VERIFY: taint-after -1",
        ] {
            let _ = Console::parse(text);
        }
    }
}
