//! Who may sign a package. A box trusts the public keys its image carries,
//! each until its expiry; a release is signed with one or more private keys
//! that never leave the release team. Several keys with overlapping
//! lifetimes let a key be rotated without a flag day.

use std::collections::BTreeSet;
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

    /// The trusted keys whose signatures over `message` hold, checked
    /// before anything in the message is read. When none holds, the error
    /// names the most telling failure: a known key whose signature does
    /// not match (tampering), before a key the box does not know, before no
    /// signature at all.
    pub(crate) fn signers(
        &self,
        message: &[u8],
        signatures: &Signatures,
    ) -> Result<Signers<'_>, OtaError> {
        let mut signers = Signers {
            valid: Vec::new(),
            mismatch: None,
        };
        let mut unknown = None;
        for signed in &signatures.signatures {
            let Some(key) = self.keys.iter().find(|key| key.id == signed.key_id) else {
                unknown = Some(signed.key_id.clone());
                continue;
            };
            let public = parse_public_key(&key.public_key).expect("checked at load");
            let valid = parse_signature(&signed.signature)
                .is_ok_and(|signature| public.verify(message, &signature).is_ok());
            if valid {
                signers.valid.push(key);
            } else {
                signers.mismatch = Some(key.id.clone());
            }
        }
        if !signers.valid.is_empty() {
            return Ok(signers);
        }
        Err(match (signers.mismatch, unknown) {
            (Some(key), _) => OtaError::BadSignature { key },
            (None, Some(key)) => OtaError::UnknownKey { key },
            (None, None) => OtaError::Unsigned,
        })
    }
}

/// What a box judges a signature by besides the keys its image trusts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// The box's wall clock.
    pub clock: SystemTime,
    /// A time the box knows has passed, whatever its clock says: the
    /// signing time of the newest package it accepted. Expiry is judged at
    /// the later of this and the clock, so a clock that fell behind (an RTC
    /// reset to 1970) does not bring an expired key back.
    pub trusted_time: Option<SystemTime>,
    /// Keys revoked by packages the box accepted, by id.
    pub revoked: BTreeSet<String>,
}

impl Trust {
    /// By the clock alone: no key revoked and no trusted time, as on a box
    /// before its first start.
    pub fn clock(clock: SystemTime) -> Trust {
        Trust {
            clock,
            trusted_time: None,
            revoked: BTreeSet::new(),
        }
    }

    /// When expiry is judged: the later of the clock and the trusted time.
    pub fn now(&self) -> SystemTime {
        self.trusted_time
            .map_or(self.clock, |trusted| trusted.max(self.clock))
    }
}

/// The trusted keys whose signatures over a manifest hold, before the box's
/// rules (revocation, expiry) are applied.
pub(crate) struct Signers<'a> {
    valid: Vec<&'a TrustedKey>,
    /// A known key whose signature did not match.
    mismatch: Option<String>,
}

impl<'a> Signers<'a> {
    /// The first signer the box accepts for a package made at `created`
    /// that revokes `revokes`: not revoked on the box, not revoked by the
    /// package itself, not expired when the package was made, and not
    /// expired at [`Trust::now`]. When none is, the error names the most
    /// telling failure, in this order: a signature that does not match, a
    /// revoked key, a key the package revokes, a package made after its
    /// key expired, a key expired by the clock, a key expired by the
    /// trusted time.
    pub(crate) fn accept(
        &self,
        trust: &Trust,
        created: SystemTime,
        revokes: &[String],
    ) -> Result<&'a TrustedKey, OtaError> {
        let mut refusals = Vec::new();
        for key in &self.valid {
            match refusal(key, trust, created, revokes) {
                None => return Ok(key),
                Some(refused) => refusals.push(refused),
            }
        }
        if let Some(key) = &self.mismatch {
            return Err(OtaError::BadSignature { key: key.clone() });
        }
        Err(refusals
            .into_iter()
            .min_by_key(telling)
            .expect("at least one signature held"))
    }
}

/// Why the box refuses a signature by `key` (already checked to hold).
fn refusal(
    key: &TrustedKey,
    trust: &Trust,
    created: SystemTime,
    revokes: &[String],
) -> Option<OtaError> {
    let id = || key.id.clone();
    if trust.revoked.contains(&key.id) {
        return Some(OtaError::KeyRevoked { key: id() });
    }
    if revokes.contains(&key.id) {
        return Some(OtaError::RevokesItsSigner { key: id() });
    }
    let expires = humantime::parse_rfc3339(&key.expires).expect("checked at load");
    if created >= expires {
        return Some(OtaError::SignedAfterExpiry {
            key: id(),
            expires: key.expires.clone(),
            created: rfc3339(created),
        });
    }
    if trust.clock >= expires {
        return Some(OtaError::KeyExpired {
            key: id(),
            expires: key.expires.clone(),
        });
    }
    if trust.now() >= expires {
        return Some(OtaError::KeyExpiredAtTrustedTime {
            key: id(),
            expires: key.expires.clone(),
            trusted_time: rfc3339(trust.now()),
            clock: rfc3339(trust.clock),
        });
    }
    None
}

/// Orders refusals as [`Signers::accept`] reports them, most telling first.
fn telling(error: &OtaError) -> u8 {
    match error {
        OtaError::KeyRevoked { .. } => 0,
        OtaError::RevokesItsSigner { .. } => 1,
        OtaError::SignedAfterExpiry { .. } => 2,
        OtaError::KeyExpired { .. } => 3,
        _ => 4,
    }
}

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
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

    /// The id of the key the box accepts for a package made at `created`
    /// that revokes `revokes`.
    fn accepted(
        keys: &TrustedKeys,
        message: &[u8],
        signatures: &Signatures,
        trust: &Trust,
        created: SystemTime,
        revokes: &[String],
    ) -> Result<String, OtaError> {
        let signers = keys.signers(message, signatures)?;
        Ok(signers.accept(trust, created, revokes)?.id.clone())
    }

    /// [`accepted`] at `now` by the clock alone, for a package made then.
    fn verify(
        keys: &TrustedKeys,
        message: &[u8],
        signatures: &Signatures,
        now: SystemTime,
    ) -> Result<String, OtaError> {
        accepted(keys, message, signatures, &Trust::clock(now), now, &[])
    }

    #[test]
    fn a_signature_by_a_trusted_key_holds_until_the_key_expires() {
        let key = SigningKeyFile::generate("release-2026").unwrap();
        let keys = trusted(&key, "2027-01-01T00:00:00Z");
        let signatures = signed(&key, b"manifest");
        let made = at("2026-11-29T00:00:00Z");
        let trust = Trust::clock(made);
        assert_eq!(
            accepted(&keys, b"manifest", &signatures, &trust, made, &[]).unwrap(),
            "release-2026"
        );
        let later = Trust::clock(at("2027-01-01T00:00:00Z") + Duration::from_secs(1));
        let error = accepted(&keys, b"manifest", &signatures, &later, made, &[]).unwrap_err();
        assert!(
            error.to_string().contains("release-2026 expired"),
            "{error}"
        );
    }

    #[test]
    fn a_changed_message_fails_and_names_the_key() {
        let key = SigningKeyFile::generate("release").unwrap();
        let keys = trusted(&key, "2099-01-01T00:00:00Z");
        let error = verify(
            &keys,
            b"manifest!",
            &signed(&key, b"manifest"),
            SystemTime::now(),
        )
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
            verify(&keys, b"m", &both, after_old_expired).unwrap(),
            "new"
        );
        let unknown = SigningKeyFile::generate("stranger").unwrap();
        let error = verify(&keys, b"m", &signed(&unknown, b"m"), after_old_expired).unwrap_err();
        assert!(matches!(error, OtaError::UnknownKey { .. }), "{error}");
    }

    #[test]
    fn a_revoked_key_is_refused_by_name_while_the_image_still_trusts_it() {
        let key = SigningKeyFile::generate("leaked").unwrap();
        let keys = trusted(&key, "2099-01-01T00:00:00Z");
        let now = at("2026-11-29T00:00:00Z");
        let mut trust = Trust::clock(now);
        trust.revoked.insert("leaked".into());

        let error = accepted(&keys, b"m", &signed(&key, b"m"), &trust, now, &[]).unwrap_err();

        assert!(matches!(error, OtaError::KeyRevoked { ref key } if key == "leaked"));
        assert!(error.to_string().contains("leaked was revoked"), "{error}");
    }

    #[test]
    fn a_package_cannot_vouch_for_itself_with_a_key_it_revokes() {
        let old = SigningKeyFile::generate("old").unwrap();
        let new = SigningKeyFile::generate("new").unwrap();
        let mut keys = trusted(&old, "2099-01-01T00:00:00Z");
        keys.keys.extend(trusted(&new, "2099-01-01T00:00:00Z").keys);
        let now = at("2026-11-29T00:00:00Z");
        let trust = Trust::clock(now);
        let revokes = ["old".to_owned()];

        let error = accepted(&keys, b"m", &signed(&old, b"m"), &trust, now, &revokes).unwrap_err();

        assert!(matches!(error, OtaError::RevokesItsSigner { ref key } if key == "old"));
        assert!(
            error
                .to_string()
                .contains("signed by a key it does not revoke"),
            "{error}"
        );
        let both = Signatures {
            signatures: vec![old.sign(b"m").unwrap(), new.sign(b"m").unwrap()],
        };
        assert_eq!(
            accepted(&keys, b"m", &both, &trust, now, &revokes).unwrap(),
            "new"
        );
    }

    #[test]
    fn a_clock_reset_to_1970_does_not_bring_back_a_key_expired_at_the_trusted_time() {
        let key = SigningKeyFile::generate("release-2026").unwrap();
        let keys = trusted(&key, "2027-01-01T00:00:00Z");
        let made = at("2026-11-29T00:00:00Z");
        let trust = Trust {
            clock: SystemTime::UNIX_EPOCH,
            trusted_time: Some(at("2027-03-01T00:00:00Z")),
            revoked: BTreeSet::new(),
        };

        let error = accepted(&keys, b"m", &signed(&key, b"m"), &trust, made, &[]).unwrap_err();

        assert!(
            matches!(error, OtaError::KeyExpiredAtTrustedTime { ref key, .. } if key == "release-2026"),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("trusted time 2027-03-01T00:00:00Z")
                && message.contains("clock says 1970-01-01T00:00:00Z"),
            "{message}"
        );
        // By the clock alone, 1970 is long before the expiry.
        assert!(
            accepted(
                &keys,
                b"m",
                &signed(&key, b"m"),
                &Trust::clock(SystemTime::UNIX_EPOCH),
                made,
                &[]
            )
            .is_ok()
        );
    }

    #[test]
    fn a_package_made_after_its_key_expired_is_refused_whatever_the_clock() {
        let key = SigningKeyFile::generate("release-2026").unwrap();
        let keys = trusted(&key, "2027-01-01T00:00:00Z");
        let trust = Trust::clock(at("2026-06-01T00:00:00Z"));

        let made = at("2027-02-01T00:00:00Z");
        let error = accepted(&keys, b"m", &signed(&key, b"m"), &trust, made, &[]).unwrap_err();

        assert!(
            matches!(error, OtaError::SignedAfterExpiry { .. }),
            "{error:?}"
        );
        assert!(
            error
                .to_string()
                .contains("release-2026 expired at 2027-01-01T00:00:00Z, before the package was made at 2027-02-01T00:00:00Z"),
            "{error}"
        );
    }
}
