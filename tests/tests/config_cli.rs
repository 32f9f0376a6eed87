//! `facteur-<agent> config check|show`, run on the real binaries as an operator
//! would: the shipped samples pass, an unknown key fails naming the file, the
//! variable or the flag that set it, `config show` prints a TOML that `config
//! check` takes back, and an agent started without `--config` says it runs on
//! the built-in defaults. Network: 127.110.0.x.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const AGENTS: [&str; 4] = ["msa", "mta", "mda", "maa"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn sample(agent: &str) -> PathBuf {
    root().join("deploy").join(format!("facteur-{agent}.toml"))
}

/// `facteur-<agent> ARGS`, with no FACTEUR_* variable of the caller's leaking in.
fn agent(name: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(facteur_tests::bin_dir().join(format!("facteur-{name}")));
    for (key, _) in std::env::vars() {
        if key.starts_with("FACTEUR_") {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_BACKTRACE").args(args);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run the agent")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn config_check_accepts_every_shipped_sample() {
    for name in AGENTS {
        let path = sample(name);
        let file = path.to_str().expect("utf-8 path");
        let o = run(&mut agent(name, &["config", "check", "--config", file]));
        assert!(o.status.success(), "facteur-{name}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("config OK: {file}\n")
        );
    }
}

#[test]
fn an_unknown_key_fails_naming_the_file_the_variable_or_the_flag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "hostname = \"mail.paris.test\"\n\n[queue]\nconcurrency = 4\nretry_sec = [60]\n",
    )
    .expect("write bad.toml");
    let bad = bad.to_str().expect("utf-8 path");

    let o = run(&mut agent("mta", &["config", "check", "-c", bad]));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = text(&o);
    assert!(
        err.contains(&format!("unknown key queue.retry_sec (in {bad})")),
        "{err}"
    );
    assert!(err.contains("known keys in [queue]:"), "{err}");
    assert!(err.contains("retry_secs"), "{err}");

    let file = sample("mta");
    let file = file.to_str().expect("utf-8 path");
    let o =
        run(agent("mta", &["config", "check", "-c", file]).env("FACTEUR_MTA__SMTP__LISTN", "x"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("unknown key smtp.listn (from FACTEUR_MTA__SMTP__LISTN)"),
        "{}",
        text(&o)
    );

    // max_per_ipp sits next to the flattened connection limits of [imap].
    let o = run(&mut agent(
        "maa",
        &[
            "config",
            "check",
            "-c",
            sample("maa").to_str().unwrap(),
            "--set",
            "imap.max_per_ipp=3",
        ],
    ));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("unknown key imap.max_per_ipp (from --set imap.max_per_ipp=3)"),
        "{}",
        text(&o)
    );

    // The daemon itself refuses to start on one, before it opens anything.
    let data = dir.path().join("mda");
    let o = run(&mut agent(
        "mda",
        &[
            "--set",
            &format!("data_dir={:?}", data.display().to_string()),
            "--set",
            "grpc.listen=127.110.0.1:0",
            "--set",
            "lmtp.listen=\"\"",
            "--set",
            "auth.cache_sise=5",
        ],
    ));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("unknown key auth.cache_sise (from --set auth.cache_sise=5)"),
        "{}",
        text(&o)
    );
    assert!(!data.exists(), "the store was opened despite the bad key");
}

#[test]
fn config_show_prints_a_config_that_config_check_takes_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    for name in AGENTS {
        let file = sample(name);
        let file = file.to_str().expect("utf-8 path");
        let o = run(&mut agent(
            name,
            &[
                "config",
                "show",
                "-c",
                file,
                "--set",
                "hostname=mail.show.test",
            ],
        ));
        assert!(o.status.success(), "facteur-{name}: {}", text(&o));
        let shown = String::from_utf8(o.stdout).expect("utf-8");
        let table: toml::Table = shown
            .parse()
            .unwrap_or_else(|e| panic!("{name}: {e}\n{shown}"));
        assert_eq!(
            table["hostname"].as_str(),
            Some("mail.show.test"),
            "{shown}"
        );
        let back = dir.path().join(format!("{name}.toml"));
        std::fs::write(&back, &shown).expect("write shown config");
        let back = back.to_str().expect("utf-8 path");
        let o = run(&mut agent(name, &["config", "check", "-c", back]));
        assert!(
            o.status.success(),
            "facteur-{name} on its own show: {}\n{shown}",
            text(&o)
        );

        // --changed: only what the sample and the flag change from the defaults.
        let o = run(&mut agent(
            name,
            &[
                "config",
                "show",
                "--changed",
                "-c",
                file,
                "--set",
                "hostname=mail.show.test",
            ],
        ));
        assert!(o.status.success(), "facteur-{name}: {}", text(&o));
        let changed: toml::Table = String::from_utf8_lossy(&o.stdout).parse().expect("toml");
        assert_eq!(changed["hostname"].as_str(), Some("mail.show.test"));
        assert!(
            changed.len() < table.len(),
            "facteur-{name} --changed: {changed:?}"
        );
    }
    // Without a file every value is a default: nothing has changed.
    let o = run(&mut agent("mta", &["config", "show", "--changed"]));
    let changed: toml::Table = String::from_utf8_lossy(&o.stdout).parse().expect("toml");
    assert!(changed.is_empty(), "{changed:?}");
}

#[test]
fn an_agent_without_a_config_says_it_uses_the_defaults() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("mda");
    let mut child = agent(
        "mda",
        &[
            "--set",
            &format!("data_dir={:?}", data.display().to_string()),
            "--set",
            "grpc.listen=127.110.0.2:0",
        ],
    )
    .env("FACTEUR_MDA__LMTP__LISTEN", "127.110.0.2:0")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start facteur-mda");
    let stdout = child.stdout.take().expect("stdout");
    let ready = BufReader::new(stdout).lines().next();
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(&ready, Some(Ok(l)) if l.starts_with("facteur-mda ready")),
        "{ready:?}\n{log}"
    );
    assert!(
        log.contains(
            "facteur-mda: no --config given, using the built-in defaults (with 2 --set): \
             grpc.listen=127.110.0.2:0 lmtp.listen=127.110.0.2:0"
        ),
        "{log}"
    );
}

#[test]
fn a_value_of_the_wrong_type_names_its_key_and_who_set_it() {
    let o = run(agent("mta", &["config", "check"]).env("FACTEUR_MTA__QUEUE__CONCURRENCY", "many"));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(
            "queue.concurrency (from FACTEUR_MTA__QUEUE__CONCURRENCY): invalid type: string \"many\""
        ),
        "{}",
        text(&o)
    );
}
