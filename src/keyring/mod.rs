//! Shop secrets at rest (docs/SECURITY.md): Prom tokens and webhook secrets are stored
//! encrypted with AES-256-GCM under `PROMSYNC_SECRET_KEY`, in the columns they always had.
//!
//! A stored value is self-describing text, `enc:v1:<key id>:<base64url(nonce ‖ ciphertext)>`,
//! so no schema change was needed, a row says which key opens it, and a plaintext value
//! (rows written before a key was configured, or a deployment without a key) still reads.
//! Each ciphertext is bound to its shop and kind of secret by AEAD associated data, so a
//! value copied into another shop's row does not open. Both webhook-secret columns share
//! one binding: rotating a webhook secret moves the current value into
//! `previous_webhook_secret` as it is, and either value is a valid signing key of the
//! same shop anyway.
//!
//! Key rotation: the old key stays readable as a *previous* key
//! (`PROMSYNC_SECRET_KEY_PREVIOUS`) while `promsync secrets rotate` ([`rotate`])
//! re-encrypts every row under the current one.

pub mod rotate;

use std::{fmt, str::FromStr};

use aes_gcm::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
    Aes256Gcm, Nonce,
};
use base64::{engine::general_purpose, Engine as _};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Prefix of an encrypted value; the version names the format (cipher, layout, binding).
const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A key's short public name, stored beside each value it encrypted: the first 4 bytes
/// of a domain-separated SHA-256 of the key, in hex. It names the key without revealing
/// it, so reading picks the right key at once and an unknown one is a clear error.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; 4]);

/// A domain-separated SHA-256 of a key: its id is the start, and two keys are the same
/// key exactly when their fingerprints are equal.
fn fingerprint(key: &[u8; 32]) -> [u8; 32] {
    Sha256::new()
        .chain_update(b"promsync secret key id\0")
        .chain_update(key)
        .finalize()
        .into()
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(());
        }
        let mut id = [0u8; 4];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| ())?;
        }
        Ok(Self(id))
    }
}

/// One AES-256 key, parsed from its configured form (standard base64 of 32 bytes, as
/// `openssl rand -base64 32` prints it). `Debug` shows only its id.
#[derive(Clone)]
pub struct SecretKey {
    id: KeyId,
    fingerprint: [u8; 32],
    cipher: Aes256Gcm,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not standard base64 (generate one with `openssl rand -base64 32`)")]
    NotBase64,
    #[error("decodes to {0} bytes; an AES-256 key is 32 bytes (`openssl rand -base64 32`)")]
    WrongLength(usize),
}

impl FromStr for SecretKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, KeyError> {
        let bytes = general_purpose::STANDARD
            .decode(s.trim())
            .map_err(|_| KeyError::NotBase64)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength(bytes.len()))?;
        let fingerprint = fingerprint(&key);
        Ok(Self {
            id: KeyId([
                fingerprint[0],
                fingerprint[1],
                fingerprint[2],
                fingerprint[3],
            ]),
            fingerprint,
            cipher: Aes256Gcm::new(&key.into()),
        })
    }
}

impl SecretKey {
    pub fn id(&self) -> KeyId {
        self.id
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

/// Which secret of a shop a value is: part of what each ciphertext is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    PromToken,
    /// The current or the previous webhook secret (one binding, see the module header).
    WebhookSecret,
}

impl Field {
    pub const fn as_str(self) -> &'static str {
        match self {
            Field::PromToken => "prom_token",
            Field::WebhookSecret => "webhook_secret",
        }
    }
}

/// Where a secret is stored: its shop and kind. The associated data of its encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub shop_id: i64,
    pub field: Field,
}

impl Slot {
    pub const fn prom_token(shop_id: i64) -> Self {
        Self {
            shop_id,
            field: Field::PromToken,
        }
    }

    pub const fn webhook_secret(shop_id: i64) -> Self {
        Self {
            shop_id,
            field: Field::WebhookSecret,
        }
    }

    fn associated_data(&self) -> String {
        format!("promsync:shops:{}:{}", self.shop_id, self.field.as_str())
    }
}

/// A secret as the database holds it (plaintext or `enc:v1:…`), with the slot it was
/// read from; [`Keyring::open`] turns it into the secret itself. `Debug` never shows it.
#[derive(Clone)]
pub struct StoredSecret {
    slot: Option<Slot>,
    stored: SecretString,
}

impl StoredSecret {
    pub fn new(slot: Slot, stored: impl Into<String>) -> Self {
        Self {
            slot: Some(slot),
            stored: SecretString::from(stored.into()),
        }
    }

    /// A secret that was never stored (tools and tests that hold the value itself).
    pub fn plain(value: impl Into<String>) -> Self {
        Self {
            slot: None,
            stored: SecretString::from(value.into()),
        }
    }

    pub fn is_encrypted(&self) -> bool {
        self.stored.expose_secret().starts_with(PREFIX)
    }
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSecret")
            .field("slot", &self.slot)
            .field("encrypted", &self.is_encrypted())
            .finish_non_exhaustive()
    }
}

/// Why a secret could not be stored or read. The messages name the shop, the kind of
/// secret and the key id, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error(
        "the {field} of shop {shop_id} is encrypted under key {key_id}, which is not \
         configured (PROMSYNC_SECRET_KEY or PROMSYNC_SECRET_KEY_PREVIOUS)"
    )]
    UnknownKey {
        shop_id: i64,
        field: &'static str,
        key_id: String,
    },
    #[error(
        "the {field} of shop {shop_id} does not decrypt: it was altered or belongs to \
         another shop"
    )]
    Undecryptable { shop_id: i64, field: &'static str },
    #[error("the {field} of shop {shop_id} is not a valid encrypted value")]
    Malformed { shop_id: i64, field: &'static str },
    #[error("an encrypted value has no shop to belong to")]
    Unbound,
    /// Without a key a value is stored as it is, and one that looks encrypted would be
    /// misread later.
    #[error("a secret must not start with `enc:` (it would read as an encrypted value)")]
    LooksEncrypted,
    #[error("encryption failed")]
    Encrypt,
}

/// Why the configured keys cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringConfigError {
    #[error("previous keys are only read beside a current key: set secret_key too")]
    PreviousWithoutCurrent,
    #[error("two different keys share the id {0}: generate another key")]
    IdClash(KeyId),
}

/// The keys of a process: the current one encrypts (and reads), previous ones only
/// read. Without any, secrets are stored and read as plaintext.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    current: Option<SecretKey>,
    previous: Vec<SecretKey>,
}

impl Keyring {
    pub fn new(
        current: Option<SecretKey>,
        previous: Vec<SecretKey>,
    ) -> Result<Self, KeyringConfigError> {
        if current.is_none() && !previous.is_empty() {
            return Err(KeyringConfigError::PreviousWithoutCurrent);
        }
        let ring = Self { current, previous };
        // Ids are 32 bits: a clash of two distinct keys is all but impossible, but it
        // would make reading pick the wrong key, so it is refused rather than assumed.
        let keys: Vec<&SecretKey> = ring.keys().collect();
        for (i, a) in keys.iter().enumerate() {
            if keys[..i]
                .iter()
                .any(|b| b.id == a.id && b.fingerprint != a.fingerprint)
            {
                return Err(KeyringConfigError::IdClash(a.id));
            }
        }
        Ok(ring)
    }

    /// Whether new values are encrypted.
    pub fn is_enabled(&self) -> bool {
        self.current.is_some()
    }

    pub fn current_id(&self) -> Option<KeyId> {
        self.current.as_ref().map(SecretKey::id)
    }

    fn keys(&self) -> impl Iterator<Item = &SecretKey> {
        self.current.iter().chain(&self.previous)
    }

    /// The form to store `secret` in at `slot`: encrypted under the current key with a
    /// fresh random nonce, or the secret itself when no key is configured.
    pub fn seal(&self, slot: Slot, secret: &str) -> Result<String, KeyringError> {
        let Some(key) = &self.current else {
            self.check_storable(secret)?;
            return Ok(secret.to_owned());
        };
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = slot.associated_data();
        let ciphertext = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KeyringError::Encrypt)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ciphertext);
        Ok(format!(
            "{PREFIX}{}:{}",
            key.id,
            general_purpose::URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// Whether `secret` can be stored: without a key it is stored as it is, so it must
    /// not look like an encrypted value. Lets callers refuse bad input before writing.
    pub fn check_storable(&self, secret: &str) -> Result<(), KeyringError> {
        if self.current.is_none() && secret.starts_with("enc:") {
            return Err(KeyringError::LooksEncrypted);
        }
        Ok(())
    }

    /// The secret a stored value holds: plaintext passes through, an encrypted value is
    /// opened with the key it names and only for the slot it was sealed for.
    pub fn open(&self, stored: &StoredSecret) -> Result<SecretString, KeyringError> {
        let text = stored.stored.expose_secret();
        let Some(rest) = text.strip_prefix(PREFIX) else {
            return Ok(stored.stored.clone());
        };
        let slot = stored.slot.ok_or(KeyringError::Unbound)?;
        let malformed = || KeyringError::Malformed {
            shop_id: slot.shop_id,
            field: slot.field.as_str(),
        };
        let (key_id, blob) = rest.split_once(':').ok_or_else(malformed)?;
        let key_id: KeyId = key_id.parse().map_err(|()| malformed())?;
        let blob = general_purpose::URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| malformed())?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(malformed());
        }
        let key = self
            .keys()
            .find(|k| k.id == key_id)
            .ok_or_else(|| KeyringError::UnknownKey {
                shop_id: slot.shop_id,
                field: slot.field.as_str(),
                key_id: key_id.to_string(),
            })?;
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let aad = slot.associated_data();
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| KeyringError::Undecryptable {
                shop_id: slot.shop_id,
                field: slot.field.as_str(),
            })?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| malformed())
    }

    /// [`Keyring::open`] for a reader that treats an unavailable secret like a missing
    /// one (the ingress answers 401, as for an unknown shop); the reason is logged.
    pub fn open_logged(&self, slot: Slot, stored: String) -> Option<SecretString> {
        self.open(&StoredSecret::new(slot, stored))
            .inspect_err(|e| tracing::warn!(error = %e, "a shop secret is unavailable"))
            .ok()
    }

    /// Whether a stored value is already in the form [`Keyring::seal`] would give it
    /// now: encrypted under the current key (or, without a key, anything at all).
    pub fn is_current(&self, stored: &str) -> bool {
        let Some(key) = &self.current else {
            return true;
        };
        stored
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(id, _)| id.parse::<KeyId>().ok())
            .is_some_and(|id| id == key.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

    fn key(s: &str) -> SecretKey {
        s.parse().expect("valid key")
    }

    fn ring(current: &str, previous: &[&str]) -> Keyring {
        Keyring::new(
            Some(key(current)),
            previous.iter().map(|k| key(k)).collect(),
        )
        .unwrap()
    }

    fn open(ring: &Keyring, slot: Slot, stored: &str) -> Result<String, KeyringError> {
        ring.open(&StoredSecret::new(slot, stored))
            .map(|s| s.expose_secret().to_owned())
    }

    #[test]
    fn a_sealed_secret_opens_to_the_same_value_and_does_not_contain_it() {
        let ring = ring(KEY_A, &[]);
        let slot = Slot::prom_token(7);
        let stored = ring.seal(slot, "prom-token-123").unwrap();
        assert!(stored.starts_with(&format!("enc:v1:{}:", key(KEY_A).id())));
        assert!(!stored.contains("prom-token-123"));
        assert_eq!(open(&ring, slot, &stored).unwrap(), "prom-token-123");
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts() {
        let ring = ring(KEY_A, &[]);
        let slot = Slot::prom_token(7);
        assert_ne!(ring.seal(slot, "t").unwrap(), ring.seal(slot, "t").unwrap());
    }

    #[test]
    fn a_value_sealed_under_another_key_is_an_unknown_key_error() {
        let stored = ring(KEY_A, &[]).seal(Slot::prom_token(7), "t").unwrap();
        let err = open(&ring(KEY_B, &[]), Slot::prom_token(7), &stored).unwrap_err();
        assert_eq!(
            err,
            KeyringError::UnknownKey {
                shop_id: 7,
                field: "prom_token",
                key_id: key(KEY_A).id().to_string()
            }
        );
        assert!(err.to_string().contains("PROMSYNC_SECRET_KEY"));
    }

    #[test]
    fn a_value_moved_to_another_shop_or_field_does_not_open() {
        let ring = ring(KEY_A, &[]);
        let stored = ring.seal(Slot::prom_token(7), "t").unwrap();
        assert!(matches!(
            open(&ring, Slot::prom_token(8), &stored),
            Err(KeyringError::Undecryptable { shop_id: 8, .. })
        ));
        assert!(matches!(
            open(&ring, Slot::webhook_secret(7), &stored),
            Err(KeyringError::Undecryptable { .. })
        ));
    }

    #[test]
    fn an_altered_value_does_not_open() {
        let ring = ring(KEY_A, &[]);
        let stored = ring.seal(Slot::prom_token(7), "token").unwrap();
        let mut bytes = stored.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            open(&ring, Slot::prom_token(7), &altered),
            Err(KeyringError::Undecryptable { .. })
        ));
        assert!(matches!(
            open(&ring, Slot::prom_token(7), "enc:v1:zz:abc"),
            Err(KeyringError::Malformed { .. })
        ));
    }

    #[test]
    fn the_key_named_by_the_value_is_used_among_current_and_previous() {
        let old = ring(KEY_A, &[]).seal(Slot::prom_token(1), "old").unwrap();
        let rotated = ring(KEY_B, &[KEY_A]);
        let new = rotated.seal(Slot::prom_token(1), "new").unwrap();
        assert!(new.contains(&key(KEY_B).id().to_string()));
        assert_eq!(open(&rotated, Slot::prom_token(1), &old).unwrap(), "old");
        assert_eq!(open(&rotated, Slot::prom_token(1), &new).unwrap(), "new");
        assert!(!rotated.is_current(&old));
        assert!(rotated.is_current(&new));
        assert!(!rotated.is_current("legacy plaintext"));
    }

    #[test]
    fn plaintext_values_read_as_they_are_with_or_without_keys() {
        for ring in [Keyring::default(), ring(KEY_A, &[])] {
            assert_eq!(
                open(&ring, Slot::webhook_secret(3), "whsec_abc").unwrap(),
                "whsec_abc"
            );
        }
        let ring = Keyring::default();
        assert!(!ring.is_enabled());
        assert_eq!(ring.seal(Slot::prom_token(1), "tok").unwrap(), "tok");
        assert!(ring.is_current("tok"));
        assert_eq!(
            ring.seal(Slot::prom_token(1), "enc:x"),
            Err(KeyringError::LooksEncrypted)
        );
    }

    #[test]
    fn an_encrypted_value_without_a_keyring_is_an_error_not_plaintext() {
        let stored = ring(KEY_A, &[]).seal(Slot::prom_token(1), "t").unwrap();
        assert!(matches!(
            open(&Keyring::default(), Slot::prom_token(1), &stored),
            Err(KeyringError::UnknownKey { .. })
        ));
        assert_eq!(
            Keyring::default()
                .open(&StoredSecret::plain(stored))
                .unwrap_err(),
            KeyringError::Unbound
        );
    }

    #[test]
    fn bad_keys_are_refused_with_the_reason() {
        assert_eq!(
            "not base64!".parse::<SecretKey>().unwrap_err(),
            KeyError::NotBase64
        );
        assert_eq!(
            "c2hvcnQ=".parse::<SecretKey>().unwrap_err(),
            KeyError::WrongLength(5)
        );
        assert_eq!(
            Keyring::new(None, vec![key(KEY_A)]).unwrap_err(),
            KeyringConfigError::PreviousWithoutCurrent
        );
        // The same key twice is harmless (a rotation step repeated).
        assert!(Keyring::new(Some(key(KEY_A)), vec![key(KEY_A)]).is_ok());
    }

    #[test]
    fn debug_output_names_keys_and_slots_but_no_secret() {
        let ring = ring(KEY_A, &[]);
        assert!(!format!("{ring:?}").contains(KEY_A));
        let stored = StoredSecret::new(Slot::prom_token(1), "tok-secret");
        assert!(!format!("{stored:?}").contains("tok-secret"));
    }
}
