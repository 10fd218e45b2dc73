//! Sets `cfg(fiber_hook)` when the libc interposition is compiled in: the `hook` feature, on
//! Linux with glibc, dynamically linked (a static build has no dynamic libc for `dlsym` to find,
//! docs/hook.md). One name for the condition, instead of four repeated at every use.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(fiber_hook)");
    println!("cargo::rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let hook = std::env::var_os("CARGO_FEATURE_HOOK").is_some()
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && !var("CARGO_CFG_TARGET_FEATURE")
            .split(',')
            .any(|f| f == "crt-static");
    if hook {
        println!("cargo::rustc-cfg=fiber_hook");
    }
}
