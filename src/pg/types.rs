//! User types in the versioned state (docs/SCHEMA.md): the enums, domains, composites
//! and ranges tracked tables use are recorded with each commit (`collect`), and a
//! checkout creates or alters them before the tables (`ensure`), then finishes what
//! must wait for the rows (`finish`).

use super::error::{VcError, VcResult};
use super::spi::{exec, one_bool, one_row, one_text, query_values, Arg};
use super::sql::{self, QualName, Sql, SqlExpr, SqlType};
use crate::commit::TypeDef;
use pgrx::pg_sys::Oid;
use pgrx::PgSqlErrorCode as Code;
use std::collections::BTreeMap;

/// The user types (not in `pg_catalog` or `information_schema`) that the columns of
/// `relids` use, directly or through arrays, domains, composites and ranges, by
/// `format_type` name.
pub fn collect(relids: &[Oid]) -> VcResult<BTreeMap<String, TypeDef>> {
    let mut out = BTreeMap::new();
    if relids.is_empty() {
        return Ok(out);
    }
    let ids: Vec<Option<String>> = relids
        .iter()
        .map(|o| Some(u32::from(*o).to_string()))
        .collect();
    // Most tables use only built-in base types and arrays of them: one cheap look at
    // their columns' types spares the recursive walk below (which took about a third
    // of a one-row commit).
    let may_use = one_bool(
        Sql::plan_once(
            "SELECT EXISTS (SELECT FROM pg_attribute a                JOIN pg_type ty ON ty.oid = a.atttypid                LEFT JOIN pg_type el ON el.oid = ty.typelem              WHERE a.attrelid = ANY($1::text[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped                AND (ty.typtype <> 'b' OR ty.typnamespace <> 'pg_catalog'::regnamespace                     OR el.typtype <> 'b' OR el.typnamespace <> 'pg_catalog'::regnamespace))",
        ),
        vec![Arg::TextArray(ids.clone())],
    )?;
    if !may_use {
        return Ok(out);
    }
    let rows = query_values(
        "WITH RECURSIVE t(oid) AS ( \
           SELECT a.atttypid FROM pg_attribute a \
           WHERE a.attrelid = ANY($1::text[]::oid[]) AND a.attnum > 0 AND NOT a.attisdropped \
         UNION \
           SELECT x.ref FROM t JOIN pg_type ty ON ty.oid = t.oid \
           CROSS JOIN LATERAL ( \
             SELECT NULLIF(ty.typelem, 0) UNION ALL SELECT NULLIF(ty.typbasetype, 0) \
             UNION ALL SELECT r.rngsubtype FROM pg_range r WHERE r.rngtypid = ty.oid \
             UNION ALL SELECT a.atttypid FROM pg_attribute a WHERE ty.typtype = 'c' \
               AND a.attrelid = ty.typrelid AND a.attnum > 0 AND NOT a.attisdropped) x(ref) \
           WHERE x.ref IS NOT NULL) \
         SELECT ty.oid, format_type(ty.oid, NULL), ty.typtype::text FROM t \
         JOIN pg_type ty ON ty.oid = t.oid JOIN pg_namespace n ON n.oid = ty.typnamespace \
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
           AND ty.typtype IN ('e', 'd', 'c', 'r') \
           AND (ty.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = ty.typrelid) = 'c') \
         ORDER BY 2",
        vec![Arg::TextArray(ids)],
    )?;
    for r in rows {
        let (oid, name, kind) = (r[0].oid()?, r[1].text()?, r[2].text()?);
        out.insert(name, definition(oid, &kind)?);
    }
    Ok(out)
}

/// The definition of user type `oid` of kind `kind` (`pg_type.typtype`).
fn definition(oid: Oid, kind: &str) -> VcResult<TypeDef> {
    let texts = |sql: &'static str| -> VcResult<Vec<Vec<super::spi::Value>>> {
        query_values(sql, vec![Arg::Oid(oid)])
    };
    Ok(match kind {
        "e" => TypeDef::Enum {
            labels: texts("SELECT enumlabel::text FROM pg_enum WHERE enumtypid = $1 ORDER BY enumsortorder")?
                .iter()
                .map(|r| r[0].text())
                .collect::<VcResult<_>>()?,
        },
        "d" => {
            let r = texts(
                "SELECT format_type(typbasetype, NULLIF(typtypmod, -1)), typnotnull, \
                        pg_get_expr(typdefaultbin, 0) FROM pg_type WHERE oid = $1",
            )?;
            let r = r.first().ok_or_else(|| gone(oid))?;
            TypeDef::Domain {
                base: r[0].text()?,
                not_null: r[1].bool()?,
                default: r[2].opt().map(|v| v.text()).transpose()?,
                checks: texts(
                    "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
                     WHERE contypid = $1 AND contype = 'c' ORDER BY conname",
                )?
                .iter()
                .map(|r| Ok((r[0].text()?, r[1].text()?)))
                .collect::<VcResult<_>>()?,
            }
        }
        "c" => TypeDef::Composite {
            attributes: texts(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_type t \
                 JOIN pg_attribute a ON a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped \
                 WHERE t.oid = $1 ORDER BY a.attnum",
            )?
            .iter()
            .map(|r| Ok((r[0].text()?, r[1].text()?)))
            .collect::<VcResult<_>>()?,
        },
        _ => TypeDef::Range {
            subtype: texts("SELECT format_type(rngsubtype, NULL) FROM pg_range WHERE rngtypid = $1")?
                .first()
                .ok_or_else(|| gone(oid))?[0]
                .text()?,
        },
    })
}

fn gone(oid: Oid) -> VcError {
    VcError::new(
        Code::ERRCODE_UNDEFINED_OBJECT,
        format!("type with OID {} disappeared", u32::from(oid)),
    )
}

/// What `ensure` leaves for after the rows: domain constraints to add, NOT NULL.
#[derive(Default)]
pub struct Pending {
    steps: Vec<sql::Sql>,
}

/// How `ensure` treats enum labels the commit adds: PostgreSQL lets a transaction use
/// a label added to an existing enum only after that label is committed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum NewLabels {
    /// Refuse, naming the `ALTER TYPE` statements to run first (vc.reset, vc.pull:
    /// the caller's own transaction).
    Refuse,
    /// Add them and report it: the caller commits and applies in a new transaction
    /// (the standby's worker).
    Add,
}

/// Makes this database's user types what `target` records, before the tables move:
/// creates the missing ones (dependencies first), adds enum labels (see `NewLabels`),
/// and relaxes domains (drops defaults, NOT NULL and checks the target lacks); what
/// must wait for the rows (new checks, NOT NULL) is returned. Returns whether enum
/// labels were added. Refuses what it cannot do: labels removed or reordered, a
/// domain's base type, a composite's attributes or a range's subtype changed.
pub fn ensure(
    target: &BTreeMap<String, TypeDef>,
    tables: &BTreeMap<String, crate::commit::TableEntry>,
    labels: NewLabels,
) -> VcResult<(Pending, bool)> {
    // Only types the target's tables use: a commit cannot name other types here.
    let mut used: Vec<String> = tables
        .values()
        .flat_map(|e| e.schema.columns.iter().map(|c| base_name(&c.type_name)))
        .collect();
    let mut i = 0;
    while i < used.len() {
        if let Some(def) = target.get(&used[i]) {
            for r in def.refers_to() {
                let r = base_name(r);
                if !used.contains(&r) {
                    used.push(r);
                }
            }
        }
        i += 1;
    }
    if let Some(stray) = target.keys().find(|t| !used.contains(t)) {
        return Err(VcError::new(
            Code::ERRCODE_INVALID_OBJECT_DEFINITION,
            format!("the commit records type {stray}, which none of its tables uses"),
        )
        .hint("a commit made by pgvc never does; if it came from a remote or backup, check who can write there"));
    }
    // Labels first, alone: a transaction may use a label only once it is committed,
    // so the standby adds them in a round of their own, and nothing else changes then.
    if labels == NewLabels::Add {
        let mut added = false;
        for (name, def) in target {
            if let TypeDef::Enum { labels: want } = def {
                added |= add_labels(name, want)?;
            }
        }
        if added {
            return Ok((Pending::default(), true));
        }
    }
    let mut pending = Pending::default();
    let mut added = false;
    // Creation order: a type after the user types it refers to.
    let mut todo: Vec<(&String, &TypeDef)> = target.iter().collect();
    let mut done: Vec<&str> = Vec::new();
    while !todo.is_empty() {
        let before = todo.len();
        let mut rest = Vec::new();
        for (name, def) in todo {
            let waits = def.refers_to().iter().any(|r| {
                let r = r.trim_end_matches("[]");
                target.contains_key(r) && r != name.as_str() && !done.contains(&r)
            });
            if waits {
                rest.push((name, def));
                continue;
            }
            added |= ensure_one(name, def, &mut pending)?;
            done.push(name.as_str());
        }
        todo = rest;
        if todo.len() == before {
            return Err(VcError::new(
                Code::ERRCODE_INVALID_OBJECT_DEFINITION,
                "the user types in the commit refer to each other in a cycle",
            )
            .hint("a commit made by pgvc never does; if it came from a remote or backup, check who can write there"));
        }
    }
    Ok((pending, added))
}

/// Runs what `ensure` left for after the rows.
pub fn finish(pending: Pending) -> VcResult<()> {
    for s in pending.steps {
        exec(s, vec![])?;
    }
    Ok(())
}

fn refuse(name: &str, what: &str) -> VcError {
    VcError::new(
        Code::ERRCODE_FEATURE_NOT_SUPPORTED,
        format!("type {name} here differs from the commit's: {what}"),
    )
    .hint("pgvc does not change that kind of type definition; alter the type here to match the commit (compare \\dT+), then try again")
}

fn ensure_one(name: &str, def: &TypeDef, pending: &mut Pending) -> VcResult<bool> {
    let q = QualName::parse_user("type name", name)?;
    let oid = one_text(
        "SELECT to_regtype($1)::oid::text",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    let Some(oid) = oid else {
        create(&q, name, def)?;
        return Ok(false);
    };
    let oid = Oid::from(oid.parse::<u32>().unwrap_or(0));
    let kind = one_text(
        "SELECT typtype::text FROM pg_type WHERE oid = $1",
        vec![Arg::Oid(oid)],
    )?
    .unwrap_or_default();
    let live = match kind.as_str() {
        "e" | "d" | "c" | "r" => definition(oid, &kind)?,
        _ => {
            return Err(refuse(
                name,
                "it is not an enum, domain, composite or range type here",
            ))
        }
    };
    if &live == def {
        return Ok(false);
    }
    require_type_owner(oid, name)?;
    match (&live, def) {
        (TypeDef::Enum { labels: have }, TypeDef::Enum { labels: want }) => {
            // In the standby's mode they were added by a round of their own: here
            // they are refused with the statements to run first.
            let stmts = label_statements(&q, have, want)?;
            let list: Vec<String> = stmts.iter().map(|s| format!("{s};")).collect();
            Err(VcError::new(
                Code::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
                format!("the commit adds labels to enum {name}, which a transaction may use only once they are committed"),
            )
            .hint(format!("run {} then try again", list.join(" "))))
        }
        (
            TypeDef::Domain {
                base: b1,
                not_null: n1,
                default: d1,
                checks: c1,
            },
            TypeDef::Domain {
                base: b2,
                not_null: n2,
                default: d2,
                checks: c2,
            },
        ) => {
            if b1 != b2 {
                return Err(refuse(
                    name,
                    &format!("its base type is {b1} here, {b2} in the commit"),
                ));
            }
            if d1 != d2 {
                let expr = match d2 {
                    Some(d) => Some(SqlExpr::checked(&format!("default of domain {name}"), d)?),
                    None => None,
                };
                exec(sql::domain_set_default(&q, expr.as_ref()), vec![])?;
            }
            if *n1 && !n2 {
                exec(sql::domain_not_null(&q, false), vec![])?;
            }
            if *n2 && !n1 {
                pending.steps.push(sql::domain_not_null(&q, true));
            }
            for (cn, cd) in c1 {
                if !c2.iter().any(|(n, d)| n == cn && d == cd) {
                    exec(sql::domain_drop_constraint(&q, cn)?, vec![])?;
                }
            }
            for (cn, cd) in c2 {
                if !c1.iter().any(|(n, d)| n == cn && d == cd) {
                    // Added unvalidated, its functions checked, validated after the rows.
                    let (expr, not_valid) = check_expr(name, cd)?;
                    super::namespace::refuse_parse_time_code(&format!("domain {name}"))?;
                    exec(sql::domain_add_check(&q, cn, &expr)?, vec![])?;
                    refuse_unsafe_checks(oid, name)?;
                    if !not_valid {
                        pending.steps.push(sql::domain_validate(&q, cn)?);
                    }
                }
            }
            Ok(false)
        }
        (TypeDef::Composite { attributes: have }, TypeDef::Composite { attributes: want }) => {
            // Dropped, renamed and added as PostgreSQL allows on a type in use; the
            // checkout rewrites the rows of the tracked tables that use it
            // (checkout_root). A column of it elsewhere would change with no rewrite.
            if let Some(user) = one_text(
                "SELECT format('%s.%I', a.attrelid::regclass, a.attname) FROM pg_attribute a \
                 JOIN pg_class c ON c.oid = a.attrelid \
                 WHERE a.atttypid IN ($1, (SELECT typarray FROM pg_type WHERE oid = $1)) \
                   AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'm', 'f', 'c') \
                   AND a.attrelid NOT IN (SELECT relid::oid FROM vc.tracked) \
                   AND c.oid <> (SELECT typrelid FROM pg_type WHERE oid = $1) \
                 ORDER BY 1 LIMIT 1",
                vec![Arg::Oid(oid)],
            )? {
                return Err(refuse(
                    name,
                    &format!("its attributes differ, and {user}, which pgvc does not track, uses it"),
                ));
            }
            for step in crate::repo::schema::plan_composite(have, want) {
                exec(sql::alter_composite(&q, &step)?, vec![])?;
            }
            if definition(oid, &kind)? != *def {
                return Err(refuse(
                    name,
                    "its attributes could not be made the commit's",
                ));
            }
            // An added attribute's type may reach another role's code.
            refuse_unsafe_checks(oid, name)?;
            Ok(false)
        }
        (TypeDef::Range { .. }, TypeDef::Range { .. }) => Err(refuse(name, "its subtype differs")),
        _ => Err(refuse(name, "it is another kind of type here")),
    }
}

/// The expression of a recorded `CHECK (expr)` (as `pg_get_constraintdef` prints it),
/// parsed as exactly one expression.
fn check_expr(name: &str, def: &str) -> VcResult<(SqlExpr, bool)> {
    let (def, not_valid) = match def.strip_suffix(" NOT VALID") {
        Some(d) => (d, true),
        None => (def, false),
    };
    let inner = def
        .strip_prefix("CHECK (")
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            VcError::new(
                Code::ERRCODE_INVALID_OBJECT_DEFINITION,
                format!("a check of domain {name} in the commit is not CHECK (...)"),
            )
        })?;
    Ok((
        SqlExpr::checked(&format!("check of domain {name}"), inner)?,
        not_valid,
    ))
}

/// Refuses a domain whose checks call a function that is not immutable: a check from a
/// commit runs whenever a value is cast to the domain (and over every stored value when
/// validated), so it may only compute, never act (no `pg_read_file`, `lo_export`,
/// `set_config`, ...). Functions of other roles are refused by `type_runs_foreign_code`.
fn refuse_unsafe_checks(oid: Oid, name: &str) -> VcResult<()> {
    let checks = query_values(
        "SELECT conname::text, conbin::text FROM pg_constraint WHERE contypid = $1 AND contype = 'c' ORDER BY 1",
        vec![Arg::Oid(oid)],
    )?;
    for c in checks {
        let (cname, bin) = (c[0].text()?, c[1].opt().map(|v| v.text()).transpose()?);
        if !bin.as_deref().is_some_and(sql::node_is_immutable) {
            return Err(VcError::new(
                Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
                format!("check {cname} of domain {name} from the commit calls a function that is not immutable"),
            )
            .hint("pgvc only creates domain checks that compute; create the domain here yourself, then try again"));
        }
    }
    if super::catalog::type_runs_foreign_code(oid)? {
        return Err(VcError::new(
            Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
            format!("type {name} from the commit would run code of a role other than a superuser"),
        )
        .hint("create the type here yourself, then try again"));
    }
    Ok(())
}

/// A type name without array brackets (`t[]` refers to `t`).
fn base_name(t: &str) -> String {
    t.trim_end_matches("[]").to_string()
}

/// Altering an existing type needs its ownership, as `ALTER TYPE` would.
fn require_type_owner(oid: Oid, name: &str) -> VcResult<()> {
    let owns = super::spi::one_bool(
        "SELECT r.rolsuper OR pg_has_role(r.oid, t.typowner, 'USAGE') \
         FROM pg_roles r, pg_type t WHERE r.oid = $1 AND t.oid = $2",
        vec![Arg::Oid(super::spi::caller()), Arg::Oid(oid)],
    )?;
    if owns {
        return Ok(());
    }
    Err(VcError::new(
        Code::ERRCODE_INSUFFICIENT_PRIVILEGE,
        format!(
            "permission denied: the commit changes type {name}, which only its owner may alter"
        ),
    )
    .hint("run it as the type's owner or a superuser"))
}

/// The `ALTER TYPE ... ADD VALUE` statements that give enum `q` (labels `have`) the
/// labels `want`, each in place; refuses labels removed or reordered.
fn label_statements(q: &QualName, have: &[String], want: &[String]) -> VcResult<Vec<sql::Sql>> {
    let kept: Vec<&String> = want.iter().filter(|l| have.contains(l)).collect();
    if kept.len() != have.len() || kept.iter().zip(have).any(|(a, b)| *a != b) {
        return Err(refuse(
            &q.to_string(),
            "it has labels the commit lacks, or in another order",
        ));
    }
    let mut stmts = Vec::new();
    for (i, l) in want.iter().enumerate() {
        if have.contains(l) {
            continue;
        }
        // Placed before the next label that exists here, else at the end.
        let next = want[i + 1..].iter().find(|n| have.contains(n));
        stmts.push(sql::add_enum_label(q, l, next.map(|s| s.as_str()))?);
    }
    Ok(stmts)
}

/// Adds the labels enum `name` lacks here (the standby's round of its own); false when
/// it lacks none, or is not an enum here (`ensure` then says what differs).
fn add_labels(name: &str, want: &[String]) -> VcResult<bool> {
    let q = QualName::parse_user("type name", name)?;
    let found = one_row(
        "SELECT t.oid, t.typtype::text FROM pg_type t WHERE t.oid = to_regtype($1)",
        vec![Arg::Text(Some(name.to_string()))],
    )?;
    let Some(r) = found else { return Ok(false) };
    let (oid, kind) = (r[0].oid()?, r[1].text()?);
    if kind != "e" {
        return Ok(false);
    }
    let TypeDef::Enum { labels: have } = definition(oid, "e")? else {
        return Ok(false);
    };
    if have.as_slice() == want {
        return Ok(false);
    }
    require_type_owner(oid, name)?;
    let stmts = label_statements(&q, &have, want)?;
    let added = !stmts.is_empty();
    for s in stmts {
        exec(s, vec![])?;
    }
    Ok(added)
}

/// Creates type `name` as `def` records it.
fn create(q: &QualName, name: &str, def: &TypeDef) -> VcResult<()> {
    super::namespace::ensure_missing_schema(&q.schema)?;
    // Created by pgvc's owner; a caller who is not a superuser must be one who may
    // create from history (pgvc_admin, CREATE on the schema), and owns the type.
    let for_caller = super::namespace::caller_owns_new_objects(&q.schema, true)?;
    if matches!(
        def,
        TypeDef::Domain {
            default: Some(_),
            ..
        }
    ) || matches!(def, TypeDef::Domain { checks, .. } if !checks.is_empty())
    {
        super::namespace::refuse_parse_time_code(&format!("domain {name}"))?;
    }
    match def {
        TypeDef::Enum { labels } => exec(sql::create_enum(q, labels)?, vec![])?,
        TypeDef::Domain {
            base,
            not_null,
            default,
            checks,
        } => {
            let base = SqlType::resolve(base)?;
            let default = match default {
                Some(d) => Some(SqlExpr::checked(&format!("default of domain {name}"), d)?),
                None => None,
            };
            let mut cs = Vec::new();
            for (cn, cd) in checks {
                cs.push((cn.clone(), check_expr(name, cd)?.0));
            }
            exec(
                sql::create_domain(q, &base, default.as_ref(), *not_null, &cs)?,
                vec![],
            )?
        }
        TypeDef::Composite { attributes } => {
            let mut attrs = Vec::new();
            for (a, t) in attributes {
                attrs.push((a.clone(), SqlType::resolve(t)?));
            }
            exec(sql::create_composite(q, &attrs)?, vec![])?
        }
        TypeDef::Range { subtype } => {
            exec(sql::create_range(q, &SqlType::resolve(subtype)?), vec![])?
        }
    };
    // What was made must be what the commit records, and run no other role's code.
    let oid = one_text(
        "SELECT to_regtype($1)::oid::text",
        vec![Arg::Text(Some(name.to_string()))],
    )?
    .and_then(|o| o.parse::<u32>().ok())
    .map(Oid::from)
    .ok_or_else(|| {
        VcError::new(
            Code::ERRCODE_INVALID_OBJECT_DEFINITION,
            format!("type {name} from the commit was made under another name here"),
        )
    })?;
    refuse_unsafe_checks(oid, name)?;
    if let Some(role) = &for_caller {
        exec(
            sql::owner_to(sql::ObjectKind::Type, &q.to_string(), role),
            vec![],
        )?;
    }
    let kind = one_text(
        "SELECT typtype::text FROM pg_type WHERE oid = $1",
        vec![Arg::Oid(oid)],
    )?
    .unwrap_or_default();
    if &definition(oid, &kind)? != def {
        return Err(VcError::new(
            Code::ERRCODE_INVALID_OBJECT_DEFINITION,
            format!("the definition of type {name} in the commit does not match what it creates here"),
        )
        .hint("a commit made by pgvc records types as PostgreSQL prints them; if it came from a remote or backup, check who can write there"));
    }
    Ok(())
}
