//! The data dir: where a node keeps its config, keys, store and the files its clients read.
//!
//! It holds `config.toml` (documented, every field optional), `author.key` (the Ed25519 seed
//! that signs this user's records, mode 0600), `node.key` (the libp2p identity, mode 0600),
//! `api.token` (the local API's bearer token, mode 0600), `follow.json`, `api.json` and
//! `store/` (sled). All but the last three are created on first run.

use std::io::Write;
use std::path::{Path, PathBuf};

use chorus_protocol::{AuthorKey, SigningKey};
use libp2p::identity::Keypair;

use crate::config::{self, Config};
use crate::error::{Error, Result};

/// The environment variable holding the passphrase of a sealed author key.
pub const PASSPHRASE_ENV: &str = "CHORUS_PASSPHRASE";

/// The fewest characters an `api.token` may have (a new one is 64 hex digits).
pub const MIN_TOKEN: usize = 32;

/// The files of a node.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// What [`DataDir::init`] created.
#[derive(Debug, Clone, Default)]
pub struct Created {
    /// The directory itself.
    pub dir: bool,
    /// `config.toml`.
    pub config: bool,
    /// `author.key`.
    pub author_key: bool,
    /// `node.key`.
    pub node_key: bool,
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

fn read_secret(path: &Path) -> Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let key_err = |reason: String| Error::Key {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| key_err(e.to_string()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(key_err(format!(
            "readable by others (mode {:o}); run: chmod 600 {}",
            meta.permissions().mode() & 0o777,
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| key_err(e.to_string()))
}

impl DataDir {
    /// The data dir at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DataDir { root: root.into() }
    }

    /// `$CHORUS_DATA_DIR`, or the platform default.
    pub fn default_location() -> Self {
        Self::new(config::default_data_dir())
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `config.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `author.key`.
    pub fn author_key_path(&self) -> PathBuf {
        self.root.join("author.key")
    }
    /// `node.key`.
    pub fn node_key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }
    /// `store/`.
    pub fn store_path(&self) -> PathBuf {
        self.root.join("store")
    }
    /// `api.token`: the bearer token of the local API.
    pub fn api_token_path(&self) -> PathBuf {
        self.root.join("api.token")
    }
    /// `follow.json`: what the user followed or unfollowed at run time (`chorus follow`),
    /// applied on top of the config's `[follow]` at every start.
    pub fn follow_path(&self) -> PathBuf {
        self.root.join("follow.json")
    }
    /// `api.json`: where the running node's API listens (written on start, removed on stop).
    pub fn api_info_path(&self) -> PathBuf {
        self.root.join("api.json")
    }

    /// The local API's bearer token; refused if the file is readable by others, or if the
    /// token is shorter than [`MIN_TOKEN`] characters or holds anything but printable ASCII
    /// (a guessable token would open the API to any local process).
    pub fn api_token(&self) -> Result<String> {
        let bytes = read_secret(&self.api_token_path())?;
        let bad = |reason: String| Error::Key {
            path: self.api_token_path().display().to_string(),
            reason,
        };
        let token = String::from_utf8(bytes)
            .map(|s| s.trim().to_string())
            .map_err(|_| bad("not text".into()))?;
        if token.len() < MIN_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(format!(
                "the token must be at least {MIN_TOKEN} printable characters without spaces; \
                 delete the file to have a new one made at the next start"
            )));
        }
        Ok(token)
    }

    /// Creates whatever is missing: the directory (mode 0700), a documented config file and
    /// fresh keys. Existing files are never overwritten. With `CHORUS_PASSPHRASE` set (and
    /// not empty), a new author key file is sealed with it (see [`crate::keyfile`]).
    pub fn init(&self) -> Result<Created> {
        let passphrase = std::env::var(PASSPHRASE_ENV).ok().filter(|p| !p.is_empty());
        self.init_with(passphrase.as_deref())
    }

    /// [`DataDir::init`], sealing a new author key with `passphrase` if given.
    pub fn init_with(&self, passphrase: Option<&str>) -> Result<Created> {
        use std::os::unix::fs::DirBuilderExt;
        let mut created = Created::default();
        if !self.root.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)?;
            created.dir = true;
        }
        if !self.config_path().exists() {
            std::fs::write(self.config_path(), config::TEMPLATE)?;
            created.config = true;
        }
        if !self.author_key_path().exists() {
            let seed: [u8; 32] = rand::random();
            match passphrase {
                None => write_secret(&self.author_key_path(), &seed)?,
                Some(p) => {
                    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
                    let sealed =
                        crate::keyfile::seal(&seed, &public, p).map_err(|e| Error::Key {
                            path: self.author_key_path().display().to_string(),
                            reason: e.to_string(),
                        })?;
                    write_secret(&self.author_key_path(), &sealed)?;
                }
            }
            created.author_key = true;
        }
        if !self.api_token_path().exists() {
            let token: [u8; 32] = rand::random();
            write_secret(&self.api_token_path(), hex::encode(token).as_bytes())?;
        }
        if !self.node_key_path().exists() {
            let kp = Keypair::generate_ed25519();
            let bytes = kp
                .to_protobuf_encoding()
                .map_err(|e| Error::Network(format!("encode node key: {e}")))?;
            write_secret(&self.node_key_path(), &bytes)?;
            created.node_key = true;
        }
        Ok(created)
    }

    /// The author's signing key; refused if the file is readable by others. A sealed file
    /// is opened with `CHORUS_PASSPHRASE`.
    pub fn author_key(&self) -> Result<SigningKey> {
        let path = self.author_key_path();
        let bytes = read_secret(&path)?;
        if crate::keyfile::is_sealed(&bytes) {
            let key_err = |reason: String| Error::Key {
                path: path.display().to_string(),
                reason,
            };
            let passphrase = std::env::var(PASSPHRASE_ENV)
                .ok()
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    key_err(format!("sealed with a passphrase: set {PASSPHRASE_ENV}"))
                })?;
            let seed =
                crate::keyfile::open(&bytes, &passphrase).map_err(|e| key_err(e.to_string()))?;
            return Ok(SigningKey::from_bytes(&seed));
        }
        let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::Key {
            path: path.display().to_string(),
            reason: format!("expected 32 bytes, found {}", bytes.len()),
        })?;
        Ok(SigningKey::from_bytes(&seed))
    }

    /// The author's public key (no passphrase needed, even for a sealed key file).
    pub fn author_public(&self) -> Result<AuthorKey> {
        let path = self.author_key_path();
        let bytes = read_secret(&path)?;
        if crate::keyfile::is_sealed(&bytes) {
            return crate::keyfile::public_of(&bytes)
                .map(AuthorKey)
                .map_err(|e| Error::Key {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
        }
        Ok(AuthorKey(self.author_key()?.verifying_key().to_bytes()))
    }

    /// The node's libp2p identity; refused if the file is readable by others.
    pub fn node_keypair(&self) -> Result<Keypair> {
        let path = self.node_key_path();
        let bytes = read_secret(&path)?;
        Keypair::from_protobuf_encoding(&bytes).map_err(|e| Error::Key {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// The config file, or defaults if there is none.
    pub fn config(&self) -> Result<Config> {
        Config::load(&self.config_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_or_spaced_api_token_is_refused_and_a_new_one_is_made_when_deleted() {
        let root = tempfile::tempdir().unwrap();
        let dir = DataDir::new(root.path().join("d"));
        dir.init_with(None).unwrap();
        let made = dir.api_token().unwrap();
        assert_eq!(made.len(), 64);
        for bad in ["short", "a b c d e f g h i j k l m n o p q r s t", ""] {
            std::fs::remove_file(dir.api_token_path()).unwrap();
            write_secret(&dir.api_token_path(), bad.as_bytes()).unwrap();
            let err = dir.api_token().unwrap_err().to_string();
            assert!(err.contains("at least 32 printable"), "{bad:?}: {err}");
        }
        std::fs::remove_file(dir.api_token_path()).unwrap();
        dir.init_with(None).unwrap();
        let again = dir.api_token().unwrap();
        assert_eq!(again.len(), 64);
        assert_ne!(again, made);
    }
}
