//! Go release versions as recorded in a binary's build info.

use std::fmt;

/// A Go release, as recorded in `.go.buildinfo` (`runtime.Version()`).
///
/// ```
/// let v = gotarget::GoVersion::parse("go1.25.5 X:noswissmap").unwrap();
/// assert_eq!((v.major, v.minor, v.patch), (1, 25, 5));
/// assert_eq!(v.to_string(), "go1.25.5");
/// assert!(v.at_least(1, 24));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GoVersion {
    /// Major version (1).
    pub major: u32,
    /// Minor version (21 for go1.21.13).
    pub minor: u32,
    /// Patch level (13 for go1.21.13; 0 for `go1.21` or a release candidate).
    pub patch: u32,
    /// The version word as recorded, e.g. `go1.25.5` (without ` X:` experiment suffixes).
    pub raw: String,
}

impl GoVersion {
    /// Parses `go1.N[.P]`, also `go1.Nrc1`, `go1.N.P X:exp` and `devel go1.N-hash ...`.
    /// Returns `None` for anything else.
    pub fn parse(s: &str) -> Option<GoVersion> {
        let s = s.trim();
        let s = s.strip_prefix("devel ").unwrap_or(s);
        let word = s.split_whitespace().next()?;
        let rest = word.strip_prefix("go")?;
        // Numbers end at the first character that is neither a digit nor a dot
        // ("1.21rc2", "1.26-abcdef").
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let mut parts = rest[..end].split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) if !p.is_empty() => p.parse().ok()?,
            _ => 0,
        };
        Some(GoVersion {
            major,
            minor,
            patch,
            raw: word.to_string(),
        })
    }

    /// Whether this is Go `major.minor` or later.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for GoVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::GoVersion;

    #[test]
    fn parses_release_forms() {
        let v = GoVersion::parse("go1.21.13").unwrap();
        assert_eq!(
            (v.major, v.minor, v.patch, v.raw.as_str()),
            (1, 21, 13, "go1.21.13")
        );
        let v = GoVersion::parse("go1.22rc2").unwrap();
        assert_eq!((v.minor, v.patch), (22, 0));
        let v = GoVersion::parse("devel go1.27-abcdef Tue Jan 1").unwrap();
        assert_eq!(v.minor, 27);
        assert!(GoVersion::parse("gcc 12").is_none());
        assert!(GoVersion::parse("").is_none());
        assert!(GoVersion::parse("go").is_none());
    }
}
