//! Signed components: an Ed25519 signature over a component's SHA-256 and its id, kept in a
//! `<file>.wasm.sig` beside it (`flagon sign`, `flagon verify`) and checked at load under
//! `[app] require_signatures` and `trusted_keys`.
//!
//! The one place signatures are made, read and checked: the `flagon keygen`, `sign` and
//! `verify` commands, the manifest's check of `trusted_keys`, components at load
//! (`app::component::compile_and_check`) and DB adapters at setup (`capabilities::sql`) all
//! call it. What is signed is the message
//!
//! ```text
//! flagon-component-signature-v1\n<id>\n<sha256 of the component, lowercase hex>
//! ```
//!
//! so a signature is for those exact bytes under that id, and for nothing else this key signs.
//!
//! A leaf below every folder but `plugins` (the first-party key and the embedded plugins'
//! signatures) and `text`, which it uses.

use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Result, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::Deserialize;

use crate::plugins::{self, Plugin};
use crate::text::log_safe;

/// The signature file format this host writes and reads (`format = 1`).
pub const FORMAT: u32 = 1;
/// The first line of every signed message: what the signature is for, and in which version.
pub const DOMAIN: &str = "flagon-component-signature-v1";
/// How a public key is written: `ed25519:<base64 of its 32 bytes>`.
pub const KEY_PREFIX: &str = "ed25519:";
/// The longest signature file read; a real one is about 300 bytes.
const MAX_SIGNATURE_FILE: u64 = 16 * 1024;
/// The longest private key file read; a PKCS#8 Ed25519 key is under 200 bytes.
const MAX_KEY_FILE: u64 = 16 * 1024;
/// The longest signed id.
const MAX_ID: usize = 128;

/// An Ed25519 public key, written `ed25519:<base64>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

/// Why a string is not a public key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a public key is written `ed25519:<base64>`")]
    NoPrefix,
    #[error("the part after `ed25519:` is not standard base64 (with `=` padding)")]
    Base64,
    #[error("its base64 decodes to {0} bytes, and an Ed25519 public key is 32")]
    Length(usize),
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let b64 = s
            .trim()
            .strip_prefix(KEY_PREFIX)
            .ok_or(KeyError::NoPrefix)?;
        let bytes = STANDARD.decode(b64).map_err(|_| KeyError::Base64)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Length(bytes.len()))?;
        Ok(Self(key))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_PREFIX}{}", STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PublicKey {
    /// Read a public key file (`flagon keygen`'s output saved, such as
    /// `plugins/flagon-plugins.pub`): one `ed25519:...` line; `#` lines are comments.
    pub fn read_file(path: &Path) -> Result<Self> {
        refuse_key_as_path(path, "a public key file")?;
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read public key `{}`: {e}", path.display()))?;
        let mut keys = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        match (keys.next(), keys.next()) {
            (Some(key), None) => key.parse().map_err(|e| {
                anyhow!(
                    "`{}` does not hold a public key: {e}\n  help: save the `ed25519:...` line `flagon keygen` printed",
                    path.display()
                )
            }),
            _ => Err(anyhow!(
                "`{}` must hold exactly one `ed25519:...` line",
                path.display()
            )),
        }
    }

    /// Verify an Ed25519 signature of `message` by this key.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// The first-party release key (`plugins/flagon-plugins.pub`, embedded): it signed every plugin
/// in `plugins/dist`, and the host trusts it for those embedded plugins only.
pub fn first_party_key() -> PublicKey {
    plugins::FIRST_PARTY_KEY
        .parse()
        .expect("plugins/flagon-plugins.pub holds an `ed25519:...` key")
}

/// The SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What is signed for component `id` whose SHA-256 is `sha256`: the domain, the id and the
/// digest, one per line.
pub fn message(id: &str, sha256: &str) -> String {
    format!("{DOMAIN}\n{id}\n{sha256}")
}

/// Whether `id` may be signed: 1 to 128 ASCII letters, digits, `-`, `_` and `.` (every
/// manifest id and every usual file name).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The signature file beside `wasm`: `<file>.sig` (`hello.wasm` -> `hello.wasm.sig`).
pub fn signature_path(wasm: &Path) -> PathBuf {
    let mut name = wasm.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// The id a file is signed as unless told otherwise: its name without `.wasm`.
pub fn default_id(wasm: &Path) -> Option<String> {
    wasm.file_stem().and_then(|s| s.to_str()).map(str::to_owned)
}

/// A signature file (`<file>.wasm.sig`), TOML:
///
/// ```toml
/// # Flagon component signature: check it with `flagon verify --key <public key> <file>`
/// format = 1
/// id = "hello"
/// sha256 = "<64 hex digits>"
/// key = "ed25519:<base64>"
/// signature = "<base64 of 64 bytes>"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// Always [`FORMAT`].
    pub format: u32,
    /// The component id it was signed as.
    pub id: String,
    /// The component's SHA-256, lowercase hex.
    pub sha256: String,
    /// The public key that signed it, `ed25519:<base64>`.
    pub key: String,
    /// The Ed25519 signature of [`message`]`(id, sha256)`, base64.
    pub signature: String,
}

impl SignatureFile {
    /// Parse a signature file's text; an error says what is wrong (never how to forge it).
    pub fn parse(text: &str) -> Result<Self, String> {
        // TOML refuses a duplicate key and anything after the last value; the message may quote
        // the file's text, so it is escaped for a terminal or a log.
        let sig: Self = toml::from_str(text).map_err(|e| log_safe(e.message()).into_owned())?;
        if sig.format != FORMAT {
            return Err(format!(
                "it is format {}, and this Flagon reads format {FORMAT}",
                sig.format
            ));
        }
        if !valid_id(&sig.id) {
            return Err("its `id` is not 1 to 128 letters, digits, `-`, `_` and `.`".to_string());
        }
        if sig.sha256.len() != 64
            || !sig
                .sha256
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err("its `sha256` is not 64 lowercase hex digits".to_string());
        }
        sig.key
            .parse::<PublicKey>()
            .map_err(|e| format!("its `key` is not a public key: {e}"))?;
        match STANDARD.decode(&sig.signature) {
            Ok(bytes) if bytes.len() == 64 => {}
            _ => return Err("its `signature` is not 64 bytes of base64".to_string()),
        }
        Ok(sig)
    }

    /// Read and parse the signature file at `path`; `Ok(None)` if there is none.
    pub fn read(path: &Path) -> Result<Option<Self>, String> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read it: {e}")),
        };
        let mut text = String::new();
        file.take(MAX_SIGNATURE_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read it: {e}"))?;
        if text.len() as u64 > MAX_SIGNATURE_FILE {
            return Err(format!("it is larger than {MAX_SIGNATURE_FILE} bytes"));
        }
        Self::parse(&text).map(Some)
    }

    /// The file's text, always the same for the same signature (Ed25519 signatures are
    /// deterministic, so signing the same bytes again writes the same file).
    pub fn to_text(&self) -> String {
        format!(
            "# Flagon component signature: check it with `flagon verify --key <public key> <file>`\n\
             format = {}\nid = \"{}\"\nsha256 = \"{}\"\nkey = \"{}\"\nsignature = \"{}\"\n",
            self.format, self.id, self.sha256, self.key, self.signature
        )
    }
}

/// A private signing key. It has no `Display`, and its `Debug` shows only the public key.
pub struct SigningKey(Ed25519KeyPair);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public_key())
    }
}

impl SigningKey {
    /// A new random key and its PKCS#8 (v2) document as PEM (`-----BEGIN PRIVATE KEY-----`),
    /// for the caller to write to a private file. Wipe the PEM with [`wipe`] once written.
    pub fn generate() -> Result<(Self, String)> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|_| anyhow!("the system random number generator failed"))?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| anyhow!("ring refused the key it generated"))?;
        Ok((Self(key), pem(pkcs8.as_ref())))
    }

    /// A key from a PKCS#8 document: DER, PEM (`-----BEGIN PRIVATE KEY-----`), or the DER in
    /// base64 (for an environment variable). Errors never quote the input.
    pub fn from_pkcs8(input: &[u8]) -> Result<Self, String> {
        let mut der = decode_pkcs8(input)?;
        // `maybe_unchecked` also takes PKCS#8 v1 documents, as `openssl genpkey` writes.
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map_err(|_| "it is not a PKCS#8 Ed25519 private key".to_string());
        wipe(&mut der);
        key.map(Self)
    }

    /// Read a private key file; a warning if others may read it. Errors never quote it.
    pub fn read_file(path: &Path) -> Result<Self> {
        refuse_key_as_path(path, "a private key file")?;
        let file = std::fs::File::open(path)
            .map_err(|e| anyhow!("cannot read private key `{}`: {e}", path.display()))?;
        #[cfg(unix)]
        if let Ok(meta) = file.metadata() {
            use std::os::unix::fs::PermissionsExt as _;
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    "private key `{}` may be read by other users: `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
        }
        let mut bytes = Vec::new();
        let read = file.take(MAX_KEY_FILE + 1).read_to_end(&mut bytes);
        let key = match read {
            Err(e) => Err(anyhow!("cannot read private key `{}`: {e}", path.display())),
            Ok(_) if bytes.len() as u64 > MAX_KEY_FILE => Err(anyhow!(
                "`{}` is larger than {MAX_KEY_FILE} bytes, so it is not a private key",
                path.display()
            )),
            Ok(_) => Self::from_pkcs8(&bytes).map_err(|why| {
                anyhow!(
                    "cannot use private key `{}`: {why}\n  help: make one with `flagon keygen --out {}`",
                    path.display(),
                    path.display()
                )
            }),
        };
        wipe(&mut bytes);
        key
    }

    /// The public half, as `trusted_keys` lists it.
    pub fn public_key(&self) -> PublicKey {
        let bytes: [u8; 32] = self
            .0
            .public_key()
            .as_ref()
            .try_into()
            .expect("an Ed25519 public key is 32 bytes");
        PublicKey(bytes)
    }

    /// Sign `wasm` as component `id` (check it with [`valid_id`] first).
    pub fn sign(&self, id: &str, wasm: &[u8]) -> SignatureFile {
        let sha256 = sha256_hex(wasm);
        let signature = self.0.sign(message(id, &sha256).as_bytes());
        SignatureFile {
            format: FORMAT,
            id: id.to_string(),
            sha256,
            key: self.public_key().to_string(),
            signature: STANDARD.encode(signature.as_ref()),
        }
    }
}

/// PKCS#8 DER as PEM.
fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// DER from DER, PEM or base64.
fn decode_pkcs8(input: &[u8]) -> Result<Vec<u8>, String> {
    // DER starts with a SEQUENCE tag; text does not.
    if input.first() == Some(&0x30) {
        return Ok(input.to_vec());
    }
    let text = std::str::from_utf8(input).map_err(|_| "it is neither DER nor PEM".to_string())?;
    let text = text.trim();
    if text.starts_with(KEY_PREFIX) {
        return Err(
            "it is a public key (`ed25519:...`); signing takes the private key file".to_string(),
        );
    }
    let body = match text.strip_prefix("-----BEGIN PRIVATE KEY-----") {
        Some(rest) => rest
            .trim_end()
            .strip_suffix("-----END PRIVATE KEY-----")
            .ok_or("its PEM has no `-----END PRIVATE KEY-----` line")?,
        None if text.starts_with("-----BEGIN") => {
            return Err("it is PEM but not `-----BEGIN PRIVATE KEY-----` (PKCS#8)".to_string());
        }
        None => text,
    };
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(b64.as_bytes())
        .map_err(|_| "it is neither DER, PEM nor base64".to_string());
    let mut b64 = b64.into_bytes();
    wipe(&mut b64);
    der
}

/// Whether `value`, given where a path, a variable's name or an id was expected, looks like
/// private key material instead: PEM (`-----BEGIN ...`), PKCS#8 DER, or its base64. A message
/// must then not quote it (paths, names and ids are otherwise quoted in errors and logs).
pub fn looks_like_private_key(value: &[u8]) -> bool {
    let value = value.trim_ascii();
    let contains = |needle: &[u8]| value.windows(needle.len()).any(|w| w == needle);
    if contains(b"-----BEGIN") || contains(b"PRIVATE KEY") {
        return true;
    }
    // DER starts with a SEQUENCE tag, and is binary.
    if value.first() == Some(&0x30) && !value.is_ascii() {
        return true;
    }
    // Its base64 (a PEM's body, or what a `--key-env` variable may hold), which the SEQUENCE
    // tag makes start with `M`. A path or a name with a `.`, `-` or `_` is never this.
    let mut b64: Vec<u8> = value
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut key_like = b64.len() >= 40
        && b64.starts_with(b"M")
        && b64
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if key_like {
        key_like = match STANDARD.decode(&b64) {
            Ok(mut der) => {
                let sequence = der.first() == Some(&0x30);
                wipe(&mut der);
                sequence
            }
            Err(_) => false,
        };
    }
    wipe(&mut b64);
    key_like
}

/// An error, quoting nothing, if the path given for `what` is private key material.
fn refuse_key_as_path(path: &Path, what: &str) -> Result<()> {
    if looks_like_private_key(path.as_os_str().as_encoded_bytes()) {
        return Err(anyhow!(
            "the path given for {what} looks like a private key itself (not shown): pass the path \
             of the file that holds it"
        ));
    }
    Ok(())
}

/// Overwrite secret bytes before they are freed (best effort: copies made by the allocator or
/// by libraries are out of reach).
pub fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    // Keep the compiler from dropping the stores to memory that is about to be freed.
    std::hint::black_box(bytes);
}

/// Why a signature does not hold, in the order [`verify`] checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The component's SHA-256 is not the one signed: it changed after it was signed.
    Tampered { signed: String, actual: String },
    /// The signature does not verify under the key the file names: the file was altered.
    BadSignature { key: String },
    /// Signed as another component.
    WrongId {
        signed: String,
        expected: Vec<String>,
    },
    /// A valid signature, by a key that is not trusted.
    Untrusted { key: PublicKey },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Tampered { signed, actual } => write!(
                f,
                "the file's SHA-256 is {actual}, but the signature is for {signed}: the file changed after it was signed"
            ),
            Refusal::BadSignature { key } => write!(
                f,
                "the signature does not verify with the key it names ({key}): the signature file was altered or forged"
            ),
            Refusal::WrongId { signed, expected } => write!(
                f,
                "it is signed as component `{}`, not {}",
                log_safe(signed),
                expected
                    .iter()
                    .map(|e| format!("`{e}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            Refusal::Untrusted { key } => write!(f, "it is signed by {key}, which is not trusted"),
        }
    }
}

/// Check `sig` for the bytes `wasm`: its SHA-256, then the signature under the key it names,
/// then that it was signed as one of `ids`, then that its key is in `trusted`. Returns the key.
pub fn verify(
    wasm: &[u8],
    sig: &SignatureFile,
    ids: &[&str],
    trusted: &[PublicKey],
) -> Result<PublicKey, Refusal> {
    let actual = sha256_hex(wasm);
    if actual != sig.sha256 {
        return Err(Refusal::Tampered {
            signed: sig.sha256.clone(),
            actual,
        });
    }
    let bad = || Refusal::BadSignature {
        key: log_safe(&sig.key).into_owned(),
    };
    let key: PublicKey = sig.key.parse().map_err(|_| bad())?;
    let signature = STANDARD.decode(&sig.signature).map_err(|_| bad())?;
    if !key.verifies(message(&sig.id, &sig.sha256).as_bytes(), &signature) {
        return Err(bad());
    }
    if !ids.contains(&sig.id.as_str()) {
        return Err(Refusal::WrongId {
            signed: sig.id.clone(),
            expected: ids.iter().map(|s| s.to_string()).collect(),
        });
    }
    if !trusted.contains(&key) {
        return Err(Refusal::Untrusted { key });
    }
    Ok(key)
}

/// What an app requires of its components' signatures: `[app] require_signatures` and
/// `trusted_keys`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub required: bool,
    pub trusted: Vec<PublicKey>,
}

/// The component being loaded, for [`check`].
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A `.wasm` file; its signature is `<file>.sig` beside it.
    File(&'a Path),
    /// A first-party plugin embedded in the host, signed by [`first_party_key`].
    Embedded(&'static Plugin),
}

/// Where a component sits in the manifest, for [`check`]'s messages.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The table: `components.hello` or `databases.main`.
    pub table: &'a str,
    /// Its id (the component's, or the database's name): a file may be signed as this or as
    /// its own name without `.wasm`. Either is only a name in the signing key's namespace: a
    /// component the same key signed under a matching id, for any app, passes here too.
    pub id: &'a str,
    /// The manifest file.
    pub manifest: &'a Path,
}

/// What [`check`] found, when it let the component load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Signed by this trusted key (or, for an embedded plugin, the first-party key).
    Trusted(PublicKey),
    /// A valid signature by a key not in `trusted_keys`, allowed because signatures are not
    /// required.
    Untrusted(PublicKey),
    /// No signature, allowed because signatures are not required (or an embedded plugin,
    /// whose signature is checked only when they are).
    Unchecked,
}

/// The load-time check of the component `subject` at `place`, whose bytes are `wasm` (the
/// bytes that will be compiled, so nothing can change between the check and the use).
///
/// - A file with a `.sig` beside it: the signature must hold (SHA-256, signature, id), always,
///   whether or not signatures are required: a bad signature is never ignored. Its key must be
///   in `trusted_keys` when signatures are required; otherwise an untrusted key is logged.
/// - A file without one: refused when signatures are required.
/// - An embedded plugin: when signatures are required, its embedded signature must hold under
///   the first-party key (trusted for embedded plugins only).
pub fn check(
    policy: &Policy,
    subject: Subject<'_>,
    wasm: &[u8],
    place: Place<'_>,
) -> Result<Verdict> {
    let Place {
        table,
        id,
        manifest,
    } = place;
    let manifest = manifest.display();
    match subject {
        Subject::Embedded(plugin) => {
            if !policy.required {
                return Ok(Verdict::Unchecked);
            }
            let file = format!("flagon-{}", plugin.name);
            let verified = SignatureFile::parse(plugin.signature).and_then(|sig| {
                verify(wasm, &sig, &[&file], &[first_party_key()]).map_err(|why| why.to_string())
            });
            verified.map(Verdict::Trusted).map_err(|why| {
                anyhow!(
                    "refusing to load `[{table}]` in `{manifest}`: the embedded plugin `{}` does not match \
                     its first-party signature: {why}\n  help: this `flagon` was built from a `plugins/dist` \
                     that was rebuilt without signing it: sign it with the first-party release key's \
                     private key file, `FLAGON_SIGNING_KEY=/path/to/flagon-plugins.pk8 bash plugins/build`, \
                     or use a released `flagon`",
                    plugin.name
                )
            })
        }
        Subject::File(path) => {
            let sig_path = signature_path(path);
            let (file, sig_file) = (path.display(), sig_path.display());
            let stem = default_id(path).unwrap_or_default();
            let mut ids = vec![id];
            if stem != id && !stem.is_empty() {
                ids.push(&stem);
            }
            let refuse = |what: String, help: String| {
                anyhow!(
                    "refusing to load `[{table}]` in `{manifest}`: `{file}` {what}\n  help: {help}"
                )
            };
            let sign = |id: &str| {
                let id = if id == stem {
                    String::new()
                } else {
                    format!("--id {id} ")
                };
                format!("flagon sign --key <private key file> {id}{file}")
            };
            let sig = match SignatureFile::read(&sig_path) {
                Ok(Some(sig)) => sig,
                Ok(None) if policy.required => {
                    return Err(refuse(
                        format!(
                            "is not signed (there is no `{sig_file}`), and `[app] require_signatures = true`"
                        ),
                        format!(
                            "sign it with a key whose public key is in `[app] trusted_keys`: `{}`",
                            sign(id)
                        ),
                    ));
                }
                Ok(None) => return Ok(Verdict::Unchecked),
                Err(why) => {
                    return Err(refuse(
                        format!("has a signature file `{sig_file}` that is unusable: {why}"),
                        format!("sign it again (`{}`), or delete `{sig_file}`", sign(id)),
                    ));
                }
            };
            match verify(wasm, &sig, &ids, &policy.trusted) {
                Ok(key) => {
                    tracing::debug!(component = %table, %key, "signature verified");
                    Ok(Verdict::Trusted(key))
                }
                Err(Refusal::Untrusted { key }) if !policy.required => {
                    tracing::info!(
                        component = %table,
                        %key,
                        "`{file}` is signed by a key that is not in `[app] trusted_keys` (signatures are not required)"
                    );
                    Ok(Verdict::Untrusted(key))
                }
                Err(why @ Refusal::Untrusted { key }) => Err(refuse(
                    format!("does not pass `[app] require_signatures`: `{sig_file}`: {why}"),
                    format!(
                        "if you trust that key, add it to `[app] trusted_keys = [\"{key}\"]`; otherwise sign it with a trusted key: `{}`",
                        sign(id)
                    ),
                )),
                Err(why @ Refusal::WrongId { .. }) => Err(refuse(
                    format!("does not match its signature `{sig_file}`: {why}"),
                    format!(
                        "if this is the component you meant to load here, sign it as `{id}`: `{}`",
                        sign(id)
                    ),
                )),
                Err(why) => Err(refuse(
                    format!("does not match its signature `{sig_file}`: {why}"),
                    format!(
                        "if you rebuilt it, sign it again: `{}`; otherwise do not run it, and find out who changed it",
                        sign(id)
                    ),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::generate().unwrap().0
    }

    #[test]
    fn public_keys_parse_and_print_the_same() {
        let k = key().public_key();
        let text = k.to_string();
        assert!(text.starts_with("ed25519:"), "{text}");
        assert_eq!(text.parse::<PublicKey>().unwrap(), k);
        assert_eq!(format!(" {text}\n").parse::<PublicKey>().unwrap(), k);
        assert_eq!("abc".parse::<PublicKey>(), Err(KeyError::NoPrefix));
        assert_eq!(
            "ed25519:not base64!".parse::<PublicKey>(),
            Err(KeyError::Base64)
        );
        assert_eq!(
            "ed25519:AAAA".parse::<PublicKey>(),
            Err(KeyError::Length(3))
        );
        // URL-safe or unpadded base64 is refused: one spelling per key.
        let unpadded = text.trim_end_matches('=');
        assert_ne!(unpadded, text);
        assert_eq!(unpadded.parse::<PublicKey>(), Err(KeyError::Base64));
    }

    #[test]
    fn a_signature_verifies_only_for_its_bytes_id_and_key() {
        let k = key();
        let wasm = b"\0asm component bytes";
        let sig = k.sign("hello", wasm);
        let trusted = [k.public_key()];
        assert_eq!(verify(wasm, &sig, &["hello"], &trusted), Ok(k.public_key()));
        assert!(matches!(
            verify(b"\0asm other bytes", &sig, &["hello"], &trusted),
            Err(Refusal::Tampered { .. })
        ));
        assert!(matches!(
            verify(wasm, &sig, &["other"], &trusted),
            Err(Refusal::WrongId { .. })
        ));
        let stranger = key().public_key();
        assert_eq!(
            verify(wasm, &sig, &["hello"], &[stranger]),
            Err(Refusal::Untrusted {
                key: k.public_key()
            })
        );
        // Changing the id in the file breaks the signature, as does another key's name.
        let renamed = SignatureFile {
            id: "other".into(),
            ..sig.clone()
        };
        assert!(matches!(
            verify(wasm, &renamed, &["other"], &trusted),
            Err(Refusal::BadSignature { .. })
        ));
        let rekeyed = SignatureFile {
            key: stranger.to_string(),
            ..sig.clone()
        };
        assert!(matches!(
            verify(wasm, &rekeyed, &["hello"], &[stranger]),
            Err(Refusal::BadSignature { .. })
        ));
    }

    #[test]
    fn the_signed_message_is_domain_separated() {
        assert_eq!(
            message("hello", "ab"),
            "flagon-component-signature-v1\nhello\nab"
        );
        // The same key signing the same digest under the same id gives the same signature,
        // and the signature is over the message, not the raw digest.
        let k = key();
        let sig = k.sign("hello", b"x");
        assert_eq!(sig, k.sign("hello", b"x"));
        let raw = STANDARD.decode(&sig.signature).unwrap();
        assert!(
            k.public_key()
                .verifies(message("hello", &sha256_hex(b"x")).as_bytes(), &raw)
        );
        assert!(!k.public_key().verifies(sha256_hex(b"x").as_bytes(), &raw));
    }

    #[test]
    fn signature_files_round_trip_and_refuse_anything_else() {
        let sig = key().sign("hello", b"wasm");
        let text = sig.to_text();
        assert_eq!(SignatureFile::parse(&text).unwrap(), sig);
        let refused = [
            (text.replace("format = 1", "format = 2"), "format 2"),
            (format!("{text}extra = 1\n"), "unknown field"),
            (text.replace("id = \"hello\"", "id = \"a\\nb\""), "`id`"),
            (
                text.replace(&sig.sha256, &sig.sha256.to_uppercase()),
                "`sha256`",
            ),
            (text.replace(&sig.key, "ed25519:AAAA"), "`key`"),
            (text.replace(&sig.signature, "AAAA"), "`signature`"),
            ("format = 1\n".to_string(), "missing field"),
            ("not toml".to_string(), ""),
            // A key given twice, even with the same value, or one that would win over the
            // signed one.
            (format!("{text}id = \"hello\"\n"), "duplicate key"),
            (format!("{text}id = \"admin\"\n"), "duplicate key"),
            (format!("id = \"admin\"\n{text}"), "duplicate key"),
            (format!("{text}format = 1\n"), "duplicate key"),
            // Anything after the last value.
            (format!("{text}garbage"), ""),
            (format!("{text}\0"), ""),
            (text.replace("format = 1", "format = 1 2"), ""),
            (
                text.replace(&sig.signature, &format!("{}\" x", sig.signature)),
                "",
            ),
            (format!("{text}[table]\n"), ""),
        ];
        for (bad, why) in refused {
            let err = SignatureFile::parse(&bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        // Comments and blank lines are all it takes besides the five keys.
        assert_eq!(
            SignatureFile::parse(&format!("\n# a comment\n{text}\n# another\n")).unwrap(),
            sig
        );
    }

    #[test]
    fn parse_errors_are_safe_to_print() {
        // TOML allows C1 controls and bidirectional overrides in a string, and the error
        // quotes it.
        let err = SignatureFile::parse("format = \"\u{9b}31m\u{202e}x\"\n").unwrap_err();
        assert!(err.contains("31m"), "{err:?}");
        assert!(
            !err.contains('\u{9b}') && !err.contains('\u{202e}'),
            "{err:?}"
        );
    }

    #[test]
    fn a_private_key_given_as_a_path_is_never_quoted() {
        let (_, pem_text) = SigningKey::generate().unwrap();
        let body: String = pem_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = STANDARD.decode(&body).unwrap();
        for key in [pem_text.as_bytes(), body.as_bytes(), &der] {
            assert!(looks_like_private_key(key));
        }
        assert!(looks_like_private_key(format!(" {body}\n").as_bytes()));
        for not_a_key in [
            &b"release.pk8"[..],
            b"/home/me/.flagon-keys/release.pk8",
            b"RELEASE_KEY",
            b"target/wasm32-wasip2/release/hello.wasm",
            b"flagon-auth-jwt",
            b"ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
            b"",
        ] {
            assert!(!looks_like_private_key(not_a_key), "{not_a_key:?}");
        }
        for path in [&pem_text, &body] {
            let path = Path::new(path);
            let errors = [
                format!("{:#}", SigningKey::read_file(path).unwrap_err()),
                format!("{:#}", PublicKey::read_file(path).unwrap_err()),
            ];
            for err in errors {
                assert!(err.contains("looks like a private key"), "{err}");
                for line in body.as_bytes().chunks(16) {
                    let part = std::str::from_utf8(line).unwrap();
                    assert!(!err.contains(part), "{err}");
                }
            }
        }
    }

    #[test]
    fn private_keys_load_from_pem_der_and_base64_and_never_show() {
        let (k, pem_text) = SigningKey::generate().unwrap();
        let public = k.public_key();
        assert!(pem_text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let from_pem = SigningKey::from_pkcs8(pem_text.as_bytes()).unwrap();
        assert_eq!(from_pem.public_key(), public);
        let body: String = pem_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(
            SigningKey::from_pkcs8(body.as_bytes())
                .unwrap()
                .public_key(),
            public
        );
        let der = STANDARD.decode(&body).unwrap();
        assert_eq!(SigningKey::from_pkcs8(&der).unwrap().public_key(), public);
        assert!(!format!("{from_pem:?}").contains(&body));
        assert!(format!("{from_pem:?}").contains(&public.to_string()));
        for bad in [
            &b"garbage"[..],
            b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n",
            b"\x30\x03\x02\x01\x00",
        ] {
            let err = SigningKey::from_pkcs8(bad).unwrap_err();
            assert!(!err.contains("garbage") && !err.contains("AAAA"), "{err}");
        }
        let err = SigningKey::from_pkcs8(public.to_string().as_bytes()).unwrap_err();
        assert!(err.contains("it is a public key"), "{err}");
    }

    #[test]
    fn the_signature_sits_beside_the_file_and_ids_come_from_its_name() {
        let path = Path::new("dist/hello-app.wasm");
        assert_eq!(signature_path(path), Path::new("dist/hello-app.wasm.sig"));
        assert_eq!(default_id(path).as_deref(), Some("hello-app"));
        assert!(valid_id("flagon-auth-jwt") && valid_id("my_app.v2"));
        assert!(
            !valid_id("") && !valid_id("a b") && !valid_id("a\nb") && !valid_id(&"a".repeat(129))
        );
    }

    #[test]
    fn the_first_party_key_parses() {
        first_party_key();
    }
}
