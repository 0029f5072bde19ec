//! xenstored. To be filled.

/// The xenstore service.
#[derive(Debug, Default)]
pub struct XenStore {}
