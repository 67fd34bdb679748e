//! What the GPU suites share.

use tern_gpu::Gpu;

/// The device, or `None` (after printing why) when no adapter exists and the environment does not require one.
pub fn gpu() -> Option<Gpu> {
    match pollster::block_on(Gpu::request()) {
        Ok(gpu) => {
            eprintln!("GPU adapter: {}", gpu.adapter);
            Some(gpu)
        }
        Err(error) => {
            let required = std::env::var("TERN_REQUIRE_GPU").is_ok_and(|v| v == "1")
                || std::env::var_os("CI").is_some();
            assert!(
                !required,
                "{error} (TERN_REQUIRE_GPU=1 or CI is set, so a GPU adapter is required; XDG_RUNTIME_DIR={:?})",
                std::env::var("XDG_RUNTIME_DIR").ok()
            );
            eprintln!(
                "SKIPPED: {error}; set XDG_RUNTIME_DIR and run scripts/setup-gpu.sh (TERN_REQUIRE_GPU=1 makes this a failure)"
            );
            None
        }
    }
}
