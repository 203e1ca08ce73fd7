//! `[app]`: the application itself.

use serde::Deserialize;

use super::{Manifest, Result};

/// `[app]`: the application itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSection {
    /// Example: `name = "todo"`
    pub name: String,
}

impl Manifest {
    /// Checks `[app]`.
    pub(super) fn validate_app(&self) -> Result<()> {
        if self.app.name.trim().is_empty() {
            return Err(self.invalid(
                "app.name",
                "the app name is empty",
                "set `name = \"myapp\"` in `[app]`",
            ));
        }
        Ok(())
    }
}
