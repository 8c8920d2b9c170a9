//! The `ingot-engine` node: settings, credentials and the wiring of engine and S3
//! frontend. The binary (`src/main.rs`) adds the command line, logging and signals.

pub mod archive_cli;
pub mod config;
pub mod config_error;
pub mod credentials;
pub mod node;
pub mod secret_file;
pub mod shipping;
