//! Keeps the map honest (rust-analyzer's tidy idea): every source file says what
//! it owns, every crate is on the map, no agent depends on another, and every
//! shipped sample config loads into its agent's config type.

use std::path::{Path, PathBuf};

use facteur_daemon::config::ConfigArgs;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if !p.ends_with("target") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc_line() {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "tests"] {
        rust_files(&root().join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` header: {missing:#?}"
    );
}

fn members() -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.push(root().join("tests"));
    dirs.push(root().join("xtask"));
    for dir in dirs {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        let name = manifest
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .map(|n| n.trim_matches('"').to_owned());
        if let Some(name) = name {
            out.push((name, dir));
        }
    }
    out
}

#[test]
fn every_crate_is_on_the_architecture_map() {
    let map = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).expect("map");
    for (name, _) in members() {
        assert!(
            map.contains(&name),
            "docs/ARCHITECTURE.md does not mention {name}"
        );
    }
}

#[test]
fn no_agent_crate_depends_on_another() {
    let agents = ["msa", "mta", "mda", "maa", "mua"];
    for (name, dir) in members() {
        let Some(me) = name.strip_prefix("facteur-") else {
            continue;
        };
        if !agents.contains(&me) {
            continue;
        }
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
        for other in agents.iter().filter(|a| **a != me) {
            assert!(
                !manifest.contains(&format!("facteur-{other}")),
                "{name} depends on facteur-{other}: agents meet only over the wire"
            );
        }
    }
}

/// Load a shipped sample the way the agent's binary loads its config.
fn load<T: serde::de::DeserializeOwned + serde::Serialize>(file: &str) -> T {
    let args = ConfigArgs {
        config: Some(root().join("deploy").join(file)),
        sets: Vec::new(),
    };
    args.load("FACTEUR_TIDY_UNSET")
        .unwrap_or_else(|e| panic!("deploy/{file}: {e}"))
}

#[test]
fn shipped_configs_load_and_use_the_standard_ports() {
    let msa: facteur_msa::MsaConfig = load("facteur-msa.toml");
    assert_eq!(msa.submission_listen, "0.0.0.0:587");
    assert_eq!(msa.submissions_listen, "0.0.0.0:465");
    let mta: facteur_mta::MtaConfig = load("facteur-mta.toml");
    assert_eq!(mta.smtp.listen, "0.0.0.0:25");
    assert_eq!(mta.relay.port, 25);
    assert_eq!(mta.queue.retry_secs.last(), Some(&14400));
    facteur_mta::routing::Routes::new(&mta.transport).expect("deploy/facteur-mta.toml [transport]");
    facteur_mta::routing::Networks::new(&mta.smtp.trusted_networks)
        .expect("deploy/facteur-mta.toml smtp.trusted_networks");
    let mda: facteur_mda::MdaConfig = load("facteur-mda.toml");
    assert_eq!(mda.lmtp.listen, "127.0.0.1:24");
    let maa: facteur_maa::MaaConfig = load("facteur-maa.toml");
    assert_eq!(maa.pop3.listen, "0.0.0.0:110");
    assert_eq!(maa.pop3.tls_listen, "0.0.0.0:995");
    assert_eq!(maa.imap.listen, "0.0.0.0:143");
    assert_eq!(maa.imap.tls_listen, "0.0.0.0:993");
    assert_eq!(maa.imap.limits.idle_timeout_secs, 1800);
    for listen in [
        &msa.metrics_listen,
        &mta.metrics_listen,
        &mda.metrics_listen,
        &maa.metrics_listen,
    ] {
        assert_eq!(listen, "0.0.0.0:9100", "the compose healthchecks use it");
    }
}
