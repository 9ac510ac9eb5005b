//! Starling's BGP speaker.
//!
//! `session` is the sans-I/O state machine of one session (RFC 4271 §8):
//! deterministic, driven by inputs and the current time, testable without
//! sockets. `driver` is the thin tokio shell that owns sockets and timers
//! and runs one task per peer.

pub mod config;
pub mod driver;
mod groups;
pub mod instance;
pub mod policy;
pub mod rib;
pub mod session;
pub mod sockopt;

pub use config::PeerConfig;
pub use session::{DownReason, Input, Negotiated, Output, Session, State};
