//! Event channels (2-level ABI). To be filled.

/// A domain's event channel table.
#[derive(Debug, Default, Clone)]
pub struct EvtchnTable {}
