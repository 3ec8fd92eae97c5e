//! Standard Webhooks signing, as a sender does it: `v1,<base64 HMAC-SHA256>` over
//! `"{webhook-id}.{webhook-timestamp}.{raw body}"`, keyed by the base64 part of a
//! `whsec_…` secret.
//!
//! The simulator plays Prom (or a relay in front of it), a party apart from promsync, so
//! it signs with its own few lines rather than promsync's verifier module: a push that
//! promsync accepts then shows that both sides read the scheme the same way.

use std::fmt;

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A shop's decoded webhook secret. Debug output never shows the key.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// A secret that is not `whsec_` followed by a non-empty base64 key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is `whsec_` followed by a non-empty base64 key")]
pub struct BadSecret;

impl std::str::FromStr for WebhookSecret {
    type Err = BadSecret;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        let key = secret
            .strip_prefix("whsec_")
            .and_then(|encoded| STANDARD.decode(encoded).ok())
            .filter(|key| !key.is_empty())
            .ok_or(BadSecret)?;
        Ok(Self(key))
    }
}

impl WebhookSecret {
    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_reference_message() {
        // The example of the Standard Webhooks specification.
        let secret: WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn only_whsec_secrets_with_a_key_are_taken() {
        for bad in [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_",
            "whsec_not base64!",
        ] {
            assert_eq!(
                bad.parse::<WebhookSecret>().unwrap_err(),
                BadSecret,
                "{bad}"
            );
        }
        assert!(
            !format!("{:?}", "whsec_c2VjcmV0".parse::<WebhookSecret>().unwrap())
                .contains("c2VjcmV0")
        );
    }
}
