//! The kubernetes-keystone charm's hook executable: the charm's `dispatch` (and every
//! `hooks/<event>` link) runs it; the event comes from `JUJU_DISPATCH_PATH` or the name it was
//! run as. Everything is in the library (`kk_charm`).

fn main() -> std::process::ExitCode {
    // Once, at the edge: the hook's downloads and health checks use reqwest.
    kk_core::tls::install_crypto_provider();
    kk_charm::main()
}
