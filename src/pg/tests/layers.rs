//! The module graph of `src/pg` has no cycles (docs/ARCHITECTURE.md, Layers): every
//! `crate::pg::x` or `super::x` a module names points down. Read from the sources.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module of `src/pg` -> the top-level modules it names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pg");
    let mut files = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().unwrap() != "tests" {
                    dirs.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts == ["mod"] {
            continue; // the glue root: registers its modules
        }
        let top = parts[0].clone();
        // `super::x` names a sibling of `top` only from a top-level file or a
        // directory's mod.rs; inside a directory it names that directory's items.
        let super_is_pg = parts.len() == 1 || parts[1] == "mod";
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text
            .split("#[cfg(any(test, feature = \"pg_test\"))]")
            .next()
            .unwrap();
        let deps = g.entry(top.clone()).or_default();
        for (prefix, counts) in [("crate::pg::", true), ("super::", super_is_pg)] {
            if !counts {
                continue;
            }
            for (i, _) in code.match_indices(prefix) {
                let name: String = code[i + prefix.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    deps.insert(name);
                }
            }
        }
    }
    let tops: BTreeSet<String> = g.keys().cloned().collect();
    for deps in g.values_mut() {
        deps.retain(|d| tops.contains(d));
    }
    g
}

#[test]
fn no_import_cycles_in_the_glue() {
    let g = graph();
    assert!(g.contains_key("sql") && g.contains_key("spi") && g.contains_key("api"));
    for start in g.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = g[start].iter().collect();
        while let Some(m) = todo.pop() {
            assert_ne!(m, start, "{start} reaches itself: {g:?}");
            if seen.insert(m.clone()) {
                todo.extend(g.get(m).into_iter().flatten());
            }
        }
    }
    // The pieces the trust boundary rests on sit low: they name no policy module.
    for low in ["sql", "spi", "refs", "error"] {
        for high in ["api", "replication", "checkout", "worker"] {
            assert!(!g[low].contains(high), "{low} depends on {high}");
        }
    }
}
