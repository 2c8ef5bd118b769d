//! race-detector: events per second through the happens-before analysis, one core, no kernel
//! involved. The streams mimic a locked service (goroutines come and go, each taking a mutex
//! around reads and writes of a few shared maps, with channel hand-offs between them), a
//! net/http service (locks, contexts and goroutines made per request), and unsynchronised
//! writes, which must all come out as races.
//!
//! cargo bench -p mapwatch --bench race-detector

use std::time::Instant;

use gotarget::{MapOp, SyncKind};
use mapwatch::RaceDetector;
use mapwatch::{ChanState, MapEvent, SyncEvent};

const PID: u32 = 1;

enum Ev {
    Map(MapEvent),
    Sync(SyncEvent),
}

fn map(goid: u64, op: MapOp, map: u64, ret: u64) -> Ev {
    Ev::Map(MapEvent {
        ts: 0,
        map,
        map_type: 0,
        goid,
        ret,
        key: 0,
        caller: 0,
        seed: 0,
        pid: PID,
        tid: 0,
        cpu: 0,
        op,
        saw_writing: false,
        runtime_fatal: false,
    })
}

fn sync(goid: u64, kind: SyncKind, object: u64, child: u64) -> Ev {
    Ev::Sync(sync_event(goid, kind, object, child))
}

fn sync_event(goid: u64, kind: SyncKind, object: u64, child: u64) -> SyncEvent {
    SyncEvent {
        ts: 0,
        kind,
        object,
        goid,
        child,
        pc: 0,
        pid: PID,
        tid: 0,
        chan: None,
    }
}

/// A locked workload: `workers` live goroutines at a time, replaced every `life` rounds.
fn locked_stream(events: usize) -> Vec<Ev> {
    let mut out = Vec::with_capacity(events + 64);
    let (workers, life) = (64u64, 200usize);
    let mut next_goid = 2u64;
    let mut live: Vec<u64> = Vec::new();
    let mut round = 0usize;
    while out.len() < events {
        while live.len() < workers as usize {
            out.push(sync(1, SyncKind::GoStart, 0, next_goid));
            live.push(next_goid);
            next_goid += 1;
        }
        for (i, &g) in live.iter().enumerate() {
            let mu = 0x1000 + (i as u64 % 8) * 8;
            let m = 0xc000_0000 + (i as u64 % 8) * 0x100;
            out.push(sync(g, SyncKind::MutexLock, mu, 0));
            out.push(map(g, MapOp::Read, m, 0x40_1000));
            out.push(map(g, MapOp::Write, m, 0x40_2000));
            out.push(sync(g, SyncKind::MutexUnlock, mu, 0));
            // A send on a buffered channel, with the state its probe reads: a slot each.
            let slot = (round * workers as usize + i) as u32 % 64;
            out.push(Ev::Sync(SyncEvent {
                chan: Some(ChanState {
                    cap: 64,
                    sendx: slot,
                    recvx: slot,
                    ..ChanState::default()
                }),
                ..sync_event(g, SyncKind::ChanSend, 0x2000, 0)
            }));
        }
        round += 1;
        if round.is_multiple_of(life) {
            for g in live.drain(..) {
                out.push(sync(g, SyncKind::GoExit, 0, 0));
            }
        }
    }
    out
}

/// A net/http service as its probes see it: 32 connection goroutines serve requests; each
/// request locks a context made for it, starts and ends a background reader that takes the
/// connection's lock, reads a store under an RWMutex, counts itself in a map under a Mutex
/// and puts a buffer back in a pool. Objects and goroutines are made per request and never
/// said to die: the detector's memory must stay bounded and its speed flat.
fn service_stream(events: usize) -> Vec<Ev> {
    let mut out = Vec::with_capacity(events + 64);
    let (conns, store, counters) = (32u64, 0xc000_0000u64, 0xc000_1000u64);
    let (store_mu, counters_mu, pool) = (0x1000u64, 0x1100u64, 0x1200u64);
    for c in 0..conns {
        out.push(sync(1, SyncKind::GoStart, 0, 2 + c));
    }
    let mut next_goid = 2 + conns;
    let mut request = 0u64;
    while out.len() < events {
        let conn = 2 + request % conns;
        let conn_mu = 0x10_0000 + (request % conns) * 0x100;
        let context = 0x1000_0000 + request * 0x40;
        let reader = next_goid;
        next_goid += 1;
        out.push(sync(conn, SyncKind::ValueLoad, pool, 0));
        out.push(sync(conn, SyncKind::MutexLock, context, 0));
        out.push(sync(conn, SyncKind::MutexUnlock, context, 0));
        out.push(sync(conn, SyncKind::GoStart, 0, reader));
        out.push(sync(reader, SyncKind::MutexLock, conn_mu, 0));
        out.push(sync(reader, SyncKind::MutexUnlock, conn_mu, 0));
        out.push(sync(reader, SyncKind::GoExit, 0, 0));
        out.push(sync(conn, SyncKind::MutexLock, conn_mu, 0));
        out.push(sync(conn, SyncKind::MutexUnlock, conn_mu, 0));
        out.push(sync(conn, SyncKind::RLock, store_mu, 0));
        out.push(map(conn, MapOp::Read, store, 0x40_1000));
        out.push(sync(conn, SyncKind::RUnlock, store_mu, 0));
        out.push(sync(conn, SyncKind::MutexLock, counters_mu, 0));
        out.push(map(conn, MapOp::Write, counters, 0x40_2000));
        out.push(sync(conn, SyncKind::MutexUnlock, counters_mu, 0));
        out.push(sync(conn, SyncKind::ValueStore, pool, 0));
        request += 1;
    }
    out
}

/// Unsynchronised writes by two goroutines to one map: every write after the first races.
fn racy_stream(events: usize) -> Vec<Ev> {
    let mut out = vec![
        sync(1, SyncKind::GoStart, 0, 2),
        sync(1, SyncKind::GoStart, 0, 3),
    ];
    for i in 0..events {
        out.push(map(
            2 + (i as u64 & 1),
            MapOp::Write,
            0xc100_0000,
            0x40_3000,
        ));
    }
    out
}

fn run(events: &[Ev]) -> (f64, usize, String) {
    let mut d = RaceDetector::new();
    let mut races = Vec::new();
    let mut found = 0;
    let start = Instant::now();
    for ev in events {
        match ev {
            Ev::Map(e) => {
                d.access(e, true, &mut races);
                found += races.len();
                races.clear();
            }
            Ev::Sync(e) => d.sync(e),
        }
    }
    let rate = events.len() as f64 / start.elapsed().as_secs_f64();
    (rate, found, format!("{:?}", d.size()))
}

fn main() {
    const N: usize = 4_000_000;
    for (name, stream, expect_races) in [
        (
            "locked service (mutex, channels, goroutine churn)",
            locked_stream(N),
            false,
        ),
        (
            "service (objects and goroutines made per request)",
            service_stream(N),
            false,
        ),
        (
            "unsynchronised writes (every access a race)",
            racy_stream(N),
            true,
        ),
    ] {
        let mut rates = Vec::new();
        let (mut found, mut size) = (0, String::new());
        for _ in 0..5 {
            let (rate, f, s) = run(&stream);
            rates.push(rate);
            (found, size) = (f, s);
        }
        rates.sort_by(f64::total_cmp);
        assert_eq!(found > 0, expect_races, "{name}: {found} races");
        println!(
            "{name}: median {:.2}M events/s (min {:.2}, max {:.2}), {found} races; at the end {size}",
            rates[2] / 1e6,
            rates[0] / 1e6,
            rates[4] / 1e6
        );
    }
}
