//! # harness
//!
//! Deterministic scenario runner and state comparison over model hosts.
#![forbid(unsafe_code)]
