//! The unsafe inventory: scans `src/**/*.rs` as text, checks that every `unsafe` block, impl and
//! extern block carries a `// SAFETY:` comment (and every `unsafe fn` a `# Safety` section), and
//! checks that the generated section of docs/safety.md lists exactly what the scan finds.
//!
//! Refresh the section with `FIBER_BLESS=1 cargo test --test safety_inventory`.
//!
//! Entries are keyed by file, enclosing item path and ordinal (not line numbers), so an edit
//! elsewhere in a file does not change the list. The scan is a plain text scan: comments, strings
//! and char literals are blanked before looking for `unsafe`, which is good enough for this crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const BEGIN: &str =
    "<!-- BEGIN GENERATED: unsafe inventory (FIBER_BLESS=1 cargo test --test safety_inventory) -->";
const END: &str = "<!-- END GENERATED: unsafe inventory -->";
const BLESS: &str = "FIBER_BLESS=1 cargo test --test safety_inventory";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Block,
    Impl,
    Fn,
    Extern,
    Trait,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Block => "block",
            Kind::Impl => "impl",
            Kind::Fn => "fn",
            Kind::Extern => "extern",
            Kind::Trait => "trait",
        }
    }
}

#[derive(Debug)]
struct Entry {
    file: String,
    /// 1-based, only for error messages (the inventory does not show it).
    line: usize,
    kind: Kind,
    /// Enclosing item path (`Type::method`, `<Type as Trait>::method`, `tests::case`).
    item: String,
    /// Counts entries of the same file, item and kind, in source order.
    ordinal: usize,
    /// First line of the justification; `None` if there is none.
    safety: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Class {
    Code,
    Comment,
    Literal,
}

/// Classifies every char of `src` as code, comment or string/char literal.
fn classify(src: &[char]) -> Vec<Class> {
    let mut class = vec![Class::Code; src.len()];
    let at = |i: usize| src.get(i).copied().unwrap_or('\0');
    let mut i = 0;
    while i < src.len() {
        let c = src[i];
        let start = i;
        if c == '/' && at(i + 1) == '/' {
            while i < src.len() && src[i] != '\n' {
                i += 1;
            }
            class[start..i].fill(Class::Comment);
            continue;
        }
        if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < src.len() {
                if src[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if src[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            class[start..i].fill(Class::Comment);
            continue;
        }
        let ident_before = start > 0 && (src[start - 1].is_alphanumeric() || src[start - 1] == '_');
        // Raw strings: r"..", r#".."#, br#".."#.
        if !ident_before && (c == 'r' || (c == 'b' && at(i + 1) == 'r')) {
            let mut j = if c == 'b' { i + 2 } else { i + 1 };
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) == '"' {
                j += 1;
                while j < src.len() {
                    if src[j] == '"' && (1..=hashes).all(|h| at(j + h) == '#') {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                class[start..j.min(src.len())].fill(Class::Literal);
                i = j;
                continue;
            }
        }
        if c == '"' {
            i += 1;
            while i < src.len() && src[i] != '"' {
                i += if src[i] == '\\' { 2 } else { 1 };
            }
            i = (i + 1).min(src.len());
            class[start..i].fill(Class::Literal);
            continue;
        }
        if c == '\'' {
            // A char literal ('x', '\n', '\u{..}'); otherwise a lifetime or label.
            let end = if at(i + 1) == '\\' {
                let mut j = i + 2;
                while j < src.len() && src[j] != '\'' && src[j] != '\n' {
                    j += 1;
                }
                Some(j + 1)
            } else if at(i + 2) == '\'' {
                Some(i + 3)
            } else {
                None
            };
            if let Some(end) = end {
                let end = end.min(src.len());
                class[start..end].fill(Class::Literal);
                i = end;
                continue;
            }
        }
        i += 1;
    }
    class
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Removes `#[..]` / `#![..]` attributes (balanced brackets) from an item header.
fn strip_attributes(header: &str) -> String {
    let mut out = String::new();
    let mut chars = header.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '#' && matches!(chars.peek(), Some('[') | Some('!')) {
            let mut depth = 0;
            for d in chars.by_ref() {
                match d {
                    '[' => depth += 1,
                    ']' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

/// Drops `<..>` generic arguments (balanced) and keeps the last path segment.
fn base_name(ty: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    let mut prev = ' ';
    for c in ty.chars() {
        let arrow = prev == '-';
        prev = c;
        match c {
            '<' => depth += 1,
            '>' if depth > 0 && !arrow => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let out = out.trim();
    let out = out.strip_prefix('&').unwrap_or(out).trim();
    out.rsplit("::").next().unwrap_or(out).trim().to_string()
}

/// What an item header (the code before an item's `{` or `;`) names, if it is an item that
/// shows in a path: `fn f`, `impl T`, `impl Tr for T`, `mod m`, `trait Tr`, `macro_rules! m`.
/// The second value says whether it is a trait impl.
fn item_of(header: &str) -> Option<(String, bool)> {
    let header = strip_attributes(header);
    let mut rest = header.trim();
    loop {
        let before = rest;
        for q in [
            "pub(crate)",
            "pub(super)",
            "pub(self)",
            "pub",
            "const",
            "async",
            "unsafe",
            "default",
        ] {
            if let Some(r) = rest.strip_prefix(q) {
                if !r.starts_with(is_ident) {
                    rest = r.trim_start();
                }
            }
        }
        if rest.starts_with("pub(in") {
            rest = rest[rest.find(')')? + 1..].trim_start();
        }
        if let Some(r) = rest.strip_prefix("extern") {
            let r = r.trim_start();
            // The ABI string is blanked but keeps its quotes.
            rest = match r.strip_prefix('"') {
                Some(abi) => abi[abi.find('"')? + 1..].trim_start(),
                None => r,
            };
        }
        if rest == before {
            break;
        }
    }
    let word = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|&c| is_ident(c))
            .collect()
    };
    if let Some(r) = rest.strip_prefix("fn ") {
        return Some((word(r), false)).filter(|(n, _)| !n.is_empty());
    }
    if let Some(r) = rest.strip_prefix("mod ") {
        return Some((word(r), false));
    }
    if let Some(r) = rest.strip_prefix("trait ") {
        return Some((word(r), false));
    }
    if let Some(r) = rest.strip_prefix("macro_rules!") {
        return Some((format!("{}!", word(r)), false));
    }
    let r = rest.strip_prefix("impl")?;
    if r.starts_with(is_ident) {
        return None;
    }
    // Skip the impl's own generic parameters.
    let mut r = r.trim_start();
    if r.starts_with('<') {
        let mut depth = 0;
        let mut end = 0;
        let mut prev = ' ';
        for (k, c) in r.char_indices() {
            let arrow = prev == '-';
            prev = c;
            match c {
                '<' => depth += 1,
                '>' if !arrow => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        r = r[end..].trim_start();
    }
    let r = r.split(" where ").next().unwrap_or(r);
    Some(match r.split_once(" for ") {
        Some((tr, ty)) => (format!("<{} as {}>", base_name(ty), base_name(tr)), true),
        None => (base_name(r), false),
    })
}

struct Frame {
    name: Option<String>,
    trait_impl: bool,
}

fn path_of(stack: &[Frame]) -> String {
    let names: Vec<&str> = stack.iter().filter_map(|f| f.name.as_deref()).collect();
    if names.is_empty() {
        "(top level)".to_string()
    } else {
        names.join("::")
    }
}

/// Per line: its code (literals blanked but quotes kept, comments dropped) and its comment text.
struct Lines {
    code: Vec<String>,
    comment: Vec<String>,
}

fn split_lines(src: &[char], class: &[Class]) -> Lines {
    let mut lines = Lines {
        code: vec![String::new()],
        comment: vec![String::new()],
    };
    for (&c, &cl) in src.iter().zip(class) {
        if c == '\n' {
            lines.code.push(String::new());
            lines.comment.push(String::new());
            continue;
        }
        match cl {
            Class::Code => lines.code.last_mut().unwrap().push(c),
            Class::Comment => lines.comment.last_mut().unwrap().push(c),
            // Quotes stay, so that `extern "C"` keeps its shape; contents are blanked.
            Class::Literal if c == '"' => lines.code.last_mut().unwrap().push(c),
            Class::Literal => lines.code.last_mut().unwrap().push(' '),
        }
    }
    lines
}

/// The text after `SAFETY:` in a comment line, with ` …` when the comment goes on.
fn justification(lines: &Lines, at: usize, marker_end: usize) -> String {
    let first = lines.comment[at][marker_end..].trim();
    let goes_on = lines.comment.get(at + 1).is_some_and(|c| {
        lines.code[at + 1].trim().is_empty() && c.trim_start().starts_with("//") && c.trim() != "//"
    });
    if goes_on {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

/// Finds the `// SAFETY:` comment for a block/impl on line `at`: on that line, or in the comment
/// block just above the statement containing it (a few continuation lines may come between).
fn safety_comment(lines: &Lines, at: usize) -> Option<String> {
    if let Some(k) = lines.comment[at].find("SAFETY:") {
        return Some(justification(lines, at, k + "SAFETY:".len()));
    }
    let mut seen_comment = false;
    let mut continuation = 0;
    for j in (0..at).rev() {
        let code = lines.code[j].trim();
        let comment = lines.comment[j].trim();
        if code.is_empty() && !comment.is_empty() {
            seen_comment = true;
            if let Some(k) = lines.comment[j].find("SAFETY:") {
                return Some(justification(lines, j, k + "SAFETY:".len()));
            }
            continue;
        }
        if code.is_empty() || seen_comment {
            return None;
        }
        if code.starts_with("#[") {
            continue;
        }
        continuation += 1;
        if continuation > 6 || code.ends_with(';') || code.ends_with('{') || code.ends_with('}') {
            return None;
        }
    }
    None
}

/// Finds the `# Safety` doc section (or a `// SAFETY:` comment) of an `unsafe fn` on line `at`.
fn safety_doc(lines: &Lines, at: usize) -> Option<String> {
    if let Some(s) = safety_comment(lines, at) {
        return Some(s);
    }
    let mut start = at;
    while start > 0 {
        let code = lines.code[start - 1].trim();
        if (code.is_empty() && !lines.comment[start - 1].trim().is_empty())
            || code.starts_with("#[")
        {
            start -= 1;
        } else {
            break;
        }
    }
    let docs: Vec<&str> = (start..at)
        .filter_map(|j| lines.comment[j].trim().strip_prefix("///"))
        .map(str::trim)
        .collect();
    let heading = docs.iter().position(|d| *d == "# Safety")?;
    let first = heading + 1 + docs[heading + 1..].iter().position(|d| !d.is_empty())?;
    Some(match docs.get(first + 1) {
        Some(next) if !next.is_empty() => format!("{} …", docs[first]),
        _ => docs[first].to_string(),
    })
}

/// Scans one file's source. `file` is only used to label the entries.
fn scan(file: &str, text: &str) -> Vec<Entry> {
    let src: Vec<char> = text.chars().collect();
    let class = classify(&src);
    let lines = split_lines(&src, &class);
    // Code with comments dropped and literal contents blanked, as one string, with the line of
    // each char.
    let mut code = String::new();
    let mut line_of = Vec::new();
    for (l, c) in lines.code.iter().enumerate() {
        for ch in c.chars() {
            code.push(ch);
            line_of.push(l);
        }
        code.push('\n');
        line_of.push(l);
    }
    let code: Vec<char> = code.chars().collect();
    let mut entries = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut header = String::new();
    let mut ordinals: BTreeMap<(String, Kind), usize> = BTreeMap::new();
    let mut i = 0;
    while i < code.len() {
        let c = code[i];
        match c {
            '{' => {
                let (name, trait_impl) =
                    item_of(&header).map_or((None, false), |(n, t)| (Some(n), t));
                stack.push(Frame { name, trait_impl });
                header.clear();
            }
            '}' => {
                stack.pop();
                header.clear();
            }
            ';' => header.clear(),
            _ => header.push(c),
        }
        let word_start = c == 'u' && (i == 0 || !is_ident(code[i - 1]));
        if word_start
            && code[i..].starts_with(&['u', 'n', 's', 'a', 'f', 'e'])
            && !code.get(i + 6).copied().is_some_and(is_ident)
        {
            let rest: String = code[i + 6..].iter().take(200).collect();
            let after = rest.trim_start();
            let line = line_of[i];
            let kind = if after.starts_with('{') {
                Some(Kind::Block)
            } else if after.starts_with("impl") {
                Some(Kind::Impl)
            } else if after.starts_with("trait") {
                Some(Kind::Trait)
            } else if after.starts_with("fn") || after.starts_with("extern") {
                // `unsafe fn name`, `unsafe extern "C" fn name`, `unsafe extern "C" {`; a bare
                // `unsafe fn(..)` is a pointer type, not an item.
                let head: String = after
                    .chars()
                    .take_while(|&c| c != '{' && c != ';' && c != '(')
                    .collect();
                let brace = after.chars().find(|&c| c == '{' || c == ';' || c == '(');
                if head.contains("fn") {
                    item_of(&head).map(|_| Kind::Fn)
                } else if brace == Some('{') {
                    Some(Kind::Extern)
                } else {
                    None
                }
            } else {
                None
            };
            if let Some(kind) = kind {
                let mut item = path_of(&stack);
                if matches!(kind, Kind::Impl | Kind::Fn | Kind::Trait) {
                    let head: String = after
                        .chars()
                        .take_while(|&c| c != '{' && c != ';' && c != '(')
                        .collect();
                    let own = item_of(&format!("unsafe {head}"))
                        .map(|(n, _)| n)
                        .unwrap_or_default();
                    item = if stack.iter().all(|f| f.name.is_none()) {
                        own
                    } else {
                        format!("{item}::{own}")
                    };
                }
                let ordinal = ordinals.entry((item.clone(), kind)).or_default();
                *ordinal += 1;
                let in_trait_impl = stack.last().is_some_and(|f| f.trait_impl);
                let safety = match kind {
                    Kind::Fn if in_trait_impl => safety_doc(&lines, line)
                        .or_else(|| Some("(the trait's contract)".to_string())),
                    Kind::Fn | Kind::Trait => safety_doc(&lines, line),
                    Kind::Block | Kind::Impl | Kind::Extern => safety_comment(&lines, line),
                };
                entries.push(Entry {
                    file: file.to_string(),
                    line: line + 1,
                    kind,
                    item,
                    ordinal: *ordinal,
                    safety,
                });
            }
        }
        i += 1;
    }
    entries
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut items: Vec<_> = std::fs::read_dir(dir)
        .expect("read src dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    items.sort();
    for p in items {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn scan_crate(root: &Path) -> Vec<Entry> {
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut entries = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&f).expect("read source");
        entries.extend(scan(&rel, &text));
    }
    entries
}

fn render(entries: &[Entry]) -> String {
    let count = |k: Kind| entries.iter().filter(|e| e.kind == k).count();
    let mut out = String::new();
    writeln!(out, "{BEGIN}").unwrap();
    writeln!(
        out,
        "Generated by `tests/safety_inventory.rs` from `src/`: {} unsafe blocks, {} unsafe impls, {} unsafe fns, {} unsafe extern blocks, {} unsafe traits. Refresh with `{BLESS}`.",
        count(Kind::Block),
        count(Kind::Impl),
        count(Kind::Fn),
        count(Kind::Extern),
        count(Kind::Trait),
    )
    .unwrap();
    let mut file = "";
    for e in entries {
        if e.file != file {
            file = &e.file;
            writeln!(
                out,
                "\n#### `{file}`\n\n| item | kind | justification (first line) |\n|---|---|---|"
            )
            .unwrap();
        }
        let ordinal = if e.ordinal > 1 {
            format!(" #{}", e.ordinal)
        } else {
            String::new()
        };
        let safety = e
            .safety
            .as_deref()
            .unwrap_or("**missing**")
            .replace('|', "\\|");
        writeln!(
            out,
            "| `{}`{ordinal} | {} | {safety} |",
            e.item,
            e.kind.name()
        )
        .unwrap();
    }
    write!(out, "{END}").unwrap();
    out
}

/// The generated section of `doc` (markers included), if both markers are there.
fn section(doc: &str) -> Option<(usize, usize)> {
    let start = doc.find(BEGIN)?;
    let end = doc[start..].find(END)? + start + END.len();
    Some((start, end))
}

#[test]
fn unsafe_inventory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let entries = scan_crate(root);
    assert!(
        entries.len() > 50,
        "the scan found only {} unsafe items",
        entries.len()
    );

    let missing: Vec<String> = entries
        .iter()
        .filter(|e| e.safety.is_none())
        .map(|e| {
            format!(
                "  {}:{}: unsafe {} in `{}`",
                e.file,
                e.line,
                e.kind.name(),
                e.item
            )
        })
        .collect();
    assert!(
        missing.is_empty(),
        "unsafe without a `// SAFETY:` comment (or, for an unsafe fn, a `# Safety` doc section):\n{}",
        missing.join("\n")
    );

    let doc_path = root.join("docs/safety.md");
    let doc = std::fs::read_to_string(&doc_path).expect("read docs/safety.md");
    let generated = render(&entries);
    let current = section(&doc).map(|(s, e)| &doc[s..e]);
    if current == Some(generated.as_str()) {
        return;
    }
    if std::env::var_os("FIBER_BLESS").is_some() {
        let blessed = match section(&doc) {
            Some((s, e)) => format!("{}{generated}{}", &doc[..s], &doc[e..]),
            None => format!("{}\n{generated}\n", doc.trim_end()),
        };
        std::fs::write(&doc_path, blessed).expect("write docs/safety.md");
        return;
    }
    let Some(current) = current else {
        panic!("docs/safety.md has no generated inventory section (markers `{BEGIN}` ... `{END}`); run `{BLESS}`");
    };
    let old: Vec<&str> = current.lines().collect();
    let new: Vec<&str> = generated.lines().collect();
    let mut hint = String::new();
    for l in old.iter().filter(|l| !new.contains(l)) {
        writeln!(hint, "- {l}").unwrap();
    }
    for l in new.iter().filter(|l| !old.contains(l)) {
        writeln!(hint, "+ {l}").unwrap();
    }
    panic!(
        "docs/safety.md's unsafe inventory is out of date (- in the doc, + from the scan):\n{hint}\nrefresh it with `{BLESS}`"
    );
}

#[test]
fn scanner_accepts_a_commented_block() {
    let src = "fn f() {\n    // SAFETY: the pointer is valid.\n    let x = unsafe { *p };\n}\n";
    let e = scan("a.rs", src);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].kind, e[0].item.as_str(), e[0].line),
        (Kind::Block, "f", 3)
    );
    assert_eq!(e[0].safety.as_deref(), Some("the pointer is valid."));
}

#[test]
fn scanner_rejects_an_uncommented_block() {
    let src = "fn f() {\n    // Reads p.\n    let x = unsafe { *p };\n    let y = 1;\n    unsafe { g() };\n}\n";
    let e = scan("a.rs", src);
    assert_eq!(e.len(), 2);
    assert!(e.iter().all(|e| e.safety.is_none()), "{e:?}");
    assert_eq!((e[0].ordinal, e[1].ordinal), (1, 2));
}

#[test]
fn scanner_ignores_unsafe_in_comments_and_strings() {
    let src = concat!(
        "// unsafe { not code }\n",
        "/* unsafe impl Send for X {} */\n",
        "fn f() -> &'static str {\n",
        "    let c = '\"';\n",
        "    let s = \"unsafe { x }\";\n",
        "    let r = r#\"unsafe fn g() {}\"#;\n",
        "    s\n",
        "}\n",
    );
    assert!(scan("a.rs", src).is_empty());
}

#[test]
fn scanner_names_items_and_finds_justifications() {
    let src = concat!(
        "struct S<T>(T);\n",
        "// SAFETY: S owns its T.\n",
        "unsafe impl<T: Send> Send for S<T> {}\n",
        "impl<T> Drop for S<T> {\n",
        "    fn drop(&mut self) {\n",
        "        // SAFETY: a long argument\n",
        "        // that goes on.\n",
        "        let v = foo\n",
        "            .map(|p| unsafe { &*p });\n",
        "    }\n",
        "}\n",
        "impl<T, F: FnOnce() -> T> S<T> {\n",
        "    /// Reads it.\n",
        "    ///\n",
        "    /// # Safety\n",
        "    /// `p` must be valid\n",
        "    /// and aligned.\n",
        "    #[inline]\n",
        "    pub(crate) unsafe fn read(p: *const T) {}\n",
        "    fn ptr(f: unsafe fn()) {}\n",
        "}\n",
        "#[cfg(test)]\n",
        "mod tests {\n",
        "    unsafe extern \"C\" {\n",
        "        fn abort();\n",
        "    }\n",
        "}\n",
    );
    let e = scan("a.rs", src);
    let got: Vec<(Kind, &str, Option<&str>)> = e
        .iter()
        .map(|e| (e.kind, e.item.as_str(), e.safety.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            (Kind::Impl, "<S as Send>", Some("S owns its T.")),
            (Kind::Block, "<S as Drop>::drop", Some("a long argument …")),
            (Kind::Fn, "S::read", Some("`p` must be valid …")),
            (Kind::Extern, "tests", None),
        ]
    );
}

#[test]
fn the_section_is_found_between_its_markers() {
    let doc = format!("prose\n{BEGIN}\nold\n{END}\nmore prose\n");
    let (s, e) = section(&doc).expect("markers");
    assert_eq!(&doc[s..e], format!("{BEGIN}\nold\n{END}"));
    assert!(section("prose only").is_none());
}
