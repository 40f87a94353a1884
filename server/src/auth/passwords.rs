//! Passwords: Argon2id hashes in PHC form, and the gate that lets a bounded number of hashes
//! and verifications run at once, each in a reused work area.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::random_bytes;
use crate::error::{Error, Result};

/// The cost of password hashing.
#[derive(Debug, Clone, Copy)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
}

impl PasswordCost {
    /// OWASP's recommended Argon2id setting (19 MiB, 2 passes), used in production.
    pub const STANDARD: Self = Self { memory_kib: 19 * 1024, iterations: 2 };
    /// A deliberately cheap setting for tests, which create many accounts.
    pub const CHEAP_FOR_TESTS: Self = Self { memory_kib: 64, iterations: 1 };

    fn hasher(self) -> Result<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, 1, None)
            .map_err(Error::PasswordParams)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// Hashes a password with Argon2id and a random salt, in PHC string form.
pub fn hash_password(password: &str, cost: PasswordCost) -> Result<String> {
    let salt_bytes: [u8; 16] = random_bytes()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(Error::PasswordHash)?;
    let hash = cost
        .hasher()?
        .hash_password(password.as_bytes(), &salt)
        .map_err(Error::PasswordHash)?;
    Ok(hash.to_string())
}

/// Whether `password` matches a stored PHC hash (the hash's own parameters are used).
pub fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}


/// Lets a bounded number of password hashes and verifications run at once, one per core, each
/// in a work area of its own that is reused, so memory stays at most one hash's memory (19 MiB)
/// per core however many sign-ins arrive. A bounded number more wait their turn; beyond that the
/// server answers 503 with `Retry-After`, and the device tries again.
pub struct PasswordGate {
    permits: Arc<Semaphore>,
    concurrency: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
    areas: Arc<Mutex<Vec<Vec<Block>>>>,
}

/// The seconds a sign-in refused for load is told to wait.
pub const BUSY_RETRY_SECONDS: u64 = 2;

/// The right to hash or verify one password, with a reusable work area. Dropping it lets the
/// next one in.
pub struct GatePass {
    _permit: OwnedSemaphorePermit,
    area: Vec<Block>,
    areas: Arc<Mutex<Vec<Vec<Block>>>>,
    keep: usize,
}

impl PasswordGate {
    /// A gate letting `concurrency` hashes run at once and `max_waiting` more wait.
    pub fn new(concurrency: usize, max_waiting: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            waiting: AtomicUsize::new(0),
            max_waiting,
            areas: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// One hash at a time per core of this machine, and 64 per core waiting.
    pub fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        Self::new(cores, 64 * cores)
    }

    /// How many hashes may run at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Waits for a turn, or refuses at once with 503 when the queue is full.
    pub async fn enter(&self) -> Result<GatePass> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(self.pass(permit));
        }
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Error::api(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                format!("the server is checking many passwords at once; try again in {BUSY_RETRY_SECONDS} s"),
            )
            .with_header("retry-after", BUSY_RETRY_SECONDS.to_string()));
        }
        // The count goes down however the wait ends, a client that hung up included.
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let waiting = Waiting(&self.waiting);
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| Error::GateClosed)?;
        drop(waiting);
        Ok(self.pass(permit))
    }

    /// Takes every turn at once, so requests queue behind it; for tests that need the gate full.
    pub async fn hold_all(&self) -> OwnedSemaphorePermit {
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        match self.permits.clone().acquire_many_owned(all).await {
            Ok(permit) => permit,
            Err(_) => unreachable!("the gate's semaphore is never closed"),
        }
    }

    fn pass(&self, permit: OwnedSemaphorePermit) -> GatePass {
        let area = self.areas.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop().unwrap_or_default();
        GatePass { _permit: permit, area, areas: self.areas.clone(), keep: self.concurrency }
    }
}

impl GatePass {
    /// Whether `password` matches a stored PHC hash, computed in this pass's work area.
    pub fn verify(&mut self, password: &str, stored: &str) -> bool {
        verify_in(password, stored, &mut self.area)
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let mut areas = self.areas.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if areas.len() < self.keep {
            areas.push(std::mem::take(&mut self.area));
        }
    }
}

/// Verifies a password against a PHC hash with the hash's own parameters, in `area` (grown to
/// the hash's memory and kept for the next verification, instead of allocated anew each time).
fn verify_in(password: &str, stored: &str, area: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    let Some(expected) = parsed.hash else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else { return false };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    let Some(salt) = parsed.salt else { return false };
    let mut salt_buffer = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buffer) else { return false };
    let blocks = params.block_count();
    if area.len() < blocks {
        area.resize(blocks, Block::default());
    }
    let mut output = vec![0u8; expected.len()];
    let hasher = Argon2::new(algorithm, version, params);
    if hasher.hash_password_into_with_memory(password.as_bytes(), salt, &mut output, &mut area[..blocks]).is_err() {
        return false;
    }
    // Output compares in constant time.
    argon2::password_hash::Output::new(&output).is_ok_and(|computed| computed == expected)
}

/// The hash verified when the user name is unknown, so an unknown name takes as long as a wrong
/// password and the answer reveals nothing.
pub fn dummy_hash(cost: PasswordCost) -> Result<String> {
    hash_password("furrow-no-such-user", cost)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse", PasswordCost::CHEAP_FOR_TESTS).expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("correct horsf", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn verification_in_a_reused_area_agrees_with_the_library() {
        let hash = hash_password("correct horse", PasswordCost::CHEAP_FOR_TESTS).expect("hash");
        let mut area = Vec::new();
        assert!(verify_in("correct horse", &hash, &mut area));
        assert!(!verify_in("correct horsf", &hash, &mut area));
        assert!(!verify_in("correct horse", "not a hash", &mut area));
        assert_eq!(area.len(), 64, "one block per KiB of the hash's memory, kept");
    }
}
