//! `cargo xtask demo`: the course's scenario, pierre@paris.test → andre@lyon.test,
//! in its 8 steps, in English or French, each step showing what really crossed
//! the wire as the agents recorded it (their transcript files, `[transcript]`),
//! never re-enacted.
//!
//! The demo only sends and fetches with the real `facteur-mua`; everything it
//! prints about the hops comes from the records the MSA, the MTAs, and lyon's MAA
//! wrote, found by the message's queue ID and Message-ID.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use facteur_daemon::transcript::{Dir, Record};

use crate::StackSpec;

/// The language the demo speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Lang {
    #[default]
    En,
    Fr,
}

impl Lang {
    /// `en` or `fr` of a sentence.
    fn t<'a>(self, en: &'a str, fr: &'a str) -> &'a str {
        match self {
            Lang::En => en,
            Lang::Fr => fr,
        }
    }
}

/// What the demo found, for the caller (and the tests) to check.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub message_id: String,
    /// paris's queue ID (the MSA's reply) and lyon's (lyon's MTA's reply to paris).
    pub paris_queue_id: String,
    pub lyon_queue_id: String,
    /// The UID andre's INBOX gave the message.
    pub uid: String,
    /// Every record the steps showed.
    pub records: Vec<Record>,
}

/// How long the message may take through the chain, and the records to be written.
const WAIT: Duration = Duration::from_secs(60);

/// Run the scenario on the (running) stack `spec` describes; `pause` is called
/// between steps (`--step` waits for Enter there).
pub fn run(
    spec: &StackSpec,
    lang: Lang,
    out: &mut dyn Write,
    pause: &mut dyn FnMut(),
) -> anyhow::Result<Outcome> {
    let ip = |d: &str| spec.domain(d).map(|d| d.ip.to_string()).unwrap_or_default();
    let (paris, lyon) = (ip("paris.test"), ip("lyon.test"));
    let p = &spec.ports;
    let mua = spec.bin_dir.join("facteur-mua");
    let password = crate::stack::dev_password();
    let ca = spec.ca();
    let started = now_ms();
    let subject = match lang {
        Lang::En => format!("Hello Andre ({started})"),
        Lang::Fr => format!("Bonjour André ({started})"),
    };
    let body = lang.t(
        "Hello Andre,\nthis message walks the 8 steps of the pipeline.\nPierre\n",
        "Bonjour André,\nce message parcourt les 8 étapes de la chaîne.\nPierre\n",
    );
    let mua_run = |args: &[&str]| -> anyhow::Result<String> {
        let output = Command::new(&mua)
            .args(args)
            .arg("--ca")
            .arg(&ca)
            // The password from the environment, never on the command line.
            .env("FACTEUR_PASSWORD", &password)
            .output()
            .with_context(|| format!("running {}", mua.display()))?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("facteur-mua {args:?} failed:\n{text}");
        }
        Ok(text)
    };

    // Step 1: pierre composes; step 2 starts when the MUA submits.
    let submission = format!("{paris}:{}", p.submission);
    let sent = mua_run(&[
        "send",
        "--server",
        &submission,
        "--user",
        "pierre@paris.test",
        "--from",
        "pierre@paris.test",
        "--to",
        "andre@lyon.test",
        "--subject",
        &subject,
        "--body",
        body,
    ])?;
    let paris_queue_id = queued_as(&sent).context("the MSA's reply gave no queue ID")?;
    let files = |domain: &str, agent: &str| spec.transcript_file(domain, agent);
    // The MSA's hand-over names both the queue ID and the Message-ID.
    let handover = wait_record(&files("paris.test", "msa"), |r| {
        r.kind == "grpc-out" && r.queue_ids.contains(&paris_queue_id)
    })?;
    let message_id = handover
        .message_ids
        .first()
        .cloned()
        .context("the MSA's hand-over record has no Message-ID")?;
    let has = |r: &Record| r.message_ids.contains(&message_id);
    let submitted = wait_record(&files("paris.test", "msa"), |r| {
        r.kind == "submission" && has(r)
    })?;
    let relayed = wait_record(&files("paris.test", "mta"), |r| {
        r.kind == "smtp-out" && has(r) && r.lines.iter().any(|l| l.text.starts_with("250 2.0.0"))
    })?;
    let received = wait_record(&files("lyon.test", "mta"), |r| r.kind == "smtp" && has(r))?;
    let delivered = wait_record(&files("lyon.test", "mta"), |r| {
        r.kind == "grpc-out" && has(r)
    })?;
    let lyon_queue_id = delivered.queue_ids.first().cloned().unwrap_or_default();
    let uid = delivered
        .lines
        .iter()
        .find_map(|l| l.text.split("filed as UID ").nth(1))
        .map(|u| u.trim().to_owned())
        .context("lyon's MDA did not say which UID it filed the message as")?;

    // Steps 6-8: andre's MUA fetches by POP3, then by IMAP.
    let pop3 = format!("{lyon}:{}", p.pop3);
    let imap = format!("{lyon}:{}", p.imap);
    let fetched = mua_run(&[
        "fetch",
        "--pop3",
        &pop3,
        "--user",
        "andre@lyon.test",
        "--last",
    ])?;
    let popped = wait_record(&files("lyon.test", "maa"), |r| r.kind == "pop3" && has(r))?;
    let imap_read = mua_run(&[
        "fetch",
        "--imap",
        &imap,
        "--user",
        "andre@lyon.test",
        "--last",
    ])?;
    let imapped = wait_record(&files("lyon.test", "maa"), |r| r.kind == "imap" && has(r))?;

    let t0 = submitted.start_ms;
    let since = |r: &Record| r.start_ms.saturating_sub(t0);
    let mut say = |s: &str| writeln!(out, "{s}");
    say(lang.t(
        "facteur demo: one message from pierre@paris.test to andre@lyon.test, in the 8 steps of the course.",
        "Démo facteur : un message de pierre@paris.test pour andre@lyon.test, en 8 étapes, comme dans le cours.",
    ))?;
    say(lang.t(
        "Every dialogue below is read back from the agents' own transcripts (C: client, S: server, *: what the agent did).",
        "Chaque dialogue ci-dessous est relu dans les transcriptions des agents eux-mêmes (C: client, S: serveur, * : ce que l'agent a fait).",
    ))?;

    let mut step = |n: usize, title: &str, out: &mut dyn Write| -> anyhow::Result<()> {
        if n > 1 {
            pause();
        }
        let word = lang.t("Step", "Étape");
        writeln!(out, "\n━━ {word} {n}/8 — {title}")?;
        Ok(())
    };
    // 1
    step(
        1,
        lang.t(
            "pierre composes a message with his MUA (mail user agent, facteur-mua)",
            "pierre rédige un message avec son MUA (client de messagerie, facteur-mua)",
        ),
        out,
    )?;
    writeln!(
        out,
        "  From: pierre@paris.test\n  To: andre@lyon.test\n  Subject: {subject}"
    )?;
    writeln!(out, "  Message-ID: {message_id}")?;
    for line in body.lines() {
        writeln!(out, "  | {line}")?;
    }
    // 2
    step(
        2,
        &format!(
            "{} {}",
            lang.t(
                "to pierre's server: MUA → MSA (submission agent, facteur-msa), SMTP submission with STARTTLS and AUTH (RFC 6409), at",
                "vers le serveur de pierre : MUA → MSA (agent de soumission, facteur-msa), soumission SMTP avec STARTTLS et AUTH (RFC 6409), à",
            ),
            hostport(&submitted.host, &submitted.local)
        ),
        out,
    )?;
    dialogue(out, &submitted, since(&submitted))?;
    writeln!(
        out,
        "  {}",
        lang.t(
            "then the MSA hands the message to paris's MTA (transfer agent) over gRPC:",
            "puis le MSA remet le message au MTA de paris (agent de transfert) par gRPC :",
        )
    )?;
    dialogue(out, &handover, since(&handover))?;
    // 3
    step(
        3,
        &format!(
            "{} {}",
            lang.t(
                "to the recipient's server, found by DNS (MX of lyon.test): MTA of paris.test → MTA of lyon.test, SMTP with STARTTLS (RFC 5321), at",
                "vers le serveur du destinataire, trouvé par le DNS (MX de lyon.test) : MTA de paris.test → MTA de lyon.test, SMTP avec STARTTLS (RFC 5321), à",
            ),
            relayed.peer
        ),
        out,
    )?;
    dialogue(out, &relayed, since(&relayed))?;
    writeln!(
        out,
        "  {} {} ({} ms)",
        lang.t(
            "lyon's MTA recorded the same dialogue from its side, from",
            "le MTA de lyon a noté le même dialogue de son côté, depuis",
        ),
        received.peer,
        since(&received)
    )?;
    // 4
    step(
        4,
        &format!(
            "{} {}",
            lang.t(
                "that server hands it to the MDA (delivery agent, facteur-mda) over gRPC, at",
                "ce serveur le remet au MDA (agent de distribution, le facteur, facteur-mda) par gRPC, à",
            ),
            delivered.peer
        ),
        out,
    )?;
    dialogue(out, &delivered, since(&delivered))?;
    // 5
    step(
        5,
        lang.t(
            "the MDA stores it in andre's mailbox",
            "le MDA le range dans la boîte aux lettres d'andre",
        ),
        out,
    )?;
    writeln!(
        out,
        "  {} INBOX, UID {uid} ({} {lyon_queue_id})",
        lang.t("andre@lyon.test:", "andre@lyon.test :"),
        lang.t("lyon's queue ID", "identifiant dans la file de lyon"),
    )?;
    // 6
    step(
        6,
        &format!(
            "{} {}",
            lang.t(
                "on request, the MAA (access agent, facteur-maa) takes it out: POP3 (RFC 1939) with STLS, at",
                "à la demande, le MAA (agent d'accès, facteur-maa) le sort de la boîte : relève POP3 (RFC 1939) avec STLS, à",
            ),
            hostport(&popped.host, &popped.local)
        ),
        out,
    )?;
    dialogue(out, &popped, since(&popped))?;
    writeln!(
        out,
        "  {} {imap}:",
        lang.t(
            "and the same message over IMAP (RFC 9051) with STARTTLS, at",
            "et le même message en IMAP (RFC 9051) avec STARTTLS, à",
        )
    )?;
    dialogue(out, &imapped, since(&imapped))?;
    // 7
    step(
        7,
        lang.t(
            "it reaches andre's client (facteur-mua fetch)",
            "il arrive dans le client d'andre (facteur-mua fetch)",
        ),
        out,
    )?;
    for line in fetched.lines().filter(|l| !l.trim().is_empty()).take(8) {
        writeln!(out, "  {line}")?;
    }
    // 8
    step(
        8,
        lang.t(
            "andre reads it: the message as his MUA shows it (IMAP)",
            "andre le lit : le message tel que son MUA l'affiche (IMAP)",
        ),
        out,
    )?;
    for line in imap_read.lines() {
        writeln!(out, "  {line}")?;
    }
    writeln!(
        out,
        "\n{} {} ms.",
        lang.t(
            "From submission to the IMAP fetch:",
            "De la soumission à la relève IMAP :",
        ),
        since(&imapped)
    )?;
    Ok(Outcome {
        message_id,
        paris_queue_id,
        lyon_queue_id,
        uid,
        records: vec![
            submitted, handover, relayed, received, delivered, popped, imapped,
        ],
    })
}

/// `host (ip:port)`.
fn hostport(host: &str, addr: &str) -> String {
    if addr.is_empty() || addr == host {
        host.to_owned()
    } else {
        format!("{host} ({addr})")
    }
}

/// One record's lines, as the course shows a telnet session.
fn dialogue(out: &mut dyn Write, r: &Record, at_ms: u64) -> anyhow::Result<()> {
    writeln!(out, "  [{} {}, +{at_ms} ms]", r.agent, r.kind)?;
    for l in &r.lines {
        let prefix = match l.dir {
            Dir::Client => "C:",
            Dir::Server => "S:",
            Dir::Note => " *",
        };
        writeln!(out, "    {prefix} {}", l.text)?;
    }
    if r.dropped > 0 {
        writeln!(out, "    … {} more lines", r.dropped)?;
    }
    Ok(())
}

/// The queue ID in `… queued as ID`.
fn queued_as(text: &str) -> Option<String> {
    text.split("queued as ")
        .nth(1)?
        .split_whitespace()
        .next()
        .map(str::to_owned)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The newest record of `file` that `pick` accepts, waiting (bounded) for it:
/// the agents write their records when a connection ends, a little after the
/// client has its answer.
fn wait_record(file: &Path, pick: impl Fn(&Record) -> bool) -> anyhow::Result<Record> {
    let deadline = Instant::now() + WAIT;
    loop {
        let records = facteur_daemon::transcript::read(file)
            .with_context(|| format!("reading {}", file.display()))?;
        if let Some(r) = records.into_iter().rev().find(|r| pick(r)) {
            return Ok(r);
        }
        if Instant::now() > deadline {
            bail!(
                "no matching transcript record in {} within {WAIT:?} (is [transcript] enabled, and did the mail get through? see var/log/)",
                file.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
