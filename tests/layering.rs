//! The core's layering, checked: `util → coro → task → driver → observe → scheduler → monitor →
//! runtime`, each layer using only the ones below it (docs/architecture.md, "Layers"). Every
//! `crate::` path in a core
//! file (code, not comments) must name a module of its own layer or a lower one; the crate root's
//! re-exports (`crate::park`, `crate::Fiber`, ...) are the public API, above every layer.
//! The modules above the core (`net`, `sync`, `time`, `fs`, ...) may use any core layer.
//!
//! Run: `cargo test --test layering`. A failure lists each upward reference as file:line.
use std::fs;
use std::path::{Path, PathBuf};

/// The core layers, lowest first.
const CORE: [&str; 8] = [
    "util",
    "coro",
    "task",
    "driver",
    "observe",
    "scheduler",
    "monitor",
    "runtime",
];

/// The layer rank of a top-level module, if it is a core layer.
fn rank(module: &str) -> Option<usize> {
    CORE.iter().position(|m| *m == module)
}

/// Removes `//` comments (line and doc comments); string literals in the core do not hold `//`.
fn strip_comments(src: &str) -> String {
    src.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Every first path segment after `crate::` in `src`, with its 1-based line number. A grouped
/// import `crate::{a::b, c}` yields each of `a` and `c`.
fn crate_refs(src: &str) -> Vec<(usize, String)> {
    let code = strip_comments(src);
    let mut refs = Vec::new();
    let mut at = 0;
    while let Some(i) = code[at..].find("crate::") {
        let start = at + i;
        at = start + "crate::".len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::` (macros resolve it where they expand) or `foo_crate::`
        }
        let line = code[..start].matches('\n').count() + 1;
        let rest = &code[at..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                    _ if depth == 0 => item.push(c),
                    _ => {}
                }
            }
            items.push(item);
            for item in items {
                let name = ident_at(item.trim());
                if !name.is_empty() {
                    refs.push((line, name.to_string()));
                }
            }
        } else {
            refs.push((line, ident_at(rest).to_string()));
        }
    }
    refs
}

/// The upward references of a file in core layer `own`: (line, what it names).
fn upward(own: usize, src: &str) -> Vec<(usize, String)> {
    crate_refs(src)
        .into_iter()
        .filter(|(_, name)| match rank(name) {
            Some(r) => r > own,
            // Not a core layer: an upper module (`net`, `sync`, ...) or a root re-export.
            None => true,
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_core_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut violations = Vec::new();
    let mut checked = 0;
    for (own, layer) in CORE.iter().enumerate() {
        let mut files = Vec::new();
        let dir = src.join(layer);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let single = src.join(format!("{layer}.rs"));
        if single.is_file() {
            files.push(single);
        }
        assert!(
            !files.is_empty(),
            "core layer `{layer}` has no source files"
        );
        for file in files {
            let text = fs::read_to_string(&file).unwrap();
            checked += 1;
            for (line, name) in upward(own, &text) {
                let rel = file.strip_prefix(&src).unwrap().display().to_string();
                violations.push(format!("src/{rel}:{line}: `{layer}` uses `crate::{name}`"));
            }
        }
    }
    assert!(checked > 20, "only {checked} core files found");
    assert!(
        violations.is_empty(),
        "upward references in the core (each layer may use only {:?} below it):\n{}",
        CORE,
        violations.join("\n")
    );
}

#[test]
fn the_scanner_finds_paths_groups_and_skips_comments() {
    let src = "use crate::task::Task;\n\
               // use crate::runtime::Nope;\n\
               /// see [`crate::sync`]\n\
               use crate::{coro::Coroutine, driver::{wait, io}, Fiber};\n\
               let x = $crate::sync::x(); crate::park();\n";
    let refs: Vec<String> = crate_refs(src).into_iter().map(|(_, n)| n).collect();
    assert_eq!(refs, ["task", "coro", "driver", "Fiber", "park"]);
    let lines: Vec<usize> = crate_refs(src).into_iter().map(|(l, _)| l).collect();
    assert_eq!(lines, [1, 4, 4, 4, 5]);
}

#[test]
fn the_check_flags_upward_and_root_references_only() {
    let driver = rank("driver").unwrap();
    let ok = "use crate::task::park::park;\nuse crate::util::rng::FastRng;\nuse crate::driver::x;";
    assert!(upward(driver, ok).is_empty());
    let bad =
        "use crate::scheduler::Handle;\nfn f() { crate::park(); }\nuse crate::net::TcpStream;";
    let names: Vec<String> = upward(driver, bad).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["scheduler", "park", "net"]);
}
