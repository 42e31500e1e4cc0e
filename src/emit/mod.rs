//! emit stage (being written)
