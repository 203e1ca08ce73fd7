//! The `flagon:app/crypto` capability: argon2id password hashing, secure random bytes and
//! tokens, HMAC-SHA256.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::Semaphore;

use wasmtime::component::Linker;

use super::{AppSetup, CapData, Capability, ComponentSetup, Cx, Grant, HostState};
use crate::manifest::{ComponentSection, Manifest};
use crate::runtime::bindings::flagon::app::crypto;

pub struct Crypto;

impl Capability for Crypto {
    const NAME: &'static str = "Crypto";
    const INTERFACES: &'static [&'static str] = &["flagon:app/crypto"];
    const GRANT: Option<Grant> = Some(Grant {
        key: "crypto",
        example: "grants = { crypto = true }",
    });
    type App = ();
    type Component = ();
    type Instance = ();

    fn granted(section: &ComponentSection) -> bool {
        section.grants.crypto
    }

    fn describe(_: &Manifest, section: &ComponentSection) -> Vec<String> {
        section
            .grants
            .crypto
            .then(|| "crypto".into())
            .into_iter()
            .collect()
    }

    fn link(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        crypto::add_to_linker::<_, CapData<Self>>(linker, HostState::cx::<Self>)
    }

    async fn setup(_: &AppSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn configure(_: &(), _: &ComponentSetup<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn prepare(_: &()) {}
}

/// argon2id parameters: OWASP's recommended minimum (19 MiB, 2 passes, 1 lane). About 20-40 ms
/// of one core per hash.
const M_COST_KIB: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
/// Longest password accepted (argon2 itself takes more; nothing legitimate needs it).
const MAX_PASSWORD: usize = 4096;
/// The most a stored hash may ask of `verify_password`: its parameters come from a string a
/// guest hands in, so without a cap one call could ask for gigabytes and hours. Four times the
/// host's own memory and passes, and a few lanes, leave room for hashes made with stronger
/// settings elsewhere. A hash asking more is refused (the password does not verify).
pub const MAX_VERIFY_M_COST_KIB: u32 = 4 * M_COST_KIB;
pub const MAX_VERIFY_T_COST: u32 = 4 * T_COST + 2;
pub const MAX_VERIFY_P_COST: u32 = 4;
const MAX_RANDOM_BYTES: u32 = 65536;
const MIN_TOKEN_BYTES: u32 = 16;
const MAX_TOKEN_BYTES: u32 = 1024;

/// At most this many password hashes run at once (each holds up to its memory cost and a
/// core), so a burst of logins cannot exhaust the host; the rest wait their turn.
fn hash_slots_new() -> Semaphore {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Semaphore::new(cores * 2)
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .expect("constant argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Run a CPU-heavy closure on the blocking pool, under the hash-slot limit. The slot moves
/// into the blocking task and is released only when the hash is done: if the request gives up
/// (its deadline passed), the hash still runs to the end, and still counts against the limit.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| Arc::new(hash_slots_new()));
    blocking_in(slots.clone(), f).await
}

async fn blocking_in<T: Send + 'static>(
    slots: Arc<Semaphore>,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let slot = slots.acquire_owned().await.ok()?;
    tokio::task::spawn_blocking(move || {
        let out = f();
        drop(slot);
        out
    })
    .await
    .ok()
}

pub fn hash_password(password: &str) -> Result<String, String> {
    if password.len() > MAX_PASSWORD {
        return Err(format!("password is longer than {MAX_PASSWORD} bytes"));
    }
    argon2()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_M_COST_KIB
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return false;
    }
    // Parameters come from the stored hash, so hashes made with older settings still verify.
    argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

fn random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random source failed");
    bytes
}

impl crypto::Host for Cx<'_, Crypto> {
    async fn hash_password(&mut self, password: String) -> Result<String, String> {
        blocking(move || hash_password(&password))
            .await
            .unwrap_or_else(|| Err("hashing was interrupted".into()))
    }

    async fn verify_password(&mut self, password: String, hash: String) -> bool {
        blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false)
    }

    fn random_bytes(&mut self, len: u32) -> Result<Vec<u8>, String> {
        if len > MAX_RANDOM_BYTES {
            return Err(format!("at most {MAX_RANDOM_BYTES} random bytes per call"));
        }
        Ok(random(len as usize))
    }

    fn random_token(&mut self, bytes: u32) -> Result<String, String> {
        if !(MIN_TOKEN_BYTES..=MAX_TOKEN_BYTES).contains(&bytes) {
            return Err(format!(
                "a token needs {MIN_TOKEN_BYTES} to {MAX_TOKEN_BYTES} random bytes"
            ));
        }
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random(bytes as usize)))
    }

    fn hmac_sha256(&mut self, key: Vec<u8>, message: Vec<u8>) -> Vec<u8> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        ring::hmac::sign(&key, &message).as_ref().to_vec()
    }

    fn hmac_sha256_verify(&mut self, key: Vec<u8>, message: Vec<u8>, tag: Vec<u8>) -> bool {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
        // `ring::hmac::verify` compares in constant time.
        ring::hmac::verify(&key, &message, &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_are_argon2id_with_owasp_parameters() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horse!", &h));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(h, hash_password("correct horse").unwrap(), "salts differ");
        assert!(hash_password(&"x".repeat(5000)).is_err());
    }

    #[test]
    fn verify_refuses_costs_above_the_caps() {
        // Real hashes of "pw" made with parameters just past each cap: they would verify if
        // they ran, so `false` means the cap refused them.
        for (m, t, p) in [
            (MAX_VERIFY_M_COST_KIB + 1024, 1, 1),
            (8 * 1024, MAX_VERIFY_T_COST + 1, 1),
            (8 * 1024, 1, MAX_VERIFY_P_COST + 1),
        ] {
            let params = Params::new(m, t, p, None).unwrap();
            let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"pw")
                .unwrap()
                .to_string();
            assert!(!verify_password("pw", &hash), "{hash}");
        }
        // Within the caps, stronger hashes than the host's own still verify.
        let params = Params::new(MAX_VERIFY_M_COST_KIB, 2, 2, None).unwrap();
        let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"pw")
            .unwrap()
            .to_string();
        assert!(verify_password("pw", &hash));
        // Absurd parameters a guest could write by hand are refused without running.
        let h = hash_password("pw").unwrap();
        let huge = h.replace("m=19456,t=2,p=1", "m=4294967295,t=4294967295,p=1");
        assert!(!verify_password("pw", &huge));
    }

    /// A request that gives up while its hash runs does not free the slot: the hash still
    /// holds its memory and core until it ends.
    #[tokio::test]
    async fn a_cancelled_hash_keeps_its_slot_until_it_ends() {
        let slots = Arc::new(Semaphore::new(1));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let call = blocking_in(slots.clone(), move || {
            started_tx.send(()).unwrap();
            finish_rx.recv().unwrap();
        });
        let task = tokio::spawn(async move {
            let mut call = std::pin::pin!(call);
            // Drive it until the closure is running on the blocking pool, then drop it, as a
            // request timeout does.
            tokio::select! {
                _ = &mut call => unreachable!("the closure waits for the test"),
                _ = tokio::task::spawn_blocking(move || started_rx.recv().unwrap()) => {}
            }
        });
        task.await.unwrap();
        assert_eq!(
            slots.available_permits(),
            0,
            "the slot went with the cancelled request"
        );
        finish_tx.send(()).unwrap();
        // The slot comes back once the hash itself ends.
        let _slot = tokio::time::timeout(std::time::Duration::from_secs(30), slots.acquire())
            .await
            .expect("the slot is released when the blocking task ends")
            .unwrap();
    }
}
