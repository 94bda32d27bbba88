//! Which 4 KiB pages of the heap a message wrote, so that committing or rolling back a
//! message copies only those pages instead of the whole heap.
//!
//! The instrumentation adds a second memory to every module that has one, a byte map with one
//! byte per 4 KiB page of the 4 GiB a 32-bit heap can reach (1 MiB), and before every store
//! marks the pages the store touches (the first and the last byte's page: an unaligned store
//! may straddle two); bulk writes (`memory.fill`, `memory.copy`, `memory.init`) mark their
//! whole range through an injected helper, and the host marks what System API calls write.
//! This is the replica's write-barrier scheme (one of its two ways of tracking dirty pages);
//! like the metering, the injected code is not counted as instructions.

use wasm_encoder::{Function, Instruction, MemArg, ValType};
use wasmparser::Operator;

/// Bytes of heap one byte of the map stands for.
pub const PAGE_BYTES: usize = 4096;
/// log2 of [`PAGE_BYTES`].
const PAGE_SHIFT: i32 = 12;
/// Wasm pages of the map: one byte per 4 KiB of a 4 GiB heap.
pub const MAP_WASM_PAGES: u64 = (1 << 32) / PAGE_BYTES as u64 / 65_536;
/// Export name of the map.
pub const MAP_EXPORT: &str = "__local_ic_dirty_pages";

/// The locals a function needs to stash a store's operands: `[i32 address, i32, i32, i64, f32,
/// f64, v128]`, appended after the function's own locals.
pub const EXTRA_LOCALS: [ValType; 7] = [
    ValType::I32,
    ValType::I32,
    ValType::I32,
    ValType::I64,
    ValType::F32,
    ValType::F64,
    ValType::V128,
];

/// Where the stash locals start and which memory is the map.
#[derive(Debug, Clone, Copy)]
pub struct Barrier {
    /// Index of the first of [`EXTRA_LOCALS`] in the function.
    pub first_local: u32,
    /// Memory index of the map.
    pub map_memory: u32,
    /// Function index of the range helper built by [`mark_range_body`].
    pub mark_range: u32,
}

/// A heap write the barrier must see before it happens.
enum Write {
    /// A store of `width` bytes of `value` at address + `offset`.
    Store {
        value: ValType,
        width: u32,
        offset: u64,
    },
    /// `memory.fill` / `memory.copy` / `memory.init`: destination, another i32, length.
    Bulk,
}

fn write_of(op: &Operator<'_>) -> Option<Write> {
    use Operator as O;
    let store = |value, width, memarg: &wasmparser::MemArg| {
        matches!(memarg.target, wasmparser::MemArgTarget::Memory(0)).then_some(Write::Store {
            value,
            width,
            offset: memarg.offset,
        })
    };
    match op {
        O::I32Store { memarg } => store(ValType::I32, 4, memarg),
        O::I32Store8 { memarg } => store(ValType::I32, 1, memarg),
        O::I32Store16 { memarg } => store(ValType::I32, 2, memarg),
        O::I64Store { memarg } => store(ValType::I64, 8, memarg),
        O::I64Store8 { memarg } => store(ValType::I64, 1, memarg),
        O::I64Store16 { memarg } => store(ValType::I64, 2, memarg),
        O::I64Store32 { memarg } => store(ValType::I64, 4, memarg),
        O::F32Store { memarg } => store(ValType::F32, 4, memarg),
        O::F64Store { memarg } => store(ValType::F64, 8, memarg),
        O::V128Store { memarg } => store(ValType::V128, 16, memarg),
        O::V128Store8Lane { memarg, .. } => store(ValType::V128, 1, memarg),
        O::V128Store16Lane { memarg, .. } => store(ValType::V128, 2, memarg),
        O::V128Store32Lane { memarg, .. } => store(ValType::V128, 4, memarg),
        O::V128Store64Lane { memarg, .. } => store(ValType::V128, 8, memarg),
        O::MemoryFill { mem: 0 } | O::MemoryCopy { dst_mem: 0, .. } => Some(Write::Bulk),
        O::MemoryInit { mem: 0, .. } => Some(Write::Bulk),
        _ => None,
    }
}

impl Barrier {
    fn local(&self, slot: u32) -> u32 {
        self.first_local + slot
    }

    fn value_local(&self, value: ValType) -> u32 {
        self.local(match value {
            ValType::I64 => 3,
            ValType::F32 => 4,
            ValType::F64 => 5,
            ValType::V128 => 6,
            _ => 1,
        })
    }

    fn map_store(&self) -> Instruction<'static> {
        map_store(self.map_memory)
    }

    /// Emits, before `op`, the code that marks the pages it will write (nothing for other
    /// instructions). The operands are left on the stack as they were.
    pub fn before(&self, op: &Operator<'_>, function: &mut Function) {
        let Some(write) = write_of(op) else {
            return;
        };
        let address = self.local(0);
        match write {
            Write::Store {
                value,
                width,
                offset,
            } => {
                function
                    .instruction(&Instruction::LocalSet(self.value_local(value)))
                    .instruction(&Instruction::LocalSet(address));
                // The page of the first byte and of the last; i32 arithmetic may wrap only for
                // an address the store itself will refuse (out of bounds), and any index it
                // gives stays inside the map.
                let last = offset.wrapping_add(u64::from(width) - 1);
                for byte in [offset, last] {
                    function
                        .instruction(&Instruction::LocalGet(address))
                        .instruction(&Instruction::I32Const(byte as u32 as i32))
                        .instruction(&Instruction::I32Add)
                        .instruction(&Instruction::I32Const(PAGE_SHIFT))
                        .instruction(&Instruction::I32ShrU)
                        .instruction(&Instruction::I32Const(1))
                        .instruction(&self.map_store());
                }
                function
                    .instruction(&Instruction::LocalGet(address))
                    .instruction(&Instruction::LocalGet(self.value_local(value)));
            }
            Write::Bulk => {
                let (other, length) = (self.local(1), self.local(2));
                function
                    .instruction(&Instruction::LocalSet(length))
                    .instruction(&Instruction::LocalSet(other))
                    .instruction(&Instruction::LocalTee(address))
                    .instruction(&Instruction::LocalGet(length))
                    .instruction(&Instruction::Call(self.mark_range))
                    .instruction(&Instruction::LocalGet(address))
                    .instruction(&Instruction::LocalGet(other))
                    .instruction(&Instruction::LocalGet(length));
            }
        }
    }
}

/// The helper `(start: i32, length: i32)` that marks every page of a bulk write.
pub fn mark_range_body(map_memory: u32) -> Function {
    // Locals: 0 start, 1 length, 2 page, 3 last page.
    let (start, length, page, last) = (0, 1, 2, 3);
    let mut f = Function::new([(2, ValType::I32)]);
    let store = map_store(map_memory);
    f.instruction(&Instruction::LocalGet(length))
        .instruction(&Instruction::I32Eqz)
        .instruction(&Instruction::If(wasm_encoder::BlockType::Empty))
        .instruction(&Instruction::Return)
        .instruction(&Instruction::End)
        .instruction(&Instruction::LocalGet(start))
        .instruction(&Instruction::I32Const(PAGE_SHIFT))
        .instruction(&Instruction::I32ShrU)
        .instruction(&Instruction::LocalSet(page))
        .instruction(&Instruction::LocalGet(start))
        .instruction(&Instruction::LocalGet(length))
        .instruction(&Instruction::I32Add)
        .instruction(&Instruction::I32Const(1))
        .instruction(&Instruction::I32Sub)
        .instruction(&Instruction::I32Const(PAGE_SHIFT))
        .instruction(&Instruction::I32ShrU)
        .instruction(&Instruction::LocalSet(last))
        .instruction(&Instruction::Block(wasm_encoder::BlockType::Empty))
        .instruction(&Instruction::Loop(wasm_encoder::BlockType::Empty))
        .instruction(&Instruction::LocalGet(page))
        .instruction(&Instruction::LocalGet(last))
        .instruction(&Instruction::I32GtU)
        .instruction(&Instruction::BrIf(1))
        .instruction(&Instruction::LocalGet(page))
        .instruction(&Instruction::I32Const(1))
        .instruction(&store)
        .instruction(&Instruction::LocalGet(page))
        .instruction(&Instruction::I32Const(1))
        .instruction(&Instruction::I32Add)
        .instruction(&Instruction::LocalSet(page))
        .instruction(&Instruction::Br(0))
        .instruction(&Instruction::End)
        .instruction(&Instruction::End)
        .instruction(&Instruction::End);
    f
}

/// `i32.store8` into the map.
fn map_store(map_memory: u32) -> Instruction<'static> {
    Instruction::I32Store8(MemArg {
        offset: 0,
        align: 0,
        target: wasm_encoder::MemArgTarget::Memory(map_memory),
        ordering: None,
    })
}
