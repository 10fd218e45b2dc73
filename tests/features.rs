//! `cargo test --no-default-features` builds fiber without the hooks: no crate of the workspace
//! turns the `hook` feature back on through feature unification (fiber-support, a
//! dev-dependency, once did by depending on fiber with its default features, so the suite "without
//! the hooks" still had them). Checked on cargo's own resolution, with `cargo tree`.
mod support;

use std::process::Command;

/// The features cargo resolves for the fiber package, as `cargo tree` lists them
/// (`fiber feature "hook"`, ...), with `extra` flags.
fn fiber_features(extra: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "tree",
            "--offline",
            "--edges",
            "features",
            "--invert",
            "fiber",
        ])
        .args(["--prefix", "none"])
        .args(extra)
        .output()
        .expect("run cargo tree");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree {extra:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("fiber feature "))
        .map(|f| {
            f.split_whitespace()
                .next()
                .unwrap_or("")
                .trim_matches('"')
                .to_owned()
        })
        .collect()
}

#[test]
fn no_default_features_leaves_the_hooks_out() {
    support::watchdog(120, || {
        let features = fiber_features(&["--no-default-features"]);
        assert!(
            features.is_empty(),
            "fiber gets features {features:?} with --no-default-features"
        );
    });
}

#[test]
fn default_features_have_the_hooks() {
    // The check above can see the feature when it is there.
    support::watchdog(120, || {
        let mut features = fiber_features(&[]);
        features.sort();
        features.dedup();
        assert_eq!(features, ["default", "hook"]);
    });
}
