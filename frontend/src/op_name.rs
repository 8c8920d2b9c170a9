//! The name of a request's operation, for its log line and metrics.

use std::sync::{Arc, Mutex};

/// Names the operation of a request for its log line and metrics; s3s fills it in
/// its access check, which runs for every recognised operation.
#[derive(Clone, Default)]
pub(crate) struct OpName(Arc<Mutex<Option<String>>>);

impl OpName {
    pub(crate) fn set(&self, name: &str) {
        if let Ok(mut s) = self.0.lock() {
            *s = Some(name.to_owned());
        }
    }
}

impl OpName {
    pub(crate) fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|s| s.clone())
    }
}
