//! Raw bytes as a package file, opened against one fixed trusted key.
//! Random bytes almost never carry a valid signature, but the seeds are
//! packages signed with that key, and the signature covers only the
//! manifest: mutations of the payload entries still open and reach
//! `check_payloads` and `extract`.
#![no_main]

use edgesort_ota_fuzz::{Scratch, open_check_extract};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scratch = Scratch::get();
    scratch.reset(data);
    open_check_extract(scratch);
});
