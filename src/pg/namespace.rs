//! Schemas that things from a commit are created or moved in: created when missing,
//! with the rights checks a `CREATE` by the caller would face.

use super::error::{VcError, VcResult};
use super::spi::{exec, one_text, Arg};
use super::sql::{self, Ident, ObjectKind};
use pgrx::PgSqlErrorCode as Code;

/// Creates schema `schema` if it is missing. pgvc creates as its owner; a caller who
/// is not a superuser must have the rights a CREATE would need (checked whether or
/// not the schema exists), and owns what is created: the caller's role is returned
/// for that (None for a superuser).
pub fn ensure_schema(schema: &str) -> VcResult<Option<Ident>> {
    // (No CREATE SCHEMA IF NOT EXISTS: its NOTICE for public is noise in every clone.)
    let has_schema = one_text(
        "SELECT nspname::text FROM pg_namespace WHERE nspname = $1",
        vec![Arg::Text(Some(schema.to_string()))],
    )?;
    let for_caller = caller_owns_new_objects(schema, has_schema.is_some())?;
    if has_schema.is_none() {
        exec(sql::create_schema(schema)?, vec![])?;
        if let Some(role) = &for_caller {
            exec(
                sql::owner_to(ObjectKind::Schema, &Ident::new(schema).to_string(), role),
                vec![],
            )?;
        }
    }
    Ok(for_caller)
}

/// The schema a table is moved to (ALTER TABLE ... SET SCHEMA): the caller needs
/// CREATE on it, as that statement would; a missing one is created as
/// `ensure_schema` does.
pub fn ensure_missing_schema(schema: &str) -> VcResult<()> {
    let has = one_text(
        "SELECT nspname::text FROM pg_namespace WHERE nspname = $1",
        vec![Arg::Text(Some(schema.to_string()))],
    )?;
    if has.is_none() {
        ensure_schema(schema)?;
        return Ok(());
    }
    let may = super::spi::one_bool(
        "SELECT r.rolsuper OR has_schema_privilege(r.oid, $2, 'CREATE') FROM pg_roles r WHERE r.oid = $1",
        vec![
            Arg::Oid(super::spi::caller()),
            Arg::Text(Some(schema.to_string())),
        ],
    )?;
    if !may {
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to move a table into schema {}: that needs CREATE on it",
                Ident::new(schema)
            ),
        )
        .hint("GRANT CREATE ON SCHEMA ... TO the role, or run it as a role that may"));
    }
    Ok(())
}

/// For a caller who is not a superuser: the caller's role (new objects are handed to
/// it), after checking it could create them itself (CREATE on the schema, or on the
/// database for a new schema). None for a superuser: objects stay pgvc's owner's.
pub fn caller_owns_new_objects(schema: &str, schema_exists: bool) -> VcResult<Option<Ident>> {
    let caller = super::spi::caller();
    let row = super::spi::one_row(
        "SELECT r.rolsuper, \
                CASE WHEN $3 THEN has_schema_privilege($1, $2, 'CREATE') \
                     ELSE has_database_privilege($1, current_database(), 'CREATE') END, \
                r.rolname::text, pg_has_role($1, 'pgvc_admin', 'MEMBER') \
         FROM pg_roles r WHERE r.oid = $1",
        vec![
            Arg::Oid(caller),
            Arg::Text(Some(schema.to_string())),
            Arg::Bool(schema_exists),
        ],
    )?
    .ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_UNDEFINED_OBJECT,
            "the calling role does not exist",
        )
    })?;
    let (superuser, may_create, role, admin) = (
        row[0].bool()?,
        row[1].bool()?,
        row[2].text()?,
        row[3].bool()?,
    );
    if superuser {
        return Ok(None);
    }
    // Creating a table from history hands its rows to the caller: for pgvc_admin (who
    // may back up and restore everything) only, never a writer whose reset meets a
    // table dropped here.
    if !admin {
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to create tables in schema {} from a commit: that needs pgvc_admin",
                Ident::new(schema)
            ),
        )
        .hint("ask an administrator to reset or pull, or to recreate and vc.track() the table"));
    }
    if !may_create {
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "permission denied to create tables in schema {} from a commit: role {role} may not create in {}",
                Ident::new(schema),
                if schema_exists { "that schema" } else { "this database" }
            ),
        )
        .hint("GRANT CREATE ON SCHEMA ... TO the role, or run it as a role that may create the table"));
    }
    Ok(Some(Ident::new(&role)))
}

/// Parsing a default or generation expression runs code: a literal of an array or
/// composite of a domain is read by the domain's input, which runs the domain's CHECK
/// at parse time, with the rights of whoever runs the DDL (pgvc's owner here). A
/// commit's expression can name any type of this database. So while any domain here
/// has a CHECK that calls a function of a role other than a superuser, pgvc does not
/// parse a commit's expressions at all. (Other input functions are written in C by
/// superusers; domain checks are the only code a non-superuser can put on that path.)
pub fn refuse_parse_time_code(table: &str) -> VcResult<()> {
    let found = super::spi::query(
        "SELECT format_type(t.oid, NULL), p.oid::regprocedure::text, r.rolname::text \
         FROM pg_type t JOIN pg_constraint c ON c.contypid = t.oid \
         JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = c.oid \
              AND d.refclassid = 'pg_proc'::regclass \
         JOIN pg_proc p ON p.oid = d.refobjid JOIN pg_roles r ON r.oid = p.proowner \
         WHERE t.typtype = 'd' AND NOT r.rolsuper ORDER BY 1, 2 LIMIT 1",
        vec![],
        &[],
    )?;
    if let Some(r) = found.first() {
        let text = |i: usize| match r.get(i) {
            Some(crate::codec::Cell::Text(t)) => t.clone(),
            _ => String::new(),
        };
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!(
                "pgvc will not parse the expressions of {table} from a commit here: domain {} checks values with function {} of role {}, which a default could make run with pgvc's rights",
                text(0),
                text(1),
                text(2)
            ),
        )
        .hint("create the table yourself with its defaults and vc.track() it, then pull or reset again; or have a superuser own that function"));
    }
    Ok(())
}
