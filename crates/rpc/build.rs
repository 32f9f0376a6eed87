//! Compiles proto/ with protox (pure Rust, no system protoc) and tonic-prost-build.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "relay.proto",
        "delivery.proto",
        "mailbox.proto",
        "admin.proto",
    ]
    .map(|f| dir.join(f));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&dir])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
