//! A `--report` file through the JSON-lines reader of `mapwatch report`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mapwatch::jsonl::parse(text, "fuzz-input");
    }
});
