//! Measures what telemetry costs on the read and write paths (single thread):
//! `cargo run -p mapguard --release --example telemetry_overhead`.

use std::hint::black_box;
use std::time::Instant;

use mapguard::ShardedMap;

fn run(telemetry: bool) -> (f64, f64) {
    let map: ShardedMap<u64, u64> = ShardedMap::builder().telemetry(telemetry).build();
    for k in 0..100_000 {
        map.insert(k, k);
    }
    let n = 5_000_000u64;
    let start = Instant::now();
    for i in 0..n {
        black_box(map.get_cloned(&(i.wrapping_mul(0x9E37_79B9) % 100_000)));
    }
    let read = start.elapsed().as_nanos() as f64 / n as f64;
    let start = Instant::now();
    for i in 0..n {
        map.update(&(i.wrapping_mul(0x9E37_79B9) % 100_000), |v| *v += 1);
    }
    let write = start.elapsed().as_nanos() as f64 / n as f64;
    (read, write)
}

fn main() {
    // Interleave to share the machine's noise between the two settings.
    let (mut on, mut off) = ((0.0, 0.0), (0.0, 0.0));
    for _ in 0..3 {
        let a = run(false);
        let b = run(true);
        off = (off.0 + a.0, off.1 + a.1);
        on = (on.0 + b.0, on.1 + b.1);
    }
    println!(
        "ns/op  read: off {:.1} on {:.1} ({:+.1}%)  update: off {:.1} on {:.1} ({:+.1}%)",
        off.0 / 3.0,
        on.0 / 3.0,
        (on.0 / off.0 - 1.0) * 100.0,
        off.1 / 3.0,
        on.1 / 3.0,
        (on.1 / off.1 - 1.0) * 100.0
    );
}
