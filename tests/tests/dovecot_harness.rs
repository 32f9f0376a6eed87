//! The Dovecot harness of the interop tests (`tests/src/dovecot.rs`) on net
//! 127.73.0.x: an instance listens on its own address and ports, and no process
//! of it outlives its owner, even when the owner panics.

use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;

use facteur_tests::{DovecotSpec, StackSpec};

#[test]
fn dovecot_listens_and_leaves_no_process_behind_a_panicking_test() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = StackSpec::dev(dir.path().join("var"), facteur_tests::bin_dir(), 73);
    let ip = Ipv4Addr::new(127, 73, 0, 9);
    let spec = DovecotSpec::new(dir.path().join("dovecot"), ip, &stack, "dovecot.test");
    let ports = stack.ports.clone();
    let all = [ports.imap, ports.imaps, ports.pop3, ports.pop3s, ports.lmtp];
    let pids = std::thread::spawn(move || {
        let dovecot = spec.start().expect("start Dovecot");
        for port in all {
            assert!(
                TcpStream::connect((ip, port)).is_ok(),
                "Dovecot listens on {ip}:{port}\n{}",
                dovecot.logs()
            );
        }
        let pids = dovecot.processes();
        let owner = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _held = dovecot;
            panic!("a test fails while Dovecot runs");
        }));
        assert!(owner.is_err(), "the owner panicked");
        pids
    })
    .join()
    .expect("the thread itself ends normally");
    assert!(
        pids.len() > 1,
        "the master and its services were running: {pids:?}"
    );
    let left: Vec<&u32> = pids
        .iter()
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    assert!(left.is_empty(), "Dovecot processes left behind: {left:?}");
    for port in all {
        assert!(
            TcpStream::connect((ip, port)).is_err(),
            "nothing listens on {ip}:{port} any more"
        );
    }
}
