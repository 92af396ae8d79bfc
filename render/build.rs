//! Compiles the WGSL compute shaders in `assets/shaders/` to SPIR-V with naga (pure Rust, at build time; no
//! prebuilt binaries are committed), one variant per (source reader, input format, operation), so that no
//! shader switches on the format at run time. A variant is: the reader, `common.wgsl`, a few generated lines
//! setting the format's parameters, naming its reader and declaring the output, the format family's file
//! (`fmt_*.wgsl`), `wide.wgsl` for the wide variants (four pixels per store), and the operation's file (or
//! `op_transform.wgsl` and one of its two mains). Each operation comes narrow and wide (`*_wide.wgsl`), and
//! the unscaled one also wide over columns for a quarter turn (`*_columns.wgsl`), bilinear scaling also wide
//! with taps shared between neighbouring pixels (`op_bilinear_rows.wgsl`).
//! `shaders.rs` in `OUT_DIR` lists them for `renderer/variant.rs`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// (reader name, reader file).
const READERS: &[(&str, &str)] = &[("buffer", "src_buffer.wgsl"), ("image", "src_image.wgsl")];

/// One input format's shaders: its name (as `SourceFormat::shader_name` says it), its family's file (which
/// defines `fetch_bytes`, and `fetch_words` where the family has a word reader), the operation file of its
/// unscaled fast path (its wide form is the same name ending `_wide.wgsl`), whether it reads whole words (its fast path always, the general one on aligned rows),
/// and the family's parameters, WGSL constants (byte order, chroma subsampling, plane order) that make the
/// family's code this format's. `SourceFormat::from_pixel` maps capture's catalogue layouts onto these names;
/// the pixel tests check every one against the CPU reference.
struct Format {
    name: &'static str,
    family: &'static str,
    fast: &'static str,
    words: bool,
    params: &'static [(&'static str, &'static str)],
}

const FORMATS: &[Format] = &[
    Format {
        name: "yuyv",
        family: "fmt_packed422.wgsl",
        fast: "op_packed422.wgsl",
        words: true,
        params: &[("P_Y0", "0u"), ("P_U", "1u"), ("P_Y1", "2u"), ("P_V", "3u")],
    },
    Format {
        name: "yvyu",
        family: "fmt_packed422.wgsl",
        fast: "op_packed422.wgsl",
        words: true,
        params: &[("P_Y0", "0u"), ("P_U", "3u"), ("P_Y1", "2u"), ("P_V", "1u")],
    },
    Format {
        name: "uyvy",
        family: "fmt_packed422.wgsl",
        fast: "op_packed422.wgsl",
        words: true,
        params: &[("P_Y0", "1u"), ("P_U", "0u"), ("P_Y1", "3u"), ("P_V", "2u")],
    },
    Format {
        name: "vyuy",
        family: "fmt_packed422.wgsl",
        fast: "op_packed422.wgsl",
        words: true,
        params: &[("P_Y0", "1u"), ("P_U", "2u"), ("P_Y1", "3u"), ("P_V", "0u")],
    },
    Format {
        name: "nv12",
        family: "fmt_semiplanar.wgsl",
        fast: "op_block.wgsl",
        words: true,
        params: &[("C_VSHIFT", "1u"), ("CR_FIRST", "false")],
    },
    Format {
        name: "nv21",
        family: "fmt_semiplanar.wgsl",
        fast: "op_block.wgsl",
        words: true,
        params: &[("C_VSHIFT", "1u"), ("CR_FIRST", "true")],
    },
    Format {
        name: "nv16",
        family: "fmt_semiplanar.wgsl",
        fast: "op_block.wgsl",
        words: true,
        params: &[("C_VSHIFT", "0u"), ("CR_FIRST", "false")],
    },
    Format {
        name: "nv61",
        family: "fmt_semiplanar.wgsl",
        fast: "op_block.wgsl",
        words: true,
        params: &[("C_VSHIFT", "0u"), ("CR_FIRST", "true")],
    },
    Format {
        name: "yu12",
        family: "fmt_planar420.wgsl",
        fast: "op_block.wgsl",
        words: false,
        params: &[("CB_PLANE", "1u"), ("CR_PLANE", "2u")],
    },
    Format {
        name: "yv12",
        family: "fmt_planar420.wgsl",
        fast: "op_block.wgsl",
        words: false,
        params: &[("CB_PLANE", "2u"), ("CR_PLANE", "1u")],
    },
    Format {
        name: "grey",
        family: "fmt_grey.wgsl",
        fast: "op_copy.wgsl",
        words: false,
        params: &[],
    },
    Format {
        name: "bgrx",
        family: "fmt_rgb.wgsl",
        fast: "op_copy.wgsl",
        words: true,
        params: &[
            ("RGB_BPP", "4u"),
            ("RGB_R", "2u"),
            ("RGB_G", "1u"),
            ("RGB_B", "0u"),
        ],
    },
    Format {
        name: "xrgb",
        family: "fmt_rgb.wgsl",
        fast: "op_copy.wgsl",
        words: true,
        params: &[
            ("RGB_BPP", "4u"),
            ("RGB_R", "1u"),
            ("RGB_G", "2u"),
            ("RGB_B", "3u"),
        ],
    },
    Format {
        name: "rgbx",
        family: "fmt_rgb.wgsl",
        fast: "op_copy.wgsl",
        words: true,
        params: &[
            ("RGB_BPP", "4u"),
            ("RGB_R", "0u"),
            ("RGB_G", "1u"),
            ("RGB_B", "2u"),
        ],
    },
    Format {
        name: "xbgr",
        family: "fmt_rgb.wgsl",
        fast: "op_copy.wgsl",
        words: true,
        params: &[
            ("RGB_BPP", "4u"),
            ("RGB_R", "3u"),
            ("RGB_G", "2u"),
            ("RGB_B", "1u"),
        ],
    },
    Format {
        name: "rgb3",
        family: "fmt_rgb.wgsl",
        fast: "op_copy.wgsl",
        words: false,
        params: &[
            ("RGB_BPP", "3u"),
            ("RGB_R", "0u"),
            ("RGB_G", "1u"),
            ("RGB_B", "2u"),
        ],
    },
    Format {
        name: "bgr3",
        family: "fmt_rgb.wgsl",
        fast: "op_copy.wgsl",
        words: false,
        params: &[
            ("RGB_BPP", "3u"),
            ("RGB_R", "2u"),
            ("RGB_G", "1u"),
            ("RGB_B", "0u"),
        ],
    },
];

fn main() {
    let shaders = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/shaders");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let load = |file: &str| {
        let path = shaders.join(file);
        println!("cargo:rerun-if-changed={}", path.display());
        read(&path)
    };
    let common = load("common.wgsl");
    let wide_out = load("wide.wgsl");
    let transform = load("op_transform.wgsl");
    // The wide bilinear variant for images not narrowed, without a quarter turn: taps shared.
    let rows = load("op_bilinear_rows.wgsl");
    let mut table = String::from(
        "/// Every shader variant: (reader, format, operation, SPIR-V). Generated by render/build.rs.\n\
         pub(super) const SHADERS: &[(&str, &str, &str, &[u8])] = &[\n",
    );
    for (reader, reader_file) in READERS {
        let reader_src = load(reader_file);
        for format in FORMATS {
            let family = load(format.family);
            for wide in [false, true] {
                // The unscaled fast path's file, and the general operation's main, each with a wide form
                // (`*_wide.wgsl`, four pixels per store).
                let (fast_file, transform_main) = if wide {
                    (
                        format.fast.replace(".wgsl", "_wide.wgsl"),
                        "op_transform_wide.wgsl",
                    )
                } else {
                    (format.fast.to_owned(), "op_transform_one.wgsl")
                };
                let fast = load(&fast_file);
                let general = format!("{transform}\n{}", load(transform_main));
                let general_files = format!("op_transform.wgsl + {transform_main}");
                // (variant name, its files, its source, whether it reads words). The fast path needs
                // aligned rows, so it reads words wherever a word reader exists. The wide forms' names end
                // `_wide`, but for those that come only wide.
                let suffix = if wide { "_wide" } else { "" };
                let mut ops = vec![
                    (format!("fast{suffix}"), fast_file, fast, format.words),
                    (
                        format!("nearest{suffix}"),
                        general_files.clone(),
                        general.clone(),
                        false,
                    ),
                    (
                        format!("bilinear{suffix}"),
                        general_files.clone(),
                        general.clone(),
                        false,
                    ),
                ];
                if format.words {
                    ops.push((
                        format!("nearest_w{suffix}"),
                        general_files.clone(),
                        general.clone(),
                        true,
                    ));
                    ops.push((format!("bilinear_w{suffix}"), general_files, general, true));
                }
                if wide {
                    // The unscaled variant for a quarter turn: over columns.
                    let columns_file = format.fast.replace(".wgsl", "_columns.wgsl");
                    let columns = load(&columns_file);
                    ops.push(("fast_columns".into(), columns_file, columns, format.words));
                    let rows_file = "op_bilinear_rows.wgsl".to_owned();
                    ops.push((
                        "bilinear_rows".into(),
                        rows_file.clone(),
                        rows.clone(),
                        false,
                    ));
                    if format.words {
                        ops.push(("bilinear_rows_w".into(), rows_file, rows.clone(), true));
                    }
                }
                for (op, op_files, op_src, words) in ops {
                    let out_src = if wide { wide_out.as_str() } else { "" };
                    let source = format!(
                        "{reader_src}\n{common}\n{}\n{family}\n{out_src}\n{op_src}",
                        glue(format, op.starts_with("bilinear"), words, wide)
                    );
                    let label = format!(
                        "{reader_file} + {} ({}) + {op_files}",
                        format.family, format.name
                    );
                    let spirv = compile(&label, &source);
                    let bytes: Vec<u8> = spirv.iter().flat_map(|w| w.to_le_bytes()).collect();
                    let name = format!("{reader}_{}_{op}.spv", format.name);
                    std::fs::write(out.join(&name), bytes).expect("write SPIR-V");
                    writeln!(
                        table,
                        "    (\"{reader}\", \"{}\", \"{op}\", include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}\"))),",
                        format.name
                    )
                    .expect("write to a String");
                }
            }
        }
    }
    table.push_str("];\n");
    std::fs::write(out.join("shaders.rs"), table).expect("write shaders.rs");
}

/// The generated lines that make a variant read one format: the family's parameters, its reader (by bytes,
/// or by words for aligned rows) as `fetch`, and the output buffer (declared by wide.wgsl in the wide
/// variants).
fn glue(format: &Format, bilinear: bool, words: bool, wide: bool) -> String {
    let reader = if words { "fetch_words" } else { "fetch_bytes" };
    let mut s = format!(
        "const BILINEAR: bool = {bilinear};\n\
         fn fetch(x: u32, y: u32) -> vec3<f32> {{ return {reader}(x, y); }}\n"
    );
    if !wide {
        s += "@group(1) @binding(0) var<storage, read_write> dst: array<u32>;\n";
    }
    for (name, value) in format.params {
        let ty = if value.ends_with('u') { "u32" } else { "bool" };
        s += &format!("const {name}: {ty} = {value};\n");
    }
    s
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
