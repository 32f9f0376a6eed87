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
    dialogue(out, lang, &submitted, since(&submitted))?;
    writeln!(
        out,
        "  {}",
        lang.t(
            "then the MSA hands the message to paris's MTA (transfer agent) over gRPC:",
            "puis le MSA remet le message au MTA de paris (agent de transfert) par gRPC :",
        )
    )?;
    dialogue(out, lang, &handover, since(&handover))?;
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
    dialogue(out, lang, &relayed, since(&relayed))?;
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
    dialogue(out, lang, &delivered, since(&delivered))?;
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
    dialogue(out, lang, &popped, since(&popped))?;
    writeln!(
        out,
        "  {} {imap}:",
        lang.t(
            "and the same message over IMAP (RFC 9051) with STARTTLS, at",
            "et le même message en IMAP (RFC 9051) avec STARTTLS, à",
        )
    )?;
    dialogue(out, lang, &imapped, since(&imapped))?;
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
fn dialogue(out: &mut dyn Write, lang: Lang, r: &Record, at_ms: u64) -> anyhow::Result<()> {
    writeln!(out, "  [{} {}, +{at_ms} ms]", r.agent, r.kind)?;
    for l in &r.lines {
        let (prefix, text) = match l.dir {
            Dir::Client => ("C:", l.text.clone()),
            Dir::Server => ("S:", l.text.clone()),
            Dir::Note => (" *", note(lang, &l.text)),
        };
        writeln!(out, "    {prefix} {text}")?;
    }
    if r.dropped > 0 {
        writeln!(out, "    … {} more lines", r.dropped)?;
    }
    Ok(())
}

/// The agents' notes (recorded in English) in the demo's language; the wire's
/// own lines stay as they crossed.
fn note(lang: Lang, text: &str) -> String {
    if lang == Lang::En {
        return text.to_owned();
    }
    const FR: &[(&str, &str)] = &[
        ("TLS started (server name ", "TLS établi (nom du serveur "),
        ("TLS started", "TLS établi"),
        ("TLS (implicit)", "TLS d'emblée (implicite)"),
        ("DNS ? MX ", "DNS ? MX "),
        (
            "(then A/AAAA of each exchanger)",
            "(puis A/AAAA de chaque serveur)",
        ),
        ("connect to ", "connexion à "),
        ("gRPC stream: ", "flux gRPC : "),
        ("octets of message", "octets de message"),
        ("gRPC reply ← ", "réponse gRPC ← "),
        ("attempt failed: ", "tentative échouée : "),
        ("transport: ", "transport : "),
        (" filed as UID ", " rangé sous l'UID "),
        ("key ", "clé "),
    ];
    let mut out = text.to_owned();
    for (en, fr) in FR {
        out = out.replace(en, fr);
    }
    out
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

/// The page of the route (`cargo xtask demo --html FILE`): the agents of both
/// domains as boxes, the hops as arrows, each step a section with its time, its
/// delay, the envelope beside the header as it stood there, and the transcript.
/// Self-contained: no script, no external resource.
pub fn html(o: &Outcome, lang: Lang) -> String {
    let r = |kind: &str, agent: &str| {
        o.records
            .iter()
            .find(|r| r.kind == kind && r.agent == agent)
    };
    let submitted = r("submission", "facteur-msa");
    let handover = r("grpc-out", "facteur-msa");
    let relayed = r("smtp-out", "facteur-mta");
    let received = r("smtp", "facteur-mta");
    let delivered = o
        .records
        .iter()
        .find(|r| r.kind == "grpc-out" && r.agent == "facteur-mta");
    let popped = r("pop3", "facteur-maa");
    let imapped = r("imap", "facteur-maa");
    let t0 = submitted.map_or(0, |r| r.start_ms);
    let t = |en: &'static str, fr: &'static str| lang.t(en, fr);
    let mut page = String::new();
    let title = t(
        "facteur: the route of one message",
        "facteur : le trajet d'un message",
    );
    page.push_str(&format!(
        "<!DOCTYPE html>\n<html lang=\"{}\"><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>{CSS}</style></head><body>\n<h1>{title}</h1>\n<p>{} <code>{}</code></p>\n",
        if lang == Lang::Fr { "fr" } else { "en" },
        esc(t("Message-ID:", "Message-ID :")),
        esc(&o.message_id),
    ));
    // The pipeline: boxes and arrows, each clickable to its step.
    let agent = |id: &str, name: &str, what: &str, step: usize| {
        format!(
            "<a class=\"agent\" id=\"agent-{id}\" href=\"#step-{step}\"><b>{}</b><br><small>{}</small></a>",
            esc(name),
            esc(what)
        )
    };
    let arrow = |step: usize, label: &str| {
        format!(
            "<a class=\"hop\" href=\"#step-{step}\" data-hop=\"{step}\"><span>{step}</span>{}<br>→</a>",
            esc(label)
        )
    };
    page.push_str("<div class=\"pipeline\">\n<section class=\"domain\" data-domain=\"paris.test\"><h2>paris.test</h2><div class=\"row\">");
    page.push_str(&agent(
        "paris-mua",
        t("MUA (pierre)", "MUA (pierre)"),
        "facteur-mua",
        1,
    ));
    page.push_str(&arrow(2, t("SMTP submission", "soumission SMTP")));
    page.push_str(&agent(
        "paris-msa",
        "MSA",
        t("submission agent", "agent de soumission"),
        2,
    ));
    page.push_str(&arrow(2, "gRPC Relay"));
    page.push_str(&agent(
        "paris-mta",
        "MTA",
        t("transfer agent", "agent de transfert"),
        3,
    ));
    page.push_str("</div></section>\n");
    page.push_str(&arrow(3, "DNS MX + SMTP"));
    page.push_str(
        "<section class=\"domain\" data-domain=\"lyon.test\"><h2>lyon.test</h2><div class=\"row\">",
    );
    page.push_str(&agent(
        "lyon-mta",
        "MTA",
        t("transfer agent", "agent de transfert"),
        3,
    ));
    page.push_str(&arrow(4, "gRPC Delivery"));
    page.push_str(&agent(
        "lyon-mda",
        "MDA",
        t("delivery agent", "agent de distribution (facteur)"),
        5,
    ));
    page.push_str(&arrow(6, "Mailbox"));
    page.push_str(&agent(
        "lyon-maa",
        "MAA",
        t("access agent", "agent d'accès"),
        6,
    ));
    page.push_str(&arrow(7, "POP3 / IMAP"));
    page.push_str(&agent(
        "lyon-mua",
        t("MUA (andre)", "MUA (andre)"),
        "facteur-mua",
        8,
    ));
    page.push_str("</div></section>\n</div>\n");

    let steps: [(&str, &str, Vec<&Record>); 8] = [
        (
            "pierre composes a message with his MUA",
            "pierre rédige un message avec son MUA",
            Vec::new(),
        ),
        (
            "MUA → MSA: SMTP submission (RFC 6409), then the MSA's gRPC hand-over to paris's MTA",
            "MUA → MSA : soumission SMTP (RFC 6409), puis remise par gRPC au MTA de paris",
            submitted.into_iter().chain(handover).collect(),
        ),
        (
            "MTA of paris.test → MTA of lyon.test, found by DNS MX: SMTP (RFC 5321)",
            "MTA de paris.test → MTA de lyon.test, trouvé par le DNS (MX) : SMTP (RFC 5321)",
            relayed.into_iter().chain(received).collect(),
        ),
        (
            "lyon's MTA hands it to the MDA (gRPC Delivery)",
            "le MTA de lyon le remet au MDA (gRPC Delivery)",
            delivered.into_iter().collect(),
        ),
        (
            "the MDA stores it in andre's mailbox",
            "le MDA le range dans la boîte aux lettres d'andre",
            Vec::new(),
        ),
        (
            "on request, the MAA takes it out: POP3 (RFC 1939)",
            "à la demande, le MAA le sort de la boîte : relève POP3 (RFC 1939)",
            popped.into_iter().collect(),
        ),
        (
            "it reaches andre's client: IMAP (RFC 9051)",
            "il arrive dans le client d'andre : IMAP (RFC 9051)",
            imapped.into_iter().collect(),
        ),
        ("andre reads it", "andre le lit", Vec::new()),
    ];
    for (i, (en, fr, records)) in steps.iter().enumerate() {
        let n = i + 1;
        page.push_str(&format!(
            "<section class=\"step\" id=\"step-{n}\" data-step=\"{n}\"><h2>{} {n}/8 — {}</h2>\n",
            t("Step", "Étape"),
            esc(lang.t(en, fr))
        ));
        match n {
            1 => {
                if let Some(r) = submitted {
                    page.push_str(&headers_block(lang, &r.headers));
                }
            }
            5 => page.push_str(&format!(
                "<p class=\"filed\">andre@lyon.test: INBOX, UID {} — {} {}</p>\n",
                esc(&o.uid),
                esc(t("lyon's queue ID", "identifiant dans la file de lyon")),
                esc(&o.lyon_queue_id)
            )),
            8 => {
                if let Some(r) = imapped.or(popped) {
                    page.push_str(&headers_block(lang, &r.headers));
                }
            }
            _ => {}
        }
        for r in records {
            page.push_str(&record_block(lang, r, t0));
        }
        page.push_str("</section>\n");
    }
    page.push_str("</body></html>\n");
    page
}

const CSS: &str = "body{font-family:sans-serif;margin:1.5em;max-width:80em}\
.pipeline{display:flex;align-items:center;flex-wrap:wrap;gap:.5em}\
.domain{border:2px solid #446;border-radius:8px;padding:.5em}\
.domain h2{margin:.1em 0 .4em;font-size:1em}.row{display:flex;align-items:center;gap:.4em}\
.agent{display:block;border:1px solid #333;border-radius:6px;padding:.5em .7em;background:#eef;color:#000;text-decoration:none;text-align:center}\
.hop{text-align:center;font-size:.8em;color:#036;text-decoration:none}.hop span{display:inline-block;background:#036;color:#fff;border-radius:50%;width:1.4em;margin-right:.3em}\
.step{border-top:1px solid #ccc;margin-top:1em}.cols{display:flex;gap:1em;flex-wrap:wrap}\
.cols>div{flex:1;min-width:20em}pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:.85em}\
.C{color:#036}.S{color:#060}.N{color:#a50}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}";

fn headers_block(lang: Lang, headers: &[String]) -> String {
    format!(
        "<div class=\"headers\"><h3>{}</h3><pre>{}</pre></div>\n",
        esc(lang.t("Header", "En-tête")),
        esc(&headers.join("\n"))
    )
}

/// One record: when, the envelope beside the header, and the transcript.
fn record_block(lang: Lang, r: &Record, t0: u64) -> String {
    let (from, to) = envelope(r);
    let day_ms = r.start_ms % 86_400_000;
    let when = format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        day_ms / 3_600_000,
        day_ms / 60_000 % 60,
        day_ms / 1000 % 60,
        day_ms % 1000
    );
    let mut out = format!(
        "<div class=\"record\" data-agent=\"{}\" data-kind=\"{}\"><h3>{} {} — {} ({}, +{} ms, {} {} ms)</h3>\n<div class=\"cols\"><div><h4>{}</h4><table><tr><th>MAIL FROM</th><td>{}</td></tr><tr><th>RCPT TO</th><td>{}</td></tr></table></div>",
        esc(&r.agent),
        esc(&r.kind),
        esc(&r.agent),
        esc(&r.kind),
        esc(&r.peer),
        esc(&when),
        r.start_ms.saturating_sub(t0),
        esc(lang.t("lasting", "durée")),
        r.end_ms.saturating_sub(r.start_ms),
        esc(lang.t("Envelope", "Enveloppe")),
        esc(from.as_deref().unwrap_or("—")),
        esc(&to.join(", ")),
    );
    if !r.headers.is_empty() {
        out.push_str(&format!("<div>{}</div>", headers_block(lang, &r.headers)));
    }
    out.push_str("</div>\n<details open><summary>");
    out.push_str(&esc(lang.t("Transcript", "Transcription")));
    out.push_str("</summary><pre>");
    for l in &r.lines {
        let (class, prefix) = match l.dir {
            Dir::Client => ("C", "C:"),
            Dir::Server => ("S", "S:"),
            Dir::Note => ("N", " *"),
        };
        out.push_str(&format!(
            "<span class=\"{class}\">{prefix} {}</span>\n",
            esc(&l.text)
        ));
    }
    out.push_str("</pre></details></div>\n");
    out
}

/// MAIL FROM and RCPT TO as the record shows them (commands or gRPC notes).
fn envelope(r: &Record) -> (Option<String>, Vec<String>) {
    let mut from = None;
    let mut to = Vec::new();
    let path = |s: &str| s.split('>').next().map(|p| format!("{p}>"));
    for l in &r.lines {
        for part in l.text.split(", ") {
            if let Some(rest) = part.find("MAIL FROM:").map(|i| &part[i + 10..]) {
                from = from.or_else(|| path(rest));
            }
            if let Some(rest) = part.find("RCPT TO:").map(|i| &part[i + 8..]) {
                for one in rest.split(',') {
                    if let Some(p) = path(one)
                        && !to.contains(&p)
                    {
                        to.push(p);
                    }
                }
            }
        }
    }
    (from, to)
}

/// HTML text escaping.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}
