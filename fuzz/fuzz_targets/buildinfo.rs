//! See `gotarget::fuzzing::buildinfo`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gotarget::fuzzing::buildinfo(data));
