//! See `gotarget::fuzzing::type_names`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gotarget::fuzzing::type_names(data));
