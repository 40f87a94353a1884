//! The layout's rules, checked on the source text: no import loops between the top-level modules
//! of the core, the contract and the server (nor between the submodules of a module that is a
//! directory, such as `src/domain` and `src/sync`), and no source file over 600 lines apart from
//! tests and tables of data.
//!
//! A module uses another when its code names it: `use crate::store::Store`, `crate::record::exists`,
//! `super::listing::Photo` in a submodule, or a name its parent re-exports (`crate::Store` is
//! `store`'s). Comments and string literals are left out, and so is test code (a file of tests, a
//! trailing `#[cfg(test)] mod tests` block): tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be, not counting its trailing tests.
const MAX_LINES: usize = 600;

/// Files allowed to be longer because they are tables of data, not logic.
const LONG_DATA_FILES: &[&str] = &[
    // Every coded value with its stable code, national code and labels in two languages: one
    // table, read by the device, the server and the UI alike.
    "contract/src/codes.rs",
];

/// The crates checked, by their source directory in the workspace.
const CRATES: &[&str] = &["src", "contract/src", "server/src"];

/// One source file: where it sits in its crate's module tree, and its code without comments,
/// strings and trailing tests.
struct Source {
    /// The path in the workspace, for messages.
    path: String,
    /// The module path inside the crate: empty for the crate root, `["sync"]` for
    /// `sync/mod.rs` or `sync.rs`, `["sync", "pull"]` for `sync/pull.rs`.
    module: Vec<String>,
    /// Lines before a trailing `#[cfg(test)] mod tests` block.
    lines: usize,
    /// Whether the whole file is test code: a `tests.rs` module, or a module its parent compiles
    /// for tests only (`#[cfg(test)]`, `#[cfg(feature = "testing")]`).
    is_tests: bool,
    /// The file as it is, to find how it declares its submodules.
    text: String,
    /// The code, comments and literals blanked, trailing tests cut.
    code: String,
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(directory: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{} cannot be read: {error}", directory.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

/// The code with comments, string literals and character literals replaced by spaces (line
/// breaks kept), so that only code is searched for module paths.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    let blank = |out: &mut String, character: char| out.push(if character == '\n' { '\n' } else { ' ' });
    while index < chars.len() {
        let character = chars[index];
        let next = chars.get(index + 1).copied();
        let previous = index.checked_sub(1).map(|at| chars[at]);
        let after_identifier = previous.is_some_and(|previous| previous.is_alphanumeric() || previous == '_');
        if character == '/' && next == Some('/') {
            while index < chars.len() && chars[index] != '\n' {
                index += 1;
            }
        } else if character == '/' && next == Some('*') {
            let mut depth = 0;
            while index < chars.len() {
                if chars[index] == '/' && chars.get(index + 1) == Some(&'*') {
                    depth += 1;
                    index += 2;
                } else if chars[index] == '*' && chars.get(index + 1) == Some(&'/') {
                    depth -= 1;
                    index += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[index]);
                    index += 1;
                }
            }
        } else if character == 'r' && !after_identifier && matches!(next, Some('"') | Some('#')) {
            // A raw string: r"..." or r#"..."#.
            let mut hashes = 0;
            let mut at = index + 1;
            while chars.get(at) == Some(&'#') {
                hashes += 1;
                at += 1;
            }
            if chars.get(at) != Some(&'"') {
                out.push(character);
                index += 1;
                continue;
            }
            at += 1;
            loop {
                match chars.get(at) {
                    None => break,
                    Some('"') if (0..hashes).all(|offset| chars.get(at + 1 + offset) == Some(&'#')) => {
                        at += 1 + hashes;
                        break;
                    }
                    Some(inside) => {
                        blank(&mut out, *inside);
                        at += 1;
                    }
                }
            }
            index = at;
        } else if character == '"' {
            index += 1;
            while index < chars.len() && chars[index] != '"' {
                if chars[index] == '\\' {
                    index += 1;
                }
                if let Some(inside) = chars.get(index) {
                    blank(&mut out, *inside);
                }
                index += 1;
            }
            index += 1;
        } else if character == '\'' && (next == Some('\\') || chars.get(index + 2) == Some(&'\'')) {
            // A character literal ('a', '\n', '\''); a lifetime ('a) has no closing quote.
            index += if next == Some('\\') { 2 } else { 1 };
            while index < chars.len() && chars[index] != '\'' {
                index += 1;
            }
            index += 1;
        } else {
            out.push(character);
            index += 1;
        }
    }
    out
}

/// Where a trailing `#[cfg(test)] mod tests {` block starts, as a line index, if the file has one.
fn trailing_tests(lines: &[&str]) -> Option<usize> {
    let start = lines.iter().rposition(|line| line.trim() == "#[cfg(test)]")?;
    let module = lines[start + 1..].iter().position(|line| !line.trim().starts_with("#["))? + start + 1;
    let declaration = lines[module].trim();
    (declaration.starts_with("mod tests") || declaration.starts_with("pub mod tests") || declaration.starts_with("pub(crate) mod tests"))
        .then_some(start)
}

fn read_sources(crate_dir: &str) -> Vec<Source> {
    let root = workspace().join(crate_dir);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut sources: Vec<Source> = files
        .into_iter()
        .map(|file| {
            let relative = file.strip_prefix(&root).expect("inside the crate").to_path_buf();
            let mut module: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
            let last = module.pop().expect("a file name");
            let stem = last.trim_end_matches(".rs").to_owned();
            let is_root = module.is_empty() && (stem == "lib" || stem == "main");
            if stem != "mod" && !is_root {
                module.push(stem.clone());
            }
            let text = std::fs::read_to_string(&file).unwrap_or_else(|error| panic!("{} cannot be read: {error}", file.display()));
            let all: Vec<&str> = text.lines().collect();
            let end = trailing_tests(&all).unwrap_or(all.len());
            let code = strip(&all[..end].join("\n"));
            Source {
                path: format!("{crate_dir}/{}", relative.display()),
                module,
                lines: end,
                is_tests: stem == "tests",
                code,
                text,
            }
        })
        .collect();
    let for_tests: Vec<bool> = sources
        .iter()
        .map(|source| {
            let Some((name, parent)) = source.module.split_last() else { return false };
            sources.iter().filter(|other| other.module == parent).any(|other| declared_for_tests(&other.text, name))
        })
        .collect();
    for (source, for_tests) in sources.iter_mut().zip(for_tests) {
        source.is_tests |= for_tests;
    }
    sources
}

/// Whether a module file declares its submodule `name` for tests only.
fn declared_for_tests(text: &str, name: &str) -> bool {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let declared = |line: &str| {
        let line = line.strip_prefix("pub ").or_else(|| line.strip_prefix("pub(crate) ")).unwrap_or(line);
        line == format!("mod {name};")
    };
    lines.iter().enumerate().filter(|(_, line)| declared(line)).any(|(at, _)| {
        lines[..at].iter().rev().take_while(|line| line.starts_with("#[") || line.starts_with("///")).any(|line| {
            line.starts_with("#[cfg(") && line.contains("test")
        })
    })
}

/// The paths named after a prefix such as `crate::`, with grouped imports expanded:
/// `crate::store::Store` gives `[store, Store]`, and `crate::{store::Store, domain::{self, photo}}`
/// gives `[store, Store]`, `[domain, self]` and `[domain, photo]`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let chars: Vec<char> = code.chars().collect();
    let mut from = 0;
    while let Some(found) = code[from..].find(prefix) {
        let start = from + found;
        from = start + prefix.len();
        // `crate::` must not be the tail of a longer name (`furrow_crate::`).
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let at = code[..from].chars().count();
        paths.extend(use_tree(&chars, at).0.into_iter().filter(|path| !path.is_empty()));
    }
    paths
}

/// The paths of a use tree starting at `at` (`a::b`, `a::{b, c::{d}}`), and where it ends.
fn use_tree(chars: &[char], mut at: usize) -> (Vec<Vec<String>>, usize) {
    let skip = |chars: &[char], mut at: usize| {
        while chars.get(at).is_some_and(|character| character.is_whitespace()) {
            at += 1;
        }
        at
    };
    let mut prefix: Vec<String> = Vec::new();
    loop {
        at = skip(chars, at);
        if chars.get(at) == Some(&'{') {
            at += 1;
            let mut paths = Vec::new();
            loop {
                at = skip(chars, at);
                if chars.get(at).is_none_or(|character| *character == '}') {
                    at += 1;
                    break;
                }
                let (inner, next) = use_tree(chars, at);
                at = skip(chars, next);
                paths.extend(inner.into_iter().map(|path| prefix.iter().cloned().chain(path).collect()));
                match chars.get(at) {
                    Some(',') => at += 1,
                    Some('}') => {
                        at += 1;
                        break;
                    }
                    // A rename (`x as y`) or anything else: skip to the next item or the end.
                    _ => {
                        while chars.get(at).is_some_and(|character| *character != ',' && *character != '}') {
                            at += 1;
                        }
                        at += 1;
                        if chars.get(at - 1) != Some(&',') {
                            break;
                        }
                    }
                }
            }
            return (paths, at);
        }
        let name: String = chars[at.min(chars.len())..].iter().take_while(|character| character.is_alphanumeric() || **character == '_').collect();
        if name.is_empty() {
            return (vec![prefix], at);
        }
        at += name.chars().count();
        prefix.push(name);
        if chars.get(at) == Some(&':') && chars.get(at + 1) == Some(&':') {
            at += 2;
        } else {
            return (vec![prefix], at);
        }
    }
}

/// The leading `a::b::c` segments of a path.
fn segments(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    use_tree(&chars, 0).0.into_iter().next().unwrap_or_default()
}

/// The names a module file re-exports from its own submodules (`pub use store::{OpenOptions,
/// Store}` in `lib.rs`), so that `crate::Store` counts as a use of `store`.
fn re_exports(source: &Source, children: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for statement in source.code.split(';') {
        let statement = statement.trim();
        let Some(path) = statement.strip_prefix("pub use ").or_else(|| statement.strip_prefix("pub(crate) use ")) else { continue };
        let path = path.trim().trim_start_matches("self::");
        let first = segments(path);
        let Some(child) = first.first().filter(|child| children.contains(*child)) else { continue };
        let after = &path[child.len()..];
        let after = after.strip_prefix("::").unwrap_or(after);
        let items: Vec<String> = match after.strip_prefix('{') {
            Some(group) => group.trim_end_matches('}').split(',').map(|item| item.trim().to_owned()).collect(),
            None => vec![after.to_owned()],
        };
        for item in items {
            let last = segments(&item).pop();
            let renamed = item.split(" as ").nth(1).map(|name| name.trim().to_owned());
            if let Some(name) = renamed.or(last) {
                names.insert(name, child.clone());
            }
        }
    }
    names
}

/// A directed graph of modules by name.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// One cycle of each loop (strongly connected component) of the graph, as its modules in order
/// (`[a, b, a]`), with the loop's other modules.
fn cycles(graph: &Graph) -> Vec<(Vec<String>, Vec<String>)> {
    // Tarjan's algorithm, then a shortest cycle through the component's first module.
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        components: Vec<Vec<&'g str>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g str) {
        let number = state.index.len();
        state.index.insert(node, number);
        state.low.insert(node, number);
        state.stack.push(node);
        state.on_stack.insert(node);
        for next in state.graph.get(node).into_iter().flatten() {
            let next = next.as_str();
            if !state.index.contains_key(next) {
                visit(state, next);
                let low = state.low[node].min(state.low[next]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(next) {
                let low = state.low[node].min(state.index[next]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = Vec::new();
            while let Some(top) = state.stack.pop() {
                state.on_stack.remove(top);
                component.push(top);
                if top == node {
                    break;
                }
            }
            state.components.push(component);
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    let mut found = Vec::new();
    for component in state.components.into_iter().filter(|component| component.len() > 1) {
        let members: BTreeSet<&str> = component.iter().copied().collect();
        let start = *members.iter().next().expect("a member");
        // Breadth first from `start` back to itself, inside the component.
        let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut closing = None;
        while let Some(node) = queue.pop_front() {
            for next in graph.get(node).into_iter().flatten().map(String::as_str).filter(|next| members.contains(next)) {
                if next == start {
                    closing = Some(node);
                    break;
                }
                if !previous.contains_key(next) {
                    previous.insert(next, node);
                    queue.push_back(next);
                }
            }
            if closing.is_some() {
                break;
            }
        }
        let mut path = vec![start];
        let mut node = closing.expect("a component has a cycle");
        while node != start {
            path.push(node);
            node = previous[node];
        }
        path[1..].reverse();
        path.push(start);
        let others = members.iter().filter(|member| !path.contains(member)).map(|member| (*member).to_owned()).collect();
        found.push((path.into_iter().map(str::to_owned).collect(), others));
    }
    found
}

/// The graphs of one crate: its top-level modules, and the submodules of each module that is a
/// directory. Each edge names the file that makes it.
fn graphs(sources: &[Source]) -> BTreeMap<String, (Graph, BTreeMap<(String, String), String>)> {
    let top: BTreeSet<String> = sources.iter().filter_map(|source| source.module.first().cloned()).collect();
    let root = sources.iter().find(|source| source.module.is_empty());
    let root_names = root.map(|root| re_exports(root, &top)).unwrap_or_default();
    let mut result: BTreeMap<String, (Graph, BTreeMap<(String, String), String>)> = BTreeMap::new();
    let mut add = |graph: &str, from: &str, to: &str, path: &str| {
        if from == to {
            return;
        }
        let (edges, files) = result.entry(graph.to_owned()).or_default();
        edges.entry(from.to_owned()).or_default().insert(to.to_owned());
        edges.entry(to.to_owned()).or_default();
        files.entry((from.to_owned(), to.to_owned())).or_insert_with(|| path.to_owned());
    };
    for source in sources.iter().filter(|source| !source.is_tests && !source.module.is_empty()) {
        let own = &source.module[0];
        let parent = &source.module[..source.module.len().saturating_sub(1)];
        let siblings: BTreeSet<String> = sources
            .iter()
            .filter(|other| other.module.len() == 2 && other.module[0] == *own)
            .map(|other| other.module[1].clone())
            .collect();
        let parent_source = sources.iter().find(|other| other.module.len() == 1 && other.module[0] == *own);
        let parent_names = parent_source.map(|parent| re_exports(parent, &siblings)).unwrap_or_default();
        let mut uses: Vec<Vec<String>> = paths_after(&source.code, "crate::");
        // `super::x` in a submodule of a directory module is `crate::<module>::x`.
        if source.module.len() == 2 {
            uses.extend(paths_after(&source.code, "super::").into_iter().map(|path| {
                let mut full = parent.to_vec();
                full.extend(path);
                full
            }));
        }
        for path in uses {
            let Some(first) = path.first() else { continue };
            let target = if top.contains(first) { Some(first.clone()) } else { root_names.get(first).cloned() };
            let Some(target) = target else { continue };
            add("", own, &target, &source.path);
            // Inside a directory module, from one submodule to another.
            if target == *own && source.module.len() == 2 {
                let Some(second) = path.get(1) else { continue };
                let sibling = if siblings.contains(second) { Some(second.clone()) } else { parent_names.get(second).cloned() };
                if let Some(sibling) = sibling {
                    add(own, &source.module[1], &sibling, &source.path);
                }
            }
        }
    }
    result
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mut loops = Vec::new();
    for crate_dir in CRATES {
        let sources = read_sources(crate_dir);
        for (module, (graph, files)) in graphs(&sources) {
            for (cycle, others) in cycles(&graph) {
                let evidence: Vec<String> = cycle
                    .windows(2)
                    .map(|pair| format!("{} -> {} in {}", pair[0], pair[1], files[&(pair[0].clone(), pair[1].clone())]))
                    .collect();
                let scope = if module.is_empty() { (*crate_dir).to_owned() } else { format!("{crate_dir}/{module}") };
                let also = if others.is_empty() { String::new() } else { format!("; also in the loop: {}", others.join(", ")) };
                loops.push(format!("{scope}: {} ({}){also}", cycle.join(" -> "), evidence.join("; ")));
            }
        }
    }
    assert!(loops.is_empty(), "import loops between modules:\n{}", loops.join("\n"));
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut long = Vec::new();
    for crate_dir in CRATES {
        for source in read_sources(crate_dir) {
            if source.is_tests || LONG_DATA_FILES.contains(&source.path.as_str()) {
                continue;
            }
            if source.lines > MAX_LINES {
                long.push(format!("{} has {} lines (at most {MAX_LINES} before its tests)", source.path, source.lines));
            }
        }
    }
    assert!(long.is_empty(), "source files over {MAX_LINES} lines:\n{}", long.join("\n"));
}

#[test]
fn the_checks_see_what_they_should() {
    let code = strip("use crate::store::Store; // crate::sync\nlet text = \"crate::domain\"; let c = '\"'; fn f<'a>(x: &'a str) {}");
    assert_eq!(paths_after(&code, "crate::"), vec![vec!["store".to_owned(), "Store".to_owned()]]);
    let grouped = paths_after("use crate::{record::{self, Saved}, error::Result};\nuse crate::domain::{household as h, photo};", "crate::");
    let grouped: Vec<String> = grouped.iter().map(|path| path.join("::")).collect();
    assert_eq!(grouped, ["record::self", "record::Saved", "error::Result", "domain::household", "domain::photo"]);
    let graph: Graph = [("a", &["b"][..]), ("b", &["c"][..]), ("c", &["a"][..]), ("d", &["a"][..])]
        .into_iter()
        .map(|(node, next)| (node.to_owned(), next.iter().map(|name| (*name).to_owned()).collect()))
        .collect();
    let found: Vec<String> = cycles(&graph).into_iter().map(|(cycle, _)| cycle.join(" -> ")).collect();
    assert_eq!(found, ["a -> b -> c -> a"]);
    let lines = ["fn f() {}", "#[cfg(test)]", "mod tests {", "}"];
    assert_eq!(trailing_tests(&lines), Some(1));
    let parent = "pub mod store;\n#[cfg(feature = \"testing\")]\npub mod testing;\n#[cfg(test)]\nmod tests;";
    assert!(declared_for_tests(parent, "testing") && declared_for_tests(parent, "tests"));
    assert!(!declared_for_tests(parent, "store"));
}
