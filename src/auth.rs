//! JWT authentication (HS256, `JWT_SECRET`) and what each role may do.
//!
//! Claims: `sub`, `exp` (required), `role` (`admin`, `merchant`, `partner`, `warehouse`),
//! `merchants` (the ids a merchant or partner may see).
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

use crate::store::orders::TenantScope;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Merchant,
    Partner,
    Warehouse,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Merchant => "merchant",
            Role::Partner => "partner",
            Role::Warehouse => "warehouse",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: i64,
    pub role: Role,
    #[serde(default, deserialize_with = "ids_as_numbers_or_strings")]
    pub merchants: Vec<i64>,
}

/// GraphQL ids are strings, so tools may put `"12"` in the claim; accept both spellings.
fn ids_as_numbers_or_strings<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(i64),
        Text(String),
    }
    let ids = Vec::<Id>::deserialize(deserializer)?;
    ids.into_iter()
        .map(|id| match id {
            Id::Number(n) => Ok(n),
            Id::Text(s) => s.parse().map_err(|_| {
                serde::de::Error::custom(format!("merchant id `{s}` is not a number"))
            }),
        })
        .collect()
}

/// Who is calling, after the token was verified.
#[derive(Clone, Debug)]
pub struct Principal {
    pub sub: String,
    pub role: Role,
    pub scope: TenantScope,
    /// The token's `exp`: a subscription opened with it ends then.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl Principal {
    /// Recorded as the actor of the changes this caller makes.
    pub fn actor(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.sub)
    }

    fn from_claims(claims: Claims) -> Principal {
        // Admins and the (single) warehouse work across all merchants; everyone else is
        // confined to the merchants named in the token.
        let scope = match claims.role {
            Role::Admin | Role::Warehouse => TenantScope::All,
            Role::Merchant | Role::Partner => TenantScope::Merchants(claims.merchants),
        };
        Principal {
            expires_at: chrono::DateTime::from_timestamp(claims.exp, 0)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
            sub: claims.sub,
            role: claims.role,
            scope,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <JWT>`")]
    Missing,
    /// The library's reason is logged at debug level, never shown: it would tell a
    /// prober which algorithms and claims we check.
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
    #[error("the Authorization header must be `Bearer <JWT>`")]
    NotBearer,
}

#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    pub fn new(secret: &SecretString) -> JwtKeys {
        let secret = secret.expose_secret().as_bytes();
        JwtKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Only HS256 is accepted (so `alg: none` and key-confusion tokens fail), `exp` is
    /// required and checked.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        let data = decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
            tracing::debug!(reason = %e, "token refused");
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            }
        })?;
        Ok(Principal::from_claims(data.claims))
    }

    /// Verifies the value of an `Authorization` header (`Bearer <JWT>`).
    pub fn verify_header(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::NotBearer)?;
        self.verify(token.trim())
    }
}

/// A random secret for development, when `JWT_SECRET` is not set.
pub fn generate_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_offset: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            exp: chrono::Utc::now().timestamp() + exp_offset,
            role: Role::Partner,
            merchants: vec![3],
        }
    }

    #[test]
    fn a_valid_token_gives_a_scoped_principal() {
        let keys = JwtKeys::new(&"secret".into());
        let token = keys.issue(&claims(60)).unwrap();
        let principal = keys
            .verify_header(Some(&format!("Bearer {token}")))
            .unwrap();
        assert_eq!(principal.scope, TenantScope::Merchants(vec![3]));
        assert_eq!(principal.actor(), "partner:u1");
    }

    #[test]
    fn expired_wrong_key_and_missing_tokens_are_refused() {
        let keys = JwtKeys::new(&"secret".into());
        assert!(keys.verify(&keys.issue(&claims(-3600)).unwrap()).is_err());
        assert!(keys
            .verify(&JwtKeys::new(&"other".into()).issue(&claims(60)).unwrap())
            .is_err());
        assert_eq!(keys.verify_header(None).unwrap_err(), AuthError::Missing);
    }

    #[test]
    fn merchant_ids_may_be_strings() {
        let claims: Claims =
            serde_json::from_str(r#"{"sub":"a","exp":1,"role":"merchant","merchants":["7",8]}"#)
                .unwrap();
        assert_eq!(claims.merchants, vec![7, 8]);
    }
}
