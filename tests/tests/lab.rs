//! `cargo xtask lab`: every exercise on a real stack gives the outcome the
//! course documents, and its fault is undone (the chain delivers again).

use facteur_tests::StackSpec;
use facteur_tests::demo::Lang;
use facteur_tests::lab::{Exercise, run};

#[test]
fn every_lab_exercise_shows_its_documented_outcome_and_is_undone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spec = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 122);
    spec.prepare().expect("prepare var/");
    let mut stack = spec.start().expect("start the stack");
    for exercise in Exercise::ALL {
        let mut out = Vec::new();
        let o = run(&mut stack, exercise, Lang::En, &mut out)
            .unwrap_or_else(|e| panic!("lab {exercise:?}: {e:#}\n{}", stack.all_logs()));
        let text = String::from_utf8_lossy(&out).into_owned();
        println!("{text}");
        assert!(o.undone, "{exercise:?} not undone:\n{text}");
        match exercise {
            Exercise::MtaDown => {
                assert!(o.observed.contains("Request"), "{text}");
                assert!(o.why.contains("next hop down"), "{text}");
            }
            Exercise::NoMx => {
                assert!(o.observed.contains("DNS !"), "{text}");
                assert!(o.why.contains("MX not found"), "{text}");
                assert!(
                    text.contains("status: REFUSED"),
                    "dig shows lyon.test gone:\n{text}"
                );
                assert!(text.contains("pierre got the bounce"), "{text}");
            }
            Exercise::UnknownUser => {
                assert!(o.observed.contains("550 5.1.1"), "{text}");
                assert!(o.why.contains("unknown user"), "{text}");
            }
            Exercise::Relay => {
                assert!(o.observed.starts_with("554 5.7.1"), "{text}");
                assert!(o.why.contains("relay refused"), "{text}");
            }
            Exercise::WrongPassword => assert!(o.observed.contains("535"), "{text}"),
            Exercise::FullMailbox => {
                assert!(o.observed.contains("552 5.2.2"), "{text}");
                assert!(o.why.contains("mailbox full"), "{text}");
            }
            Exercise::Loop => assert!(o.observed.starts_with("554 5.4.6"), "{text}"),
        }
        assert!(text.contains("RFC "), "{exercise:?} names no RFC:\n{text}");
    }
    // The same in French.
    let mut out = Vec::new();
    let o = run(&mut stack, Exercise::Relay, Lang::Fr, &mut out).expect("lab relay in French");
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("pas de relais ouvert") && o.why.contains("relais refusé"),
        "{text}"
    );
}
