//! Why the configuration (file, flags, environment, shipping settings) was refused.
//! Its own module: both `config.rs` and `shipping.rs` raise it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting: {0}")]
    Invalid(String),
    #[error(transparent)]
    SecretFile(#[from] crate::secret_file::SecretFileError),
}
