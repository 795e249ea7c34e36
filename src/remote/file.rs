//! `FileStore`: an `ObjectStore` in a local (or network-mounted) directory, used
//! for `file:///absolute/path` remotes.
//!
//! Atomic visibility comes from rename: every object is written to a temporary
//! file whose name starts with `.` (so `list` never shows it), fsynced, renamed to
//! its final name, and the directory fsynced so the rename survives a power loss.
//! A crash at any point leaves either the old object or the complete new one under
//! the final name, plus at worst a stray `.tmp-*` file.
//!
//! Compare-and-swap (`put_if`) holds an exclusive `flock` on `<root>/.lock` while it
//! reads the current object, compares versions and renames the new one in. The
//! kernel releases the lock when the process dies, even by SIGKILL, so a crashed
//! writer never wedges the remote. Readers take no lock: rename is atomic. A
//! version is the BLAKE3 of the object's bytes.

use super::object::{valid_key, ObjectInfo, ObjectStore, ObjectWriter, Version};
use super::{RemoteError, Result};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Distinguishes temporary files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Clone, Debug)]
pub struct FileStore {
    root: PathBuf,
    url: String,
    lock_wait: Duration,
}

/// How long a compare-and-swap waits for another writer's lock by default: far longer
/// than any manifest swap takes, short enough that a stuck writer is reported.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(60);

impl FileStore {
    /// A store rooted at `root` (an absolute path). Nothing is touched on disk
    /// until the first write, which creates the directory if needed.
    pub fn new(root: impl Into<PathBuf>) -> FileStore {
        let root = root.into();
        let url = format!("file://{}", root.display());
        FileStore {
            root,
            url,
            lock_wait: DEFAULT_LOCK_WAIT,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if !valid_key(key) {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "invalid object key");
            return Err(RemoteError::io(&self.url, key, "address", e));
        }
        Ok(self.root.join(key))
    }

    fn temp_path(dir: &Path, hint: &str) -> PathBuf {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        dir.join(format!(".tmp-{hint}-{}-{n}", std::process::id()))
    }

    /// Creates `dir` and any missing ancestors, fsyncing each new directory's
    /// parent so the new entries are durable too.
    fn ensure_dir(&self, dir: &Path, key: &str) -> Result<()> {
        let io_err = |e| RemoteError::io(&self.url, key, "create the directory for", e);
        let mut missing = Vec::new();
        let mut d = dir;
        while !d.is_dir() {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(dir).map_err(io_err)?;
        for m in missing.iter().rev() {
            if let Some(p) = m.parent() {
                sync_dir(p).map_err(io_err)?;
            }
        }
        Ok(())
    }

    /// Writes `data` to a temporary file next to `path`, fsyncs and renames it.
    fn write_atomic(&self, key: &str, path: &Path, data: &[u8]) -> Result<()> {
        let dir = path.parent().expect("object paths have a parent");
        self.ensure_dir(dir, key)?;
        let temp = Self::temp_path(dir, "put");
        let res = (|| {
            write_new_synced(&temp, data)?;
            fs::rename(&temp, path)?;
            sync_dir(dir)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&temp);
        }
        res.map_err(|e| RemoteError::io(&self.url, key, "write", e))
    }

    /// Takes the exclusive `flock` on `<root>/.lock`, waiting at most `lock_wait`:
    /// a process that holds it forever (stuck on a hung filesystem, stopped) must not
    /// hang every writer, least of all a COMMIT that holds its transaction's locks.
    fn lock(&self, key: &str) -> Result<File> {
        self.ensure_dir(&self.root, key)?;
        let io_err = |e| RemoteError::io(&self.url, key, "lock the remote to update", e);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.root.join(".lock"))
            .map_err(io_err)?;
        let deadline = Instant::now() + self.lock_wait;
        let mut pause = Duration::from_millis(1);
        loop {
            // flock(LOCK_EX | LOCK_NB): released by the kernel when `f` is closed or
            // the process dies.
            match f.try_lock() {
                Ok(()) => return Ok(f),
                Err(TryLockError::WouldBlock) => {}
                Err(TryLockError::Error(e)) => return Err(io_err(e)),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(io_err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "another process has held the remote's lock for more than {} ms",
                        self.lock_wait.as_millis()
                    ),
                )));
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// How long a compare-and-swap waits for the remote's lock (default
    /// [`DEFAULT_LOCK_WAIT`]).
    pub fn with_lock_wait(mut self, wait: Duration) -> FileStore {
        self.lock_wait = wait;
        self
    }

    fn walk(&self, dir: &Path, rel: &str, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let key = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            if entry.file_type()?.is_dir() {
                if prefix.starts_with(&key) || key.starts_with(prefix) {
                    self.walk(&entry.path(), &key, prefix, out)?;
                }
            } else if key.starts_with(prefix) {
                out.push(key);
            }
        }
        Ok(())
    }
}

fn modified_ms(m: &fs::Metadata) -> u64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Creates `path` (which must not exist), writes `data` and fsyncs it.
fn write_new_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn version_of(data: &[u8]) -> Version {
    Version(blake3::hash(data).to_hex().to_string())
}

impl ObjectStore for FileStore {
    fn url(&self) -> &str {
        &self.url
    }

    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        match fs::read(self.path(key)?) {
            Ok(data) => {
                let v = version_of(&data);
                Ok(Some((data, v)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(RemoteError::io(&self.url, key, "read", e)),
        }
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let mut f = match File::open(self.path(key)?) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(RemoteError::NotFound {
                    url: self.url.clone(),
                    key: key.to_string(),
                })
            }
            Err(e) => return Err(RemoteError::io(&self.url, key, "open", e)),
        };
        let mut out = Vec::new();
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.take(len).read_to_end(&mut out))
            .map_err(|e| RemoteError::io(&self.url, key, "read", e))?;
        Ok(out)
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        self.write_atomic(key, &path, data)
    }

    fn put_stream(&self) -> Result<Box<dyn ObjectWriter>> {
        self.ensure_dir(&self.root, "(a new object)")?;
        let temp = Self::temp_path(&self.root, "stream");
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| RemoteError::io(&self.url, "(a new object)", "create", e))?;
        Ok(Box::new(FileWriter {
            store: self.clone(),
            temp,
            file: io::BufWriter::with_capacity(1 << 20, file),
            written: 0,
            done: false,
        }))
    }

    fn put_if(&self, key: &str, data: &[u8], expected: Option<&Version>) -> Result<bool> {
        let path = self.path(key)?;
        let _lock = self.lock(key)?;
        let current = self.get(key)?.map(|(_, v)| v);
        if current.as_ref() != expected {
            return Ok(false);
        }
        self.write_atomic(key, &path, data)?;
        Ok(true)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.walk(&self.root, "", prefix, &mut out)
            .map_err(|e| RemoteError::io(&self.url, prefix, "list", e))?;
        out.sort();
        Ok(out)
    }

    fn list_aged(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        for key in self.list(prefix)? {
            match fs::metadata(self.path(&key)?) {
                Ok(m) => out.push(ObjectInfo {
                    key,
                    modified_ms: modified_ms(&m),
                    bytes: m.len(),
                }),
                // Deleted between the listing and now: not there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(RemoteError::io(&self.url, &key, "stat", e)),
            }
        }
        Ok(out)
    }

    fn sweep_temporaries(&self, before_ms: u64) -> Result<u64> {
        // Temporary files live in the root (streams) and next to their key (puts).
        let mut dirs = vec![self.root.clone()];
        let mut removed = 0;
        while let Some(dir) = dirs.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(RemoteError::io(&self.url, "(temporary files)", "list", e)),
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() && !name.starts_with('.') {
                    dirs.push(entry.path());
                } else if meta.is_file()
                    && name.starts_with(".tmp-")
                    && modified_ms(&meta) < before_ms
                    && fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn delete_many(&self, keys: &[String]) -> Result<()> {
        // One fsync per directory at the end, not one per file.
        let mut dirs = std::collections::BTreeSet::new();
        for key in keys {
            let path = self.path(key)?;
            match fs::remove_file(&path) {
                Ok(()) => {
                    dirs.insert(
                        path.parent()
                            .expect("object paths have a parent")
                            .to_path_buf(),
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(RemoteError::io(&self.url, key, "delete", e)),
            }
        }
        for dir in dirs {
            sync_dir(&dir)
                .map_err(|e| RemoteError::io(&self.url, "(deleted objects)", "delete", e))?;
        }
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(RemoteError::io(&self.url, key, "delete", e)),
        }
        let dir = path.parent().expect("object paths have a parent");
        sync_dir(dir).map_err(|e| RemoteError::io(&self.url, key, "delete", e))
    }
}

/// A streamed write into a temporary file in the store's root; `finish` renames
/// it into place (same filesystem, so the rename is atomic).
struct FileWriter {
    store: FileStore,
    temp: PathBuf,
    file: io::BufWriter<File>,
    written: u64,
    done: bool,
}

impl ObjectWriter for FileWriter {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| RemoteError::io(&self.store.url, "(a new object)", "write", e))?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn finish(mut self: Box<Self>, key: &str) -> Result<()> {
        let path = self.store.path(key)?;
        let dir = path
            .parent()
            .expect("object paths have a parent")
            .to_path_buf();
        self.store.ensure_dir(&dir, key)?;
        let res = (|| {
            self.file.flush()?;
            self.file.get_ref().sync_all()?;
            fs::rename(&self.temp, &path)?;
            sync_dir(&dir)
        })();
        res.map_err(|e| RemoteError::io(&self.store.url, key, "write", e))?;
        self.done = true;
        Ok(())
    }

    fn finish_then_put(mut self: Box<Self>, key: &str, next_key: &str, next: &[u8]) -> Result<()> {
        let (path, next_path) = (self.store.path(key)?, self.store.path(next_key)?);
        for (p, k) in [(&path, key), (&next_path, next_key)] {
            let dir = p.parent().expect("object paths have a parent");
            self.store.ensure_dir(dir, k)?;
        }
        // A failure after the first rename names the second object: the first is in
        // place (unlisted, as a pack is until a manifest lists it).
        let key_of_failure = |done: bool| if done { next_key } else { key };
        self.finish_pair(&path, &next_path, next)
            .map_err(|e| RemoteError::io(&self.store.url, key_of_failure(self.done), "write", e))
    }
}

impl FileWriter {
    /// `finish_then_put`'s work: both files written and fsynced under temporary
    /// names, then renamed in order, then their directories fsynced (once if shared).
    fn finish_pair(&mut self, path: &Path, next_path: &Path, next: &[u8]) -> io::Result<()> {
        let dir = path.parent().expect("object paths have a parent");
        let next_dir = next_path.parent().expect("object paths have a parent");
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        let next_temp = FileStore::temp_path(next_dir, "put");
        let res = (|| {
            write_new_synced(&next_temp, next)?;
            fs::rename(&self.temp, path)?;
            self.done = true;
            if dir != next_dir {
                sync_dir(dir)?;
            }
            fs::rename(&next_temp, next_path)?;
            sync_dir(next_dir)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&next_temp);
        }
        res
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if !self.done {
            // Abandoned (error or caller gave up): leave nothing behind.
            let _ = fs::remove_file(&self.temp);
        }
    }
}
