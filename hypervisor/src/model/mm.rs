//! Machine memory and PV page types. To be filled.

/// Machine memory.
#[derive(Debug, Default)]
pub struct Memory {}
