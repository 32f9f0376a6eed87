//! The passwd-file parser, each scheme, and reloading.

use super::*;

/// `doveadm pw -s SHA512-CRYPT -p facteur` (Dovecot 2.3).
const DOVEADM_SHA512: &str = "{SHA512-CRYPT}$6$ouxrvVq37nrxNY4L$F0VE.O4/SW/s/KvAonaJA5MLjP8VBhXTDYBnvESN6eNrVjXd0MDeZjF3ygY0JICj/DNrbTfAixZ3dKHd54qmz/";
/// `doveadm pw -s SHA256-CRYPT -p facteur`.
const DOVEADM_SHA256: &str =
    "{SHA256-CRYPT}$5$tUF1JEhER9.2SGKy$vNMvl2sdm85qtvI0wc9L/D8nTwfh6OPyZbzVtiq/rE3";
/// `doveadm pw -s ARGON2ID -p facteur`.
const DOVEADM_ARGON2ID: &str = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$DYlycDtbcMS0HuGeq7Hsrg$dfhHBuy3LPkh+udszcG+dd98AIZSND0LjkRPYDu64j4";
/// `doveadm pw -s ARGON2I -p facteur`.
const DOVEADM_ARGON2I: &str = "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$7KE9Dmk1k0Wpv8g008CLIg$YkwHvP3qxubElTeWjcW9dMGYph9GP+/MwDJbiZEwSkM";

fn hash(field: &str) -> Hash {
    Hash::parse(field).unwrap()
}

#[test]
fn doveadm_vectors_verify_facteur_and_nothing_else() {
    for field in [
        DOVEADM_SHA512,
        DOVEADM_SHA256,
        DOVEADM_ARGON2ID,
        DOVEADM_ARGON2I,
    ] {
        let h = hash(field);
        assert!(h.verify("facteur"), "{field}");
        assert!(!h.verify("Facteur"), "{field}");
        assert!(!h.verify(""), "{field}");
    }
}

#[test]
fn a_generated_sha512_crypt_hash_verifies_with_and_without_its_scheme() {
    let params = sha_crypt::Sha512Params::new(5000).unwrap();
    let crypt = sha_crypt::sha512_simple("s3cret", &params).unwrap();
    assert!(crypt.starts_with("$6$"));
    for field in [format!("{{SHA512-CRYPT}}{crypt}"), crypt.clone()] {
        let h = hash(&field);
        assert!(matches!(h, Hash::Sha512Crypt(_)));
        assert!(h.verify("s3cret"));
        assert!(!h.verify("s3cre"));
    }
    let params = sha_crypt::Sha256Params::new(5000).unwrap();
    let crypt = sha_crypt::sha256_simple("s3cret", &params).unwrap();
    let h = hash(&crypt);
    assert!(matches!(h, Hash::Sha256Crypt(_)));
    assert!(h.verify("s3cret") && !h.verify("nope"));
}

#[test]
fn plain_and_cleartext_compare_exactly() {
    for field in ["{PLAIN}pass:word", "{cleartext}pass:word"] {
        let h = hash(field);
        assert!(h.verify("pass:word"));
        assert!(!h.verify("pass:wor"));
        assert!(!h.verify("pass:word "));
    }
    assert!(!hash("").verify(""), "an empty field lets nobody in");
}

#[test]
fn unsupported_schemes_and_crypt_forms_are_refused_by_name() {
    for (field, says) in [
        ("{MD5-CRYPT}$1$abc$def", "{MD5-CRYPT}"),
        ("{SSHA}abcd", "{SSHA}"),
        ("$1$abc$def", "only $6$"),
        ("$2y$05$abcdefghijklmnopqrstuv", "only $6$"),
        ("abDES0123456", "only $6$"),
        ("{CRYPT}$2b$10$x", "only $6$"),
        ("{SHA512-CRYPT}$5$abc$def", "$6$"),
        ("{ARGON2ID}notphc", "PHC"),
        (
            "{ARGON2I}$argon2id$v=19$m=65536,t=3,p=1$DYlycDtbcMS0HuGeq7Hsrg$dfhHBuy3LPkh+udszcG+dd98AIZSND0LjkRPYDu64j4",
            "argon2id",
        ),
    ] {
        let err = Hash::parse(field).unwrap_err();
        assert!(err.contains(says), "{field}: {err}");
    }
}

#[test]
fn the_file_format_with_comments_blanks_extra_fields_and_crlf() {
    let text = format!(
        "# users\n\n   \npierre@paris.test:{DOVEADM_SHA512}:1000:1000::/home/pierre::userdb_quota_rule=*:storage=1G\r\n\
         andre@lyon.test:{{PLAIN}}x\n  # indented comment\nlocal:{{PLAIN}}y::\nnopass@x.test:\n"
    );
    let entries = parse(&text).unwrap();
    let users: Vec<&str> = entries.iter().map(|e| e.user.as_str()).collect();
    assert_eq!(
        users,
        [
            "pierre@paris.test",
            "andre@lyon.test",
            "local",
            "nopass@x.test"
        ]
    );
    assert!(matches!(entries[0].hash, Hash::Sha512Crypt(_)));
    assert_eq!(entries[1].hash, Hash::Plain("x".into()));
    assert_eq!(entries[2].hash, Hash::Plain("y".into()));
    assert_eq!(entries[3].hash, Hash::Disabled);
}

#[test]
fn a_bad_line_names_its_number() {
    let err = parse("a@x:{PLAIN}p\n\n:{PLAIN}q\n").unwrap_err();
    assert_eq!(err.0, 3);
    let err = parse("a@x:{PLAIN}p\nb@x:{NTLM}abc\n").unwrap_err();
    assert_eq!(err.0, 2);
    assert!(err.1.contains("NTLM"));
}

#[test]
fn hashes_never_show_in_debug_output() {
    let entries = parse("a@x:{PLAIN}hunter2\n").unwrap();
    assert!(!format!("{entries:?}").contains("hunter2"));
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn lookup_matches_the_domain_in_any_case_and_the_local_part_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    write(
        &path,
        &format!("Pierre@Paris.Test:{DOVEADM_SHA512}\nandre@lyon.test:{DOVEADM_ARGON2ID}\n"),
    );
    let file = PasswdFile::open(&path).await.unwrap();
    let ok = Some("Pierre@Paris.Test".to_owned());
    assert_eq!(
        file.verify("Pierre@paris.test", "facteur").await.unwrap(),
        ok
    );
    assert_eq!(
        file.verify("Pierre@PARIS.TEST", "facteur").await.unwrap(),
        ok
    );
    assert_eq!(
        file.verify("pierre@paris.test", "facteur").await.unwrap(),
        None
    );
    assert_eq!(
        file.verify("Pierre@paris.test", "wrong").await.unwrap(),
        None
    );
    assert_eq!(
        file.verify("andre@LYON.test", "facteur").await.unwrap(),
        Some("andre@lyon.test".to_owned())
    );
    assert_eq!(
        file.verify("nobody@lyon.test", "facteur").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn the_file_is_reread_when_it_changes_and_a_bad_version_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    write(&path, "a@x.test:{PLAIN}one\n");
    let file = PasswdFile::open(&path).await.unwrap();
    assert!(file.verify("a@x.test", "one").await.unwrap().is_some());

    // A different size is a change even within the mtime's resolution.
    write(&path, "a@x.test:{PLAIN}two!\nb@x.test:{PLAIN}bee\n");
    assert!(file.verify("a@x.test", "one").await.unwrap().is_none());
    assert!(file.verify("a@x.test", "two!").await.unwrap().is_some());
    assert!(file.verify("b@x.test", "bee").await.unwrap().is_some());

    write(&path, "a@x.test:{ROT13}bar\n");
    assert!(file.verify("a@x.test", "two!").await.unwrap().is_some());

    std::fs::remove_file(&path).unwrap();
    assert!(file.verify("b@x.test", "bee").await.unwrap().is_some());
}

#[tokio::test]
async fn a_missing_or_invalid_file_fails_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwd");
    assert!(matches!(
        PasswdFile::open(&path).await,
        Err(PasswdError::Io { .. })
    ));
    write(&path, "a@x.test:$1$md5$hash\n");
    let err = PasswdFile::open(&path).await.unwrap_err().to_string();
    assert!(err.contains(":1:") && err.contains("$6$"), "{err}");
}
