//! Turns the instruction pointers a probe recorded into `function file:line` frames.
//!
//! A probe sits on the `push rbp` after the stack check, so RBP is still the caller's frame
//! pointer: a frame-pointer walk from there starts at the caller's caller and misses the
//! direct caller, which the event carries separately (`*RSP`). This module splices it back in.

use std::collections::HashMap;
use std::sync::Arc;

use gotarget::GoBinary;

/// Symbolizes stacks of one target binary, caching per address.
pub struct StackResolver {
    binary: Arc<GoBinary>,
    cache: HashMap<u64, Vec<String>>,
    /// Per call site (return address, caller's return address): the return addresses above
    /// it, as the BPF side sent them the first time it saw the site.
    sites: HashMap<(u64, u64), Vec<u64>>,
}

impl StackResolver {
    /// A resolver for `binary`.
    pub fn new(binary: Arc<GoBinary>) -> StackResolver {
        StackResolver {
            binary,
            cache: HashMap::new(),
            sites: HashMap::new(),
        }
    }

    /// Frames (inlined ones first) at `pc`, an exact instruction address.
    fn frames_at(&mut self, pc: u64) -> &[String] {
        let binary = &self.binary;
        self.cache.entry(pc).or_insert_with(|| {
            let frames = binary.symbolize(pc);
            if frames.is_empty() {
                vec![format!("?? {pc:#x}")]
            } else {
                frames
                    .iter()
                    .map(|f| format!("{} {}:{}", f.function, f.file, f.line))
                    .collect()
            }
        })
    }

    /// Frames of the call that returns to `ret` (the call instruction is just before it).
    pub fn call_site(&mut self, ret: u64) -> &[String] {
        self.frames_at(ret.saturating_sub(1))
    }

    /// The innermost frame of the call that returns to `ret`: `function file:line`.
    pub fn call_site_line(&mut self, ret: u64) -> Option<String> {
        self.call_site(ret).first().cloned()
    }

    /// Keeps `stack` (`ret`, then the return addresses above it) for call site
    /// (`ret`, `caller`).
    pub fn remember_site(&mut self, ret: u64, caller: u64, stack: Vec<u64>) {
        self.sites.insert((ret, caller), stack);
    }

    /// The stack of an access seen without a walk of its own: the accessing line (inlined
    /// frames first), then the lines above it as its call site's first occurrence showed them,
    /// else its caller's line alone.
    pub fn site_stack(&mut self, ret: u64, caller: u64) -> Vec<String> {
        let rets = match self.sites.get(&(ret, caller)) {
            Some(stack) => stack.clone(),
            None => [ret, caller].into_iter().filter(|&r| r != 0).collect(),
        };
        let mut out = Vec::new();
        for r in rets {
            out.extend_from_slice(self.call_site(r));
        }
        out
    }

    /// The full stack of a probed access: `ips` from the kernel's walk (the probe address
    /// first, then return addresses), with the direct caller `ret` spliced in when missing.
    pub fn stack(&mut self, ips: &[u64], ret: u64) -> Vec<String> {
        let mut out = Vec::new();
        let Some((&probe_ip, callers)) = ips.split_first() else {
            // No stack was taken: the direct caller is all there is.
            out.extend_from_slice(self.call_site(ret));
            return out;
        };
        out.extend_from_slice(self.frames_at(probe_ip));
        // Newer kernels already add the caller of a probe on `push rbp`; don't list it twice.
        if callers.first() != Some(&ret) && ret != 0 {
            out.extend_from_slice(self.call_site(ret));
        }
        for &r in callers {
            out.extend_from_slice(self.call_site(r));
        }
        out
    }
}

/// The first frame outside the Go runtime: the line of user code a finding is about.
pub fn user_frame(stack: &[String]) -> Option<&str> {
    stack
        .iter()
        .map(String::as_str)
        .find(|f| !f.starts_with("runtime.") && !f.starts_with("internal/runtime/"))
}
