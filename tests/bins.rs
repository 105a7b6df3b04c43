//! Where the tests find the workspace's binaries. `env!("CARGO_BIN_EXE_...")` only works in the
//! package that owns a binary, and the binaries live in their own crates (crates/kk-webhook,
//! kk-plugin, kk-charm) so that each builds alone; these tests are in the root package, so they
//! take the binaries from the target directory the test executable was built in
//! (`target/<profile>/deps/<test>` → `target/<profile>/<binary>`), or from `KK_BIN_DIR`.
//! `tests/run` builds them first (`cargo build --locked --workspace --bins`); by hand:
//! `cargo build --bins && cargo test --test hermetic`.

use std::path::PathBuf;

/// The path of the workspace binary `name`; panics with what to run when it is not built.
pub fn bin(name: &str) -> String {
    let dir = match std::env::var_os("KK_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("the test executable's path");
            let deps = exe.parent().expect("the test executable's directory");
            deps.parent()
                .expect("the target profile directory")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --locked --workspace --bins` first (tests/run does)",
        path.display()
    );
    path.to_string_lossy().into_owned()
}
