//! Compiles the `intents/` directory into the binary, so `netrunbook chat` and `ask` work anywhere.
use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new("intents");
    println!("cargo:rerun-if-changed=intents");
    let mut files: Vec<_> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
    files.sort();
    let mut out = String::from("[\n");
    for p in &files {
        println!("cargo:rerun-if-changed={}", p.display());
        let name = p.file_name().unwrap().to_string_lossy();
        let abs = fs::canonicalize(p).unwrap();
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            abs.display().to_string()
        ));
    }
    out.push(']');
    let dest = Path::new(&env::var("OUT_DIR").unwrap()).join("builtin_intents.rs");
    fs::write(dest, out).unwrap();
}
