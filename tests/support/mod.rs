//! Support shared by the integration tests, included with `mod support;`: the kernel lab (a Debian
//! 6.1 kernel, its source, headers and kallsyms, from `lab/setup.sh`) and QEMU boots of it;
//! klp-build's inputs on the lab (`inputs`), snapshots of the lab tree's files taken under the tree
//! lock (`tree`), translation units read from compiled objects (`units`) and test signing keys
//! made by openssl (`signing`).
//! Each test binary uses a part of it, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

#[path = "../ci_env/mod.rs"]
pub mod ci_env;
pub mod guest;
pub mod inputs;
pub mod lab;
pub mod refkernel;
pub mod run;
pub mod schemas;
pub mod signing;
pub mod tree;
pub mod units;

pub use lab::{boot, boot_with, lab, lab_series, Boot, Lab};
