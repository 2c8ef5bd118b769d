//! The audit log (`--audit DIR`): JSON lines for a SIEM, one record per finding occurrence
//! and, with `--audit-ops`, one per sampled map operation. Every record carries its platform
//! (see [`super::platform`]); records of one platform go to their own directory,
//! `DIR/<platform tag>/`, as `audit-NNNNNN.jsonl` files of at most `--audit-max-bytes`,
//! mode 0600. Each record is written with one `write` (so a crash of mapwatch loses nothing
//! written); the first occurrence of each distinct finding is also synced to disk.
//!
//! One [`AuditLog`] serves every watched process (the daemon shares it); each watch writes
//! through its own [`TargetAudit`].

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::platform::{self, Platform};
use crate::clock::WallClock;
use crate::event::MapEvent;
use crate::opcount::OpSeries;
use crate::report::{op_name, Finding};

/// Default: keep 1 map operation in this many (`--audit-ops-sample`).
pub const DEFAULT_OPS_SAMPLE: u64 = 1000;
/// Default size at which a file is closed and the next one begun (`--audit-max-bytes`).
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// The smallest `--audit-max-bytes`: a finding with two deep stacks must fit in a file.
pub const MIN_MAX_BYTES: u64 = 4096;

/// What the user asked of the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditOptions {
    /// The directory that holds one partition per platform tag.
    pub dir: PathBuf,
    /// Keep 1 map operation in this many; `None`: no operations, findings only.
    pub ops_sample: Option<u64>,
    /// Begin a new file before one would grow past this.
    pub max_bytes: u64,
}

impl AuditOptions {
    /// Checks the numbers (one-line errors for the command line).
    pub fn validate(&self) -> Result<()> {
        if self.ops_sample == Some(0) {
            bail!("--audit-ops-sample must be at least 1 (1 keeps every operation)");
        }
        if self.max_bytes < MIN_MAX_BYTES {
            bail!(
                "--audit-max-bytes {} is too small: at least {MIN_MAX_BYTES}",
                self.max_bytes
            );
        }
        Ok(())
    }
}

/// One line of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// "finding" or "op".
    #[serde(rename = "type")]
    pub kind: String,
    /// Position in its partition, from 1, across rotations (per mapwatch run).
    pub seq: u64,
    /// Wall-clock time of the event, ns since the Unix epoch.
    pub time_unix_ns: u64,
    /// The digest of `platform`; also the partition's directory name.
    pub platform_tag: String,
    /// Where it was seen.
    pub platform: Platform,
    /// The target process.
    pub pid: u32,
    /// For "finding": the finding, as in the JSON-lines report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<Finding>,
    /// For "op": the operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub op: Option<OpRecord>,
}

/// A sampled map operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpRecord {
    /// "read", "write", "delete", "iterate", "clear" or "make".
    pub op: String,
    /// The map header's address, `0x...`.
    pub map: String,
    /// Where the map was made, `function file:line`, or "unknown".
    pub map_site: String,
    /// Goroutine id.
    pub goid: u64,
    /// Thread id.
    pub tid: u32,
    /// This record stands for this many operations (the sampling rate).
    pub sample: u64,
}

/// The audit log, shared by every watch of one mapwatch.
#[derive(Clone, Debug)]
pub struct AuditLog {
    opts: AuditOptions,
    partitions: Arc<Mutex<HashMap<String, Partition>>>,
}

impl AuditLog {
    /// Opens (creating, mode 0700) the audit directory.
    pub fn open(opts: AuditOptions) -> Result<AuditLog> {
        opts.validate()?;
        private_dir(&opts.dir)?;
        Ok(AuditLog {
            opts,
            partitions: Arc::default(),
        })
    }

    /// The writer for one target, whose Go version completes its platform.
    pub fn for_target(&self, go_version: &str) -> Result<TargetAudit> {
        let platform = platform::current(go_version);
        let tag = platform.tag();
        {
            let mut partitions = self.partitions.lock().expect("audit lock");
            if !partitions.contains_key(&tag) {
                let p = Partition::open(&self.opts.dir.join(&tag), &platform)?;
                partitions.insert(tag.clone(), p);
            }
        }
        Ok(TargetAudit {
            log: self.clone(),
            platform,
            tag,
            since_kept: 0,
            clock: WallClock::now(),
        })
    }

    fn write(&self, tag: &str, mut record: AuditRecord, sync: bool) -> Result<()> {
        let mut partitions = self.partitions.lock().expect("audit lock");
        let p = partitions.get_mut(tag).expect("partitions open before use");
        p.seq += 1;
        record.seq = p.seq;
        let mut line = serde_json::to_vec(&record).expect("records serialize");
        line.push(b'\n');
        p.write(&line, self.opts.max_bytes, sync)
    }
}

/// One target's view of the audit log.
pub struct TargetAudit {
    log: AuditLog,
    platform: Platform,
    tag: String,
    /// Operations passed over since the last one kept.
    since_kept: u64,
    clock: WallClock,
}

impl TargetAudit {
    /// The platform tag (the partition's directory name).
    #[cfg(test)]
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Records one occurrence, at `ts_ns` (monotonic), of a distinct finding (as first
    /// reported, its `count` the occurrences so far). The `first` occurrence is synced to disk
    /// before returning; repeats are written at once but synced with the next first: a race
    /// seen thousands of times a second must not cost thousands of syncs.
    pub fn finding(&mut self, finding: &Finding, first: bool, ts_ns: u64) -> Result<()> {
        let time = self.clock.unix_ns(ts_ns);
        let mut record = self.record("finding", time, finding.pid);
        record.finding = Some(finding.clone());
        self.log.write(&self.tag, record, first)
    }

    /// Records the operation if it is the one in N kept; `map_site` names its map's maker
    /// (only asked for kept operations).
    pub fn op(&mut self, ev: &MapEvent, map_site: impl FnOnce() -> Option<String>) -> Result<()> {
        let Some(sample) = self.log.opts.ops_sample else {
            return Ok(());
        };
        self.since_kept += 1;
        if self.since_kept < sample {
            return Ok(());
        }
        self.since_kept = 0;
        let mut record = self.record("op", self.clock.unix_ns(ev.ts), ev.pid);
        record.op = Some(OpRecord {
            op: op_name(ev.op).to_string(),
            map: format!("{:#x}", ev.map),
            map_site: map_site().unwrap_or_else(|| crate::opcount::UNKNOWN_SITE.to_string()),
            goid: ev.goid,
            tid: ev.tid,
            sample,
        });
        self.log.write(&self.tag, record, false)
    }

    fn record(&self, kind: &str, time_unix_ns: u64, pid: u32) -> AuditRecord {
        AuditRecord {
            kind: kind.to_string(),
            seq: 0,
            time_unix_ns,
            platform_tag: self.tag.clone(),
            platform: self.platform.clone(),
            pid,
            finding: None,
            op: None,
        }
    }
}

/// The files of one platform tag.
#[derive(Debug)]
struct Partition {
    dir: PathBuf,
    file: Option<File>,
    /// The number of the current (or next) file.
    index: u64,
    bytes: u64,
    seq: u64,
}

impl Partition {
    fn open(dir: &Path, platform: &Platform) -> Result<Partition> {
        private_dir(dir)?;
        // What the tag stands for, beside its records.
        let about = dir.join("platform.json");
        let mut f = private_file(&about, false)?;
        f.write_all(&serde_json::to_vec_pretty(platform).expect("platforms serialize"))
            .with_context(|| format!("cannot write {}", about.display()))?;
        Ok(Partition {
            dir: dir.to_path_buf(),
            file: None,
            index: 1,
            bytes: 0,
            seq: 0,
        })
    }

    fn write(&mut self, line: &[u8], max_bytes: u64, sync: bool) -> Result<()> {
        if self.file.is_some() && self.bytes + line.len() as u64 > max_bytes {
            self.file = None;
            self.index += 1;
        }
        let file = match &mut self.file {
            Some(f) => f,
            None => {
                let f = self.next_file()?;
                self.bytes = 0;
                self.file.insert(f)
            }
        };
        file.write_all(line)
            .and_then(|()| if sync { file.sync_data() } else { Ok(()) })
            .with_context(|| format!("cannot write the audit log in {}", self.dir.display()))?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Creates the next file, skipping numbers earlier runs used: nothing is overwritten.
    fn next_file(&mut self) -> Result<File> {
        loop {
            let path = self.dir.join(format!("audit-{:06}.jsonl", self.index));
            match private_file(&path, true) {
                Ok(f) => return Ok(f),
                Err(e)
                    if e.downcast_ref::<std::io::Error>()
                        .is_some_and(|e| e.kind() == ErrorKind::AlreadyExists) =>
                {
                    self.index += 1
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn private_dir(dir: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the audit directory {}", dir.display()))
}

/// Opens a file only its owner can read (0600), appending; `new`: it must not exist yet.
fn private_file(path: &Path, new: bool) -> Result<File> {
    let mut o = OpenOptions::new();
    o.mode(0o600);
    if new {
        o.create_new(true).append(true);
    } else {
        o.create(true).write(true).truncate(true);
    }
    o.open(path)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Every record in an audit directory, partition by partition, file by file, in order.
pub fn read_all(dir: &Path) -> Result<Vec<AuditRecord>> {
    let mut files = Vec::new();
    let partitions = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the audit directory {}", dir.display()))?;
    for partition in partitions {
        let partition = partition?.path();
        if !partition.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&partition)? {
            let path = f?.path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with("audit-") && name.ends_with(".jsonl") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut records = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            records.push(
                serde_json::from_str(line).with_context(|| {
                    format!("{}:{}: not an audit record", path.display(), i + 1)
                })?,
            );
        }
    }
    Ok(records)
}

/// Map operations per second per map site, from the sampled operations in an audit log
/// (each standing for `sample` operations), for the processes in `pids` (all when empty).
pub fn op_series(records: &[AuditRecord], pids: &[u32]) -> OpSeries {
    let ops: Vec<(&AuditRecord, &OpRecord)> = records
        .iter()
        .filter(|r| pids.is_empty() || pids.contains(&r.pid))
        .filter_map(|r| r.op.as_ref().map(|o| (r, o)))
        .collect();
    let start = ops.iter().map(|(r, _)| r.time_unix_ns).min().unwrap_or(0);
    let mut series = OpSeries::default();
    for (r, o) in ops {
        series.add(
            (r.time_unix_ns - start) / 1_000_000_000,
            &o.map_site,
            o.sample,
        );
    }
    series
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Access, FindingKind};
    use gotarget::MapOp;
    use std::os::unix::fs::PermissionsExt;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mapwatch-audit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn event(n: u64) -> MapEvent {
        MapEvent {
            ts: 1_000_000_000 + n,
            map: 0xc000010000,
            map_type: 0,
            goid: n,
            ret: 0,
            key: n,
            caller: 0,
            seed: 0,
            pid: 42,
            tid: 43,
            cpu: 0,
            op: MapOp::Write,
            saw_writing: false,
            runtime_fatal: false,
        }
    }

    #[test]
    fn options_are_checked() {
        let opts = |ops_sample, max_bytes| AuditOptions {
            dir: "/tmp/x".into(),
            ops_sample,
            max_bytes,
        };
        assert!(opts(Some(0), DEFAULT_MAX_BYTES).validate().is_err());
        assert!(opts(Some(1), 100).validate().is_err());
        assert!(opts(None, MIN_MAX_BYTES).validate().is_ok());
    }

    #[test]
    fn rotates_without_losing_or_repeating_and_samples_one_in_n() {
        let d = dir("rotate");
        let log = AuditLog::open(AuditOptions {
            dir: d.clone(),
            ops_sample: Some(3),
            max_bytes: MIN_MAX_BYTES,
        })
        .unwrap();
        let mut t = log.for_target("go1.25.5").unwrap();
        for n in 0..300 {
            t.op(&event(n), || Some("main.f f.go:1".into())).unwrap();
        }
        let finding = Finding {
            kind: FindingKind::Race,
            map: "0x1".into(),
            map_type: None,
            map_site: None,
            first: Access {
                op: "write".into(),
                goid: 1,
                stack: vec![],
                tid: 1,
                ts_ns: 5,
            },
            second: Access {
                op: "read".into(),
                goid: 2,
                stack: vec![],
                tid: 2,
                ts_ns: 6,
            },
            detected_by: "mapwatch".into(),
            count: 1,
            pid: 42,
            go_version: "go1.25.5".into(),
            notes: Vec::new(),
        };
        t.finding(&finding, true, 6).unwrap();
        let part = d.join(t.tag());
        let files: Vec<_> = std::fs::read_dir(&part)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        assert!(files.len() > 1, "rotated at {MIN_MAX_BYTES} bytes");
        for f in &files {
            let meta = std::fs::metadata(f).unwrap();
            assert!(meta.len() <= MIN_MAX_BYTES);
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        let records = read_all(&d).unwrap();
        assert_eq!(records.len(), 101, "100 of 300 ops kept, and the finding");
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=101).collect::<Vec<_>>());
        let goids: Vec<u64> = records
            .iter()
            .filter_map(|r| r.op.as_ref())
            .map(|o| o.goid)
            .collect();
        assert_eq!(goids, (0..100).map(|i| i * 3 + 2).collect::<Vec<_>>());
        assert_eq!(records.last().unwrap().finding.as_ref(), Some(&finding));
        assert!(records.iter().all(|r| r.platform_tag == t.tag()));
        // A second log in the same place adds files, never overwrites.
        let before = files.len();
        let log = AuditLog::open(AuditOptions {
            dir: d.clone(),
            ops_sample: None,
            max_bytes: MIN_MAX_BYTES,
        })
        .unwrap();
        log.for_target("go1.25.5")
            .unwrap()
            .finding(&finding, false, 6)
            .unwrap();
        assert_eq!(read_all(&d).unwrap().len(), 102);
        assert_eq!(
            std::fs::read_dir(&part).unwrap().count(),
            before + 2,
            "one more file beside platform.json"
        );
        // 300 ops in one second: the series counts the sampled ones at their weight.
        let series = op_series(&read_all(&d).unwrap(), &[]);
        let (site, points) = series.sites().next().unwrap();
        assert_eq!((site, points[&0]), ("main.f f.go:1", 300));
        std::fs::remove_dir_all(d).unwrap();
    }
}
