//! The modules' layers, checked: a module uses only modules of lower
//! layers, so there is no import cycle among them, and a newcomer can read
//! the crate bottom up. A new top-level module needs a place here.

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest first. Within a layer, modules do not use each other.
const LAYERS: &[&[&str]] = &[
    // Pure: no I/O, no actors; and the hook the binary gives to hand
    // memory back.
    &["domain", "supervisor", "memory"],
    &["config"],
    &[
        "storage",
        "telemetry",
        "health",
        "faults",
        "publisher",
        "broker",
    ],
    // The Kafka log and the members sharing it, over the store.
    &["cluster"],
    // A message and its acknowledgement; knows no actor.
    &["delivery"],
    &["actors"],
    // The sources and the HTTP side, above the pipeline they feed.
    &["web", "replay", "simulator"],
    &["app"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level module a file of `src/` belongs to.
fn module_of(relative: &Path) -> String {
    let first = relative.components().next().expect("a path under src");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

/// The modules of this crate a file's code names (`crate::x`), leaving
/// out comments and its unit tests.
fn uses(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
    let mut used = BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a::X, b};`
                for part in group.split('}').next().unwrap_or("").split(',') {
                    let name = part.trim().split("::").next().unwrap_or("");
                    if !name.is_empty() {
                        used.insert(name.to_owned());
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                used.insert(name);
            }
        }
    }
    used
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for path in all {
        let relative = path.strip_prefix(&src).unwrap();
        let module = module_of(relative);
        if matches!(module.as_str(), "lib" | "main" | "layering") {
            continue;
        }
        let Some(own) = layer(&module) else {
            wrong.push(format!("{module}: not in LAYERS"));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        for used in uses(&text) {
            if used == module {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                _ => wrong.push(format!(
                    "{} uses crate::{used}, which is not below {module}",
                    relative.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn a_use_of_a_module_is_seen_however_it_is_written() {
    let text = "use crate::a::B;\nuse crate::{c::D, e};\n// crate::f in a comment\nfn x() { crate::g::h(); }\n#[cfg(test)]\nmod tests {\n    use crate::i;\n}\n";
    let used: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(used, ["a", "c", "e", "g"]);
}
