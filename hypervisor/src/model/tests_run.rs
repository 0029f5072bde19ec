//! Guests running in the interpreter on the model: hypercalls through the hypercall
//! page, exceptions bounced to the guest's trap table and `iret`, event upcalls, guest
//! user mode and system calls, timers on virtual time, self-modifying code, and the
//! scheduler's determinism.

use iced_x86::code_asm::*;

use crate::abi::hypercall as hc;
use crate::abi::sched as sch;
use crate::model::testkit::MiniGuest;
use crate::model::{Model, ModelConfig};
use crate::types::{DomId, VcpuId};
use crate::xen::Xen;

const PAGES: usize = 16;
/// Layout of the test guests: PFN 0 code, PFN 1 hypercall page, PFN 2 data, PFN 3
/// handler code, the last page the stack.
const CODE_PFN: usize = 0;
const HC_PFN: usize = 1;
const DATA_PFN: usize = 2;

fn va(pfn: usize) -> u64 {
    crate::model::testkit::MINI_BASE + pfn as u64 * 4096
}

fn hcall_addr(nr: u64) -> u64 {
    va(HC_PFN) + nr * 32
}

/// Builds a guest whose PFN 0 holds `code` (assembled for its VA) and whose PFN 1 is the
/// hypercall page.
fn guest(
    m: &mut Model,
    code: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> MiniGuest {
    let g = MiniGuest::build(m, PAGES).unwrap();
    let mut a = CodeAssembler::new(64).unwrap();
    code(&mut a).unwrap();
    let bytes = a.assemble(va(CODE_PFN)).unwrap();
    assert!(bytes.len() <= 4096);
    m.mem.guest_write(g.data[CODE_PFN], 0, &bytes).unwrap();
    m.hypercall_init(g.dom, g.data[HC_PFN]).unwrap();
    g
}

/// `sched_op(SCHEDOP_shutdown, &{reason})` with the arg word at DATA+0x800.
fn shutdown(a: &mut CodeAssembler, reason: u32) -> Result<(), IcedError> {
    a.mov(rsi, va(DATA_PFN) + 0x800)?;
    a.mov(dword_ptr(rsi), reason as i32)?;
    a.mov(edi, sch::SCHEDOP_SHUTDOWN as u32)?;
    a.mov(rax, hcall_addr(hc::HYPERVISOR_SCHED_OP))?;
    a.call(rax)?;
    a.ud2()
}

/// Maps the guest's shared_info at PFN 4's slot (as a guest's fixmap would), through the
/// toolstack's `mmu_update` on the guest's L1; returns its MFN.
fn map_shared_info(m: &mut Model, g: &MiniGuest) -> crate::types::Mfn {
    let shared = m.domain(g.dom).unwrap().shared_info;
    let req = crate::abi::mm::MmuUpdate {
        ptr: g.l1e_maddr(4),
        val: shared.to_addr() | 7,
    };
    let mut done = 0;
    // foreigndom: data owner in bits 15:0, page-table owner + 1 in bits 31:16.
    let fd = u32::from(g.dom.get()) | ((u32::from(g.dom.get()) + 1) << 16);
    m.mem
        .mmu_update(DomId::DOM0, true, &[req], fd, &mut done)
        .unwrap();
    shared
}

fn data_u64(m: &Model, g: &MiniGuest, off: usize) -> u64 {
    let p = m.mem.page(g.data[DATA_PFN]).unwrap();
    u64::from_le_bytes(p[off..off + 8].try_into().unwrap())
}

fn shutdown_reason(m: &Model, g: &MiniGuest) -> Option<u32> {
    m.domain(g.dom).unwrap().shutdown
}

#[test]
fn a_guest_runs_loops_and_makes_hypercalls() {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let g = guest(&mut m, |a| {
        // xen_version(XENVER_version) → DATA+0
        a.mov(edi, 0u32)?;
        a.xor(esi, esi)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_XEN_VERSION))?;
        a.call(rax)?;
        a.mov(rbx, va(DATA_PFN))?;
        a.mov(qword_ptr(rbx), rax)?;
        // 1000 increments of DATA+8.
        a.mov(ecx, 1000u32)?;
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.inc(qword_ptr(rbx + 8))?;
        a.loop_(l)?;
        shutdown(a, sch::SHUTDOWN_POWEROFF)
    });
    let n = m.run(1_000_000);
    assert!(n > 2000 && n < 10_000, "retired {n}");
    assert_eq!(data_u64(&m, &g, 0), (4 << 16) | 17);
    assert_eq!(data_u64(&m, &g, 8), 1000);
    assert_eq!(shutdown_reason(&m, &g), Some(sch::SHUTDOWN_POWEROFF));
    assert_eq!(m.now_ns(), n, "one instruction is one virtual nanosecond");
    m.check_invariants().unwrap();
}

#[test]
fn exceptions_bounce_to_the_trap_table_and_iret_returns() {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let handler = va(3);
    let g = guest(&mut m, |a| {
        // set_trap_table([{vector 6 (#UD), flags 0, cs, handler}, {0}]) from DATA+0x100.
        a.mov(rbx, va(DATA_PFN) + 0x100)?;
        a.mov(byte_ptr(rbx), 6i32)?;
        a.mov(word_ptr(rbx + 2), 0xe033i32)?;
        a.mov(rax, handler)?;
        a.mov(qword_ptr(rbx + 8), rax)?;
        a.mov(qword_ptr(rbx + 24), 0i32)?;
        a.mov(rdi, rbx)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_SET_TRAP_TABLE))?;
        a.call(rax)?;
        a.mov(r12, 0x1234_5678u64)?;
        a.ud2()?;
        // The handler skipped the ud2: we continue here with r12 intact.
        a.mov(rbx, va(DATA_PFN))?;
        a.mov(qword_ptr(rbx + 16), r12)?;
        shutdown(a, sch::SHUTDOWN_POWEROFF)
    });
    // The #UD handler: frame is [rcx, r11, rip, cs, rflags, rsp, ss]; count, step rip
    // past the 2-byte ud2, then iret (pop rcx/r11, push flags 0, jmp to stub 23).
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rax, va(DATA_PFN)).unwrap();
    a.inc(qword_ptr(rax + 24)).unwrap();
    a.pop(rcx).unwrap();
    a.pop(r11).unwrap();
    a.add(qword_ptr(rsp), 2).unwrap();
    a.push(0).unwrap();
    a.mov(rax, hcall_addr(hc::HYPERVISOR_IRET)).unwrap();
    a.jmp(rax).unwrap();
    let h = a.assemble(handler).unwrap();
    m.mem.guest_write(g.data[3], 0, &h).unwrap();
    m.run(100_000);
    assert_eq!(data_u64(&m, &g, 24), 1, "handler ran once");
    assert_eq!(
        data_u64(&m, &g, 16),
        0x1234_5678,
        "registers survive the bounce"
    );
    assert_eq!(shutdown_reason(&m, &g), Some(sch::SHUTDOWN_POWEROFF));
}

#[test]
fn iret_restores_rcx_r11_from_the_frame_unless_in_syscall() {
    // Two iret frames built by hand, the first without flags, the second with
    // VGCF_in_syscall; rcx/r11 hold 0x1111/0x2222 when the iret stub pushes them.
    let (first, second) = (va(CODE_PFN) + 0x800, va(CODE_PFN) + 0x900);
    let frame = |a: &mut CodeAssembler, flags: i32, target: u64| -> Result<(), IcedError> {
        a.mov(rbx, rsp)?;
        a.push(0xe02bi32)?; // ss (kernel, RPL 0: stay in kernel mode)
        a.push(rbx)?; // rsp after the iret
        a.pushfq()?;
        a.push(0xe030i32)?; // cs
        a.mov(rax, target)?;
        a.push(rax)?;
        a.push(flags)?;
        a.mov(rcx, 0x1111u64)?;
        a.mov(r11, 0x2222u64)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_IRET))?;
        a.jmp(rax)
    };
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let g = guest(&mut m, |a| {
        a.mov(rsp, va(PAGES - 1) + 4096)?;
        frame(a, 0, first)
    });
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rbx, va(DATA_PFN)).unwrap();
    a.mov(qword_ptr(rbx), rcx).unwrap();
    a.mov(qword_ptr(rbx + 8), r11).unwrap();
    frame(&mut a, crate::abi::vcpu::VGCF_IN_SYSCALL as i32, second).unwrap();
    let code = a.assemble(first).unwrap();
    m.mem.guest_write(g.data[CODE_PFN], 0x800, &code).unwrap();
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rbx, va(DATA_PFN)).unwrap();
    a.mov(qword_ptr(rbx + 16), rcx).unwrap();
    a.mov(qword_ptr(rbx + 24), r11).unwrap();
    shutdown(&mut a, sch::SHUTDOWN_POWEROFF).unwrap();
    let code = a.assemble(second).unwrap();
    m.mem.guest_write(g.data[CODE_PFN], 0x900, &code).unwrap();
    m.run(100_000);
    assert_eq!(shutdown_reason(&m, &g), Some(sch::SHUTDOWN_POWEROFF));
    assert_eq!(data_u64(&m, &g, 0), 0x1111, "rcx from the frame");
    assert_eq!(data_u64(&m, &g, 8), 0x2222, "r11 from the frame");
    // In a syscall return they are what the stub's `syscall` left: rcx the address after
    // it (push rcx; push r11; push rax; mov $23,%eax; syscall = 11 bytes), r11 rflags.
    assert_eq!(
        data_u64(&m, &g, 16),
        hcall_addr(hc::HYPERVISOR_IRET) + 11,
        "rcx left by syscall"
    );
    assert_ne!(data_u64(&m, &g, 24), 0x2222, "r11 not taken from the frame");
    assert_eq!(
        data_u64(&m, &g, 24) & 2,
        2,
        "r11 holds rflags (bit 1 always set)"
    );
}

#[test]
fn an_unhandled_exception_crashes_only_that_domain() {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let bad = guest(&mut m, |a| {
        a.mov(rax, 0xdead_0000u64)?;
        a.mov(qword_ptr(rax), 1i32) // #PF, no handler
    });
    let good = guest(&mut m, |a| {
        a.mov(rbx, va(DATA_PFN))?;
        a.mov(qword_ptr(rbx), 77i32)?;
        shutdown(a, sch::SHUTDOWN_POWEROFF)
    });
    m.run(100_000);
    assert_eq!(shutdown_reason(&m, &bad), Some(sch::SHUTDOWN_CRASH));
    assert_eq!(m.domain(bad.dom).unwrap().vcpus[0].pv.cr2, 0xdead_0000);
    assert_eq!(shutdown_reason(&m, &good), Some(sch::SHUTDOWN_POWEROFF));
    assert_eq!(data_u64(&m, &good, 0), 77);
    m.check_invariants().unwrap();
}

#[test]
fn self_modifying_code_runs_the_new_bytes() {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let g = guest(&mut m, |a| {
        let mut run_it = a.create_label();
        a.mov(ebx, 0u32)?;
        a.call(run_it)?; // first run: ebx += 1
                         // Rewrite the immediate of `add ebx, 1` (83 c3 01) to 5.
        a.lea(rax, ptr(run_it))?;
        a.mov(byte_ptr(rax + 2), 5i32)?;
        a.call(run_it)?; // second run: ebx += 5
        a.mov(rcx, va(DATA_PFN))?;
        a.mov(qword_ptr(rcx), rbx)?;
        shutdown(a, sch::SHUTDOWN_POWEROFF)?;
        a.set_label(&mut run_it)?;
        a.add(ebx, 1)?;
        a.ret()
    });
    m.run(100_000);
    assert_eq!(data_u64(&m, &g, 0), 6);
}

#[test]
fn blocked_guest_wakes_on_its_timer() {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let g = guest(&mut m, |a| {
        // set_timer_op(now + 1 ms) then block; after waking, record the TSC.
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.add(rax, 1_000_000)?;
        a.mov(rdi, rax)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_SET_TIMER_OP))?;
        a.call(rax)?;
        a.mov(edi, sch::SCHEDOP_BLOCK as u32)?;
        a.xor(esi, esi)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_SCHED_OP))?;
        a.call(rax)?;
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(rbx, va(DATA_PFN))?;
        a.mov(qword_ptr(rbx), rax)?;
        shutdown(a, sch::SHUTDOWN_POWEROFF)
    });
    // Bind VIRQ_TIMER so the timer has somewhere to go (block wakes on the event).
    m.evtchn_bind_virq(g.dom, crate::abi::evtchn::VIRQ_TIMER, VcpuId::new(0))
        .unwrap();
    m.run(1_000_000);
    assert_eq!(shutdown_reason(&m, &g), Some(sch::SHUTDOWN_POWEROFF));
    let woke = data_u64(&m, &g, 0);
    assert!(woke >= 1_000_000, "woke at {woke} ns, before its timer");
    assert!(woke < 1_000_000 + 1000, "woke late: {woke}");
}

#[test]
fn rdtsc_and_vcpu_time_info_agree() {
    // The guest converts its TSC to ns with the pvclock formula over vcpu_info[0].time
    // (offset 32 of shared_info, mapped at PFN 4), as a Linux PV guest does; at 1 GHz the
    // result must equal the TSC itself.
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let g = guest(&mut m, |a| {
        a.mov(ecx, 5000u32)?;
        let mut l = a.create_label();
        a.set_label(&mut l)?;
        a.loop_(l)?;
        a.rdtsc()?;
        a.shl(rdx, 32)?;
        a.or(rax, rdx)?;
        a.mov(r8, rax)?;
        a.mov(rsi, va(4) + 32)?;
        a.mov(rdx, r8)?;
        a.sub(rdx, qword_ptr(rsi + 8))?; // - tsc_timestamp
        a.movsx(ecx, byte_ptr(rsi + 28))?; // tsc_shift (>= 0 here)
        a.shl(rdx, cl)?;
        a.mov(eax, dword_ptr(rsi + 24))?; // tsc_to_system_mul
        a.mul(rdx)?;
        a.shrd(rax, rdx, 32)?;
        a.add(rax, qword_ptr(rsi + 16))?; // + system_time
        a.mov(rbx, va(DATA_PFN))?;
        a.mov(qword_ptr(rbx), rax)?;
        a.mov(qword_ptr(rbx + 8), r8)?;
        a.mov(eax, dword_ptr(rsi))?;
        a.mov(qword_ptr(rbx + 16), rax)?;
        shutdown(a, sch::SHUTDOWN_POWEROFF)
    });
    map_shared_info(&mut m, &g);
    m.run(100_000);
    assert_eq!(shutdown_reason(&m, &g), Some(sch::SHUTDOWN_POWEROFF));
    let (ns, tsc, version) = (
        data_u64(&m, &g, 0),
        data_u64(&m, &g, 8),
        data_u64(&m, &g, 16),
    );
    assert!(tsc >= 5000, "the loop took 5000 instructions: tsc {tsc}");
    assert!(
        tsc <= m.now_ns(),
        "tsc {tsc} ahead of virtual time {}",
        m.now_ns()
    );
    assert_eq!(ns, tsc, "pvclock time equals the 1 GHz TSC");
    assert_eq!(version % 2, 0, "the guest never sees an update in progress");
}

#[test]
fn scheduling_is_deterministic() {
    fn scenario() -> (Vec<u8>, Vec<u8>, u64) {
        let mut m = Model::new(ModelConfig {
            machine_frames: 4096,
        });
        let mk = |m: &mut Model, k: u32| {
            guest(m, |a| {
                a.mov(rbx, va(DATA_PFN))?;
                a.mov(ecx, 50_000u32)?;
                let mut l = a.create_label();
                a.set_label(&mut l)?;
                a.add(qword_ptr(rbx), k as i32)?;
                a.rdtsc()?;
                a.mov(qword_ptr(rbx + 8), rax)?;
                a.loop_(l)?;
                shutdown(a, sch::SHUTDOWN_POWEROFF)
            })
        };
        let a = mk(&mut m, 1);
        let b = mk(&mut m, 3);
        m.run(70_000);
        let pa = m.mem.page(a.data[DATA_PFN]).unwrap()[..16].to_vec();
        let pb = m.mem.page(b.data[DATA_PFN]).unwrap()[..16].to_vec();
        (pa, pb, m.now_ns())
    }
    let first = scenario();
    assert_eq!(first, scenario(), "same scenario, same bytes");
    // Both guests got time: round-robin slices.
    assert!(u64::from_le_bytes(first.0[..8].try_into().unwrap()) > 0);
    assert!(u64::from_le_bytes(first.1[..8].try_into().unwrap()) > 0);
}

#[test]
fn events_reach_a_blocked_guest_through_the_upcall() {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let cb = va(3);
    let g = guest(&mut m, |a| {
        // set_callbacks(event = cb, failsafe = cb, syscall = 0), then unmask events
        // through shared_info (mapped at PFN 4 by the test) and block until the
        // callback has counted one event.
        a.mov(rdi, cb)?;
        a.mov(rsi, cb)?;
        a.xor(edx, edx)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_SET_CALLBACKS))?;
        a.call(rax)?;
        let mut wait = a.create_label();
        a.set_label(&mut wait)?;
        a.mov(rax, va(4))?;
        a.mov(byte_ptr(rax + 1), 0i32)?; // vcpu_info[0].evtchn_upcall_mask = 0
        a.mov(rbx, va(DATA_PFN))?;
        a.cmp(qword_ptr(rbx + 32), 0)?;
        let mut done = a.create_label();
        a.jne(done)?;
        a.mov(edi, sch::SCHEDOP_BLOCK as u32)?;
        a.xor(esi, esi)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_SCHED_OP))?;
        a.call(rax)?;
        a.jmp(wait)?;
        a.set_label(&mut done)?;
        shutdown(a, sch::SHUTDOWN_POWEROFF)
    });
    // Upcall handler: clear upcall_pending and pending_sel and the pending word, count,
    // return with events re-enabled.
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rax, va(4)).unwrap();
    a.mov(byte_ptr(rax), 0i32).unwrap();
    a.mov(qword_ptr(rax + 8), 0i32).unwrap();
    a.mov(qword_ptr(rax + 2048), 0i32).unwrap();
    a.mov(rax, va(DATA_PFN)).unwrap();
    a.inc(qword_ptr(rax + 32)).unwrap();
    a.pop(rcx).unwrap();
    a.pop(r11).unwrap();
    a.push(0).unwrap();
    a.mov(rax, hcall_addr(hc::HYPERVISOR_IRET)).unwrap();
    a.jmp(rax).unwrap();
    m.mem
        .guest_write(g.data[3], 0, &a.assemble(cb).unwrap())
        .unwrap();
    map_shared_info(&mut m, &g);
    // A channel from the toolstack.
    let p = m.evtchn_bind_unbound_port(g.dom).unwrap();
    let local = m.evtchn_bind_interdomain(g.dom, DomId::DOM0, p).unwrap();
    crate::model::tests::clear_pending(&mut m, g.dom, local);
    m.run(50_000);
    assert!(shutdown_reason(&m, &g).is_none(), "still waiting");
    assert!(!m.vcpu_runnable(g.dom, VcpuId::new(0)), "blocked");
    m.evtchn_notify(p).unwrap();
    m.run(50_000);
    assert_eq!(data_u64(&m, &g, 32), 1, "one upcall");
    assert_eq!(shutdown_reason(&m, &g), Some(sch::SHUTDOWN_POWEROFF));
}

#[test]
fn a_masked_vcpu_gets_no_upcall_until_it_unmasks() {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let cb = va(3);
    let g = guest(&mut m, |a| {
        a.mov(rdi, cb)?;
        a.mov(rsi, cb)?;
        a.xor(edx, edx)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_SET_CALLBACKS))?;
        a.call(rax)?;
        // Masked: spin, counting, until the test sets DATA+48.
        a.mov(rax, va(4))?;
        a.mov(byte_ptr(rax + 1), 1i32)?;
        a.mov(rbx, va(DATA_PFN))?;
        let mut spin = a.create_label();
        a.set_label(&mut spin)?;
        a.inc(qword_ptr(rbx + 40))?;
        a.cmp(qword_ptr(rbx + 48), 0)?;
        a.je(spin)?;
        // Unmask and spin until the callback has run.
        a.mov(rax, va(4))?;
        a.mov(byte_ptr(rax + 1), 0i32)?;
        let mut wait = a.create_label();
        a.set_label(&mut wait)?;
        a.cmp(qword_ptr(rbx + 32), 0)?;
        a.je(wait)?;
        shutdown(a, sch::SHUTDOWN_POWEROFF)
    });
    // The callback counts and returns with the iret hypercall.
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rax, va(4)).unwrap();
    a.mov(byte_ptr(rax), 0i32).unwrap();
    a.mov(rax, va(DATA_PFN)).unwrap();
    a.inc(qword_ptr(rax + 32)).unwrap();
    a.pop(rcx).unwrap();
    a.pop(r11).unwrap();
    a.push(0).unwrap();
    a.mov(rax, hcall_addr(hc::HYPERVISOR_IRET)).unwrap();
    a.jmp(rax).unwrap();
    m.mem
        .guest_write(g.data[3], 0, &a.assemble(cb).unwrap())
        .unwrap();
    let shared = map_shared_info(&mut m, &g);
    let p = m.evtchn_bind_unbound_port(g.dom).unwrap();
    let local = m.evtchn_bind_interdomain(g.dom, DomId::DOM0, p).unwrap();
    crate::model::tests::clear_pending(&mut m, g.dom, local);
    m.run(50_000);
    m.evtchn_notify(p).unwrap();
    m.run(500_000);
    assert!(data_u64(&m, &g, 40) > 10_000, "the guest kept running");
    assert_eq!(data_u64(&m, &g, 32), 0, "no upcall while masked");
    assert_eq!(
        m.mem.page(shared).unwrap()[0],
        1,
        "but upcall_pending is set"
    );
    m.mem
        .guest_write(g.data[DATA_PFN], 48, &1u64.to_le_bytes())
        .unwrap();
    m.run(500_000);
    assert_eq!(data_u64(&m, &g, 32), 1, "delivered once unmasked");
    assert_eq!(shutdown_reason(&m, &g), Some(sch::SHUTDOWN_POWEROFF));
}

#[test]
fn user_mode_system_calls_enter_the_kernel_syscall_callback() {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let user_code = va(5);
    let kentry = va(3);
    let g = guest(&mut m, |a| {
        // Register the syscall callback and a user page-table root (the same L4: the
        // test guest maps everything user-accessible).
        a.mov(rdi, 0u64)?;
        a.mov(rsi, 0u64)?;
        a.mov(rdx, kentry)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_SET_CALLBACKS))?;
        a.call(rax)?;
        // stack_switch: the kernel stack entries from user mode land on.
        a.mov(edi, 0xe02bu32)?;
        a.mov(rsi, va(PAGES - 3) + 4096)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_STACK_SWITCH))?;
        a.call(rax)?;
        // mmuext_op(NEW_USER_BASEPTR, L4) with the op at DATA+0x200 (arg1 filled by the
        // test, which knows the L4's MFN).
        a.mov(rdi, va(DATA_PFN) + 0x200)?;
        a.mov(esi, 1u32)?;
        a.xor(edx, edx)?;
        a.mov(r10d, 0x7FF0u32)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_MMUEXT_OP))?;
        a.call(rax)?;
        a.mov(rbx, va(DATA_PFN))?;
        a.mov(qword_ptr(rbx + 48), rax)?;
        // iret to user mode: [flags, rip, cs|3, rflags, rsp, ss|3] then stub 23.
        a.push(0xe02bi32 | 3)?;
        a.mov(rax, va(PAGES - 2) + 4096)?;
        a.push(rax)?;
        a.push(0x202)?;
        a.push(0xe033i32)?;
        a.mov(rax, user_code)?;
        a.push(rax)?;
        a.push(0)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_IRET))?;
        a.jmp(rax)
    });
    let mut ua = CodeAssembler::new(64).unwrap();
    ua.mov(r12, 0x77u64).unwrap();
    ua.syscall().unwrap();
    ua.ud2().unwrap();
    m.mem
        .guest_write(g.data[5], 0, &ua.assemble(user_code).unwrap())
        .unwrap();
    // The kernel's syscall entry: record r12 and the saved cs, then power off.
    let mut ka = CodeAssembler::new(64).unwrap();
    ka.mov(rbx, va(DATA_PFN)).unwrap();
    ka.mov(qword_ptr(rbx + 56), r12).unwrap();
    ka.mov(rax, qword_ptr(rsp + 24)).unwrap(); // frame: rcx, r11, rip, cs, …
    ka.mov(qword_ptr(rbx + 64), rax).unwrap();
    shutdown(&mut ka, sch::SHUTDOWN_POWEROFF).unwrap();
    m.mem
        .guest_write(g.data[3], 0, &ka.assemble(kentry).unwrap())
        .unwrap();
    let op = crate::abi::mm::MmuextOp {
        cmd: crate::abi::mm::MMUEXT_NEW_USER_BASEPTR,
        pad: 0,
        arg1: g.tables[0].get(),
        arg2: 0,
    };
    m.mem
        .guest_write(g.data[DATA_PFN], 0x200, zerocopy::IntoBytes::as_bytes(&op))
        .unwrap();
    m.run(100_000);
    assert_eq!(data_u64(&m, &g, 48), 0, "NEW_USER_BASEPTR");
    assert_eq!(
        data_u64(&m, &g, 56),
        0x77,
        "the system call arrived with user registers"
    );
    assert_eq!(
        data_u64(&m, &g, 64) & 3,
        3,
        "saved cs says it came from user mode"
    );
    assert_eq!(shutdown_reason(&m, &g), Some(sch::SHUTDOWN_POWEROFF));
    assert!(
        m.domain(g.dom).unwrap().vcpus[0].pv.in_kernel,
        "back in kernel mode"
    );
    m.check_invariants().unwrap();
}

#[test]
fn page_fault_frames_carry_the_error_code_and_cr2() {
    let mut m = Model::new(ModelConfig {
        machine_frames: 4096,
    });
    let handler = va(3);
    let g = guest(&mut m, |a| {
        a.mov(rbx, va(DATA_PFN) + 0x100)?;
        a.mov(byte_ptr(rbx), 14i32)?;
        a.mov(word_ptr(rbx + 2), 0xe033i32)?;
        a.mov(rax, handler)?;
        a.mov(qword_ptr(rbx + 8), rax)?;
        a.mov(qword_ptr(rbx + 24), 0i32)?;
        a.mov(rdi, rbx)?;
        a.mov(rax, hcall_addr(hc::HYPERVISOR_SET_TRAP_TABLE))?;
        a.call(rax)?;
        // A write to the read-only mapping of the L1 (a present page): #PF(P|W).
        a.mov(rax, va(PAGES + 3))?;
        a.mov(qword_ptr(rax), 1i32)
    });
    let mut a = CodeAssembler::new(64).unwrap();
    a.mov(rbx, va(DATA_PFN)).unwrap();
    a.mov(rax, qword_ptr(rsp + 16)).unwrap(); // rcx, r11, error code, rip, …
    a.mov(qword_ptr(rbx + 72), rax).unwrap();
    shutdown(&mut a, sch::SHUTDOWN_POWEROFF).unwrap();
    m.mem
        .guest_write(g.data[3], 0, &a.assemble(handler).unwrap())
        .unwrap();
    m.run(100_000);
    assert_eq!(
        shutdown_reason(&m, &g),
        Some(sch::SHUTDOWN_POWEROFF),
        "handler ran"
    );
    assert_eq!(data_u64(&m, &g, 72), 0b011, "error code P|W (kernel mode)");
    let shared = m.domain(g.dom).unwrap().shared_info;
    let fault_va = u64::from_le_bytes(m.mem.page(shared).unwrap()[16..24].try_into().unwrap());
    assert_eq!(fault_va, va(PAGES + 3), "cr2 in vcpu_info.arch.cr2");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Random bytes as code and random registers: every outcome is an instruction,
        /// an exception bounced (or a crash), or a hypercall — never a panic, and the
        /// host's invariants hold afterwards.
        #[test]
        fn random_code_never_breaks_the_host(code in proptest::collection::vec(any::<u8>(), 64..512), regs in proptest::array::uniform16(any::<u64>())) {
            let mut m = Model::new(ModelConfig { machine_frames: 4096 });
            let g = MiniGuest::build(&mut m, PAGES).unwrap();
            m.hypercall_init(g.dom, g.data[HC_PFN]).unwrap();
            m.mem.guest_write(g.data[CODE_PFN], 0, &code).unwrap();
            let other = MiniGuest::build(&mut m, 4).unwrap();
            let before = m.mem.page(other.data[0]).unwrap().to_vec();
            {
                let v = &mut m.domain_mut(g.dom).unwrap().vcpus[0];
                let saved_sp = v.regs.gpr[crate::cpu::gpr::RSP];
                v.regs.gpr = regs;
                // Keep a usable stack half the time, so pushes/calls reach further.
                if regs[0] & 1 == 0 {
                    v.regs.gpr[crate::cpu::gpr::RSP] = saved_sp;
                }
            }
            m.run(20_000);
            if let Err(e) = m.check_invariants() {
                return Err(TestCaseError::fail(e.to_string()));
            }
            prop_assert_eq!(before, m.mem.page(other.data[0]).unwrap().to_vec(), "another domain's memory changed");
        }
    }
}
