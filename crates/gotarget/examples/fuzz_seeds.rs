//! Writes the seed corpora of the fuzz targets in `fuzz/`: cut out of real binaries of every
//! Go version (`testdata/go/allops`: with DWARF as Go writes it, compressed, and
//! uncompressed, and without symbols and DWARF), one directory per target under OUT_DIR. Used
//! by scripts/fuzz.sh.
//!
//! Usage: cargo run -p gotarget --features fuzzing --example fuzz_seeds -- OUT_DIR

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args_os()
            .nth(1)
            .ok_or("usage: fuzz_seeds OUT_DIR")?,
    );
    let mut written = 0;
    for version in gobuild::ALL_VERSIONS {
        for (kind, stripped, raw_dwarf) in [
            ("", false, false),
            ("-rawdwarf", false, true),
            ("-stripped", true, false),
        ] {
            let path = gobuild::Build::new(version, "allops")
                .stripped(stripped)
                .raw_dwarf(raw_dwarf)
                .build()?;
            let name = format!("go{version}{kind}");
            let mut put = |target: &str, n: usize, bytes: &[u8]| -> std::io::Result<()> {
                let dir = out.join(target);
                std::fs::create_dir_all(&dir)?;
                written += 1;
                std::fs::write(dir.join(format!("{name}-{n}")), bytes)
            };
            put("binary", 0, &std::fs::read(&path)?)?;
            if raw_dwarf {
                // Its tables are the compressed build's.
                continue;
            }
            for (n, (target, bytes)) in gotarget::fuzzing::seeds(&path)?.iter().enumerate() {
                put(target, n, bytes)?;
            }
        }
    }
    eprintln!("fuzz_seeds: {written} seeds in {}", out.display());
    Ok(())
}
