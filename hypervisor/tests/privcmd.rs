//! The hw backend without Xen: every wrapper on an invalid descriptor returns a typed
//! error (`EBADF` from an `O_PATH` fd, `ENOTTY` from `/dev/null`), the missing-device
//! message, and the xenstore client's bytes against a fake xenstored on a socketpair.
//! Tests that need a real dom0 skip with a message when `/dev/xen/privcmd` is absent.
#![cfg(feature = "hw")]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::thread;

use hypervisor::abi::domctl::{self as dc, XenDomctl};
use hypervisor::abi::mm::{MmuUpdate, MmuextOp};
use hypervisor::abi::sysctl::{self as sc, XenSysctl};
use hypervisor::privcmd::{
    domctl_handles, memory_op_handle, sysctl_handles, DevicePaths, EvtchnFd, Privcmd, PrivcmdFd,
    XenInterface, XsConn,
};
use hypervisor::{DomId, Errno, Mfn, Port, Xen, XenError, XsAccess, XsPerm, XsWatchEvent};

/// An `O_PATH` descriptor: ioctl, mmap, read and write on it all fail with `EBADF`.
fn opath() -> File {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open("/dev/null")
        .expect("O_PATH open of /dev/null")
}

fn devnull() -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null")
}

/// A backend whose every device is an invalid descriptor.
fn broken(privcmd: File) -> Privcmd {
    let mut x = Privcmd::with_devices(
        PrivcmdFd::from_file(privcmd),
        None,
        XenInterface::XEN_4_17,
        DevicePaths::default(),
    );
    x.set_evtchn(EvtchnFd::from_file(opath()));
    x.set_xenstore(XsConn::from_stream(Box::new(opath())));
    x
}

fn errno_of(e: &XenError) -> Option<i32> {
    match e {
        XenError::Xen { errno, .. } => Some(errno.0),
        XenError::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

#[track_caller]
fn want<T: std::fmt::Debug>(what: &str, r: Result<T, XenError>, errno: i32) {
    match r {
        Err(e) => assert_eq!(errno_of(&e), Some(errno), "{what}: {e}"),
        Ok(v) => panic!("{what}: succeeded on an invalid descriptor: {v:?}"),
    }
}

#[test]
fn every_wrapper_on_an_invalid_fd_is_ebadf() {
    let mut x = broken(opath());
    let ebadf = libc::EBADF;
    want("xen_version", x.xen_version(0, &mut []), ebadf);
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, 0);
    want("domctl", x.domctl(&mut d, &mut []), ebadf);
    // A failed domctl leaves the caller's struct alone.
    assert_eq!(d, XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, 0));
    let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
    want("sysctl", x.sysctl(&mut s, &mut []), ebadf);
    want("memory_op", x.memory_op(2, &mut [], &mut []), ebadf);
    let mut done = 7;
    let req = [MmuUpdate { ptr: 0, val: 0 }];
    want("mmu_update", x.mmu_update(&req, &mut done, 0), ebadf);
    let op = [MmuextOp {
        cmd: 0,
        pad: 0,
        arg1: 0,
        arg2: 0,
    }];
    want("mmuext_op", x.mmuext_op(&op, &mut done, 0), ebadf);
    let mut arg = [0u8; 8];
    want("event_channel_op", x.event_channel_op(6, &mut arg), ebadf);
    let mut page = vec![0u8; 4096];
    let mut errs = [0i32];
    want(
        "foreign_read",
        x.foreign_read(DomId::new(1), &[Mfn::new(5)], &mut page, &mut errs),
        ebadf,
    );
    want(
        "foreign_write",
        x.foreign_write(DomId::new(1), &[Mfn::new(5)], &page, &mut errs),
        ebadf,
    );
    want(
        "evtchn_bind_interdomain",
        x.evtchn_bind_interdomain(DomId::new(1), Port::new(3)),
        ebadf,
    );
    want(
        "evtchn_bind_unbound_port",
        x.evtchn_bind_unbound_port(DomId::new(1)),
        ebadf,
    );
    want("evtchn_bind_virq", x.evtchn_bind_virq(1), ebadf);
    want("evtchn_unbind", x.evtchn_unbind(Port::new(3)), ebadf);
    want("evtchn_notify", x.evtchn_notify(Port::new(3)), ebadf);
    want("evtchn_wait", x.evtchn_wait(1_000_000), ebadf);
    want("evtchn_unmask", x.evtchn_unmask(Port::new(3)), ebadf);
    want("xs_read", x.xs_read(0, "/a"), ebadf);
    want("xs_write", x.xs_write(0, "/a", b"v"), ebadf);
    want("xs_mkdir", x.xs_mkdir(0, "/a"), ebadf);
    want("xs_rm", x.xs_rm(0, "/a"), ebadf);
    want("xs_directory", x.xs_directory(0, "/a"), ebadf);
    want("xs_get_perms", x.xs_get_perms(0, "/a"), ebadf);
    want("xs_set_perms", x.xs_set_perms(0, "/a", &[]), ebadf);
    want("xs_watch", x.xs_watch("/a", "t"), ebadf);
    want("xs_unwatch", x.xs_unwatch("/a", "t"), ebadf);
    want("xs_read_watch", x.xs_read_watch(1_000_000), ebadf);
    want("xs_transaction_start", x.xs_transaction_start(), ebadf);
    want("xs_transaction_end", x.xs_transaction_end(1, true), ebadf);
    want(
        "xs_introduce",
        x.xs_introduce(DomId::new(1), Mfn::new(2), Port::new(3)),
        ebadf,
    );
    want("xs_release", x.xs_release(DomId::new(1)), ebadf);
    want(
        "xs_get_domain_path",
        x.xs_get_domain_path(DomId::new(1)),
        ebadf,
    );
    // The evtchn device's own extras.
    let mut e = EvtchnFd::from_file(opath());
    want("evtchn reset", e.reset(), ebadf);
    want("evtchn restrict", e.restrict(DomId::new(1)), ebadf);
}

#[test]
fn a_non_xen_device_gives_enotty_and_enodev() {
    let mut x = broken(devnull());
    // Hypercalls: /dev/null has no ioctls.
    want("xen_version", x.xen_version(0, &mut []), libc::ENOTTY);
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_PAUSEDOMAIN, 1);
    want("domctl", x.domctl(&mut d, &mut []), libc::ENOTTY);
    // Foreign mappings: /dev/null cannot be mapped.
    let mut page = vec![0u8; 4096];
    let mut errs = [0i32];
    want(
        "foreign_read",
        x.foreign_read(DomId::new(1), &[Mfn::new(5)], &mut page, &mut errs),
        libc::ENODEV,
    );
    let e = EvtchnFd::from_file(devnull());
    want(
        "evtchn bind_virq on /dev/null",
        e.bind_virq(0),
        libc::ENOTTY,
    );
}

#[test]
fn missing_privcmd_gives_the_dom0_message() {
    let paths = DevicePaths {
        privcmd: "/nonexistent/dev/xen/privcmd".into(),
        ..DevicePaths::default()
    };
    let e = Privcmd::open_with(paths).unwrap_err();
    assert!(matches!(e, XenError::NoDevice { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "no Xen privcmd device at /nonexistent/dev/xen/privcmd — is this a Xen dom0?"
    );
    if !Path::new("/dev/xen/privcmd").exists() {
        let e = Privcmd::open().unwrap_err();
        assert_eq!(
            e.to_string(),
            "no Xen privcmd device at /dev/xen/privcmd — is this a Xen dom0?"
        );
    }
}

#[test]
fn versions_choose_interfaces() {
    let i = XenInterface::from_xen_version((4 << 16) | 17).expect("4.17");
    assert_eq!((i.domctl, i.sysctl), (0x15, 0x15));
    let i = XenInterface::from_xen_version((4 << 16) | 18).expect("4.18");
    assert_eq!((i.domctl, i.sysctl), (0x16, 0x15));
    let e = XenInterface::from_xen_version((4 << 16) | 19).unwrap_err();
    assert!(e.to_string().contains("Xen 4.19"), "{e}");
    assert!(XenInterface::from_xen_version(3 << 16).is_err());
}

#[test]
fn handle_tables_point_at_the_abi_offsets() {
    // Offsets from abi-4.17.md: vcpucontext.ctxt@8, getpageframeinfo3.array@8,
    // shadow_op.dirty_bitmap@16, vcpuextstate.buffer@24, vcpu_msrs.msrs@8 — all inside
    // the union at 16 of xen_domctl.
    let h = |cmd| domctl_handles(&XenDomctl::new(cmd, 1), 64).expect("known");
    assert_eq!(h(dc::XEN_DOMCTL_GETVCPUCONTEXT), vec![(24, 0..64)]);
    assert_eq!(h(dc::XEN_DOMCTL_SETVCPUCONTEXT), vec![(24, 0..64)]);
    assert_eq!(h(dc::XEN_DOMCTL_GETPAGEFRAMEINFO3), vec![(24, 0..64)]);
    assert_eq!(h(dc::XEN_DOMCTL_SHADOW_OP), vec![(32, 0..64)]);
    assert_eq!(h(dc::XEN_DOMCTL_GETVCPUEXTSTATE), vec![(40, 0..64)]);
    assert_eq!(h(dc::XEN_DOMCTL_GET_VCPU_MSRS), vec![(24, 0..64)]);
    // No buffer: no handle (NULL), for every command.
    assert!(
        domctl_handles(&XenDomctl::new(dc::XEN_DOMCTL_PAUSEDOMAIN, 1), 0)
            .expect("none")
            .is_empty()
    );
    // A buffer for a command without a handle is refused before reaching Xen.
    let e = domctl_handles(&XenDomctl::new(dc::XEN_DOMCTL_PAUSEDOMAIN, 1), 8).unwrap_err();
    assert!(matches!(e, XenError::BadArgument { .. }), "{e:?}");
    // cpu policy: leaves (24 B each) then MSRs (16 B each).
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GET_CPU_POLICY, 1);
    d.set_payload(&dc::DomctlCpuPolicy {
        nr_leaves: 2,
        nr_msrs: 3,
        ..Default::default()
    });
    assert_eq!(
        domctl_handles(&d, 96).expect("policy"),
        vec![(24, 0..48), (32, 48..96)]
    );
    assert!(domctl_handles(&d, 95).is_err());
    // sysctl getdomaininfolist.buffer@8 in the union at 8.
    let s = XenSysctl::new(sc::XEN_SYSCTL_GETDOMAININFOLIST);
    assert_eq!(sysctl_handles(&s, 112).expect("list"), vec![(16, 0..112)]);
    assert!(sysctl_handles(&XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO), 8).is_err());
    // memory_op: reservation.extent_start@0, machphys_mfn_list.extent_start@8.
    assert_eq!(memory_op_handle(6, 8).expect("populate"), Some(0));
    assert_eq!(memory_op_handle(5, 8).expect("mfn list"), Some(8));
    assert_eq!(memory_op_handle(2, 0).expect("max ram page"), None);
    assert!(memory_op_handle(2, 8).is_err());
}

// ---------------------------------------------------------------------------------
// xenstore against a fake xenstored.

/// Builds one xs_wire message.
fn msg(ty: u32, req: u32, tx: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for w in [ty, req, tx, payload.len() as u32] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// One exchange: the exact request expected, and what the daemon sends back.
struct Step {
    expect: Vec<u8>,
    replies: Vec<Vec<u8>>,
}

/// Runs a fake xenstored on one end of a socketpair; returns the client end and a handle
/// yielding the list of mismatches.
fn fake_xenstored(steps: Vec<Step>) -> (XsConn, thread::JoinHandle<Vec<String>>) {
    let (client, mut server) = UnixStream::pair().expect("socketpair");
    let h = thread::spawn(move || {
        let mut bad = Vec::new();
        for (i, s) in steps.into_iter().enumerate() {
            let mut got = vec![0u8; s.expect.len()];
            if let Err(e) = server.read_exact(&mut got) {
                bad.push(format!("step {i}: reading the request: {e}"));
                break;
            }
            if got != s.expect {
                bad.push(format!(
                    "step {i}: request {got:?}, expected {:?}",
                    s.expect
                ));
            }
            for r in s.replies {
                if let Err(e) = server.write_all(&r) {
                    bad.push(format!("step {i}: writing a reply: {e}"));
                }
            }
        }
        bad
    });
    (XsConn::from_stream(Box::new(client)), h)
}

#[test]
fn xs_wire_requests_and_replies() {
    const READ: u32 = 2;
    const WRITE: u32 = 11;
    let steps = vec![
        // read "/a" → "xyz" (no terminator on values)
        Step {
            expect: msg(READ, 1, 0, b"/a\0"),
            replies: vec![msg(READ, 1, 0, b"xyz")],
        },
        // write "/a/b" = "v" inside transaction 9: path NUL value
        Step {
            expect: msg(WRITE, 2, 9, b"/a/b\0v"),
            replies: vec![msg(WRITE, 2, 9, b"OK\0")],
        },
        // mkdir, rm
        Step {
            expect: msg(12, 3, 0, b"/m\0"),
            replies: vec![msg(12, 3, 0, b"OK\0")],
        },
        Step {
            expect: msg(13, 4, 0, b"/m\0"),
            replies: vec![msg(13, 4, 0, b"OK\0")],
        },
        // directory: unsorted names come back sorted
        Step {
            expect: msg(1, 5, 0, b"/local/domain\0"),
            replies: vec![msg(1, 5, 0, b"7\x000\x003\0")],
        },
        // get_perms / set_perms
        Step {
            expect: msg(3, 6, 0, b"/p\0"),
            replies: vec![msg(3, 6, 0, b"n0\0r5\0")],
        },
        Step {
            expect: msg(14, 7, 0, b"/p\0b3\0r0\0"),
            replies: vec![msg(14, 7, 0, b"OK\0")],
        },
        // watch: the initial event arrives before the OK and is queued
        Step {
            expect: msg(4, 8, 0, b"/w\0tok\0"),
            replies: vec![msg(15, 0, 0, b"/w\0tok\0"), msg(4, 8, 0, b"OK\0")],
        },
        // an error reply carries the errno's name
        Step {
            expect: msg(READ, 9, 0, b"/nope\0"),
            replies: vec![msg(16, 9, 0, b"ENOENT\0")],
        },
        // transactions
        Step {
            expect: msg(6, 10, 0, b"\0"),
            replies: vec![msg(6, 10, 0, b"42\0")],
        },
        Step {
            expect: msg(7, 11, 42, b"T\0"),
            replies: vec![msg(16, 11, 42, b"EAGAIN\0")],
        },
        Step {
            expect: msg(7, 12, 43, b"F\0"),
            replies: vec![msg(7, 12, 43, b"OK\0")],
        },
        // introduce / release / get_domain_path
        Step {
            expect: msg(8, 13, 0, b"5\x004660\x001\0"),
            replies: vec![msg(8, 13, 0, b"OK\0")],
        },
        Step {
            expect: msg(9, 14, 0, b"5\0"),
            replies: vec![msg(9, 14, 0, b"OK\0")],
        },
        Step {
            expect: msg(10, 15, 0, b"5\0"),
            replies: vec![msg(10, 15, 0, b"/local/domain/5\0")],
        },
        // unwatch, then a later event read with a timeout
        Step {
            expect: msg(5, 16, 0, b"/w\0tok\0"),
            replies: vec![msg(5, 16, 0, b"OK\0"), msg(15, 0, 0, b"/x/y\0t2\0")],
        },
    ];
    let (mut c, h) = fake_xenstored(steps);
    assert_eq!(c.read(0, "/a").expect("read"), b"xyz");
    c.write(9, "/a/b", b"v").expect("write");
    c.mkdir(0, "/m").expect("mkdir");
    c.rm(0, "/m").expect("rm");
    assert_eq!(
        c.directory(0, "/local/domain").expect("dir"),
        ["0", "3", "7"]
    );
    assert_eq!(
        c.get_perms(0, "/p").expect("perms"),
        vec![
            XsPerm {
                dom: DomId::new(0),
                access: XsAccess::None
            },
            XsPerm {
                dom: DomId::new(5),
                access: XsAccess::Read
            }
        ]
    );
    c.set_perms(
        0,
        "/p",
        &[
            XsPerm {
                dom: DomId::new(3),
                access: XsAccess::Both,
            },
            XsPerm {
                dom: DomId::new(0),
                access: XsAccess::Read,
            },
        ],
    )
    .expect("set perms");
    c.watch("/w", "tok").expect("watch");
    let e = c.read(0, "/nope").unwrap_err();
    assert_eq!(e.errno(), Some(Errno::ENOENT), "{e}");
    assert_eq!(c.transaction_start().expect("tx"), 42);
    let e = c.transaction_end(42, true).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::EAGAIN), "{e}");
    c.transaction_end(43, false).expect("abort");
    c.introduce(DomId::new(5), Mfn::new(0x1234), Port::new(1))
        .expect("introduce");
    c.release(DomId::new(5)).expect("release");
    assert_eq!(
        c.get_domain_path(DomId::new(5)).expect("path"),
        "/local/domain/5"
    );
    // The watch event queued during WATCH comes out first.
    assert_eq!(
        c.read_watch(0).expect("queued"),
        Some(XsWatchEvent {
            path: "/w".into(),
            token: "tok".into()
        })
    );
    c.unwatch("/w", "tok").expect("unwatch");
    assert_eq!(
        c.read_watch(5_000_000_000).expect("event"),
        Some(XsWatchEvent {
            path: "/x/y".into(),
            token: "t2".into()
        })
    );
    drop(c);
    let bad = h.join().expect("fake xenstored");
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn xs_read_watch_times_out_and_oversized_replies_are_errors() {
    let (mut c, h) = fake_xenstored(vec![Step {
        expect: msg(2, 1, 0, b"/a\0"),
        // A header announcing more than XENSTORE_PAYLOAD_MAX bytes.
        replies: vec![{
            let mut m = msg(2, 1, 0, b"");
            m[12..16].copy_from_slice(&5000u32.to_le_bytes());
            m
        }],
    }]);
    assert_eq!(c.read_watch(1_000_000).expect("timeout"), None);
    let e = c.read(0, "/a").unwrap_err();
    assert!(matches!(e, XenError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("5000"), "{e}");
    drop(c);
    assert!(h.join().expect("fake").is_empty());
    // A request larger than the payload limit never leaves the client.
    let (mut c, h) = fake_xenstored(Vec::new());
    let e = c.write(0, "/big", &vec![b'x'; 5000]).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::E2BIG), "{e}");
    drop(c);
    assert!(h.join().expect("fake").is_empty());
}

#[test]
fn xs_a_closed_daemon_is_an_error() {
    let (mut c, h) = fake_xenstored(Vec::new());
    h.join().expect("fake");
    let e = c.read(0, "/a").unwrap_err();
    assert!(matches!(e, XenError::Io { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------
// On a real dom0.

fn real() -> Option<Privcmd> {
    if !Path::new("/dev/xen/privcmd").exists() {
        eprintln!("skipping: no /dev/xen/privcmd on this machine (not a Xen dom0)");
        return None;
    }
    Some(Privcmd::open().expect("open privcmd on a dom0"))
}

#[test]
fn real_dom0_version_and_domain_list() {
    let Some(mut x) = real() else { return };
    let v = x.xen_version(0, &mut []).expect("xen_version");
    assert_eq!(
        (v >> 16, v & 0xffff),
        (
            i64::from(x.interface().major),
            i64::from(x.interface().minor)
        )
    );
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, 0);
    x.domctl(&mut d, &mut []).expect("getdomaininfo(0)");
    assert_eq!(d.domain, 0);
    assert_eq!(d.interface_version, dc::XEN_DOMCTL_INTERFACE_VERSION);
    assert_eq!(
        x.xs_get_domain_path(DomId::DOM0).expect("xenstore"),
        "/local/domain/0"
    );
}
