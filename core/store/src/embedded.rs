//! The embedded datastore: one directory, no server.
//!
//! Layout under the root:
//!
//! ```text
//! lock                 flock(2)ed by every writer: writers serialise
//! journal              one JSON line per change: {"revision", "event", "kind", "name"}
//! resources/<plural>/<name>.json
//! ```
//!
//! A write, under the lock: read the last revision from the journal, write
//! the resource with `resourceVersion` = revision + 1 to a temporary file,
//! fsync, rename over the old one (atomic: a reader sees the old or the new
//! document, never a torn one), fsync the directory, then append the
//! journal line. A crash between the rename and the journal append leaves a
//! resource newer than the journal; [`Embedded::open`] notices and journals
//! it, so watchers never miss a change. Several processes may share one
//! directory: the lock orders writers; readers need no lock.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::kinds::{self, plural};
use crate::meta::{self, identity};
use crate::{Event, EventKind, Problem, StoreError};

/// An embedded store rooted at a directory.
#[derive(Debug, Clone)]
pub struct Embedded {
    root: PathBuf,
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("{}: {e}", path.display()))
}

impl Embedded {
    /// Open (creating if needed, root-only) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        {
            use std::os::unix::fs::DirBuilderExt;
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(root.join("resources"))
                .map_err(|e| io(&root, e))?;
        }
        let store = Embedded { root };
        store.with_lock(|s| s.recover())?;
        Ok(store)
    }

    fn path(&self, kind: &str, name: &str) -> PathBuf {
        self.root
            .join("resources")
            .join(plural(kind))
            .join(format!("{name}.json"))
    }

    /// Run `f` holding the writers' lock.
    fn with_lock<T>(
        &self,
        f: impl FnOnce(&Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let path = self.root.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        lock.lock().map_err(|e| io(&path, e))?;
        let result = f(self);
        // Closing the file releases the lock too; unlock explicitly so an
        // error here is at least not silent.
        let _ = lock.unlock();
        result
    }

    /// The revision of the last change. The daemon asks several times a
    /// second, so only the journal's tail is read, not the whole journal.
    pub fn revision(&self) -> Result<u64, StoreError> {
        use std::io::Read;
        const TAIL: u64 = 4096;
        let path = self.root.join("journal");
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&path, e)),
        };
        let len = file.metadata().map_err(|e| io(&path, e))?.len();
        if len > TAIL {
            file.seek(SeekFrom::Start(len - TAIL))
                .map_err(|e| io(&path, e))?;
        }
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(|e| io(&path, e))?;
        // The last complete event; a torn last line (crash mid-append) is
        // skipped, as `events_since` skips it. A tail that holds no complete
        // line cannot happen: every line is far shorter than the tail.
        let last = tail
            .split(|b| *b == b'\n')
            .rev()
            .find_map(|line| serde_json::from_slice::<Event>(line).ok());
        Ok(last.map_or(0, |e| e.revision))
    }

    /// The journal's length in bytes. It only grows; a shorter one was
    /// truncated (or replaced) behind the writers' backs, and revisions
    /// after its end may come again.
    pub fn journal_len(&self) -> Result<u64, StoreError> {
        let path = self.root.join("journal");
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Every change after `revision`, oldest first.
    pub fn events_since(&self, revision: u64) -> Result<Vec<Event>, StoreError> {
        let path = self.root.join("journal");
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&path, e)),
        };
        let mut events = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|e| io(&path, e))?;
            // A line cut short by a crash mid-append is not an event.
            let Ok(event) = serde_json::from_str::<Event>(&line) else {
                continue;
            };
            if event.revision > revision {
                events.push(event);
            }
        }
        Ok(events)
    }

    fn append(&self, event: &Event) -> Result<(), StoreError> {
        let path = self.root.join("journal");
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        // A torn last line (crash mid-append) must not glue onto ours.
        let len = file.seek(SeekFrom::End(0)).map_err(|e| io(&path, e))?;
        let mut line = if len > 0 && !ends_with_newline(&path)? {
            "\n".to_owned()
        } else {
            String::new()
        };
        line.push_str(&serde_json::to_string(event).map_err(|e| StoreError::Io(e.to_string()))?);
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(|e| io(&path, e))?;
        file.sync_data().map_err(|e| io(&path, e))
    }

    /// Journal resources that were written but not journaled (a crash
    /// between the two steps of a write).
    fn recover(&self) -> Result<(), StoreError> {
        let mut last = self.revision()?;
        let mut unjournaled = Vec::new();
        for doc in self.all()? {
            let rv = resource_version(&doc);
            if rv > last {
                unjournaled.push((rv, doc));
            }
        }
        unjournaled.sort_by_key(|(rv, _)| *rv);
        for (rv, doc) in unjournaled {
            let (kind, name) = identity(&doc);
            last = rv;
            self.append(&Event {
                revision: last,
                event: EventKind::Modified,
                kind,
                name,
            })?;
        }
        Ok(())
    }

    fn all(&self) -> Result<Vec<Value>, StoreError> {
        let dir = self.root.join("resources");
        let mut docs = Vec::new();
        for kind_dir in fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let kind_dir = kind_dir.map_err(|e| io(&dir, e))?.path();
            for file in fs::read_dir(&kind_dir).map_err(|e| io(&kind_dir, e))? {
                let path = file.map_err(|e| io(&kind_dir, e))?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    docs.push(read_doc(&path)?);
                }
            }
        }
        Ok(docs)
    }

    /// Every resource that can be read, sorted by kind and name, and a
    /// problem for each stored file that cannot (damaged, or not JSON):
    /// a reader that must go on, like the daemon, goes on without them.
    pub fn snapshot(&self) -> Result<(Vec<Value>, Vec<Problem>), StoreError> {
        let dir = self.root.join("resources");
        let mut docs = Vec::new();
        let mut unreadable = Vec::new();
        for kind_dir in fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let kind_dir = kind_dir.map_err(|e| io(&dir, e))?.path();
            for file in fs::read_dir(&kind_dir).map_err(|e| io(&kind_dir, e))? {
                let path = file.map_err(|e| io(&kind_dir, e))?.path();
                if path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                match read_doc(&path) {
                    Ok(doc) => docs.push(doc),
                    Err(e) => unreadable.push(Problem {
                        kind: kind_dir
                            .file_name()
                            .map(|p| kinds::resolve(&p.to_string_lossy()))
                            .unwrap_or_default(),
                        name: path
                            .file_stem()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        field: String::new(),
                        reason: format!("cannot be read: {e}"),
                    }),
                }
            }
        }
        docs.sort_by_key(identity);
        Ok((docs, unreadable))
    }

    /// One resource, or `None`.
    pub fn get(&self, kind: &str, name: &str) -> Result<Option<Value>, StoreError> {
        let path = self.path(kind, name);
        match fs::metadata(&path) {
            Ok(_) => read_doc(&path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// Every resource of `kind`, sorted by name.
    pub fn list(&self, kind: &str) -> Result<Vec<Value>, StoreError> {
        let dir = self.root.join("resources").join(plural(kind));
        let mut docs = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(docs),
            Err(e) => return Err(io(&dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for path in paths {
            docs.push(read_doc(&path)?);
        }
        Ok(docs)
    }

    /// Every resource of every kind, as the plugins see them.
    pub fn everything(&self) -> Result<Vec<Value>, StoreError> {
        let mut docs = self.all()?;
        docs.sort_by_key(identity);
        Ok(docs)
    }

    /// Create; fails if it exists.
    pub fn create(&self, doc: Value) -> Result<Value, StoreError> {
        self.with_lock(|s| {
            let (kind, name) = identity(&doc);
            if s.get(&kind, &name)?.is_some() {
                return Err(StoreError::AlreadyExists { kind, name });
            }
            s.write(doc, EventKind::Added, None)
        })
    }

    /// Replace; fails if it does not exist, or if the document carries a
    /// `resourceVersion` that is not the stored one. Metadata not given is
    /// kept from the stored object; labels and annotations come from the
    /// document.
    pub fn update(&self, doc: Value) -> Result<Value, StoreError> {
        self.with_lock(|s| {
            let (kind, name) = identity(&doc);
            let Some(stored) = s.get(&kind, &name)? else {
                return Err(StoreError::NotFound { kind, name });
            };
            meta::check_version(&doc, &stored)?;
            s.write(doc, EventKind::Modified, Some(&stored))
        })
    }

    /// Delete; returns what was stored. A `resource_version`, when given,
    /// must match.
    pub fn delete(
        &self,
        kind: &str,
        name: &str,
        resource_version: Option<&str>,
    ) -> Result<Value, StoreError> {
        self.with_lock(|s| {
            let Some(stored) = s.get(kind, name)? else {
                return Err(StoreError::NotFound {
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                });
            };
            meta::check_given(resource_version, &stored)?;
            let path = s.path(kind, name);
            let revision = s.revision()? + 1;
            let previous = s.keep_previous(&path, true)?;
            if let Err(e) = fs::remove_file(&path) {
                previous.discard();
                return Err(io(&path, e));
            }
            let journaled = sync_dir(path.parent().unwrap_or(&s.root)).and_then(|()| {
                s.append(&Event {
                    revision,
                    event: EventKind::Deleted,
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                })
            });
            match journaled {
                Ok(()) => {
                    previous.discard();
                    Ok(stored)
                }
                Err(e) => {
                    previous.restore(&path);
                    Err(e)
                }
            }
        })
    }

    fn write(
        &self,
        mut doc: Value,
        event: EventKind,
        stored: Option<&Value>,
    ) -> Result<Value, StoreError> {
        let (kind, name) = identity(&doc);
        let revision = self.revision()? + 1;
        meta::stamp(&mut doc, stored, revision)?;
        doc["metadata"]["resourceVersion"] = json!(revision.to_string());
        let path = self.path(&kind, &name);
        let dir = path.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let tmp = path.with_extension(format!("json.tmp.{}", std::process::id()));
        let written = (|| {
            let mut file = File::create(&tmp).map_err(|e| io(&tmp, e))?;
            let text =
                serde_json::to_vec_pretty(&doc).map_err(|e| StoreError::Io(e.to_string()))?;
            file.write_all(&text).map_err(|e| io(&tmp, e))?;
            file.sync_all().map_err(|e| io(&tmp, e))
        })();
        if let Err(e) = written {
            // A full disk leaves no half-written file behind to fill it.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        // The stored version stays reachable until the change is
        // journaled, so a journal that cannot be written (a full disk)
        // undoes the change instead of leaving it unannounced.
        let previous = self.keep_previous(&path, stored.is_some())?;
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            previous.discard();
            return Err(io(&path, e));
        }
        let journaled = sync_dir(&dir).and_then(|()| {
            self.append(&Event {
                revision,
                event,
                kind,
                name,
            })
        });
        match journaled {
            Ok(()) => {
                previous.discard();
                Ok(doc)
            }
            Err(e) => {
                previous.restore(&path);
                Err(e)
            }
        }
    }

    /// A hard link to what is stored at `path` (when `exists`), to put
    /// back if the change cannot be journaled. A link takes no data
    /// blocks, so it works on a full disk.
    fn keep_previous(&self, path: &Path, exists: bool) -> Result<Previous, StoreError> {
        if !exists {
            return Ok(Previous(None));
        }
        let link = path.with_extension(format!("json.prev.{}", std::process::id()));
        let _ = fs::remove_file(&link);
        fs::hard_link(path, &link).map_err(|e| io(&link, e))?;
        Ok(Previous(Some(link)))
    }
}

/// The stored version of a resource being changed (none: it is new).
struct Previous(Option<PathBuf>);

impl Previous {
    /// The change is journaled: the old version goes.
    fn discard(self) {
        if let Some(link) = self.0 {
            let _ = fs::remove_file(link);
        }
    }

    /// The change could not be journaled: the old version (or no file,
    /// for a new resource) is what `path` holds again.
    fn restore(self, path: &Path) {
        let undone = match &self.0 {
            Some(link) => fs::rename(link, path),
            None => fs::remove_file(path),
        };
        if let Err(e) = undone {
            // Left as it is, the resource is newer than the journal:
            // the next open journals it (`recover`), so it is not lost.
            tracing::warn!("{}: cannot undo an unjournaled change: {e}", path.display());
        }
        if let Some(dir) = path.parent() {
            let _ = sync_dir(dir);
        }
    }
}

fn ends_with_newline(path: &Path) -> Result<bool, StoreError> {
    use std::io::Read;
    let mut file = File::open(path).map_err(|e| io(path, e))?;
    file.seek(SeekFrom::End(-1)).map_err(|e| io(path, e))?;
    let mut last = [0u8];
    file.read_exact(&mut last).map_err(|e| io(path, e))?;
    Ok(last[0] == b'\n')
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

fn read_doc(path: &Path) -> Result<Value, StoreError> {
    let text = fs::read(path).map_err(|e| io(path, e))?;
    serde_json::from_slice(&text)
        .map_err(|e| StoreError::Io(format!("{}: corrupt resource: {e}", path.display())))
}

fn resource_version(doc: &Value) -> u64 {
    meta::resource_version(doc).parse().unwrap_or(0)
}
