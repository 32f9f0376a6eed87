//! `cargo xtask lab <exercise>`: break the chain on purpose, deterministically,
//! watch what happens (the real replies, the queue, `facteur-mua why`), then
//! undo the fault and check the chain works again.
//!
//! Each exercise runs on a stack it is given (the launcher starts a fresh one)
//! and says, in English or French, what it does, what you see and which RFC
//! section says why. docs/TEACHING.md and docs/ENSEIGNEMENT.md have the same
//! texts for doing it by hand.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::Stack;
use crate::demo::Lang;

/// The exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Exercise {
    /// Stop lyon's MTA: mail waits in paris's queue, then arrives when it is back.
    MtaDown,
    /// Take lyon.test out of the DNS: no MX found, the mail waits, then bounces.
    NoMx,
    /// Write to a user lyon does not have: 550 5.1.1 and a bounce to the sender.
    UnknownUser,
    /// Try to relay through lyon's port 25 to another domain: 554 5.7.1.
    Relay,
    /// Submit with a wrong password: 535 5.7.8.
    WrongPassword,
    /// andre's mailbox is over its quota: 552 5.2.2 and a bounce to the sender.
    FullMailbox,
    /// A message that already crossed too many servers: 554 5.4.6.
    Loop,
}

impl Exercise {
    pub const ALL: [Exercise; 7] = [
        Exercise::MtaDown,
        Exercise::NoMx,
        Exercise::UnknownUser,
        Exercise::Relay,
        Exercise::WrongPassword,
        Exercise::FullMailbox,
        Exercise::Loop,
    ];
}

/// What an exercise showed, for the tests to check.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The decisive reply or explanation the exercise is about (e.g. `550 5.1.1 …`).
    pub observed: String,
    /// `facteur-mua why`'s words, when the exercise asks it.
    pub why: String,
    /// The fault was undone and the chain delivered mail again.
    pub undone: bool,
}

/// How long a step may take (deliveries, records).
const WAIT: Duration = Duration::from_secs(60);

/// Run one exercise on `stack` (which it may stop and restart agents of).
pub fn run(
    stack: &mut Stack,
    exercise: Exercise,
    lang: Lang,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let l = |en: &'static str, fr: &'static str| if lang == Lang::Fr { fr } else { en };
    let ip = |stack: &Stack, d: &str| {
        stack
            .spec
            .domain(d)
            .map(|d| d.ip.to_string())
            .unwrap_or_default()
    };
    let (paris, lyon) = (ip(stack, "paris.test"), ip(stack, "lyon.test"));
    let ports = stack.spec.ports.clone();
    let tag = format!("lab {exercise:?} {}", std::process::id());
    match exercise {
        Exercise::MtaDown => {
            writeln!(
                out,
                "{}",
                l(
                    "Lab: lyon's MTA is down. RFC 5321 §4.5.4.1: the sending MTA keeps the message in its queue and retries; nothing is lost.",
                    "TP : le MTA de lyon est arrêté. RFC 5321 §4.5.4.1 : le MTA expéditeur garde le message dans sa file et réessaie ; rien n'est perdu.",
                )
            )?;
            stack.kill("lyon.test", "mta")?;
            writeln!(
                out,
                "* {}",
                l("lyon's MTA stopped (kill).", "MTA de lyon arrêté (kill).")
            )?;
            let sent = send(stack, "pierre@paris.test", "andre@lyon.test", &tag, None)?;
            writeln!(
                out,
                "C: facteur-mua send … --to andre@lyon.test\nS: {}",
                sent.trim()
            )?;
            let queue_id = queued_as(&sent).context("no queue ID in the MSA's reply")?;
            let why = why_until(
                stack,
                &queue_id,
                lang,
                l("next hop down", "serveur suivant injoignable"),
            )?;
            let list = queue(stack, "list")?;
            writeln!(
                out,
                "{}\n{list}",
                l(
                    "paris's queue (facteur-mta queue list):",
                    "la file de paris (facteur-mta queue list) :"
                )
            )?;
            writeln!(out, "facteur-mua why {queue_id}\n{why}")?;
            if !list.contains(&queue_id) {
                bail!("paris's queue does not list {queue_id}:\n{list}");
            }
            // Undo: start lyon's MTA again, flush paris's queue, see the mail arrive.
            stack.restart("lyon.test", "mta")?;
            queue(stack, "flush")?;
            writeln!(
                out,
                "* {}",
                l(
                    "lyon's MTA started again; queue flushed (facteur-mta queue flush).",
                    "MTA de lyon redémarré ; file vidée (facteur-mta queue flush)."
                )
            )?;
            let undone = arrives(stack, "andre@lyon.test", &lyon, ports.pop3, &tag)?;
            writeln!(
                out,
                "{}",
                l(
                    "andre got the message: delivered once the next hop was back.",
                    "andre a reçu le message : remis dès le retour du serveur suivant."
                )
            )?;
            Ok(Outcome {
                observed: list,
                why,
                undone,
            })
        }
        Exercise::NoMx => {
            let say = |out: &mut dyn Write, en: &str, fr: &str| -> anyhow::Result<()> {
                writeln!(out, "{}", if lang == Lang::Fr { fr } else { en })?;
                Ok(())
            };
            say(
                out,
                "Lab: lyon.test is taken out of the DNS. RFC 5321 §5.1: paris's MTA finds no MX for lyon.test; the DNS refuses to answer, a temporary failure, so the message is deferred (RFC 5321 §4.5.4.1) until it is older than queue.max_age_secs (10 s in this lab), then it bounces to pierre (RFC 3464).",
                "TP : lyon.test est retiré du DNS. RFC 5321 §5.1 : le MTA de paris ne trouve pas de MX pour lyon.test ; le DNS refuse de répondre, échec temporaire, le message est donc différé (RFC 5321 §4.5.4.1) jusqu'à dépasser queue.max_age_secs (10 s dans ce TP), puis il revient à pierre (RFC 3464).",
            )?;
            stack.restart_dns(&["lyon.test"])?;
            // A fresh MTA (nothing cached from earlier answers), with a short life
            // for queued mail.
            let short = (
                "paris.test/mta".to_owned(),
                "queue.max_age_secs=10".to_owned(),
            );
            stack.spec.sets.push(short.clone());
            stack.kill("paris.test", "mta")?;
            stack.restart("paris.test", "mta")?;
            say(
                out,
                "* the dev DNS restarted without lyon.test; paris's MTA restarted with queue.max_age_secs = 10.",
                "* DNS de dev redémarré sans lyon.test ; MTA de paris redémarré avec queue.max_age_secs = 10.",
            )?;
            let dig = dig_mx(stack);
            writeln!(out, "$ dig MX lyon.test\n{dig}")?;
            let sent = send(stack, "pierre@paris.test", "andre@lyon.test", &tag, None)?;
            writeln!(
                out,
                "C: facteur-mua send … --to andre@lyon.test\nS: {}",
                sent.trim()
            )?;
            let queue_id = queued_as(&sent).context("no queue ID in the MSA's reply")?;
            let why = why_until(stack, &queue_id, lang, l("MX not found", "MX introuvable"))?;
            writeln!(out, "facteur-mua why {queue_id}\n{why}")?;
            let list = queue(stack, "list")?;
            say(
                out,
                "paris's queue (facteur-mta queue list):",
                "la file de paris (facteur-mta queue list) :",
            )?;
            writeln!(out, "{list}")?;
            std::thread::sleep(Duration::from_secs(11));
            queue(stack, "flush")?;
            say(
                out,
                "* 11 s later, queue flush: the message is too old to wait any longer.",
                "* 11 s plus tard, queue flush : le message est trop vieux pour attendre encore.",
            )?;
            arrives(
                stack,
                "pierre@paris.test",
                &paris,
                ports.pop3,
                "Undelivered Mail Returned to Sender",
            )?;
            say(
                out,
                "pierre got the bounce: Undelivered Mail Returned to Sender.",
                "pierre a reçu l'avis de non-remise : Undelivered Mail Returned to Sender.",
            )?;
            // Undo: lyon.test back in the DNS, paris's MTA with its own settings.
            stack.restart_dns(&[])?;
            stack.spec.sets.retain(|s| *s != short);
            stack.kill("paris.test", "mta")?;
            stack.restart("paris.test", "mta")?;
            let again = format!("{tag} again");
            send(stack, "pierre@paris.test", "andre@lyon.test", &again, None)?;
            let undone = arrives(stack, "andre@lyon.test", &lyon, ports.pop3, &again)?;
            say(
                out,
                "* lyon.test is back in the DNS: a new message reaches andre.",
                "* lyon.test est de retour dans le DNS : un nouveau message parvient à andre.",
            )?;
            let observed = why
                .lines()
                .find(|x| x.contains("DNS !"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            Ok(Outcome {
                observed,
                why,
                undone,
            })
        }
        Exercise::UnknownUser => {
            writeln!(
                out,
                "{}",
                l(
                    "Lab: write to nobody@lyon.test. RFC 5321 §4.2.2 (550, 5.1.1 in RFC 3463): lyon's MTA refuses the recipient; paris's MTA sends pierre a bounce (RFC 3464).",
                    "TP : écrire à nobody@lyon.test. RFC 5321 §4.2.2 (550, 5.1.1 dans la RFC 3463) : le MTA de lyon refuse le destinataire ; le MTA de paris renvoie un avis de non-remise à pierre (RFC 3464).",
                )
            )?;
            let sent = send(stack, "pierre@paris.test", "nobody@lyon.test", &tag, None)?;
            writeln!(
                out,
                "C: facteur-mua send … --to nobody@lyon.test\nS: {}",
                sent.trim()
            )?;
            let why = why_until(
                stack,
                "nobody@lyon.test",
                lang,
                l("unknown user", "utilisateur inconnu"),
            )?;
            writeln!(out, "facteur-mua why nobody@lyon.test\n{why}")?;
            let bounced = arrives(
                stack,
                "pierre@paris.test",
                &paris,
                ports.pop3,
                "Undelivered Mail Returned to Sender",
            )?;
            writeln!(
                out,
                "{}",
                l(
                    "pierre got the bounce: Undelivered Mail Returned to Sender.",
                    "pierre a reçu l'avis de non-remise : Undelivered Mail Returned to Sender."
                )
            )?;
            let observed = why
                .lines()
                .find(|x| x.contains("550"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            Ok(Outcome {
                observed,
                why,
                undone: bounced,
            })
        }
        Exercise::Relay => {
            writeln!(
                out,
                "{}",
                l(
                    "Lab: from outside, ask lyon's MTA (port 25) to carry mail to paris.test. RFC 5321 §3.6.2: no open relay, 554 5.7.1.",
                    "TP : depuis l'extérieur, demander au MTA de lyon (port 25) de porter un message vers paris.test. RFC 5321 §3.6.2 : pas de relais ouvert, 554 5.7.1.",
                )
            )?;
            let mut smtp = Smtp::connect(&format!("{lyon}:{}", ports.smtp))?;
            for cmd in ["EHLO attacker.example", "MAIL FROM:<spam@attacker.example>"] {
                let reply = smtp.say(cmd)?;
                writeln!(out, "C: {cmd}\nS: {reply}")?;
            }
            let refused = smtp.say("RCPT TO:<jacques@paris.test>")?;
            writeln!(out, "C: RCPT TO:<jacques@paris.test>\nS: {refused}")?;
            smtp.say("QUIT")?;
            let why = why_until(
                stack,
                "jacques@paris.test",
                lang,
                l("relay refused", "relais refusé"),
            )?;
            writeln!(out, "facteur-mua why jacques@paris.test\n{why}")?;
            Ok(Outcome {
                observed: refused,
                why,
                undone: true,
            })
        }
        Exercise::WrongPassword => {
            writeln!(
                out,
                "{}",
                l(
                    "Lab: submit with a wrong password. RFC 4954 §6: 535 5.7.8, and nothing is sent.",
                    "TP : soumettre avec un mauvais mot de passe. RFC 4954 §6 : 535 5.7.8, et rien n'est envoyé.",
                )
            )?;
            let err = send(
                stack,
                "pierre@paris.test",
                "andre@lyon.test",
                &tag,
                Some("wrong-password"),
            )
            .err()
            .map(|e| format!("{e:#}"))
            .context("a wrong password was accepted")?;
            let observed = err
                .lines()
                .find(|x| x.contains("535"))
                .unwrap_or(err.as_str())
                .trim()
                .to_owned();
            writeln!(out, "C: facteur-mua send … (wrong password)\nS: {observed}")?;
            Ok(Outcome {
                observed,
                why: String::new(),
                undone: true,
            })
        }
        Exercise::FullMailbox => {
            writeln!(
                out,
                "{}",
                l(
                    "Lab: andre's mailbox is full (lyon's MDA restarted with store.quota_bytes = 1). RFC 3463 5.2.2 (552, RFC 5321 §4.2.2): the MDA refuses the message, lyon's MTA bounces it to pierre (RFC 3464).",
                    "TP : la boîte d'andre est pleine (MDA de lyon redémarré avec store.quota_bytes = 1). RFC 3463 5.2.2 (552, RFC 5321 §4.2.2) : le MDA refuse le message, le MTA de lyon le renvoie à pierre (RFC 3464).",
                )
            )?;
            let full = ("lyon.test/mda".to_owned(), "store.quota_bytes=1".to_owned());
            stack.spec.sets.push(full.clone());
            stack.kill("lyon.test", "mda")?;
            stack.restart("lyon.test", "mda")?;
            let sent = send(stack, "pierre@paris.test", "andre@lyon.test", &tag, None)?;
            writeln!(
                out,
                "C: facteur-mua send … --to andre@lyon.test\nS: {}",
                sent.trim()
            )?;
            let why = why_until(
                stack,
                "andre@lyon.test",
                lang,
                l("mailbox full", "boîte aux lettres pleine"),
            )?;
            writeln!(out, "facteur-mua why andre@lyon.test\n{why}")?;
            arrives(
                stack,
                "pierre@paris.test",
                &paris,
                ports.pop3,
                "Undelivered Mail Returned to Sender",
            )?;
            writeln!(
                out,
                "{}",
                l(
                    "pierre got the bounce.",
                    "pierre a reçu l'avis de non-remise."
                )
            )?;
            // Undo: the MDA without the quota; a new message reaches andre.
            stack.spec.sets.retain(|s| *s != full);
            stack.kill("lyon.test", "mda")?;
            stack.restart("lyon.test", "mda")?;
            let again = format!("{tag} again");
            send(stack, "pierre@paris.test", "andre@lyon.test", &again, None)?;
            let undone = arrives(stack, "andre@lyon.test", &lyon, ports.pop3, &again)?;
            writeln!(
                out,
                "* {}",
                l(
                    "quota lifted: a new message reaches andre.",
                    "quota levé : un nouveau message parvient à andre."
                )
            )?;
            let observed = why
                .lines()
                .find(|x| x.contains("552"))
                .unwrap_or_default()
                .trim()
                .to_owned();
            Ok(Outcome {
                observed,
                why,
                undone,
            })
        }
        Exercise::Loop => {
            writeln!(
                out,
                "{}",
                l(
                    "Lab: a message with 60 Received lines arrives on lyon's port 25. RFC 5321 §6.3: it is looping, 554 5.4.6.",
                    "TP : un message avec 60 lignes Received arrive sur le port 25 de lyon. RFC 5321 §6.3 : il tourne en boucle, 554 5.4.6.",
                )
            )?;
            let mut smtp = Smtp::connect(&format!("{lyon}:{}", ports.smtp))?;
            for cmd in [
                "EHLO loop.example",
                "MAIL FROM:<x@loop.example>",
                "RCPT TO:<andre@lyon.test>",
                "DATA",
            ] {
                let reply = smtp.say(cmd)?;
                writeln!(out, "C: {cmd}\nS: {reply}")?;
            }
            let mut body = String::new();
            for i in 0..60 {
                body.push_str(&format!("Received: from hop{i}.loop.example by hop{}.loop.example; Wed, 2 Dec 2026 07:00:00 +0000\r\n", i + 1));
            }
            body.push_str(&format!("Subject: {tag}\r\n\r\nround and round\r\n."));
            let refused = smtp.say(&body)?;
            writeln!(out, "C: (60 × Received: …)\nC: .\nS: {refused}")?;
            smtp.say("QUIT")?;
            Ok(Outcome {
                observed: refused,
                why: String::new(),
                undone: true,
            })
        }
    }
}

fn mua(stack: &Stack, password: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(stack.spec.bin_dir.join("facteur-mua"))
        .args(args)
        .env("FACTEUR_PASSWORD", password)
        .env("FACTEUR_CA", stack.spec.ca())
        .env("FACTEUR_TRANSCRIPTS", stack.spec.var.join("transcripts"))
        .output()
        .context("running facteur-mua")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("facteur-mua {}: {text}", args.first().unwrap_or(&""));
    }
    Ok(text)
}

fn send(
    stack: &Stack,
    from: &str,
    to: &str,
    subject: &str,
    password: Option<&str>,
) -> anyhow::Result<String> {
    let paris = stack
        .spec
        .domain("paris.test")
        .map(|d| d.ip)
        .context("no paris.test")?;
    let server = format!("{paris}:{}", stack.spec.ports.submission);
    let pw = password.map_or_else(crate::stack::dev_password, str::to_owned);
    mua(
        stack,
        &pw,
        &[
            "send",
            "--server",
            &server,
            "--user",
            from,
            "--from",
            from,
            "--to",
            to,
            "--subject",
            subject,
            "--body",
            "lab",
        ],
    )
}

/// `why TARGET` until its text has `words`.
fn why_until(stack: &Stack, target: &str, lang: Lang, words: &str) -> anyhow::Result<String> {
    let lang = if lang == Lang::Fr { "fr" } else { "en" };
    let mut last = String::new();
    let ok = Stack::wait_until(WAIT, || {
        last = mua(stack, "", &["why", target, "--lang", lang]).unwrap_or_else(|e| e.to_string());
        last.contains(words)
    });
    if !ok {
        bail!("why {target} never said {words:?}:\n{last}");
    }
    Ok(last)
}

/// `facteur-mta queue VERB` against paris's running MTA.
fn queue(stack: &Stack, verb: &str) -> anyhow::Result<String> {
    let config = stack.spec.config_path("paris.test", "mta");
    let out = Command::new(stack.spec.bin_dir.join("facteur-mta"))
        .arg("--config")
        .arg(&config)
        .args(["queue", verb])
        .output()
        .context("running facteur-mta queue")?;
    if !out.status.success() {
        bail!(
            "facteur-mta queue {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `user`'s newest message (POP3) comes to have `words`, within [`WAIT`].
fn arrives(stack: &Stack, user: &str, ip: &str, port: u16, words: &str) -> anyhow::Result<bool> {
    let server = format!("{ip}:{port}");
    let pw = crate::stack::dev_password();
    let mut last = String::new();
    let ok = Stack::wait_until(WAIT, || {
        last = mua(
            stack,
            &pw,
            &["fetch", "--pop3", &server, "--user", user, "--last"],
        )
        .unwrap_or_default();
        last.contains(words)
    });
    if !ok {
        bail!("{user} never got {words:?}; newest message:\n{last}");
    }
    Ok(true)
}

/// What the dev DNS says to `MX lyon.test` (dig, when installed).
fn dig_mx(stack: &Stack) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", stack.spec.dns_ip))
        .args([
            "-p",
            &stack.spec.ports.dns.to_string(),
            "+noall",
            "+comments",
            "+answer",
            "MX",
            "lyon.test",
        ])
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.contains("status:") || (!l.starts_with(';') && !l.trim().is_empty()))
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("(dig: {e})"),
    }
}

/// The queue ID in `… queued as ID`.
fn queued_as(text: &str) -> Option<String> {
    text.split("queued as ")
        .nth(1)?
        .split_whitespace()
        .next()
        .map(str::to_owned)
}

/// A bare SMTP client for the hostile parts (no TLS: port 25 between MTAs).
struct Smtp {
    conn: BufReader<TcpStream>,
}

impl Smtp {
    fn connect(addr: &str) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut s = Self {
            conn: BufReader::new(tcp),
        };
        s.reply()?;
        Ok(s)
    }

    fn say(&mut self, line: &str) -> anyhow::Result<String> {
        self.conn
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }

    /// The last line of the reply.
    fn reply(&mut self) -> anyhow::Result<String> {
        loop {
            let mut line = String::new();
            if self.conn.read_line(&mut line)? == 0 {
                bail!("the server closed the connection");
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(line.trim_end().to_owned());
            }
        }
    }
}
