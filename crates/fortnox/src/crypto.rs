//! Tokens at rest: XChaCha20-Poly1305 under `TOKEN_ENCRYPTION_KEY`.
//!
//! XChaCha's 24-byte nonce is large enough to draw at random per message
//! without counting. The stored text is `v1:` + base64(nonce || ciphertext),
//! so a dump of the database shows no token and a future key/algorithm change
//! can be told apart by its prefix.

use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("TOKEN_ENCRYPTION_KEY must be 32 bytes as base64 or hex")]
    BadKey,
    #[error("encrypted token is malformed")]
    Malformed,
    #[error("encrypted token does not decrypt under this key")]
    Decrypt,
}

#[derive(Clone)]
pub struct TokenCipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher(..)") // never print key material
    }
}

impl TokenCipher {
    pub fn new(key: [u8; 32]) -> Self {
        TokenCipher {
            aead: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// Parses a 32-byte key given as hex (64 characters) or base64.
    pub fn from_key_text(text: &str) -> Result<Self, CryptoError> {
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|_| CryptoError::BadKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(t))
                .map_err(|_| CryptoError::BadKey)?
        };
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
        Ok(Self::new(key))
    }

    pub fn encrypt(&self, plaintext: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption with a valid key and in-memory buffer cannot fail.
        let ct = self
            .aead
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!(
            "{PREFIX}{}",
            base64::engine::general_purpose::STANDARD.encode(out)
        )
    }

    pub fn decrypt(&self, stored: &str) -> Result<String, CryptoError> {
        let b64 = stored.strip_prefix(PREFIX).ok_or(CryptoError::Malformed)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| CryptoError::Malformed)?;
        if raw.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
        let pt = self
            .aead
            .decrypt(&XNonce::from(nonce), ct)
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(pt).map_err(|_| CryptoError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_no_plaintext() {
        let c = TokenCipher::from_key_text(&"ab".repeat(32)).expect("hex key");
        let a = c.encrypt("secret-token");
        let b = c.encrypt("secret-token");
        assert_ne!(a, b, "fresh nonce per message");
        assert!(!a.contains("secret"));
        assert_eq!(c.decrypt(&a).as_deref(), Ok("secret-token"));
    }

    #[test]
    fn wrong_key_and_tampering_fail() {
        let k64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        let c = TokenCipher::from_key_text(&k64).expect("base64 key");
        let other = TokenCipher::new([8u8; 32]);
        let ct = c.encrypt("x");
        assert_eq!(other.decrypt(&ct), Err(CryptoError::Decrypt));
        assert_eq!(c.decrypt("v1:AAAA"), Err(CryptoError::Malformed));
        assert_eq!(
            TokenCipher::from_key_text("short").err(),
            Some(CryptoError::BadKey)
        );
    }
}
