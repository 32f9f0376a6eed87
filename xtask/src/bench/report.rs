//! The bench's figures: each one's samples per side, its median, and the
//! table and `RATIO` lines printed at the end.

use std::fmt::Write as _;

/// A side that does not offer what a workload measures (no IDLE in its
/// CAPABILITY, SEARCH SUBJECT refused as not implemented): its figure is shown
/// as `n/a` with what the server said, and is not a failure of the bench. A
/// workload returns it only when the server says so plainly; anything else
/// going wrong is a failure.
#[derive(Debug)]
pub(crate) struct Unsupported(pub(crate) String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "server said: {}", self.0)
    }
}

impl std::error::Error for Unsupported {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Facteur,
    Reference,
}

impl Side {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Side::Facteur => "facteur",
            Side::Reference => "reference",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Better {
    Higher,
    Lower,
}

/// One measured figure: samples for each side (one per rep), or the error that
/// stopped a side from measuring it.
#[derive(Debug)]
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) unit: &'static str,
    pub(crate) better: Better,
    pub(crate) facteur: Vec<f64>,
    pub(crate) reference: Vec<f64>,
    pub(crate) errors: Vec<String>,
    /// Sides that do not offer the feature, with what the server said.
    pub(crate) unsupported: Vec<(Side, String)>,
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) figures: Vec<Figure>,
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let mid = s.len() / 2;
    Some(if s.len() % 2 == 1 {
        s[mid]
    } else {
        f64::midpoint(s[mid - 1], s[mid])
    })
}

/// The `q`-quantile (0..=1) of samples, nearest rank.
pub(crate) fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = (q * s.len() as f64).ceil() as usize;
    Some(s[rank.clamp(1, s.len()) - 1])
}

fn show(v: Option<f64>) -> String {
    match v {
        None => "nan".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.2}"),
        Some(v) => format!("{v:.4}"),
    }
}

impl Report {
    fn figure(&mut self, name: &str, unit: &'static str, better: Better) -> &mut Figure {
        if let Some(i) = self.figures.iter().position(|f| f.name == name) {
            return &mut self.figures[i];
        }
        self.figures.push(Figure {
            name: name.to_owned(),
            unit,
            better,
            facteur: Vec::new(),
            reference: Vec::new(),
            errors: Vec::new(),
            unsupported: Vec::new(),
        });
        let last = self.figures.len() - 1;
        &mut self.figures[last]
    }

    /// Record one sample (or the failure) of a figure for one side, with a
    /// progress line on stderr.
    pub(crate) fn record(
        &mut self,
        name: &str,
        unit: &'static str,
        better: Better,
        side: Side,
        value: anyhow::Result<f64>,
    ) {
        let f = self.figure(name, unit, better);
        match value {
            Ok(v) => {
                eprintln!("bench:   {name} {}: {} {unit}", side.name(), show(Some(v)));
                match side {
                    Side::Facteur => f.facteur.push(v),
                    Side::Reference => f.reference.push(v),
                }
            }
            Err(e) if e.downcast_ref::<Unsupported>().is_some() => {
                eprintln!("bench:   {name} {}: n/a ({e:#})", side.name());
                if !f.unsupported.iter().any(|(s, _)| *s == side) {
                    f.unsupported.push((side, format!("{e:#}")));
                }
            }
            Err(e) => {
                eprintln!("bench:   {name} {}: FAILED: {e:#}", side.name());
                f.errors.push(format!("{}: {e:#}", side.name()));
            }
        }
    }

    /// Did any figure fail on either side?
    pub(crate) fn failed(&self) -> bool {
        self.figures.iter().any(|f| !f.errors.is_empty())
    }

    /// The table, then one `RATIO` line per figure (medians of the reps).
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<44} {:>8} {:>12} {:>12} {:>8}  better",
            "figure", "unit", "facteur", "reference", "ratio"
        );
        let mut lines = String::new();
        for f in &self.figures {
            let (a, b) = (median(&f.facteur), median(&f.reference));
            let ratio = match (a, b) {
                (Some(a), Some(b)) if b != 0.0 => Some(a / b),
                _ => None,
            };
            let better = match f.better {
                Better::Higher => "higher",
                Better::Lower => "lower",
            };
            let n_a = |side: Side| f.unsupported.iter().any(|(s, _)| *s == side);
            let cell = |side: Side, v: Option<f64>| {
                if v.is_none() && n_a(side) {
                    "n/a".to_owned()
                } else {
                    show(v)
                }
            };
            let (fa, fb) = (cell(Side::Facteur, a), cell(Side::Reference, b));
            let _ = writeln!(
                out,
                "{:<44} {:>8} {:>12} {:>12} {:>8}  {better}",
                f.name,
                f.unit,
                fa,
                fb,
                ratio.map_or_else(|| "nan".into(), |r| format!("{r:.3}")),
            );
            for (side, said) in &f.unsupported {
                let _ = writeln!(out, "    n/a on {} ({said})", side.name());
            }
            for e in &f.errors {
                let _ = writeln!(out, "    failed: {e}");
            }
            let _ = writeln!(
                lines,
                "RATIO {} facteur={} reference={} ratio={} better={better}",
                f.name,
                fa,
                fb,
                ratio.map_or_else(|| "nan".into(), |r| format!("{r:.3}")),
            );
        }
        out.push('\n');
        out.push_str(&lines);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_quantiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), Some(50.0));
        assert_eq!(quantile(&v, 0.99), Some(99.0));
    }

    #[test]
    fn ratio_lines() {
        let mut r = Report::default();
        r.record("x", "msg/s", Better::Higher, Side::Facteur, Ok(50.0));
        r.record("x", "msg/s", Better::Higher, Side::Reference, Ok(100.0));
        r.record(
            "y",
            "ms",
            Better::Lower,
            Side::Facteur,
            Err(anyhow::anyhow!("down")),
        );
        r.record("y", "ms", Better::Lower, Side::Reference, Ok(2.0));
        let text = r.render();
        assert!(
            text.contains("RATIO x facteur=50.00 reference=100.0 ratio=0.500 better=higher"),
            "{text}"
        );
        assert!(
            text.contains("RATIO y facteur=nan reference=2.00 ratio=nan better=lower"),
            "{text}"
        );
        assert!(r.failed());
    }

    #[test]
    fn unsupported_is_shown_and_not_a_failure() {
        let mut r = Report::default();
        let said = Unsupported("b3 BAD IDLE is not supported.".into());
        r.record("z", "ms", Better::Lower, Side::Facteur, Err(said.into()));
        r.record("z", "ms", Better::Lower, Side::Reference, Ok(500.0));
        let text = r.render();
        assert!(
            text.contains("RATIO z facteur=n/a reference=500.0 ratio=nan better=lower"),
            "{text}"
        );
        assert!(
            text.contains("n/a on facteur (server said: b3 BAD IDLE is not supported.)"),
            "{text}"
        );
        assert!(!r.failed());
    }
}
