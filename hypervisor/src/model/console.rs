//! Console backend. To be filled.

/// The console backend.
#[derive(Debug, Default)]
pub struct Consoles {}
