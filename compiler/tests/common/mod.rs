//! What the compiler's suites share.

use tern_compiler::{lower, CompileError, CompileOptions, CompiledPackage};
use tern_trainer::Artifact;

/// Compiles `artifact` with its classic algorithm and lowering, as the registry pairs them.
pub fn compile(
    artifact: &Artifact,
    options: &CompileOptions,
) -> Result<CompiledPackage, CompileError> {
    let algorithm = tern_trainer::algorithms::find(&artifact.meta.algorithm)?;
    let lowering = lower::find_in(lower::classic(), &artifact.meta.algorithm)?;
    tern_compiler::compile(artifact, algorithm, lowering, options)
}
