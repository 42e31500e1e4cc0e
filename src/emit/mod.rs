//! Stages 4 and 5, resolve and emit: output objects -> a livepatch module.

pub mod callbacks;
pub mod declarations;
pub mod kbuild;
pub mod klp_relocs;
pub mod module;
pub mod objtool;
pub mod out_object;
pub mod post_link;
pub mod resolve;
pub mod tables;
