//! The kubernetes-keystone charm's hook executable: the charm's `dispatch` (and every
//! `hooks/<event>` link) runs it; the event comes from `JUJU_DISPATCH_PATH` or the name it was
//! run as. Everything is in the library (`kk_charm`).

fn main() -> std::process::ExitCode {
    kk_charm::main()
}
