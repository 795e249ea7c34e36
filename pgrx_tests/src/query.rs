//! Query helpers that return plain strings, so results from different servers (with
//! different session settings) compare with `assert_eq!`.

use postgres::Client;

/// Runs `sql` and returns every row as text values (`None` for SQL NULL).
///
/// Every result column must be `text`: the test SQL casts (`x::text`) itself, so the
/// text form is chosen by the test rather than by this helper.
pub fn query_strings(client: &mut Client, sql: &str) -> Vec<Vec<Option<String>>> {
    let rows = client
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("query failed: {sql}\n{}", error_detail(&e)));
    rows.iter()
        .map(|row| {
            (0..row.len())
                .map(|i| {
                    row.try_get::<_, Option<String>>(i).unwrap_or_else(|e| {
                        panic!("column {i} of `{sql}` is not text (cast it with ::text): {e}")
                    })
                })
                .collect()
        })
        .collect()
}

/// Runs `sql`, which must return exactly one row with one non-NULL text column.
pub fn query_scalar(client: &mut Client, sql: &str) -> String {
    let rows = query_strings(client, sql);
    match rows.as_slice() {
        [row] if row.len() == 1 => row[0]
            .clone()
            .unwrap_or_else(|| panic!("`{sql}` returned NULL")),
        _ => panic!("`{sql}` returned {rows:?}, expected one row with one value"),
    }
}

/// The server's message, detail and hint: `postgres::Error`'s Display hides them.
pub(crate) fn error_detail(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{}: {}{}{}",
            db.severity(),
            db.message(),
            db.detail()
                .map(|d| format!("\nDETAIL: {d}"))
                .unwrap_or_default(),
            db.hint()
                .map(|h| format!("\nHINT: {h}"))
                .unwrap_or_default()
        ),
        None => e.to_string(),
    }
}
