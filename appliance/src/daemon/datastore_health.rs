//! Whether the daemon has its datastore: what the watch, the reads the
//! planner makes and the status writes each last said, joined into one
//! answer for node status, the metrics and the log.
//!
//! Three sources because each sees a different failure first: a paused or
//! partitioned etcd breaks the watch (its keepalive times out) before any
//! read is tried; a damaged embedded store fails reads while the journal
//! still polls; a full disk fails only writes.

/// What saw the trouble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Watch,
    Read,
    Write,
}

/// The last word of each source, and since when (Unix seconds) any of
/// them has been failing.
#[derive(Debug, Default)]
pub(super) struct DatastoreHealth {
    watch: Option<String>,
    read: Option<String>,
    write: Option<String>,
    since: Option<u64>,
}

/// A change of the joined answer, to log once.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Transition {
    Failing(String),
    Healthy { after_seconds: u64 },
}

impl DatastoreHealth {
    /// `source` now reports `trouble` (none: it works) at `now`.
    pub(super) fn report(
        &mut self,
        source: Source,
        trouble: Option<String>,
        now: u64,
    ) -> Option<Transition> {
        let was = self.trouble().is_some();
        *match source {
            Source::Watch => &mut self.watch,
            Source::Read => &mut self.read,
            Source::Write => &mut self.write,
        } = trouble;
        match (was, self.trouble()) {
            (false, Some(reason)) => {
                let reason = reason.to_owned();
                self.since = Some(now);
                Some(Transition::Failing(reason))
            }
            (true, None) => {
                let since = self.since.take().unwrap_or(now);
                Some(Transition::Healthy {
                    after_seconds: now.saturating_sub(since),
                })
            }
            _ => None,
        }
    }

    /// The watch has lost the datastore (and not found it again).
    pub(super) fn watch_lost(&self) -> bool {
        self.watch.is_some()
    }

    /// What is wrong, the watch's word first (it is the one that decides
    /// whether changes are seen at all), and since when.
    pub(super) fn status(&self) -> Option<(String, u64)> {
        let reason = self.trouble()?;
        Some((reason.to_owned(), self.since.unwrap_or_default()))
    }

    fn trouble(&self) -> Option<&str> {
        self.watch
            .as_deref()
            .or(self.read.as_deref())
            .or(self.write.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outage_is_one_failing_and_one_healthy_whatever_saw_it() {
        let mut h = DatastoreHealth::default();
        assert_eq!(h.report(Source::Read, None, 10), None);
        assert_eq!(
            h.report(Source::Watch, Some("etcd: timed out".into()), 100),
            Some(Transition::Failing("etcd: timed out".into()))
        );
        // A read failing as well changes nothing to say; the watch's
        // word stays first.
        assert_eq!(
            h.report(Source::Read, Some("read: timed out".into()), 105),
            None
        );
        assert_eq!(h.status(), Some(("etcd: timed out".into(), 100)));
        assert!(h.watch_lost());
        assert_eq!(h.report(Source::Watch, None, 130), None);
        assert!(!h.watch_lost());
        assert_eq!(h.status(), Some(("read: timed out".into(), 100)));
        assert_eq!(
            h.report(Source::Read, None, 131),
            Some(Transition::Healthy { after_seconds: 31 })
        );
        assert_eq!(h.status(), None);
        // The next outage has its own start.
        assert_eq!(
            h.report(Source::Write, Some("No space left on device".into()), 200),
            Some(Transition::Failing("No space left on device".into()))
        );
        assert_eq!(h.status().map(|(_, since)| since), Some(200));
    }
}
