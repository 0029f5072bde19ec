//! The toolstack side of the PV suspend protocol (stream.md §5.1, libxl_dom_suspend.c)
//! and the cooperative resume (`xc_domain_resume(fast=1)`).
//!
//! [`suspend`]: write `control/shutdown = "suspend"` in the guest's xenstore home, wait
//! for the guest to acknowledge (any other value, or the node gone), then watch
//! `@releaseDomain` and poll getdomaininfo until the domain has shut down with
//! `SHUTDOWN_suspend`. All waits are in the backend's time (virtual on the model).
//!
//! [`resume_cooperative`]: vCPU0's `rax` = 1 (the suspend hypercall's return value:
//! "cancelled / checkpointed"), setvcpucontext, resumedomain, and unpause if the
//! domain is paused.

use hypervisor::abi::domctl::{self as dc, DomctlGetDomainInfo};
use hypervisor::abi::sched::SHUTDOWN_SUSPEND;
use hypervisor::{DomId, Errno, Xen, XenError, XS_NO_TX};

use crate::save::xc;

/// libxl's suspend timeouts: 60 s for the ack, 60 s for the shutdown.
pub const DEFAULT_TIMEOUT_NS: u64 = 60_000_000_000;
/// How often getdomaininfo is polled while waiting (the watch may say nothing).
const POLL_NS: u64 = 10_000_000;
const WATCH_TOKEN: &str = "xi-suspend";

/// Why a suspend did not happen.
#[derive(Debug, thiserror::Error)]
pub enum SuspendError {
    /// A Xen or xenstore call failed.
    #[error("suspending d{dom}: {source}")]
    Xen {
        /// The domain.
        dom: DomId,
        /// The call.
        #[source]
        source: XenError,
    },
    /// The guest did not answer the request.
    #[error("d{dom}: guest never acknowledged the suspend request within {secs:.1} s (control/shutdown still \"suspend\"); the request was withdrawn and the guest is left running")]
    NoAck {
        /// The domain.
        dom: DomId,
        /// The timeout, in seconds.
        secs: f64,
    },
    /// The guest acknowledged but did not shut down.
    #[error(
        "d{dom}: guest acknowledged the suspend request but did not suspend within {secs:.1} s"
    )]
    NotSuspended {
        /// The domain.
        dom: DomId,
        /// The timeout, in seconds.
        secs: f64,
    },
    /// The guest shut down for another reason.
    #[error("d{dom}: guest shut down with reason {} instead of suspending", reason_name(*.reason))]
    WrongReason {
        /// The domain.
        dom: DomId,
        /// The `SHUTDOWN_*` reason.
        reason: u32,
    },
    /// The domain went away.
    #[error("d{dom} disappeared while suspending")]
    Gone {
        /// The domain.
        dom: DomId,
    },
}

/// The name of a `SHUTDOWN_*` reason.
#[must_use]
pub fn reason_name(reason: u32) -> String {
    match reason {
        0 => "poweroff".into(),
        1 => "reboot".into(),
        2 => "suspend".into(),
        3 => "crash".into(),
        4 => "watchdog".into(),
        5 => "soft_reset".into(),
        r => format!("{r}"),
    }
}

/// Whether getdomaininfo says the domain is shut down with `SHUTDOWN_suspend`.
#[must_use]
pub fn is_suspended(info: &DomctlGetDomainInfo) -> bool {
    info.flags & dc::XEN_DOMINF_SHUTDOWN != 0
        && dc::xen_dominf_shutdown_reason(info.flags) == SHUTDOWN_SUSPEND
}

fn now_waiter<X: Xen + ?Sized>(x: &mut X, ns: u64) -> Result<(), XenError> {
    // Let time pass: a read_watch with nothing to deliver waits the whole timeout.
    let _ = x.xs_read_watch(ns)?;
    Ok(())
}

/// Asks `dom` to suspend and waits until it has (`timeout_ns` for each of the two
/// phases, in the backend's time). On [`SuspendError::NoAck`] the request is withdrawn
/// (unless a late ack arrived) and the guest keeps running.
///
/// # Errors
/// [`SuspendError`].
pub fn suspend<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    timeout_ns: u64,
) -> Result<(), SuspendError> {
    let xe = |source| SuspendError::Xen { dom, source };
    let info = domain_info(x, dom)?;
    if is_suspended(&info) {
        return Ok(());
    }
    if info.flags & dc::XEN_DOMINF_SHUTDOWN != 0 {
        return Err(SuspendError::WrongReason {
            dom,
            reason: dc::xen_dominf_shutdown_reason(info.flags),
        });
    }
    let node = format!("/local/domain/{}/control/shutdown", dom.get());
    x.xs_watch(&node, WATCH_TOKEN).map_err(xe)?;
    let r = wait_ack(x, dom, &node, timeout_ns);
    let _ = x.xs_unwatch(&node, WATCH_TOKEN);
    r?;
    x.xs_watch("@releaseDomain", WATCH_TOKEN).map_err(xe)?;
    let r = wait_suspended(x, dom, timeout_ns);
    let _ = x.xs_unwatch("@releaseDomain", WATCH_TOKEN);
    r
}

fn domain_info<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
) -> Result<DomctlGetDomainInfo, SuspendError> {
    match xc::domain_info(x, dom) {
        Ok(i) => Ok(i),
        Err(e) if e.errno() == Some(Errno::ESRCH) => Err(SuspendError::Gone { dom }),
        Err(source) => Err(SuspendError::Xen { dom, source }),
    }
}

fn acked<X: Xen + ?Sized>(x: &mut X, dom: DomId, node: &str) -> Result<bool, SuspendError> {
    match x.xs_read(XS_NO_TX, node) {
        Ok(v) => Ok(v != b"suspend"),
        Err(e) if e.errno() == Some(Errno::ENOENT) => Ok(true),
        Err(source) => Err(SuspendError::Xen { dom, source }),
    }
}

fn wait_ack<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    node: &str,
    timeout_ns: u64,
) -> Result<(), SuspendError> {
    let xe = |source| SuspendError::Xen { dom, source };
    x.xs_write(XS_NO_TX, node, b"suspend").map_err(xe)?;
    let mut waited = 0u64;
    loop {
        if acked(x, dom, node)? {
            return Ok(());
        }
        // A guest may also go straight to the shutdown.
        if domain_info(x, dom)?.flags & dc::XEN_DOMINF_SHUTDOWN != 0 {
            return Ok(());
        }
        if waited >= timeout_ns {
            break;
        }
        let step = POLL_NS.min(timeout_ns - waited).max(1);
        now_waiter(x, step).map_err(xe)?;
        waited += step;
    }
    // Withdraw the request inside a transaction, unless the ack came late.
    for _ in 0..16 {
        let tx = x.xs_transaction_start().map_err(xe)?;
        let late = match x.xs_read(tx, node) {
            Ok(v) => v != b"suspend",
            Err(_) => true,
        };
        if !late {
            let _ = x.xs_write(tx, node, b"");
        }
        match x.xs_transaction_end(tx, true) {
            Ok(()) if late => return Ok(()),
            Ok(()) => break,
            Err(e) if e.errno() == Some(Errno::EAGAIN) => continue,
            Err(source) => return Err(SuspendError::Xen { dom, source }),
        }
    }
    Err(SuspendError::NoAck {
        dom,
        secs: timeout_ns as f64 / 1e9,
    })
}

fn wait_suspended<X: Xen + ?Sized>(
    x: &mut X,
    dom: DomId,
    timeout_ns: u64,
) -> Result<(), SuspendError> {
    let mut waited = 0u64;
    loop {
        let info = domain_info(x, dom)?;
        if info.flags & dc::XEN_DOMINF_SHUTDOWN != 0 {
            let reason = dc::xen_dominf_shutdown_reason(info.flags);
            return if reason == SHUTDOWN_SUSPEND {
                Ok(())
            } else {
                Err(SuspendError::WrongReason { dom, reason })
            };
        }
        if waited >= timeout_ns {
            return Err(SuspendError::NotSuspended {
                dom,
                secs: timeout_ns as f64 / 1e9,
            });
        }
        let step = POLL_NS.min(timeout_ns - waited).max(1);
        now_waiter(x, step).map_err(|source| SuspendError::Xen { dom, source })?;
        waited += step;
    }
}

/// `xc_domain_resume(fast=1)`: the suspended domain continues where it suspended, its
/// suspend hypercall returning 1. Unpauses it if it is paused.
///
/// # Errors
/// Xen's errno.
pub fn resume_cooperative<X: Xen + ?Sized>(x: &mut X, dom: DomId) -> Result<(), XenError> {
    resume_fast(x, dom)?;
    if xc::domain_info(x, dom)?.flags & dc::XEN_DOMINF_PAUSED != 0 {
        xc::unpause(x, dom)?;
    }
    Ok(())
}

/// [`resume_cooperative`] without the unpause (for `save -p`).
///
/// # Errors
/// Xen's errno.
pub fn resume_fast<X: Xen + ?Sized>(x: &mut X, dom: DomId) -> Result<(), XenError> {
    let info = xc::domain_info(x, dom)?;
    if is_suspended(&info) {
        let mut ctx = xc::get_vcpu_context(x, dom, 0)?;
        ctx.user_regs.rax = 1;
        xc::set_vcpu_context(x, dom, 0, &ctx)?;
    }
    xc::resume_domain(x, dom)
}
