//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256>` over
//! `"{webhook-id}.{webhook-timestamp}.{raw body}"`, keyed by the base64 part of a
//! `whsec_…` secret. Verification accepts any one valid signature from any one of the
//! shop's current keys (rotation), compared in constant time.
//!
//! The door is open to anyone, so a forged request must cost little: the header is
//! refused beyond [`MAX_SIGNATURE_HEADER`] bytes, at most [`MAX_CANDIDATES`] signatures
//! are looked at, and each key's tag is computed once over the body and compared with
//! every candidate, never recomputed per candidate. A forgery costs one HMAC per key.

use std::{fmt, str::FromStr};

use base64::{engine::general_purpose::STANDARD, Engine as _};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Longest `webhook-signature` header looked at. Eight signatures of a 32-byte HMAC take
/// about 390 bytes; anything far beyond that is not a sender rotating keys.
pub const MAX_SIGNATURE_HEADER: usize = 1024;
/// Most signatures of one header that are checked. Standard Webhooks senders put one per
/// key they hold, which is two during a rotation; the rest of a longer list is ignored.
pub const MAX_CANDIDATES: usize = 8;
/// Longest `webhook-id` accepted: senders use short unique ids (`msg_…`), and the id is
/// part of the signed content, so an endless one would be hashed for nothing.
pub const MAX_ID_LEN: usize = 256;
/// An HMAC-SHA256 tag's length: a candidate of another length can never match.
const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// A decoded shop secret. Debug output never shows the key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningKeyError {
    #[error("a webhook secret starts with `whsec_`")]
    MissingPrefix,
    #[error("a webhook secret's key is base64")]
    NotBase64,
    #[error("a webhook secret's key must not be empty")]
    Empty,
}

impl FromStr for SigningKey {
    type Err = SigningKeyError;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        let encoded = secret
            .strip_prefix("whsec_")
            .ok_or(SigningKeyError::MissingPrefix)?;
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SigningKeyError::NotBase64)?;
        if key.is_empty() {
            return Err(SigningKeyError::Empty);
        }
        Ok(Self(key))
    }
}

impl SigningKey {
    fn mac(&self, msg_id: &str, timestamp: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `webhook-signature` header value for a message (used by senders and tests).
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let tag = self
            .mac(msg_id, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("v1,{}", STANDARD.encode(tag))
    }
}

/// Why a notification was refused. The HTTP answer is the same 401 for all of them (no
/// hints to a forger); the variant goes to metrics and logs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("missing or unreadable header `{0}`")]
    MissingHeader(&'static str),
    #[error("webhook-timestamp is not a unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the tolerance")]
    StaleTimestamp,
    #[error("no valid signature")]
    NoValidSignature,
    #[error("webhook-signature is longer than {MAX_SIGNATURE_HEADER} bytes")]
    OversizedSignatureHeader,
}

impl VerifyError {
    /// The failure's label on the signature-failure metric.
    pub fn label(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) => "missing_header",
            VerifyError::BadTimestamp => "bad_timestamp",
            VerifyError::StaleTimestamp => "stale_timestamp",
            VerifyError::NoValidSignature => "no_valid_signature",
            VerifyError::OversizedSignatureHeader => "oversized_header",
        }
    }
}

pub struct SignedMessage<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// Checks headers, timestamp tolerance and signatures against every key of the shop.
pub fn verify(
    keys: &[SigningKey],
    message: &SignedMessage<'_>,
    now_unix: i64,
    tolerance_s: u64,
) -> Result<(), VerifyError> {
    let id = message
        .id
        .filter(|s| !s.is_empty() && s.len() <= MAX_ID_LEN)
        .ok_or(VerifyError::MissingHeader("webhook-id"))?;
    let timestamp = message
        .timestamp
        .ok_or(VerifyError::MissingHeader("webhook-timestamp"))?;
    let signatures = message
        .signature
        .ok_or(VerifyError::MissingHeader("webhook-signature"))?;
    let sent_at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if now_unix.abs_diff(sent_at) > tolerance_s {
        return Err(VerifyError::StaleTimestamp);
    }
    if signatures.len() > MAX_SIGNATURE_HEADER {
        return Err(VerifyError::OversizedSignatureHeader);
    }
    let candidates: Vec<[u8; TAG_LEN]> = signatures
        .split(' ')
        .filter_map(|part| part.strip_prefix("v1,"))
        .take(MAX_CANDIDATES)
        .filter_map(|b64| STANDARD.decode(b64).ok()?.try_into().ok())
        .collect();
    if candidates.is_empty() {
        return Err(VerifyError::NoValidSignature);
    }
    let mut valid = subtle::Choice::from(0);
    for key in keys {
        let tag = key
            .mac(id, timestamp.trim(), message.body)
            .finalize()
            .into_bytes();
        // Every candidate is compared (no early exit), so timing says nothing of which
        // one, if any, matched.
        for candidate in &candidates {
            valid |= tag.as_slice().ct_eq(candidate);
        }
    }
    if bool::from(valid) {
        Ok(())
    } else {
        Err(VerifyError::NoValidSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_700_000_000;

    fn key() -> SigningKey {
        SECRET.parse().unwrap()
    }

    fn message<'a>(sig: &'a str, ts: &'a str, body: &'a [u8]) -> SignedMessage<'a> {
        SignedMessage {
            id: Some("msg_1"),
            timestamp: Some(ts),
            signature: Some(sig),
            body,
        }
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks specification's examples.
        let key: SigningKey = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".parse().unwrap();
        let sig = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_correct_signature_passes() {
        let body = br#"{"order_id":1}"#;
        let sig = key().sign("msg_1", NOW, body);
        let ts = NOW.to_string();
        assert_eq!(
            verify(&[key()], &message(&sig, &ts, body), NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn the_simulator_s_independent_signing_verifies() {
        let secret: promsync_simulator::signature::WebhookSecret = SECRET.parse().unwrap();
        let body = br#"{"order":{"id":1}}"#;
        let sig = secret.sign("msg_1", NOW, body);
        let ts = NOW.to_string();
        assert_eq!(
            verify(&[key()], &message(&sig, &ts, body), NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn any_one_of_several_signatures_and_keys_passes() {
        let body = b"{}";
        let old: SigningKey = "whsec_c2Vjb25k".parse().unwrap();
        let sig = format!("v1,Zm9v {}", old.sign("msg_1", NOW, body));
        let ts = NOW.to_string();
        assert_eq!(
            verify(&[key(), old], &message(&sig, &ts, body), NOW, 300),
            Ok(())
        );
    }

    #[test]
    fn a_tampered_body_fails() {
        let sig = key().sign("msg_1", NOW, b"{\"a\":1}");
        let ts = NOW.to_string();
        assert_eq!(
            verify(&[key()], &message(&sig, &ts, b"{\"a\":2}"), NOW, 300),
            Err(VerifyError::NoValidSignature)
        );
    }

    #[test]
    fn a_timestamp_beyond_tolerance_fails_either_way() {
        let body = b"{}";
        for sent in [NOW - 301, NOW + 301] {
            let sig = key().sign("msg_1", sent, body);
            let ts = sent.to_string();
            assert_eq!(
                verify(&[key()], &message(&sig, &ts, body), NOW, 300),
                Err(VerifyError::StaleTimestamp)
            );
        }
    }

    #[test]
    fn missing_headers_are_named() {
        let m = SignedMessage {
            id: None,
            timestamp: None,
            signature: None,
            body: b"",
        };
        assert_eq!(
            verify(&[key()], &m, NOW, 300),
            Err(VerifyError::MissingHeader("webhook-id"))
        );
    }

    #[test]
    fn a_valid_signature_after_the_first_eight_candidates_is_not_looked_at() {
        let body = b"{}";
        let good = key().sign("msg_1", NOW, body);
        let ts = NOW.to_string();
        let within = format!("{} {good}", ["v1,Zm9v"; MAX_CANDIDATES - 1].join(" "));
        let beyond = format!("{} {good}", ["v1,Zm9v"; MAX_CANDIDATES].join(" "));
        assert_eq!(
            verify(&[key()], &message(&within, &ts, body), NOW, 300),
            Ok(())
        );
        assert_eq!(
            verify(&[key()], &message(&beyond, &ts, body), NOW, 300),
            Err(VerifyError::NoValidSignature)
        );
    }

    #[test]
    fn an_oversized_signature_header_is_refused_before_any_hmac() {
        let body = b"{}";
        let good = key().sign("msg_1", NOW, body);
        let ts = NOW.to_string();
        let padded = format!("{good}{}", " ".repeat(MAX_SIGNATURE_HEADER));
        assert_eq!(
            verify(&[key()], &message(&padded, &ts, body), NOW, 300),
            Err(VerifyError::OversizedSignatureHeader)
        );
    }

    #[test]
    fn a_signature_of_the_wrong_length_never_matches() {
        let body = b"{}";
        let good = key().sign("msg_1", NOW, body);
        let ts = NOW.to_string();
        // The first 16 bytes of the right tag: a prefix must not pass.
        let tag = STANDARD.decode(good.strip_prefix("v1,").unwrap()).unwrap();
        let short = format!("v1,{}", STANDARD.encode(&tag[..16]));
        assert_eq!(
            verify(&[key()], &message(&short, &ts, body), NOW, 300),
            Err(VerifyError::NoValidSignature)
        );
    }

    #[test]
    fn malformed_secrets_are_rejected() {
        assert_eq!(
            "abc".parse::<SigningKey>().unwrap_err(),
            SigningKeyError::MissingPrefix
        );
        assert_eq!(
            "whsec_!!".parse::<SigningKey>().unwrap_err(),
            SigningKeyError::NotBase64
        );
        assert!(format!("{:?}", key()).contains(".."));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn any_header_is_refused_without_a_panic(
                signature in "(v1,[A-Za-z0-9+/=]{0,50} ?){0,12}|\\PC{0,200}",
                id in "\\PC{0,300}",
                timestamp in "[-+ ]?[0-9]{0,22}",
            ) {
                let body = b"{}";
                let m = SignedMessage {
                    id: Some(&id),
                    timestamp: Some(&timestamp),
                    signature: Some(&signature),
                    body,
                };
                prop_assert!(verify(&[key()], &m, NOW, 300).is_err());
            }

            #[test]
            fn what_a_key_signs_it_verifies(
                id in "[!-~]{1,256}",
                skew in -300i64..=300,
                body in prop::collection::vec(any::<u8>(), 0..512),
                extra in 0usize..MAX_CANDIDATES,
            ) {
                let sent_at = NOW + skew;
                let sig = key().sign(&id, sent_at, &body);
                // The real signature among a few others, as during a rotation.
                let header = format!("{}{sig}", "v1,Zm9v ".repeat(extra));
                let ts = sent_at.to_string();
                let m = SignedMessage { id: Some(&id), timestamp: Some(&ts), signature: Some(&header), body: &body };
                prop_assert_eq!(verify(&[key()], &m, NOW, 300), Ok(()));
            }
        }
    }
}
