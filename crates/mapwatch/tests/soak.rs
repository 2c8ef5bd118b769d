//! mapwatch never harms its target: attached and detached again and again, and switched on and
//! off by a fast duty cycle, against a net/http service under load (Go 1.22 and 1.25). The
//! service answers every request with the right content throughout, no probe is left in its
//! code (every probed instruction's bytes read back as in the file), and its memory stays put.
//!
//! `MAPWATCH_SOAK_CYCLES` sets the attach/detach cycles (10 by default; `scripts/test.sh
//! --soak` runs 1000).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gotarget::{GoBinary, MapOp, ProbeSite};

/// One HTTP/1.1 request on a kept-alive connection: the status and the body.
fn request(conn: &mut BufReader<TcpStream>, method: &str, path: &str, body: &str) -> (u32, String) {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: soak\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.get_mut()
        .write_all(head.as_bytes())
        .expect("the service takes the request");
    let mut line = String::new();
    conn.read_line(&mut line).expect("a status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut length = 0;
    loop {
        line.clear();
        conn.read_line(&mut line).expect("headers");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().expect("a length");
            }
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).expect("the body");
    (status, String::from_utf8(body).expect("text"))
}

/// A client that writes an order's status and reads it back until told to stop; panics on
/// any wrong answer. Returns how many round trips it made.
fn client(addr: String, order: u32, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let stream = TcpStream::connect(&addr).expect("the service listens");
        stream.set_nodelay(true).unwrap();
        let mut conn = BufReader::new(stream);
        let path = format!("/orders/{order}");
        let mut n = 0u64;
        while !stop.load(Ordering::Relaxed) {
            let status = format!("shipped-{n}");
            assert_eq!(request(&mut conn, "PUT", &path, &status).0, 204);
            assert_eq!(request(&mut conn, "GET", &path, ""), (200, status));
            n += 1;
        }
        n
    })
}

/// wrk on GET /orders/1 until told to stop: the service stays busy.
fn load(addr: String, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let status = Command::new("wrk")
                .args(["-t1", "-c8", "-d1s", &format!("http://{addr}/orders/1")])
                .stdout(Stdio::null())
                .status()
                .expect("wrk runs (scripts/setup.sh --tests installs it)");
            assert!(status.success());
        }
        0
    })
}

/// Every site mapwatch may probe in `binary`.
fn probe_sites(binary: &GoBinary) -> Vec<ProbeSite> {
    let mut sites = Vec::new();
    for p in binary.map_probe_plan() {
        if p.op == MapOp::Make {
            sites.extend(binary.return_sites(&p.function).unwrap());
        }
        sites.push(p.site);
    }
    sites.extend(binary.map_call_sites().into_iter().map(|c| c.site));
    sites.extend(binary.sync_probe_plan().probes.into_iter().map(|p| p.site));
    sites
}

/// The sites whose first byte in the running process differs from the file's (a uprobe left
/// behind shows as `int3`).
fn altered_sites(pid: u32, exe: &Path, sites: &[ProbeSite]) -> Vec<u64> {
    let file = std::fs::read(exe).unwrap();
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    sites
        .iter()
        .filter(|s| {
            let mut byte = [0u8];
            mem.read_exact_at(&mut byte, s.addr).unwrap();
            byte[0] != file[s.file_offset as usize]
        })
        .map(|s| s.addr)
        .collect()
}

fn mapwatch_attach(pid: u32, args: &[&str]) {
    let pid = pid.to_string();
    let out = common::run_mapwatch(&[&["attach", "--quiet", "-p", &pid], args].concat());
    assert!(out.status.success(), "mapwatch attach {args:?} failed");
}

fn soak(version: &str) {
    let cycles = common::soak_cycles();
    let exe = common::go_binary(version, "service");
    let dir = common::scratch(&format!("soak-{version}"));
    let addr_file = dir.join("addr");
    let mut service: Child = Command::new(&exe)
        .args(["-addr", "127.0.0.1:0", "-addr-file"])
        .arg(&addr_file)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = service.id();
    let started = Instant::now();
    let addr = loop {
        let addr = std::fs::read_to_string(&addr_file).unwrap_or_default();
        if !addr.is_empty() {
            break addr;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no service");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients: Vec<_> = (2..6)
        .map(|i| client(addr.clone(), i, Arc::clone(&stop)))
        .collect();
    clients.push(load(addr.clone(), Arc::clone(&stop)));
    std::thread::sleep(Duration::from_secs(1));
    let rss_before = common::rss_kib(pid);

    for _ in 0..cycles {
        mapwatch_attach(pid, &["--duration", "0.2"]);
    }
    // Every probe switched on and off as fast as switching allows.
    mapwatch_attach(
        pid,
        &[
            "--duty-cycle",
            "50",
            "--duty-period",
            "0.02",
            "--duration",
            "4",
        ],
    );

    stop.store(true, Ordering::Relaxed);
    let round_trips: u64 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert!(
        service.try_wait().unwrap().is_none(),
        "the service died under watch"
    );
    let rss_after = common::rss_kib(pid);
    let altered = altered_sites(pid, &exe, &probe_sites(&GoBinary::open(&exe).unwrap()));
    let _ = service.kill();
    let _ = service.wait();
    eprintln!(
        "Go {version}: {cycles} attach/detach cycles, {round_trips} round trips, \
         RSS {rss_before} KiB -> {rss_after} KiB"
    );
    assert!(round_trips > cycles as u64, "the clients stalled");
    assert!(
        altered.is_empty(),
        "probes left in the code at {altered:x?}"
    );
    // The kernel's copies of probed text pages and Go's heap under load: a few MiB either
    // way, never growth per cycle.
    assert!(
        rss_after < rss_before + 32 * 1024,
        "RSS {rss_before} KiB -> {rss_after} KiB"
    );
}

#[test]
fn attach_detach_and_duty_cycling_leave_a_busy_service_unharmed() {
    for version in gobuild::TEST_VERSIONS {
        soak(version);
    }
}
