//! Command integrity on Kafka (docs/spec.md §9): whoever can write the commands topic must not be able to
//! silence a legal deadline.
//!
//! A command record carries the header `klaxon-signature: ed25519:<key_id>:<base64 signature>`,
//! an Ed25519 signature (RFC 8032, verified strictly) over the record value bytes exactly as
//! written. `[[commands.keys]]` lists the public keys and the principals (`by`) each may sign
//! for. The processor checks every command it reads from the repartition topic (the router
//! forwards the header with the untouched bytes), so a record written straight onto the internal
//! topic is checked as well.
//!
//! Private key files hold one line: the base64 of the 32-byte Ed25519 seed (the same bytes
//! `cryptography`'s `Ed25519PrivateKey.private_bytes(Raw)` or Go's `ed25519.NewKeyFromSeed` use),
//! so any producer can sign with a stock library; the README shows how.

use crate::settings::Settings;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::path::Path;
use thiserror::Error;

/// The record header that carries the signature.
pub const HEADER: &str = "klaxon-signature";

#[derive(Debug, Error)]
pub enum KeyError {
    #[error("{path}: {problem}")]
    File { path: String, problem: String },
}

/// Why a command was refused: the `reason` of its `command.rejected` event and the metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No signature, and `commands.require_signature` is on.
    Unsigned,
    /// A malformed header, an unknown key, or a signature that does not verify.
    BadSignature,
    /// A good signature by a key that may not sign for the command's `by`.
    PrincipalNotAllowed,
}

impl Refusal {
    pub const ALL: [Refusal; 3] = [
        Refusal::Unsigned,
        Refusal::BadSignature,
        Refusal::PrincipalNotAllowed,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::BadSignature => "bad_signature",
            Refusal::PrincipalNotAllowed => "principal_not_allowed",
        }
    }
}

/// A private key and the id it is known by in `[[commands.keys]]`.
pub struct CommandSigner {
    pub key_id: String,
    key: SigningKey,
}

impl std::fmt::Debug for CommandSigner {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommandSigner({})", self.key_id)
    }
}

impl CommandSigner {
    /// Reads a key file written by [`generate`].
    pub fn load(path: &Path, key_id: &str) -> Result<Self, KeyError> {
        let bad = |problem: String| KeyError::File {
            path: path.display().to_string(),
            problem,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let seed = B64.decode(text.trim()).map_err(|_| {
            bad("not a key file (expected one line: base64 of a 32-byte Ed25519 seed)".into())
        })?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| bad("the key is not 32 bytes".into()))?;
        Ok(CommandSigner {
            key_id: key_id.to_string(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The header value for a record whose value is `value`.
    pub fn sign(&self, value: &[u8]) -> String {
        let sig = self.key.sign(value);
        format!("ed25519:{}:{}", self.key_id, B64.encode(sig.to_bytes()))
    }

    /// Base64 of the public key, as `[[commands.keys]]` wants it.
    pub fn public_key(&self) -> String {
        B64.encode(self.key.verifying_key().to_bytes())
    }
}

/// Writes a new private key to `out` (mode 0600; an existing file is never overwritten) and
/// returns the public key, base64.
pub fn generate(out: &Path) -> Result<String, KeyError> {
    let bad = |problem: String| KeyError::File {
        path: out.display().to_string(),
        problem,
    };
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| bad(format!("no random source: {e}")))?;
    let key = SigningKey::from_bytes(&seed);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(out).map_err(|e| bad(e.to_string()))?;
    use std::io::Write;
    writeln!(f, "{}", B64.encode(seed)).map_err(|e| bad(e.to_string()))?;
    Ok(B64.encode(key.verifying_key().to_bytes()))
}

struct Key {
    id: String,
    key: VerifyingKey,
    any: bool,
    principals: Vec<String>,
}

/// Checks command signatures against `[[commands.keys]]`.
pub struct Verifier {
    keys: Vec<Key>,
    required: bool,
}

/// What the check found: the key that signed (its id is the command's `via` unless the command
/// names one) or why the command is refused.
pub type Verdict = Result<Option<String>, Refusal>;

impl Verifier {
    /// Keys that do not decode are left out (`check-config` reports them).
    pub fn from_settings(s: &Settings) -> Self {
        let keys = s
            .commands
            .keys
            .iter()
            .filter_map(|k| {
                Some(Key {
                    id: k.id.clone(),
                    key: public_key(&k.public_key).ok()?,
                    any: k.principals.iter().any(|p| p == "*"),
                    principals: k.principals.clone(),
                })
            })
            .collect();
        Verifier {
            keys,
            required: s.commands.require_signature,
        }
    }

    /// Checks one command record: its value bytes, its `klaxon-signature` header and its `by`.
    /// A signature that is present is always checked, even when none is required.
    pub fn verify(&self, value: &[u8], header: Option<&[u8]>, by: Option<&str>) -> Verdict {
        let Some(header) = header else {
            return if self.required {
                Err(Refusal::Unsigned)
            } else {
                Ok(None)
            };
        };
        let text = std::str::from_utf8(header).map_err(|_| Refusal::BadSignature)?;
        let rest = text.strip_prefix("ed25519:").ok_or(Refusal::BadSignature)?;
        let (id, sig) = rest.rsplit_once(':').ok_or(Refusal::BadSignature)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(Refusal::BadSignature)?;
        let sig = B64.decode(sig).map_err(|_| Refusal::BadSignature)?;
        let sig = Signature::from_slice(&sig).map_err(|_| Refusal::BadSignature)?;
        key.key
            .verify_strict(value, &sig)
            .map_err(|_| Refusal::BadSignature)?;
        let allowed = key.any || by.is_some_and(|b| key.principals.iter().any(|p| p == b));
        if !allowed {
            return Err(Refusal::PrincipalNotAllowed);
        }
        Ok(Some(key.id.clone()))
    }
}

fn public_key(b64: &str) -> Result<VerifyingKey, String> {
    let bytes = B64
        .decode(b64.trim())
        .map_err(|_| "not base64".to_string())?;
    let bytes: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "an Ed25519 public key is 32 bytes".to_string())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| "not a valid Ed25519 public key".to_string())
}

/// Problems in `[commands]` and `[desk]`, each with its key, for `check-config`.
pub fn check_settings(s: &Settings) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, k) in s.commands.keys.iter().enumerate() {
        let at = format!("commands.keys[{i}]");
        if k.id.trim().is_empty() || k.id.contains(':') {
            out.push((format!("{at}.id"), "must be non-empty, without ':'".into()));
        }
        if s.commands.keys[..i].iter().any(|o| o.id == k.id) {
            out.push((format!("{at}.id"), format!("duplicate key id {:?}", k.id)));
        }
        if let Err(e) = public_key(&k.public_key) {
            out.push((format!("{at}.public_key"), e));
        }
        if k.principals.is_empty() {
            out.push((
                format!("{at}.principals"),
                "must list the principals the key may sign for (\"*\" for any)".into(),
            ));
        }
    }
    let d = &s.desk;
    for (i, p) in d.principals.iter().enumerate() {
        let at = format!("desk.principals[{i}]");
        if p.name.trim().is_empty() {
            out.push((format!("{at}.name"), "must be non-empty".into()));
        }
        if d.principals[..i].iter().any(|o| o.name == p.name) {
            out.push((
                format!("{at}.name"),
                format!("duplicate principal {:?}", p.name),
            ));
        }
        if !["viewer", "duty_officer", "lead"].contains(&p.role.as_str()) {
            out.push((
                format!("{at}.role"),
                format!("expected viewer, duty_officer or lead, got {:?}", p.role),
            ));
        }
        let h = p.token_sha256.trim();
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push((
                format!("{at}.token_sha256"),
                "must be the hex SHA-256 of the token (64 hex digits)".into(),
            ));
        }
    }
    match (&d.signing_key_file, &d.signing_key_id) {
        (Some(_), None) => out.push((
            "desk.signing_key_id".into(),
            "required with desk.signing_key_file".into(),
        )),
        (None, Some(_)) => out.push((
            "desk.signing_key_file".into(),
            "required with desk.signing_key_id".into(),
        )),
        (Some(_), Some(id)) if !s.commands.keys.iter().any(|k| &k.id == id) => out.push((
            "desk.signing_key_id".into(),
            format!("{id:?} is not in [[commands.keys]]: commands the desk signs would be refused"),
        )),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(principals: &[&str], required: bool) -> (CommandSigner, Verifier) {
        let signer = CommandSigner {
            key_id: "k1".into(),
            key: SigningKey::from_bytes(&[7u8; 32]),
        };
        let v = Verifier {
            keys: vec![Key {
                id: "k1".into(),
                key: signer.key.verifying_key(),
                any: principals.contains(&"*"),
                principals: principals.iter().map(|s| s.to_string()).collect(),
            }],
            required,
        };
        (signer, v)
    }

    #[test]
    fn signed_unsigned_forged_and_out_of_scope() {
        let (s, v) = verifier(&["alice"], true);
        let value = br#"{"command":"ack","by":"alice"}"#;
        let h = s.sign(value);
        assert_eq!(
            v.verify(value, Some(h.as_bytes()), Some("alice")),
            Ok(Some("k1".into()))
        );
        assert_eq!(v.verify(value, None, Some("alice")), Err(Refusal::Unsigned));
        let tampered = br#"{"command":"ack","by":"mallory"}"#;
        assert_eq!(
            v.verify(tampered, Some(h.as_bytes()), Some("mallory")),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            v.verify(value, Some(b"ed25519:k2:AAAA"), Some("alice")),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            v.verify(value, Some(b"garbage"), Some("alice")),
            Err(Refusal::BadSignature)
        );
        let bob = br#"{"command":"ack","by":"bob"}"#;
        let hb = s.sign(bob);
        assert_eq!(
            v.verify(bob, Some(hb.as_bytes()), Some("bob")),
            Err(Refusal::PrincipalNotAllowed)
        );
        assert_eq!(
            v.verify(bob, Some(hb.as_bytes()), None),
            Err(Refusal::PrincipalNotAllowed)
        );
    }

    #[test]
    fn a_wildcard_key_signs_for_anyone_and_signatures_are_optional_when_allowed() {
        let (s, v) = verifier(&["*"], false);
        let value = b"{}";
        assert_eq!(v.verify(value, None, None), Ok(None));
        let h = s.sign(value);
        assert_eq!(
            v.verify(value, Some(h.as_bytes()), Some("anyone")),
            Ok(Some("k1".into()))
        );
        // A present signature is checked even when none is required.
        assert_eq!(
            v.verify(b"{ }", Some(h.as_bytes()), None),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn keygen_writes_a_private_file_that_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let public = generate(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let signer = CommandSigner::load(&path, "ops").unwrap();
        assert_eq!(signer.public_key(), public);
        assert!(generate(&path).is_err(), "never overwrites a key");
    }
}
