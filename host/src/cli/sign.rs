//! `flagon keygen`, `flagon sign` and `flagon verify`: Ed25519 signatures of components, in a
//! `<file>.wasm.sig` beside each (the format and the check are `crate::signature`'s).
//!
//! The private key is read from a file or an environment variable and never printed or logged;
//! errors about it name the file or variable, never its contents. Every path, name and id given
//! is checked first not to be key material itself (the key pasted where its path was meant), as
//! errors quote those.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::signature::{self, PublicKey, Refusal, SignatureFile, SigningKey};

/// `flagon keygen --out PATH`: a new key, its private half in a new file of mode 0600, its public
/// half printed.
pub(super) fn keygen(out: &Path) -> Result<()> {
    not_a_key("--out", out.as_os_str().as_encoded_bytes())?;
    if out.symlink_metadata().is_ok() {
        bail!(
            "refusing to overwrite `{}`: it exists\n  help: choose another `--out`, or delete it if it is no longer needed",
            out.display()
        );
    }
    let (key, mut pem) = SigningKey::generate()?;
    let written = write_private(out, pem.as_bytes());
    // The PEM text, zeroed in place before it is freed.
    let mut bytes = std::mem::take(&mut pem).into_bytes();
    signature::wipe(&mut bytes);
    written?;
    eprintln!(
        "wrote the private key to `{}` (mode 0600): keep it secret, outside any repository.\n\
         The public key, for `[app] trusted_keys` (`flagon verify --key`):",
        out.display()
    );
    println!("{}", key.public_key());
    Ok(())
}

/// Create `path` (never replacing a file) with mode 0600 and write `bytes` to it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        let help = if e.kind() == std::io::ErrorKind::NotFound {
            "\n  help: make its directory first, private to you: `mkdir -m 700 <dir>`"
        } else {
            ""
        };
        anyhow!("cannot create `{}`: {e}{help}", path.display())
    })?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write `{}`", path.display()))
}

/// Refuse a `flag`'s value that is a private key rather than what the flag takes, before any
/// message can quote it (and without quoting it).
fn not_a_key(flag: &str, value: &[u8]) -> Result<()> {
    if signature::looks_like_private_key(value) {
        bail!(
            "the value given for `{flag}` looks like a private key itself (not shown); it is not \
             used\n  help: `--key` takes the path of the private key file, `--key-env` the name of \
             an environment variable holding the key; if this key was pasted into a shared \
             terminal or log, consider it exposed"
        );
    }
    Ok(())
}

/// [`not_a_key`] for `--id` and the files.
fn no_key_among(id: Option<&str>, files: &[PathBuf]) -> Result<()> {
    if let Some(id) = id {
        not_a_key("--id", id.as_bytes())?;
    }
    for file in files {
        not_a_key("<FILES>", file.as_os_str().as_encoded_bytes())?;
    }
    Ok(())
}

/// The signing key, from `--key PATH` or `--key-env VAR`.
fn signing_key(key: Option<&Path>, key_env: Option<&str>) -> Result<SigningKey> {
    match (key, key_env) {
        (Some(path), _) => {
            not_a_key("--key", path.as_os_str().as_encoded_bytes())?;
            SigningKey::read_file(path)
        }
        (None, Some(var)) => {
            not_a_key("--key-env", var.as_bytes())?;
            let value = std::env::var_os(var).ok_or_else(|| {
                anyhow!("environment variable `{var}` is not set (`--key-env {var}`)")
            })?;
            let mut bytes = value.into_encoded_bytes();
            let key = SigningKey::from_pkcs8(&bytes).map_err(|why| {
                anyhow!(
                    "environment variable `{var}` does not hold a private key: {why}\n  help: set it to the contents of a `flagon keygen` key file"
                )
            });
            signature::wipe(&mut bytes);
            key
        }
        (None, None) => bail!("pass `--key PATH` or `--key-env VAR`"),
    }
}

/// The id `file` is signed or checked as: `--id`, else its name without `.wasm`.
fn id_for(file: &Path, id: Option<&str>) -> Result<String> {
    let id = match id {
        Some(id) => id.to_string(),
        None => signature::default_id(file).ok_or_else(|| {
            anyhow!(
                "`{}` has no file name to take an id from; pass `--id`",
                file.display()
            )
        })?,
    };
    if !signature::valid_id(&id) {
        bail!(
            "`{}` cannot be an id: use 1 to 128 letters, digits, `-`, `_` and `.` (for `{}`)\n  help: pass `--id <component id>`",
            crate::text::log_safe(&id),
            file.display()
        );
    }
    Ok(id)
}

fn one_id_for_one_file(id: Option<&str>, files: &[PathBuf]) -> Result<()> {
    if id.is_some() && files.len() > 1 {
        bail!("`--id` names one component: sign or verify one file with it at a time");
    }
    Ok(())
}

fn read_wasm(file: &Path) -> Result<Vec<u8>> {
    let wasm = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    if !wasm.starts_with(b"\0asm") {
        bail!("`{}` is not a WebAssembly file", file.display());
    }
    Ok(wasm)
}

/// `flagon sign`: a `<file>.sig` beside each file, replacing an old one.
pub(super) fn sign(
    key: Option<&Path>,
    key_env: Option<&str>,
    id: Option<&str>,
    files: &[PathBuf],
) -> Result<()> {
    no_key_among(id, files)?;
    one_id_for_one_file(id, files)?;
    let key = signing_key(key, key_env)?;
    for file in files {
        let id = id_for(file, id)?;
        let wasm = read_wasm(file)?;
        let sig = key.sign(&id, &wasm);
        let path = signature::signature_path(file);
        replace_file(&path, sig.to_text().as_bytes())?;
        println!(
            "signed `{}` as `{id}` by {} -> `{}`",
            file.display(),
            key.public_key(),
            path.display()
        );
    }
    Ok(())
}

/// Write `bytes` to `path`, mode 0644, replacing it: through a new file beside it, with a random
/// name, created exclusively (`O_EXCL`: never an existing file, never through a symlink), then
/// renamed over `path` (which replaces a symlink there rather than following it). A reader sees
/// the old file or the new one; on an error the temporary file is removed.
fn replace_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path)?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
    // Nothing to remove if this fails: whatever is at `tmp` is not ours.
    let mut file = options.open(&tmp).map_err(|e| {
        anyhow!(
            "cannot write `{}`: cannot create `{}`: {e}",
            path.display(),
            tmp.display()
        )
    })?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| anyhow!("cannot write `{}`: {e}", tmp.display()));
    drop(file);
    let replaced = written.and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| {
            anyhow!(
                "cannot rename `{}` to `{}`: {e}",
                tmp.display(),
                path.display()
            )
        })
    });
    if replaced.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    replaced
}

/// `<path>.<16 random hex digits>.tmp`, beside `path`.
fn temp_path(path: &Path) -> Result<PathBuf> {
    use ring::rand::SecureRandom as _;
    let mut suffix = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut suffix)
        .map_err(|_| anyhow!("the system random number generator failed"))?;
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    for b in suffix {
        name.push(format!("{b:02x}"));
    }
    name.push(".tmp");
    Ok(PathBuf::from(name))
}

/// A `--key`: `ed25519:<base64>`, or a file holding one.
fn trusted_key(arg: &str) -> Result<PublicKey> {
    not_a_key("--key", arg.as_bytes())?;
    if arg.starts_with(signature::KEY_PREFIX) {
        arg.parse()
            .map_err(|e| anyhow!("`--key {arg}` is not a public key: {e}"))
    } else {
        PublicKey::read_file(Path::new(arg))
    }
}

/// `flagon verify`: every file's signature must hold, by one of `keys`.
pub(super) fn verify(keys: &[String], id: Option<&str>, files: &[PathBuf]) -> Result<()> {
    no_key_among(id, files)?;
    one_id_for_one_file(id, files)?;
    let trusted = keys
        .iter()
        .map(|k| trusted_key(k))
        .collect::<Result<Vec<_>>>()?;
    let mut failed = 0;
    for file in files {
        match verify_one(file, id, &trusted) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                failed += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files did not verify", files.len());
    }
    Ok(())
}

fn verify_one(file: &Path, id: Option<&str>, trusted: &[PublicKey]) -> Result<String> {
    let id = id_for(file, id)?;
    let wasm = read_wasm(file)?;
    let path = signature::signature_path(file);
    let sig = SignatureFile::read(&path)
        .map_err(|why| anyhow!("`{}` is unusable: {why}", path.display()))?
        .ok_or_else(|| {
            anyhow!(
                "`{}` is not signed: there is no `{}`\n  help: `flagon sign --key <private key file> {}`",
                file.display(),
                path.display(),
                file.display()
            )
        })?;
    match signature::verify(&wasm, &sig, &[&id], trusted) {
        Ok(key) => Ok(format!(
            "ok: `{}` is signed as `{id}` by {key}",
            file.display()
        )),
        Err(why) => {
            let help = match &why {
                Refusal::Untrusted { key } => {
                    format!("\n  help: if you trust that key, pass `--key {key}`")
                }
                Refusal::WrongId { signed, .. } => format!(
                    "\n  help: if you expected `{}`, pass `--id {}`",
                    crate::text::log_safe(signed),
                    crate::text::log_safe(signed)
                ),
                Refusal::Tampered { .. } | Refusal::BadSignature { .. } => String::new(),
            };
            Err(anyhow!(
                "`{}` does not verify against `{}`: {why}{help}",
                file.display(),
                path.display()
            ))
        }
    }
}
