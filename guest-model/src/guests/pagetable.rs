//! `pagetable`: builds its own address space, uses it from kernel and user mode, tears
//! it down — every round.
//!
//! Round `r` (1, 2, ...):
//! 1. writes `0x5a5a_0000_0000 + r` into data page D0 and `3r` into D1 (first u64);
//! 2. builds tables T1 (L1: slot 0 → D0 read-write, slot 1 → D1 read-only), T2 → T1,
//!    T3 → T2, and T4 (L4: a copy of the bootstrap L4's slots 0..256, plus slot 1 → T3,
//!    so [`NEW_VA`] = `0x80_0000_0000` maps D0);
//! 3. remaps T1..T4 read-only (`update_va_mapping`), pins them (`MMUEXT_PIN_L1..L4`),
//!    switches to T4 (`MMUEXT_NEW_BASEPTR`, and `MMUEXT_NEW_USER_BASEPTR` for user mode);
//! 4. reads `NEW_VA` and `NEW_VA + 4K` through the new tables; maps D0 again at slot 2
//!    with `mmu_update` (MMU_NORMAL_PT_UPDATE) and reads it there; tries to map T4
//!    writable at slot 3, which Xen refuses (`-EBUSY`: a page table can never be
//!    writable);
//! 5. enters user mode (`iret` with CS RPL 3) running code that reads `NEW_VA`, adds
//!    `r`, stores the sum in page U and makes a `syscall` (back through the syscall
//!    callback); then user code that writes the read-only `NEW_VA + 4K` (a #PF through
//!    the trap table; error code and `vcpu_info.arch.cr2` recorded);
//! 6. switches back to the bootstrap tables, unpins T4..T1, maps them read-write again
//!    and zeroes them (so no MFN stays in guest memory), and records the round.
//!
//! Every step's result goes into record `(r - 1) % 32` of the results page (16 u64s,
//! see [`PagetableOracle::record`]); any unexpected failure of a structural step
//! crashes the guest with a message. Region pages from [`PG_GUEST`]: results, T4, T3,
//! T2, T1, D0, D1, U. Console: `pagetable: start <params>`, `pagetable: round <r>`
//! every `report` rounds.

use std::collections::BTreeMap;

use iced_x86::code_asm::*;

use hypervisor::abi::hypercall as hc;
use hypervisor::abi::mm::{
    MMUEXT_NEW_BASEPTR, MMUEXT_NEW_USER_BASEPTR, MMUEXT_PIN_L1_TABLE, MMUEXT_PIN_L2_TABLE,
    MMUEXT_PIN_L3_TABLE, MMUEXT_PIN_L4_TABLE, MMUEXT_UNPIN_TABLE, MMU_NORMAL_PT_UPDATE,
    PTE_ACCESSED, PTE_PRESENT, PTE_RW, PTE_USER,
};
use hypervisor::types::{DomId, Pfn};

use crate::asm::AsmResult;
use crate::layout::*;
use crate::oracle::{GuestMemory, OracleError, Status, Stop};
use crate::params::ToyParams;
use crate::runtime::{
    m64, Gen, EXPECT_PAGE_FAULT, EXPECT_SYSCALL, PTE_KERNEL_RO, PTE_KERNEL_RW, SI_PT_BASE,
};

/// The address the round's own tables map (L4 slot 1).
pub const NEW_VA: u64 = 0x80_0000_0000;
/// Records in the results page.
pub const RECORDS: u64 = 32;
/// Words per record.
pub const RECORD_WORDS: usize = 16;
/// Last word of a complete record.
pub const RECORD_DONE: u64 = 0x600d;

const R_PAGE: u64 = PG_GUEST;
const T4: u64 = PG_GUEST + 1;
const T3: u64 = PG_GUEST + 2;
const T2: u64 = PG_GUEST + 3;
const T1: u64 = PG_GUEST + 4;
const D0: u64 = PG_GUEST + 5;
const D1: u64 = PG_GUEST + 6;
const U: u64 = PG_GUEST + 7;

/// Globals: MFNs of the round.
const M_T4: u64 = G_GUEST;
const M_T3: u64 = G_GUEST + 8;
const M_T2: u64 = G_GUEST + 16;
const M_T1: u64 = G_GUEST + 24;
const M_D0: u64 = G_GUEST + 32;
const M_BOOT: u64 = G_GUEST + 48;
/// Address of the current record.
const G_REC: u64 = G_GUEST + 56;

const D0_BASE: u64 = 0x5a5a_0000_0000;
const TABLE: u64 = PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED;

pub(crate) fn region_pages(_p: &ToyParams) -> u64 {
    8
}

/// Stores rax into word `w` of the current record.
fn rec(x: &mut Gen<'_>, w: usize) -> AsmResult {
    let a = &mut x.x.a;
    a.mov(rcx, m64(g(G_REC)))?;
    a.mov(qword_ptr(rcx + (w * 8) as i32), rax)
}

pub(crate) fn emit(x: &mut Gen<'_>) -> AsmResult {
    let mut user1 = x.x.label();
    let mut user2 = x.x.label();
    let mut l = x.rt.guest_main;
    x.x.set(&mut l)?;
    let canon = x.p.canonical();
    x.print_tagged(&format!("start {canon}\n"))?;
    x.x.a.mov(m64(g(ST_STATE)), STATE_RUNNING as i32)?;
    let mut round = x.x.label();
    x.x.set(&mut round)?;
    let a = &mut x.x.a;
    a.mov(r12, m64(g(ST_STEPS)))?;
    a.inc(r12)?;
    // Record slot (r - 1) % 32, cleared.
    a.lea(rax, r12 - 1)?;
    a.and(eax, (RECORDS - 1) as u32)?;
    a.shl(eax, 7)?;
    a.add(eax, va(R_PAGE) as u32)?;
    a.mov(m64(g(G_REC)), rax)?;
    a.mov(rdi, rax)?;
    a.mov(ecx, RECORD_WORDS as u32)?;
    a.xor(eax, eax)?;
    a.rep().stosq()?;
    a.mov(rax, r12)?;
    rec(x, 0)?;
    // Data.
    let a = &mut x.x.a;
    a.mov(rax, D0_BASE)?;
    a.add(rax, r12)?;
    a.mov(m64(va(D0)), rax)?;
    a.imul_3(rax, r12, 3)?;
    a.mov(m64(va(D1)), rax)?;
    // MFNs.
    for (pg, slot) in [
        (T4, M_T4),
        (T3, M_T3),
        (T2, M_T2),
        (T1, M_T1),
        (D0, M_D0),
        (D1, G_GUEST + 40),
    ] {
        let a = &mut x.x.a;
        a.mov(edi, va(pg) as u32)?;
        a.call(x.rt.va_to_mfn)?;
        a.mov(m64(g(slot)), rax)?;
    }
    let a = &mut x.x.a;
    a.mov(rax, m64(g(G_START_INFO)))?;
    a.mov(rdi, qword_ptr(rax + SI_PT_BASE))?;
    a.call(x.rt.va_to_mfn)?;
    a.mov(m64(g(M_BOOT)), rax)?;
    // Build the tables while they are still ordinary writable pages.
    for pg in [T4, T3, T2, T1] {
        let a = &mut x.x.a;
        a.mov(edi, va(pg) as u32)?;
        a.mov(ecx, 512u32)?;
        a.xor(eax, eax)?;
        a.rep().stosq()?;
    }
    let entry = |x: &mut Gen<'_>, mfn_slot: u64, flags: u64, dst: u64| -> AsmResult {
        let a = &mut x.x.a;
        a.mov(rax, m64(g(mfn_slot)))?;
        a.shl(rax, 12)?;
        a.or(rax, flags as i32)?;
        a.mov(m64(dst), rax)
    };
    entry(x, M_D0, PTE_KERNEL_RW, va(T1))?;
    entry(x, G_GUEST + 40, PTE_KERNEL_RO, va(T1) + 8)?;
    entry(x, M_T1, TABLE, va(T2))?;
    entry(x, M_T2, TABLE, va(T3))?;
    let a = &mut x.x.a;
    a.mov(rax, m64(g(G_START_INFO)))?;
    a.mov(rsi, qword_ptr(rax + SI_PT_BASE))?;
    a.mov(edi, va(T4) as u32)?;
    a.mov(ecx, 256u32)?;
    a.rep().movsq()?;
    entry(x, M_T3, TABLE, va(T4) + 8)?;
    // Read-only, then pinned bottom-up.
    for (pg, slot) in [(T1, M_T1), (T2, M_T2), (T3, M_T3), (T4, M_T4)] {
        remap(x, pg, slot, PTE_KERNEL_RO, "remap table read-only")?;
    }
    for (i, (cmd, slot)) in [
        (MMUEXT_PIN_L1_TABLE, M_T1),
        (MMUEXT_PIN_L2_TABLE, M_T2),
        (MMUEXT_PIN_L3_TABLE, M_T3),
        (MMUEXT_PIN_L4_TABLE, M_T4),
        (MMUEXT_NEW_BASEPTR, M_T4),
        (MMUEXT_NEW_USER_BASEPTR, M_T4),
    ]
    .into_iter()
    .enumerate()
    {
        x.x.a.mov(rbx, m64(g(slot)))?;
        x.mmuext1(cmd, rbx)?;
        rec(x, 1 + i)?;
        x.check_zero("mmuext_op (pin / new baseptr)")?;
    }
    // Through the new tables.
    let a = &mut x.x.a;
    a.mov(rdx, NEW_VA)?;
    a.mov(rax, qword_ptr(rdx))?;
    rec(x, 7)?;
    let a = &mut x.x.a;
    a.mov(rdx, NEW_VA + 0x1000)?;
    a.mov(rax, qword_ptr(rdx))?;
    rec(x, 8)?;
    mmu_update(x, M_T1, 16, M_D0, PTE_KERNEL_RW)?;
    rec(x, 9)?;
    x.check_zero("mmu_update (map D0 at slot 2)")?;
    let a = &mut x.x.a;
    a.mov(rdx, NEW_VA + 0x2000)?;
    a.mov(rax, qword_ptr(rdx))?;
    rec(x, 10)?;
    mmu_update(x, M_T1, 24, M_T4, PTE_KERNEL_RW)?;
    rec(x, 11)?;
    let mut refused = x.x.label();
    x.x.a.test(rax, rax)?;
    x.x.a.jnz(refused)?;
    // Accepted (wrong): take it back so the teardown can work; the record shows it.
    let a = &mut x.x.a;
    a.mov(m64(g(G_ARG_MMU)), 0)?;
    a.mov(rax, m64(g(M_T1)))?;
    a.shl(rax, 12)?;
    a.add(rax, 24)?;
    a.mov(m64(g(G_ARG_MMU)), rax)?;
    a.mov(m64(g(G_ARG_MMU) + 8), 0)?;
    call_mmu_update(x)?;
    x.x.set(&mut refused)?;
    // User mode.
    let a = &mut x.x.a;
    a.lea(rdi, ptr(user1))?;
    a.mov(esi, (va(U) + PAGE) as u32)?;
    a.mov(rdx, r12)?;
    a.mov(ecx, EXPECT_SYSCALL as u32)?;
    a.call(x.rt.enter_user)?;
    a.mov(rax, m64(g(G_SYSCALL_RAX)))?;
    rec(x, 12)?;
    let a = &mut x.x.a;
    a.lea(rdi, ptr(user2))?;
    a.mov(esi, (va(U) + PAGE) as u32)?;
    a.mov(rdx, r12)?;
    a.mov(ecx, EXPECT_PAGE_FAULT as u32)?;
    a.call(x.rt.enter_user)?;
    a.mov(rax, m64(g(G_TRAP_ERR)))?;
    rec(x, 13)?;
    x.x.a.mov(rax, m64(g(G_TRAP_CR2)))?;
    rec(x, 14)?;
    // Teardown.
    x.x.a.mov(rbx, m64(g(M_BOOT)))?;
    x.mmuext1(MMUEXT_NEW_BASEPTR, rbx)?;
    x.check_zero("new_baseptr back to the bootstrap tables")?;
    x.x.a.mov(rbx, m64(g(M_BOOT)))?;
    x.mmuext1(MMUEXT_NEW_USER_BASEPTR, rbx)?;
    x.check_zero("new_user_baseptr back to the bootstrap tables")?;
    for slot in [M_T4, M_T3, M_T2, M_T1] {
        x.x.a.mov(rbx, m64(g(slot)))?;
        x.mmuext1(MMUEXT_UNPIN_TABLE, rbx)?;
        x.check_zero("unpin")?;
    }
    for (pg, slot) in [(T4, M_T4), (T3, M_T3), (T2, M_T2), (T1, M_T1)] {
        remap(x, pg, slot, PTE_KERNEL_RW, "remap table read-write")?;
        let a = &mut x.x.a;
        a.mov(edi, va(pg) as u32)?;
        a.mov(ecx, 512u32)?;
        a.xor(eax, eax)?;
        a.rep().stosq()?;
    }
    x.x.a.mov(eax, RECORD_DONE as u32)?;
    rec(x, 15)?;
    x.x.a.mov(m64(g(ST_STEPS)), r12)?;
    x.step_epilogue("round")?;
    x.x.a.call(x.rt.safe_point)?;
    x.x.a.jmp(round)?;

    // User code 1 (rax = r): read NEW_VA, add r, store in U, syscall with the sum.
    x.x.set(&mut user1)?;
    let mut hang = x.x.label();
    let a = &mut x.x.a;
    a.mov(rcx, NEW_VA)?;
    a.mov(rbx, qword_ptr(rcx))?;
    a.add(rbx, rax)?;
    a.mov(m64(va(U)), rbx)?;
    a.mov(rax, rbx)?;
    a.syscall()?;
    a.set_label(&mut hang)?;
    a.jmp(hang)?;
    // User code 2: write the read-only mapping.
    x.x.set(&mut user2)?;
    let mut hang = x.x.label();
    let a = &mut x.x.a;
    a.mov(rcx, NEW_VA + 0x1000)?;
    a.mov(qword_ptr(rcx), rax)?;
    a.set_label(&mut hang)?;
    a.jmp(hang)
}

/// update_va_mapping(va(pg), mfn(slot) | flags, INVLPG), crash on failure.
fn remap(x: &mut Gen<'_>, pg: u64, slot: u64, flags: u64, what: &str) -> AsmResult {
    let a = &mut x.x.a;
    a.mov(rsi, m64(g(slot)))?;
    a.shl(rsi, 12)?;
    a.or(rsi, flags as i32)?;
    a.mov(edi, va(pg) as u32)?;
    a.mov(edx, hc::UVMF_INVLPG as u32)?;
    x.hc(hc::HYPERVISOR_UPDATE_VA_MAPPING)?;
    x.check_zero(what)
}

/// mmu_update of entry `off` of the table in `table_slot` to `mfn(val_slot) | flags`;
/// rax = result.
fn mmu_update(x: &mut Gen<'_>, table_slot: u64, off: u64, val_slot: u64, flags: u64) -> AsmResult {
    let a = &mut x.x.a;
    a.mov(rax, m64(g(table_slot)))?;
    a.shl(rax, 12)?;
    a.add(rax, (off | MMU_NORMAL_PT_UPDATE) as i32)?;
    a.mov(m64(g(G_ARG_MMU)), rax)?;
    a.mov(rax, m64(g(val_slot)))?;
    a.shl(rax, 12)?;
    a.or(rax, flags as i32)?;
    a.mov(m64(g(G_ARG_MMU) + 8), rax)?;
    call_mmu_update(x)
}

fn call_mmu_update(x: &mut Gen<'_>) -> AsmResult {
    let a = &mut x.x.a;
    a.mov(edi, g(G_ARG_MMU) as u32)?;
    a.mov(esi, 1u32)?;
    a.xor(edx, edx)?;
    a.mov(r10d, u32::from(DomId::SELF.get()))?;
    x.hc(hc::HYPERVISOR_MMU_UPDATE)
}

/// The oracle of a `pagetable` guest.
#[derive(Clone, Debug)]
pub struct PagetableOracle {
    params: ToyParams,
}

impl PagetableOracle {
    /// The oracle for these parameters.
    #[must_use]
    pub fn new(params: &ToyParams) -> PagetableOracle {
        PagetableOracle {
            params: params.clone(),
        }
    }

    /// PFN of the results page.
    #[must_use]
    pub fn results_pfn(&self) -> Pfn {
        Pfn::new(R_PAGE)
    }

    /// The record of round `r`: `[r, pin L1, pin L2, pin L3, pin L4, new_baseptr,
    /// new_user_baseptr, *NEW_VA, *(NEW_VA+4K), mmu_update, *(NEW_VA+8K), mmu_update
    /// of a writable page-table mapping (-EBUSY), user syscall value, #PF error code
    /// (present|write|user = 7), cr2, RECORD_DONE]`.
    #[must_use]
    pub fn record(&self, r: u64) -> [u64; RECORD_WORDS] {
        let d0 = D0_BASE + r;
        [
            r,
            0,
            0,
            0,
            0,
            0,
            0,
            d0,
            3 * r,
            0,
            d0,
            (-16i64) as u64,
            d0 + r,
            7,
            NEW_VA + 0x1000,
            RECORD_DONE,
        ]
    }

    /// The guest region's pages after `rounds` rounds.
    #[must_use]
    pub fn expected_pages(&self, rounds: u64) -> BTreeMap<Pfn, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut results = vec![0u8; PAGE as usize];
        let first = rounds.saturating_sub(RECORDS - 1).max(1);
        for r in first..=rounds {
            let at = (((r - 1) % RECORDS) * 128) as usize;
            for (i, w) in self.record(r).iter().enumerate() {
                results[at + i * 8..at + i * 8 + 8].copy_from_slice(&w.to_le_bytes());
            }
        }
        out.insert(Pfn::new(R_PAGE), results);
        let word = |v: u64| {
            let mut p = vec![0u8; PAGE as usize];
            p[..8].copy_from_slice(&v.to_le_bytes());
            p
        };
        for pg in [T4, T3, T2, T1] {
            out.insert(Pfn::new(pg), vec![0u8; PAGE as usize]);
        }
        let (d0, d1, u) = if rounds == 0 {
            (0, 0, 0)
        } else {
            (D0_BASE + rounds, 3 * rounds, D0_BASE + 2 * rounds)
        };
        out.insert(Pfn::new(D0), word(d0));
        out.insert(Pfn::new(D1), word(d1));
        out.insert(Pfn::new(U), word(u));
        out
    }

    /// Full check of a stopped guest: status block and every region page. With
    /// [`Stop::Anywhere`] the state one round later is accepted too, as is any state
    /// whose only differences are in round `steps + 1`'s record, the tables and the
    /// data pages (a round in flight).
    ///
    /// # Errors
    /// The first disagreement.
    pub fn check(&self, mem: &impl GuestMemory, stop: Stop) -> Result<Status, OracleError> {
        let st = Status::read(mem)?;
        let exp = self.expected_pages(st.steps);
        let mismatch =
            |exp: &BTreeMap<Pfn, Vec<u8>>, skip_flight: bool| -> Result<(), OracleError> {
                let flight_rec = ((st.steps % RECORDS) * 128) as usize;
                for (&pfn, want) in exp {
                    let page = mem.page(pfn).ok_or(OracleError::MissingPage { pfn })?;
                    if skip_flight && pfn.get() != R_PAGE {
                        continue;
                    }
                    for off in (0..PAGE as usize).step_by(8) {
                        if skip_flight && (flight_rec..flight_rec + 128).contains(&off) {
                            continue;
                        }
                        let (w, f) = (
                            u64::from_le_bytes(want[off..off + 8].try_into().unwrap_or([0; 8])),
                            u64::from_le_bytes(page[off..off + 8].try_into().unwrap_or([0; 8])),
                        );
                        if w != f {
                            return Err(OracleError::Mismatch {
                                pfn,
                                offset: off,
                                what: format!("pagetable results after {} rounds", st.steps),
                                expected: w,
                                found: f,
                            });
                        }
                    }
                }
                Ok(())
            };
        match stop {
            Stop::SafePoint => mismatch(&exp, false)?,
            Stop::Anywhere => {
                mismatch(&exp, false)
                    .or_else(|e| mismatch(&self.expected_pages(st.steps + 1), false).map_err(|_| e))
                    .or_else(|e| mismatch(&exp, true).map_err(|_| e))?;
            }
        }
        Ok(st)
    }

    /// The workload console lines after `steps` rounds.
    #[must_use]
    pub fn expected_console(&self, steps: u64) -> Vec<String> {
        crate::oracle::progress_lines(&self.params, "round", steps)
    }
}
