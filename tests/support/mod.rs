//! Support shared by the integration tests, included with `mod support;`: the kernel lab (a Debian
//! 6.1 kernel, its source, headers and kallsyms, from `lab/setup.sh`) and QEMU boots of it;
//! klp-build's inputs on the lab (`inputs`), snapshots of the lab tree's files taken under the tree
//! lock (`tree`) and translation units read from compiled objects (`units`).
//! Each test binary uses a part of it, hence the `dead_code` allowance.
#![allow(dead_code, unused_imports)]

pub mod inputs;
pub mod lab;
pub mod run;
pub mod schemas;
pub mod tree;
pub mod units;

pub use lab::{boot, lab, lab_series, Boot, Lab};
