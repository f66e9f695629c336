//! Where the API keys come from: the environment, or a Secrets Manager secret.
//!
//! `TASCOMI_PUBLIC_KEY` and `TASCOMI_PRIVATE_KEY` when both are set (local runs, tests); else the
//! secret named by `TASCOMI_API_SECRET_ID`, a JSON object `{"public_key": ..., "private_key": ...}`.
//! Errors name the variable or the secret id, never a value.

use common::config::{Env, Secret};
use serde::Deserialize;

use crate::auth::Credentials;

pub const PUBLIC_KEY_VAR: &str = "TASCOMI_PUBLIC_KEY";
pub const PRIVATE_KEY_VAR: &str = "TASCOMI_PRIVATE_KEY";
pub const SECRET_ID_VAR: &str = "TASCOMI_API_SECRET_ID";

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(
        "no API keys: set {PUBLIC_KEY_VAR} and {PRIVATE_KEY_VAR}, or {SECRET_ID_VAR} to a Secrets Manager secret"
    )]
    Missing,
    #[error("{PUBLIC_KEY_VAR} and {PRIVATE_KEY_VAR} must be set together ({missing} is not set)")]
    Half { missing: &'static str },
    #[error("reading secret {secret_id} from Secrets Manager failed: {message}")]
    Fetch { secret_id: String, message: String },
    #[error(
        "secret {secret_id} is not a JSON object with non-empty string fields public_key and private_key"
    )]
    Malformed { secret_id: String },
}

/// Where the keys are, as read from the environment (no AWS call yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    Environment(Credentials),
    SecretsManager { secret_id: String },
}

impl KeySource {
    pub fn from_env(env: &Env) -> Result<Self, KeysError> {
        match (env.secret(PUBLIC_KEY_VAR), env.secret(PRIVATE_KEY_VAR)) {
            (Some(public), Some(private)) => {
                Ok(KeySource::Environment(Credentials::new(public, private)))
            }
            (Some(_), None) => Err(KeysError::Half {
                missing: PRIVATE_KEY_VAR,
            }),
            (None, Some(_)) => Err(KeysError::Half {
                missing: PUBLIC_KEY_VAR,
            }),
            (None, None) => env
                .get(SECRET_ID_VAR)
                .map(|id| KeySource::SecretsManager {
                    secret_id: id.to_owned(),
                })
                .ok_or(KeysError::Missing),
        }
    }

    /// For logs: where the keys come from, without them.
    pub fn describe(&self) -> String {
        match self {
            KeySource::Environment(_) => {
                format!("environment ({PUBLIC_KEY_VAR}, {PRIVATE_KEY_VAR})")
            }
            KeySource::SecretsManager { secret_id } => format!("secrets manager ({secret_id})"),
        }
    }

    /// The keys, fetching the secret when they live in Secrets Manager.
    pub async fn load(&self, sdk: &aws_config::SdkConfig) -> Result<Credentials, KeysError> {
        match self {
            KeySource::Environment(credentials) => Ok(credentials.clone()),
            KeySource::SecretsManager { secret_id } => {
                let client = aws_sdk_secretsmanager::Client::new(sdk);
                let output = client
                    .get_secret_value()
                    .secret_id(secret_id)
                    .send()
                    .await
                    .map_err(|err| KeysError::Fetch {
                        secret_id: secret_id.clone(),
                        // The error chain holds codes and messages from AWS, never the value.
                        message: aws_sdk_secretsmanager::error::DisplayErrorContext(&err)
                            .to_string(),
                    })?;
                let text = output.secret_string().ok_or_else(|| KeysError::Malformed {
                    secret_id: secret_id.clone(),
                })?;
                parse_secret(secret_id, text)
            }
        }
    }
}

#[derive(Deserialize)]
struct SecretDocument {
    public_key: String,
    private_key: String,
}

/// Parses the secret's JSON. serde's own messages may quote the input, so they are not kept.
pub fn parse_secret(secret_id: &str, text: &str) -> Result<Credentials, KeysError> {
    let malformed = || KeysError::Malformed {
        secret_id: secret_id.to_owned(),
    };
    let document: SecretDocument = serde_json::from_str(text).map_err(|_| malformed())?;
    if document.public_key.is_empty() || document.private_key.is_empty() {
        return Err(malformed());
    }
    Ok(Credentials::new(
        Secret::new(document.public_key),
        Secret::new(document.private_key),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_keys_win_and_must_come_in_pairs() {
        let env = Env::from_pairs([
            (PUBLIC_KEY_VAR, "pubkey123"),
            (PRIVATE_KEY_VAR, "privkey456"),
            (SECRET_ID_VAR, "tascomi/api"),
        ]);
        let source = KeySource::from_env(&env).unwrap();
        assert!(matches!(source, KeySource::Environment(_)));
        assert!(!format!("{source:?} {}", source.describe()).contains("privkey456"));

        let env = Env::from_pairs([(PUBLIC_KEY_VAR, "pubkey123")]);
        let err = KeySource::from_env(&env).unwrap_err().to_string();
        assert!(err.contains("TASCOMI_PRIVATE_KEY is not set"), "{err}");

        let env = Env::from_pairs([(SECRET_ID_VAR, "tascomi/api")]);
        assert_eq!(
            KeySource::from_env(&env).unwrap(),
            KeySource::SecretsManager {
                secret_id: "tascomi/api".into()
            }
        );
        let err = KeySource::from_env(&Env::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(SECRET_ID_VAR), "{err}");
    }

    #[test]
    fn a_malformed_secret_is_named_but_not_quoted() {
        let ok = parse_secret("s", r#"{"public_key": "A", "private_key": "B"}"#).unwrap();
        assert_eq!(ok.public_key().expose(), "A");
        for text in [
            r#""privkey456""#,
            r#"{"public_key": "A"}"#,
            r#"{"public_key": "A", "private_key": 7}"#,
            r#"{"public_key": "", "private_key": "privkey456"}"#,
            "privkey456",
        ] {
            let err = parse_secret("tascomi/api", text).unwrap_err().to_string();
            assert!(err.contains("tascomi/api"), "{err}");
            assert!(!err.contains("privkey456"), "{err}");
        }
    }
}
