//! elf stage (being written)
