//! Compiling components, with an optional on-disk cache of compiled
//! artifacts so a restart does not pay the compile again (~60 ms per
//! plugin here, against ~0.2 ms to load a cached one).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;

use crate::{Host, PluginError};

pub(crate) fn compile(host: &Host, name: &str, bytes: &[u8]) -> Result<Component, PluginError> {
    let compile_error = |e: wasmtime::Error| PluginError::Compile {
        plugin: name.to_owned(),
        message: format!("{e:#}"),
    };
    let Some(dir) = host.cache() else {
        return Component::new(host.engine(), bytes).map_err(compile_error);
    };
    let path = artifact_path(host, dir, bytes);
    if let Some(component) = load_cached(host, &path) {
        return Ok(component);
    }
    let artifact = host
        .engine()
        .precompile_component(bytes)
        .map_err(compile_error)?;
    if let Err(e) = store(dir, &path, &artifact) {
        tracing::warn!(plugin = name, "cannot cache the compiled plugin: {e}");
    }
    deserialize_fresh(host, &artifact).map_err(compile_error)
}

#[allow(unsafe_code)]
fn deserialize_fresh(host: &Host, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: `artifact` is what this engine's `precompile_component`
    // returned a moment ago; it never left this process.
    unsafe { Component::deserialize(host.engine(), artifact) }
}

/// The artifact's name covers the component bytes and everything about the
/// engine that affects compiled code, so a changed plugin or a changed
/// Starling never loads a stale artifact.
fn artifact_path(host: &Host, dir: &Path, bytes: &[u8]) -> PathBuf {
    let mut h = Fnv::default();
    bytes.hash(&mut h);
    host.engine().precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{:016x}.cwasm", h.finish()))
}

#[allow(unsafe_code)]
fn load_cached(host: &Host, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: deserializing trusts its input. The cache directory is
    // created root-only (0700) by `store`, only this code writes into it,
    // and the file name is the hash of the source bytes and engine
    // configuration, so the file is an artifact this host compiled from
    // exactly these bytes.
    match unsafe { Component::deserialize_file(host.engine(), path) } {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unusable cached plugin: {e:#}");
            None
        }
    }
}

fn store(dir: &Path, path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Write then rename, so a crash never leaves half an artifact. The
    // cache is shared (a lab's daemons, parallel tests): each writer has a
    // temporary file of its own, and the last rename wins with the same
    // bytes.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!("{}-{n}.tmp", std::process::id()));
    std::fs::write(&tmp, artifact)?;
    std::fs::rename(tmp, path)
}

/// FNV-1a: stable across Rust releases, unlike `DefaultHasher`.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::store;

    /// Writers sharing a cache (a lab's daemons start together) each
    /// store the same artifact: none fails, and what is left is whole.
    #[test]
    fn writers_of_the_same_artifact_do_not_collide() {
        let dir = std::env::temp_dir().join(format!("starling-cache-race-{}", std::process::id()));
        let path = dir.join("artifact.cwasm");
        let artifact = vec![7u8; 1 << 20];
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..20 {
                        store(&dir, &path, &artifact).expect("store");
                    }
                });
            }
        });
        assert_eq!(std::fs::read(&path).expect("artifact"), artifact);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
