//! Remote URLs: `file:///absolute/path` today, `s3://bucket/prefix` parsed now so
//! users get "not supported yet" rather than "bad URL", and so the S3 store can be
//! added behind `open` without touching callers.

use super::file::FileStore;
use super::object::ObjectStore;
use super::{Remote, RemoteError, Result};
use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteUrl {
    /// An absolute local path, without trailing slash (except `/` itself).
    File(PathBuf),
    /// A bucket and a key prefix without leading or trailing slashes (may be empty).
    S3 { bucket: String, prefix: String },
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteUrl::File(p) => write!(f, "file://{}", p.display()),
            RemoteUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            RemoteUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

pub fn parse_url(url: &str) -> Result<RemoteUrl> {
    let bad = |reason: &str| RemoteError::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    if url.trim().is_empty() {
        return Err(bad("the URL is empty"));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad(
            "not a URL; write file:///absolute/path (or s3://bucket/prefix)",
        ));
    };
    if url.chars().any(|c| c.is_control()) {
        return Err(bad("control characters are not allowed"));
    }
    if rest.contains(['?', '#', '%']) {
        return Err(bad("queries, fragments and %-escapes are not supported"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "file" => {
            if !rest.starts_with('/') {
                return Err(bad(
                    "a file URL needs an absolute path and no host: file:///absolute/path",
                ));
            }
            if rest.split('/').any(|s| s == "." || s == "..") {
                return Err(bad("the path must not contain . or .. segments"));
            }
            let trimmed = rest.trim_end_matches('/');
            let path = if trimmed.is_empty() { "/" } else { trimmed };
            Ok(RemoteUrl::File(PathBuf::from(path)))
        }
        "s3" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let valid = (3..=63).contains(&bucket.len())
                && bucket.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'
                });
            if !valid {
                return Err(bad(
                    "an S3 bucket name has 3 to 63 lowercase letters, digits, dots or hyphens",
                ));
            }
            Ok(RemoteUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            })
        }
        other => Err(bad(&format!(
            "unknown scheme \"{other}\" (supported: file, s3)"
        ))),
    }
}

/// Opens the remote at `url` (nothing is read or written yet).
pub fn open(url: &str) -> Result<Remote<Box<dyn ObjectStore>>> {
    open_with(url, super::file::DEFAULT_LOCK_WAIT)
}

/// Opens the remote at `url`; a ref update waits at most `lock_wait` for another
/// writer.
pub fn open_with(
    url: &str,
    lock_wait: std::time::Duration,
) -> Result<Remote<Box<dyn ObjectStore>>> {
    match parse_url(url)? {
        RemoteUrl::File(path) => Ok(Remote::new(Box::new(
            FileStore::new(path).with_lock_wait(lock_wait),
        ))),
        s3 @ RemoteUrl::S3 { .. } => Err(RemoteError::Unsupported {
            url: s3.to_string(),
            reason: "S3 remotes are not supported yet".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(url: &str) -> String {
        match parse_url(url) {
            Err(RemoteError::BadUrl { url: u, reason }) => {
                assert_eq!(u, url, "the error names the URL");
                reason
            }
            other => panic!("{url}: expected BadUrl, got {other:?}"),
        }
    }

    #[test]
    fn file_urls() {
        let p = |s: &str| parse_url(s).unwrap();
        assert_eq!(p("file:///srv/r"), RemoteUrl::File("/srv/r".into()));
        assert_eq!(p("FILE:///srv/r/"), RemoteUrl::File("/srv/r".into()));
        assert_eq!(p("file:///"), RemoteUrl::File("/".into()));
        assert_eq!(p("file:///srv/r").to_string(), "file:///srv/r");
    }

    #[test]
    fn s3_urls() {
        let u = parse_url("s3://my-bucket/some/prefix/").unwrap();
        let want = RemoteUrl::S3 {
            bucket: "my-bucket".into(),
            prefix: "some/prefix".into(),
        };
        assert_eq!(u, want);
        assert_eq!(u.to_string(), "s3://my-bucket/some/prefix");
        assert!(parse_url("s3://bkt").is_ok());
        assert!(reason("s3://B/x").contains("bucket"));
        assert!(reason("s3:///x").contains("bucket"));
        match open("s3://bkt/p") {
            Err(e @ RemoteError::Unsupported { .. }) => {
                assert!(e.to_string().contains("s3://bkt/p"), "{e}");
                assert!(e.to_string().contains("not supported yet"), "{e}");
            }
            Err(e) => panic!("expected Unsupported, got {e}"),
            Ok(_) => panic!("expected Unsupported, got a remote"),
        }
    }

    #[test]
    fn bad_urls() {
        assert!(reason("").contains("empty"));
        assert!(reason("   ").contains("empty"));
        assert!(reason("/srv/r").contains("file:///"));
        assert!(reason("relative/path").contains("not a URL"));
        assert!(reason("file://host/srv/r").contains("no host"));
        assert!(reason("file://relative").contains("absolute"));
        assert!(reason("file:///a/../b").contains(".."));
        assert!(reason("file:///a%20b").contains("%"));
        assert!(reason("http://x/y").contains("unknown scheme \"http\""));
        assert!(reason("file:///a\nb").contains("control"));
    }
}
