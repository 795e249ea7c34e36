//! The one module that builds SQL text at run time.
//!
//! Every statement pgvc runs is either a `&'static str` written in the source (no
//! run-time data in it: values travel as typed parameters) or built here, from:
//! - [`Ident`] and [`QualName`]: names, always re-quoted by the server's
//!   `quote_identifier`, never spliced as received;
//! - [`SqlType`]: a type resolved through the catalog (`parseTypeString`, which accepts
//!   exactly one type name) and rendered canonically by `format_type`;
//! - [`SqlExpr`]: a default or generated expression parsed as exactly one expression
//!   (or refused) and spliced only inside parentheses of our own;
//! - numbers (OIDs, parameter positions).
//!
//! `spi` only runs a [`Sql`], which outside this module can only be made from a
//! `&'static str`, and refuses any text that parses to more than one statement. So a
//! name or a type read from a remote, a key log or a table's catalog can never end a
//! statement and start another, and a review of what pgvc executes is a review of
//! this file.
//!
//! Everything decoded from a commit (table and column names, type names, default and
//! generated expressions, sequence names) is untrusted: commits arrive from remotes
//! and backups that other people can write.

use super::error::{VcError, VcResult};
use crate::codec::{JsonKind, KeyKind};
use crate::commit::{Column, TableSchema};
use pgrx::pg_sys;
use pgrx::PgSqlErrorCode as Code;
use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::fmt;

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1 bytes); longer ones are
/// truncated, which would silently change which object a name means.
const MAX_IDENT: usize = 63;

/// The text of one SQL statement, built from trusted parts.
#[derive(Clone, Debug)]
pub struct Sql(Cow<'static, str>, Planning);

/// How `spi` plans a statement it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Planning {
    /// PostgreSQL's choice: a plan for each call's parameters until a generic one
    /// looks as cheap.
    PerCall,
    /// One generic plan for all calls (`Sql::plan_once`).
    Once,
}

impl Sql {
    fn built(s: String) -> Sql {
        Sql(Cow::Owned(s), Planning::PerCall)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A fixed catalog query to plan once, generically, for every call. PostgreSQL's
    /// plan cache kept planning the indexes-and-constraints query of every table at
    /// every commit (its generic plan looked dearer than a custom one): about half
    /// of a one-row commit's CPU. Only for statements measured to do well with a
    /// generic plan: the user-types query, for one, is 200 times slower with one.
    pub const fn plan_once(text: &'static str) -> Sql {
        Sql(Cow::Borrowed(text), Planning::Once)
    }

    pub fn planned_once(&self) -> bool {
        self.1 == Planning::Once
    }
}

impl From<&'static str> for Sql {
    fn from(s: &'static str) -> Sql {
        Sql(Cow::Borrowed(s), Planning::PerCall)
    }
}

impl fmt::Display for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad_name(what: &str, name: &str, why: &str) -> VcError {
    VcError::new(
        Code::ERRCODE_INVALID_NAME,
        format!("invalid {what} {:?}: {why}", truncate(name)),
    )
    .hint("the commit names an object in a way this server would not produce; if it came from a remote or backup, check who can write there")
}

/// At most 100 characters of untrusted text for an error message.
fn truncate(s: &str) -> String {
    if s.chars().count() <= 100 {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(100).collect::<String>())
    }
}

/// A plain identifier: non-empty, no NUL, at most 63 bytes.
fn check_ident(what: &str, name: &str) -> VcResult<()> {
    if name.is_empty() {
        return Err(bad_name(what, name, "empty"));
    }
    if name.contains('\0') {
        return Err(bad_name(what, name, "contains a NUL byte"));
    }
    if name.len() > MAX_IDENT {
        return Err(bad_name(what, name, "longer than 63 bytes"));
    }
    Ok(())
}

/// An identifier, quoted for SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident(String);

impl Ident {
    /// Quotes a name. Names read from this database's catalog are always valid; a name
    /// from a commit goes through [`Ident::checked`].
    pub fn new(name: &str) -> Ident {
        Ident(pgrx::spi::quote_identifier(name))
    }

    /// Quotes a name from untrusted input, refusing what the server would not keep as
    /// given (empty, NUL, too long).
    pub fn checked(what: &str, name: &str) -> VcResult<Ident> {
        check_ident(what, name)?;
        Ok(Ident::new(name))
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A schema-qualified name: the raw parts, rendered quoted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QualName {
    pub schema: String,
    pub name: String,
}

impl QualName {
    /// Parses `schema.name` as rendered by `format('%I.%I')` (how pgvc records table
    /// and sequence names), refusing anything but exactly two valid identifiers.
    pub fn parse(what: &str, text: &str) -> VcResult<QualName> {
        let parts = split_qualified(text).ok_or_else(|| {
            bad_name(
                what,
                text,
                "not a schema-qualified name (schema.name, quoted where needed)",
            )
        })?;
        let [schema, name]: [String; 2] = parts
            .try_into()
            .map_err(|_| bad_name(what, text, "needs exactly two parts, schema.name"))?;
        check_ident(what, &schema)?;
        check_ident(what, &name)?;
        Ok(QualName { schema, name })
    }
}

impl QualName {
    /// As [`QualName::parse`], for a name from a commit that pgvc will create: refuses
    /// pgvc's own schema and the system schemas (a commit never holds those).
    pub fn parse_user(what: &str, text: &str) -> VcResult<QualName> {
        let q = QualName::parse(what, text)?;
        if q.schema == "vc" || q.schema.starts_with("pg_") || q.schema == "information_schema" {
            return Err(bad_name(what, text, "in a system or pgvc schema"));
        }
        Ok(q)
    }
}

impl fmt::Display for QualName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", Ident::new(&self.schema), Ident::new(&self.name))
    }
}

/// Splits a dotted name into its identifiers as PostgreSQL's `parse_ident` does:
/// `"..."` with `""` for a quote keeps its text as is, an unquoted part is folded to
/// lower case (ASCII). None for anything else (spaces, empty parts, stray quotes).
pub fn split_qualified(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
            if part.is_empty() {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                let ok = c == '_'
                    || c.is_ascii_alphabetic()
                    || !c.is_ascii()
                    || (!part.is_empty() && (c.is_ascii_digit() || c == '$'));
                if !ok {
                    break;
                }
                part.push(c.to_ascii_lowercase());
                chars.next();
            }
            if part.is_empty() {
                return None;
            }
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => continue,
            Some(_) => return None,
        }
    }
}

/// A type, resolved through the catalog and rendered by `format_type`: exactly one
/// type name, schema-qualified unless in `pg_catalog` (pgvc functions run with
/// `search_path = pg_catalog`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqlType(String);

impl SqlType {
    /// Resolves a type name. Refuses a string that is not exactly one existing type, or
    /// that is not the canonical `format_type` text of that type (what every commit
    /// records): a commit made by pgvc never holds another spelling.
    pub fn resolve(text: &str) -> VcResult<SqlType> {
        let refuse = |why: &str| {
            VcError::new(
                Code::ERRCODE_UNDEFINED_OBJECT,
                format!("type {:?} cannot be used: {why}", truncate(text)),
            )
            .hint("create the type here first (user enums, domains and composites do not travel with a commit); if the commit came from a remote or backup, check who can write there")
        };
        if text.is_empty() || text.contains('\0') || text.len() > 1000 {
            return Err(refuse("not a type name"));
        }
        let c = CString::new(text).expect("checked: no NUL");
        let resolved = in_subtransaction(|| {
            let mut oid = pg_sys::InvalidOid;
            let mut typmod: i32 = -1;
            // SAFETY: a NUL-terminated string and two out-parameters; errors (syntax,
            // more than a type name, a shell type) are raised as PostgreSQL errors and
            // caught, with their resources, by the subtransaction.
            unsafe { pg_sys::parseTypeString(c.as_ptr(), &mut oid, &mut typmod, true) };
            if oid == pg_sys::InvalidOid {
                return None;
            }
            // SAFETY: a valid type OID; the result is a palloc'd C string.
            let s = unsafe { CStr::from_ptr(pg_sys::format_type_with_typemod(oid, typmod)) };
            Some(s.to_string_lossy().into_owned())
        })
        .flatten();
        match resolved {
            None => Err(refuse("no such type here, or not a type name")),
            Some(canon) if canon != text => Err(refuse(&format!(
                "this server spells it {canon:?}; a commit always records the canonical spelling"
            ))),
            Some(canon) => Ok(SqlType(canon)),
        }
    }
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A default or generated-column expression, known to parse as exactly one
/// expression. Rendered inside two pairs of parentheses of ours and a newline (so a
/// trailing `--` comment cannot swallow our closing parenthesis).
#[derive(Clone, Debug)]
pub struct SqlExpr(String);

impl SqlExpr {
    pub fn checked(what: &str, text: &str) -> VcResult<SqlExpr> {
        let refuse = || {
            VcError::new(
                Code::ERRCODE_INVALID_TABLE_DEFINITION,
                format!("{what} {:?} is not a single SQL expression", truncate(text)),
            )
            .hint("a commit made by pgvc records expressions as PostgreSQL prints them; if it came from a remote or backup, check who can write there")
        };
        if text.contains('\0') {
            return Err(refuse());
        }
        let wrapped = format!("SELECT ((\n{text}\n))");
        let c = CString::new(wrapped).expect("checked: no NUL");
        let one = in_subtransaction(|| {
            // SAFETY: raw_parser reads a NUL-terminated string and returns a List of
            // RawStmt in the current memory context; syntax errors are caught by the
            // subtransaction.
            unsafe {
                let list = pg_sys::raw_parser(c.as_ptr(), pg_sys::RawParseMode::RAW_PARSE_DEFAULT);
                single_target_select(list)
            }
        })
        .unwrap_or(false);
        if one {
            Ok(SqlExpr(text.to_string()))
        } else {
            Err(refuse())
        }
    }
}

/// Whether a stored expression (a `pg_node_tree`'s text, as `pg_constraint.conbin`
/// holds it) calls only immutable functions and operators: one that only computes.
/// Built-in functions are pinned and have no `pg_depend` rows, so the expression
/// itself is looked at, as PostgreSQL does for index expressions.
pub fn node_is_immutable(node_text: &str) -> bool {
    node_lacks(node_text, pg_sys::contain_mutable_functions)
}

/// Whether a stored expression (a `pg_node_tree`'s text) calls no volatile function.
pub fn node_has_no_volatile(node_text: &str) -> bool {
    node_lacks(node_text, pg_sys::contain_volatile_functions)
}

/// Parses a stored expression and asks `contains` (a `contain_*_functions` walker of
/// PostgreSQL's) about it: true when it parsed and `contains` found nothing.
fn node_lacks(node_text: &str, contains: unsafe fn(*mut pg_sys::Node) -> bool) -> bool {
    let Ok(c) = CString::new(node_text) else {
        return false;
    };
    // SAFETY: stringToNode reads a NUL-terminated node string (from the catalog) and
    // returns a node tree in the current memory context; the walker only reads it.
    unsafe {
        let node = pg_sys::stringToNode(c.as_ptr()) as *mut pg_sys::Node;
        !node.is_null() && !contains(node)
    }
}

impl fmt::Display for SqlExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "((\n{}\n))", self.0)
    }
}

/// Runs `f` in an internal subtransaction (as PL/pgSQL runs a block with an EXCEPTION
/// clause): `None` if it raised an ERROR, which is then rolled back with whatever it
/// held (cache references, memory, SPI results made inside). A query cancel or
/// termination is not swallowed. SPI must be connected outside it, as PL/pgSQL's is.
pub(crate) fn in_subtransaction<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Option<T> {
    in_subtransaction_catching(None, f).ok()
}

/// `in_subtransaction`, catching only the ERRORs whose codes `only` lists (all but
/// cancel, shutdown and out-of-memory when `None`); any other ERROR is rolled back
/// with the subtransaction and raised again. The caught ERROR's message is returned.
pub(crate) fn in_subtransaction_catching<T>(
    only: Option<&'static [Code]>,
    f: impl FnOnce() -> T + std::panic::UnwindSafe,
) -> Result<T, String> {
    // SAFETY: backend globals read and restored around the subtransaction, as
    // PL/pgSQL's exec_stmt_block does; SPI calls inside it use the connection made
    // outside (as PL/pgSQL's do), and the subtransaction's abort releases what they
    // held.
    let (ctx, owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    let restore = move || unsafe {
        pg_sys::MemoryContextSwitchTo(ctx);
        pg_sys::CurrentResourceOwner = owner;
    };
    // SAFETY: see above.
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(ctx);
    }
    pgrx::PgTryBuilder::new(move || {
        let v = f();
        // SAFETY: the subtransaction begun above, still current.
        unsafe { pg_sys::ReleaseCurrentSubTransaction() };
        restore();
        Ok(v)
    })
    .catch_others(move |e| {
        // SAFETY: the subtransaction begun above, still current after the ERROR.
        unsafe { pg_sys::RollbackAndReleaseCurrentSubTransaction() };
        restore();
        let (code, message) = match &e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r) => {
                (r.sql_error_code(), r.message().to_string())
            }
            // A bug of ours, not a value the server refused: never swallowed.
            pg_sys::panic::CaughtError::RustPanic { .. } => e.rethrow(),
        };
        if matches!(
            code,
            Code::ERRCODE_QUERY_CANCELED
                | Code::ERRCODE_ADMIN_SHUTDOWN
                | Code::ERRCODE_OUT_OF_MEMORY
        ) || only.is_some_and(|codes| !codes.contains(&code))
        {
            e.rethrow();
        }
        Err(message)
    })
    .execute()
}

/// True if `list` holds exactly one `SELECT` with one target and nothing else.
///
/// # Safety
/// `list` must be a List of RawStmt returned by `raw_parser`.
unsafe fn single_target_select(list: *mut pg_sys::List) -> bool {
    if list.is_null() || (*list).length != 1 {
        return false;
    }
    let raw = pg_sys::list_nth(list, 0) as *mut pg_sys::RawStmt;
    let stmt = (*raw).stmt;
    if stmt.is_null() || (*stmt).type_ != pg_sys::NodeTag::T_SelectStmt {
        return false;
    }
    let s = stmt as *mut pg_sys::SelectStmt;
    let s = &*s;
    !s.targetList.is_null()
        && (*s.targetList).length == 1
        && s.distinctClause.is_null()
        && s.intoClause.is_null()
        && s.fromClause.is_null()
        && s.whereClause.is_null()
        && s.groupClause.is_null()
        && s.havingClause.is_null()
        && s.windowClause.is_null()
        && s.valuesLists.is_null()
        && s.sortClause.is_null()
        && s.limitOffset.is_null()
        && s.limitCount.is_null()
        && s.lockingClause.is_null()
        && s.withClause.is_null()
        && s.op == pg_sys::SetOperation::SETOP_NONE
}

/// A quoted SQL string literal.
pub fn literal(s: &str) -> String {
    pgrx::spi::quote_literal(s)
}

// ---------------------------------------------------------------------------------
// Key logs and tracking triggers

/// What names a tracked table's key log `vc.log_<id>` and its trigger function
/// `vc.trg_<id>`: `t` and the table's identity in history (hex), which `vc.tracked`
/// keeps and pg_dump carries, so a restored database finds its logs and triggers
/// under the same names. (pgvc 0.1 named them by the table's OID, which a restore
/// changes: `Legacy`, only to find and drop such leftovers.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogId {
    Table(u64),
    Legacy(u32),
}

impl fmt::Display for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogId::Table(id) => write!(f, "t{id:016x}"),
            LogId::Legacy(oid) => write!(f, "{oid}"),
        }
    }
}

impl LogId {
    /// The id of a key log's name (`log_<id>`), as stored in `vc.tracked.log_table`.
    pub fn from_log_name(name: &str) -> Option<LogId> {
        let rest = name.strip_prefix("log_")?;
        match rest.strip_prefix('t') {
            Some(hex) if hex.len() == 16 => u64::from_str_radix(hex, 16).ok().map(LogId::Table),
            Some(_) => None,
            None => rest.parse().ok().map(LogId::Legacy),
        }
    }
}

/// The key log of a tracked table: `vc.log_<id>`.
pub fn log_table(id: &LogId) -> String {
    format!("vc.log_{id}")
}

pub fn log_name(id: &LogId) -> String {
    format!("log_{id}")
}

/// The trigger function's name (in schema `vc`).
pub fn trigger_function_name(id: &LogId) -> String {
    format!("trg_{id}")
}

/// `CREATE TABLE vc.log_<id> (k1 t1 NOT NULL, ...)`: NOT NULL, so a role that may
/// append to the log cannot put a key there that no row can have.
pub fn create_log(oid: &LogId, cols: &[(String, SqlType)]) -> Sql {
    let defs: Vec<String> = cols
        .iter()
        .map(|(n, t)| format!("{} {t} NOT NULL", Ident::new(n)))
        .collect();
    // USING heap: the native key logger writes it with heap_insert, whatever
    // default_table_access_method says.
    Sql::built(format!(
        "CREATE TABLE {} ({}) USING heap",
        log_table(oid),
        defs.join(", ")
    ))
}

pub fn drop_log(oid: &LogId) -> Sql {
    Sql::built(format!("DROP TABLE IF EXISTS {}", log_table(oid)))
}

pub fn log_grants(oid: &LogId) -> [Sql; 2] {
    [
        Sql::built(format!("REVOKE ALL ON {} FROM PUBLIC", log_table(oid))),
        Sql::built(format!("GRANT INSERT ON {} TO PUBLIC", log_table(oid))),
    ]
}

/// The trigger function that appends a statement's changed keys to the key log.
///
/// With `native` = Some(library) (the extension's owner is a superuser, as
/// `CREATE EXTENSION pgvc` requires), a C-language function bound to pgvc's
/// `_log_keys_wrapper` (`pg::keylog`): it finds the log from its own name, so one
/// symbol serves every table. Otherwise (and for a table without a primary key, whose
/// function logs nothing) PL/pgSQL. Its body is passed as a quoted string literal,
/// never between dollar quotes: a key column name may contain anything, `$f$`
/// included, and only literal quoting keeps the body one string whatever the names
/// are. The names inside the body are quoted identifiers, so PL/pgSQL reads each as
/// one name.
pub fn create_log_trigger_function(oid: &LogId, key_cols: &[String], native: Option<&str>) -> Sql {
    if let (Some(library), false) = (native, key_cols.is_empty()) {
        return Sql::built(format!(
            "CREATE OR REPLACE FUNCTION vc.trg_{oid}() RETURNS trigger LANGUAGE c AS {}, '_log_keys_wrapper'",
            literal(library)
        ));
    }
    let pk: Vec<String> = key_cols.iter().map(|c| Ident::new(c).to_string()).collect();
    let pk = pk.join(", ");
    let log = log_table(oid);
    let body = if key_cols.is_empty() {
        "BEGIN RETURN NULL; END".to_string()
    } else {
        format!(
            "BEGIN IF TG_OP = 'INSERT' THEN \
               INSERT INTO {log} SELECT {pk} FROM vc_new; \
             ELSIF TG_OP = 'DELETE' THEN \
               INSERT INTO {log} SELECT {pk} FROM vc_old; \
             ELSE \
               INSERT INTO {log} SELECT {pk} FROM vc_new UNION ALL SELECT {pk} FROM vc_old; \
             END IF; RETURN NULL; END"
        )
    };
    Sql::built(format!(
        "CREATE OR REPLACE FUNCTION vc.trg_{oid}() RETURNS trigger LANGUAGE plpgsql AS {}",
        literal(&body)
    ))
}

pub fn revoke_trigger_function(oid: &LogId) -> Sql {
    Sql::built(format!("REVOKE ALL ON FUNCTION vc.trg_{oid}() FROM PUBLIC"))
}

pub fn drop_trigger_function(oid: &LogId) -> Sql {
    Sql::built(format!("DROP FUNCTION IF EXISTS vc.trg_{oid}()"))
}

/// The statement triggers that track `table` (the tracked table or a partition) into
/// the key log of table `oid`, the TRUNCATE marker and the write guard.
pub fn create_tracking_triggers(table: &QualName, oid: &LogId) -> Vec<Sql> {
    let mut out = Vec::new();
    for (event, refs) in [
        ("INSERT", "NEW TABLE AS vc_new"),
        ("UPDATE", "OLD TABLE AS vc_old NEW TABLE AS vc_new"),
        ("DELETE", "OLD TABLE AS vc_old"),
    ] {
        out.push(Sql::built(format!(
            "CREATE TRIGGER vc_track_{} AFTER {event} ON {table} REFERENCING {refs} \
             FOR EACH STATEMENT EXECUTE FUNCTION vc.trg_{oid}()",
            event.to_lowercase()
        )));
    }
    out.push(Sql::built(format!(
        "CREATE TRIGGER vc_track_truncate AFTER TRUNCATE ON {table} \
         FOR EACH STATEMENT EXECUTE FUNCTION vc._on_truncate()"
    )));
    out.push(Sql::built(format!(
        "CREATE TRIGGER vc_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} \
         FOR EACH STATEMENT EXECUTE FUNCTION vc._guard()"
    )));
    out
}

/// The names of pgvc's triggers on a tracked table.
pub const TRACKING_TRIGGERS: [&str; 5] = [
    "vc_track_insert",
    "vc_track_update",
    "vc_track_delete",
    "vc_track_truncate",
    "vc_guard",
];

pub fn drop_tracking_triggers(table: &QualName) -> Vec<Sql> {
    TRACKING_TRIGGERS
        .iter()
        .map(|t| drop_trigger(t, table))
        .collect()
}

/// `DROP TRIGGER IF EXISTS` of one of pgvc's triggers (a name from
/// [`TRACKING_TRIGGERS`]).
pub fn drop_trigger(name: &'static str, table: &QualName) -> Sql {
    debug_assert!(TRACKING_TRIGGERS.contains(&name));
    Sql::built(format!("DROP TRIGGER IF EXISTS {name} ON {table}"))
}

/// The row trigger that refuses writes of rows another server owns
/// (`vc.set_row_owner`); the owner column's name is the trigger's argument.
/// (AFTER each row: a stored generated owner column is computed by then.)
pub fn create_row_owner_triggers(table: &QualName, column: &str) -> [Sql; 2] {
    [
        Sql::built(format!(
            "CREATE TRIGGER vc_row_owner AFTER INSERT OR UPDATE OR DELETE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION vc.row_owner_check({})",
            literal(column)
        )),
        Sql::built(format!(
            "CREATE TRIGGER vc_row_owner_truncate BEFORE TRUNCATE ON {table} \
             FOR EACH STATEMENT EXECUTE FUNCTION vc.row_owner_check({})",
            literal(column)
        )),
    ]
}

pub fn drop_row_owner_triggers(table: &QualName) -> [Sql; 2] {
    [
        Sql::built(format!("DROP TRIGGER IF EXISTS vc_row_owner ON {table}")),
        Sql::built(format!(
            "DROP TRIGGER IF EXISTS vc_row_owner_truncate ON {table}"
        )),
    ]
}

/// Empties a key log.
pub fn clear_log(oid: &LogId) -> Sql {
    Sql::built(format!("DELETE FROM {}", log_table(oid)))
}

/// Whether a key log is empty, and its relation id.
pub fn log_is_empty(oid: &LogId) -> Sql {
    Sql::built(format!(
        "SELECT NOT EXISTS (SELECT 1 FROM {0}), '{0}'::regclass::oid",
        log_table(oid)
    ))
}

pub fn truncate_log(oid: &LogId) -> Sql {
    Sql::built(format!("TRUNCATE {}", log_table(oid)))
}

/// Largest key-log row (`pg_column_size`) that can name a row: a primary key's index
/// entry must fit in a third of a page, so anything far bigger was appended by someone
/// else and would only cost memory.
pub const MAX_LOG_ROW: i64 = 10_000;

/// Reads a key log's keys as text (distinct); with `consume`, claims them, in one
/// statement. Rows too big to be a key are skipped; consumed, they are deleted with
/// the others and come back as NULL keys (skipped by the reader), so their bytes are
/// never read out.
pub fn read_log(oid: &LogId, key_cols: &[String], consume: bool) -> Sql {
    let log = log_table(oid);
    let small = format!("pg_catalog.pg_column_size(l.*) <= {MAX_LOG_ROW}");
    Sql::built(if consume {
        let cols: Vec<String> = key_cols
            .iter()
            .map(|c| format!("CASE WHEN {small} THEN l.{} END", Ident::new(c)))
            .collect();
        format!("DELETE FROM {log} l RETURNING {}", cols.join(", "))
    } else {
        let cols: Vec<String> = key_cols.iter().map(|c| Ident::new(c).to_string()).collect();
        format!(
            "SELECT DISTINCT {} FROM {log} l WHERE {small}",
            cols.join(", ")
        )
    })
}

/// Whether a key log holds more than `$1` rows (reads at most `$1 + 1`).
pub fn log_longer_than(oid: &LogId) -> Sql {
    Sql::built(format!(
        "SELECT count(*) > $1 FROM (SELECT 1 FROM {} LIMIT $1 + 1) s",
        log_table(oid)
    ))
}

// ---------------------------------------------------------------------------------
// Tables, schemas, sequences

pub fn drop_table(t: &QualName) -> Sql {
    Sql::built(format!("DROP TABLE {t}"))
}

/// Rows of `child` whose foreign key (`child_cols` -> `parent`'s `parent_cols`, MATCH
/// SIMPLE: a row with a NULL in the key references nothing) finds no row in `parent`,
/// at most $1 of them: each as its key (`key_cols`, or the whole row for a table
/// without one) and the whole row, both jsonb.
pub fn foreign_key_orphans(
    child: &QualName,
    child_cols: &[Ident],
    parent: &QualName,
    parent_cols: &[Ident],
    equality: &[(String, String)],
    key_cols: &[String],
) -> VcResult<Sql> {
    let not_null: Vec<String> = child_cols
        .iter()
        .map(|c| format!("c.{c} IS NOT NULL"))
        .collect();
    // The foreign key's own equality operators (pg_constraint.conpfeqop, parent's
    // type on the left), schema-qualified: not whatever `=` the search path finds.
    let mut matches = Vec::with_capacity(child_cols.len());
    for ((c, p), (schema, op)) in child_cols.iter().zip(parent_cols).zip(equality) {
        if op.is_empty() || !op.chars().all(|ch| "+-*/<>=~!@#%^&|`?".contains(ch)) {
            return Err(crate::pg::error::invalid(format!(
                "not an operator name: {op:?}"
            )));
        }
        matches.push(format!("p.{p} OPERATOR({}.{op}) c.{c}", Ident::new(schema)));
    }
    let key = if key_cols.is_empty() {
        "to_jsonb(c)".to_string()
    } else {
        let pairs: Vec<String> = key_cols
            .iter()
            .map(|k| format!("{}, c.{}", literal(k), Ident::new(k)))
            .collect();
        format!("jsonb_build_object({})", pairs.join(", "))
    };
    Ok(Sql::built(format!(
        "SELECT {key}::text, to_jsonb(c)::text FROM {child} c WHERE {} \
         AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE {}) LIMIT $1",
        not_null.join(" AND "),
        matches.join(" AND ")
    )))
}

/// `lock_exclusive`, failing at once (SQLSTATE 55P03) when someone holds a lock that
/// conflicts.
pub fn lock_exclusive_nowait(t: &QualName) -> Sql {
    Sql::built(format!("LOCK TABLE {t} IN EXCLUSIVE MODE NOWAIT"))
}

pub fn lock_exclusive(t: &QualName) -> Sql {
    Sql::built(format!("LOCK TABLE {t} IN EXCLUSIVE MODE"))
}

pub fn create_schema(schema: &str) -> VcResult<Sql> {
    Ok(Sql::built(format!(
        "CREATE SCHEMA {}",
        Ident::checked("schema name", schema)?
    )))
}

/// `ALTER TABLE|SEQUENCE|SCHEMA ... OWNER TO role`: objects pgvc creates for a caller
/// who is not a superuser belong to that caller.
pub fn owner_to(kind: ObjectKind, object: &str, role: &Ident) -> Sql {
    let kind = match kind {
        ObjectKind::Table => "TABLE",
        ObjectKind::Sequence => "SEQUENCE",
        ObjectKind::Schema => "SCHEMA",
        ObjectKind::Type => "TYPE",
    };
    Sql::built(format!("ALTER {kind} {object} OWNER TO {role}"))
}

#[derive(Clone, Copy)]
pub enum ObjectKind {
    Table,
    Sequence,
    Schema,
    Type,
}

pub fn create_sequence(s: &QualName) -> Sql {
    Sql::built(format!("CREATE SEQUENCE {s}"))
}

pub fn sequence_owned_by(s: &QualName, table: &QualName, col: &Ident) -> Sql {
    Sql::built(format!("ALTER SEQUENCE {s} OWNED BY {table}.{col}"))
}

pub fn rename_sequence(s: &QualName, to: &Ident) -> Sql {
    Sql::built(format!("ALTER SEQUENCE {s} RENAME TO {to}"))
}

pub fn sequence_state(s: &QualName) -> Sql {
    Sql::built(format!("SELECT last_value, is_called FROM {s}"))
}

/// One column of a table to create, every part checked.
pub struct ColumnDef {
    pub name: Ident,
    pub ty: SqlType,
    pub default: Option<SqlExpr>,
    pub generated: Option<SqlExpr>,
    /// `a` (ALWAYS) or `d` (BY DEFAULT).
    pub identity: Option<char>,
    pub not_null: bool,
}

/// `CREATE TABLE` with its columns only: the primary key, indexes and constraints are
/// added after the rows are loaded (`pg::checkout`), as pg_restore does.
pub fn create_table(t: &QualName, cols: &[ColumnDef]) -> Sql {
    let mut defs = Vec::new();
    for c in cols {
        let mut d = format!("{} {}", c.name, c.ty);
        if let Some(g) = &c.generated {
            d.push_str(&format!(" GENERATED ALWAYS AS ({g}) STORED"));
        }
        match c.identity {
            Some('a') => d.push_str(" GENERATED ALWAYS AS IDENTITY"),
            Some(_) => d.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
            None => {}
        }
        if let Some(def) = &c.default {
            d.push_str(&format!(" DEFAULT {def}"));
        }
        if c.not_null {
            d.push_str(" NOT NULL");
        }
        defs.push(d);
    }
    Sql::built(format!("CREATE TABLE {t} ({})", defs.join(", ")))
}

/// One `ALTER TABLE` step of a checkout (`repo::schema::plan_alter`) on table `t`.
/// Everything in the step may come from a commit: names are checked and re-quoted,
/// types resolved through the catalog, expressions parsed as exactly one expression.
pub fn alter_table(t: &QualName, step: &crate::repo::schema::AlterStep) -> VcResult<Sql> {
    use crate::repo::schema::AlterStep as S;
    let col = |n: &str| Ident::checked("column name", n);
    let what = |w: &str, n: &str| format!("{w} of column {n:?} of {t}");
    let action = match step {
        S::DropPrimaryKey => {
            return Err(VcError::new(
                Code::ERRCODE_INTERNAL_ERROR,
                "the primary key is dropped by its constraint name (sql::drop_constraint)",
            ))
        }
        S::DropColumn(n) => format!("DROP COLUMN {}", col(n)?),
        S::RenameColumn { from, to } => {
            format!("RENAME COLUMN {} TO {}", col(from)?, col(to)?)
        }
        S::DropDefault(n) => format!("ALTER COLUMN {} DROP DEFAULT", col(n)?),
        S::DropNotNull(n) => format!("ALTER COLUMN {} DROP NOT NULL", col(n)?),
        S::DropIdentity(n) => format!("ALTER COLUMN {} DROP IDENTITY", col(n)?),
        S::AlterType { column, type_name } => {
            let c = col(column)?;
            let ty = SqlType::resolve(type_name)?;
            format!("ALTER COLUMN {c} TYPE {ty} USING {c}::{ty}")
        }
        S::AddColumn(c) => {
            let mut d = format!(
                "ADD COLUMN {} {}",
                col(&c.name)?,
                SqlType::resolve(&c.type_name)?
            );
            if let Some(g) = &c.generated {
                let g = SqlExpr::checked(&what("generation expression", &c.name), g)?;
                d.push_str(&format!(" GENERATED ALWAYS AS {g} STORED"));
            }
            d
        }
        S::SetDefault { column, expr } => format!(
            "ALTER COLUMN {} SET DEFAULT {}",
            col(column)?,
            SqlExpr::checked(&what("default", column), expr)?
        ),
        S::SetNotNull(n) => format!("ALTER COLUMN {} SET NOT NULL", col(n)?),
        S::AddIdentity { column, kind } => format!(
            "ALTER COLUMN {} ADD GENERATED {} AS IDENTITY",
            col(column)?,
            match kind.as_str() {
                "a" => "ALWAYS",
                "d" => "BY DEFAULT",
                other => {
                    return Err(VcError::new(
                        Code::ERRCODE_INVALID_TABLE_DEFINITION,
                        format!(
                            "{}: unknown identity kind {other:?}",
                            what("identity", column)
                        ),
                    ));
                }
            }
        ),
        S::AddPrimaryKey(cols) => {
            let cols = cols.iter().map(|c| col(c)).collect::<VcResult<Vec<_>>>()?;
            let cols: Vec<String> = cols.iter().map(|c| c.to_string()).collect();
            format!("ADD PRIMARY KEY ({})", cols.join(", "))
        }
    };
    Ok(Sql::built(format!("ALTER TABLE {t} {action}")))
}

// ---------------------------------------------------------------------------------
// User types (from a commit: names checked, types resolved, expressions parsed)

pub fn create_enum(t: &QualName, labels: &[String]) -> VcResult<Sql> {
    let labels = labels
        .iter()
        .map(|l| label_literal(l))
        .collect::<VcResult<Vec<_>>>()?;
    Ok(Sql::built(format!(
        "CREATE TYPE {t} AS ENUM ({})",
        labels.join(", ")
    )))
}

/// `ALTER TYPE t ADD VALUE 'label' [BEFORE 'next']`.
pub fn add_enum_label(t: &QualName, label: &str, before: Option<&str>) -> VcResult<Sql> {
    let mut s = format!("ALTER TYPE {t} ADD VALUE {}", label_literal(label)?);
    if let Some(b) = before {
        s.push_str(&format!(" BEFORE {}", label_literal(b)?));
    }
    Ok(Sql::built(s))
}

/// An enum label from a commit as a literal: refused if the server could not keep it
/// (NUL, longer than 63 bytes).
fn label_literal(label: &str) -> VcResult<String> {
    if label.contains('\0') || label.len() > 63 {
        return Err(VcError::new(
            Code::ERRCODE_INVALID_PARAMETER_VALUE,
            format!("enum label {:?} cannot be used", truncate(label)),
        )
        .hint("a commit made by pgvc never holds one; if it came from a remote or backup, check who can write there"));
    }
    Ok(literal(label))
}

/// `ALTER DOMAIN t VALIDATE CONSTRAINT name`.
pub fn domain_validate(t: &QualName, name: &str) -> VcResult<Sql> {
    Ok(Sql::built(format!(
        "ALTER DOMAIN {t} VALIDATE CONSTRAINT {}",
        Ident::checked("constraint name", name)?
    )))
}

pub fn create_domain(
    t: &QualName,
    base: &SqlType,
    default: Option<&SqlExpr>,
    not_null: bool,
    checks: &[(String, SqlExpr)],
) -> VcResult<Sql> {
    let mut s = format!("CREATE DOMAIN {t} AS {base}");
    if let Some(d) = default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    if not_null {
        s.push_str(" NOT NULL");
    }
    for (name, expr) in checks {
        s.push_str(&format!(
            " CONSTRAINT {} CHECK {expr}",
            Ident::checked("constraint name", name)?
        ));
    }
    Ok(Sql::built(s))
}

pub fn domain_set_default(t: &QualName, default: Option<&SqlExpr>) -> Sql {
    Sql::built(match default {
        Some(d) => format!("ALTER DOMAIN {t} SET DEFAULT {d}"),
        None => format!("ALTER DOMAIN {t} DROP DEFAULT"),
    })
}

pub fn domain_not_null(t: &QualName, on: bool) -> Sql {
    Sql::built(format!(
        "ALTER DOMAIN {t} {} NOT NULL",
        if on { "SET" } else { "DROP" }
    ))
}

pub fn domain_drop_constraint(t: &QualName, name: &str) -> VcResult<Sql> {
    Ok(Sql::built(format!(
        "ALTER DOMAIN {t} DROP CONSTRAINT {}",
        Ident::checked("constraint name", name)?
    )))
}

/// Added `NOT VALID`: existing values are checked by `domain_validate`, after the
/// check's functions were looked at.
pub fn domain_add_check(t: &QualName, name: &str, expr: &SqlExpr) -> VcResult<Sql> {
    Ok(Sql::built(format!(
        "ALTER DOMAIN {t} ADD CONSTRAINT {} CHECK {expr} NOT VALID",
        Ident::checked("constraint name", name)?
    )))
}

pub fn create_composite(t: &QualName, attrs: &[(String, SqlType)]) -> VcResult<Sql> {
    let mut parts = Vec::new();
    for (name, ty) in attrs {
        parts.push(format!("{} {ty}", Ident::checked("attribute name", name)?));
    }
    Ok(Sql::built(format!(
        "CREATE TYPE {t} AS ({})",
        parts.join(", ")
    )))
}

/// One `ALTER TYPE t {DROP|RENAME|ADD} ATTRIBUTE` step on a composite type.
pub fn alter_composite(t: &QualName, step: &crate::repo::schema::AttributeStep) -> VcResult<Sql> {
    use crate::repo::schema::AttributeStep as A;
    let attr = |n: &str| Ident::checked("attribute name", n);
    Ok(Sql::built(match step {
        A::Drop(n) => format!("ALTER TYPE {t} DROP ATTRIBUTE {}", attr(n)?),
        A::Rename { from, to } => format!(
            "ALTER TYPE {t} RENAME ATTRIBUTE {} TO {}",
            attr(from)?,
            attr(to)?
        ),
        A::Add(n, ty) => format!(
            "ALTER TYPE {t} ADD ATTRIBUTE {} {}",
            attr(n)?,
            SqlType::resolve(ty)?
        ),
    }))
}

pub fn create_range(t: &QualName, subtype: &SqlType) -> Sql {
    Sql::built(format!("CREATE TYPE {t} AS RANGE (SUBTYPE = {subtype})"))
}

/// `ALTER TABLE t DROP CONSTRAINT name` (a name read from this database's catalog).
pub fn drop_constraint(t: &QualName, name: &str) -> Sql {
    Sql::built(format!(
        "ALTER TABLE {t} DROP CONSTRAINT {}",
        Ident::new(name)
    ))
}

// ---------------------------------------------------------------------------------
// Indexes and constraints of a tracked table (docs/SCHEMA.md). Everything comes from
// a commit: names are re-quoted, the access method, operator classes and collations
// are quoted names the catalog resolves, expressions are parsed as one expression
// each, and the foreign-key actions are keywords chosen here from a closed set.

/// A schema-qualified name of an existing object to refer to (a collation or an
/// operator class: system ones included), or of a tracked table (never a system one).
fn qualified(what: &str, text: &str) -> VcResult<String> {
    Ok(match what {
        "table name" => QualName::parse_user(what, text)?,
        _ => QualName::parse(what, text)?,
    }
    .to_string())
}

/// `CREATE [UNIQUE] INDEX name ON t USING method (keys) [INCLUDE (..)] [NULLS NOT
/// DISTINCT] [WHERE predicate]`.
pub fn create_index(t: &QualName, ix: &crate::commit::IndexDef) -> VcResult<Sql> {
    let what = |w: &str| format!("{w} of index {:?} of {t}", ix.name);
    let mut keys = Vec::with_capacity(ix.keys.len());
    for k in &ix.keys {
        let mut key = match (&k.column, &k.expression) {
            (Some(c), None) => Ident::checked("column name", c)?.to_string(),
            (None, Some(e)) => SqlExpr::checked(&what("key expression"), e)?.to_string(),
            _ => {
                return Err(VcError::new(
                    Code::ERRCODE_INVALID_TABLE_DEFINITION,
                    format!("{}: a key is a column or an expression", what("a key")),
                ))
            }
        };
        if let Some(c) = &k.collation {
            key.push_str(&format!(" COLLATE {}", qualified("collation name", c)?));
        }
        if let Some(o) = &k.opclass {
            key.push_str(&format!(" {}", qualified("operator class name", o)?));
        }
        if k.descending {
            key.push_str(" DESC");
        }
        // The default is NULLS FIRST for DESC, NULLS LAST otherwise.
        match (k.descending, k.nulls_first) {
            (false, true) => key.push_str(" NULLS FIRST"),
            (true, false) => key.push_str(" NULLS LAST"),
            _ => {}
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(VcError::new(
            Code::ERRCODE_INVALID_TABLE_DEFINITION,
            format!("{}: an index needs a key", what("the keys")),
        ));
    }
    let mut out = format!(
        "CREATE {}INDEX {} ON {t} USING {} ({})",
        if ix.unique { "UNIQUE " } else { "" },
        Ident::checked("index name", &ix.name)?,
        Ident::checked("access method", &ix.method)?,
        keys.join(", ")
    );
    if !ix.include.is_empty() {
        out.push_str(&format!(
            " INCLUDE ({})",
            idents("column name", &ix.include)?
        ));
    }
    if ix.nulls_not_distinct {
        out.push_str(" NULLS NOT DISTINCT");
    }
    if let Some(p) = &ix.predicate {
        out.push_str(&format!(
            " WHERE {}",
            SqlExpr::checked(&what("predicate"), p)?
        ));
    }
    Ok(Sql::built(out))
}

fn idents(what: &str, names: &[String]) -> VcResult<String> {
    Ok(names
        .iter()
        .map(|n| Ident::checked(what, n).map(|i| i.to_string()))
        .collect::<VcResult<Vec<_>>>()?
        .join(", "))
}

/// `DROP INDEX schema.name`.
pub fn drop_index(schema: &str, name: &str) -> Sql {
    Sql::built(format!(
        "DROP INDEX {}.{}",
        Ident::new(schema),
        Ident::new(name)
    ))
}

fn fk_action(what: &str, code: Option<&str>) -> VcResult<&'static str> {
    Ok(match code.unwrap_or("a") {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        other => {
            return Err(VcError::new(
                Code::ERRCODE_INVALID_TABLE_DEFINITION,
                format!("unknown foreign-key {what} action {other:?}"),
            ))
        }
    })
}

/// `ALTER TABLE t ADD CONSTRAINT name ...` for a check (always `NOT VALID`: the caller
/// validates it once it has checked what the expression calls), a unique constraint
/// or a foreign key (`NOT VALID` when `not_valid`).
pub fn add_constraint(
    t: &QualName,
    c: &crate::commit::ConstraintDef,
    not_valid: bool,
) -> VcResult<Sql> {
    use crate::commit::ConstraintKind as K;
    let what = |w: &str| format!("{w} of constraint {:?} of {t}", c.name);
    let body = match c.kind {
        K::Check => {
            let e = c.expression.as_deref().ok_or_else(|| {
                VcError::new(
                    Code::ERRCODE_INVALID_TABLE_DEFINITION,
                    format!("{} is missing", what("the expression")),
                )
            })?;
            format!(
                "CHECK ({}){}",
                SqlExpr::checked(&what("expression"), e)?,
                if c.no_inherit { " NO INHERIT" } else { "" }
            )
        }
        K::Unique => {
            let mut b = format!(
                "UNIQUE{} ({})",
                if c.nulls_not_distinct {
                    " NULLS NOT DISTINCT"
                } else {
                    ""
                },
                idents("column name", &c.columns)?
            );
            if !c.include.is_empty() {
                b.push_str(&format!(
                    " INCLUDE ({})",
                    idents("column name", &c.include)?
                ));
            }
            b
        }
        K::ForeignKey => {
            let r = c.references.as_deref().ok_or_else(|| {
                VcError::new(
                    Code::ERRCODE_INVALID_TABLE_DEFINITION,
                    format!("{} is missing", what("the referenced table")),
                )
            })?;
            format!(
                "FOREIGN KEY ({}) REFERENCES {} ({}) MATCH {} ON UPDATE {} ON DELETE {}",
                idents("column name", &c.columns)?,
                qualified("table name", r)?,
                idents("column name", &c.ref_columns)?,
                match c.match_type.as_deref().unwrap_or("s") {
                    "s" => "SIMPLE",
                    "f" => "FULL",
                    other => {
                        return Err(VcError::new(
                            Code::ERRCODE_INVALID_TABLE_DEFINITION,
                            format!("unknown foreign-key match type {other:?}"),
                        ));
                    }
                },
                fk_action("update", c.on_update.as_deref())?,
                fk_action("delete", c.on_delete.as_deref())?,
            )
        }
    };
    let mut out = format!(
        "ALTER TABLE {t} ADD CONSTRAINT {} {body}",
        Ident::checked("constraint name", &c.name)?
    );
    if c.deferrable {
        out.push_str(" DEFERRABLE");
        if c.deferred {
            out.push_str(" INITIALLY DEFERRED");
        }
    }
    if not_valid && c.kind != K::Unique {
        out.push_str(" NOT VALID");
    }
    Ok(Sql::built(out))
}

/// `ALTER TABLE t VALIDATE CONSTRAINT name`.
pub fn validate_constraint(t: &QualName, name: &str) -> Sql {
    Sql::built(format!(
        "ALTER TABLE {t} VALIDATE CONSTRAINT {}",
        Ident::new(name)
    ))
}

/// A check constraint that holds every expression of an index (`NOT VALID`: nothing
/// is evaluated), so that what they call is in `pg_depend` and can be checked before
/// the index is built (which evaluates them).
pub fn probe_index_expressions(
    t: &QualName,
    probe: &str,
    ix: &crate::commit::IndexDef,
) -> VcResult<Option<Sql>> {
    let what = |w: &str| format!("{w} of index {:?} of {t}", ix.name);
    let mut parts = Vec::new();
    for k in &ix.keys {
        if let Some(e) = &k.expression {
            parts.push(format!(
                "({} IS NULL OR true)",
                SqlExpr::checked(&what("key expression"), e)?
            ));
        }
    }
    if let Some(p) = &ix.predicate {
        // As the index will: coerced to boolean (a cast it calls is walked too).
        parts.push(format!(
            "({} OR true)",
            SqlExpr::checked(&what("predicate"), p)?
        ));
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(Sql::built(format!(
        "ALTER TABLE {t} ADD CONSTRAINT {} CHECK ({}) NOT VALID",
        Ident::new(probe),
        parts.join(" AND ")
    ))))
}

/// `ALTER TABLE t SET SCHEMA s`.
pub fn set_schema(t: &QualName, schema: &str) -> VcResult<Sql> {
    Ok(Sql::built(format!(
        "ALTER TABLE {t} SET SCHEMA {}",
        Ident::checked("schema name", schema)?
    )))
}

/// `ALTER TABLE t RENAME TO name`.
pub fn rename_table(t: &QualName, name: &str) -> VcResult<Sql> {
    Ok(Sql::built(format!(
        "ALTER TABLE {t} RENAME TO {}",
        Ident::checked("table name", name)?
    )))
}

/// Deletes every row of `t` (a checkout that reloads a table).
pub fn delete_all(t: &QualName) -> Sql {
    Sql::built(format!("DELETE FROM {t}"))
}

// ---------------------------------------------------------------------------------
// Plans: how SQL reads, encodes and writes the rows of a table

/// How to read, encode and write the rows of a table with a given schema.
pub struct Plan {
    pub table: QualName,
    /// The table's owner (InvalidOid for a plan that only decodes rows): statements on
    /// the table run as this role (`spi::as_owner`).
    pub owner: pg_sys::Oid,
    pub key_cols: Vec<String>,
    pub key_types: Vec<String>,
    pub key_kinds: Vec<KeyKind>,
    pub key_json: Vec<JsonKind>,
    pub value_cols: Vec<String>,
    pub value_types: Vec<String>,
    pub value_json: Vec<JsonKind>,
    /// bytea value columns, read and written as raw bytes.
    pub value_raw: Vec<bool>,
    /// Generated columns cannot be written; identity ALWAYS needs OVERRIDING.
    pub value_generated: Vec<bool>,
    /// Value columns every encoded row holds; trailing NULLs past them are left out.
    pub padded: usize,
    /// No primary key: rows are keyed by content (`codec::keyless_key`), every column
    /// is a value column.
    pub keyless: bool,
}

/// How `vc.diff` renders a column of type `type_name` (`format_type` text) as
/// `to_jsonb` would: timestamps (ISO 8601 with a `T`), arrays, and user types (always
/// schema-qualified: composites, domains, enums, ranges) are rendered by the server.
pub fn json_kind(type_name: &str) -> JsonKind {
    let base = type_name.split('(').next().unwrap_or("");
    if type_name.ends_with("[]") || base.starts_with("timestamp") || type_name.contains('.') {
        return JsonKind::Server;
    }
    match base {
        "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision" | "oid" => {
            JsonKind::Number
        }
        "boolean" => JsonKind::Bool,
        "json" | "jsonb" => JsonKind::Json,
        _ => JsonKind::Text,
    }
}

/// `to_jsonb` of each text of `$1` (a text[]) read as type `ty`, in order, as text:
/// how `vc.diff` renders values the way users' own `to_jsonb` does.
pub fn to_jsonb_batch(ty: &SqlType) -> Sql {
    Sql::built(format!(
        "SELECT pg_catalog.to_jsonb(u.v::{ty})::text FROM pg_catalog.unnest($1::text[]) \
         WITH ORDINALITY AS u(v, i) ORDER BY u.i"
    ))
}

pub fn key_kind(type_name: &str) -> KeyKind {
    match type_name {
        "smallint" | "integer" | "bigint" => KeyKind::Int,
        _ => KeyKind::Text,
    }
}

impl Plan {
    /// A plan for the table named `table` with `schema`. The names and types may come
    /// from a commit: SQL built from a plan re-quotes names and resolves every type
    /// (`sql`), so this only checks the table name.
    pub fn new(table: &str, schema: &TableSchema) -> VcResult<Plan> {
        let keys = schema.key_columns();
        let vals: Vec<&Column> = schema.value_columns().collect();
        Ok(Plan {
            table: QualName::parse("table name", table)?,
            owner: pg_sys::Oid::INVALID,
            key_cols: keys.iter().map(|c| c.name.clone()).collect(),
            key_types: keys.iter().map(|c| c.type_name.clone()).collect(),
            key_kinds: keys.iter().map(|c| key_kind(&c.type_name)).collect(),
            key_json: keys.iter().map(|c| json_kind(&c.type_name)).collect(),
            value_cols: vals.iter().map(|c| c.name.clone()).collect(),
            value_types: vals.iter().map(|c| c.type_name.clone()).collect(),
            value_json: vals.iter().map(|c| json_kind(&c.type_name)).collect(),
            value_raw: vals.iter().map(|c| c.type_name == "bytea").collect(),
            value_generated: vals.iter().map(|c| c.generated.is_some()).collect(),
            padded: schema.padded_width(),
            keyless: schema.primary_key.is_empty(),
        })
    }

    /// Which selected columns are read raw: key columns never (keys are text).
    pub fn raw_mask(&self) -> Vec<bool> {
        std::iter::repeat_n(false, self.key_cols.len())
            .chain(self.value_raw.iter().copied())
            .collect()
    }

    /// True when `ORDER BY key_order()` yields rows in encoded-key order: integer
    /// keys, and text-encoded keys whose `::text` cast equals their output function.
    /// Other key types (char(n) trims, boolean, inet, ...) must be sorted in memory.
    pub fn sql_order_matches(&self) -> bool {
        !self.keyless
            && self.key_kinds.iter().zip(&self.key_types).all(|(k, t)| {
                let base = t.split('(').next().unwrap_or("");
                *k == KeyKind::Int
                    || matches!(
                        base,
                        "text"
                            | "character varying"
                            | "uuid"
                            | "date"
                            | "numeric"
                            | "timestamp without time zone"
                            | "timestamp with time zone"
                            | "time without time zone"
                            | "interval"
                    )
            })
    }
}

// ---------------------------------------------------------------------------------
// Reading and writing rows of a tracked table (through a `Plan`)

fn select_list(plan: &Plan, alias: &str) -> String {
    plan.key_cols
        .iter()
        .chain(&plan.value_cols)
        .map(|c| format!("{alias}.{}", Ident::new(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ORDER BY` matching the byte order of encoded keys: integers numerically,
/// everything else by its text output in C collation.
fn key_order(plan: &Plan, alias: &str) -> String {
    plan.key_cols
        .iter()
        .zip(&plan.key_kinds)
        .map(|(c, k)| match k {
            KeyKind::Int => format!("{alias}.{}", Ident::new(c)),
            KeyKind::Text => format!("({alias}.{}::pg_catalog.text) COLLATE \"C\"", Ident::new(c)),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `(SELECT u.c0::t0 AS k0, ... FROM unnest($1::text[], ...) u(c0, ...))`: a relation
/// of the given key texts, typed, with parameters starting at `$first`.
fn keys_relation(plan: &Plan, first: usize) -> VcResult<String> {
    let n = plan.key_cols.len();
    let arrays: Vec<String> = (0..n).map(|i| format!("${}::text[]", first + i)).collect();
    let cols: Vec<String> = (0..n).map(|i| format!("c{i}")).collect();
    let mut casts = Vec::with_capacity(n);
    for i in 0..n {
        casts.push(format!(
            "u.c{i}::{} AS k{i}",
            SqlType::resolve(&plan.key_types[i])?
        ));
    }
    Ok(format!(
        "(SELECT {} FROM unnest({}) u({}))",
        casts.join(", "),
        arrays.join(", "),
        cols.join(", ")
    ))
}

fn key_join(plan: &Plan, t: &str, k: &str) -> String {
    plan.key_cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{t}.{} = {k}.k{i}", Ident::new(c)))
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// Every row of the table in encoded-key order.
pub fn scan(plan: &Plan) -> Sql {
    if plan.keyless {
        // Keyed by content: sorted in memory (`rows::Scan`).
        return Sql::built(format!(
            "SELECT {} FROM {} t",
            select_list(plan, "t"),
            plan.table
        ));
    }
    Sql::built(format!(
        "SELECT {} FROM {} t ORDER BY {}",
        select_list(plan, "t"),
        plan.table,
        key_order(plan, "t")
    ))
}

/// The rows with the given keys (key texts as `$1..$n` text arrays).
pub fn rows_by_key(plan: &Plan) -> VcResult<Sql> {
    Ok(Sql::built(format!(
        "SELECT {} FROM {} t JOIN {} k ON {}",
        select_list(plan, "t"),
        plan.table,
        keys_relation(plan, 1)?,
        key_join(plan, "t", "k")
    )))
}

/// One row, given as insert_rows takes it (key texts, then every value column: text,
/// or bytea for `bytea`), as `to_jsonb` of a row of the table's columns renders it
/// (text).
pub fn row_as_jsonb(plan: &Plan) -> VcResult<Sql> {
    let nk = plan.key_cols.len();
    let mut arrays: Vec<String> = (0..nk).map(|i| format!("${}::text[]", i + 1)).collect();
    let mut names: Vec<String> = (0..nk).map(|i| format!("c{i}")).collect();
    let mut casts = Vec::new();
    for i in 0..nk {
        casts.push(format!(
            "u.c{i}::{} AS {}",
            SqlType::resolve(&plan.key_types[i])?,
            Ident::new(&plan.key_cols[i])
        ));
    }
    for i in 0..plan.value_cols.len() {
        let p = nk + i + 1;
        names.push(format!("v{i}"));
        let col = Ident::new(&plan.value_cols[i]);
        if plan.value_raw[i] {
            arrays.push(format!("${p}::bytea[]"));
            casts.push(format!("u.v{i} AS {col}"));
        } else {
            arrays.push(format!("${p}::text[]"));
            casts.push(format!(
                "u.v{i}::{} AS {col}",
                SqlType::resolve(&plan.value_types[i])?
            ));
        }
    }
    Ok(Sql::built(format!(
        "SELECT to_jsonb(x)::text FROM (SELECT {} FROM unnest({}) u({})) x",
        casts.join(", "),
        arrays.join(", "),
        names.join(", ")
    )))
}

/// The columns of the table's row type filled from jsonb `$1`, selected as a scan of
/// the table selects them (to be encoded as its rows are).
pub fn row_from_jsonb(plan: &Plan) -> Sql {
    Sql::built(format!(
        "SELECT {} FROM jsonb_populate_record(NULL::{}, $1::jsonb) t",
        select_list(plan, "t"),
        plan.table
    ))
}

/// A conflict function (`vc.set_conflict_policy`): `$1` base, `$2` ours, `$3` theirs
/// (jsonb rows, NULL where absent) to the row to keep (NULL: none), as text.
pub fn call_conflict_function(f: &QualName) -> Sql {
    Sql::built(format!("SELECT {f}($1::jsonb, $2::jsonb, $3::jsonb)::text"))
}

/// Deletes, from a table without a primary key, every row equal to one of the given
/// rows: per value column `$2i+1` (text[]: "1" where the cell is NULL, else "0") and
/// `$2i+2` (text[] of text outputs, or bytea[] for `bytea`; empty where NULL). Rows
/// are compared by what they encode to: each column's output (`format('%s')` calls
/// the type's output function under the pinned settings) in C collation, and NULL by
/// the datum's null flag (`num_nulls`: a composite of NULLs is not NULL). Equality
/// of plain values, so the join hashes: one scan of the table per batch.
pub fn delete_equal_rows(plan: &Plan) -> VcResult<Sql> {
    let n = plan.value_cols.len();
    let mut arrays = Vec::with_capacity(2 * n);
    let mut names = Vec::with_capacity(2 * n);
    let mut conds = Vec::with_capacity(2 * n);
    for (i, col) in plan.value_cols.iter().enumerate() {
        let c = Ident::new(col);
        arrays.push(format!("${}::pg_catalog.text[]", 2 * i + 1));
        names.push(format!("n{i}"));
        if plan.value_raw[i] {
            arrays.push(format!("${}::pg_catalog.bytea[]", 2 * i + 2));
            conds.push(format!(
                "pg_catalog.num_nulls(t.{c})::pg_catalog.text = k.n{i} AND COALESCE(t.{c}, ''::pg_catalog.bytea) = k.v{i}"
            ));
        } else {
            arrays.push(format!("${}::pg_catalog.text[]", 2 * i + 2));
            conds.push(format!(
                "pg_catalog.num_nulls(t.{c})::pg_catalog.text = k.n{i} AND pg_catalog.format('%s', t.{c}) COLLATE \"C\" = k.v{i} COLLATE \"C\""
            ));
        }
        names.push(format!("v{i}"));
    }
    if n == 0 {
        return Err(VcError::new(
            Code::ERRCODE_INVALID_TABLE_DEFINITION,
            format!("{} has no columns to compare rows by", plan.table),
        ));
    }
    Ok(Sql::built(format!(
        "DELETE FROM {} t USING unnest({}) k({}) WHERE {}",
        plan.table,
        arrays.join(", "),
        names.join(", "),
        conds.join(" AND ")
    )))
}

/// Deletes the rows with the given keys.
pub fn delete_by_key(plan: &Plan) -> VcResult<Sql> {
    Ok(Sql::built(format!(
        "DELETE FROM {} t USING {} k WHERE {}",
        plan.table,
        keys_relation(plan, 1)?,
        key_join(plan, "t", "k")
    )))
}

/// Inserts rows given as one array per written column: key texts, then the writable
/// (non-generated) value columns, text or bytea.
pub fn insert_rows(plan: &Plan, writable: &[usize]) -> VcResult<Sql> {
    let nk = plan.key_cols.len();
    let mut cols: Vec<String> = plan
        .key_cols
        .iter()
        .map(|c| Ident::new(c).to_string())
        .collect();
    let mut arrays: Vec<String> = (0..nk).map(|i| format!("${}::text[]", i + 1)).collect();
    let mut names: Vec<String> = (0..nk).map(|i| format!("c{i}")).collect();
    let mut casts = Vec::new();
    for i in 0..nk {
        casts.push(format!("u.c{i}::{}", SqlType::resolve(&plan.key_types[i])?));
    }
    for (j, &i) in writable.iter().enumerate() {
        let p = nk + j + 1;
        cols.push(Ident::new(&plan.value_cols[i]).to_string());
        names.push(format!("v{j}"));
        if plan.value_raw[i] {
            arrays.push(format!("${p}::bytea[]"));
            casts.push(format!("u.v{j}"));
        } else {
            arrays.push(format!("${p}::text[]"));
            casts.push(format!(
                "u.v{j}::{}",
                SqlType::resolve(&plan.value_types[i])?
            ));
        }
    }
    Ok(Sql::built(format!(
        "INSERT INTO {} ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM unnest({}) u({})",
        plan.table,
        cols.join(", "),
        casts.join(", "),
        arrays.join(", "),
        names.join(", ")
    )))
}

/// `INSERT INTO vc.remotes|vc.backups (name, url)`.
pub fn add_location(backups: bool) -> Sql {
    if backups {
        "INSERT INTO vc.backups (name, url) VALUES ($1, $2) ON CONFLICT DO NOTHING".into()
    } else {
        "INSERT INTO vc.remotes (name, url) VALUES ($1, $2) ON CONFLICT DO NOTHING".into()
    }
}

#[cfg(test)]
mod tests {
    use super::split_qualified;

    fn s(v: &[&str]) -> Option<Vec<String>> {
        Some(v.iter().map(|x| x.to_string()).collect())
    }

    #[test]
    fn splits_like_parse_ident() {
        assert_eq!(split_qualified("public.items"), s(&["public", "items"]));
        assert_eq!(split_qualified("Public.Items"), s(&["public", "items"]));
        assert_eq!(split_qualified("\"a.b\".\"c\"\"d\""), s(&["a.b", "c\"d"]));
        assert_eq!(split_qualified("s.t$1"), s(&["s", "t$1"]));
        assert_eq!(split_qualified("\"x$f$;drop\".t"), s(&["x$f$;drop", "t"]));
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "a b",
            "a;b",
            "\"\".a",
            "\"a",
            "a.\"b",
            "1a.b",
            "a.b; DROP TABLE x",
            "a.b)",
            "a.b--",
        ] {
            assert_eq!(split_qualified(bad), None, "{bad}");
        }
    }
}
