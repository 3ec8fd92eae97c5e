//! Generation of the secrets promsync hands out: employee API tokens (stored only as a
//! SHA-256 hash, shown once) and Standard Webhooks shop secrets (`whsec_<base64 key>`).

use base64::{engine::general_purpose, Engine as _};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A fresh employee API token: 32 random bytes, URL-safe so it fits a header unescaped.
pub fn new_api_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("ps_{}", general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored for a token. Tokens are high-entropy random values, so a plain SHA-256
/// (no salt, no slow hash) is enough and keeps the lookup an indexed equality.
pub fn hash_api_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh shop webhook secret with a 24-byte key, in the Standard Webhooks spelling.
pub fn new_webhook_secret() -> String {
    let mut key = [0u8; 24];
    rand::rng().fill_bytes(&mut key);
    format!("whsec_{}", general_purpose::STANDARD.encode(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_deterministically() {
        let (a, b) = (new_api_token(), new_api_token());
        assert_ne!(a, b);
        assert_eq!(hash_api_token(&a), hash_api_token(&a));
        assert_ne!(hash_api_token(&a), hash_api_token(&b));
        assert_eq!(hash_api_token(&a).len(), 64);
    }

    #[test]
    fn webhook_secrets_carry_a_decodable_key() {
        let secret = new_webhook_secret();
        let key = secret.strip_prefix("whsec_").expect("prefix");
        assert_eq!(general_purpose::STANDARD.decode(key).unwrap().len(), 24);
    }
}
