//! System.map and `/proc/kallsyms` text. Input: lines `ADDR TYPE NAME [\t[module]]`. Output: each
//! object's entries (`vmlinux` for lines without a module tag) in line order, which for
//! `/proc/kallsyms` is the kernel's own kallsyms order. Invariant: a line that is not understood
//! is an error naming the file and line; vmlinux lines are in address order.

use std::collections::HashMap;

use anyhow::{bail, Context};

use super::{Bind, Entry};

/// A line as an error shows it: quoted, at most 80 characters (a binary file given as a listing
/// has "lines" of kilobytes of noise), with a note of what was cut.
fn excerpt(line: &str) -> String {
    const MAX: usize = 80;
    let count = line.chars().count();
    if count <= MAX {
        return format!("{line:?}");
    }
    let head: String = line.chars().take(MAX).collect();
    format!(
        "{head:?} (and {} more characters; is it a text listing?)",
        count - MAX
    )
}

/// The entries of `text` per object; `origin` names the file in errors.
pub(super) fn parse(origin: &str, text: &str) -> anyhow::Result<HashMap<String, Vec<Entry>>> {
    let mut per_object: HashMap<String, Vec<Entry>> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if line.contains("The real System.map is in") {
            bail!(
                "{origin}:{lineno}: this is Debian's placeholder System.map: capture \
                 /proc/kallsyms from the running target instead (as root, with \
                 kernel.kptr_restrict=0), or pass the vmlinux of linux-image-<release>-dbg"
            );
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 || fields.len() > 4 {
            bail!(
                "{origin}:{lineno}: expected `ADDRESS TYPE NAME [[module]]`, found {}; pass a System.map or a \
                 /proc/kallsyms capture",
                excerpt(line)
            );
        }
        let addr = u64::from_str_radix(fields[0], 16)
            .with_context(|| format!("{origin}:{lineno}: address {:?} is not hex", fields[0]))?;
        let mut ty_chars = fields[1].chars();
        let (Some(ty), None) = (ty_chars.next(), ty_chars.next()) else {
            bail!("{origin}:{lineno}: type {:?} is not one letter", fields[1]);
        };
        let object = match fields.get(3) {
            None => "vmlinux".to_string(),
            Some(tag) => match tag.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                Some(m) if !m.is_empty() => m.to_string(),
                _ => bail!("{origin}:{lineno}: module tag {tag:?} is not `[name]`"),
            },
        };
        // System.map keeps what `scripts/mksysmap` keeps; kallsyms never shows these.
        if matches!(ty, 'U' | 'u' | 'N' | 'n' | 'w' | 'v' | 'a') {
            continue;
        }
        let vmlinux = object == "vmlinux";
        let bind = if ty == 'A' || (!vmlinux && ty.is_ascii_lowercase()) {
            Bind::Unknown
        } else if ty.is_ascii_uppercase() {
            Bind::Global
        } else {
            Bind::Local
        };
        let list = per_object.entry(object).or_default();
        list.push(Entry {
            name: fields[2].to_string(),
            addr,
            ty,
            bind,
            place: (0, addr),
            file: None,
        });
        // kallsyms order is address order: a listing that is not was sorted or edited, and
        // its positions would be wrong. (Modules are in symtab order, not checked.)
        if vmlinux && list.len() > 1 {
            let prev = list[list.len() - 2].addr;
            if addr < prev && addr != 0 {
                bail!(
                    "{origin}:{lineno}: address {addr:x} is below the previous line's {prev:x}: \
                     kallsyms and System.map list vmlinux in address order, so this listing was \
                     sorted or edited; capture /proc/kallsyms again and pass it unchanged"
                );
            }
        }
    }
    if per_object.is_empty() {
        bail!(
            "{origin}: no symbols: pass /proc/kallsyms captured as root with \
             kernel.kptr_restrict=0, or System.map"
        );
    }
    Ok(per_object)
}
