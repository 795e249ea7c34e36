//! Remote URLs: `file:///absolute/path` and
//! `s3://bucket/prefix?endpoint=http://host:port&region=r&force_path_style=true`
//! (docs/S3.md). A URL never holds credentials: they come from the server.

use super::file::FileStore;
use super::object::ObjectStore;
use super::{Remote, RemoteError, Result};
use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RemoteUrl {
    /// An absolute local path, without trailing slash (except `/` itself).
    File(PathBuf),
    /// A bucket and a key prefix without leading or trailing slashes (may be empty),
    /// and where the server is.
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: Option<String>,
        force_path_style: bool,
    },
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteUrl::File(p) => write!(f, "file://{}", p.display()),
            RemoteUrl::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                force_path_style,
            } => {
                write!(f, "s3://{bucket}")?;
                if !prefix.is_empty() {
                    write!(f, "/{prefix}")?;
                }
                let mut q = Vec::new();
                if let Some(e) = endpoint {
                    q.push(format!("endpoint={e}"));
                }
                if let Some(r) = region {
                    q.push(format!("region={r}"));
                }
                if *force_path_style {
                    q.push("force_path_style=true".into());
                }
                if !q.is_empty() {
                    write!(f, "?{}", q.join("&"))?;
                }
                Ok(())
            }
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
    let (rest, query) = match (scheme.eq_ignore_ascii_case("s3"), rest.split_once('?')) {
        (true, Some((r, q))) => (r, Some(q)),
        _ => (rest, None),
    };
    if rest.contains(['?', '#', '%']) || query.is_some_and(|q| q.contains(['#', '%', '?'])) {
        return Err(bad(
            "fragments and %-escapes are not supported, nor queries but an s3 URL's",
        ));
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
            let prefix = prefix.trim_matches('/');
            if !prefix.is_empty() && !super::object::valid_key(prefix) {
                return Err(bad(
                    "an S3 prefix is /-separated segments of letters, digits, '.', '_' and '-', none starting with '.'",
                ));
            }
            let (mut endpoint, mut region, mut force_path_style) = (None, None, false);
            for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                match k {
                    "endpoint" => {
                        let host = v
                            .strip_prefix("http://")
                            .or_else(|| v.strip_prefix("https://"))
                            .ok_or_else(|| bad("endpoint must be http://host[:port] or https://host[:port]"))?;
                        let host = host.trim_end_matches('/');
                        if host.is_empty()
                            || !host.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
                            })
                        {
                            return Err(bad(
                                "endpoint must be http://host[:port] or https://host[:port], with no path and no credentials",
                            ));
                        }
                        let scheme = if v.starts_with("https://") { "https://" } else { "http://" };
                        endpoint = Some(format!("{scheme}{host}"));
                    }
                    "region" => {
                        if v.is_empty()
                            || !v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                        {
                            return Err(bad("region is lowercase letters, digits and hyphens, e.g. us-east-1"));
                        }
                        region = Some(v.to_string());
                    }
                    "force_path_style" => {
                        force_path_style = match v {
                            "true" => true,
                            "false" => false,
                            _ => return Err(bad("force_path_style is true or false")),
                        }
                    }
                    other => {
                        return Err(bad(&format!(
                            "unknown parameter \"{other}\" (supported: endpoint, region, force_path_style); credentials never go in a URL: set vc.s3_access_key_id and vc.s3_secret_access_key, or the server's AWS environment"
                        )))
                    }
                }
            }
            Ok(RemoteUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
                endpoint,
                region,
                force_path_style,
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
        s3 @ RemoteUrl::S3 { .. } => Ok(Remote::new(Box::new(open_s3(&s3, None)?))),
    }
}

/// The S3 store of an `s3://` URL, with `credentials` (None: the server's
/// environment, then its credentials file).
pub fn open_s3(
    url: &RemoteUrl,
    credentials: Option<super::s3::Credentials>,
) -> Result<super::s3::S3Store> {
    let RemoteUrl::S3 {
        bucket,
        prefix,
        endpoint,
        region,
        force_path_style,
    } = url
    else {
        return Err(RemoteError::BadUrl {
            url: url.to_string(),
            reason: "not an s3:// URL".into(),
        });
    };
    let credentials = credentials
        .or_else(super::s3::configured_credentials)
        .or_else(|| {
            // The environment first (object_store reads AWS_* itself); then the
            // server's credentials file.
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
                return None;
            }
            let file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
                .map(std::path::PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME")
                        .map(|h| std::path::Path::new(&h).join(".aws/credentials"))
                })?;
            let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
            super::s3::credentials_from_file(&std::fs::read_to_string(file).ok()?, &profile)
        });
    let opts = super::s3::S3Options {
        endpoint: endpoint.clone(),
        region: region.clone(),
        force_path_style: *force_path_style,
        credentials,
        timeout: std::time::Duration::ZERO,
    };
    super::s3::S3Store::new(&url.to_string(), bucket, prefix, &opts)
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
            endpoint: None,
            region: None,
            force_path_style: false,
        };
        assert_eq!(u, want);
        assert_eq!(u.to_string(), "s3://my-bucket/some/prefix");
        assert!(parse_url("s3://bkt").is_ok());
        assert!(reason("s3://B/x").contains("bucket"));
        assert!(reason("s3:///x").contains("bucket"));
        let full =
            "s3://pgvc/db1?endpoint=http://127.0.0.1:9000&region=us-east-1&force_path_style=true";
        let u = parse_url(full).unwrap();
        assert_eq!(
            u,
            RemoteUrl::S3 {
                bucket: "pgvc".into(),
                prefix: "db1".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: Some("us-east-1".into()),
                force_path_style: true,
            }
        );
        assert_eq!(
            u.to_string(),
            full,
            "shown as given (no credentials are ever in it)"
        );
        assert!(reason("s3://bkt/p?access_key=AKIA").contains("credentials never go in a URL"));
        assert!(reason("s3://bkt/p?endpoint=ftp://x").contains("endpoint"));
        assert!(reason("s3://bkt/p?endpoint=http://user:pw@host").contains("no credentials"));
        assert!(reason("s3://bkt/p?endpoint=http://host/path").contains("no path"));
        assert!(reason("s3://bkt/p?region=US_EAST").contains("region"));
        assert!(reason("s3://bkt/p?force_path_style=yes").contains("true or false"));
        assert!(reason("s3://bkt/../p").contains("prefix"));
        assert!(reason("file:///a?b").contains("queries"));
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
