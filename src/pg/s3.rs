//! The server's S3 credentials (docs/S3.md): superuser-only settings, hidden from
//! other roles in `SHOW` and `pg_settings`, handed to `remote::s3` when it opens an
//! `s3://` remote. Without them, the server's AWS environment variables, then its OS
//! user's credentials file.

use crate::remote::s3::Credentials;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use std::ffi::CString;

static ACCESS_KEY_ID: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static SECRET_ACCESS_KEY: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static SESSION_TOKEN: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn init() {
    let define = |name: &'static std::ffi::CStr, short: &'static std::ffi::CStr, s| {
        GucRegistry::define_string_guc(
            name,
            short,
            c"Set in postgresql.conf or by a superuser; never shown to other roles.",
            s,
            GucContext::Suset,
            GucFlags::SUPERUSER_ONLY | GucFlags::NO_SHOW_ALL,
        )
    };
    define(
        c"vc.s3_access_key_id",
        c"Access key id of the server's S3 credentials for s3:// remotes and backups.",
        &ACCESS_KEY_ID,
    );
    define(
        c"vc.s3_secret_access_key",
        c"Secret access key of the server's S3 credentials.",
        &SECRET_ACCESS_KEY,
    );
    define(
        c"vc.s3_session_token",
        c"Session token of the server's S3 credentials (temporary credentials only).",
        &SESSION_TOKEN,
    );
    crate::remote::s3::set_credentials_source(configured);
}

/// The credentials the settings give, if both key id and secret are set.
fn configured() -> Option<Credentials> {
    let get = |s: &GucSetting<Option<CString>>| {
        s.get()
            .and_then(|c| c.to_str().ok().map(str::to_string))
            .filter(|v| !v.is_empty())
    };
    Some(Credentials {
        access_key_id: get(&ACCESS_KEY_ID)?,
        secret_access_key: get(&SECRET_ACCESS_KEY)?,
        session_token: get(&SESSION_TOKEN),
    })
}
