//! `__LINE__`-only changes in objects built without `#line` directives. Input: the code of a
//! function on both sides (equal sizes), decoded with iced-x86, and the callee of each call.
//! Output: the line values that differ, or the first difference that is not a line value.
//! Invariant: a difference counts as a line value only when it is the immediate of a
//! `mov $imm, %reg` whose register is the line argument of the next call, and that call goes to a
//! function known to take `__LINE__` there; anything else is a change.
//!
//! Why: a fix that adds lines above `might_sleep()`, `WARN_ON()` or `pr_err("%s:%d", __func__,
//! __LINE__)` changes code that did not change, when the objects come from a build that did not
//! pin the lines with `#line` (klp-build's own patch stage does; objects diffed with
//! `klp-build diff` may come from anywhere). kpatch-build accepts the same differences
//! (`kpatch_line_macro_change_only()`, create-diff-object.c): `mov` to `%esi` or `%edx` before a
//! call to `__might_sleep`, `__warn_printk`, `printk`, `lockdep_rcu_suspicious` and a few more.

use iced_x86::{
    Code, ConstantOffsets, Decoder, DecoderOptions, FlowControl, Instruction, Register,
};

/// Functions that take `__LINE__`, with the argument positions (1-based) it may sit in.
/// `__might_sleep(file, line)` and its relatives take it second; printk-style functions take it
/// wherever the format puts it (`pr_warn("%s:%d\n", __func__, __LINE__)` passes it third), as
/// kpatch-build accepts for `printk`. A changed constant passed to a printk-style call is taken
/// for a line value too: the report says so, and `--explain` shows the instruction.
const LINE_CALLEES: &[(&str, &[u8])] = &[
    ("__might_sleep", &[2]),
    ("___might_sleep", &[2]),
    ("__might_resched", &[2]),
    ("__might_fault", &[2]),
    ("__cant_sleep", &[2]),
    ("__cant_migrate", &[2]),
    ("lockdep_rcu_suspicious", &[2]),
    ("warn_slowpath_fmt", &[2]),
    ("warn_slowpath_null", &[2]),
    ("__warn_printk", &[2, 3, 4, 5, 6]),
    ("_printk", &[2, 3, 4, 5, 6]),
    ("printk", &[2, 3, 4, 5, 6]),
    ("_printk_deferred", &[2, 3, 4, 5, 6]),
    ("__btrfs_handle_fs_error", &[3]),
    ("__btrfs_abort_transaction", &[3]),
    // ext4_journal_start_sb(sb, __LINE__, type, blocks, rsv_blocks, revoke_creds) in
    // fs/ext4/ext4_jbd2.h: the line without a __func__ before it.
    ("__ext4_journal_start_sb", &[2]),
];

/// Whether a symbol is a `__func__` string (`__func__.435`): an argument register loaded with one
/// right before the line's register marks the `(__func__, __LINE__)` pair of a subsystem's error
/// helper, such as `__ext4_error(sb, __func__, __LINE__, ...)` or `__ext4_iget(sb, ino, flags,
/// __func__, __LINE__)` in fs/ext4/super.c, which the table above cannot list one by one.
fn is_func_name(sym: &str) -> bool {
    sym == "__func__"
        || sym
            .strip_prefix("__func__.")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
}

/// The x86_64 argument position of a register (SysV: rdi, rsi, rdx, rcx, r8, r9).
fn arg_position(r: Register) -> Option<u8> {
    Some(match r.full_register() {
        Register::RDI => 1,
        Register::RSI => 2,
        Register::RDX => 3,
        Register::RCX => 4,
        Register::R8 => 5,
        Register::R9 => 6,
        _ => return None,
    })
}

/// A `mov $imm, %reg` on both sides that differs only in its immediate: the register and the two
/// values.
fn immediate_only(
    o: &Instruction,
    p: &Instruction,
    ob: &[u8],
    pb: &[u8],
    offs: &ConstantOffsets,
) -> Option<(Register, u64, u64)> {
    let mov = matches!(
        o.code(),
        Code::Mov_r32_imm32 | Code::Mov_r64_imm64 | Code::Mov_rm32_imm32 | Code::Mov_rm64_imm32
    );
    if !mov || o.code() != p.code() || o.op_count() != 2 {
        return None;
    }
    let reg = o.op0_register();
    if reg == Register::None || reg != p.op0_register() || !offs.has_immediate() {
        return None;
    }
    let (a, n) = (offs.immediate_offset(), offs.immediate_size());
    let outside_equal = ob
        .iter()
        .zip(pb)
        .enumerate()
        .all(|(i, (x, y))| (a..a + n).contains(&i) || x == y);
    outside_equal.then(|| (reg, o.immediate(1), p.immediate(1)))
}

/// Compares the code of a function pair whose sizes are equal and whose bytes differ.
/// `o_base`/`p_base` are the functions' offsets in their sections (the decoders' addresses), and
/// `callee(offset)` names the function that the patched call or jump at section `offset` reaches
/// (through its relocation). `Ok` lists each line value (`+0x1c: 20 -> 24 for __might_sleep`);
/// `Err` gives the first difference that is not one.
pub fn compare_code(
    o_code: &[u8],
    p_code: &[u8],
    o_base: u64,
    p_base: u64,
    callee: impl Fn(&Instruction) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut od = Decoder::with_ip(64, o_code, o_base, DecoderOptions::NONE);
    let mut pd = Decoder::with_ip(64, p_code, p_base, DecoderOptions::NONE);
    let (mut oi, mut pi) = (Instruction::default(), Instruction::default());
    let mut lines = Vec::new();
    // Line values loaded since the last call: (offset, register, old, new).
    let mut pending: Vec<(u64, Register, u64, u64)> = Vec::new();
    // Argument positions loaded with a `__func__` string since the last call.
    let mut func_args: Vec<u8> = Vec::new();
    while pd.can_decode() && od.can_decode() {
        let at = pd.position();
        od.decode_out(&mut oi);
        pd.decode_out(&mut pi);
        let offs = pd.get_constant_offsets(&pi);
        if oi.len() != pi.len() || oi.is_invalid() || pi.is_invalid() {
            return Err(format!("instructions differ at +{at:#x}"));
        }
        let (ob, pb) = (&o_code[at..at + oi.len()], &p_code[at..at + pi.len()]);
        if ob != pb {
            let Some((reg, old, new)) = immediate_only(&oi, &pi, ob, pb, &offs) else {
                return Err(format!(
                    "bytes differ at +{:#x}",
                    first_difference(ob, pb) + at
                ));
            };
            pending.retain(|x| x.1.full_register() != reg.full_register());
            pending.push((at as u64, reg, old, new));
            continue;
        }
        // `mov $__func__.N, %esi` (the same on both sides, or the bytes would differ).
        if matches!(
            pi.code(),
            Code::Mov_r32_imm32 | Code::Mov_rm64_imm32 | Code::Mov_rm32_imm32
        ) && pi.op0_kind() == iced_x86::OpKind::Register
        {
            if let Some(a) = arg_position(pi.op0_register()) {
                func_args.retain(|&x| x != a);
                if callee(&pi).is_some_and(|n| is_func_name(&n)) {
                    func_args.push(a);
                }
            }
        }
        // A call, a tail call (a jump with a relocation) or a return ends the argument setup
        // of the line values loaded before it; a jump inside the function does not.
        if pending.is_empty() {
            if matches!(pi.flow_control(), FlowControl::Call | FlowControl::Return) {
                func_args.clear();
            }
            continue;
        }
        let name = match pi.flow_control() {
            FlowControl::Call | FlowControl::Return => callee(&pi),
            FlowControl::UnconditionalBranch => match callee(&pi) {
                Some(n) => Some(n),
                None => continue,
            },
            _ => continue,
        };
        for (off, reg, old, new) in pending.drain(..) {
            let arg = arg_position(reg);
            let listed = name.as_deref().is_some_and(|n| {
                LINE_CALLEES
                    .iter()
                    .any(|(c, pos)| *c == n && arg.is_some_and(|a| pos.contains(&a)))
            });
            let after_func = arg.is_some_and(|a| func_args.contains(&(a - 1)));
            match (&name, listed || after_func) {
                (Some(c), true) => lines.push(format!(
                    "+{off:#x}: {old} -> {new} passed to {c} as its line{}",
                    if listed { "" } else { " (after __func__)" }
                )),
                _ => {
                    return Err(format!(
                        "bytes differ at +{off:#x}: the immediate {old} -> {new} in {reg:?} {}",
                        match &name {
                            Some(n) => format!("before a call to {n}, which takes no line there"),
                            None => "is not a line argument of a call".to_string(),
                        }
                    ))
                }
            }
        }
        func_args.clear();
    }
    if let Some((off, reg, old, new)) = pending.first() {
        return Err(format!(
            "bytes differ at +{off:#x}: the immediate {old} -> {new} in {reg:?} reaches no call"
        ));
    }
    Ok(lines)
}

/// The index of the first differing byte (0 when none does).
pub fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mov $20,%esi; mov $.LC0,%rdi; call __might_sleep` (the call's displacement left 0, as
    /// in an object); the patched side loads 24.
    fn code(line: u8) -> Vec<u8> {
        let mut v = vec![0xbe, line, 0, 0, 0];
        v.extend([0x48, 0xc7, 0xc7, 0, 0, 0, 0]);
        v.extend([0xe8, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn line_of_might_sleep() {
        let r = compare_code(&code(20), &code(24), 0, 0, |_| {
            Some("__might_sleep".to_string())
        });
        assert_eq!(
            r,
            Ok(vec![
                "+0x0: 20 -> 24 passed to __might_sleep as its line".to_string()
            ])
        );
    }

    #[test]
    fn constant_of_another_call_is_a_change() {
        let r = compare_code(&code(20), &code(24), 0, 0, |_| Some("memset".to_string()));
        assert!(r.unwrap_err().contains("memset, which takes no line"));
    }

    #[test]
    fn other_bytes_are_a_change() {
        let mut p = code(20);
        p[5] = 0x49;
        let r = compare_code(&code(20), &p, 0, 0, |_| None);
        assert_eq!(r, Err("bytes differ at +0x5".to_string()));
    }
}
