//! The Yocto recipe fetches every crate from crates.io by name, version and
//! sha256 listed in `edgesort-crates.inc`, then builds offline (`--frozen`).
//! A crate that Cargo.lock has and the list lacks fails that build hours in,
//! on a machine nobody watches; this finds it in the test run instead.

use std::collections::{BTreeMap, BTreeSet};

use crate::common::repo;

const INC: &str = "yocto/meta-edgesort/recipes-edgesort/edgesort/edgesort-crates.inc";
const FIX: &str = "run scripts/yocto-crates-inc.py to regenerate it";

struct Locked {
    /// `name-version` of every crates.io package, in Cargo.lock's order.
    crates: Vec<(String, String)>,
    /// sha256 by `name-version`.
    checksums: BTreeMap<String, String>,
    /// Workspace members: built from the recipe's source, never fetched.
    workspace: BTreeSet<String>,
}

fn locked() -> Locked {
    let text = std::fs::read_to_string(repo().join("Cargo.lock")).expect("Cargo.lock reads");
    let lock: toml::Table = text.parse().expect("Cargo.lock is TOML");
    let packages = lock["package"]
        .as_array()
        .expect("Cargo.lock lists packages");
    let mut locked = Locked {
        crates: Vec::new(),
        checksums: BTreeMap::new(),
        workspace: BTreeSet::new(),
    };
    for package in packages {
        let field = |key: &str| package.get(key).and_then(|value| value.as_str());
        let name = field("name").expect("every package has a name");
        let version = field("version").expect("every package has a version");
        match field("source") {
            None => {
                locked.workspace.insert(name.to_owned());
            }
            Some(source) if source.contains("crates.io") => {
                let key = format!("{name}-{version}");
                let checksum = field("checksum")
                    .unwrap_or_else(|| panic!("{key} from crates.io has no checksum"));
                locked.checksums.insert(key, checksum.to_owned());
                locked.crates.push((name.to_owned(), version.to_owned()));
            }
            Some(source) => panic!(
                "{name} {version} comes from {source}: the Yocto recipe fetches crates from \
                 crates.io only"
            ),
        }
    }
    locked
}

struct Listed {
    crates: Vec<(String, String)>,
    checksums: BTreeMap<String, String>,
}

/// Reads the file as the bbclass writes it; any other line is an error, so
/// a hand edit cannot hide a crate in a form the comparison skips.
fn listed() -> Listed {
    let text = std::fs::read_to_string(repo().join(INC)).expect("the crates .inc reads");
    let mut listed = Listed {
        crates: Vec::new(),
        checksums: BTreeMap::new(),
    };
    for (number, line) in text.lines().enumerate() {
        let number = number + 1;
        if line.is_empty() || line.starts_with('#') || line == "SRC_URI += \" \\" || line == "\"" {
            continue;
        }
        if let Some(rest) = line.strip_prefix("    crate://crates.io/") {
            let uri = rest
                .strip_suffix(" \\")
                .unwrap_or_else(|| panic!("{INC}:{number}: no line continuation: {line}"));
            let (name, version) = uri
                .split_once('/')
                .unwrap_or_else(|| panic!("{INC}:{number}: not <name>/<version>: {line}"));
            listed.crates.push((name.to_owned(), version.to_owned()));
        } else if let Some(rest) = line.strip_prefix("SRC_URI[") {
            let (key, sum) = rest
                .split_once(".sha256sum] = \"")
                .and_then(|(key, rest)| Some((key, rest.strip_suffix('"')?)))
                .unwrap_or_else(|| panic!("{INC}:{number}: not a sha256sum line: {line}"));
            listed.checksums.insert(key.to_owned(), sum.to_owned());
        } else {
            panic!("{INC}:{number}: not a line cargo-update-recipe-crates writes: {line}");
        }
    }
    listed
}

#[test]
fn yocto_crates_inc_matches_cargo_lock() {
    let locked = locked();
    let listed = listed();
    let listed_set: BTreeSet<_> = listed.crates.iter().collect();
    let locked_set: BTreeSet<_> = locked.crates.iter().collect();

    for (name, version) in &listed.crates {
        assert!(
            !locked.workspace.contains(name),
            "{INC} fetches {name} {version} from crates.io, but {name} is a workspace crate \
             built from the recipe's source; {FIX}"
        );
    }
    for (name, version) in &locked.crates {
        assert!(
            listed_set.contains(&(name.clone(), version.clone())),
            "{name} {version} is in Cargo.lock but missing from {INC}; {FIX}"
        );
        let key = format!("{name}-{version}");
        match listed.checksums.get(&key) {
            None => panic!("{INC} has no sha256sum for {key}; {FIX}"),
            Some(sum) => assert_eq!(
                sum, &locked.checksums[&key],
                "{INC} has another sha256 for {key} than Cargo.lock; {FIX}"
            ),
        }
    }
    for (name, version) in &listed.crates {
        assert!(
            locked_set.contains(&(name.clone(), version.clone())),
            "{INC} lists {name} {version}, which Cargo.lock does not have; {FIX}"
        );
    }
    for key in listed.checksums.keys() {
        assert!(
            locked.checksums.contains_key(key),
            "{INC} has a sha256sum for {key}, which Cargo.lock does not have; {FIX}"
        );
    }
    assert_eq!(
        listed.crates.len(),
        listed_set.len(),
        "{INC} lists a crate twice; {FIX}"
    );
    assert_eq!(
        listed.crates, locked.crates,
        "{INC} has Cargo.lock's crates in another order; {FIX}"
    );
}
