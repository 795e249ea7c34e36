//! Directories for file:// remotes and backups: writable by the servers (which run as
//! the `postgres` OS user), removed on drop.

use postgres::Client;
use std::path::{Path, PathBuf};
use std::process::Command;
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
/// copied): its URL, and the configuration lines a server needs to use it.
pub trait TestRemote {
    fn url(&self) -> String;
    /// `postgresql.conf` lines every server using it needs (S3 credentials).
    fn conf(&self) -> Vec<String> {
        Vec::new()
    }
}

impl TestRemote for RemoteDir {
    fn url(&self) -> String {
        RemoteDir::url(self)
    }
}

/// A bucket of a real S3-compatible server (moto) started for the test.
pub struct S3Remote {
    pub moto: crate::moto::Moto,
    pub bucket: String,
    pub prefix: String,
}

impl S3Remote {
    pub fn new(tag: &str) -> S3Remote {
        let moto = crate::moto::Moto::start();
        let bucket = format!("pgvc-{}", tag.replace('_', "-")).to_ascii_lowercase();
        moto.create_bucket(&bucket);
        S3Remote {
            moto,
            bucket,
            prefix: "db".into(),
        }
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
}
