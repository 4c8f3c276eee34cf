//! Finds the system adapters: every folder under `src/systems/` is one, and
//! exports `KIND`. The registry it writes (`systems.rs`, included by
//! `src/systems/mod.rs`) is why adding a system touches no other file.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/systems");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut systems: Vec<String> = std::fs::read_dir(&root)
        .expect("src/systems")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().join("mod.rs").is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    systems.sort();
    let mut code = String::new();
    for name in &systems {
        let path = root.join(name).join("mod.rs");
        writeln!(code, "#[path = {:?}]\npub mod {name};", path.display().to_string()).unwrap();
    }
    let kinds: Vec<String> = systems.iter().map(|name| format!("&{name}::KIND")).collect();
    writeln!(code, "/// Every system adapter, one per folder under `src/systems/`.").unwrap();
    writeln!(code, "pub fn kinds() -> Vec<&'static SystemKind> {{\n    vec![{}]\n}}", kinds.join(", ")).unwrap();
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("systems.rs");
    std::fs::write(out, code).expect("writing systems.rs");
}
