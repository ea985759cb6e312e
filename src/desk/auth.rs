//! Who is asking: bearer tokens checked against `[[desk.principals]]`, and what each role may do.
//!
//! The config holds only the hex SHA-256 of each token. A request's token is hashed and compared
//! with every principal's hash in constant time (`subtle`), all of them, so neither the timing
//! nor the order of principals tells anything about a near miss. Tokens are never logged: the
//! principal's name stands for them everywhere.

use crate::settings::service::PrincipalSettings;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// docs/spec.md §9's roles, each including the one before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read.
    Viewer,
    /// + `ack`, `report_filed`, `resolve`.
    DutyOfficer,
    /// + `dismiss`, `regrade`, `merge`.
    Lead,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "duty_officer" => Some(Role::DutyOfficer),
            "lead" => Some(Role::Lead),
            _ => None,
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::DutyOfficer => "duty_officer",
            Role::Lead => "lead",
        }
    }

    /// The least role that may send `command`; `None` for a command the desk does not know.
    pub fn needed_for(command: &str) -> Option<Role> {
        use crate::model::CommandName as C;
        // Exhaustive: a command added to the list must be given its role here.
        Some(match command.parse::<C>().ok()? {
            C::Ack | C::ReportFiled | C::Resolve | C::FollowUp => Role::DutyOfficer,
            C::Dismiss | C::Regrade | C::Merge => Role::Lead,
        })
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// The principals, by token digest.
pub struct Principals {
    entries: Vec<Entry>,
}

/// Why a request is not authenticated (all are 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Malformed,
    Unknown,
}

impl AuthError {
    pub fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "missing Authorization: Bearer <token>",
            AuthError::Malformed => "the Authorization header is not \"Bearer <token>\"",
            AuthError::Unknown => "unknown token",
        }
    }
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim().as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Hex SHA-256 of a token, as `token_sha256` wants it.
pub fn token_sha256(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Principals {
    /// Entries that do not parse are left out (`check-config` reports them).
    pub fn from_settings(list: &[PrincipalSettings]) -> Self {
        let entries = list
            .iter()
            .filter_map(|p| {
                Some(Entry {
                    digest: hex32(&p.token_sha256)?,
                    principal: Principal {
                        name: p.name.clone(),
                        role: Role::parse(&p.role)?,
                    },
                })
            })
            .collect();
        Principals { entries }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal an `Authorization` header value names.
    pub fn authenticate(&self, header: Option<&[u8]>) -> Result<Principal, AuthError> {
        let header = header.ok_or(AuthError::Missing)?;
        let text = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
        let (scheme, token) = text.trim().split_once(' ').ok_or(AuthError::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
        let mut found: Option<&Principal> = None;
        for e in &self.entries {
            // Every entry is compared; the match is remembered without branching on secrets'
            // bytes (only on the final, constant-time verdict).
            if bool::from(e.digest.ct_eq(&digest)) && found.is_none() {
                found = Some(&e.principal);
            }
        }
        found.cloned().ok_or(AuthError::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_matched_by_their_digest() {
        let p = Principals::from_settings(&[PrincipalSettings {
            name: "alice".into(),
            role: "lead".into(),
            token_sha256: token_sha256("s3cret"),
        }]);
        assert_eq!(
            p.authenticate(Some(b"Bearer s3cret")),
            Ok(Principal {
                name: "alice".into(),
                role: Role::Lead
            })
        );
        assert_eq!(
            p.authenticate(Some(b"Bearer nope")),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            p.authenticate(Some(b"Basic s3cret")),
            Err(AuthError::Malformed)
        );
        assert_eq!(p.authenticate(None), Err(AuthError::Missing));
    }

    #[test]
    fn roles_include_the_ones_below() {
        assert!(Role::Lead >= Role::needed_for("dismiss").unwrap());
        assert!(Role::DutyOfficer >= Role::needed_for("ack").unwrap());
        assert!(Role::DutyOfficer < Role::needed_for("merge").unwrap());
        assert!(Role::Viewer < Role::needed_for("ack").unwrap());
        assert_eq!(Role::needed_for("delete"), None);
    }
}
