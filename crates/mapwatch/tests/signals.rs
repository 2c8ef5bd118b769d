//! Ctrl-C and SIGTERM are how a watch is usually ended: they must end it cleanly (summary,
//! reports written, the target's status), never as an error of the interrupted wait.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{go_binary, mapwatch};
use gobuild::TEST_VERSIONS;

#[test]
fn ctrl_c_ends_a_run_cleanly() {
    let bin = go_binary(TEST_VERSIONS[1], "longrun");
    // The signal lands in the event wait most of the time; a few tries make sure it did once.
    for _ in 0..3 {
        let child = mapwatch()
            .args(["run", "--quiet", "--", bin.to_str().unwrap(), "1000", "50"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("error"), "{stderr}");
        assert!(stderr.contains("map ops ("), "the summary: {stderr}");
        assert!(stderr.contains("target was killed by signal 2"), "{stderr}");
        assert_eq!(
            out.status.code(),
            Some(130),
            "the target's status, as a shell has it"
        );
    }
}
