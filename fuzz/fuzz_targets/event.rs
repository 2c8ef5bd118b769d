//! One BPF ring buffer record through mapwatch's event decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mapwatch::decode_record(data);
});
