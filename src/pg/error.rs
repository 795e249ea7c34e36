//! One error type for the glue, converted once at the SQL boundary into an ERROR with a
//! SQLSTATE, a message that names the problem and a hint that says what to do.

use crate::codec::CodecError;
use crate::commit::CommitError;
use crate::prolly::ProllyError;
use crate::store::StoreError;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgSqlErrorCode as Code;

#[derive(Debug)]
pub struct VcError {
    pub code: Code,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

pub type VcResult<T> = Result<T, VcError>;

impl VcError {
    pub fn new(code: Code, message: impl Into<String>) -> VcError {
        VcError {
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> VcError {
        self.hint = Some(hint.into());
        self
    }

    pub fn detail(mut self, detail: impl Into<String>) -> VcError {
        self.detail = Some(detail.into());
        self
    }

    /// Raises the error as a PostgreSQL ERROR (aborting the statement).
    pub fn raise(self) -> ! {
        let mut report = ErrorReport::new(self.code, self.message, "pgvc");
        if let Some(h) = self.hint {
            report = report.set_hint(h);
        }
        if let Some(d) = self.detail {
            report = report.set_detail(d);
        }
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR does not return")
    }
}

/// Runs the body of a SQL function, turning a `VcError` into a PostgreSQL ERROR.
pub fn run<T>(body: impl FnOnce() -> VcResult<T>) -> T {
    match body() {
        Ok(v) => v,
        Err(e) => e.raise(),
    }
}

pub fn invalid(message: impl Into<String>) -> VcError {
    VcError::new(Code::ERRCODE_INVALID_PARAMETER_VALUE, message)
}

pub fn null_arg(name: &str) -> VcError {
    VcError::new(
        Code::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        format!("argument \"{name}\" must not be NULL"),
    )
}

impl From<StoreError> for VcError {
    fn from(e: StoreError) -> VcError {
        match e {
            // A store that could not be read (a remote's file, a permission) is not a
            // damaged one: say what failed and keep the cause.
            StoreError::Backend(detail) => {
                let denied =
                    detail.contains("Permission denied") || detail.contains("permission denied");
                let code = if denied {
                    Code::ERRCODE_INSUFFICIENT_PRIVILEGE
                } else {
                    Code::ERRCODE_IO_ERROR
                };
                VcError::new(code, format!("pgvc storage: {detail}")).hint(if denied {
                    "the server's OS user cannot read or write that file: fix its permissions; nothing was applied"
                } else {
                    "the chunk store could not be read; nothing was applied: check the remote's or backup's files and retry"
                })
            }
            other => VcError::new(
                Code::ERRCODE_DATA_CORRUPTED,
                format!("pgvc storage: {other}"),
            )
            .hint("the chunk store is damaged; restore from a backup or re-clone"),
        }
    }
}

impl From<crate::repo::merge::MergeError> for VcError {
    fn from(e: crate::repo::merge::MergeError) -> VcError {
        use crate::repo::merge::MergeError as M;
        match e {
            M::Store(s) => s.into(),
            M::Codec(c) => c.into(),
            M::Prolly(p) => p.into(),
            M::Commit(c) => c.into(),
        }
    }
}

impl From<ProllyError> for VcError {
    fn from(e: ProllyError) -> VcError {
        VcError::new(Code::ERRCODE_DATA_CORRUPTED, format!("pgvc tree: {e}"))
    }
}

impl From<crate::repo::worktree::RewriteError> for VcError {
    fn from(e: crate::repo::worktree::RewriteError) -> VcError {
        match e {
            crate::repo::worktree::RewriteError::Store(s) => s.into(),
            crate::repo::worktree::RewriteError::Codec(c) => c.into(),
        }
    }
}

impl From<CodecError> for VcError {
    fn from(e: CodecError) -> VcError {
        match e {
            CodecError::Store(s) => s.into(),
            other => VcError::new(Code::ERRCODE_DATA_CORRUPTED, format!("pgvc row: {other}")),
        }
    }
}

impl From<CommitError> for VcError {
    fn from(e: CommitError) -> VcError {
        match e {
            CommitError::Store(s) => s.into(),
            CommitError::BadRef(..) | CommitError::NoAncestor(..) => {
                VcError::new(Code::ERRCODE_INVALID_PARAMETER_VALUE, e.to_string()).hint(
                    "name a branch, HEAD, HEAD~N, HEAD^ or at least 7 hex digits of a commit hash",
                )
            }
            other => VcError::new(Code::ERRCODE_DATA_CORRUPTED, other.to_string()),
        }
    }
}

impl From<crate::remote::RemoteError> for VcError {
    fn from(e: crate::remote::RemoteError) -> VcError {
        use crate::remote::RemoteError as R;
        let msg = e.to_string();
        match e {
            R::BadUrl { .. } => VcError::new(Code::ERRCODE_INVALID_PARAMETER_VALUE, msg)
                .hint("write file:///absolute/path, or s3://bucket/prefix with endpoint, region and force_path_style as query parameters"),
            R::Unsupported { ref reason, .. } if reason.contains("conditional writes") => {
                VcError::new(Code::ERRCODE_FEATURE_NOT_SUPPORTED, msg).hint(
                    "use a server that honours If-Match and If-None-Match on PUT (AWS S3, MinIO, Ceph RGW and Cloudflare R2 do), or a file:// remote",
                )
            }
            R::Unsupported { .. } => VcError::new(Code::ERRCODE_FEATURE_NOT_SUPPORTED, msg)
                .hint("the remote was written by a newer pgvc, or the URL names something this pgvc cannot use; see the message"),
            R::Io { ref source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                VcError::new(Code::ERRCODE_INSUFFICIENT_PRIVILEGE, msg)
                    .hint("the server's OS user cannot use the remote's files: fix their owner or permissions")
            }
            R::Io { ref source, .. } if source.kind() == std::io::ErrorKind::TimedOut => {
                VcError::new(Code::ERRCODE_LOCK_NOT_AVAILABLE, msg)
                    .hint("another process holds the remote's lock; find it (a stuck push, a hung filesystem) and retry")
            }
            R::Io { .. } => VcError::new(Code::ERRCODE_IO_ERROR, msg)
                .hint("check that the remote's directory exists, is writable by the server's OS user, and has free space"),
            R::Store { .. } => VcError::new(Code::ERRCODE_IO_ERROR, msg)
                .hint("check the bucket exists, the server's credentials may use it, and the endpoint answers; requests were retried"),
            R::NotFound { .. } | R::CorruptObject { .. } | R::CorruptChunk { .. } | R::MissingChunk { .. } => {
                VcError::new(Code::ERRCODE_DATA_CORRUPTED, msg)
                    .hint("nothing was applied here; repair the remote from a good copy or push to a new one")
            }
            R::NoSuchBranch { .. } => VcError::new(Code::ERRCODE_UNDEFINED_OBJECT, msg)
                .hint("SELECT vc.fetch('origin') brings every branch; then SELECT name FROM vc.refs WHERE kind = 'remote' lists them"),
            R::BadBranch { .. } => VcError::new(Code::ERRCODE_INVALID_PARAMETER_VALUE, msg),
            R::NonFastForward { .. } => VcError::new(Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, msg),
            R::Fenced { .. } => VcError::new(Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, msg),
            R::Contended { .. } => VcError::new(Code::ERRCODE_T_R_SERIALIZATION_FAILURE, msg)
                .hint("retry"),
            R::Local(s) => s.into(),
        }
    }
}

impl From<crate::repo::refs::RefError> for VcError {
    fn from(e: crate::repo::refs::RefError) -> VcError {
        use crate::repo::refs::RefError as R;
        let msg = e.to_string();
        match e {
            R::Unborn { .. } => VcError::new(Code::ERRCODE_UNDEFINED_OBJECT, msg)
                .hint("track a table and run SELECT vc.commit('message') first"),
            R::Unknown { .. } => VcError::new(Code::ERRCODE_UNDEFINED_OBJECT, msg).hint(
                "list commits with SELECT * FROM vc.log(), branches with SELECT name FROM vc.refs",
            ),
            R::Ambiguous { .. } => VcError::new(Code::ERRCODE_AMBIGUOUS_PARAMETER, msg)
                .hint("give more hex digits of the hash"),
            R::Moved { .. } => VcError::new(Code::ERRCODE_T_R_SERIALIZATION_FAILURE, msg)
                .hint("retry the operation"),
        }
    }
}

impl From<pgrx::spi::SpiError> for VcError {
    fn from(e: pgrx::spi::SpiError) -> VcError {
        VcError::new(Code::ERRCODE_INTERNAL_ERROR, format!("pgvc SPI: {e}"))
    }
}

/// The caller lacks `privilege` on `table`, which `what` needs.
pub fn denied_table(what: &str, table: &str, privilege: &str) -> VcError {
    VcError::new(
        Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!("permission denied: {what} needs {privilege} on tracked table {table}"),
    )
    .hint(format!(
        "GRANT {privilege} ON {table} TO <role>, or run it as a role that has it"
    ))
}
