//! Lists `migrations/` into `$OUT_DIR/migrations.rs`: one [`Migration`] per
//! directory `NNNN_name/` (the version is `NNNN`), its statements the
//! directory's `*.sql` files in name order, one statement a file, embedded
//! with `include_str!`. Nothing here splits SQL text.

use std::fmt::Write as _;
use std::path::Path;
use std::{env, fs};

fn main() {
    let root =
        Path::new(&env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("migrations");
    println!("cargo::rerun-if-changed={}", root.display());
    let mut dirs: Vec<_> = fs::read_dir(&root)
        .expect("migrations/ is readable")
        .map(|e| e.expect("migrations/ entry").path())
        .collect();
    dirs.sort();
    let mut out = String::from("&[\n");
    let mut last = 0;
    for dir in dirs {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("UTF-8 name");
        assert!(
            dir.is_dir(),
            "migrations/{name}: a migration is a directory NNNN_name/"
        );
        let version: i64 = name
            .split_once('_')
            .and_then(|(v, _)| v.parse().ok())
            .unwrap_or_else(|| panic!("migrations/{name}: not NNNN_name"));
        assert!(
            version > last,
            "migrations/{name}: version {version} is not above {last}"
        );
        last = version;
        let mut files: Vec<_> = fs::read_dir(&dir)
            .expect("migration directory is readable")
            .map(|e| e.expect("migration entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "migrations/{name} has no statement");
        writeln!(
            out,
            "    Migration {{ version: {version}, name: {name:?}, statements: &["
        )
        .unwrap();
        for file in files {
            assert!(
                file.extension().is_some_and(|e| e == "sql"),
                "{}: only NN_name.sql statement files belong in a migration",
                file.display()
            );
            // Debug-quoted: a path is a string literal whatever its characters.
            writeln!(
                out,
                "        include_str!({:?}),",
                file.display().to_string()
            )
            .unwrap();
        }
        out.push_str("    ] },\n");
    }
    out.push_str("]\n");
    let dest = Path::new(&env::var("OUT_DIR").expect("OUT_DIR")).join("migrations.rs");
    fs::write(dest, out).expect("OUT_DIR is writable");
}
