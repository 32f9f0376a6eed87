//! `cargo xtask images`: every container image of the compose deployment, built
//! locally (there is no registry), tag `:dev`.
//!
//! - `facteur/{msa,mta,mda,maa,devdns}`: `FROM scratch` with the release binary at
//!   `/facteur-<agent>`, the shared libraries `ldd` lists and the dynamic loader,
//!   a two-line `/etc/passwd` and `/etc/group` for user 10000 (`facteur`), who
//!   runs the agent and owns `/var/lib/facteur/*` (what a named volume starts from).
//! - `facteur/postfix`, `facteur/dovecot`, `facteur/tools`: a minimal Debian root
//!   (`debootstrap --variant=minbase` from the mirror the machine's own apt
//!   sources name, read at run time), the packages installed in a chroot,
//!   `docker import`ed, then a Dockerfile layer with the entrypoint (`deploy/images/`).
//!
//! An image whose tag exists with the same `facteur.inputs` label (a digest of
//! everything that went into it) is kept as it is.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

/// The facteur images: (image name, binary name).
pub(crate) const AGENTS: &[(&str, &str)] = &[
    ("msa", "facteur-msa"),
    ("mta", "facteur-mta"),
    ("mda", "facteur-mda"),
    ("maa", "facteur-maa"),
    ("devdns", "facteur-devdns"),
];

/// The Debian images: (name, packages installed into the root).
pub(crate) const DEBIAN: &[(&str, &[&str])] = &[
    ("postfix", &["postfix", "ca-certificates"]),
    (
        "dovecot",
        &[
            "dovecot-core",
            "dovecot-imapd",
            "dovecot-pop3d",
            "dovecot-lmtpd",
        ],
    ),
    (
        "tools",
        &[
            "swaks",
            "libnet-ssleay-perl",
            "libio-socket-ssl-perl",
            "curl",
            "ca-certificates",
            "python3",
        ],
    ),
];

/// The user the facteur images run as (no root in a container).
pub(crate) const UID: u32 = 10000;

#[derive(clap::Args, Debug, Default)]
pub(crate) struct Args {
    /// Do not run `cargo build --release` (use the binaries already there).
    #[arg(long)]
    pub no_build: bool,
    /// Rebuild even when an image's inputs are unchanged.
    #[arg(long)]
    pub force: bool,
    /// Only these images (e.g. `--only mta --only tools`); default: all.
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
}

pub(crate) fn main(args: &Args) -> anyhow::Result<()> {
    let started = Instant::now();
    check_docker()?;
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let agents: Vec<_> = AGENTS.iter().filter(|(n, _)| wanted(n)).collect();
    let debian: Vec<_> = DEBIAN.iter().filter(|(n, _)| wanted(n)).collect();
    if !args.no_build && !agents.is_empty() {
        let mut build = crate::cargo();
        build.args(["build", "--release"]);
        for (_, bin) in &agents {
            build.args(["-p", bin]);
        }
        crate::run(build.arg("--bins"))?;
    }
    let work = crate::target_dir()?.join("images");
    std::fs::create_dir_all(&work)?;
    let release = crate::target_dir()?.join("release");
    let total = agents.len() + debian.len();
    let mut step = 0;
    for (name, bin) in agents {
        step += 1;
        eprintln!("==> [{step}/{total}] facteur/{name}:dev");
        agent_image(&work, name, &release.join(bin), args.force)?;
    }
    let mut root = None;
    for (name, packages) in debian {
        step += 1;
        eprintln!("==> [{step}/{total}] facteur/{name}:dev");
        debian_image(&work, &mut root, name, packages, args.force)?;
    }
    eprintln!("==> images ready in {} s:", started.elapsed().as_secs());
    let mut ls = Command::new("docker");
    ls.args([
        "image",
        "ls",
        "--filter",
        "reference=facteur/*:dev",
        "--format",
        "  {{.Repository}}:{{.Tag}}\t{{.Size}}",
    ]);
    crate::run(&mut ls)
}

/// Docker must be there and answering; else a clear error (never a silent pass).
pub(crate) fn check_docker() -> anyhow::Result<()> {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "docker is missing or its daemon does not answer (`docker version` failed): \
             the images and the compose test need Docker (Debian: apt-get install docker.io)"
        );
    }
    Ok(())
}

/// The `facteur.inputs` label of `image`, if the image exists.
fn image_inputs(image: &str) -> Option<String> {
    let out = Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"facteur.inputs\"}}",
            image,
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Is `image` there, built from `digest`? Says so when it is.
fn up_to_date(image: &str, digest: &str, force: bool) -> bool {
    let fresh = !force && image_inputs(image).as_deref() == Some(digest);
    if fresh {
        eprintln!("    {image} is up to date (inputs {})", &digest[..12]);
    }
    fresh
}

/// The files `ldd` says `bin` loads, the dynamic loader included.
fn shared_libraries(bin: &Path) -> anyhow::Result<BTreeSet<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        if text.contains("not a dynamic executable") {
            return Ok(BTreeSet::new());
        }
        bail!("ldd {} failed: {text}", bin.display());
    }
    let mut libs = BTreeSet::new();
    for line in text.lines() {
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.insert(PathBuf::from(p));
        }
        if line.contains("not found") {
            bail!("ldd {}: {line}", bin.display());
        }
    }
    Ok(libs)
}

fn digest_files(hasher: &mut Sha256, files: &[&Path]) -> anyhow::Result<()> {
    for f in files {
        hasher.update(f.to_string_lossy().as_bytes());
        // The mode too: an entrypoint's executable bit is an input.
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(f)?.permissions());
        hasher.update(mode.to_le_bytes());
        hasher.update(std::fs::read(f).with_context(|| format!("reading {}", f.display()))?);
    }
    Ok(())
}

/// `facteur/<name>:dev` FROM scratch around the release binary.
fn agent_image(work: &Path, name: &str, bin: &Path, force: bool) -> anyhow::Result<()> {
    if !bin.exists() {
        bail!(
            "{} is missing: build it (cargo build --release) or drop --no-build",
            bin.display()
        );
    }
    let image = format!("facteur/{name}:dev");
    let libs = shared_libraries(bin)?;
    let exe = format!("facteur-{name}");
    let dockerfile = format!(
        "FROM scratch
COPY root/ /
COPY --chown={UID}:{UID} data/ /var/lib/facteur/
USER {UID}:{UID}
WORKDIR /var/lib/facteur
ENTRYPOINT [\"/{exe}\"]
CMD [\"--config\", \"/etc/facteur/{exe}.toml\"]
"
    );
    let mut hasher = Sha256::new();
    hasher.update(dockerfile.as_bytes());
    let mut inputs: Vec<&Path> = vec![bin];
    inputs.extend(libs.iter().map(PathBuf::as_path));
    digest_files(&mut hasher, &inputs)?;
    let digest = hex::encode(hasher.finalize());
    if up_to_date(&image, &digest, force) {
        return Ok(());
    }
    let ctx = work.join(format!("ctx-{name}"));
    if ctx.exists() {
        std::fs::remove_dir_all(&ctx)?;
    }
    let root = ctx.join("root");
    for dir in ["etc/facteur", "tmp"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    // Two agents' state directories: each image has both (a volume mounted on
    // either starts owned by the agent's user).
    for dir in ["mta", "mda", "mail"] {
        std::fs::create_dir_all(ctx.join("data").join(dir))?;
    }
    std::fs::write(
        root.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/:/nonexistent\nfacteur:x:{UID}:{UID}:facteur:/var/lib/facteur:/nonexistent\n"
        ),
    )?;
    std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\nfacteur:x:{UID}:\n"),
    )?;
    std::fs::copy(bin, root.join(&exe))?;
    for lib in &libs {
        let rel = lib.strip_prefix("/").unwrap_or(lib);
        let dest = root.join(rel);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Follow symlinks: the file itself goes in under the name the loader asks for.
        std::fs::copy(lib, &dest).with_context(|| format!("copying {}", lib.display()))?;
    }
    // Debian's loader path is /lib64/… → /lib/x86_64-linux-gnu/…; both names resolve
    // because every library was copied under the path ldd printed.
    std::fs::write(ctx.join("Dockerfile"), &dockerfile)?;
    docker_build(&ctx, &image, &digest)?;
    let _ = std::fs::remove_dir_all(&ctx);
    Ok(())
}

/// `docker build` of `ctx` as `image`, labelled with its inputs' digest.
fn docker_build(ctx: &Path, image: &str, digest: &str) -> anyhow::Result<()> {
    let mut build = Command::new("docker");
    build
        .args(["build", "--force-rm", "-t", image])
        .args(["--label", &format!("facteur.inputs={digest}")])
        .arg(ctx)
        // The classic builder: buildx is not everywhere, and every step is printed.
        .env("DOCKER_BUILDKIT", "0");
    crate::run(&mut build)
}

/// A Debian mirror as the host's apt sources name it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AptSource {
    pub(crate) uri: String,
    pub(crate) suites: Vec<String>,
    pub(crate) components: Vec<String>,
}

/// The host's Debian codename (`VERSION_CODENAME` of /etc/os-release).
fn codename() -> anyhow::Result<String> {
    let os = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    os.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
        .context("no VERSION_CODENAME in /etc/os-release")
}

/// Parse deb822 `.sources` text: every stanza with `Types: deb`.
pub(crate) fn parse_deb822(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Vec<String> {
            stanza
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
                })
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default()
        };
        let enabled = !field("Enabled").iter().any(|v| v == "no");
        if !enabled || !field("Types").iter().any(|t| t == "deb") {
            continue;
        }
        let (suites, components) = (field("Suites"), field("Components"));
        for uri in field("URIs") {
            out.push(AptSource {
                uri,
                suites: suites.clone(),
                components: components.clone(),
            });
        }
    }
    out
}

/// Parse one-line `sources.list` text: `deb [opts] URI SUITE COMPONENT…`.
pub(crate) fn parse_list(text: &str) -> Vec<AptSource> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']').map_or("", |(_, r)| r),
            None => rest,
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(AptSource {
            uri: uri.to_owned(),
            suites: vec![suite.to_owned()],
            components: words.map(str::to_owned).collect(),
        });
    }
    out
}

/// Every `deb` source of the machine (sources.list.d/*.sources and *.list, sources.list).
fn host_sources() -> anyhow::Result<Vec<AptSource>> {
    let mut out = Vec::new();
    if let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list") {
        out.extend(parse_list(&text));
    }
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            match p.extension().and_then(|e| e.to_str()) {
                Some("sources") => out.extend(parse_deb822(&text)),
                Some("list") => out.extend(parse_list(&text)),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// The sources the images' roots use: the host's, for the host's codename
/// (`bookworm`, `bookworm-updates`, `bookworm-security`), main component only.
/// The first one carrying the codename itself is the debootstrap mirror.
fn debian_sources(codename: &str) -> anyhow::Result<(String, String)> {
    let sources: Vec<AptSource> = host_sources()?
        .into_iter()
        .filter(|s| s.suites.iter().any(|x| x.starts_with(codename)))
        .collect();
    let mirror = sources
        .iter()
        .find(|s| s.suites.iter().any(|x| x == codename))
        .map(|s| s.uri.clone())
        .with_context(|| {
            format!("no apt source for {codename} in /etc/apt/sources.list(.d): no mirror for debootstrap")
        })?;
    let mut list = String::new();
    for s in &sources {
        for suite in &s.suites {
            let _ = writeln!(list, "deb {} {suite} main", s.uri);
        }
    }
    Ok((mirror, list))
}

/// The minbase root (made once, kept under target/images/debian-root).
fn debian_root(work: &Path) -> anyhow::Result<(PathBuf, String)> {
    let codename = codename()?;
    let (mirror, list) = debian_sources(&codename)?;
    let root = work.join(format!("debian-{codename}"));
    let done = root.join(".facteur-debootstrap-done");
    if !done.exists() {
        crate::install_packages(&[("command -v debootstrap", "debootstrap")])?;
        if root.exists() {
            std::fs::remove_dir_all(&root)?;
        }
        eprintln!("    debootstrap --variant=minbase {codename} from {mirror}");
        crate::run(
            Command::new("debootstrap")
                .args(["--variant=minbase", &codename])
                .arg(&root)
                .arg(&mirror),
        )?;
        std::fs::write(root.join("etc/apt/sources.list"), &list)?;
        std::fs::write(&done, "")?;
    }
    Ok((root, list))
}

/// `facteur/<name>:dev`: Debian root + `packages`, then deploy/images/<name>/.
fn debian_image(
    work: &Path,
    root: &mut Option<(PathBuf, String)>,
    name: &str,
    packages: &[&str],
    force: bool,
) -> anyhow::Result<()> {
    let image = format!("facteur/{name}:dev");
    let base_image = format!("facteur/{name}-root:dev");
    let files = crate::root().join("deploy/images").join(name);
    let mut hasher = Sha256::new();
    hasher.update(codename()?.as_bytes());
    hasher.update(packages.join(" ").as_bytes());
    let root_digest = hex::encode(hasher.clone().finalize());
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&files)
        .with_context(|| format!("reading {}", files.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    inputs.sort();
    digest_files(
        &mut hasher,
        &inputs.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    )?;
    let digest = hex::encode(hasher.finalize());
    if up_to_date(&image, &digest, force) {
        return Ok(());
    }
    if !up_to_date(&base_image, &root_digest, force) {
        debian_root_image(work, root, &base_image, &root_digest, name, packages)?;
    }
    let ctx = work.join(format!("ctx-{name}"));
    if ctx.exists() {
        std::fs::remove_dir_all(&ctx)?;
    }
    std::fs::create_dir_all(&ctx)?;
    for f in &inputs {
        if let Some(n) = f.file_name() {
            std::fs::copy(f, ctx.join(n))?;
        }
    }
    let dockerfile = std::fs::read_to_string(ctx.join("Dockerfile"))
        .with_context(|| format!("{}/Dockerfile is missing", files.display()))?;
    if !dockerfile.starts_with(&format!("FROM {base_image}")) {
        bail!(
            "{}/Dockerfile must start with FROM {base_image}",
            files.display()
        );
    }
    docker_build(&ctx, &image, &digest)?;
    let _ = std::fs::remove_dir_all(&ctx);
    Ok(())
}

/// `facteur/<name>-root:dev`: a copy of the minbase root with `packages`
/// installed in a chroot, imported and labelled with `root_digest`.
fn debian_root_image(
    work: &Path,
    root: &mut Option<(PathBuf, String)>,
    base_image: &str,
    root_digest: &str,
    name: &str,
    packages: &[&str],
) -> anyhow::Result<()> {
    let (base, _) = match root {
        Some(r) => r.clone(),
        None => root.insert(debian_root(work)?).clone(),
    };
    let chroot = work.join(format!("root-{name}"));
    if chroot.exists() {
        std::fs::remove_dir_all(&chroot)?;
    }
    crate::run(Command::new("cp").arg("-a").arg(&base).arg(&chroot))?;
    let _ = std::fs::remove_file(chroot.join(".facteur-debootstrap-done"));
    std::fs::copy("/etc/resolv.conf", chroot.join("etc/resolv.conf"))
        .context("copying /etc/resolv.conf into the chroot")?;
    // No service starts inside the chroot (postinst scripts ask policy-rc.d).
    let policy = chroot.join("usr/sbin/policy-rc.d");
    std::fs::write(&policy, "#!/bin/sh\nexit 101\n")?;
    crate::run(Command::new("chmod").arg("755").arg(&policy))?;
    let in_chroot = |args: &[&str]| {
        let mut c = Command::new("chroot");
        c.arg(&chroot)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null());
        c
    };
    crate::run(&mut in_chroot(&["apt-get", "update", "-q"]))?;
    let mut install = vec!["apt-get", "install", "-y", "-q", "--no-install-recommends"];
    install.extend_from_slice(packages);
    crate::run(&mut in_chroot(&install))?;
    crate::run(&mut in_chroot(&["apt-get", "clean"]))?;
    std::fs::remove_file(&policy)?;
    for dir in [
        "var/lib/apt/lists",
        "var/cache/apt",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
    ] {
        let d = chroot.join(dir);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
            std::fs::create_dir_all(&d)?;
        }
    }
    std::fs::write(chroot.join("etc/resolv.conf"), "")?;
    eprintln!("    docker import {base_image}");
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&chroot)
        .args(["--numeric-owner", "-cf", "-", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("running tar")?;
    let tar_out = tar.stdout.take().context("tar has no stdout")?;
    let status = Command::new("docker")
        .args(["import", "--change"])
        .arg(format!("LABEL facteur.inputs={root_digest}"))
        .args(["-", base_image])
        .stdin(tar_out)
        .stdout(Stdio::null())
        .status()
        .context("running docker import")?;
    let tar_status = tar.wait()?;
    if !status.success() || !tar_status.success() {
        bail!("tar | docker import {base_image} failed ({tar_status}, {status})");
    }
    std::fs::remove_dir_all(&chroot)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_apt_source_formats() {
        let deb822 = "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\n";
        let s = parse_deb822(deb822);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].uri, "http://mirror.invalid/debian");
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        let list = "# comment\ndeb [arch=amd64] http://mirror.invalid/debian bookworm main contrib\ndeb-src http://x.invalid y main\n";
        let l = parse_list(list);
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].uri, "http://mirror.invalid/debian");
        assert_eq!(l[0].components, ["main", "contrib"]);
    }
}
