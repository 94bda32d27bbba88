//! Instruction metering as the replica does it: the module counts its own instructions.
//!
//! The IC does not charge what an engine happens to execute; it rewrites every module before
//! compiling it (dfinity/ic `rs/embedders/src/wasm_utils/instrumentation.rs`) so that the
//! module keeps a counter itself, and that counter is what limits and bills a message. This
//! module performs the same rewrite, so the local runtime's counts are the IC's counts whatever
//! engine runs the code:
//!
//! - a mutable `i64` global, the instruction counter, is appended and exported as
//!   [`COUNTER_EXPORT`]; the host sets it to the message's limit before running an entry point
//!   and reads what is left afterwards;
//! - every basic block starts by subtracting the summed [`instruction_cost`] of its
//!   instructions; where a block can be re-entered (a function's start and every loop body) the
//!   counter is also checked, and `__.out_of_instructions` (an injected import, function index
//!   0) is called when it went negative. Blocks that cannot loop are not checked, exactly as
//!   on the IC, so a message may overrun its limit by at most one straight run of code;
//! - bulk memory and table operations (`memory.copy`, `memory.fill`, `memory.init`,
//!   `table.copy`, `table.fill`, `table.init`) also pay their size, in elements, through an
//!   injected helper function that subtracts it before the operation runs;
//! - the `start` function is no longer started by instantiation: it is exported as
//!   [`START_EXPORT`] so the host runs it with a counter of its own, as the replica exports it
//!   as `canister_start`.
//!
//! - modules with a heap also get the write barrier of `write_barrier`: stores mark the 4 KiB
//!   pages they write, so a commit or a rollback copies only those.
//!
//! The injected code is not counted (it is not in the table's reckoning on the IC either). What
//! this does not reproduce: the replica's `try_grow_wasm_memory` check after `memory.grow` (the
//! local runtime checks the wasm memory limit when the message ends) and its Wasm-native stable
//! memory (System API stable reads and writes are charged by the host instead, with the same
//! figures).

use wasm_encoder::reencode::{self, Reencode};
use wasm_encoder::{
    CodeSection, ConstExpr, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    GlobalSection, GlobalType, ImportSection, Instruction, SectionId, TypeSection, ValType,
};
use wasmparser::{ExternalKind, FunctionBody, Operator, Parser};

use crate::wasm_module::ModuleError;
use crate::write_barrier;

/// Module of the injected imports (the replica's name).
pub(crate) const INJECTED_MODULE: &str = "__";
/// The injected import called when the counter is negative at a check.
pub(crate) const OUT_OF_INSTRUCTIONS: &str = "out_of_instructions";
/// Export name of the instruction counter.
pub(crate) const COUNTER_EXPORT: &str = "__local_ic_instruction_counter";
/// Export name of the former `start` function.
pub(crate) const START_EXPORT: &str = "__local_ic_start";

/// The IC's cost of one executed instruction in a 32-bit memory module (the replica's
/// `instruction_to_cost`; bulk operations add their size at run time on top of this).
pub fn instruction_cost(op: &Operator<'_>) -> u64 {
    use Operator as O;
    match op {
        // Structure: free.
        O::Block { .. } | O::Loop { .. } | O::Else | O::End => 0,

        // Integer division and remainder.
        O::I32DivS | O::I32DivU | O::I32RemS | O::I32RemU => 10,
        O::I64DivS | O::I64DivU | O::I64RemS | O::I64RemU => 10,

        // Scalar floats.
        O::F32Add | O::F32Sub | O::F32Mul | O::F64Add | O::F64Sub | O::F64Mul => 2,
        O::F32Ceil | O::F32Floor | O::F32Trunc | O::F32Nearest => 2,
        O::F64Ceil | O::F64Floor | O::F64Trunc | O::F64Nearest => 2,
        O::F32Div => 3,
        O::F64Div => 5,
        O::F32Min | O::F32Max | O::F64Min | O::F64Max => 18,
        O::F32Copysign => 2,
        O::F64Copysign => 3,
        O::F32Sqrt => 5,
        O::F64Sqrt => 8,
        O::F32Eq | O::F32Ne | O::F32Lt | O::F32Gt | O::F32Le | O::F32Ge => 3,
        O::F64Eq | O::F64Ne | O::F64Lt | O::F64Gt | O::F64Le | O::F64Ge => 3,
        O::F32ConvertI32S | O::F64ConvertI64S | O::F32ConvertI64S | O::F64ConvertI32S => 3,
        O::F64ConvertI32U | O::F32ConvertI64U | O::F32ConvertI32U | O::F64ConvertI64U => 16,
        O::I32TruncF32S | O::I32TruncF32U | O::I32TruncF64S | O::I32TruncF64U => 20,
        O::I64TruncF32S | O::I64TruncF32U | O::I64TruncF64S | O::I64TruncF64U => 20,
        O::I32TruncSatF32S | O::I32TruncSatF32U | O::I32TruncSatF64S | O::I32TruncSatF64U => 20,
        O::I64TruncSatF32S | O::I64TruncSatF32U | O::I64TruncSatF64S | O::I64TruncSatF64U => 20,

        // Globals, tables, memory management.
        O::GlobalGet { .. } | O::GlobalSet { .. } => 2,
        O::TableGet { .. } | O::TableSet { .. } => 5,
        O::TableGrow { .. } | O::MemoryGrow { .. } => 300,
        O::MemorySize { .. } => 20,
        O::TableSize { .. } => 100,
        O::MemoryFill { .. } | O::MemoryCopy { .. } | O::MemoryInit { .. } => 100,
        O::TableFill { .. } | O::TableCopy { .. } | O::TableInit { .. } => 100,
        O::DataDrop { .. } | O::ElemDrop { .. } => 300,

        // Calls and branches.
        O::Call { .. } => 5,
        O::CallIndirect { .. } => 10,
        O::ReturnCall { .. } => 3,
        O::ReturnCallIndirect { .. } => 60,
        O::If { .. } | O::Br { .. } | O::BrIf { .. } | O::BrTable { .. } => 2,

        // References.
        O::RefIsNull => 5,
        O::RefFunc { .. } => 130,

        // SIMD: what differs from the default of 1.
        O::I8x16Shuffle { .. } => 3,
        O::I8x16LtU | O::I8x16GtU | O::I16x8LtU | O::I16x8GtU | O::I32x4LtU | O::I32x4GtU => 2,
        O::I8x16Popcnt | O::I8x16Shl | O::I8x16ShrS => 3,
        O::I8x16ShrU => 2,
        O::I16x8ExtAddPairwiseI8x16U => 2,
        O::I16x8Shl | O::I16x8ShrS | O::I16x8ShrU => 2,
        O::I16x8ExtMulHighI8x16S | O::I16x8ExtMulHighI8x16U => 2,
        O::I32x4ExtAddPairwiseI16x8U => 3,
        O::I32x4Shl | O::I32x4ShrS | O::I32x4ShrU | O::I32x4Mul => 2,
        O::I32x4ExtMulLowI16x8S | O::I32x4ExtMulHighI16x8S => 2,
        O::I32x4ExtMulLowI16x8U | O::I32x4ExtMulHighI16x8U => 2,
        O::I64x2Shl | O::I64x2ShrU => 2,
        O::I64x2ShrS => 3,
        O::I64x2Mul => 4,
        O::F32x4Ceil | O::F32x4Floor | O::F32x4Trunc | O::F32x4Nearest => 2,
        O::F32x4Abs | O::F32x4Neg | O::F32x4Add | O::F32x4Sub | O::F32x4Mul => 2,
        O::F32x4Sqrt => 5,
        O::F32x4Div => 10,
        O::F32x4Min | O::F32x4Max => 4,
        O::F64x2Ceil | O::F64x2Floor | O::F64x2Trunc | O::F64x2Nearest => 2,
        O::F64x2Abs | O::F64x2Neg | O::F64x2Add | O::F64x2Sub | O::F64x2Mul => 2,
        O::F64x2Sqrt => 14,
        O::F64x2Div => 12,
        O::F64x2Min => 4,
        O::F64x2Max => 5,
        O::I32x4TruncSatF32x4S => 2,
        O::I32x4TruncSatF32x4U | O::F32x4ConvertI32x4U => 4,
        O::I32x4TruncSatF64x2SZero => 2,
        O::I32x4TruncSatF64x2UZero => 3,

        // Everything else: constants, integer arithmetic and comparisons, loads and stores
        // (32-bit memory), locals, select, drop, return, nop, unreachable, conversions, the rest
        // of SIMD.
        _ => 1,
    }
}

/// What the rewrite needs to know about the module before it starts.
#[derive(Debug, Default, Clone)]
pub(crate) struct Layout {
    /// Types in the type section (rec groups counted by their members).
    pub types: u32,
    /// Imported plus defined globals: the counter's index.
    pub globals: u32,
    /// Imported plus defined functions, before the injected import.
    pub functions: u32,
    /// The start function's index, before the injected import.
    pub start: Option<u32>,
    /// Memories the module defines (0 or 1): with one, writes are tracked (`write_barrier`).
    pub memories: u32,
    /// Parameters of each type (0 for non-function types).
    pub type_params: Vec<u32>,
    /// Type of each defined function.
    pub function_types: Vec<u32>,
}

impl Layout {
    pub(crate) fn of(wasm: &[u8]) -> Result<Self, ModuleError> {
        let mut layout = Self::default();
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.map_err(invalid)? {
                wasmparser::Payload::TypeSection(reader) => {
                    for group in reader {
                        for ty in group.map_err(invalid)?.types() {
                            layout.types += 1;
                            let params = match &ty.composite_type.inner {
                                wasmparser::CompositeInnerType::Func(f) => f.params().len(),
                                _ => 0,
                            };
                            layout.type_params.push(params as u32);
                        }
                    }
                }
                wasmparser::Payload::ImportSection(reader) => {
                    for import in reader.into_imports() {
                        match import.map_err(invalid)?.ty {
                            wasmparser::TypeRef::Func(_) | wasmparser::TypeRef::FuncExact(_) => {
                                layout.functions += 1
                            }
                            wasmparser::TypeRef::Global(_) => layout.globals += 1,
                            _ => {}
                        }
                    }
                }
                wasmparser::Payload::FunctionSection(reader) => {
                    layout.functions += reader.count();
                    for ty in reader {
                        layout.function_types.push(ty.map_err(invalid)?);
                    }
                }
                wasmparser::Payload::MemorySection(reader) => layout.memories += reader.count(),
                wasmparser::Payload::GlobalSection(reader) => layout.globals += reader.count(),
                wasmparser::Payload::StartSection { func, .. } => layout.start = Some(func),
                _ => {}
            }
        }
        Ok(layout)
    }

    /// The type `() -> ()` of `out_of_instructions`.
    fn out_of_instructions_type(&self) -> u32 {
        self.types
    }

    /// The type `(i64) -> i64` of the dynamic-cost helper.
    fn charge_type(&self) -> u32 {
        self.types + 1
    }

    /// The helper's function index: after every original function and the injected import.
    fn charge_function(&self) -> u32 {
        self.functions + 1
    }

    /// True when the module has a heap whose writes the write barrier tracks.
    fn tracks_writes(&self) -> bool {
        self.memories > 0
    }

    /// The type `(i32, i32) -> ()` of the write barrier's range helper.
    fn mark_range_type(&self) -> u32 {
        self.types + 2
    }

    /// The write barrier's range helper, after the charge helper.
    fn mark_range_function(&self) -> u32 {
        self.functions + 2
    }

    /// The write barrier's map: after the module's own memory.
    fn map_memory(&self) -> u32 {
        self.memories
    }
}

/// Exports the host adds beside the module's own (already validated not to clash).
pub(crate) struct HostExports<'a> {
    pub exports: &'a [(String, ExternalKind, u32)],
    pub table: Option<&'a str>,
    pub memory: Option<&'a str>,
    pub mutable_globals: &'a [(String, u32)],
}

/// Rewrites `wasm` with metering and the host's exports. `wasm` must be valid.
pub(crate) fn instrument(wasm: &[u8], host: &HostExports<'_>) -> Result<Vec<u8>, ModuleError> {
    let layout = Layout::of(wasm)?;
    let mut rewriter = Rewriter {
        layout,
        host,
        done: Done::default(),
        bodies: 0,
    };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|e| ModuleError::Invalid(format!("instrumentation failed: {e:?}")))?;
    Ok(module.finish())
}

fn invalid(e: wasmparser::BinaryReaderError) -> ModuleError {
    ModuleError::Invalid(e.to_string())
}

/// Which of the sections the rewrite must add to have been written.
#[derive(Default)]
struct Done {
    types: bool,
    imports: bool,
    functions: bool,
    globals: bool,
    exports: bool,
    code: bool,
}

struct Rewriter<'a> {
    layout: Layout,
    host: &'a HostExports<'a>,
    done: Done,
    /// Function bodies rewritten so far.
    bodies: usize,
}

type Result2<T> = Result<T, reencode::Error>;

impl Rewriter<'_> {
    fn counter(&self) -> u32 {
        self.layout.globals
    }

    fn add_types(&mut self, types: &mut TypeSection) {
        types.ty().function([], []);
        types.ty().function([ValType::I64], [ValType::I64]);
        types.ty().function([ValType::I32, ValType::I32], []);
        self.done.types = true;
    }

    fn add_import(&mut self, imports: &mut ImportSection) {
        imports.import(
            INJECTED_MODULE,
            OUT_OF_INSTRUCTIONS,
            EntityType::Function(self.layout.out_of_instructions_type()),
        );
    }

    fn add_function(&mut self, functions: &mut FunctionSection) {
        functions.function(self.layout.charge_type());
        if self.layout.tracks_writes() {
            functions.function(self.layout.mark_range_type());
        }
        self.done.functions = true;
    }

    fn add_counter(&mut self, globals: &mut GlobalSection) {
        globals.global(
            GlobalType {
                val_type: ValType::I64,
                mutable: true,
                shared: false,
            },
            &ConstExpr::i64_const(0),
        );
        self.done.globals = true;
    }

    fn add_exports(&mut self, exports: &mut ExportSection) -> Result2<()> {
        for (name, kind, index) in self.host.exports {
            let (kind, index) = match kind {
                ExternalKind::Func | ExternalKind::FuncExact => {
                    (ExportKind::Func, self.function_index(*index)?)
                }
                ExternalKind::Table => (ExportKind::Table, *index),
                ExternalKind::Memory => (ExportKind::Memory, *index),
                ExternalKind::Global => (ExportKind::Global, *index),
                ExternalKind::Tag => (ExportKind::Tag, *index),
            };
            exports.export(name, kind, index);
        }
        if let Some(name) = self.host.table {
            exports.export(name, ExportKind::Table, 0);
        }
        if let Some(name) = self.host.memory {
            exports.export(name, ExportKind::Memory, 0);
        }
        for (name, index) in self.host.mutable_globals {
            exports.export(name, ExportKind::Global, *index);
        }
        exports.export(COUNTER_EXPORT, ExportKind::Global, self.counter());
        if self.layout.tracks_writes() {
            exports.export(
                write_barrier::MAP_EXPORT,
                ExportKind::Memory,
                self.layout.map_memory(),
            );
        }
        if let Some(start) = self.layout.start {
            exports.export(START_EXPORT, ExportKind::Func, start + 1);
        }
        self.done.exports = true;
        Ok(())
    }

    /// The dynamic-cost helper: subtracts its argument from the counter (saturating at
    /// `i64::MIN`), calls `out_of_instructions` if the counter went negative, and returns the
    /// argument unchanged so the bulk operation still finds its size on the stack.
    fn add_charge_body(&mut self, code: &mut CodeSection) {
        let counter = self.counter();
        let mut f = Function::new([(1, ValType::I64)]);
        f.instruction(&Instruction::GlobalGet(counter))
            .instruction(&Instruction::LocalGet(0))
            .instruction(&Instruction::I64Sub)
            .instruction(&Instruction::LocalTee(1))
            .instruction(&Instruction::GlobalGet(counter))
            .instruction(&Instruction::I64GtS)
            .instruction(&Instruction::If(wasm_encoder::BlockType::Result(
                ValType::I64,
            )))
            .instruction(&Instruction::I64Const(i64::MIN))
            .instruction(&Instruction::Else)
            .instruction(&Instruction::LocalGet(1))
            .instruction(&Instruction::End)
            .instruction(&Instruction::GlobalSet(counter))
            .instruction(&Instruction::GlobalGet(counter))
            .instruction(&Instruction::I64Const(0))
            .instruction(&Instruction::I64LtS)
            .instruction(&Instruction::If(wasm_encoder::BlockType::Empty))
            .instruction(&Instruction::Call(0))
            .instruction(&Instruction::End)
            .instruction(&Instruction::LocalGet(0))
            .instruction(&Instruction::End);
        code.function(&f);
        if self.layout.tracks_writes() {
            code.function(&write_barrier::mark_range_body(self.layout.map_memory()));
        }
        self.done.code = true;
    }
}

/// Where the metering code goes in a function body, as the replica places it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Point {
    /// Before instruction `at`: subtract `cost`; `check` the counter when the block can be
    /// re-entered.
    Static { at: usize, cost: u64, check: bool },
    /// Before the bulk operation at `at`: subtract its size, found on top of the stack.
    Dynamic { at: usize },
}

impl Point {
    fn at(&self) -> usize {
        match self {
            Point::Static { at, .. } | Point::Dynamic { at } => *at,
        }
    }
}

/// The metering points of a body: one per basic block (starting at the function's first
/// instruction and after every `loop`, `if`, `else`, `br`, `br_if`, `br_table`, `end`,
/// `return`, `unreachable` and tail call) and one before every bulk operation.
fn metering_points(ops: &[Operator<'_>]) -> Vec<Point> {
    let mut points = Vec::new();
    // A function is re-entrant; even an empty one costs 1.
    let (mut start, mut cost, mut check) = (0, 1, true);
    for (position, op) in ops.iter().enumerate() {
        cost += instruction_cost(op);
        let next_check = match op {
            Operator::Loop { .. } => Some(true),
            Operator::If { .. }
            | Operator::Else
            | Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::End
            | Operator::Return
            | Operator::Unreachable
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. } => Some(false),
            Operator::MemoryFill { .. }
            | Operator::MemoryCopy { .. }
            | Operator::MemoryInit { .. }
            | Operator::TableFill { .. }
            | Operator::TableCopy { .. }
            | Operator::TableInit { .. } => {
                points.push(Point::Dynamic { at: position });
                None
            }
            _ => None,
        };
        if let Some(next_check) = next_check {
            if check || cost > 0 {
                points.push(Point::Static {
                    at: start,
                    cost,
                    check,
                });
            }
            (start, cost, check) = (position + 1, 0, next_check);
        }
    }
    // A dynamic point pushed while its block was open goes before that block's static point
    // at the same position: sort by position only, keeping that order (a stable sort).
    points.sort_by_key(Point::at);
    points
}

impl Reencode for Rewriter<'_> {
    type Error = std::convert::Infallible;

    fn function_index(&mut self, func: u32) -> Result2<u32> {
        Ok(func + 1)
    }

    fn parse_type_section(
        &mut self,
        types: &mut TypeSection,
        section: wasmparser::TypeSectionReader<'_>,
    ) -> Result2<()> {
        reencode::utils::parse_type_section(self, types, section)?;
        self.add_types(types);
        Ok(())
    }

    fn parse_import_section(
        &mut self,
        imports: &mut ImportSection,
        section: wasmparser::ImportSectionReader<'_>,
    ) -> Result2<()> {
        // First, so that it is function 0 and every other function moves up by one.
        self.add_import(imports);
        self.done.imports = true;
        reencode::utils::parse_import_section(self, imports, section)
    }

    fn parse_function_section(
        &mut self,
        functions: &mut FunctionSection,
        section: wasmparser::FunctionSectionReader<'_>,
    ) -> Result2<()> {
        reencode::utils::parse_function_section(self, functions, section)?;
        self.add_function(functions);
        Ok(())
    }

    fn parse_global_section(
        &mut self,
        globals: &mut GlobalSection,
        section: wasmparser::GlobalSectionReader<'_>,
    ) -> Result2<()> {
        reencode::utils::parse_global_section(self, globals, section)?;
        self.add_counter(globals);
        Ok(())
    }

    fn parse_export_section(
        &mut self,
        exports: &mut ExportSection,
        _section: wasmparser::ExportSectionReader<'_>,
    ) -> Result2<()> {
        // The module's own exports come from the survey, in their original order.
        self.add_exports(exports)
    }

    fn parse_code_section(
        &mut self,
        code: &mut CodeSection,
        section: wasmparser::CodeSectionReader<'_>,
    ) -> Result2<()> {
        reencode::utils::parse_code_section(self, code, section)?;
        self.add_charge_body(code);
        Ok(())
    }

    fn parse_memory_section(
        &mut self,
        memories: &mut wasm_encoder::MemorySection,
        section: wasmparser::MemorySectionReader<'_>,
    ) -> Result2<()> {
        reencode::utils::parse_memory_section(self, memories, section)?;
        if self.layout.tracks_writes() {
            memories.memory(wasm_encoder::MemoryType {
                minimum: write_barrier::MAP_WASM_PAGES,
                maximum: Some(write_barrier::MAP_WASM_PAGES),
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
        }
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        body: FunctionBody<'_>,
    ) -> Result2<()> {
        let defined = self.bodies;
        self.bodies += 1;
        let mut locals = Vec::new();
        let mut declared = 0u32;
        for pair in body.get_locals_reader()? {
            let (count, ty) = pair?;
            declared += count;
            locals.push((count, self.val_type(ty)?));
        }
        let params = self
            .layout
            .function_types
            .get(defined)
            .and_then(|ty| self.layout.type_params.get(*ty as usize))
            .copied()
            .unwrap_or(0);
        let barrier = self.layout.tracks_writes().then(|| {
            locals.extend(write_barrier::EXTRA_LOCALS.iter().map(|ty| (1, *ty)));
            write_barrier::Barrier {
                first_local: params + declared,
                map_memory: self.layout.map_memory(),
                mark_range: self.layout.mark_range_function(),
            }
        });
        let mut function = Function::new(locals);
        let ops = body
            .get_operators_reader()?
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let counter = self.counter();
        let charge = self.layout.charge_function();
        let mut points = metering_points(&ops).into_iter().peekable();
        for (position, op) in ops.into_iter().enumerate() {
            while let Some(point) = points.next_if(|p| p.at() == position) {
                match point {
                    Point::Static { cost, check, .. } => {
                        function
                            .instruction(&Instruction::GlobalGet(counter))
                            .instruction(&Instruction::I64Const(cost as i64))
                            .instruction(&Instruction::I64Sub)
                            .instruction(&Instruction::GlobalSet(counter));
                        if check {
                            function
                                .instruction(&Instruction::GlobalGet(counter))
                                .instruction(&Instruction::I64Const(0))
                                .instruction(&Instruction::I64LtS)
                                .instruction(&Instruction::If(wasm_encoder::BlockType::Empty))
                                .instruction(&Instruction::Call(0))
                                .instruction(&Instruction::End);
                        }
                    }
                    // Sizes are i32 in a 32-bit memory module.
                    Point::Dynamic { .. } => {
                        function
                            .instruction(&Instruction::I64ExtendI32U)
                            .instruction(&Instruction::Call(charge))
                            .instruction(&Instruction::I32WrapI64);
                    }
                }
            }
            if let Some(barrier) = &barrier {
                barrier.before(&op, &mut function);
            }
            function.instruction(&self.instruction(op)?);
        }
        code.function(&function);
        Ok(())
    }

    fn start_section(&mut self, start: u32) -> Result2<u32> {
        // Unreachable: `intersperse_section_hook` never lets a start section through (see
        // `skip_start`); kept total for the trait.
        self.function_index(start)
    }

    fn intersperse_section_hook(
        &mut self,
        module: &mut wasm_encoder::Module,
        _after: Option<SectionId>,
        before: Option<SectionId>,
    ) -> Result2<()> {
        // Sections the module lacks are added where they belong, before the first section
        // that must follow them.
        let order = |id: Option<SectionId>| id.map_or(u8::MAX, section_rank);
        let next = order(before);
        if !self.done.types && next > section_rank(SectionId::Type) {
            let mut types = TypeSection::new();
            self.add_types(&mut types);
            module.section(&types);
        }
        if !self.done.imports && next > section_rank(SectionId::Import) {
            let mut imports = ImportSection::new();
            self.add_import(&mut imports);
            self.done.imports = true;
            module.section(&imports);
        }
        if !self.done.functions && next > section_rank(SectionId::Function) {
            let mut functions = FunctionSection::new();
            self.add_function(&mut functions);
            module.section(&functions);
        }
        if !self.done.globals && next > section_rank(SectionId::Global) {
            let mut globals = GlobalSection::new();
            self.add_counter(&mut globals);
            module.section(&globals);
        }
        if !self.done.exports && next > section_rank(SectionId::Export) {
            let mut exports = ExportSection::new();
            self.add_exports(&mut exports)?;
            module.section(&exports);
        }
        if !self.done.code && next > section_rank(SectionId::Code) {
            let mut code = CodeSection::new();
            self.add_charge_body(&mut code);
            module.section(&code);
        }
        Ok(())
    }

    fn parse_core_module(
        &mut self,
        module: &mut wasm_encoder::Module,
        parser: Parser,
        data: &[u8],
    ) -> Result2<()> {
        let without_start = skip_start(data);
        reencode::utils::parse_core_module(self, module, parser, &without_start)
    }
}

/// The module's bytes without its start section (the host runs that function itself).
fn skip_start(wasm: &[u8]) -> Vec<u8> {
    let mut out = wasm[..8.min(wasm.len())].to_vec();
    for payload in Parser::new(0).parse_all(wasm).flatten() {
        if let Some((id, range)) = payload.as_section() {
            if id == SectionId::Start as u8 {
                continue;
            }
            let body = &wasm[range.start as usize..range.end as usize];
            out.push(id);
            leb128_u32(&mut out, body.len() as u32);
            out.extend_from_slice(body);
        }
    }
    out
}

fn leb128_u32(out: &mut Vec<u8>, mut value: u32) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Position of a section in a module (ids are not in module order: tags and data count).
fn section_rank(id: SectionId) -> u8 {
    match id {
        SectionId::Custom => 0,
        SectionId::Type => 1,
        SectionId::Import => 2,
        SectionId::Function => 3,
        SectionId::Table => 4,
        SectionId::Memory => 5,
        SectionId::Tag => 6,
        SectionId::Global => 7,
        SectionId::Export => 8,
        SectionId::Start => 9,
        SectionId::Element => 10,
        SectionId::DataCount => 11,
        SectionId::Code => 12,
        SectionId::Data => 13,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(wat_body: &str) -> Vec<Operator<'static>> {
        let wasm = wat::parse_str(format!("(module (memory 1) (func {wat_body}))")).unwrap();
        let wasm: &'static [u8] = Box::leak(wasm.into_boxed_slice());
        for payload in Parser::new(0).parse_all(wasm) {
            if let wasmparser::Payload::CodeSectionEntry(body) = payload.unwrap() {
                return body
                    .get_operators_reader()
                    .unwrap()
                    .into_iter()
                    .collect::<Result<_, _>>()
                    .unwrap();
            }
        }
        unreachable!("one function")
    }

    #[test]
    fn straight_code_is_one_checked_block() {
        // i32.const 1, i32.const 2, i32.add, drop, end: 1 + 1 + 1 + 1 + 0, plus 1 for entry.
        let points = metering_points(&ops("i32.const 1 i32.const 2 i32.add drop"));
        assert_eq!(
            points,
            vec![Point::Static {
                at: 0,
                cost: 5,
                check: true
            }]
        );
    }

    #[test]
    fn loops_are_checked_and_branches_split_blocks() {
        // loop; local.get 0 (1); br_if 0 (2); end; end
        let body = "(local i32) loop local.get 0 br_if 0 end";
        let points = metering_points(&ops(body));
        assert_eq!(
            points,
            vec![
                Point::Static {
                    at: 0,
                    cost: 1,
                    check: true
                },
                Point::Static {
                    at: 1,
                    cost: 3,
                    check: true
                },
            ]
        );
    }

    #[test]
    fn bulk_operations_get_a_dynamic_point_before_them() {
        let points = metering_points(&ops("i32.const 0 i32.const 8 i32.const 16 memory.copy"));
        assert_eq!(
            points,
            vec![
                Point::Static {
                    at: 0,
                    cost: 104,
                    check: true
                },
                Point::Dynamic { at: 3 },
            ]
        );
    }

    #[test]
    fn costs_follow_the_ic_table() {
        assert_eq!(instruction_cost(&Operator::F32Mul), 2);
        assert_eq!(instruction_cost(&Operator::F32Div), 3);
        assert_eq!(instruction_cost(&Operator::I64RemU), 10);
        assert_eq!(instruction_cost(&Operator::Call { function_index: 3 }), 5);
        assert_eq!(instruction_cost(&Operator::I32x4DotI16x8S), 1);
        assert_eq!(instruction_cost(&Operator::F32x4Mul), 2);
        assert_eq!(instruction_cost(&Operator::I8x16Swizzle), 1);
        assert_eq!(instruction_cost(&Operator::LocalGet { local_index: 0 }), 1);
    }
}
