//! RFC 7606 outcomes as data: what the receiver of an UPDATE must do.

use std::fmt;

use crate::family::Family;
use crate::notification::Notification;

/// One error-handling approach (RFC 7606 §2), weakest first so that the
/// derived ordering picks the strongest of several errors.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Drop the attribute; the routes stand without it.
    AttributeDiscard,
    /// Handle every NLRI of the UPDATE as withdrawn.
    TreatAsWithdraw,
    /// Drop every route of the family and ignore it for the session.
    DisableFamily(Family),
    /// Send this NOTIFICATION and close the session.
    ResetSession(Notification),
}

impl Action {
    /// Label used in logs and in the `action` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::AttributeDiscard => "attr_discard",
            Self::TreatAsWithdraw => "treat_as_withdraw",
            Self::DisableFamily(_) => "afisafi_disable",
            Self::ResetSession(_) => "session_reset",
        }
    }
}

/// One error found in an UPDATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The attribute's type code, or `None` for message structure and NLRI.
    pub attribute: Option<u8>,
    pub action: Action,
    pub reason: String,
}

impl Problem {
    pub(crate) fn new(attribute: Option<u8>, action: Action, reason: impl Into<String>) -> Self {
        Self {
            attribute,
            action,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.attribute {
            Some(code) => write!(
                f,
                "attribute {code}: {} ({})",
                self.reason,
                self.action.label()
            ),
            None => write!(f, "{} ({})", self.reason, self.action.label()),
        }
    }
}

/// The outcome for the routes of an UPDATE that does not reset the session.
/// Families disabled by the same UPDATE are reported beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No errors: install the routes.
    Accept,
    /// Some attributes were dropped; install the routes with the rest.
    AttributeDiscard,
    /// Withdraw every NLRI the UPDATE carries (see `Update::withdrawals`).
    TreatAsWithdraw,
}

/// An UPDATE that must reset the session: the NOTIFICATION to send and
/// every problem found before the decoder stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("UPDATE resets the session with {notification}: {}", first_reason(.problems))]
pub struct SessionReset {
    pub notification: Notification,
    pub problems: Vec<Problem>,
}

fn first_reason(problems: &[Problem]) -> String {
    problems
        .iter()
        .find(|p| matches!(p.action, Action::ResetSession(_)))
        .map_or_else(|| "malformed UPDATE".to_owned(), |p| p.to_string())
}
