//! The run loop, the execution context handed to every instruction handler, and operand
//! access (registers with x86's partial-write rules, effective addresses, loads and stores).

use super::bus::{Bus, CodePage, Exit, Fault};
use super::decode::{self, attr, seg, CachedPage, DecodeCache, Insn, HIGH8, NONE, RIP};
use super::flags::{self, Width, CF, RF};
use super::lazy::{self, kind, Lazy};
use super::{dispatch, Regs};

/// TSC ticks per retired instruction: the virtual CPU retires one instruction per tick.
pub const TSC_PER_INSN: u64 = 1;

/// How control continues after an instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Flow {
    /// Fall through to the next instruction.
    Next,
    /// `rip` was set by the handler (a taken branch, already checked canonical).
    Jump,
    /// A `rep` string instruction stopped early (budget): run it again, `rip` unchanged.
    Repeat,
    /// `syscall`: leave the run loop with [`Exit::Syscall`] (`rip` advanced by the loop).
    Syscall,
    /// A trap (int3, int1): `rip` advances past the instruction, then `Ctx::fault` is
    /// reported.
    Trap,
    /// The instruction faulted (`Ctx::fault`); nothing changed.
    Fault,
    /// The cache slot marks an instruction that straddles into the next page.
    Straddle,
}

/// A handler's result: a fault leaves the architectural state untouched.
pub(crate) type R = Result<Flow, Fault>;

/// The inputs of [`run`] beyond registers, memory and the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunLimits {
    /// At most this many instructions retire (a `rep` iteration counts as one).
    pub budget: u64,
    /// The TSC value an `rdtsc` at the first instruction of this run reads. An `rdtsc` after
    /// `n` retired instructions reads `tsc + n * TSC_PER_INSN`.
    pub tsc: u64,
    /// `IA32_TSC_AUX`, returned in ecx by `rdtscp`.
    pub tsc_aux: u32,
}

/// How [`run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunResult {
    /// Why it stopped.
    pub exit: Exit,
    /// Instructions retired in this run (the faulting instruction of an exception is not
    /// counted; a trap's is; each `rep` iteration counts once).
    pub retired: u64,
}

/// Execution context of one instruction.
pub(crate) struct Ctx<'a, B: Bus> {
    /// The registers, copied in for the run (one indirection less on every access).
    pub r: Regs,
    pub bus: &'a mut B,
    /// `rip` of the next instruction. While the run loop stays in a page it keeps `rip` in
    /// a local and `r.rip` is only brought up to date when control leaves the loop; handlers
    /// use `next` (RIP-relative operands, return addresses) and write `r.rip` to branch.
    pub next: u64,
    /// Set by every store, so the loop can re-check the running code page.
    pub wrote: bool,
    /// Instructions retired before this one in the run (a `rep` handler adds its
    /// iterations beyond the first itself).
    pub retired: u64,
    pub limits: RunLimits,
    /// The exception of a [`Flow::Fault`] or [`Flow::Trap`].
    pub fault: Fault,
    /// Pending arithmetic flags: when set, the arithmetic bits of `r.rflags` are stale.
    pub lazy: Lazy,
}

/// Whether `a` is a canonical 48-bit address.
#[inline(always)]
pub(crate) fn canonical(a: u64) -> bool {
    (((a << 16) as i64) >> 16) as u64 == a
}

impl<B: Bus> Ctx<'_, B> {
    /// Reads a register operand of width `W`.
    #[inline(always)]
    pub fn reg<W: Width>(&self, r: u8) -> u64 {
        if W::BITS == 8 && (HIGH8..HIGH8 + 4).contains(&r) {
            (self.r.gpr[usize::from(r & 3)] >> 8) & 0xff
        } else {
            self.r.gpr[usize::from(r & 15)] & W::MASK
        }
    }

    /// Writes a register operand of width `W`: 32-bit writes zero-extend, 8/16-bit merge.
    #[inline(always)]
    pub fn set_reg<W: Width>(&mut self, r: u8, v: u64) {
        if W::BITS == 8 && (HIGH8..HIGH8 + 4).contains(&r) {
            let g = &mut self.r.gpr[usize::from(r & 3)];
            *g = (*g & !0xff00) | ((v & 0xff) << 8);
            return;
        }
        let g = &mut self.r.gpr[usize::from(r & 15)];
        *g = match W::BITS {
            64 => v,
            32 => v & 0xffff_ffff,
            _ => (*g & !W::MASK) | (v & W::MASK),
        };
    }

    /// A full 64-bit GPR.
    #[inline(always)]
    pub fn gpr(&self, n: usize) -> u64 {
        self.r.gpr[n & 15]
    }

    /// The effective address of the memory operand without the segment base (what `lea`
    /// computes).
    #[inline(always)]
    pub fn offset(&self, i: &Insn) -> u64 {
        let mut a = i.disp;
        if i.base != NONE {
            let b = if i.base == RIP {
                self.next
            } else {
                self.gpr(usize::from(i.base))
            };
            a = a.wrapping_add(b);
        }
        if i.index != NONE {
            a = a.wrapping_add(self.gpr(usize::from(i.index)) << (i.scale & 3));
        }
        if i.attr & attr::A32 != 0 {
            a &= 0xffff_ffff;
        }
        a
    }

    /// The segment base for a [`seg`] code.
    #[inline(always)]
    pub fn seg_base(&self, s: u8) -> u64 {
        match s {
            seg::FS => self.r.fs_base,
            seg::GS => self.r.gs_base,
            _ => 0,
        }
    }

    /// The linear address of the memory operand.
    #[inline(always)]
    pub fn ea(&self, i: &Insn) -> u64 {
        self.offset(i).wrapping_add(self.seg_base(i.seg))
    }

    /// The fault for a non-canonical access.
    #[inline(always)]
    fn noncanonical(stack: bool) -> Fault {
        if stack {
            Fault::ss()
        } else {
            Fault::gp(0)
        }
    }

    #[inline(always)]
    fn check(a: u64, n: usize, stack: bool) -> Result<(), Fault> {
        if canonical(a) && canonical(a.wrapping_add(n as u64 - 1)) {
            Ok(())
        } else {
            Err(Self::noncanonical(stack))
        }
    }

    /// Loads `W` bytes at linear address `a`.
    #[inline(always)]
    pub fn load<W: Width>(&mut self, a: u64, stack: bool) -> Result<u64, Fault> {
        Self::check(a, W::BYTES, stack)?;
        let mut b = [0u8; 8];
        self.bus.read(a, &mut b[..W::BYTES])?;
        Ok(u64::from_le_bytes(b))
    }

    /// Stores the low `W` bytes of `v` at linear address `a`.
    #[inline(always)]
    pub fn store<W: Width>(&mut self, a: u64, v: u64, stack: bool) -> Result<(), Fault> {
        Self::check(a, W::BYTES, stack)?;
        self.bus.write(a, &v.to_le_bytes()[..W::BYTES])?;
        self.wrote = true;
        Ok(())
    }

    /// Loads `buf.len()` bytes (wider operands: cmpxchg16b).
    pub fn load_bytes(&mut self, a: u64, buf: &mut [u8], stack: bool) -> Result<(), Fault> {
        Self::check(a, buf.len().max(1), stack)?;
        self.bus.read(a, buf)
    }

    /// Stores `data`.
    pub fn store_bytes(&mut self, a: u64, data: &[u8], stack: bool) -> Result<(), Fault> {
        Self::check(a, data.len().max(1), stack)?;
        self.bus.write(a, data)?;
        self.wrote = true;
        Ok(())
    }

    /// Where operand `op` lives: a register, or memory at a linear address.
    #[inline(always)]
    pub fn loc(&self, i: &Insn, op: usize) -> Loc {
        if i.is_mem() {
            Loc::Mem(self.ea(i), i.attr & attr::STACK != 0)
        } else {
            Loc::Reg(i.r[op % 3])
        }
    }

    /// Reads a located operand.
    #[inline(always)]
    pub fn read<W: Width>(&mut self, l: Loc) -> Result<u64, Fault> {
        match l {
            Loc::Reg(r) => Ok(self.reg::<W>(r)),
            Loc::Mem(a, s) => self.load::<W>(a, s),
        }
    }

    /// Writes a located operand.
    #[inline(always)]
    pub fn write<W: Width>(&mut self, l: Loc, v: u64) -> Result<(), Fault> {
        match l {
            Loc::Reg(r) => {
                self.set_reg::<W>(r, v);
                Ok(())
            }
            Loc::Mem(a, s) => self.store::<W>(a, v, s),
        }
    }

    /// Reads the r/m operand `op` (register or memory).
    #[inline(always)]
    pub fn read_rm<W: Width>(&mut self, i: &Insn, op: usize) -> Result<u64, Fault> {
        if i.is_mem() {
            let a = self.ea(i);
            self.load::<W>(a, i.attr & attr::STACK != 0)
        } else {
            Ok(self.reg::<W>(i.r[op % 3]))
        }
    }

    /// Pushes `v` (`W` bytes); rsp moves only once the store succeeded.
    #[inline(always)]
    pub fn push<W: Width>(&mut self, v: u64) -> Result<(), Fault> {
        let sp = self.r.gpr[4].wrapping_sub(W::BYTES as u64);
        self.store::<W>(sp, v, true)?;
        self.r.gpr[4] = sp;
        Ok(())
    }

    /// Reads the top of the stack (`W` bytes at rsp + `skip`) without popping.
    #[inline(always)]
    pub fn peek<W: Width>(&mut self, skip: u64) -> Result<u64, Fault> {
        let sp = self.r.gpr[4].wrapping_add(skip);
        self.load::<W>(sp, true)
    }

    /// Sets `rip` to a branch target, or #GP(0) (at the branch) if it is not canonical.
    #[inline(always)]
    pub fn jump(&mut self, target: u64) -> R {
        if canonical(target) {
            self.r.rip = target;
            Ok(Flow::Jump)
        } else {
            Err(Fault::gp(0))
        }
    }

    /// RFLAGS, with any pending arithmetic flags materialised.
    #[inline(always)]
    pub fn flags(&mut self) -> u64 {
        if self.lazy.op != kind::NONE {
            self.r.rflags = self.lazy.materialize(self.r.rflags);
            self.lazy.op = kind::NONE;
        }
        self.r.rflags
    }

    /// Replaces RFLAGS (dropping anything pending).
    #[inline(always)]
    pub fn set_flags(&mut self, f: u64) {
        self.r.rflags = f;
        self.lazy.op = kind::NONE;
    }

    /// Records a lazy flag producer of width `W` (`kind` from [`lazy::kind`]).
    ///
    /// inc/dec keep CF, so the current CF (possibly itself pending) is folded into
    /// `r.rflags` first, where their lazy state reads it.
    #[inline(always)]
    pub fn set_lazy<W: Width>(&mut self, k: u8, a: u64, b: u64, res: u64) {
        if k == kind::INC || k == kind::DEC {
            let cf = if self.cf() { CF } else { 0 };
            self.r.rflags = (self.r.rflags & !CF) | cf;
        }
        self.lazy = Lazy {
            op: k | lazy::wlog(W::BITS),
            a,
            b,
            res,
        };
    }

    /// Condition code `cc` on the current flags.
    #[inline(always)]
    pub fn cond(&self, cc: u8) -> bool {
        if self.lazy.op == kind::NONE {
            flags::cond(cc, self.r.rflags)
        } else {
            self.lazy.cond(cc, self.r.rflags)
        }
    }

    /// CF.
    #[inline(always)]
    pub fn cf(&self) -> bool {
        if self.lazy.op == kind::NONE {
            self.r.rflags & CF != 0
        } else {
            self.lazy.cf(self.r.rflags)
        }
    }

    /// The TSC as `rdtsc` reads it now.
    pub fn tsc(&self) -> u64 {
        self.limits
            .tsc
            .wrapping_add(self.retired.wrapping_mul(TSC_PER_INSN))
    }
}

/// A located operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// A register code.
    Reg(u8),
    /// A linear address, and whether it is SS-relative.
    Mem(u64, bool),
}

/// Runs the vCPU in `regs` until an exit, executing at most `limits.budget` instructions.
///
/// Never panics, whatever the guest's bytes and registers. On [`Exit::Exception`] for a
/// fault, `regs` is exactly as before the faulting instruction.
pub fn run<B: Bus>(
    regs: &mut Regs,
    bus: &mut B,
    cache: &mut DecodeCache,
    limits: RunLimits,
) -> RunResult {
    let mut c = Ctx {
        r: regs.clone(),
        bus,
        next: 0,
        wrote: false,
        retired: 0,
        limits,
        fault: Fault::UD,
        lazy: Lazy::default(),
    };
    let exit = run_inner(&mut c, cache);
    c.flags();
    *regs = c.r;
    RunResult {
        exit,
        retired: c.retired,
    }
}

fn run_inner<B: Bus>(c: &mut Ctx<'_, B>, cache: &mut DecodeCache) -> Exit {
    let budget = c.limits.budget;
    loop {
        if c.retired >= budget {
            return Exit::Budget;
        }
        let rip = c.r.rip;
        if !canonical(rip) {
            return Exit::Exception(Fault::gp(0));
        }
        let cp = match c.bus.fetch_page(rip) {
            Ok(p) => p,
            Err(f) => return Exit::Exception(f),
        };
        let pi = cache.page(cp);
        let Some(page) = cache.pages.get_mut(pi) else {
            return Exit::Exception(Fault::UD);
        };
        c.wrote = false;
        if let Some(exit) = run_page(c, page, cp, budget) {
            return exit;
        }
    }
}

/// Runs instructions from the page `cp` (mapped at `rip & !0xfff`) until control leaves
/// it, the page changes under us, or an exit. `None` means: fetch the next page.
#[inline(always)]
fn run_page<B: Bus>(
    c: &mut Ctx<'_, B>,
    page: &mut CachedPage,
    cp: CodePage,
    budget: u64,
) -> Option<Exit> {
    // `rip` lives in a register here; `c.r.rip` is written back whenever control leaves
    // the loop (handlers only ever write it, for taken branches).
    let mut rip = c.r.rip;
    let page_va = rip & !0xfff;
    loop {
        let off = (rip & 0xfff) as usize;
        let mut slot = page.slots[off];
        if slot == decode::EMPTY {
            slot = page.decode_run(off, c.bus.code_bytes(cp.key));
        }
        let i = page.insn(slot);
        // Handlers only read `c.next`: keep it in a register too.
        let next = rip.wrapping_add(u64::from(i.len));
        c.next = next;
        let flow = dispatch::exec(c, i);
        if flow == Flow::Next {
            rip = next;
            c.retired += 1;
            if c.retired >= budget {
                c.r.rip = rip;
                return Some(Exit::Budget);
            }
            if i.attr & attr::END != 0 {
                c.r.rip = rip;
                return None;
            }
        } else {
            match flow {
                Flow::Next => {}
                Flow::Jump => {
                    rip = c.r.rip;
                    c.retired += 1;
                    if c.retired >= budget {
                        return Some(Exit::Budget);
                    }
                    if rip & !0xfff != page_va {
                        return None;
                    }
                }
                Flow::Repeat => {
                    c.r.rip = rip;
                    c.retired += 1;
                    if c.retired >= budget {
                        return Some(Exit::Budget);
                    }
                }
                Flow::Straddle => {
                    c.r.rip = rip;
                    return straddling(c, cp, off);
                }
                Flow::Syscall | Flow::Trap | Flow::Fault => {
                    c.r.rip = rip;
                    return Some(finish(c, flow));
                }
            }
        }
        if c.wrote {
            c.wrote = false;
            if !c.bus.code_page_current(cp) {
                c.r.rip = rip;
                return None;
            }
        }
    }
}

/// The exit for an instruction that ended the run (syscall, trap or fault).
#[cold]
fn finish<B: Bus>(c: &mut Ctx<'_, B>, flow: Flow) -> Exit {
    match flow {
        Flow::Syscall => {
            c.r.rip = c.next;
            c.r.gpr[1] = c.next;
            c.r.gpr[11] = c.flags() & !RF;
            c.retired += 1;
            Exit::Syscall
        }
        Flow::Trap => {
            c.r.rip = c.next;
            c.retired += 1;
            Exit::Exception(c.fault)
        }
        _ => Exit::Exception(c.fault),
    }
}

/// Decodes and executes the instruction at page offset `off`, which runs into the next
/// page (such instructions are not cached). `None`: continue from the new `rip`.
#[cold]
#[inline(never)]
fn straddling<B: Bus>(c: &mut Ctx<'_, B>, cp: CodePage, off: usize) -> Option<Exit> {
    let off = off & 0xfff;
    let mut buf = [0u8; 15];
    let first = (4096 - off).min(15);
    buf[..first].copy_from_slice(&c.bus.code_bytes(cp.key)[off..off + first]);
    let next_va = (c.r.rip & !0xfff).wrapping_add(4096);
    if !canonical(next_va) {
        return Some(Exit::Exception(Fault::gp(0)));
    }
    let np = match c.bus.fetch_page(next_va) {
        Ok(p) => p,
        Err(f) => return Some(Exit::Exception(f)),
    };
    let rest = 15 - first;
    buf[first..].copy_from_slice(&c.bus.code_bytes(np.key)[..rest]);
    let i = decode::decode_one(&buf, 0);
    c.next = c.r.rip.wrapping_add(u64::from(i.len));
    c.wrote = false;
    match dispatch::exec(c, &i) {
        Flow::Next => c.r.rip = c.next,
        Flow::Jump | Flow::Repeat => {}
        // An undecodable straddler is plain INVALID (no STRADDLE attribute): this cannot
        // recur, but treat it as #UD rather than loop.
        Flow::Straddle => return Some(Exit::Exception(Fault::UD)),
        f @ (Flow::Syscall | Flow::Trap | Flow::Fault) => return Some(finish(c, f)),
    }
    c.retired += 1;
    if c.retired >= c.limits.budget {
        return Some(Exit::Budget);
    }
    None
}
