//! Password hashing with Argon2id.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Hashes and verifies passwords. Hashing is CPU-heavy by design, so it runs on the blocking
/// pool, never on the async workers that serve other requests.
pub struct Passwords {
    params: Params,
    /// A hash of a random password, verified when an e-mail address is unknown so that a
    /// failed login takes as long whether or not the account exists. Made on first use: hashing
    /// it at start would cost start-up time and Argon2's memory before anyone logs in.
    decoy: tokio::sync::OnceCell<String>,
}

impl Passwords {
    /// Argon2id with the given memory (KiB) and iterations, one lane.
    pub fn new(memory_kib: u32, iterations: u32) -> Self {
        let params = Params::new(memory_kib, iterations, 1, None).unwrap_or_default();
        Self {
            params,
            decoy: tokio::sync::OnceCell::new(),
        }
    }

    /// The PHC string of a new password.
    pub async fn hash(&self, password: String) -> Option<String> {
        let params = self.params.clone();
        tokio::task::spawn_blocking(move || hash_with(&params, &password))
            .await
            .ok()
            .flatten()
    }

    /// Whether `password` matches `hash`; with `None` (no such account) the decoy is checked
    /// and the answer is always false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> bool {
        let known = hash.is_some();
        let hash = match hash {
            Some(hash) => hash,
            None => self
                .decoy
                .get_or_init(|| async {
                    self.hash(super::tokens::random_secret())
                        .await
                        .unwrap_or_default()
                })
                .await
                .clone(),
        };
        let matched = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(password.as_bytes(), hash.as_str())
                .is_ok()
        })
        .await
        .unwrap_or(false);
        known && matched
    }
}

fn hash_with(params: &Params, password: &str) -> Option<String> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes())
        .ok()
        .map(|hash| hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_only_the_right_password() {
        let passwords = Passwords::new(64, 1);
        let hash = passwords.hash("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            passwords
                .verify("correct horse".into(), Some(hash.clone()))
                .await
        );
        assert!(!passwords.verify("wrong horse".into(), Some(hash)).await);
        assert!(!passwords.verify("correct horse".into(), None).await);
    }
}
