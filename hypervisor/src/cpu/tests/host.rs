//! Differential tests against the host CPU (to come).
