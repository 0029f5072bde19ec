//! `pingpong`: two domains exchanging notifications over an inter-domain event channel
//! set up through xenstore.
//!
//! # Protocol
//!
//! Each side owns, in its xenstore home:
//! - `data/pingpong-peer`, world-writable (perms `b<self>`): the other side writes its
//!   own domain id there to announce itself (at boot, and after each resume in a new
//!   domain, when its id has changed). Watched with token 1.
//! - ping only: `data/pingpong-port`, world-readable (`r<self>`): the unbound port it
//!   allocated for the peer (`EVTCHNOP_alloc_unbound`).
//!
//! The ping (re)allocates its port whenever its peer changes and after a resume; the
//! pong watches `/local/domain/<peer>/data/pingpong-port` (token 2) and binds it
//! (`EVTCHNOP_bind_interdomain`) whenever it names a port it is not bound to, clears
//! the pending bit Xen sets on the new local port, and sends the first notification.
//! Both watch the peer's `data/pingpong-peer` (token 3) to retry an announcement the
//! peer was not ready for. From then on every notification received is answered with
//! one notification. A side knows its own id from its home's `domid` node.
//!
//! Parameters: `role=ping|pong`, `peer=<domid>` (required for the pong; the ping
//! learns it from the announcement if absent).
//!
//! # Counters
//!
//! [`ST_STEPS`] = notifications received, [`ST_GUEST0`] = notifications sent,
//! [`ST_GUEST1`] = channels set up (ping: ports allocated; pong: binds),
//! [`ST_GUEST2`] = peer changes seen. Console: `pingpong: start <params>`, then
//! `pingpong: <role> received <n>` every `report` notifications.

use iced_x86::code_asm::*;

use hypervisor::abi::xs_wire::{XS_READ, XS_SET_PERMS, XS_WATCH, XS_WRITE};

use crate::asm::AsmResult;
use crate::layout::*;
use crate::oracle::{GuestMemory, OracleError, Status};
use crate::params::{Role, ToyParams};
use crate::runtime::{m32, m64, Gen};

const PP_PEER: u64 = G_GUEST;
const PP_PORT: u64 = G_GUEST + 8;
const PP_REMOTE_PORT: u64 = G_GUEST + 16;
const PP_BOUND_PEER: u64 = G_GUEST + 24;
const PP_SEND: u64 = G_GUEST + 32;
const PP_ANNOUNCE: u64 = G_GUEST + 40;
const PP_LAST: u64 = G_GUEST + 48;
const PP_TMP: u64 = G_GUEST + 56;

pub(crate) fn region_pages(_p: &ToyParams) -> u64 {
    0
}

/// The console word of a role.
fn word(role: Role) -> String {
    format!("{} received", role.name())
}

/// Appends `"/local/domain/<peer>" + tail` to the request payload.
fn sb_peer_path(x: &mut Gen<'_>, tail: &str) -> AsmResult {
    x.sb_lit("/local/domain/")?;
    x.x.a.mov(rdi, m64(g(PP_PEER)))?;
    x.x.a.call(x.rt.sb_u64)?;
    x.sb_lit(tail)?;
    x.sb_nul()
}

pub(crate) fn emit(x: &mut Gen<'_>) -> AsmResult {
    let role = x.p.role.unwrap_or(Role::Ping);
    let ping = role == Role::Ping;
    let mut init = x.x.label();
    let mut resume = x.x.label();
    let mut hook = x.x.label();
    let mut handler = x.x.label();
    let mut announce = x.x.label();
    let mut watch_peer = x.x.label();
    let mut peer_changed = x.x.label();
    let mut establish = x.x.label();
    let mut try_bind = x.x.label();

    // -- main loop
    let mut l = x.rt.guest_main;
    x.x.set(&mut l)?;
    let canon = x.p.canonical();
    x.print_tagged(&format!("start {canon}\n"))?;
    let a = &mut x.x.a;
    a.mov(m64(g(ST_STATE)), STATE_RUNNING as i32)?;
    a.mov(m64(g(PP_PEER)), i32::from(x.p.peer.unwrap_or(0)))?;
    a.lea(rax, ptr(hook))?;
    a.mov(m64(g(G_WATCH_HOOK)), rax)?;
    a.lea(rax, ptr(resume))?;
    a.mov(m64(g(G_RESUME_HOOK)), rax)?;
    a.call(init)?;
    let mut lp = x.x.label();
    let mut idle = x.x.label();
    let mut catchup = x.x.label();
    let mut caught = x.x.label();
    let mut nosend = x.x.label();
    x.x.set(&mut lp)?;
    x.x.a.call(x.rt.safe_point)?;
    // Progress lines and the limit, one received notification at a time.
    x.x.set(&mut catchup)?;
    let a = &mut x.x.a;
    a.mov(rax, m64(g(PP_LAST)))?;
    a.cmp(rax, m64(g(ST_STEPS)))?;
    a.jae(caught)?;
    a.inc(m64(g(PP_LAST)))?;
    x.step_epilogue_at(&word(role), g(PP_LAST))?;
    x.x.a.jmp(catchup)?;
    x.x.set(&mut caught)?;
    let a = &mut x.x.a;
    a.cmp(m64(g(PP_SEND)), 0)?;
    a.je(idle)?;
    a.mov(m64(g(PP_SEND)), 0)?;
    a.mov(edi, m32(g(PP_PORT)))?;
    a.test(edi, edi)?;
    a.jz(lp)?;
    a.call(x.rt.evtchn_send)?;
    a.test(rax, rax)?;
    a.jnz(nosend)?;
    a.inc(m64(g(ST_GUEST0)))?;
    a.set_label(&mut nosend)?;
    a.jmp(lp)?;
    x.x.set(&mut idle)?;
    x.x.a.call(x.rt.wait_event)?;
    x.x.a.jmp(lp)?;

    // -- handler: a notification from the peer.
    x.x.set(&mut handler)?;
    let a = &mut x.x.a;
    a.inc(m64(g(ST_STEPS)))?;
    a.mov(m64(g(PP_SEND)), 1)?;
    a.ret()?;

    // -- resume in a new domain: every binding is gone, the home is new.
    x.x.set(&mut resume)?;
    let a = &mut x.x.a;
    for v in [PP_PORT, PP_REMOTE_PORT, PP_BOUND_PEER, PP_SEND] {
        a.mov(m64(g(v)), 0)?;
    }
    a.jmp(init)?;

    // -- init (boot and resume).
    x.x.set(&mut init)?;
    x.xs_read_lit("domid")?;
    x.x.a.mov(eax, eax)?;
    x.check_zero("read domid")?;
    x.x.a.call(x.rt.parse_reply)?;
    x.x.a.mov(rax, rdx)?;
    x.check_zero("parse domid")?;
    x.x.a.call(x.rt.parse_reply)?;
    x.x.a.mov(m64(g(G_DOMID)), rax)?;
    // Our peer node, world-writable.
    x.xs_write_lit("data/pingpong-peer", "")?;
    x.x.a.mov(eax, eax)?;
    x.check_zero("write data/pingpong-peer")?;
    x.x.a.call(x.rt.sb_reset)?;
    x.sb_lit("data/pingpong-peer")?;
    x.sb_nul()?;
    x.sb_lit("b")?;
    x.x.a.mov(rdi, m64(g(G_DOMID)))?;
    x.x.a.call(x.rt.sb_u64)?;
    x.sb_nul()?;
    x.xs(XS_SET_PERMS)?;
    x.x.a.mov(eax, eax)?;
    x.check_zero("set perms of data/pingpong-peer")?;
    x.xs_watch_lit("data/pingpong-peer", "1")?;
    x.x.a.mov(eax, eax)?;
    x.check_zero("watch data/pingpong-peer")?;
    x.x.a.call(watch_peer)?;
    if ping {
        x.x.a.call(establish)?;
    }
    x.x.a.mov(m64(g(PP_ANNOUNCE)), 1)?;
    x.x.a.jmp(announce)?;

    // -- watch hook (rdi = fired tokens).
    x.x.set(&mut hook)?;
    let mut n1 = x.x.label();
    let mut n2 = x.x.label();
    let mut n3 = x.x.label();
    let a = &mut x.x.a;
    a.push(rbx)?;
    a.mov(rbx, rdi)?;
    a.test(bl, 2)?;
    a.jz(n1)?;
    a.call(peer_changed)?;
    a.set_label(&mut n1)?;
    a.test(bl, 8)?;
    a.jz(n2)?;
    a.call(announce)?;
    a.set_label(&mut n2)?;
    a.test(bl, 4)?;
    a.jz(n3)?;
    if !ping {
        a.call(try_bind)?;
    }
    x.x.set(&mut n3)?;
    x.x.a.pop(rbx)?;
    x.x.a.ret()?;

    // -- announce: write our id into the peer's node (retried until it works).
    x.x.set(&mut announce)?;
    let mut r = x.x.label();
    let a = &mut x.x.a;
    a.cmp(m64(g(PP_ANNOUNCE)), 0)?;
    a.je(r)?;
    a.cmp(m64(g(PP_PEER)), 0)?;
    a.je(r)?;
    a.call(x.rt.sb_reset)?;
    sb_peer_path(x, "/data/pingpong-peer")?;
    x.x.a.mov(rdi, m64(g(G_DOMID)))?;
    x.x.a.call(x.rt.sb_u64)?;
    x.xs(XS_WRITE)?;
    let a = &mut x.x.a;
    a.test(eax, eax)?;
    a.jnz(r)?;
    a.mov(m64(g(PP_ANNOUNCE)), 0)?;
    x.x.set(&mut r)?;
    x.x.a.ret()?;

    // -- watch the peer's nodes (its peer node; the pong also its port node).
    x.x.set(&mut watch_peer)?;
    let mut r = x.x.label();
    x.x.a.cmp(m64(g(PP_PEER)), 0)?;
    x.x.a.je(r)?;
    x.x.a.call(x.rt.sb_reset)?;
    sb_peer_path(x, "/data/pingpong-peer")?;
    x.sb_lit("3")?;
    x.sb_nul()?;
    x.xs(XS_WATCH)?;
    if !ping {
        x.x.a.call(x.rt.sb_reset)?;
        sb_peer_path(x, "/data/pingpong-port")?;
        x.sb_lit("2")?;
        x.sb_nul()?;
        x.xs(XS_WATCH)?;
    }
    x.x.set(&mut r)?;
    x.x.a.ret()?;

    // -- our peer node changed: a (new) peer announced itself.
    x.x.set(&mut peer_changed)?;
    let mut r = x.x.label();
    x.xs_read_lit("data/pingpong-peer")?;
    let a = &mut x.x.a;
    a.test(eax, eax)?;
    a.jnz(r)?;
    a.call(x.rt.parse_reply)?;
    a.test(edx, edx)?;
    a.jnz(r)?;
    a.cmp(rax, m64(g(PP_PEER)))?;
    a.je(r)?;
    a.mov(m64(g(PP_PEER)), rax)?;
    a.inc(m64(g(ST_GUEST2)))?;
    a.call(watch_peer)?;
    if ping {
        a.call(establish)?;
    } else {
        a.call(try_bind)?;
    }
    x.x.set(&mut r)?;
    x.x.a.ret()?;

    // -- ping: (re)allocate the port for the current peer and publish it.
    x.x.set(&mut establish)?;
    let mut r = x.x.label();
    let mut fresh = x.x.label();
    let a = &mut x.x.a;
    a.cmp(m64(g(PP_PEER)), 0)?;
    a.je(r)?;
    a.mov(edi, m32(g(PP_PORT)))?;
    a.test(edi, edi)?;
    a.jz(fresh)?;
    a.call(x.rt.unregister_handler)?;
    a.mov(edi, m32(g(PP_PORT)))?;
    a.call(x.rt.evtchn_close)?;
    a.mov(m64(g(PP_PORT)), 0)?;
    a.set_label(&mut fresh)?;
    a.mov(edi, m32(g(PP_PEER)))?;
    a.call(x.rt.alloc_unbound)?;
    x.check("alloc_unbound")?;
    let a = &mut x.x.a;
    a.mov(m64(g(PP_PORT)), rax)?;
    a.inc(m64(g(ST_GUEST1)))?;
    a.mov(edi, eax)?;
    a.lea(rsi, ptr(handler))?;
    a.call(x.rt.register_handler)?;
    a.mov(edi, m32(g(PP_PORT)))?;
    a.call(x.rt.evtchn_unmask)?;
    x.check_zero("unmask pingpong port")?;
    x.x.a.call(x.rt.sb_reset)?;
    x.sb_lit("data/pingpong-port")?;
    x.sb_nul()?;
    x.x.a.mov(rdi, m64(g(PP_PORT)))?;
    x.x.a.call(x.rt.sb_u64)?;
    x.xs(XS_WRITE)?;
    x.x.a.mov(eax, eax)?;
    x.check_zero("write data/pingpong-port")?;
    x.x.a.call(x.rt.sb_reset)?;
    x.sb_lit("data/pingpong-port")?;
    x.sb_nul()?;
    x.sb_lit("r")?;
    x.x.a.mov(rdi, m64(g(G_DOMID)))?;
    x.x.a.call(x.rt.sb_u64)?;
    x.sb_nul()?;
    x.xs(XS_SET_PERMS)?;
    x.x.a.mov(eax, eax)?;
    x.check_zero("set perms of data/pingpong-port")?;
    x.x.set(&mut r)?;
    x.x.a.ret()?;

    // -- pong: bind the port the peer published, if it is not the one we hold.
    x.x.set(&mut try_bind)?;
    let mut r = x.x.label();
    let mut bind = x.x.label();
    let mut rebind = x.x.label();
    let a = &mut x.x.a;
    a.cmp(m64(g(PP_PEER)), 0)?;
    a.je(r)?;
    a.call(x.rt.sb_reset)?;
    sb_peer_path(x, "/data/pingpong-port")?;
    x.xs(XS_READ)?;
    let a = &mut x.x.a;
    a.test(eax, eax)?;
    a.jnz(r)?;
    a.call(x.rt.parse_reply)?;
    a.test(edx, edx)?;
    a.jnz(r)?;
    a.mov(m64(g(PP_TMP)), rax)?;
    a.cmp(m64(g(PP_PORT)), 0)?;
    a.je(bind)?;
    a.cmp(rax, m64(g(PP_REMOTE_PORT)))?;
    a.jne(rebind)?;
    a.mov(rcx, m64(g(PP_PEER)))?;
    a.cmp(rcx, m64(g(PP_BOUND_PEER)))?;
    a.je(r)?;
    a.set_label(&mut rebind)?;
    a.mov(edi, m32(g(PP_PORT)))?;
    a.call(x.rt.unregister_handler)?;
    a.mov(edi, m32(g(PP_PORT)))?;
    a.call(x.rt.evtchn_close)?;
    a.mov(m64(g(PP_PORT)), 0)?;
    a.set_label(&mut bind)?;
    a.mov(edi, m32(g(PP_PEER)))?;
    a.mov(esi, m32(g(PP_TMP)))?;
    a.call(x.rt.bind_interdomain)?;
    a.test(rax, rax)?;
    a.js(r)?;
    a.mov(m64(g(PP_PORT)), rax)?;
    a.mov(rcx, m64(g(PP_TMP)))?;
    a.mov(m64(g(PP_REMOTE_PORT)), rcx)?;
    a.mov(rcx, m64(g(PP_PEER)))?;
    a.mov(m64(g(PP_BOUND_PEER)), rcx)?;
    a.inc(m64(g(ST_GUEST1)))?;
    // Xen marks a freshly bound port pending; that is not a notification.
    a.mov(edi, eax)?;
    a.call(x.rt.mask_port)?;
    a.mov(edi, m32(g(PP_PORT)))?;
    a.call(x.rt.clear_pending)?;
    a.mov(edi, m32(g(PP_PORT)))?;
    a.lea(rsi, ptr(handler))?;
    a.call(x.rt.register_handler)?;
    a.mov(edi, m32(g(PP_PORT)))?;
    a.call(x.rt.evtchn_unmask)?;
    x.check_zero("unmask pingpong port")?;
    x.x.a.mov(m64(g(PP_SEND)), 1)?;
    x.x.set(&mut r)?;
    x.x.a.ret()
}

/// The oracle of a `pingpong` guest.
#[derive(Clone, Debug)]
pub struct PingpongOracle {
    params: ToyParams,
}

/// One side's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counts {
    /// Notifications received.
    pub received: u64,
    /// Notifications sent.
    pub sent: u64,
    /// Channels set up (ping: ports allocated; pong: binds).
    pub channels: u64,
    /// Peer changes seen.
    pub peer_changes: u64,
}

impl Counts {
    /// From a status block.
    #[must_use]
    pub fn from_status(st: &Status) -> Counts {
        Counts {
            received: st.steps,
            sent: st.guest[0],
            channels: st.guest[1],
            peer_changes: st.guest[2],
        }
    }
}

impl PingpongOracle {
    /// The oracle for these parameters.
    #[must_use]
    pub fn new(params: &ToyParams) -> PingpongOracle {
        PingpongOracle {
            params: params.clone(),
        }
    }

    /// This side's counters.
    ///
    /// # Errors
    /// A bad status block.
    pub fn counts(&self, mem: &impl GuestMemory) -> Result<Counts, OracleError> {
        Ok(Counts::from_status(&Status::read(mem)?))
    }

    /// Checks one ping and one pong against each other: nobody received more than the
    /// other sent; every notification received was answered (at most one answer
    /// outstanding); the pong also sent one opening notification per bind. With a
    /// single channel ever (`channels == 1` on both sides, i.e. no restore in a new
    /// domain) the exchange strictly alternates: pong.received ≤ ping.received ≤
    /// pong.received + 1.
    ///
    /// # Errors
    /// [`OracleError::Counts`].
    pub fn check_pair(ping: &Counts, pong: &Counts) -> Result<(), OracleError> {
        let bad = |m: String| {
            Err(OracleError::Counts(format!(
                "{m} (ping {ping:?}, pong {pong:?})"
            )))
        };
        if ping.received > pong.sent || pong.received > ping.sent {
            return bad("received more than the peer sent".into());
        }
        if !(ping.sent <= ping.received && ping.received <= ping.sent + 1) {
            return bad("ping did not answer every notification exactly once".into());
        }
        let owed = pong.received + pong.channels;
        if !(pong.sent <= owed && owed <= pong.sent + 1) {
            return bad(
                "pong did not answer every notification (and open every channel) once".into(),
            );
        }
        if ping.channels == 1
            && pong.channels == 1
            && !(pong.received <= ping.received && ping.received <= pong.received + 1)
        {
            return bad("exchange did not alternate".into());
        }
        Ok(())
    }

    /// The workload console lines after `received` notifications.
    #[must_use]
    pub fn expected_console(&self, received: u64) -> Vec<String> {
        crate::oracle::progress_lines(
            &self.params,
            &word(self.params.role.unwrap_or(Role::Ping)),
            received,
        )
    }
}
