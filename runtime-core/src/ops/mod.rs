//! ONNX operators the locked tract-onnx lacks, registered under their standard names so graphs stay plain ONNX
//! that onnxruntime also runs. tract-onnx 0.23.9 registers every other op tern's graphs use (MatMul, Gemm, Add,
//! Sigmoid, Softmax, ArgMax, Greater, GreaterOrEqual, Cast, DequantizeLinear with `axis`, Exp,
//! TreeEnsembleClassifier). Ops with no ONNX equivalent live in the documented `ai.tern` domain: [`rcf`]'s
//! `RandomCutForestScore`.

pub mod rcf;
pub mod tree_ensemble_regressor;

/// tract's ONNX front end with runtime-core's ops added.
pub fn onnx() -> tract_onnx::Onnx {
    let mut framework = tract_onnx::onnx();
    tree_ensemble_regressor::register(&mut framework.op_register);
    rcf::register(&mut framework.op_register);
    framework
}
