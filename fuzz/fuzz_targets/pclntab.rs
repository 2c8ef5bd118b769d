//! See `gotarget::fuzzing::pclntab`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gotarget::fuzzing::pclntab(data));
