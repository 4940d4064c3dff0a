//! Raw bytes into `Manifest::parse`; whatever parses must survive its own
//! `to_bytes()` unchanged.
#![no_main]

use edgesort_ota::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::parse(data) else {
        return;
    };
    let bytes = manifest.to_bytes();
    let again = Manifest::parse(&bytes).unwrap_or_else(|error| {
        panic!("a parsed manifest does not parse from its own bytes: {error}")
    });
    assert_eq!(again, manifest, "a manifest changed through to_bytes");
    assert_eq!(again.to_bytes(), bytes, "to_bytes is not stable");
    for payload in &manifest.payloads {
        assert_eq!(manifest.payload(&payload.path), Some(payload));
        assert_eq!(
            edgesort_ota::slot_path_kind(&payload.path).ok(),
            Some(payload.kind)
        );
    }
});
