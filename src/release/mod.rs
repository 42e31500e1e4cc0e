//! Releases: one set of fixes built for every kernel of a distribution.

pub mod debian;
