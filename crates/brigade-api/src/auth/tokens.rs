//! Signed login tokens (HS256 JWTs with a key id).

use std::collections::HashMap;

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id.
    pub sub: Uuid,
    /// The session id, looked up on every request (revocation).
    pub sid: Uuid,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, wrong algorithm, or a bad signature.
    #[error("the token is malformed or its signature is invalid")]
    Invalid,
    /// Signed with a key this replica does not know (rotated out long ago, or forged).
    #[error("the token was signed with an unknown key")]
    UnknownKey,
    /// Past its expiry.
    #[error("the token has expired")]
    Expired,
}

/// The configured keys: the first signs, all verify.
pub struct TokenKeys {
    signing_id: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
}

impl TokenKeys {
    /// Keys as (id, secret) pairs, newest first. Panics on an empty list (settings validation
    /// and the stored key make that impossible).
    pub fn new(keys: &[(String, String)]) -> Self {
        let (signing_id, signing_secret) = keys.first().expect("at least one signing key");
        Self {
            signing_id: signing_id.clone(),
            signing: EncodingKey::from_secret(signing_secret.as_bytes()),
            verifying: keys
                .iter()
                .map(|(id, secret)| (id.clone(), DecodingKey::from_secret(secret.as_bytes())))
                .collect(),
        }
    }

    /// Signs claims with the newest key.
    pub fn issue(&self, claims: &Claims) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_id.clone());
        jsonwebtoken::encode(&header, claims, &self.signing).map_err(|_| TokenError::Invalid)
    }

    /// Checks signature and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.verifying.get(kid))
            .ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

/// 32 random bytes, base64: a fresh HMAC secret or decoy password.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_offset: i64) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            iat: now,
            exp: now + exp_offset,
        }
    }

    #[test]
    fn rotated_keys_keep_verifying_old_tokens() {
        let old = TokenKeys::new(&[("k1".into(), "a".repeat(32))]);
        let token = old.issue(&claims(60)).unwrap();
        let rotated =
            TokenKeys::new(&[("k2".into(), "b".repeat(32)), ("k1".into(), "a".repeat(32))]);
        assert!(rotated.verify(&token).is_ok());
        let fresh = rotated.issue(&claims(60)).unwrap();
        assert!(matches!(old.verify(&fresh), Err(TokenError::UnknownKey)));
        let dropped = TokenKeys::new(&[("k2".into(), "b".repeat(32))]);
        assert!(matches!(
            dropped.verify(&token),
            Err(TokenError::UnknownKey)
        ));
    }

    #[test]
    fn expired_and_forged_tokens_fail() {
        let keys = TokenKeys::new(&[("k1".into(), "a".repeat(32))]);
        assert!(matches!(
            keys.verify(&keys.issue(&claims(-1)).unwrap()),
            Err(TokenError::Expired)
        ));
        let forger = TokenKeys::new(&[("k1".into(), "x".repeat(32))]);
        assert!(matches!(
            keys.verify(&forger.issue(&claims(60)).unwrap()),
            Err(TokenError::Invalid)
        ));
        assert!(matches!(
            keys.verify("not.a.token"),
            Err(TokenError::Invalid)
        ));
    }
}
