//! Calico's status formats, in one place outside the daemon's loop: the
//! table `calicoctl node status` prints (the CLI's `starling node
//! status`), and the CalicoNodeStatus resources the daemon writes. What
//! these formats say is Calico's; the facts behind them (sessions,
//! routes) are the speaker's.

pub(crate) mod node_status;
pub(crate) mod status_writer;

/// The kind of the status resources the daemon writes: its own writes
/// call for no new plan.
pub(crate) const STATUS_KIND: &str = "CalicoNodeStatus";
