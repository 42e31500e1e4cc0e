//! diff stage (being written)
