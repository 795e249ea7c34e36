//! `S3Store`: the `ObjectStore` of an `s3://bucket/prefix` remote (docs/S3.md), on
//! any S3-compatible server, through the `object_store` crate (request signing,
//! retries with backoff, conditional writes).
//!
//! - The manifest's compare-and-swap is a conditional PUT: `If-None-Match: *` to
//!   create, `If-Match: <etag>` to replace; a `412` (or `409`) is "someone else won".
//!   `probe_conditional_writes` checks once that the server honours them: a server
//!   that ignores them would let two writers both win, so it is refused.
//! - Streamed objects (packs) are spooled to a local temporary file and uploaded
//!   at `finish`: one PUT below `MULTIPART_ABOVE`, a multipart upload above (parts
//!   of `PART_SIZE`), both atomic (nothing is visible until the upload completes).
//! - Every request has a timeout; 5xx and network errors are retried with backoff
//!   (`object_store`'s `RetryConfig`), 4xx are errors that name the bucket and the
//!   operation. Credentials are never part of an error or of `url()`.
//!
//! The crate is async: each store owns a current-thread tokio runtime and blocks on
//! it, so a PostgreSQL backend (single-threaded, no runtime of its own) and the
//! background worker use it the same way. Nothing here calls PostgreSQL.

use super::error::{RemoteError, Result};
use super::object::{valid_key, ObjectInfo, ObjectStore, ObjectWriter, Reread, Version};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore as _, ObjectStoreExt as _,
    PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion,
};
use std::future::Future;
use std::io::{Read, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Streamed objects larger than this are uploaded in parts.
pub const MULTIPART_ABOVE: u64 = 16 << 20;
/// The size of each part of a multipart upload (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 << 20;

/// Where the server is and who we are to it.
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// `http(s)://host:port` of an S3-compatible server; None: AWS.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Bucket in the path (`endpoint/bucket/key`) rather than the host name.
    pub force_path_style: bool,
    /// Explicit credentials; None: the server's environment (`AWS_ACCESS_KEY_ID`, ...)
    /// or its credentials file (`credentials_from_file`).
    pub credentials: Option<Credentials>,
    /// Per request; `Duration::ZERO`: the default (30 s).
    pub timeout: Duration,
}

#[derive(Clone, Default)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret, whatever prints us.
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The `[profile]` section of an AWS credentials file (`~/.aws/credentials`).
pub fn credentials_from_file(text: &str, profile: &str) -> Option<Credentials> {
    let mut section = String::new();
    let mut c = Credentials::default();
    let mut found = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_string();
            continue;
        }
        if section != profile {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.trim().to_string();
        match k.trim() {
            "aws_access_key_id" => {
                c.access_key_id = v;
                found = true;
            }
            "aws_secret_access_key" => c.secret_access_key = v,
            "aws_session_token" => c.session_token = Some(v),
            _ => {}
        }
    }
    (found && !c.secret_access_key.is_empty()).then_some(c)
}

static CREDENTIALS: std::sync::OnceLock<fn() -> Option<Credentials>> = std::sync::OnceLock::new();

/// Where the server's configured credentials come from (the PostgreSQL settings,
/// `pg::s3`): asked each time a store is opened, so a changed setting applies to the
/// next operation.
pub fn set_credentials_source(source: fn() -> Option<Credentials>) {
    let _ = CREDENTIALS.set(source);
}

/// The configured credentials, if a source is set and gives some.
pub fn configured_credentials() -> Option<Credentials> {
    CREDENTIALS.get().and_then(|f| f())
}

/// Cheap to clone: a streamed upload keeps one.
#[derive(Clone)]
pub struct S3Store {
    url: String,
    bucket: String,
    /// Key prefix inside the bucket, without slashes at either end (may be empty).
    prefix: String,
    store: AmazonS3,
    rt: Arc<tokio::runtime::Runtime>,
    /// When requests give up, whatever their own timeouts (`set_deadline`); shared
    /// with the writers the store hands out.
    deadline: Arc<Mutex<Option<Instant>>>,
}

/// A request cut off by the deadline `set_deadline` gave.
#[derive(Debug)]
struct DeadlinePassed;

impl std::fmt::Display for DeadlinePassed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no answer before the deadline of this operation (the server is slow or unreachable)",
        )
    }
}

impl std::error::Error for DeadlinePassed {}

impl S3Store {
    /// A store for `s3://bucket/prefix` (`url`, as shown to users: no credentials).
    /// Nothing is requested yet.
    pub fn new(url: &str, bucket: &str, prefix: &str, opts: &S3Options) -> Result<S3Store> {
        let unsupported = |reason: String| RemoteError::Unsupported {
            url: url.to_string(),
            reason,
        };
        let timeout = if opts.timeout.is_zero() {
            Duration::from_secs(30)
        } else {
            opts.timeout
        };
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(opts.region.clone().unwrap_or_else(|| "us-east-1".into()))
            .with_virtual_hosted_style_request(!opts.force_path_style)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(timeout)
                    .with_connect_timeout(timeout.min(Duration::from_secs(10))),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(100),
                    max_backoff: Duration::from_secs(5),
                    base: 2.0,
                },
                max_retries: 5,
                retry_timeout: timeout * 4,
            });
        if let Some(e) = &opts.endpoint {
            b = b
                .with_endpoint(e.clone())
                .with_allow_http(e.starts_with("http://"));
        }
        if let Some(c) = &opts.credentials {
            b = b
                .with_access_key_id(c.access_key_id.clone())
                .with_secret_access_key(c.secret_access_key.clone());
            if let Some(t) = &c.session_token {
                b = b.with_token(t.clone());
            }
        }
        let store = b.build().map_err(|e| {
            unsupported(format!(
                "cannot use bucket {bucket}: {}",
                scrub(&e.to_string())
            ))
        })?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RemoteError::io(url, "", "start the S3 client for", e))?;
        Ok(S3Store {
            url: url.to_string(),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            store,
            rt: Arc::new(rt),
            deadline: Arc::new(Mutex::new(None)),
        })
    }

    /// Runs `fut` to completion, or until the deadline: then `late()`.
    fn within<T, E>(
        &self,
        fut: impl Future<Output = std::result::Result<T, E>>,
        late: impl FnOnce() -> E,
    ) -> std::result::Result<T, E> {
        let deadline = *self.deadline.lock().unwrap_or_else(|p| p.into_inner());
        match deadline {
            None => self.rt.block_on(fut),
            Some(d) => self
                .rt
                .block_on(async { tokio::time::timeout_at(d.into(), fut).await })
                .unwrap_or_else(|_| Err(late())),
        }
    }

    /// Runs one request of the crate, within the deadline.
    fn block_on<T>(
        &self,
        fut: impl Future<Output = std::result::Result<T, object_store::Error>>,
    ) -> std::result::Result<T, object_store::Error> {
        self.within(fut, || object_store::Error::Generic {
            store: "S3",
            source: Box::new(DeadlinePassed),
        })
    }

    /// An object whole with its ETag, or the crate's error for the caller to read
    /// (absent, not modified, ...); the outer error is a bad key.
    fn read_whole(
        &self,
        key: &str,
        opts: GetOptions,
    ) -> Result<std::result::Result<(Vec<u8>, Version), object_store::Error>> {
        let path = self.path(key)?;
        Ok(self.block_on(async {
            let got = self.store.get_opts(&path, opts).await?;
            let etag = got.meta.e_tag.clone().unwrap_or_default();
            Ok((got.bytes().await?.to_vec(), Version(etag)))
        }))
    }

    fn path(&self, key: &str) -> Result<Path> {
        if !valid_key(key) {
            return Err(RemoteError::corrupt_object(
                &self.url,
                key,
                "not a valid object key",
            ));
        }
        Ok(Path::from(self.full(key)))
    }

    fn full(&self, key: &str) -> String {
        match self.prefix.is_empty() {
            true => key.to_string(),
            false => format!("{}/{key}", self.prefix),
        }
    }

    /// The store key of an object the server listed (None: not one of ours).
    fn key_of(&self, location: &Path) -> Option<String> {
        let loc = location.as_ref();
        let key = match self.prefix.is_empty() {
            true => loc,
            false => loc.strip_prefix(&self.prefix)?.strip_prefix('/')?,
        };
        valid_key(key).then(|| key.to_string())
    }

    fn fail(&self, op: &'static str, key: &str, e: object_store::Error) -> RemoteError {
        match e {
            // A missing bucket is also a 404: say so, never "object missing".
            object_store::Error::NotFound { .. } if !missing_bucket(&e) => RemoteError::NotFound {
                url: self.url.clone(),
                key: key.to_string(),
            },
            e => RemoteError::Store {
                url: self.url.clone(),
                op,
                key: key.to_string(),
                detail: format!("bucket {}: {}", self.bucket, scrub(&e.to_string())),
            },
        }
    }

    /// Checks that the server refuses a conditional PUT whose condition fails: a
    /// create over an existing object, and a replace at a stale ETag. A server that
    /// ignores `If-None-Match`/`If-Match` would let two writers both move a ref.
    pub fn probe_conditional_writes(&self) -> Result<()> {
        let key = format!("probe/cas-{}", super::object::now_ms());
        let first = self.put_if(&key, b"1", None)?;
        let again = self.put_if(&key, b"2", None)?;
        let (_, v) = self.get(&key)?.ok_or_else(|| RemoteError::NotFound {
            url: self.url.clone(),
            key: key.clone(),
        })?;
        let replaced = self.put_if(&key, b"3", Some(&v))?;
        let stale = self.put_if(&key, b"4", Some(&v))?;
        self.delete(&key)?;
        if first && !again && replaced && !stale {
            return Ok(());
        }
        Err(RemoteError::Unsupported {
            url: self.url.clone(),
            reason: format!(
                "the server behind bucket {} does not honour conditional writes (If-None-Match, If-Match); \
                 two writers could both move a branch, so pgvc will not use it",
                self.bucket
            ),
        })
    }

    fn list_meta(&self, prefix: &str) -> Result<Vec<object_store::ObjectMeta>> {
        use futures::TryStreamExt as _;
        // The server lists by whole path segments: list the directory part, keep
        // the keys that start with `prefix`.
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let full = self.full(dir);
        let base = (!full.is_empty()).then(|| Path::from(full));
        let metas: Vec<object_store::ObjectMeta> = self
            .block_on(self.store.list(base.as_ref()).try_collect())
            .map_err(|e| self.fail("list", prefix, e))?;
        let mut out: Vec<(String, object_store::ObjectMeta)> = metas
            .into_iter()
            .filter_map(|m| self.key_of(&m.location).map(|k| (k, m)))
            .filter(|(k, _)| k.starts_with(prefix))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out.into_iter().map(|(_, m)| m).collect())
    }
}

/// Whether a 404 is the bucket's (`NoSuchBucket`), not the object's.
fn missing_bucket(e: &object_store::Error) -> bool {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.contains("NoSuchBucket") || text.contains("bucket does not exist")
}

/// An error text without anything that looks like a credential (the crate's errors
/// name URLs and paths, not keys; this is a second line of defence).
fn scrub(text: &str) -> String {
    text.split_whitespace()
        .map(|w| {
            let lw = w.to_ascii_lowercase();
            if lw.contains("signature=") || lw.contains("credential=") || lw.contains("secret") {
                "[redacted]"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl ObjectStore for S3Store {
    fn url(&self) -> &str {
        &self.url
    }

    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, Version)>> {
        match self.read_whole(key, GetOptions::default())? {
            Ok(got) => Ok(Some(got)),
            Err(e @ object_store::Error::NotFound { .. }) if !missing_bucket(&e) => Ok(None),
            Err(e) => Err(self.fail("read", key, e)),
        }
    }

    fn get_if_changed(&self, key: &str, known: &Version) -> Result<Reread> {
        let opts = GetOptions {
            if_none_match: Some(known.0.clone()),
            ..Default::default()
        };
        match self.read_whole(key, opts)? {
            Ok((data, v)) => Ok(Reread::Changed(data, v)),
            Err(object_store::Error::NotModified { .. }) => Ok(Reread::Unchanged),
            Err(e @ object_store::Error::NotFound { .. }) if !missing_bucket(&e) => {
                Ok(Reread::Absent)
            }
            Err(e) => Err(self.fail("read", key, e)),
        }
    }

    fn set_deadline(&self, deadline: Option<Instant>) {
        *self.deadline.lock().unwrap_or_else(|p| p.into_inner()) = deadline;
    }

    fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        if len == 0 {
            return Ok(Vec::new());
        }
        let r = self.block_on(async {
            let opts = GetOptions {
                range: Some(GetRange::Bounded(offset..offset + len)),
                ..Default::default()
            };
            let got = self.store.get_opts(&path, opts).await?;
            got.bytes().await
        });
        match r {
            Ok(b) => Ok(b.to_vec()),
            Err(e @ object_store::Error::NotFound { .. }) => {
                Err(self.fail("read a range of", key, e))
            }
            Err(e) => {
                // A range that starts past the end: nothing (as a file read gives).
                match self.block_on(self.store.head(&path)) {
                    Ok(meta) if offset >= meta.size => Ok(Vec::new()),
                    _ => Err(self.fail("read a range of", key, e)),
                }
            }
        }
    }

    fn put(&self, key: &str, data: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        self.block_on(self.store.put(&path, PutPayload::from(data.to_vec())))
            .map_err(|e| self.fail("write", key, e))?;
        Ok(())
    }

    fn put_stream(&self) -> Result<Box<dyn ObjectWriter>> {
        let file = tempfile::tempfile()
            .map_err(|e| RemoteError::io(&self.url, "", "spool an upload to", e))?;
        Ok(Box::new(S3Writer {
            store: self.clone(),
            file,
            written: 0,
        }))
    }

    fn put_if(&self, key: &str, data: &[u8], expected: Option<&Version>) -> Result<bool> {
        let path = self.path(key)?;
        let mode = match expected {
            None => PutMode::Create,
            Some(v) => PutMode::Update(UpdateVersion {
                e_tag: Some(v.0.clone()),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self.block_on(
            self.store
                .put_opts(&path, PutPayload::from(data.to_vec()), opts),
        ) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e @ object_store::Error::NotFound { .. }) if !missing_bucket(&e) => Ok(false),
            Err(e) => Err(self.fail("conditionally write", key, e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .list_meta(prefix)?
            .iter()
            .filter_map(|m| self.key_of(&m.location))
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.block_on(self.store.delete(&path)) {
            Ok(()) => Ok(()),
            Err(e @ object_store::Error::NotFound { .. }) if !missing_bucket(&e) => Ok(()),
            Err(e) => Err(self.fail("delete", key, e)),
        }
    }

    fn list_aged(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        Ok(self
            .list_meta(prefix)?
            .iter()
            .filter_map(|m| {
                self.key_of(&m.location).map(|key| ObjectInfo {
                    key,
                    modified_ms: m.last_modified.timestamp_millis().max(0) as u64,
                    bytes: m.size,
                })
            })
            .collect())
    }

    /// Uploads leave nothing behind in the bucket but incomplete multipart uploads of
    /// a process that died mid-upload, which S3 does not list as objects: a bucket
    /// lifecycle rule (AbortIncompleteMultipartUpload) removes them (docs/S3.md).
    fn sweep_temporaries(&self, _before_ms: u64) -> Result<u64> {
        Ok(0)
    }
}

/// A streamed upload: spooled to a local temporary file (gone when dropped), sent
/// at `finish`.
struct S3Writer {
    store: S3Store,
    file: std::fs::File,
    written: u64,
}

impl ObjectWriter for S3Writer {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.file
            .write_all(data)
            .map_err(|e| RemoteError::io(&self.store.url, "", "spool an upload to", e))?;
        self.written += data.len() as u64;
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    fn finish_then_put(self: Box<Self>, key: &str, next_key: &str, next: &[u8]) -> Result<()> {
        let s = self.store.clone();
        self.finish(key)?;
        s.put(next_key, next)
    }

    fn finish(mut self: Box<Self>, key: &str) -> Result<()> {
        let s = self.store.clone();
        let path = s.path(key)?;
        let io = |e| RemoteError::io(&s.url, key, "read back the spooled upload for", e);
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        if self.written <= MULTIPART_ABOVE {
            let mut data = Vec::with_capacity(self.written as usize);
            self.file.read_to_end(&mut data).map_err(io)?;
            return s.put(key, &data);
        }
        let file = &mut self.file;
        let late = || RemoteError::Store {
            url: s.url.clone(),
            op: "upload",
            key: key.to_string(),
            detail: format!("bucket {}: {DeadlinePassed}", s.bucket),
        };
        let r: std::result::Result<(), RemoteError> = s.within(
            async {
                let mut up = s
                    .store
                    .put_multipart(&path)
                    .await
                    .map_err(|e| s.fail("start a multipart upload of", key, e))?;
                let mut buf = vec![0u8; PART_SIZE];
                loop {
                    let mut n = 0;
                    while n < PART_SIZE {
                        let got = file.read(&mut buf[n..]).map_err(io)?;
                        if got == 0 {
                            break;
                        }
                        n += got;
                    }
                    if n == 0 {
                        break;
                    }
                    if let Err(e) = up.put_part(PutPayload::from(buf[..n].to_vec())).await {
                        let _ = up.abort().await;
                        return Err(s.fail("upload a part of", key, e));
                    }
                }
                if let Err(e) = up.complete().await {
                    let _ = up.abort().await;
                    return Err(s.fail("complete the upload of", key, e));
                }
                Ok(())
            },
            late,
        );
        r
    }
}
