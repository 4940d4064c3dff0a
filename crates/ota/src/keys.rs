//! Who may sign a package. A box trusts the public keys its image carries,
//! each until its expiry; a release is signed with one or more private keys
//! that never leave the release team. Several keys with overlapping
//! lifetimes let a key be rotated without a flag day.

use std::path::Path;
use std::time::SystemTime;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::OtaError;

/// One key a box accepts signatures from.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// Names the key in signatures and messages.
    pub id: String,
    /// The ed25519 public key, hex.
    pub public_key: String,
    /// After this moment (RFC 3339) signatures by the key are refused.
    pub expires: String,
}

/// The trusted-keys file the image bakes in.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKeys {
    /// The keys.
    #[serde(rename = "key", default)]
    pub keys: Vec<TrustedKey>,
}

impl TrustedKeys {
    /// Reads and checks the file: every key must parse and have a valid
    /// expiry, and ids must be unique.
    pub fn load(path: &Path) -> Result<TrustedKeys, OtaError> {
        let text = std::fs::read_to_string(path).map_err(|source| OtaError::Io {
            what: format!("reading the trusted keys {}", path.display()),
            source,
        })?;
        let keys: TrustedKeys = toml::from_str(&text).map_err(|error| OtaError::TrustedKeys {
            path: path.to_owned(),
            reason: error.to_string(),
        })?;
        let bad = |reason: String| OtaError::TrustedKeys {
            path: path.to_owned(),
            reason,
        };
        if keys.keys.is_empty() {
            return Err(bad("lists no key: no package could be installed".into()));
        }
        let mut ids = std::collections::HashSet::new();
        for key in &keys.keys {
            if !ids.insert(key.id.as_str()) {
                return Err(bad(format!("key {} appears twice", key.id)));
            }
            parse_public_key(&key.public_key)
                .map_err(|reason| bad(format!("key {}: {reason}", key.id)))?;
            humantime::parse_rfc3339(&key.expires).map_err(|error| {
                bad(format!(
                    "key {}: expires {:?}: {error}",
                    key.id, key.expires
                ))
            })?;
        }
        Ok(keys)
    }

    /// Finds a signature over `message` by a key trusted at `now`. When none
    /// holds, the error names the most telling failure: a signature that
    /// does not match (tampering) before an expired key before an unknown
    /// one.
    pub fn verify(
        &self,
        message: &[u8],
        signatures: &Signatures,
        now: SystemTime,
    ) -> Result<&TrustedKey, OtaError> {
        let mut mismatch = None;
        let mut expired = None;
        let mut unknown = None;
        for signed in &signatures.signatures {
            let Some(key) = self.keys.iter().find(|key| key.id == signed.key_id) else {
                unknown = Some(signed.key_id.clone());
                continue;
            };
            let public = parse_public_key(&key.public_key).expect("checked at load");
            let valid = parse_signature(&signed.signature)
                .is_ok_and(|signature| public.verify(message, &signature).is_ok());
            if !valid {
                mismatch = Some(key.id.clone());
                continue;
            }
            let expires = humantime::parse_rfc3339(&key.expires).expect("checked at load");
            if now >= expires {
                expired = Some((key.id.clone(), key.expires.clone()));
                continue;
            }
            return Ok(key);
        }
        Err(match (mismatch, expired, unknown) {
            (Some(key), _, _) => OtaError::BadSignature { key },
            (None, Some((key, expires)), _) => OtaError::KeyExpired { key, expires },
            (None, None, Some(key)) => OtaError::UnknownKey { key },
            (None, None, None) => OtaError::Unsigned,
        })
    }
}

/// The signatures a package carries over its manifest.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Signatures {
    /// One per signing key.
    pub signatures: Vec<SignatureEntry>,
}

/// One signature.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignatureEntry {
    /// The signing key's id.
    pub key_id: String,
    /// ed25519 over the manifest's bytes, hex.
    pub signature: String,
}

/// A private signing key as the release team keeps it (never on a box).
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyFile {
    /// The id boxes know the matching public key by.
    pub id: String,
    /// The ed25519 seed, hex.
    pub secret_key: String,
}

impl SigningKeyFile {
    /// A new random key.
    pub fn generate(id: &str) -> Result<SigningKeyFile, OtaError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|error| OtaError::Crypto(format!("no randomness for a key: {error}")))?;
        Ok(SigningKeyFile {
            id: id.to_owned(),
            secret_key: hex::encode(seed),
        })
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> Result<SigningKeyFile, OtaError> {
        let text = std::fs::read_to_string(path).map_err(|source| OtaError::Io {
            what: format!("reading the signing key {}", path.display()),
            source,
        })?;
        let file: SigningKeyFile = toml::from_str(&text)
            .map_err(|error| OtaError::Crypto(format!("{}: {error}", path.display())))?;
        file.key()?;
        Ok(file)
    }

    fn key(&self) -> Result<SigningKey, OtaError> {
        let seed: [u8; 32] = hex::decode(&self.secret_key)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                OtaError::Crypto(format!(
                    "signing key {}: secret_key is not 64 hex digits",
                    self.id
                ))
            })?;
        Ok(SigningKey::from_bytes(&seed))
    }

    /// The public key, hex, for the trusted-keys file.
    pub fn public_key_hex(&self) -> Result<String, OtaError> {
        Ok(hex::encode(self.key()?.verifying_key().as_bytes()))
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<SignatureEntry, OtaError> {
        Ok(SignatureEntry {
            key_id: self.id.clone(),
            signature: hex::encode(self.key()?.sign(message).to_bytes()),
        })
    }
}

fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let bytes: [u8; 32] = hex::decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or("public_key is not 64 hex digits")?;
    VerifyingKey::from_bytes(&bytes).map_err(|error| format!("public_key: {error}"))
}

fn parse_signature(text: &str) -> Result<Signature, ()> {
    let bytes: [u8; 64] = hex::decode(text)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(())?;
    Ok(Signature::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn trusted(key: &SigningKeyFile, expires: &str) -> TrustedKeys {
        TrustedKeys {
            keys: vec![TrustedKey {
                id: key.id.clone(),
                public_key: key.public_key_hex().unwrap(),
                expires: expires.into(),
            }],
        }
    }

    fn signed(key: &SigningKeyFile, message: &[u8]) -> Signatures {
        Signatures {
            signatures: vec![key.sign(message).unwrap()],
        }
    }

    fn at(text: &str) -> SystemTime {
        humantime::parse_rfc3339(text).unwrap()
    }

    #[test]
    fn a_signature_by_a_trusted_key_holds_until_the_key_expires() {
        let key = SigningKeyFile::generate("release-2026").unwrap();
        let keys = trusted(&key, "2027-01-01T00:00:00Z");
        let signatures = signed(&key, b"manifest");
        let now = at("2026-11-29T00:00:00Z");
        assert_eq!(
            keys.verify(b"manifest", &signatures, now).unwrap().id,
            "release-2026"
        );
        let later = at("2027-01-01T00:00:00Z") + Duration::from_secs(1);
        let error = keys.verify(b"manifest", &signatures, later).unwrap_err();
        assert!(
            error.to_string().contains("release-2026 expired"),
            "{error}"
        );
    }

    #[test]
    fn a_changed_message_fails_and_names_the_key() {
        let key = SigningKeyFile::generate("release").unwrap();
        let keys = trusted(&key, "2099-01-01T00:00:00Z");
        let error = keys
            .verify(b"manifest!", &signed(&key, b"manifest"), SystemTime::now())
            .unwrap_err();
        assert!(matches!(error, OtaError::BadSignature { ref key } if key == "release"));
    }

    #[test]
    fn during_a_rotation_either_key_is_enough() {
        let old = SigningKeyFile::generate("old").unwrap();
        let new = SigningKeyFile::generate("new").unwrap();
        let mut keys = trusted(&old, "2026-12-31T00:00:00Z");
        keys.keys.extend(trusted(&new, "2028-12-31T00:00:00Z").keys);
        let both = Signatures {
            signatures: vec![old.sign(b"m").unwrap(), new.sign(b"m").unwrap()],
        };
        let after_old_expired = at("2027-06-01T00:00:00Z");
        assert_eq!(
            keys.verify(b"m", &both, after_old_expired).unwrap().id,
            "new"
        );
        let unknown = SigningKeyFile::generate("stranger").unwrap();
        let error = keys
            .verify(b"m", &signed(&unknown, b"m"), after_old_expired)
            .unwrap_err();
        assert!(matches!(error, OtaError::UnknownKey { .. }), "{error}");
    }
}
