//! `facteur-mda user add|passwd|del|list`, run as an operator would on a fresh
//! store: passwords from the environment or standard input, errors for duplicates
//! and missing users. (That a changed password verifies is the accounts unit tests'.)
//! Also the config layering through the real binary: environment, then `--set`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin(name: &str) -> PathBuf {
    facteur_tests::bin_dir().join(name)
}

fn mda(data: &Path, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(bin("facteur-mda"));
    cmd.arg("--set")
        .arg(format!("data_dir={:?}", data.display().to_string()))
        .args(args);
    if let Some(p) = password {
        cmd.env("FACTEUR_PASSWORD", p);
    } else {
        cmd.env_remove("FACTEUR_PASSWORD");
    }
    cmd.output().expect("run facteur-mda")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn user_commands_add_list_change_and_delete_accounts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("mda");

    let o = mda(&data, &["user", "add", "Marie@Paris.test"], Some("secret1"));
    assert!(o.status.success(), "{}", text(&o));
    let o = mda(&data, &["user", "add", "marie@paris.test"], Some("x"));
    assert!(!o.status.success(), "adding the same user twice must fail");

    let o = mda(&data, &["user", "list"], None);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "marie@paris.test"
    );

    // The password can also come from standard input, as for a script.
    let mut child = Command::new(bin("facteur-mda"))
        .arg("--set")
        .arg(format!("data_dir={:?}", data.display().to_string()))
        .args(["user", "passwd", "marie@paris.test"])
        .env_remove("FACTEUR_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"secret2\n").expect("write password");
    }
    let o = child.wait_with_output().expect("wait");
    assert!(o.status.success(), "{}", text(&o));

    let o = mda(&data, &["user", "passwd", "nobody@paris.test"], Some("x"));
    assert!(
        !o.status.success(),
        "changing a missing user's password must fail"
    );

    let o = mda(&data, &["user", "del", "marie@paris.test"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = mda(&data, &["user", "list"], None);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");
}

#[test]
fn config_comes_from_the_environment_and_a_flag_wins_over_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let by_env = dir.path().join("env");
    let by_flag = dir.path().join("flag");
    let run = |args: &[&str], flag: Option<&Path>| {
        let mut cmd = Command::new(bin("facteur-mda"));
        cmd.env("FACTEUR_MDA__DATA_DIR", &by_env)
            .env("FACTEUR_PASSWORD", "pw");
        if let Some(dir) = flag {
            cmd.arg("--set")
                .arg(format!("data_dir={:?}", dir.display().to_string()));
        }
        cmd.args(args).output().expect("run facteur-mda")
    };
    let o = run(&["user", "add", "env@paris.test"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["user", "add", "flag@paris.test"], Some(&by_flag));
    assert!(o.status.success(), "{}", text(&o));
    // Each store holds only the account added with its source of config.
    let o = run(&["user", "list"], None);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "env@paris.test");
    let o = run(&["user", "list"], Some(&by_flag));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "flag@paris.test");
}
