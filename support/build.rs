//! Builds the small C client of the hook tests (`c/client.c`, `tests/hook_c.rs`) four ways, with
//! the C compiler the `cc` crate finds (`cc`, or `$CC`): a static library linked into this crate
//! and a shared object for `dlopen`, each plain (`-O2`) and fortified (`-O2 -D_FORTIFY_SOURCE=2`).
//! The linked pair get distinct name prefixes (`fc_plain_`, `fc_fortified_`), as both end up in
//! one binary; the shared objects both use `fc_`. Only with the `harness` feature on Linux: the
//! fuzz targets need no C compiler.
use std::path::PathBuf;

/// Name, and the flags after `-O2 -U_FORTIFY_SOURCE` (the compiler's own default is cleared).
const VARIANTS: [(&str, &[&str]); 2] = [("plain", &[]), ("fortified", &["-D_FORTIFY_SOURCE=2"])];
const SOURCE: &str = "c/client.c";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(fc_client)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed={SOURCE}");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if std::env::var_os("CARGO_FEATURE_HARNESS").is_none() || !linux {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (name, flags) in VARIANTS {
        let mut build = cc::Build::new();
        build
            .file(SOURCE)
            .opt_level(2)
            .warnings(true)
            .extra_warnings(true)
            .flag("-U_FORTIFY_SOURCE");
        for flag in flags {
            build.flag(flag);
        }

        let so = out.join(format!("libfc_client_{name}.so"));
        let mut cmd = build
            .clone()
            .define("FC_PREFIX", "fc_")
            .get_compiler()
            .to_command();
        cmd.args(["-shared", "-fPIC", "-o"]).arg(&so).arg(SOURCE);
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("could not run the C compiler ({cmd:?}): {e}"));
        assert!(
            status.success(),
            "building {} failed: {cmd:?}",
            so.display()
        );

        build
            .define("FC_PREFIX", format!("fc_{name}_").as_str())
            .compile(&format!("fc_client_{name}"));
    }
    println!("cargo::rustc-cfg=fc_client");
}
