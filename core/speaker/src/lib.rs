//! Starling's BGP speaker.
//!
//! One job: speak BGP with a set of peers and keep their routes.
//!
//! - `session`: the sans-I/O state machine of one session (RFC 4271 §8):
//!   deterministic, driven by inputs and the current time, testable
//!   without sockets;
//! - `driver`: the thin tokio shell that owns sockets and timers and runs
//!   one task per peer (`PeerRegistry`);
//! - `rib`: Adj-RIB-In / Loc-RIB, best path, export rules, Adj-RIB-Out;
//! - `instance`: all peers and the RIB as one sans-I/O core (requests,
//!   peer events and timers in; writes to peers and best-path changes out)
//!   under a thin tokio shell, `Instance`, the crate's front door.

pub mod config;
pub mod driver;
#[doc(hidden)]
pub mod fuzzing;
mod groups;
pub mod instance;
pub mod policy;
pub mod rib;
pub mod session;
pub mod sockopt;

pub use config::PeerConfig;
pub use session::{DownReason, Input, Negotiated, Output, Session, State};
