//! The MSA's SMTP next hop and passwd-file auth, through the real binaries: the
//! paris MSA relays to the paris MTA's port 2525 over SMTP instead of gRPC, and
//! the MSA and MAA check passwords against a Dovecot passwd-file. Runs on its own
//! networks, 127.80.0.x to 127.83.0.x.

use std::path::PathBuf;
use std::process::Command;

use argon2::password_hash::{PasswordHasher, SaltString};
use facteur_tests::{Stack, StackSpec};

fn start(net: u8, tweak: impl FnOnce(&mut StackSpec)) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), net);
    tweak(&mut spec);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    (dir, stack)
}

/// `smtp://<paris MTA>:<its SMTP port>`; the MTA trusts the MSA's address, as
/// Postfix's `mynetworks` trusts its submission service (its own users' mail
/// on port 25 from anyone else is refused as spoofed).
fn paris_mta(spec: &mut StackSpec) -> String {
    let ip = spec.domain("paris.test").expect("paris").ip;
    spec.sets.push((
        "paris.test/mta".into(),
        format!("smtp.trusted_networks=[\"{ip}/32\"]"),
    ));
    format!("smtp://{ip}:{}", spec.ports.smtp)
}

fn py(stack: &Stack, mode: &str, extra: &[&str]) {
    let spec = &stack.spec;
    let ip = |d: &str| spec.domain(d).expect("domain").ip.to_string();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py/next_hop.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--paris", &ip("paris.test"), "--lyon", &ip("lyon.test")])
        .arg("--ca")
        .arg(spec.ca())
        .args(["--mode", mode])
        .args(extra)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "next_hop.py --mode {mode} failed:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        stack.all_logs()
    );
}

/// The MSA's `smtp-out` records (its dialogues with the next hop) once one of
/// them says `words` (records are stored when a transaction ends).
fn hop_record_says(stack: &Stack, words: &[&str]) -> Vec<String> {
    let file = stack.spec.transcript_file("paris.test", "msa");
    let mut lines = Vec::new();
    let found = Stack::wait_until(std::time::Duration::from_secs(30), || {
        lines = facteur_daemon::transcript::read(&file)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.kind == "smtp-out")
            .flat_map(|r| r.lines.into_iter().map(|l| l.text))
            .collect();
        words.iter().all(|w| lines.iter().any(|l| l.contains(w)))
    });
    assert!(found, "no smtp-out record says {words:?}: {lines:#?}");
    lines
}

#[test]
fn the_msa_relays_over_smtp_with_opportunistic_starttls_and_passes_refusals_back() {
    let (_dir, stack) = start(80, |spec| {
        let hop = paris_mta(spec);
        spec.sets
            .push(("paris.test/msa".into(), format!("next_hop={hop}")));
    });
    py(&stack, "deliver", &["--token", "opportunistic-80"]);
    let log = stack.log("paris.test", "msa");
    assert!(
        log.contains("relayed"),
        "the MSA log shows no relay:\n{log}"
    );
    // The hop to the MTA is in the MSA's transcript, as the gRPC hop is.
    hop_record_says(
        &stack,
        &[
            "220 ",
            "STARTTLS",
            "TLS started",
            "MAIL FROM:<",
            "queued as",
        ],
    );
}

#[test]
fn the_msa_relays_over_smtp_with_required_starttls_verified_against_the_ca() {
    let (_dir, stack) = start(81, |spec| {
        let (hop, ca) = (paris_mta(spec), spec.ca().display().to_string());
        let msa = "paris.test/msa".to_owned();
        spec.sets.push((msa.clone(), format!("next_hop={hop}")));
        spec.sets
            .push((msa.clone(), "next_hop_smtp.starttls=required".into()));
        spec.sets.push((msa, format!("next_hop_smtp.tls_ca={ca}")));
    });
    py(&stack, "deliver", &["--token", "required-81"]);
}

#[test]
fn a_next_hop_that_is_down_is_451_and_nothing_is_delivered() {
    let (_dir, stack) = start(82, |spec| {
        let ip = spec.domain("paris.test").expect("paris").ip;
        // Nothing listens on this port.
        spec.sets.push((
            "paris.test/msa".into(),
            format!("next_hop=smtp://{ip}:2599"),
        ));
    });
    py(&stack, "down", &["--token", "down-82"]);
    hop_record_says(&stack, &["attempt failed"]);
}

#[test]
fn the_msa_and_maa_check_passwords_against_a_passwd_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let passwd = dir.path().join("passwd");
    let sha512 = sha_crypt::sha512_simple(
        "pierre-file-pw",
        &sha_crypt::Sha512Params::new(5000).expect("params"),
    )
    .expect("sha512-crypt");
    let salt = SaltString::encode_b64(b"facteur-test-salt").expect("salt");
    let argon = argon2::Argon2::default()
        .hash_password(b"jacques-file-pw", &salt)
        .expect("argon2")
        .to_string();
    std::fs::write(
        &passwd,
        format!(
            "# written by the test\n\npierre@PARIS.test:{{SHA512-CRYPT}}{sha512}:1000:1000::/home/pierre::\n\
             jacques@paris.test:{{ARGON2ID}}{argon}\n"
        ),
    )
    .expect("write passwd-file");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 83);
    let file = format!("passwd_file={}", passwd.display());
    for agent in ["paris.test/msa", "paris.test/maa"] {
        spec.sets.push((agent.into(), file.clone()));
        spec.sets
            .push((agent.into(), "auth_failure_delay_ms=0".into()));
    }
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    // The dev password is the MDA's: refused, since the file decides.
    let dev = facteur_tests::stack::dev_password();
    for (user, password) in [
        ("pierre@paris.test", "pierre-file-pw"),
        ("jacques@paris.test", "jacques-file-pw"),
    ] {
        py(
            &stack,
            "passwd",
            &["--user", user, "--password", password, "--wrong", &dev],
        );
    }
}
