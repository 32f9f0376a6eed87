//! The MTA's routing and relay rules through the real binaries: per-domain
//! transports (`lmtp:` into the MDA's LMTP listener, `smtp:` to a smarthost)
//! and who may relay through port 25 (trusted networks, AUTH after STARTTLS).
//! Runs on its own networks, 127.85.0.x to 127.87.0.x (and client addresses on
//! 127.88.0.x and 127.89.0.x).

use std::path::PathBuf;
use std::process::Command;

use facteur_tests::{Stack, StackSpec};

fn start(net: u8, tweak: impl FnOnce(&mut StackSpec)) -> (tempfile::TempDir, Stack) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), net);
    spec.retry_secs = vec![1, 2, 5];
    tweak(&mut spec);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");
    (dir, stack)
}

fn py(stack: &Stack, script: &str, extra: &[&str]) {
    let spec = &stack.spec;
    let ip = |d: &str| spec.domain(d).expect("domain").ip.to_string();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py");
    let out = Command::new("python3")
        .arg(dir.join(script))
        .args(["--paris", &ip("paris.test"), "--lyon", &ip("lyon.test")])
        .arg("--ca")
        .arg(spec.ca())
        .args(extra)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    assert!(
        out.status.success(),
        "{script} failed:\n{stdout}\n{stderr}\n{}",
        stack.all_logs()
    );
}

#[test]
fn a_domain_routed_to_lmtp_is_delivered_per_recipient_into_the_mda() {
    let (_dir, stack) = start(85, |spec| {
        let lyon = spec.domain("lyon.test").expect("lyon").ip;
        let lmtp = spec.ports.lmtp;
        spec.sets.push((
            "lyon.test/mta".into(),
            format!("transport.\"lyon.test\"=lmtp:{lyon}:{lmtp}"),
        ));
        // No gRPC MDA to fall back on: only LMTP can deliver.
        spec.sets
            .push(("lyon.test/mta".into(), format!("mda.url=http://{lyon}:1")));
    });
    py(&stack, "mta_lmtp.py", &[]);
    let log = stack.log("lyon.test", "mta");
    assert!(
        log.contains("transport=lmtp:127.85.0.3:2400"),
        "lyon's MTA did not deliver over LMTP:\n{log}"
    );
}

#[test]
fn port_25_relays_for_trusted_networks_and_authenticated_clients_only() {
    let (_dir, stack) = start(86, |spec| {
        spec.sets.push((
            "paris.test/mta".into(),
            "smtp.trusted_networks=[\"127.88.0.0/24\", \"::1/128\"]".into(),
        ));
        spec.sets
            .push(("paris.test/mta".into(), "smtp.auth=true".into()));
    });
    py(
        &stack,
        "mta_relay.py",
        &["--trusted", "127.88.0.9", "--untrusted", "127.89.0.9"],
    );
    let log = stack.log("paris.test", "mta");
    assert!(
        log.contains("trusted network 127.88.0.0/24")
            && log.contains("authenticated as pierre@paris.test"),
        "paris's MTA did not log the rules that let the relays through:\n{log}"
    );
}

#[test]
fn a_smarthost_transport_delivers_without_mx_lookup() {
    let (_dir, stack) = start(87, |spec| {
        let lyon = spec.domain("lyon.test").expect("lyon").ip;
        let smtp = spec.ports.smtp;
        spec.sets.push((
            "paris.test/mta".into(),
            format!("transport.\"lyon.test\"=smtp:{lyon}:{smtp}"),
        ));
        // paris's MTA has no working DNS: an MX lookup could only fail.
        spec.sets.push((
            "paris.test/mta".into(),
            "dns.nameservers=[\"127.87.0.1:1\"]".into(),
        ));
    });
    py(&stack, "mta_smarthost.py", &[]);
    let log = stack.log("paris.test", "mta");
    assert!(
        log.contains("transport=smtp:127.87.0.3:2525"),
        "paris's MTA did not use the smarthost:\n{log}"
    );
}

/// A bad transport or network is a config error at startup naming its key,
/// before anything is opened or served.
#[test]
fn a_bad_transport_or_network_stops_the_mta_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (set, key) in [
        (
            "transport.\"lyon.test\"=lmtp:nowhere",
            "transport.\"lyon.test\"",
        ),
        ("transport.\"*\"=pipe:/bin/true", "transport.\"*\""),
        (
            "smtp.trusted_networks=[\"10.0.0.0/33\"]",
            "smtp.trusted_networks",
        ),
    ] {
        let out = Command::new(facteur_tests::bin_dir().join("facteur-mta"))
            .arg("--set")
            .arg(format!(
                "data_dir={:?}",
                dir.path().join("mta").display().to_string()
            ))
            .args([
                "--set",
                "smtp.listen=127.85.0.9:0",
                "--set",
                "grpc.listen=127.85.0.9:0",
            ])
            .args(["--set", set])
            .output()
            .expect("run facteur-mta");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{set}: the MTA started:\n{stderr}");
        assert!(
            stderr.contains(key),
            "{set}: the error does not name {key}:\n{stderr}"
        );
    }
}
