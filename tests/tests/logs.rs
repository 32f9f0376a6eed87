//! The logs of a real stack: one message across domains leaves one line per event
//! at every agent carrying its Message-ID and queue IDs (text and JSON), a CR/LF in
//! a username stays inside one escaped line, and `FACTEUR_LOG=debug` raises
//! facteur's targets only. Runs on 127.112.0.x, one stack after the other.

use std::path::PathBuf;
use std::process::Command;

use facteur_tests::{Stack, StackSpec};

fn start(tweak: impl FnOnce(&mut StackSpec)) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 112);
    tweak(&mut spec);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    (dir, stack)
}

fn py(stack: &Stack, mode: &str, token: &str) {
    let spec = &stack.spec;
    let ip = |d: &str| spec.domain(d).expect("domain").ip.to_string();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/logs.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--paris", &ip("paris.test"), "--lyon", &ip("lyon.test")])
        .arg("--ca")
        .arg(spec.ca())
        .args(["--mode", mode, "--token", token])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "logs.py {mode} failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stack.all_logs()
    );
}

/// The value of `key=` in a text log line (up to the next space).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    line[at..].split(' ').next()
}

/// The one line of `log` with `what` in it and every one of `with`.
fn line<'a>(log: &'a str, what: &str, with: &[&str]) -> &'a str {
    let found: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(what) && with.iter().all(|w| l.contains(w)))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one `{what}` line with {with:?}:\n{log}"
    );
    found[0]
}

#[test]
fn one_message_is_traced_by_message_id_and_queue_ids_in_text_and_json() {
    // Text: the lines an operator greps.
    let (_dir, stack) = start(|_| {});
    let token = format!("logs-{}", std::process::id());
    py(&stack, "send", &token);
    let mid = format!("message_id=<{token}@client.example>");
    let msa = stack.log("paris.test", "msa");
    let submitted = line(
        &msa,
        "submitted",
        &[&mid, "from=<pierre@paris.test>", "nrcpt=1"],
    );
    let msa_id = field(submitted, "id").expect("MSA id");
    let queue_id = field(submitted, "queue_id").expect("paris queue ID");
    assert!(!queue_id.is_empty() && !msa_id.is_empty(), "{submitted}");

    let paris = stack.log("paris.test", "mta");
    line(
        &paris,
        "queued from submission",
        &[&format!(" id={queue_id} "), &mid, msa_id],
    );
    let sent = line(
        &paris,
        "delivered",
        &[
            &format!(" id={queue_id} "),
            "to=<andre@lyon.test>",
            "status=sent",
        ],
    );
    assert!(
        field(sent, "relay").is_some_and(|r| r.contains("[127.112.0.3]:2525"))
            && field(sent, "delay").is_some(),
        "paris's delivery line lacks relay or delay: {sent}"
    );

    let lyon = stack.log("lyon.test", "mta");
    let queued = line(
        &lyon,
        "queued from SMTP",
        &[&mid, "nrcpt=1", "from=<pierre@paris.test>"],
    );
    let lyon_id = field(queued, "id").expect("lyon queue ID");
    line(
        &lyon,
        "delivered",
        &[
            &format!(" id={lyon_id} "),
            "to=<andre@lyon.test>",
            "status=sent",
            "relay=grpc:",
        ],
    );

    let mda = stack.log("lyon.test", "mda");
    let filed = line(
        &mda,
        "filed",
        &[&mid, "to=<andre@lyon.test>", "user=andre@lyon.test"],
    );
    assert!(
        field(filed, "uid").is_some() && field(filed, "key").is_some(),
        "{filed}"
    );

    // A CR/LF in the username is escaped inside its one line.
    py(&stack, "badauth", &token);
    let msa = stack.log("paris.test", "msa");
    line(
        &msa,
        "authentication failed",
        &[&format!(
            "user={token}\\r\\n2026-01-01T00:00:00Z  INFO forged: filed"
        )],
    );
    assert!(
        !msa.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "the username started a log line of its own:\n{msa}"
    );
    drop(stack);

    // JSON, with FACTEUR_LOG=debug: every line is an object with the fields,
    // and debug lines come from facteur's targets only (no h2, hyper, tower).
    let (_dir, stack) = start(|spec| {
        for agent in ["msa", "mta", "mda", "maa"] {
            spec.sets.push((agent.into(), "log.format=\"json\"".into()));
        }
        spec.env.push(("FACTEUR_LOG".into(), "debug".into()));
    });
    let token = format!("logs-json-{}", std::process::id());
    py(&stack, "send", &token);
    let message_id = format!("<{token}@client.example>");
    let mut debug_lines = 0;
    let mut with_id = Vec::new();
    for (domain, agent) in [
        ("paris.test", "msa"),
        ("paris.test", "mta"),
        ("lyon.test", "mta"),
        ("lyon.test", "mda"),
        ("lyon.test", "maa"),
    ] {
        let log = stack.log(domain, agent);
        for l in log.lines() {
            // The ready line is the agent's stdout, copied into the same file.
            if l.starts_with("facteur-") && l.contains(" ready") {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{domain} {agent}: not JSON ({e}): {l}\n{log}"));
            let target = v["target"].as_str().unwrap_or_default();
            assert!(
                v["timestamp"].is_string() && v["message"].is_string(),
                "{domain} {agent}: no timestamp or message: {l}"
            );
            if v["level"] == "DEBUG" {
                assert!(
                    target.starts_with("facteur"),
                    "{domain} {agent}: a debug line from {target}: {l}"
                );
                debug_lines += 1;
            }
            if v["message_id"] == message_id.as_str() {
                assert!(
                    v["id"].is_string() || v["key"].is_string(),
                    "{domain} {agent}: a Message-ID without the queue ID: {l}"
                );
                with_id.push(format!("{domain} {agent} {}", v["message"]));
            }
        }
    }
    assert!(
        debug_lines > 0,
        "FACTEUR_LOG=debug gave no facteur debug line:\n{}",
        stack.all_logs()
    );
    for want in [
        "paris.test msa \"submitted\"",
        "paris.test mta \"queued from submission\"",
        "lyon.test mta \"queued from SMTP\"",
        "lyon.test mda \"filed\"",
    ] {
        assert!(
            with_id.iter().any(|w| w == want),
            "no JSON line {want} with the Message-ID; got {with_id:?}:\n{}",
            stack.all_logs()
        );
    }
}
