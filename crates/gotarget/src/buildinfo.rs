//! Go build information (`.go.buildinfo`): the Go version and the build settings.
//!
//! Layout (cmd/go/internal/version, debug/buildinfo): a 32-byte header starting with
//! `"\xff Go buildinf:"`, then pointer size and flags bytes. Since Go 1.18 (flag bit 2) the
//! version and the module info follow inline as varint-length-prefixed strings; older binaries
//! hold pointers to Go string headers instead, which we follow only to name the old version.

use crate::elf::Elf;
use crate::version::GoVersion;

const MAGIC: &[u8] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_BIG_ENDIAN: u8 = 1;
const FLAG_INLINE: u8 = 2;

/// What `.go.buildinfo` says.
#[derive(Clone, Debug)]
pub(crate) struct BuildInfo {
    /// Full version string, e.g. `go1.25.5 X:noswissmap`.
    pub version_string: String,
    /// `build\tKEY=VALUE` lines of the module info.
    pub settings: Vec<(String, String)>,
}

/// Finds and decodes build info. `Ok(None)`: no build info at all; `Err`: present but damaged.
pub(crate) fn read(elf: &Elf) -> Result<Option<BuildInfo>, String> {
    let blob = match elf.section(".go.buildinfo") {
        Some(s) => elf.section_data(s),
        // Section headers can be stripped by external tools; the header is 16-byte aligned.
        None => match find_magic(&elf.data) {
            Some(off) => &elf.data[off..],
            None => return Ok(None),
        },
    };
    if blob.len() < HEADER_LEN || !blob.starts_with(MAGIC) {
        return Err(".go.buildinfo has no build info header".into());
    }
    let ptr_size = blob[14] as usize;
    let flags = blob[15];
    if flags & FLAG_INLINE != 0 {
        let mut rest = &blob[HEADER_LEN..];
        let version =
            read_varint_string(&mut rest).ok_or("truncated Go version in .go.buildinfo")?;
        let modinfo = read_varint_string(&mut rest).unwrap_or_default();
        Ok(Some(BuildInfo {
            version_string: version,
            settings: parse_settings(&modinfo),
        }))
    } else {
        // Pre-1.18 format: pointers to Go string headers. Only little-endian 64-bit matters
        // here (the caller already insisted on x86_64).
        if ptr_size != 8 || flags & FLAG_BIG_ENDIAN != 0 {
            return Err("unsupported .go.buildinfo pointer format".into());
        }
        let ptr = u64::from_le_bytes(blob[16..24].try_into().map_err(|_| "short header")?);
        let data = elf
            .read_u64(ptr)
            .ok_or("bad version pointer in .go.buildinfo")?;
        let len = ptr
            .checked_add(8)
            .and_then(|p| elf.read_u64(p))
            .ok_or("bad version pointer in .go.buildinfo")?;
        let len = usize::try_from(len).map_err(|_| "bad version length")?;
        let bytes = elf
            .read(data, len.min(256))
            .ok_or("bad version string in .go.buildinfo")?;
        Ok(Some(BuildInfo {
            version_string: String::from_utf8_lossy(bytes).into_owned(),
            settings: Vec::new(),
        }))
    }
}

impl BuildInfo {
    /// The parsed Go version, if the string is one.
    pub fn version(&self) -> Option<GoVersion> {
        GoVersion::parse(&self.version_string)
    }

    /// The value of build setting `key` (e.g. `GOEXPERIMENT`).
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether GOEXPERIMENT (setting or ` X:` version suffix) names `exp`.
    pub fn has_experiment(&self, exp: &str) -> bool {
        let in_setting = self
            .setting("GOEXPERIMENT")
            .is_some_and(|v| v.split(',').any(|e| e == exp));
        let in_version = self
            .version_string
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("X:"))
            .any(|list| list.split(',').any(|e| e == exp));
        in_setting || in_version
    }
}

fn find_magic(data: &[u8]) -> Option<usize> {
    (0..data.len().saturating_sub(HEADER_LEN))
        .step_by(16)
        .find(|&off| data[off..].starts_with(MAGIC))
}

/// Reads an unsigned LEB128 varint, advancing `buf`.
pub(crate) fn read_uvarint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(value);
        }
    }
    None
}

fn read_varint_string(buf: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(read_uvarint(buf)?).ok()?;
    let bytes = buf.get(..len)?;
    *buf = &buf[len..];
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// Module info is framed by two 16-byte sentinels; its `build\tK=V` lines are the settings.
fn parse_settings(modinfo: &str) -> Vec<(String, String)> {
    modinfo
        .lines()
        .filter_map(|l| l.strip_prefix("build\t"))
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uvarint() {
        let mut b: &[u8] = &[0xac, 0x02, 7];
        assert_eq!(read_uvarint(&mut b), Some(300));
        assert_eq!(b, &[7]);
        let mut b: &[u8] = &[0x80];
        assert_eq!(read_uvarint(&mut b), None);
    }

    #[test]
    fn settings_and_experiments() {
        let info = BuildInfo {
            version_string: "go1.25.5 X:noswissmap".into(),
            settings: parse_settings("path\tx\nbuild\tGOARCH=amd64\nbuild\tGOEXPERIMENT=a,b\n"),
        };
        assert_eq!(info.setting("GOARCH"), Some("amd64"));
        assert!(info.has_experiment("noswissmap"));
        assert!(info.has_experiment("b"));
        assert!(!info.has_experiment("swissmap"));
    }
}
