//! Loading a canister module: decompression, validation against the IC's limits, and the
//! export rewrite that lets the host reach what rustc keeps private.
//!
//! The host needs three things a Rust canister does not export: the function table (callbacks
//! passed to `ic0.call_new` are table indices), the linear memory under a fixed name, and every
//! mutable global (`__stack_pointer` among them) so that a trapped message can be rolled back.
//! They are added to the export section under reserved names before compilation.

use std::collections::BTreeSet;
use std::io::Read;

use sha2::{Digest, Sha256};
use wasmparser::{ExternalKind, Parser, Payload, TypeRef};

use crate::instrument;
use crate::system_api::SYSTEM_API;

/// Largest accepted module after decompression (the IC's limit on a Wasm module).
pub const MAX_WASM_MODULE_BYTES: usize = 100 * 1024 * 1024;
/// Largest accepted code section (the IC's limit).
pub const MAX_CODE_SECTION_BYTES: u64 = 11 * 1024 * 1024;
/// Most functions a module may define (the IC's limit).
pub const MAX_FUNCTIONS: u32 = 50_000;
/// Most globals a module may define (the IC's limit).
pub const MAX_GLOBALS: u32 = 1_000;
/// Most `canister_*` exports a module may have (the IC's limit on exported functions).
pub const MAX_EXPORTED_FUNCTIONS: usize = 1_000;

pub(crate) const TABLE_EXPORT: &str = "__local_ic_table";
pub(crate) const MEMORY_EXPORT: &str = "__local_ic_memory";
const GLOBAL_EXPORT_PREFIX: &str = "__local_ic_global_";

const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Why a module cannot be installed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error("the wasm module is not valid gzip: {0}")]
    BadGzip(String),
    #[error("the wasm module is {size} bytes, above the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the wasm module is invalid: {0}")]
    Invalid(String),
    #[error("the wasm module imports `{module}.{name}`, which the local IC does not provide")]
    UnsupportedImport { module: String, name: String },
    #[error(
        "the wasm module imports `{module}.{name}` as a non-function; only ic0 functions can be imported"
    )]
    NonFunctionImport { module: String, name: String },
    #[error("the wasm module exceeds an IC limit: {0}")]
    LimitExceeded(String),
    #[error("the wasm module exports `{0}` both as an update and as a query")]
    DuplicateMethod(String),
    #[error("the wasm module uses the reserved export name `{0}`")]
    ReservedExport(String),
}

/// A module ready to be compiled: the rewritten bytes and what the host needs to know about it.
#[derive(Debug, Clone)]
pub struct PreparedModule {
    /// The module with the host exports added.
    pub wasm: Vec<u8>,
    /// sha256 of the module as installed (after decompression, before the rewrite), the
    /// `module_hash` that `canister_status` reports.
    pub module_hash: [u8; 32],
    pub update_methods: BTreeSet<String>,
    pub query_methods: BTreeSet<String>,
    pub composite_query_methods: BTreeSet<String>,
    /// Names of the exported `__local_ic_global_<index>` globals, in index order.
    pub mutable_globals: Vec<String>,
}

/// Decompresses (if gzipped) and validates `bytes`, then adds the host exports.
pub fn prepare(bytes: &[u8]) -> Result<PreparedModule, ModuleError> {
    let wasm = decompress(bytes)?;
    if wasm.len() > MAX_WASM_MODULE_BYTES {
        return Err(ModuleError::TooLarge {
            size: wasm.len(),
            limit: MAX_WASM_MODULE_BYTES,
        });
    }
    let module_hash: [u8; 32] = Sha256::digest(&wasm).into();
    let survey = survey(&wasm)?;
    let rewritten = add_host_exports(&wasm, &survey)?;
    Ok(PreparedModule {
        wasm: rewritten,
        module_hash,
        update_methods: survey.update_methods,
        query_methods: survey.query_methods,
        composite_query_methods: survey.composite_query_methods,
        mutable_globals: survey
            .mutable_globals
            .iter()
            .map(|index| format!("{GLOBAL_EXPORT_PREFIX}{index}"))
            .collect(),
    })
}

/// sha256 of a module as the IC hashes it (after gzip decompression).
pub fn module_hash(bytes: &[u8]) -> Result<[u8; 32], ModuleError> {
    Ok(Sha256::digest(decompress(bytes)?).into())
}

pub(crate) fn decompress(bytes: &[u8]) -> Result<Vec<u8>, ModuleError> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_WASM_MODULE_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ModuleError::BadGzip(e.to_string()))?;
    Ok(out)
}

#[derive(Default)]
struct Survey {
    update_methods: BTreeSet<String>,
    query_methods: BTreeSet<String>,
    composite_query_methods: BTreeSet<String>,
    /// Global indices (in the global index space) of mutable globals the module defines.
    mutable_globals: Vec<u32>,
    memory_count: u32,
    table_count: u32,
    exports: Vec<(String, ExternalKind, u32)>,
}

fn invalid(e: wasmparser::BinaryReaderError) -> ModuleError {
    ModuleError::Invalid(e.to_string())
}

fn survey(wasm: &[u8]) -> Result<Survey, ModuleError> {
    let mut validator = wasmparser::Validator::new_with_features(ic_wasm_features());
    validator.validate_all(wasm).map_err(invalid)?;

    let mut survey = Survey::default();
    let mut imported_globals = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(invalid)? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(invalid)?;
                    check_import(import.module, import.name, &import.ty)?;
                    if let TypeRef::Global(_) = import.ty {
                        imported_globals += 1;
                    }
                }
            }
            Payload::FunctionSection(reader) if reader.count() > MAX_FUNCTIONS => {
                return Err(ModuleError::LimitExceeded(format!(
                    "{} functions defined, at most {MAX_FUNCTIONS} allowed",
                    reader.count()
                )));
            }
            Payload::GlobalSection(reader) => {
                if reader.count() > MAX_GLOBALS {
                    return Err(ModuleError::LimitExceeded(format!(
                        "{} globals defined, at most {MAX_GLOBALS} allowed",
                        reader.count()
                    )));
                }
                for (offset, global) in reader.into_iter().enumerate() {
                    let ty = global.map_err(invalid)?.ty;
                    // Reference-typed globals hold no canister state worth rolling back.
                    if ty.mutable && !matches!(ty.content_type, wasmparser::ValType::Ref(_)) {
                        survey
                            .mutable_globals
                            .push(imported_globals + offset as u32);
                    }
                }
            }
            Payload::MemorySection(reader) => survey.memory_count += reader.count(),
            Payload::TableSection(reader) => survey.table_count += reader.count(),
            Payload::CodeSectionStart { size, .. } if u64::from(size) > MAX_CODE_SECTION_BYTES => {
                return Err(ModuleError::LimitExceeded(format!(
                    "code section of {size} bytes, at most {MAX_CODE_SECTION_BYTES} allowed"
                )));
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.map_err(invalid)?;
                    survey
                        .exports
                        .push((export.name.to_string(), export.kind, export.index));
                }
            }
            _ => {}
        }
    }
    classify_exports(&mut survey)?;
    Ok(survey)
}

fn ic_wasm_features() -> wasmparser::WasmFeatures {
    use wasmparser::WasmFeatures as F;
    F::MUTABLE_GLOBAL
        | F::SATURATING_FLOAT_TO_INT
        | F::SIGN_EXTENSION
        | F::MULTI_VALUE
        | F::BULK_MEMORY
        | F::REFERENCE_TYPES
        | F::SIMD
        | F::FLOATS
        | F::EXTENDED_CONST
}

fn check_import(module: &str, name: &str, ty: &TypeRef) -> Result<(), ModuleError> {
    let owned = || (module.to_string(), name.to_string());
    if !matches!(ty, TypeRef::Func(_)) {
        let (module, name) = owned();
        return Err(ModuleError::NonFunctionImport { module, name });
    }
    if module != "ic0" || !SYSTEM_API.iter().any(|f| f.name == name) {
        let (module, name) = owned();
        return Err(ModuleError::UnsupportedImport { module, name });
    }
    Ok(())
}

fn classify_exports(survey: &mut Survey) -> Result<(), ModuleError> {
    let mut exported_functions = 0;
    for (name, kind, _) in &survey.exports {
        if name.starts_with("__local_ic_") {
            return Err(ModuleError::ReservedExport(name.clone()));
        }
        if *kind != ExternalKind::Func || !name.starts_with("canister_") {
            continue;
        }
        exported_functions += 1;
        let (set, method) = if let Some(m) = name.strip_prefix("canister_update ") {
            (&mut survey.update_methods, m)
        } else if let Some(m) = name.strip_prefix("canister_query ") {
            (&mut survey.query_methods, m)
        } else if let Some(m) = name.strip_prefix("canister_composite_query ") {
            (&mut survey.composite_query_methods, m)
        } else {
            continue;
        };
        set.insert(method.to_string());
    }
    if exported_functions > MAX_EXPORTED_FUNCTIONS {
        return Err(ModuleError::LimitExceeded(format!(
            "{exported_functions} canister methods exported, at most {MAX_EXPORTED_FUNCTIONS} allowed"
        )));
    }
    let duplicate = survey
        .update_methods
        .iter()
        .chain(&survey.composite_query_methods)
        .find(|m| survey.query_methods.contains(*m))
        .or_else(|| {
            survey
                .update_methods
                .iter()
                .find(|m| survey.composite_query_methods.contains(*m))
        });
    if let Some(method) = duplicate {
        return Err(ModuleError::DuplicateMethod(method.clone()));
    }
    Ok(())
}

/// Adds the host exports and the IC's instruction metering (see `instrument`).
fn add_host_exports(wasm: &[u8], survey: &Survey) -> Result<Vec<u8>, ModuleError> {
    let mutable_globals: Vec<(String, u32)> = survey
        .mutable_globals
        .iter()
        .map(|index| (format!("{GLOBAL_EXPORT_PREFIX}{index}"), *index))
        .collect();
    instrument::instrument(
        wasm,
        &instrument::HostExports {
            exports: &survey.exports,
            table: (survey.table_count > 0).then_some(TABLE_EXPORT),
            memory: (survey.memory_count > 0).then_some(MEMORY_EXPORT),
            mutable_globals: &mutable_globals,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wat(text: &str) -> Vec<u8> {
        wat::parse_str(text).expect("valid wat")
    }

    #[test]
    fn exports_table_memory_and_mutable_globals() {
        let module = prepare(&wat(r#"(module
                (memory 1)
                (table 2 funcref)
                (global (mut i32) (i32.const 7))
                (global i32 (i32.const 1))
                (global (mut i64) (i64.const 9))
                (func (export "canister_update inc"))
                (func (export "canister_query get")))"#))
        .expect("prepared");
        assert_eq!(
            module.mutable_globals,
            vec!["__local_ic_global_0", "__local_ic_global_2"]
        );
        assert!(module.update_methods.contains("inc"));
        assert!(module.query_methods.contains("get"));
        let exports: Vec<String> = Parser::new(0)
            .parse_all(&module.wasm)
            .filter_map(|p| match p.unwrap() {
                Payload::ExportSection(r) => Some(
                    r.into_iter()
                        .map(|e| e.unwrap().name.to_string())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect();
        assert!(exports.contains(&TABLE_EXPORT.to_string()));
        assert!(exports.contains(&MEMORY_EXPORT.to_string()));
        wasmparser::Validator::new()
            .validate_all(&module.wasm)
            .expect("still valid");
    }

    #[test]
    fn unknown_import_is_named() {
        let err = prepare(&wat(r#"(module (import "ic0" "no_such_call" (func)))"#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the wasm module imports `ic0.no_such_call`, which the local IC does not provide"
        );
    }

    #[test]
    fn method_exported_twice_is_rejected() {
        let err = prepare(&wat(
            r#"(module (func (export "canister_update m")) (func (export "canister_query m")))"#,
        ))
        .unwrap_err();
        assert_eq!(err, ModuleError::DuplicateMethod("m".into()));
    }

    #[test]
    fn gzip_modules_are_accepted_and_hashed_uncompressed() {
        use std::io::Write;
        let plain = wat(r#"(module (func (export "canister_update m")))"#);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(&plain).unwrap();
        let gz = encoder.finish().unwrap();
        let module = prepare(&gz).expect("gzip accepted");
        assert_eq!(module.module_hash, <[u8; 32]>::from(Sha256::digest(&plain)));
    }

    #[test]
    fn garbage_is_invalid() {
        assert!(matches!(
            prepare(b"\0asm\x01\0\0\0\x05"),
            Err(ModuleError::Invalid(_))
        ));
    }
}
