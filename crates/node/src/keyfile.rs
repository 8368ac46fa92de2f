//! The author key file, optionally sealed with a passphrase.
//!
//! A plain key file is the 32-byte Ed25519 seed. A sealed one is
//!
//! ```text
//! "CHORUSK1" (8) || m_kib u32le || t u32le || p u32le || public key (32) || salt (16)
//!   || nonce (24) || XChaCha20-Poly1305(key, nonce, seed, aad = everything before the nonce)
//! ```
//!
//! where `key` is Argon2id(passphrase, salt, m_kib, t, p) (32 bytes). The public key is in
//! clear so `chorus id` works without the passphrase; the AEAD's associated data binds it,
//! the parameters and the salt, so none of them can be swapped.

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The first bytes of a sealed key file.
pub const MAGIC: &[u8; 8] = b"CHORUSK1";
const HEADER: usize = 8 + 12 + 32 + 16;
const SEALED_LEN: usize = HEADER + 24 + 32 + 16;

/// Argon2id cost: 64 MiB, 3 passes, 1 lane (about half a second here).
const M_KIB: u32 = 64 * 1024;
const T: u32 = 3;
const P: u32 = 1;

/// Why a key file cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Not a key file of either form.
    #[error("not a Chorus key file")]
    Malformed,
    /// The passphrase does not open it (or the file was altered).
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
    /// Argon2 refused its parameters.
    #[error("key derivation: {0}")]
    Kdf(String),
}

/// Is this a sealed key file?
pub fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn derive(passphrase: &str, salt: &[u8], m: u32, t: u32, p: u32) -> Result<[u8; 32], KeyFileError> {
    let params = Params::new(m, t, p, Some(32)).map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    let mut key = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
    Ok(key)
}

/// Seals a seed (with its public key in clear) under a passphrase.
pub fn seal(seed: &[u8; 32], public: &[u8; 32], passphrase: &str) -> Result<Vec<u8>, KeyFileError> {
    let salt: [u8; 16] = rand::random();
    let nonce: [u8; 24] = rand::random();
    let mut out = Vec::with_capacity(SEALED_LEN);
    out.extend_from_slice(MAGIC);
    for v in [M_KIB, T, P] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(public);
    out.extend_from_slice(&salt);
    let key = derive(passphrase, &salt, M_KIB, T, P)?;
    let cipher = XChaCha20Poly1305::new((&key).into());
    let sealed = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: seed,
                aad: &out[..HEADER],
            },
        )
        .map_err(|_| KeyFileError::Malformed)?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// The public key in a sealed file's header.
pub fn public_of(bytes: &[u8]) -> Result<[u8; 32], KeyFileError> {
    if !is_sealed(bytes) || bytes.len() != SEALED_LEN {
        return Err(KeyFileError::Malformed);
    }
    let mut pk = [0u8; 32];
    pk.copy_from_slice(&bytes[20..52]);
    Ok(pk)
}

/// Opens a sealed key file.
pub fn open(bytes: &[u8], passphrase: &str) -> Result<[u8; 32], KeyFileError> {
    public_of(bytes)?;
    let (m, t, p) = (u32_at(bytes, 8), u32_at(bytes, 12), u32_at(bytes, 16));
    // Refuse costs no honest file has (a planted file must not make us allocate GBs).
    if m > 1024 * 1024 || t > 16 || p > 8 {
        return Err(KeyFileError::Malformed);
    }
    let key = derive(passphrase, &bytes[52..68], m, t, p)?;
    let cipher = XChaCha20Poly1305::new((&key).into());
    let seed = cipher
        .decrypt(
            XNonce::from_slice(&bytes[HEADER..HEADER + 24]),
            Payload {
                msg: &bytes[HEADER + 24..],
                aad: &bytes[..HEADER],
            },
        )
        .map_err(|_| KeyFileError::WrongPassphrase)?;
    seed.try_into().map_err(|_| KeyFileError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_with_their_passphrase_only_and_resist_tampering() {
        let seed = [7u8; 32];
        let public = [9u8; 32];
        let sealed = seal(&seed, &public, "correct horse").unwrap();
        assert!(is_sealed(&sealed));
        assert_eq!(public_of(&sealed).unwrap(), public);
        assert_eq!(open(&sealed, "correct horse").unwrap(), seed);
        assert_eq!(open(&sealed, "wrong"), Err(KeyFileError::WrongPassphrase));
        // Every byte matters (parameters, public key, salt, nonce, ciphertext, tag).
        for i in [8, 25, 55, HEADER + 3, SEALED_LEN - 1] {
            let mut t = sealed.clone();
            t[i] ^= 1;
            assert!(open(&t, "correct horse").is_err(), "byte {i}");
        }
        assert!(open(&sealed[..40], "correct horse").is_err());
        assert!(!is_sealed(&seed));
    }
}
