//! Rendering cells as JSON for `vc.diff()`, as PostgreSQL's `to_jsonb` does: numbers as
//! numbers, booleans as booleans, json/jsonb embedded, bytea as `\x` hex, most other
//! types as their text output. Types `to_jsonb` renders otherwise (timestamps, arrays,
//! composites, domains, other user types) are `Server`: the glue has the server render
//! them, and their text is only the fallback.

use super::Cell;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonKind {
    Number,
    Bool,
    Json,
    Text,
    /// Rendered by the server's `to_jsonb`; the text output until then.
    Server,
}

pub fn cell_to_json(cell: &Cell, kind: JsonKind) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Bytes(b) => {
            let mut s = String::with_capacity(2 + 2 * b.len());
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            Value::String(s)
        }
        Cell::Text(t) => match kind {
            // NaN and Infinity are not JSON numbers: keep them as strings.
            JsonKind::Number => serde_json::from_str::<serde_json::Number>(t)
                .map(Value::Number)
                .unwrap_or_else(|_| Value::String(t.clone())),
            JsonKind::Bool => Value::Bool(t == "t" || t == "true"),
            JsonKind::Json => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.clone())),
            JsonKind::Text | JsonKind::Server => Value::String(t.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let t = |s: &str| Cell::Text(s.into());
        assert_eq!(
            cell_to_json(&t("42"), JsonKind::Number),
            serde_json::json!(42)
        );
        assert_eq!(
            cell_to_json(&t("NaN"), JsonKind::Number),
            serde_json::json!("NaN")
        );
        assert_eq!(
            cell_to_json(&t("t"), JsonKind::Bool),
            serde_json::json!(true)
        );
        assert_eq!(
            cell_to_json(&t("{\"a\": [1]}"), JsonKind::Json),
            serde_json::json!({"a": [1]})
        );
        assert_eq!(cell_to_json(&Cell::Null, JsonKind::Text), Value::Null);
        assert_eq!(
            cell_to_json(&Cell::Bytes(vec![0xde, 0xad]), JsonKind::Text),
            serde_json::json!("\\xdead")
        );
    }
}
