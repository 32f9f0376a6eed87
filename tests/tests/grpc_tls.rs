//! gRPC under mutual TLS through the real binaries: a stack whose every gRPC link
//! (MSA→MTA, MSA→MDA, MTA→MDA, MAA→MDA) has `[grpc_tls]` carries mail across
//! domains; the MDA refuses a client without a certificate and one whose
//! certificate another CA signed; plaintext gRPC off loopback does not start.
//! Runs on 127.113.0.x.

use std::path::{Path, PathBuf};
use std::process::Command;

use facteur_daemon::devpki::{Ca, agent_sans};
use facteur_rpc::mailbox::VerifyRequest;
use facteur_rpc::mailbox::auth_client::AuthClient;
use facteur_tests::{Stack, StackSpec};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

fn py(stack: &Stack, script: &str) {
    let spec = &stack.spec;
    let ip = |d: &str| spec.domain(d).expect("domain").ip.to_string();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("py");
    let out = Command::new("python3")
        .arg(dir.join(script))
        .args(["--paris", &ip("paris.test"), "--lyon", &ip("lyon.test")])
        .arg("--ca")
        .arg(spec.ca())
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

/// `Auth.Verify` of pierre's dev password at `url`, over TLS trusting `ca`,
/// presenting `identity` (cert, key) when given: the reply's `ok`, or the error.
async fn verify(url: &str, ca: &Path, identity: Option<(&Path, &Path)>) -> Result<bool, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
        std::fs::read(ca).expect("read the CA"),
    ));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(cert).expect("read cert"),
            std::fs::read(key).expect("read key"),
        ));
    }
    let endpoint = Endpoint::from_shared(url.to_owned())
        .expect("url")
        .tls_config(tls)
        .expect("tls config");
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    let reply = AuthClient::new(channel)
        .verify(VerifyRequest {
            user: "pierre@paris.test".into(),
            password: facteur_tests::stack::dev_password(),
            service: "test".into(),
            remote_addr: "127.113.0.9".into(),
        })
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(reply.into_inner().ok)
}

#[test]
fn every_grpc_link_under_mutual_tls_carries_mail_and_refuses_strangers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 113);
    spec.retry_secs = vec![1, 2, 5];
    let pki = spec.grpc_mtls().expect("gRPC PKI");
    spec.prepare().expect("prepare var/");
    let mut stack = spec.start().expect("start the stack");

    // Submission (MSA→MDA Auth, MSA→MTA Relay), relay to lyon, delivery
    // (MTA→MDA), reading by POP3 and IMAP (MAA→MDA Mailbox and Auth).
    py(&stack, "scenario.py");

    let paris = stack.spec.domain("paris.test").expect("paris").ip;
    let url = format!("https://{paris}:{}", stack.spec.ports.mda_grpc);
    let ca = pki.join("ca.pem");
    // Another CA, and a certificate of it with the right address in it.
    let other = Ca::ensure(&dir.path().join("other-ca")).expect("other CA");
    let intruder = other
        .issue("intruder", &agent_sans("intruder", &[paris.to_string()]))
        .expect("intruder cert");
    let maa_cert = pki.join("paris.test-maa.pem");
    let maa_key = pki.join("paris.test-maa-key.pem");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        assert_eq!(
            verify(&url, &ca, Some((&maa_cert, &maa_key))).await,
            Ok(true),
            "a client with a certificate from the deployment CA is answered"
        );
        let anonymous = verify(&url, &ca, None).await;
        assert!(
            anonymous.is_err(),
            "a client without a certificate was answered: {anonymous:?}"
        );
        let stranger = verify(&url, &ca, Some((&intruder.cert, &intruder.key))).await;
        assert!(
            stranger.is_err(),
            "a client with another CA's certificate was answered: {stranger:?}"
        );
        // Plaintext to the TLS listener is no way around it either.
        let plain = async {
            let channel =
                Endpoint::from_shared(format!("http://{paris}:{}", stack.spec.ports.mda_grpc))
                    .map_err(|e| e.to_string())?
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
            AuthClient::new(channel)
                .verify(VerifyRequest::default())
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        assert!(plain.is_err(), "plaintext gRPC was answered: {plain:?}");
    });
    let log = stack.log("paris.test", "mda");
    assert!(
        log.contains("gRPC TLS handshake refused"),
        "the MDA did not log the refused handshakes:\n{log}"
    );
    let unclean = stack.stop();
    assert!(
        unclean.is_empty(),
        "agents did not stop cleanly: {unclean:?}"
    );
}

/// Run an agent with `sets` and no config file; it must exit non-zero naming `message`.
fn refuses(agent: &str, sets: &[String], message: &str) {
    let out = Command::new(facteur_tests::bin_dir().join(format!("facteur-{agent}")))
        .args(sets.iter().flat_map(|s| ["--set", s.as_str()]))
        .output()
        .expect("run the agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "facteur-{agent} {sets:?} started:\n{stderr}"
    );
    assert!(
        stderr.contains(message),
        "facteur-{agent} {sets:?} did not say {message:?}:\n{stderr}"
    );
}

#[test]
fn plaintext_grpc_off_loopback_or_a_mismatched_scheme_stops_the_agent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = |a: &str| format!("data_dir={:?}", dir.path().join(a).display().to_string());
    let loopback = [
        "smtp.listen=127.113.0.9:0".to_owned(),
        "grpc.listen=127.113.0.9:0".to_owned(),
    ];
    refuses(
        "mda",
        &[data("mda"), "grpc.listen=0.0.0.0:7024".into()],
        "gRPC on 0.0.0.0:7024 is not loopback: configure [grpc_tls]",
    );
    refuses(
        "mta",
        &[
            data("mta"),
            "smtp.listen=127.113.0.9:0".into(),
            "grpc.listen=0.0.0.0:7025".into(),
        ],
        "gRPC on 0.0.0.0:7025 is not loopback: configure [grpc_tls]",
    );
    let mut mta_to_remote_mda = vec![data("mta"), "mda.url=http://10.0.0.4:7024".into()];
    mta_to_remote_mda.extend(loopback.iter().cloned());
    refuses(
        "mta",
        &mta_to_remote_mda,
        "gRPC on http://10.0.0.4:7024 is not loopback: configure [grpc_tls]",
    );
    refuses(
        "maa",
        // No implicit-TLS listeners: without a certificate they are a config
        // error of their own, checked first.
        &[
            "mda_url=http://mda.lyon.test:7024".into(),
            "pop3.tls_listen=".into(),
            "imap.tls_listen=".into(),
        ],
        "gRPC on http://mda.lyon.test:7024 is not loopback: configure [grpc_tls]",
    );
    // With [grpc_tls], http:// is a config error; https:// without it too.
    let pki = dir.path().join("pki");
    let ca = Ca::ensure(&pki).expect("CA");
    let cert = ca
        .issue("maa", &agent_sans("maa", &[]))
        .expect("certificate");
    let tls = [
        format!("grpc_tls.ca={:?}", ca.cert_path().display().to_string()),
        format!("grpc_tls.cert={:?}", cert.cert.display().to_string()),
        format!("grpc_tls.key={:?}", cert.key.display().to_string()),
    ];
    let mut plain_url = vec![
        "mda_url=http://127.0.0.1:7024".to_owned(),
        "pop3.tls_listen=".to_owned(),
        "imap.tls_listen=".to_owned(),
    ];
    plain_url.extend(tls.iter().cloned());
    refuses("maa", &plain_url, "[grpc_tls] is set, use https://");
    // The MSA wants its submission certificate before it looks at gRPC.
    let msa = [
        format!("tls.cert={:?}", cert.cert.display().to_string()),
        format!("tls.key={:?}", cert.key.display().to_string()),
        "mta_url=https://127.0.0.1:7025".to_owned(),
    ];
    refuses("msa", &msa, "https:// needs [grpc_tls]");
}
