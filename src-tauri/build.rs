//! Build script: Tauri's code generation, after making sure the front end's output folder exists.

fn main() {
    // Tauri embeds `ui/dist` at compile time and refuses to build without it. A checkout where
    // the front end was not built yet still compiles the shell (for the core's engineers running
    // `cargo test --workspace`); the page it embeds then says how to build the front end.
    let dist = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist");
    if !dist.join("index.html").exists() {
        std::fs::create_dir_all(&dist).expect("create ui/dist");
        std::fs::write(
            dist.join("index.html"),
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Furrow</title></head>\
             <body><p id=\"unbuilt\">界面尚未构建：请运行 npm run build（在 ui/ 目录）。 The front end is not built: run npm run build in ui/.</p></body></html>",
        )
        .expect("write placeholder page");
    }
    println!("cargo:rerun-if-changed=../ui/dist");
    tauri_build::build();
}
