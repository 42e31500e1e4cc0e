//! Exports of the target kernel, read from its `Module.symvers`. Input: the file kbuild's modpost
//! writes (`0xCRC<TAB>name<TAB>module<TAB>EXPORT_SYMBOL[_GPL]<TAB>namespace`, one export a line).
//! Output: [`Exports`], looked up by symbol name. Invariant: every line was understood; a line
//! that is not is an error naming the file and line, never silently dropped.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context};

/// One exported symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Export {
    /// The symbol name (`_printk`).
    pub name: String,
    /// The modversions CRC; 0 when the kernel was built without `CONFIG_MODVERSIONS`.
    pub crc: u32,
    /// Who exports it: `vmlinux`, or the module's path without `.ko` (`fs/xfs/xfs`).
    pub module: String,
    /// `EXPORT_SYMBOL` or `EXPORT_SYMBOL_GPL`.
    pub kind: String,
    /// The symbol namespace (`CXL`), empty when there is none.
    pub namespace: String,
}

impl Export {
    /// The klp object name of the exporter: `vmlinux`, or the module name with `-` as `_`
    /// (`fs/xfs/xfs` -> `xfs`), as `struct module::name` spells it.
    pub fn object(&self) -> String {
        if self.module == "vmlinux" {
            return self.module.clone();
        }
        let base = self.module.rsplit('/').next().unwrap_or(&self.module);
        super::normalize_modname(base)
    }

    /// Whether only GPL-compatible modules may use it.
    pub fn is_gpl_only(&self) -> bool {
        self.kind.ends_with("_GPL")
    }
}

/// All exports of a kernel build, by name.
#[derive(Debug, Clone, Default)]
pub struct Exports {
    by_name: HashMap<String, Export>,
}

impl Exports {
    /// Reads `module_symvers`.
    pub fn load(module_symvers: &Path) -> anyhow::Result<Self> {
        let text = crate::input::read_text(module_symvers, crate::input::Kind::Symbols, "")
            .with_context(|| {
                format!(
                "cannot read {}: pass the Module.symvers of the kernel build or of its headers \
                 package (/usr/src/linux-headers-<release>/Module.symvers)",
                module_symvers.display()
            )
            })?;
        Self::parse(&text).with_context(|| format!("{}", module_symvers.display()))
    }

    /// Parses the text of a `Module.symvers`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut by_name = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let export = parse_line(line).with_context(|| format!("line {}: {line:?}", i + 1))?;
            // modpost refuses a symbol exported twice; should a merged file still hold one,
            // the first line wins, like modpost's own hash lookup.
            by_name.entry(export.name.clone()).or_insert(export);
        }
        Ok(Exports { by_name })
    }

    /// The export called `name`, if the kernel exports it.
    pub fn get(&self, name: &str) -> Option<&Export> {
        self.by_name.get(name)
    }

    /// Number of exports.
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Whether the file had no exports.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// All exports, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Export> {
        self.by_name.values()
    }
}

fn parse_line(line: &str) -> anyhow::Result<Export> {
    let fields: Vec<&str> = line.split('\t').collect();
    // Kernels since 5.10 write five fields, the namespace last and possibly empty; kernels
    // before 5.4 wrote the first four only. (5.4 to 5.9 put the namespace third: unsupported.)
    if fields.len() != 5 && fields.len() != 4 {
        bail!(
            "expected 5 tab-separated fields (crc, symbol, module, export type, namespace), \
             found {}",
            fields.len()
        );
    }
    let crc_text = fields[0];
    let hex = crc_text
        .strip_prefix("0x")
        .or_else(|| crc_text.strip_prefix("0X"))
        .ok_or_else(|| anyhow::anyhow!("CRC {crc_text:?} does not start with 0x"))?;
    let crc = u32::from_str_radix(hex, 16)
        .with_context(|| format!("CRC {crc_text:?} is not a 32-bit hex number"))?;
    let name = fields[1];
    if name.is_empty() {
        bail!("empty symbol name");
    }
    let kind = fields[3];
    if !kind.starts_with("EXPORT_SYMBOL") {
        bail!("export type {kind:?} is not EXPORT_SYMBOL or EXPORT_SYMBOL_GPL");
    }
    Ok(Export {
        name: name.to_string(),
        crc,
        module: fields[2].to_string(),
        kind: kind.to_string(),
        namespace: fields.get(4).copied().unwrap_or("").to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "0x92997ed8\t_printk\tvmlinux\tEXPORT_SYMBOL\t\n\
                          0x84b45156\tinsert_resource_expand_to_fit\tvmlinux\tEXPORT_SYMBOL_GPL\tCXL\n\
                          0x0a1b2c3d\txfs_foo\tfs/xfs/xfs\tEXPORT_SYMBOL_GPL\t\n\
                          0x00000001\tdm_bar\tdrivers/md/dm-mod\tEXPORT_SYMBOL\t\n";

    #[test]
    fn parses_fields() {
        let e = Exports::parse(SAMPLE).unwrap();
        assert_eq!(e.len(), 4);
        let p = e.get("_printk").unwrap();
        assert_eq!(
            (
                p.crc,
                p.module.as_str(),
                p.kind.as_str(),
                p.namespace.as_str()
            ),
            (0x92997ed8, "vmlinux", "EXPORT_SYMBOL", "")
        );
        assert!(!p.is_gpl_only());
        assert_eq!(p.object(), "vmlinux");
        let n = e.get("insert_resource_expand_to_fit").unwrap();
        assert_eq!(n.namespace, "CXL");
        assert!(n.is_gpl_only());
        assert_eq!(e.get("xfs_foo").unwrap().object(), "xfs");
        assert_eq!(e.get("dm_bar").unwrap().object(), "dm_mod");
        assert!(e.get("printk").is_none());
    }

    #[test]
    fn bad_line_names_line() {
        let err = Exports::parse("0x1\ta\tvmlinux\tEXPORT_SYMBOL\t\nnonsense line\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("5 tab-separated fields"), "{msg}");
        let err = Exports::parse("zz\ta\tvmlinux\tEXPORT_SYMBOL\t\n").unwrap_err();
        assert!(format!("{err:#}").contains("does not start with 0x"));
    }
}
