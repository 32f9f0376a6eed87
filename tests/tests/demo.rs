//! `cargo xtask demo`'s scenario on a fresh stack, in English and in French: it
//! runs to the end, shows the 8 steps with the real dialogues (passwords
//! masked), and what its transcripts say matches what the agents logged.

use std::process::Command;

use facteur_tests::demo::{Lang, Outcome, html, run};
use facteur_tests::{Stack, StackSpec};

fn demo(stack: &Stack, lang: Lang) -> (String, Outcome) {
    let mut out = Vec::new();
    let mut pauses = 0;
    let outcome = run(&stack.spec, lang, &mut out, &mut || pauses += 1)
        .unwrap_or_else(|e| panic!("demo {lang:?}: {e:#}\n{}", stack.all_logs()));
    assert_eq!(pauses, 7, "one pause between each of the 8 steps");
    (String::from_utf8(out).expect("UTF-8"), outcome)
}

fn check_against_logs(stack: &Stack, text: &str, o: &Outcome) {
    // No secret on show: the dev password is a plain word ("facteur", also the
    // agents' name), so look where it would be.
    let password = facteur_tests::stack::dev_password();
    for leak in [
        format!("PASS {password}"),
        format!("LOGIN andre@lyon.test {password}"),
        format!("LOGIN andre@lyon.test \"{password}\""),
    ] {
        assert!(!text.contains(&leak), "{leak:?} shown:\n{text}");
    }
    for line in text.lines().filter(|l| l.contains("C: AUTH PLAIN")) {
        assert!(line.trim_end().ends_with("AUTH PLAIN ********"), "{line}");
    }
    // The dialogues really crossed: submission with AUTH, the DNS answer, the
    // MTA-to-MTA dialogue, POP3 and IMAP logins, each masked.
    for needle in [
        "C: AUTH PLAIN ********",
        "DNS ? MX lyon.test",
        "DNS ! mail.lyon.test",
        "C: MAIL FROM:<pierre@paris.test>",
        "C: PASS ********",
        "LOGIN andre@lyon.test ********",
        &format!("Message-ID: {}", o.message_id),
        &format!("queued as {}", o.paris_queue_id),
        &format!("queued as {}", o.lyon_queue_id),
        &format!("UID {}", o.uid),
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    // What the transcripts say is what the agents logged.
    let msa = stack.log("paris.test", "msa");
    let paris_mta = stack.log("paris.test", "mta");
    let lyon_mta = stack.log("lyon.test", "mta");
    let lyon_mda = stack.log("lyon.test", "mda");
    let mid = format!("message_id={}", o.message_id);
    assert!(
        msa.lines()
            .any(|l| l.contains("submitted") && l.contains(&mid)),
        "{msa}"
    );
    assert!(
        paris_mta
            .lines()
            .any(|l| l.contains("queued from submission")
                && l.contains(&format!("id={}", o.paris_queue_id))
                && l.contains(&mid)),
        "{paris_mta}"
    );
    assert!(
        paris_mta
            .lines()
            .any(|l| l.contains("delivered")
                && l.contains(&format!("queued as {}", o.lyon_queue_id))),
        "{paris_mta}"
    );
    assert!(
        lyon_mta.lines().any(|l| l.contains("queued from SMTP")
            && l.contains(&format!("id={}", o.lyon_queue_id))
            && l.contains(&mid)),
        "{lyon_mta}"
    );
    assert!(
        lyon_mda.lines().any(|l| l.contains("filed")
            && l.contains(&mid)
            && l.contains(&format!("uid={}", o.uid))),
        "{lyon_mda}"
    );
    // Every record the demo showed is about this message.
    assert_eq!(o.records.len(), 7);
    for r in &o.records {
        assert!(r.message_ids.contains(&o.message_id), "{r:?}");
    }
}

#[test]
fn the_demo_walks_the_8_steps_in_english_and_in_french_from_the_agents_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 120);
    spec.prepare().expect("prepare var/");
    let stack = spec.start().expect("start the stack");

    let (en, o_en) = demo(&stack, Lang::En);
    for n in 1..=8 {
        assert!(en.contains(&format!("Step {n}/8")), "step {n}:\n{en}");
    }
    assert!(
        en.contains("submission agent") && en.contains("delivery agent"),
        "{en}"
    );
    check_against_logs(&stack, &en, &o_en);
    check_page_in_chromium(dir.path(), &o_en);

    let (fr, o_fr) = demo(&stack, Lang::Fr);
    for n in 1..=8 {
        assert!(fr.contains(&format!("Étape {n}/8")), "étape {n}:\n{fr}");
    }
    for word in [
        "agent de soumission",
        "agent de transfert",
        "facteur",
        "boîte aux lettres",
        "relève",
    ] {
        assert!(fr.contains(word), "{word:?} missing:\n{fr}");
    }
    assert!(
        !fr.contains("Step "),
        "English left in the French demo:\n{fr}"
    );
    check_against_logs(&stack, &fr, &o_fr);
    assert_ne!(o_en.message_id, o_fr.message_id);
}

/// The page of the route, rendered by headless Chromium from Debian: a
/// screenshot is made, and the DOM Chromium built has the 8 steps, both domains,
/// the hops, and each hop's envelope and header.
fn check_page_in_chromium(dir: &std::path::Path, o: &Outcome) {
    let page = dir.join("route.html");
    std::fs::write(&page, html(o, Lang::En)).expect("write the page");
    let url = format!("file://{}", page.display());
    let chromium = |args: &[&str]| {
        let out = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,2400",
            ])
            .args(args)
            .arg(&url)
            .output()
            .expect("run chromium (Debian package chromium; cargo xtask test installs it)");
        assert!(
            out.status.success(),
            "chromium {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shot = dir.join("route.png");
    chromium(&[&format!("--screenshot={}", shot.display())]);
    let png = std::fs::read(&shot).expect("chromium wrote no screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    let dom = chromium(&["--dump-dom"]);
    for n in 1..=8 {
        assert!(
            dom.contains(&format!("data-step=\"{n}\"")),
            "step {n} missing from the DOM"
        );
    }
    for d in ["paris.test", "lyon.test"] {
        assert!(dom.contains(&format!("data-domain=\"{d}\"")), "{d} missing");
    }
    for hop in [2, 3, 4, 6, 7] {
        assert!(
            dom.contains(&format!("data-hop=\"{hop}\"")),
            "hop {hop} missing"
        );
    }
    // The envelope beside the header: the submission's header has no
    // Received line yet, the one andre reads has one per MTA.
    assert!(
        dom.contains("<th>MAIL FROM</th><td>&lt;pierre@paris.test&gt;</td>"),
        "{dom}"
    );
    assert!(
        dom.contains("<th>RCPT TO</th><td>&lt;andre@lyon.test&gt;</td>"),
        "{dom}"
    );
    let step = |n: usize| {
        let start = dom.find(&format!("id=\"step-{n}\"")).expect("step section");
        let end = dom[start..]
            .find("</section>")
            .map_or(dom.len(), |e| start + e);
        dom[start..end].to_owned()
    };
    let composed = step(1);
    assert!(composed.contains("Subject: Hello Andre"), "{composed}");
    assert!(!composed.contains("Received:"), "{composed}");
    let read = step(8);
    assert!(read.matches("Received:").count() >= 2, "{read}");
    assert!(read.contains("Return-Path:"), "{read}");
    assert!(dom.contains(&o.message_id.replace('<', "&lt;").replace('>', "&gt;")));
}
