//! patch stage (being written)
