//! Directories for file:// remotes and backups: writable by the servers (which run as
//! the `postgres` OS user), removed on drop; buckets for s3:// ones; `TestRemote`,
//! what a test parametrised over both kinds sees of either.

use postgres::Client;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct RemoteDir(pub PathBuf);

impl RemoteDir {
    pub fn new(tag: &str) -> RemoteDir {
        let p = PathBuf::from(format!("/tmp/pgvc-remote-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        let ok = Command::new("chown")
            .args(["postgres:postgres", p.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(ok.success(), "chown {}", p.display());
        RemoteDir(p)
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.0.display())
    }

    /// Every file below the directory, sorted.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut v = Vec::new();
        walk(&self.0, &mut v);
        v.sort();
        v
    }

    /// The pack files (`packs/*.pack`), sorted.
    pub fn packs(&self) -> Vec<PathBuf> {
        let mut v = self.files();
        v.retain(|p| p.extension().is_some_and(|e| e == "pack"));
        v
    }

    /// True while a writer has a temporary (not yet renamed) object in the directory.
    pub fn writing(&self) -> bool {
        self.files()
            .iter()
            .any(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
    }
}

fn walk(d: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)
        } else {
            out.push(p)
        }
    }
}

impl Drop for RemoteDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `sql` (one text value) until it returns `want` or `secs` pass; returns the
/// last value seen, for the caller's assertion.
pub fn wait_for(d: &mut Client, sql: &str, want: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = crate::query_scalar(d, sql);
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A remote for a test that runs on both kinds of remote (parametrised, not
/// copied): its URL, the configuration lines a server needs to use it, and the few
/// things a test does to the remote itself, each done the way its kind allows.
pub trait TestRemote {
    fn url(&self) -> String;
    /// `postgresql.conf` lines every server using it needs (S3 credentials).
    fn conf(&self) -> Vec<String> {
        Vec::new()
    }
    /// True while a writer is uploading a pack that is not in place yet: file://, a
    /// temporary (not yet renamed) file; s3://, an incomplete multipart upload
    /// (packs above 16 MiB go up in parts).
    fn writing(&self) -> bool;
    /// How many packs the remote holds, listed by its manifest or not (packs are
    /// visible once whole: file://, renamed into place; s3://, uploaded).
    fn pack_count(&self) -> usize;
    /// Another, empty location of the same kind (on the same S3 server), for a
    /// second remote or a backup; `tag` must differ from the other tags of the test.
    fn sibling(&self, tag: &str) -> Box<dyn TestRemote>;
    /// Makes every write fail (false) or work again (true). file://: `chmod -R` of
    /// the directory; s3://: the bucket is deleted and created again, so it must be
    /// empty (a fresh `sibling`, or one only `vc.backup_add` has seen).
    fn set_writable(&self, writable: bool);
}

impl TestRemote for RemoteDir {
    fn url(&self) -> String {
        RemoteDir::url(self)
    }
    fn writing(&self) -> bool {
        RemoteDir::writing(self)
    }
    fn pack_count(&self) -> usize {
        self.packs().len()
    }
    fn sibling(&self, tag: &str) -> Box<dyn TestRemote> {
        Box::new(RemoteDir::new(tag))
    }
    fn set_writable(&self, writable: bool) {
        let mode = if writable { "u+w" } else { "a-w" };
        let ok = Command::new("chmod")
            .args(["-R", mode, self.0.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(ok.success(), "chmod -R {mode} {}", self.0.display());
    }
}

/// A bucket of a real S3-compatible server (moto) started for the test, shared
/// with its siblings.
pub struct S3Remote {
    pub moto: Arc<crate::moto::Moto>,
    pub bucket: String,
    pub prefix: String,
}

impl S3Remote {
    /// A new moto server with a bucket named after `tag` (`pgvc-<tag>`, lowercased,
    /// `_` as `-`).
    pub fn new(tag: &str) -> S3Remote {
        S3Remote::on(Arc::new(crate::moto::Moto::start()), tag)
    }

    fn on(moto: Arc<crate::moto::Moto>, tag: &str) -> S3Remote {
        let bucket = format!("pgvc-{}", tag.replace('_', "-")).to_ascii_lowercase();
        moto.create_bucket(&bucket);
        S3Remote {
            moto,
            bucket,
            prefix: "db".into(),
        }
    }

    /// The body of a plain (unsigned: moto accepts it) GET of `path`.
    fn get(&self, path: &str) -> String {
        use std::io::{Read, Write};
        let mut s =
            std::net::TcpStream::connect(("127.0.0.1", self.moto.port)).expect("connect to moto");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.moto.port
        )
        .expect("request");
        let mut resp = String::new();
        let _ = s.read_to_string(&mut resp);
        resp
    }
}

impl TestRemote for S3Remote {
    fn url(&self) -> String {
        format!(
            "s3://{}/{}?endpoint={}&region=us-east-1&force_path_style=true",
            self.bucket,
            self.prefix,
            self.moto.endpoint()
        )
    }
    fn conf(&self) -> Vec<String> {
        vec![
            "vc.s3_access_key_id = 'testing'".into(),
            "vc.s3_secret_access_key = 'testing-secret-key'".into(),
        ]
    }
    fn writing(&self) -> bool {
        // ListMultipartUploads: one <Upload> element per upload begun and not yet
        // completed or aborted.
        self.get(&format!("/{}?uploads", self.bucket))
            .contains("<Upload>")
    }
    fn pack_count(&self) -> usize {
        // ListObjectsV2 (up to 1000 keys: plenty for a test).
        self.get(&format!(
            "/{}?list-type=2&prefix={}/packs/",
            self.bucket, self.prefix
        ))
        .matches(".pack</Key>")
        .count()
    }
    fn sibling(&self, tag: &str) -> Box<dyn TestRemote> {
        Box::new(S3Remote::on(self.moto.clone(), tag))
    }
    fn set_writable(&self, writable: bool) {
        if writable {
            self.moto.create_bucket(&self.bucket);
        } else {
            let status = self.moto.raw("DELETE", &format!("/{}", self.bucket), b"");
            assert_eq!(status, 204, "deleting bucket {} (not empty?)", self.bucket);
        }
    }
}
