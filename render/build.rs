//! Compiles the WGSL compute shaders in `assets/shaders/` to SPIR-V with naga (pure Rust, at build time; no
//! prebuilt binaries are committed). Each variant is one source reader followed by the common converter.

use std::path::{Path, PathBuf};

/// (output name, reader file). The common part is `convert.wgsl`.
const VARIANTS: &[(&str, &str)] = &[
    ("convert_buffer.spv", "src_buffer.wgsl"),
    ("convert_image.spv", "src_image.wgsl"),
];

fn main() {
    let shaders = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/shaders");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let common_path = shaders.join("convert.wgsl");
    println!("cargo:rerun-if-changed={}", common_path.display());
    let common = read(&common_path);
    for (name, reader) in VARIANTS {
        let reader_path = shaders.join(reader);
        println!("cargo:rerun-if-changed={}", reader_path.display());
        let source = format!("{}\n{}", read(&reader_path), common);
        let label = format!("{reader} + convert.wgsl");
        let words = compile(&label, &source);
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        std::fs::write(out.join(name), bytes).expect("write SPIR-V");
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read shader {}: {e}", path.display()))
}

fn compile(label: &str, source: &str) -> Vec<u32> {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("WGSL error in {label}:\n{}", e.emit_to_string(source)));
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::IMMEDIATES,
    );
    let info = validator
        .validate(&module)
        .unwrap_or_else(|e| panic!("invalid shader {label}:\n{}", e.emit_to_string(source)));
    let options = naga::back::spv::Options {
        lang_version: (1, 3),
        ..Default::default()
    };
    let pipeline = naga::back::spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: "main".into(),
    };
    naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline))
        .unwrap_or_else(|e| panic!("SPIR-V generation failed for {label}: {e}"))
}
