//! The files an agent writes are its own: a private umask (077) for the whole
//! process, as Postfix's daemons run, so the store, the queue's spool, the
//! account hashes and every file sled writes are 0600 in 0700 directories; and
//! [`private_dir`] for the data directories themselves, which may have been
//! made beforehand (by an installer, a test harness) with looser modes.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Set the process umask to 077 (files 0600, directories 0700), or to
/// `FACTEUR_UMASK` (octal) when set: a Maildir tree (`[store] maildir`) read
/// by a Dovecot that runs under another uid needs group or other bits (the
/// better setup runs both under one uid and keeps 077). Call it first thing in
/// `main`, before anything is created.
pub fn private_umask() {
    let mask = std::env::var("FACTEUR_UMASK")
        .ok()
        .and_then(|m| u32::from_str_radix(m.trim(), 8).ok())
        .filter(|m| *m <= 0o777)
        .unwrap_or(0o077);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(mask));
}

/// Create `path` (and its parents) if needed and make it 0700.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_data_directory_made_loose_is_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        super::private_dir(&data).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
