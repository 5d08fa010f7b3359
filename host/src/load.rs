//! Loading a module end to end: the executor compiles, checks and describes it
//! ([`sandbox::describe()`]), the module model is built from the entities it declares
//! ([`ModuleDecl::new`]: launch plans resolved, graphs compiled), and the executor's lanes are
//! bound to that model ([`Sandbox::new`]).
//!
//! [`Sandbox::load`] lives here rather than in the sandbox module, so the executor never
//! builds the module model.

use crate::module::{ModuleDecl, ModuleError};
use crate::sandbox::{self, Sandbox, SandboxConfig};
use std::path::Path;
use std::sync::Arc;
use wasmtime::Engine;

impl Sandbox {
    /// Loads `bytes` (a wasm module) from `origin` (for messages) into each of `engines`,
    /// compiling it or taking the compiled form from the on-disk cache, checks its imports and
    /// ABI, reads its entities and builds its module model.
    pub fn load(
        engines: &[Engine],
        config: SandboxConfig,
        bytes: &[u8],
        origin: &Path,
    ) -> Result<Sandbox, ModuleError> {
        let described = sandbox::describe(engines, config, bytes, origin)?;
        let decl = ModuleDecl::new(described.entities).map_err(|source| ModuleError::Compile {
            path: origin.to_path_buf(),
            source,
        })?;
        Ok(Sandbox::new(described.lanes, Arc::new(decl)))
    }
}
