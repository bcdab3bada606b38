//! RSA key pairs for applications that did not bring a public key.

use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

pub struct KeyPair {
    pub public_pem: String,
    pub private_pem: String,
}

/// Generates an RSA-2048 pair (PKCS#8 PEM). CPU-bound: call it off the async executor.
pub fn generate_rsa() -> Result<KeyPair, String> {
    let private = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(|e| e.to_string())?;
    let private_pem = private.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?.to_string();
    let public_pem = private.to_public_key().to_public_key_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    Ok(KeyPair { public_pem, private_pem })
}

/// A public key is usable when it verifies RS256 JWTs.
pub fn check_public_key(pem: &str) -> Result<(), String> {
    jsonwebtoken::DecodingKey::from_rsa_pem(pem.as_bytes())
        .map(|_| ())
        .map_err(|e| format!("not an RSA public key in PEM form ({e})"))
}
