//! One QEMU boot. Input: a kernel image, an initramfs, a command line, an accelerator choice and
//! a time limit. Output: the console text, how the boot ended and which accelerator ran it.
//! Invariant: QEMU never outlives the time limit (it runs in its own process group, killed at the
//! deadline, and dies with klp-build whatever kills it) and never reads klp-build's standard input.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::cli::Accel;

/// How a boot ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// QEMU exited by itself (the guest rebooted or powered off).
    Exited,
    /// The time limit ran out and QEMU was killed.
    TimedOut,
}

/// A finished boot.
#[derive(Debug)]
pub struct Boot {
    /// The console.
    pub console: String,
    /// How it ended.
    pub end: End,
    /// `kvm` or `tcg`.
    pub accel: &'static str,
    /// Wall time.
    pub seconds: f64,
    /// What QEMU itself said on stderr, when it said anything.
    pub qemu_stderr: String,
    /// A note for the report (the fallback from KVM to TCG).
    pub note: Option<String>,
}

/// What the guest must print within this time on KVM, or `auto` falls back to TCG: on some hosts
/// `/dev/kvm` opens but the guest hangs in the firmware and prints nothing.
const KVM_FIRST_OUTPUT: Duration = Duration::from_secs(30);

/// Whether `/dev/kvm` opens for reading and writing (the first thing QEMU's KVM needs).
fn kvm_opens() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Boots `kernel` with `initramfs` and `append` on the command line.
pub fn boot(
    kernel: &Path,
    initramfs: &Path,
    append: &str,
    accel: Accel,
    limit: Duration,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Boot> {
    let qemu = "qemu-system-x86_64";
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(qemu).is_file()));
    if !found {
        bail!("{qemu} is not installed: apt-get install qemu-system-x86");
    }
    match accel {
        Accel::Tcg => run(kernel, initramfs, append, "tcg", limit, None),
        Accel::Kvm => {
            if !kvm_opens() {
                bail!("--accel kvm: /dev/kvm cannot be opened for reading and writing (is this user in group kvm, is KVM enabled?); use --accel tcg");
            }
            run(kernel, initramfs, append, "kvm", limit, None)
        }
        Accel::Auto if !kvm_opens() => run(kernel, initramfs, append, "tcg", limit, None),
        Accel::Auto => {
            let b = run(
                kernel,
                initramfs,
                append,
                "kvm",
                limit,
                Some(KVM_FIRST_OUTPUT),
            )?;
            // The guest never reached /init: KVM hung in the firmware (no output in time) or
            // QEMU refused the host CPU (nested hosts: "failed to set MSR 0x10a"). The same boot
            // under TCG tells a broken host from a broken kernel.
            if !b.console.contains(super::guest::MARK) {
                let why = if b.end == End::TimedOut && b.console.is_empty() {
                    format!(
                        "the guest printed nothing in {} s (on some hosts it hangs in the firmware)",
                        KVM_FIRST_OUTPUT.as_secs()
                    )
                } else {
                    match b.qemu_stderr.lines().find(|l| !l.trim().is_empty()) {
                        Some(l) => format!("QEMU said: {}", l.trim()),
                        None => "the guest never started /init".to_string(),
                    }
                };
                let note = format!("KVM: {why}; booted with TCG instead");
                progress(&note);
                let mut t = run(kernel, initramfs, append, "tcg", limit, None)?;
                t.note = Some(note);
                return Ok(t);
            }
            Ok(b)
        }
    }
}

/// One boot under `accel`, killed at `limit`, or at `first_output` when the console is still
/// empty then.
fn run(
    kernel: &Path,
    initramfs: &Path,
    append: &str,
    accel: &'static str,
    limit: Duration,
    first_output: Option<Duration>,
) -> anyhow::Result<Boot> {
    let mut cmd = qemu_command(kernel, initramfs, append, accel);
    // Ctrl-C or SIGTERM stop the guest and return, so the initramfs's temporary directory is
    // removed as the error unwinds (SIGKILL leaves it in $TMPDIR; PR_SET_PDEATHSIG still stops
    // QEMU).
    crate::rebuild::interrupt::install();
    let _defer = crate::rebuild::interrupt::Defer::start();
    crate::rebuild::interrupt::check("before the guest started")?;
    let start = Instant::now();
    let mut child = cmd.spawn().context("starting qemu-system-x86_64")?;
    let pipes = Pipes::start(&mut child)?;
    let mut console = Vec::new();
    let (end, interrupted) =
        pipes.watch(&mut console, start + limit, first_output.map(|f| start + f));
    if end == End::TimedOut || interrupted.is_some() {
        // SAFETY: kill(2) on QEMU's own process group, which it leads.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
    }
    let _ = child.wait();
    let qemu_stderr = pipes.finish(&mut console);
    if let Some(e) = interrupted {
        return Err(e.into());
    }
    Ok(Boot {
        console: String::from_utf8_lossy(&console).replace('\r', ""),
        end,
        accel,
        seconds: start.elapsed().as_secs_f64(),
        qemu_stderr: String::from_utf8_lossy(&qemu_stderr).into_owned(),
        note: None,
    })
}

/// QEMU booting `kernel` under `accel` with the console on its stdout, reading no input. It runs
/// in its own process group, so the deadline's kill reaches everything QEMU started, and it is
/// killed with klp-build (Ctrl-C, SIGTERM, even SIGKILL), so no guest outlives the command.
fn qemu_command(kernel: &Path, initramfs: &Path, append: &str, accel: &str) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", accel, "-cpu"])
        .arg(if accel == "kvm" { "host" } else { "max" })
        .args([
            "-m",
            "1G",
            "-smp",
            "1",
            "-display",
            "none",
            "-no-reboot",
            "-nodefaults",
            "-serial",
            "stdio",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initramfs)
        .arg("-append")
        .arg(append)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    // SAFETY: prctl in the child before exec; it touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// QEMU's stdout and stderr, each drained by a thread of its own so neither pipe fills and
/// stalls the guest: the console arrives in chunks on `console`, stderr is kept whole (its first
/// 64 KiB).
struct Pipes {
    console: mpsc::Receiver<Vec<u8>>,
    reader: std::thread::JoinHandle<()>,
    err_reader: std::thread::JoinHandle<Vec<u8>>,
}

impl Pipes {
    /// The reading threads started on `child`'s piped stdout and stderr.
    fn start(child: &mut std::process::Child) -> anyhow::Result<Pipes> {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        let mut out = child.stdout.take().context("qemu's stdout")?;
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let err = child.stderr.take().context("qemu's stderr")?;
        let err_reader = std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = err.take(64 * 1024).read_to_end(&mut s);
            s
        });
        Ok(Pipes {
            console: rx,
            reader,
            err_reader,
        })
    }

    /// Gathers the console into `console` until QEMU closes it (`Exited`), the `deadline` passes
    /// or, while the console is empty, `first_output_by` does (`TimedOut`), or a signal comes
    /// (the interruption returned). QEMU is still running in the last two cases.
    fn watch(
        &self,
        console: &mut Vec<u8>,
        deadline: Instant,
        first_output_by: Option<Instant>,
    ) -> (End, Option<crate::rebuild::interrupt::Interrupted>) {
        loop {
            if let Err(e) = crate::rebuild::interrupt::check("while the guest ran") {
                return (End::Exited, Some(e));
            }
            let now = Instant::now();
            let wait_until = match first_output_by {
                Some(f) if console.is_empty() => deadline.min(f),
                _ => deadline,
            };
            if now >= wait_until {
                return (End::TimedOut, None);
            }
            // Short waits, so a signal is seen within a fifth of a second.
            match self
                .console
                .recv_timeout((wait_until - now).min(Duration::from_millis(200)))
            {
                Ok(bytes) => {
                    // A guest that floods the console is cut at 64 MiB rather than filling memory.
                    if console.len() < 64 << 20 {
                        console.extend_from_slice(&bytes);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return (End::Exited, None),
            }
        }
    }

    /// Once QEMU is gone: the rest of the console appended to `console`, and its stderr.
    fn finish(self, console: &mut Vec<u8>) -> Vec<u8> {
        let _ = self.reader.join();
        while let Ok(bytes) = self.console.try_recv() {
            console.extend_from_slice(&bytes);
        }
        self.err_reader.join().unwrap_or_default()
    }
}
