//! `cargo xtask interop`: the swap matrix of docs/INTEROP.md — each row is the
//! tests named `row<N>_…` in the facteur-tests package (real Postfix and
//! Dovecot started by the tests themselves), run row by row and printed as a
//! table, one line per row starting `PASS` or `FAIL`.

use std::process::Stdio;
use std::time::Instant;

use anyhow::bail;

/// One row: its number, the agents swapped, what crosses between them.
struct Row {
    n: u8,
    swapped: &'static str,
    wire: &'static str,
}

const ROWS: &[Row] = &[
    Row {
        n: 1,
        swapped: "Postfix MTA (paris) <-> facteur MTA (lyon), both directions",
        wire: "SMTP, STARTTLS",
    },
    Row {
        n: 2,
        swapped: "facteur MSA -> Postfix next hop -> facteur MTA",
        wire: "SMTP",
    },
    Row {
        n: 3,
        swapped: "Postfix submission relays through the facteur MTA",
        wire: "SMTP, trusted network",
    },
    Row {
        n: 4,
        swapped: "Postfix -> facteur MDA; facteur MAA serves it",
        wire: "LMTP; IMAP, POP3",
    },
    Row {
        n: 5,
        swapped: "facteur MTA -> Dovecot; Dovecot serves it",
        wire: "LMTP; IMAP, POP3",
    },
    Row {
        n: 6,
        swapped: "facteur MDA writes Maildir; Dovecot serves it",
        wire: "Maildir++; IMAP",
    },
    Row {
        n: 7,
        swapped: "same client scripts: facteur MAA vs Dovecot",
        wire: "IMAP, POP3",
    },
    Row {
        n: 8,
        swapped: "Postfix -> facteur MTA+MDA -> Dovecot (Maildir), and back",
        wire: "SMTP, Maildir++, IMAP",
    },
];

#[derive(clap::Args, Debug, Default)]
pub(crate) struct Args {
    /// Run only these rows (comma-separated numbers).
    #[arg(long, value_delimiter = ',')]
    pub(crate) rows: Vec<u8>,
    /// Skip building the binaries and the tests.
    #[arg(long)]
    pub(crate) no_build: bool,
}

pub(crate) fn main(args: &Args) -> anyhow::Result<()> {
    if !args.no_build {
        crate::build_bins()?;
        crate::run(crate::cargo().args(["nextest", "run", "-p", "facteur-tests", "--no-run"]))?;
    }
    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|r| args.rows.is_empty() || args.rows.contains(&r.n))
        .collect();
    let mut results = Vec::new();
    for row in &rows {
        eprintln!("==> row {}: {} ({})", row.n, row.swapped, row.wire);
        let started = Instant::now();
        let status = crate::cargo()
            .args(["nextest", "run", "-p", "facteur-tests", "--no-fail-fast"])
            .args(["--failure-output", "final", "-E"])
            .arg(format!("test(/^row{}_/)", row.n))
            .stdin(Stdio::null())
            .status()?;
        // nextest exits 4 when the filter matched no test: a missing row fails.
        results.push((row, status.success(), started.elapsed().as_secs_f64()));
    }
    println!(
        "\n{:<5} {:>3}  {:<62} {:<22} {:>7}",
        "", "row", "agents swapped", "wire", "seconds"
    );
    for (row, ok, secs) in &results {
        println!(
            "{:<5} {:>3}  {:<62} {:<22} {:>7.1}",
            if *ok { "PASS" } else { "FAIL" },
            row.n,
            row.swapped,
            row.wire,
            secs
        );
    }
    let failed = results.iter().filter(|(_, ok, _)| !ok).count();
    if failed > 0 {
        bail!("{failed} of {} rows failed", results.len());
    }
    Ok(())
}
