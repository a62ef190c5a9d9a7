//! Every function crate has a resource in template.yaml and every templated function has a crate.

use caas_e2e::workspace_root;
use std::collections::BTreeSet;

/// Binary names declared by the crates under functions/.
fn function_binaries() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(workspace_root().join("functions")).unwrap() {
        let manifest = std::fs::read_to_string(entry.unwrap().path().join("Cargo.toml")).unwrap();
        let mut in_bin = false;
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if let Some(value) = line.strip_prefix("name = ").filter(|_| in_bin) {
                names.insert(value.trim_matches('"').to_owned());
            }
        }
    }
    names
}

/// `Binary:` values of rust-cargolambda build metadata in the SAM template.
fn templated_binaries() -> BTreeSet<String> {
    let template = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let lines: Vec<&str> = template.lines().map(str::trim).collect();
    let mut names = BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        if *line == "BuildMethod: rust-cargolambda" {
            let binary = lines[i + 1..]
                .iter()
                .take(3)
                .find_map(|l| l.strip_prefix("Binary: "))
                .unwrap_or_else(|| panic!("a rust-cargolambda function without a Binary near line {}", i + 1));
            names.insert(binary.to_owned());
        }
    }
    names
}

#[test]
fn every_function_crate_is_in_the_template_and_back() {
    let crates = function_binaries();
    assert!(
        crates.contains("auth") && crates.contains("persist-messages"),
        "found {crates:?}"
    );
    assert_eq!(crates, templated_binaries());
}
