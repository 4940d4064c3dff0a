use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use edgesort_types::write_atomically;

/// Random bytes in a token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;

/// The API's bearer token.
#[derive(Clone)]
pub struct Token(String);

/// What a caller may do, by the token it offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Everything: reads, configuration, uploads, test pulses, resets.
    Admin,
    /// Reads (`GET`) only: for dashboards.
    Read,
}

/// The box's two tokens.
#[derive(Clone, Debug)]
pub struct Access {
    /// `api.token_file`'s.
    pub admin: Token,
    /// `api.read_token_file`'s.
    pub read: Token,
}

impl Access {
    /// Both tokens, each made at first start where missing.
    pub fn load_or_create(api: &edgesort_types::config::ApiConfig) -> Result<Access, TokenError> {
        Ok(Access {
            admin: Token::load_or_create(&api.token_file)?,
            read: Token::load_or_create(&api.read_token_file)?,
        })
    }

    /// The role `offered` grants, if any. Both tokens are compared, so the
    /// time taken does not tell which one was near.
    pub fn role(&self, offered: &str) -> Option<Role> {
        let admin = self.admin.matches(offered);
        let read = self.read.matches(offered);
        match (admin, read) {
            (true, _) => Some(Role::Admin),
            (false, true) => Some(Role::Read),
            (false, false) => None,
        }
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Token(..)")
    }
}

/// Why the token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or creating the file failed.
    #[error("API token file {path}: {source}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file exists but holds no usable token.
    #[error(
        "API token file {path} holds no token (at least 16 characters); delete it to have a new one made"
    )]
    Empty {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The system's random source failed.
    #[error("cannot draw a random API token: {0}")]
    Random(getrandom::Error),
}

impl Token {
    /// Reads the token from `path`, or, on a box's first start, creates it
    /// there with a fresh random value, readable by the daemon's user only.
    /// There is no default token.
    pub fn load_or_create(path: &Path) -> Result<Token, TokenError> {
        let file_error = |source| TokenError::File {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let token = text.trim();
                if token.len() < 16 {
                    return Err(TokenError::Empty {
                        path: path.to_owned(),
                    });
                }
                Ok(Token(token.to_string()))
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; TOKEN_BYTES];
                getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
                let token: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
                if let Some(folder) = path.parent() {
                    std::fs::create_dir_all(folder).map_err(file_error)?;
                }
                write_atomically(path, format!("{token}\n").as_bytes()).map_err(file_error)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(file_error)?;
                tracing::info!(path = %path.display(), "created the API token");
                Ok(Token(token))
            }
            Err(error) => Err(file_error(error)),
        }
    }

    /// The token's text, for a client on the box itself.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is the token, in time that does not depend on
    /// where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        let expected = self.0.as_bytes();
        let offered = offered.as_bytes();
        let mut difference = expected.len() ^ offered.len();
        for (index, byte) in expected.iter().enumerate() {
            difference |= usize::from(byte ^ offered.get(index).copied().unwrap_or(0));
        }
        difference == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_start_creates_a_private_random_token_and_later_ones_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/api-token");
        let first = Token::load_or_create(&path).unwrap();
        assert_eq!(first.secret().len(), 2 * TOKEN_BYTES);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = Token::load_or_create(&path).unwrap();
        assert_eq!(again.secret(), first.secret());
        let other = Token::load_or_create(&dir.path().join("other")).unwrap();
        assert_ne!(other.secret(), first.secret());
    }

    #[test]
    fn only_the_exact_token_matches() {
        let token = Token("0123456789abcdef0123".into());
        assert!(token.matches("0123456789abcdef0123"));
        assert!(!token.matches("0123456789abcdef012"));
        assert!(!token.matches("0123456789abcdef01234"));
        assert!(!token.matches("1123456789abcdef0123"));
        assert!(!token.matches(""));
    }

    #[test]
    fn each_token_grants_its_own_role_and_a_stranger_none() {
        let access = Access {
            admin: Token("admin-0123456789abcdef".into()),
            read: Token("read-0123456789abcdef".into()),
        };
        assert_eq!(access.role("admin-0123456789abcdef"), Some(Role::Admin));
        assert_eq!(access.role("read-0123456789abcdef"), Some(Role::Read));
        assert_eq!(access.role("read-0123456789abcdeX"), None);
        assert_eq!(access.role(""), None);
    }

    #[test]
    fn an_empty_token_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api-token");
        std::fs::write(&path, "\n").unwrap();
        let error = Token::load_or_create(&path).unwrap_err().to_string();
        assert!(
            error.contains("api-token") && error.contains("no token"),
            "{error}"
        );
    }
}
