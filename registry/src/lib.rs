//! The registry: every algorithm tern trains, each paired with the lowering that compiles its artifacts.
//!
//! Algorithms come from more than one trainer crate (the classic numeric and sparse ones in `tern-trainer`; the
//! deep networks, built on burn, in a crate of their own), so the list lives here, above them, and no trainer crate
//! depends on another. The CLI, the conformance suite and the Python package read this one list;
//! [`Registry::shipped`] is what the `tern` binary offers, and a test may build a [`Registry`] with an algorithm
//! of its own that the binary never registers.
//!
//! ```no_run
//! let registry = tern_registry::Registry::shipped();
//! let artifact = tern_trainer::Artifact::read("model.tar.gz".as_ref()).unwrap();
//! let package = registry.compile(&artifact, &Default::default()).unwrap();
//! package.write("pkg".as_ref()).unwrap();
//! ```

use std::sync::OnceLock;

use tern_compiler::{CompileError, CompileOptions, CompiledPackage, Lowering};
use tern_trainer::{Algorithm, Artifact, TrainError};

/// One registered algorithm.
#[derive(Clone, Copy)]
pub struct Registered {
    /// How it trains and predicts.
    pub algorithm: &'static dyn Algorithm,
    /// How its artifacts compile into packages.
    pub lowering: &'static dyn Lowering,
}

impl Registered {
    /// The algorithm's name, as `--algorithm` and `artifact.json` spell it.
    pub fn name(&self) -> &'static str {
        self.algorithm.name()
    }
}

/// A list of registered algorithms, names unique, each algorithm's lowering its own.
#[derive(Clone)]
pub struct Registry {
    entries: Vec<Registered>,
}

impl Registry {
    /// The algorithms the `tern` binary ships: every algorithm of every trainer crate, with its lowering.
    pub fn shipped() -> &'static Registry {
        static SHIPPED: OnceLock<Registry> = OnceLock::new();
        SHIPPED.get_or_init(|| {
            Registry::pair(
                tern_trainer::algorithms::classic(),
                tern_compiler::lower::classic(),
            )
            .expect("every classic algorithm has a lowering of the same name")
        })
    }

    /// A registry of `algorithms`, each paired with the lowering of the same name in `lowerings`.
    ///
    /// Errors: an algorithm without a lowering, or a name given twice ([`RegistryError`]).
    pub fn pair(
        algorithms: &[&'static dyn Algorithm],
        lowerings: &[&'static dyn Lowering],
    ) -> Result<Registry, RegistryError> {
        let mut registry = Registry {
            entries: Vec::new(),
        };
        for &algorithm in algorithms {
            let lowering = lowerings
                .iter()
                .copied()
                .find(|l| l.algorithm() == algorithm.name())
                .ok_or(RegistryError::NoLowering {
                    algorithm: algorithm.name(),
                })?;
            registry = registry.with(Registered {
                algorithm,
                lowering,
            })?;
        }
        Ok(registry)
    }

    /// This registry with `entry` added (a test's own algorithm, say).
    pub fn with(mut self, entry: Registered) -> Result<Registry, RegistryError> {
        if entry.lowering.algorithm() != entry.algorithm.name() {
            return Err(RegistryError::Mismatch {
                algorithm: entry.algorithm.name(),
                lowering: entry.lowering.algorithm(),
            });
        }
        if self.entries.iter().any(|e| e.name() == entry.name()) {
            return Err(RegistryError::Duplicate {
                algorithm: entry.name(),
            });
        }
        self.entries.push(entry);
        Ok(self)
    }

    /// Every registered algorithm, in registration order.
    pub fn entries(&self) -> &[Registered] {
        &self.entries
    }

    /// The algorithms alone, for the trainer's functions that choose among them (SageMaker jobs).
    pub fn algorithms(&self) -> Vec<&'static dyn Algorithm> {
        self.entries.iter().map(|e| e.algorithm).collect()
    }

    /// The algorithm called `name` (SageMaker's spelling, with `-` or `_`, any case); the error lists the names.
    pub fn find(&self, name: &str) -> Result<&Registered, TrainError> {
        let algorithm = tern_trainer::algorithms::find_in(&self.algorithms(), name)?;
        Ok(self
            .entries
            .iter()
            .find(|e| e.name() == algorithm.name())
            .expect("find_in returns a registered algorithm"))
    }

    /// The algorithm that trained `artifact`.
    pub fn of(&self, artifact: &Artifact) -> Result<&Registered, TrainError> {
        self.find(&artifact.meta.algorithm)
    }

    /// The algorithm that reads model files in `format` (`tern import --format`), with the names of the formats
    /// there are in the error.
    pub fn importer(&self, format: &str) -> Result<&Registered, TrainError> {
        self.entries
            .iter()
            .find(|e| e.algorithm.interchange_formats().contains(&format))
            .ok_or_else(|| {
                TrainError::Config(format!(
                    "no algorithm reads model format {format:?}; the formats are {}",
                    self.interchange_formats().join(", ")
                ))
            })
    }

    /// Every other library's model format some algorithm reads and writes.
    pub fn interchange_formats(&self) -> Vec<&'static str> {
        self.entries
            .iter()
            .flat_map(|e| e.algorithm.interchange_formats().iter().copied())
            .collect()
    }

    /// Compiles `artifact` with its algorithm's lowering ([`tern_compiler::compile`]).
    pub fn compile(
        &self,
        artifact: &Artifact,
        options: &CompileOptions,
    ) -> Result<CompiledPackage, CompileError> {
        let entry = self.of(artifact)?;
        tern_compiler::compile(artifact, entry.algorithm, entry.lowering, options)
    }
}

/// A registry that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// An algorithm has no lowering: every registered algorithm compiles.
    #[error("algorithm {algorithm} has no lowering")]
    NoLowering { algorithm: &'static str },
    /// An entry's lowering is another algorithm's.
    #[error("algorithm {algorithm} is paired with the lowering of {lowering}")]
    Mismatch {
        algorithm: &'static str,
        lowering: &'static str,
    },
    /// Two entries share a name.
    #[error("algorithm {algorithm} is registered twice")]
    Duplicate { algorithm: &'static str },
}

/// [`Registry::compile`] on the shipped registry.
pub fn compile(
    artifact: &Artifact,
    options: &CompileOptions,
) -> Result<CompiledPackage, CompileError> {
    Registry::shipped().compile(artifact, options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_algorithm_has_its_lowering_and_a_unique_name() {
        let registry = Registry::shipped();
        assert_eq!(
            registry.entries().len(),
            tern_trainer::algorithms::classic().len()
        );
        for entry in registry.entries() {
            assert_eq!(entry.lowering.algorithm(), entry.name());
            assert!(std::ptr::eq(registry.find(entry.name()).unwrap(), entry));
        }
        let again = registry.clone().with(registry.entries()[0]).err().unwrap();
        assert!(again.to_string().contains("twice"), "{again}");
    }

    #[test]
    fn names_are_found_as_sagemaker_spells_them_and_unknown_ones_listed() {
        let registry = Registry::shipped();
        assert_eq!(
            registry.find("Linear_Learner").unwrap().name(),
            "linear-learner"
        );
        let message = registry.find("word2vec").err().unwrap().to_string();
        assert!(
            message.contains("xgboost") && message.contains("kmeans"),
            "{message}"
        );
        assert_eq!(registry.importer("xgboost-json").unwrap().name(), "xgboost");
        assert!(registry.importer("onnx").is_err());
    }
}
