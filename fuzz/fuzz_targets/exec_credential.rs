//! `KUBERNETES_EXEC_INFO` as the plugin reads it (`kk_plugin::exec::parse_exec_info`) and the
//! `ExecCredential` model (`kk_core::exec_credential`) both ways.
//!
//! Properties: what the plugin accepts names a version it answers in; an `ExecCredential`
//! serializes, and its serialization reads back to the same value and the same text.
#![no_main]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kk_core::exec_credential::{ExecCredential, V1, V1BETA1};
use kk_plugin::exec::parse_exec_info;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let info = parse_exec_info(Some(text));
    // The plugin trims the variable first (Unicode whitespace, wider than JSON's).
    let Ok(model) = serde_json::from_str::<ExecCredential>(text.trim()) else {
        assert!(info.is_err() || text.trim().is_empty());
        return;
    };
    match model.version() {
        Ok(v) => {
            assert!([V1, V1BETA1].contains(&v.as_str()));
            assert_eq!(info.map(|i| i.api_version), Ok(v));
        }
        Err(_) => assert!(info.is_err()),
    }
    let once = model.to_json().expect("an ExecCredential serializes");
    let back: ExecCredential = serde_json::from_str(&once).expect("its JSON reads back");
    let twice = back.to_json().unwrap();
    assert_eq!(once, twice);
    let again: ExecCredential = serde_json::from_str(&twice).unwrap();
    assert_eq!(back, again);
});
