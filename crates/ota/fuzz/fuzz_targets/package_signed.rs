//! A structured package: the harness serializes a manifest (or takes raw
//! bytes), signs exactly those bytes with the fixed trusted key, and writes
//! the tar itself, entry by entry, with odd entry types, long and PAX names,
//! wrong sizes and checksums, extra or missing entries and truncation.
//! Past the signature it reaches the manifest checks, payload streaming,
//! hashing and the path checks of `extract`, after which nothing may lie
//! outside the extraction folder and no symbolic link may exist.
#![no_main]

use edgesort_ota_fuzz::{PackageInput, Scratch, open_check_extract};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: PackageInput| {
    let built = input.build();
    let scratch = Scratch::get();
    scratch.reset(&built.bytes);
    if let Some(package) = open_check_extract(scratch) {
        // Only the bytes that were signed can have been verified.
        assert_eq!(
            package.manifest,
            edgesort_ota::Manifest::parse(&built.manifest_bytes).unwrap()
        );
    }
});
