use std::process::ExitCode;

fn main() -> ExitCode {
    match mapwatch::main() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("mapwatch: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
