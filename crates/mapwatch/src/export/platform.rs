//! The platform a finding was seen on (architecture, CPU, kernel, the target's Go version,
//! host), and the short digest that names it: the audit log tags every record with both and
//! keeps one partition per digest.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where mapwatch watched a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`x86_64`, `aarch64`).
    pub arch: String,
    /// CPU vendor (`vendor_id` in /proc/cpuinfo; `CPU implementer` on arm64).
    pub cpu_vendor: String,
    /// CPU model (`model name`).
    pub cpu_model: String,
    /// CPU feature flags, space-separated as /proc/cpuinfo lists them.
    pub cpu_flags: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// The target's Go version (`go1.25.5`).
    pub go_version: String,
    /// Host name.
    pub host: String,
}

/// What /proc says about this machine; `go_version` is the target's.
pub fn current(go_version: &str) -> Platform {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |names: &[&str]| {
        names
            .iter()
            .find_map(|name| cpuinfo_field(&cpuinfo, name))
            .unwrap_or_else(|| "unknown".to_string())
    };
    let proc_text = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".to_string())
    };
    Platform {
        arch: std::env::consts::ARCH.to_string(),
        cpu_vendor: field(&["vendor_id", "CPU implementer"]),
        cpu_model: field(&["model name", "CPU part"]),
        cpu_flags: field(&["flags", "Features"]),
        kernel: proc_text("/proc/sys/kernel/osrelease"),
        go_version: go_version.to_string(),
        host: proc_text("/proc/sys/kernel/hostname"),
    }
}

/// The first value of `name` in /proc/cpuinfo text (`name<tabs>: value`).
fn cpuinfo_field(cpuinfo: &str, name: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().to_string())
    })
}

impl Platform {
    /// A stable 16-hex-digit digest of every field: the partition name in the audit log.
    pub fn tag(&self) -> String {
        let mut hasher = Sha256::new();
        for field in [
            &self.arch,
            &self.cpu_vendor,
            &self.cpu_model,
            &self.cpu_flags,
            &self.kernel,
            &self.go_version,
            &self.host,
        ] {
            hasher.update(field.as_bytes());
            // A separator that no field holds, so ("ab","c") and ("a","bc") differ.
            hasher.update([0u8]);
        }
        hasher.finalize()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPUINFO: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\nflags\t\t: fpu vme sse2 avx2\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\n";

    #[test]
    fn reads_the_first_cpu_of_cpuinfo() {
        assert_eq!(
            cpuinfo_field(CPUINFO, "vendor_id").as_deref(),
            Some("GenuineIntel")
        );
        assert_eq!(
            cpuinfo_field(CPUINFO, "model name").as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(
            cpuinfo_field(CPUINFO, "flags").as_deref(),
            Some("fpu vme sse2 avx2")
        );
        assert_eq!(cpuinfo_field(CPUINFO, "Features"), None);
    }

    #[test]
    fn the_tag_is_stable_and_tells_platforms_apart() {
        let a = current("go1.25.5");
        assert_eq!(a.tag(), current("go1.25.5").tag());
        assert_eq!(a.tag().len(), 16);
        assert_ne!(a.tag(), current("go1.22.10").tag());
        assert_ne!(a.arch, "unknown");
        assert_ne!(a.kernel, "unknown");
    }
}
