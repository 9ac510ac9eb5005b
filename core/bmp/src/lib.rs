//! BMP, the BGP Monitoring Protocol (RFC 7854), as Starling exports it to
//! collectors such as pmacct's `pmbmpd` or OpenBMP:
//!
//! - Initiation, then Peer Up and Peer Down as sessions come and go;
//! - Route Monitoring of each peer's Adj-RIB-In before import policy
//!   (the UPDATEs as received) and after it (what the RIB kept), and of
//!   the Loc-RIB (RFC 9069);
//! - Statistics Reports on a timer; Termination when Starling stops.
//!
//! `message` is the codec (pure), `translate` turns the instance's
//! monitor events into messages (pure), `exporter` is the task that owns
//! a collector's connection.

pub mod exporter;
pub mod message;
pub mod translate;

pub use exporter::{Exporter, ExporterConfig};
pub use translate::Speaker;
