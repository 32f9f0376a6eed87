//! Health and metrics of every agent, over real sockets to the real binaries:
//! `/healthz` and `facteur-<agent> health`, the counters moving as a message
//! crosses domains (MSA → paris MTA → lyon MTA → lyon MDA, read over POP3), the
//! session gauge following an open IMAP connection, and gRPC health SERVING.
//! Runs on its own network, 127.111.0.x.
#![allow(clippy::unwrap_used)] // test code: a failure here is a failed test

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output};
use std::time::Duration;

use facteur_tests::stack::dev_password;
use facteur_tests::{Stack, StackSpec};

const NET: u8 = 111;
const AGENTS: [(&str, u16); 4] = [("mta", 9100), ("msa", 9101), ("mda", 9102), ("maa", 9103)];
const DOMAINS: [&str; 2] = ["paris.test", "lyon.test"];

fn listen(stack: &Stack, domain: &str, agent: &str) -> String {
    let ip = stack.spec.domain(domain).expect("domain").ip;
    let port = AGENTS.iter().find(|(a, _)| *a == agent).expect("agent").1;
    format!("{ip}:{port}")
}

/// One HTTP/1.0 GET: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {addr}{path}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// The value of the series `name` whose labels include `labels`, summed.
fn value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, v)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, l) = series.split_once('{').unwrap_or((series, "}"));
        if n != name {
            continue;
        }
        let have: Vec<(&str, &str)> = l
            .trim_end_matches('}')
            .split(',')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k, v.trim_matches('"')))
            .collect();
        if labels.iter().all(|want| have.contains(want)) {
            *found.get_or_insert(0.0) += v.parse::<f64>().unwrap_or(f64::NAN);
        }
    }
    found
}

fn scrape(stack: &Stack, domain: &str, agent: &str) -> String {
    let (status, body) = get(&listen(stack, domain, agent), "/metrics");
    assert_eq!(status, 200, "{domain} {agent} /metrics: {body}");
    body
}

/// Wait until `agent` of `domain` shows `name{labels}` at `at_least`.
fn wait_for(
    stack: &Stack,
    domain: &str,
    agent: &str,
    name: &str,
    labels: &[(&str, &str)],
    at_least: f64,
) {
    let mut last = String::new();
    let ok = Stack::wait_until(Duration::from_secs(60), || {
        last = scrape(stack, domain, agent);
        value(&last, name, labels).is_some_and(|v| v >= at_least)
    });
    assert!(
        ok,
        "{domain} {agent}: {name}{labels:?} never reached {at_least}:\n{last}\n{}",
        stack.all_logs()
    );
}

fn health(stack: &Stack, domain: &str, agent: &str) -> Output {
    let bin = facteur_tests::bin_dir().join(format!("facteur-{agent}"));
    Command::new(&bin)
        .arg("health")
        .arg("--config")
        .arg(stack.spec.config_path(domain, agent))
        .arg("--set")
        .arg(format!(
            "metrics_listen=\"{}\"",
            listen(stack, domain, agent)
        ))
        .output()
        .unwrap_or_else(|e| panic!("run {} (cargo build --bins first): {e}", bin.display()))
}

/// The MUA takes no password on its command line: a `--password X` pair in a
/// test's arguments becomes `FACTEUR_PASSWORD=X` in its environment.
fn split_password<'a>(args: &[&'a str]) -> (Vec<&'a str>, Option<&'a str>) {
    let mut out = Vec::new();
    let mut password = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if *a == "--password" {
            password = it.next().copied();
        } else {
            out.push(*a);
        }
    }
    (out, password)
}

fn mua(stack: &Stack, args: &[&str]) -> String {
    let (args, password) = split_password(args);
    let mut cmd = Command::new(facteur_tests::bin_dir().join("facteur-mua"));
    cmd.args(&args).arg("--ca").arg(stack.spec.ca());
    match password {
        Some(p) => cmd.env("FACTEUR_PASSWORD", p),
        None => cmd.env_remove("FACTEUR_PASSWORD"),
    };
    let out = cmd
        .output()
        .expect("run facteur-mua (cargo build --bins first)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "facteur-mua {args:?}:\n{text}\n{}",
        stack.all_logs()
    );
    text
}

async fn grpc_status(addr: String, service: &str) -> i32 {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("Health.Check {service:?} at {addr}: {e}"))
        .into_inner()
        .status
}

#[test]
fn every_agent_serves_health_and_metrics_that_follow_the_mail() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), NET);
    for d in &spec.domains.clone() {
        for (agent, port) in AGENTS {
            spec.sets.push((
                format!("{}/{agent}", d.name),
                format!("metrics_listen=\"{}:{port}\"", d.ip),
            ));
        }
    }
    spec.prepare().expect("prepare var/");
    let mut stack = spec.start().expect("start the stack");

    // Every agent is healthy, by HTTP and by its own `health` subcommand.
    for domain in DOMAINS {
        for (agent, _) in AGENTS {
            let (status, body) = get(&listen(&stack, domain, agent), "/healthz");
            assert_eq!(
                (status, body.as_str()),
                (200, "ok\n"),
                "{domain} {agent} /healthz"
            );
            let out = health(&stack, domain, agent);
            assert!(
                out.status.success(),
                "facteur-{agent} health ({domain}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let (status, _) = get(&listen(&stack, domain, agent), "/nope");
            assert_eq!(status, 404);
        }
    }

    // gRPC health: the MTA's Relay, the MDA's services and the servers as a whole.
    let paris = stack.spec.domain("paris.test").unwrap().ip;
    let lyon = stack.spec.domain("lyon.test").unwrap().ip;
    let (mta_grpc, mda_grpc) = (stack.spec.ports.mta_grpc, stack.spec.ports.mda_grpc);
    let rt = tokio::runtime::Runtime::new().unwrap();
    const SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    for (addr, service) in [
        (format!("{paris}:{mta_grpc}"), "facteur.relay.v1.Relay"),
        (format!("{paris}:{mta_grpc}"), ""),
        (format!("{lyon}:{mda_grpc}"), "facteur.delivery.v1.Delivery"),
        (format!("{lyon}:{mda_grpc}"), "facteur.mailbox.v1.Mailbox"),
        (format!("{lyon}:{mda_grpc}"), "facteur.mailbox.v1.Auth"),
        (format!("{lyon}:{mda_grpc}"), ""),
    ] {
        assert_eq!(
            rt.block_on(grpc_status(addr.clone(), service)),
            SERVING,
            "{addr} {service:?}"
        );
    }

    // An open IMAP connection is one session; closing it takes it back.
    let imap = TcpStream::connect(format!("{lyon}:{}", stack.spec.ports.imap)).unwrap();
    wait_for(
        &stack,
        "lyon.test",
        "maa",
        "facteur_sessions_open",
        &[("protocol", "imap"), ("agent", "maa")],
        1.0,
    );
    drop(imap);
    let mut last = String::new();
    let closed = Stack::wait_until(Duration::from_secs(30), || {
        last = scrape(&stack, "lyon.test", "maa");
        value(&last, "facteur_sessions_open", &[("protocol", "imap")]) == Some(0.0)
    });
    assert!(
        closed,
        "the IMAP session was never closed in the gauge:\n{last}"
    );

    // A message across domains moves the counters at every hop.
    let token = format!("metrics-{}", std::process::id());
    let sent = mua(
        &stack,
        &[
            "send",
            "--server",
            &format!("{paris}:{}", stack.spec.ports.submission),
            "--tls",
            "starttls",
            "--user",
            "pierre@paris.test",
            "--password",
            &dev_password(),
            "--from",
            "pierre@paris.test",
            "--to",
            "andre@lyon.test",
            "--subject",
            &token,
            "--body",
            &format!("token {token}"),
        ],
    );
    assert!(sent.contains("andre@lyon.test: 250"), "{sent}");
    let accepted = [("outcome", "accepted")];
    let delivered = [("outcome", "delivered")];
    wait_for(
        &stack,
        "paris.test",
        "msa",
        "facteur_messages_total",
        &accepted,
        1.0,
    );
    wait_for(
        &stack,
        "paris.test",
        "mda",
        "facteur_auth_total",
        &[("result", "success")],
        1.0,
    );
    wait_for(
        &stack,
        "paris.test",
        "mta",
        "facteur_messages_total",
        &accepted,
        1.0,
    );
    wait_for(
        &stack,
        "paris.test",
        "mta",
        "facteur_messages_total",
        &delivered,
        1.0,
    );
    wait_for(
        &stack,
        "paris.test",
        "mta",
        "facteur_delivery_seconds_count",
        &[],
        1.0,
    );
    wait_for(
        &stack,
        "lyon.test",
        "mta",
        "facteur_messages_total",
        &accepted,
        1.0,
    );
    wait_for(
        &stack,
        "lyon.test",
        "mta",
        "facteur_messages_total",
        &[("outcome", "delivered"), ("agent", "mta")],
        1.0,
    );
    wait_for(
        &stack,
        "lyon.test",
        "mda",
        "facteur_messages_total",
        &delivered,
        1.0,
    );
    wait_for(
        &stack,
        "lyon.test",
        "mda",
        "facteur_store_seconds_count",
        &[],
        1.0,
    );
    wait_for(
        &stack,
        "paris.test",
        "mta",
        "facteur_queue_messages",
        &[],
        0.0,
    );

    // Read over POP3: a login at lyon's MDA, and the session counted and closed.
    let shown = mua(
        &stack,
        &[
            "fetch",
            "--pop3",
            &format!("{lyon}:{}", stack.spec.ports.pop3),
            "--user",
            "andre@lyon.test",
            "--password",
            &dev_password(),
        ],
    );
    assert!(shown.contains(&token), "{shown}");
    wait_for(
        &stack,
        "lyon.test",
        "mda",
        "facteur_auth_total",
        &[("result", "success")],
        1.0,
    );
    let maa = scrape(&stack, "lyon.test", "maa");
    assert!(
        value(&maa, "facteur_sessions_open", &[("protocol", "pop3")]).is_some(),
        "no pop3 session gauge:\n{maa}"
    );
    let text = scrape(&stack, "paris.test", "mta");
    assert!(
        text.contains("# TYPE facteur_delivery_seconds histogram"),
        "{text}"
    );

    // A stopped agent is unhealthy: `health` exits 1 and says why in one line.
    stack.kill("lyon.test", "maa").expect("kill the MAA");
    let out = health(&stack, "lyon.test", "maa");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("/healthz"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    stack.restart("lyon.test", "maa").expect("restart the MAA");
    assert!(health(&stack, "lyon.test", "maa").status.success());
    let unclean = stack.stop();
    assert!(unclean.is_empty(), "{unclean:?}");
}
