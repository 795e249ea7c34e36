//! COPY text format (PostgreSQL's `COPY ... FROM` default format), written: how
//! `pg::copy` hands rows to COPY. A line is the fields separated by tabs and ended by
//! a newline; in a field a backslash starts an escape, so every backslash, tab,
//! newline and carriage return of a value is escaped, and no value can end a field,
//! a line or the data early (`\.` alone on a line can only come from a backslash,
//! which is doubled).

use super::Cell;

/// Appends one COPY text-format field: NULL as `\N`, text with backslash, newline,
/// carriage return and tab escaped, bytes (bytea) in hex form.
pub fn copy_field(line: &mut Vec<u8>, cell: &Cell) {
    match cell {
        Cell::Null => line.extend_from_slice(b"\\N"),
        Cell::Text(t) => copy_text(line, t),
        Cell::Bytes(b) => {
            // `\x...` (bytea hex input), with its backslash escaped for COPY.
            line.extend_from_slice(b"\\\\x");
            const HEX: &[u8; 16] = b"0123456789abcdef";
            for &x in b {
                line.push(HEX[(x >> 4) as usize]);
                line.push(HEX[(x & 15) as usize]);
            }
        }
    }
}

/// Appends `t` as one escaped COPY text field.
pub fn copy_text(line: &mut Vec<u8>, t: &str) {
    for &b in t.as_bytes() {
        match b {
            b'\\' => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            b'\t' => line.extend_from_slice(b"\\t"),
            _ => line.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(c: Cell) -> String {
        let mut v = Vec::new();
        copy_field(&mut v, &c);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_everything_that_could_end_a_field_or_a_line() {
        assert_eq!(field(Cell::Null), "\\N");
        assert_eq!(field(Cell::Text("\\N".into())), "\\\\N");
        assert_eq!(
            field(Cell::Text("a\tb\nc\rd\\".into())),
            "a\\tb\\nc\\rd\\\\"
        );
        assert_eq!(field(Cell::Text("\\.".into())), "\\\\.");
        assert_eq!(
            field(Cell::Text("plain é 'quote' \"dq\"".into())),
            "plain é 'quote' \"dq\""
        );
        assert_eq!(field(Cell::Bytes(vec![0, 0xab, b'\n'])), "\\\\x00ab0a");
        assert_eq!(field(Cell::Bytes(vec![])), "\\\\x");
    }

    /// A reader of COPY text (as PostgreSQL's CopyReadAttributesText reads it, for
    /// the escapes written here) gets back exactly the fields written.
    fn read_line(line: &str) -> Vec<Option<String>> {
        line.split('\t')
            .map(|f| {
                if f == "\\N" {
                    return None;
                }
                let mut out = String::new();
                let mut it = f.chars();
                while let Some(c) = it.next() {
                    if c != '\\' {
                        out.push(c);
                        continue;
                    }
                    match it.next() {
                        Some('n') => out.push('\n'),
                        Some('r') => out.push('\r'),
                        Some('t') => out.push('\t'),
                        Some(o) => out.push(o),
                        None => panic!("a field ends in a lone backslash"),
                    }
                }
                Some(out)
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn fields_round_trip(texts in proptest::collection::vec(proptest::option::of(".*"), 1..6)) {
            let mut line = Vec::new();
            for (i, t) in texts.iter().enumerate() {
                if i > 0 {
                    line.push(b'\t');
                }
                match t {
                    None => copy_field(&mut line, &Cell::Null),
                    Some(t) => copy_field(&mut line, &Cell::Text(t.clone())),
                }
            }
            let line = String::from_utf8(line).unwrap();
            proptest::prop_assert!(!line.contains('\n') && !line.contains('\r'));
            proptest::prop_assert_eq!(read_line(&line), texts);
        }
    }
}
