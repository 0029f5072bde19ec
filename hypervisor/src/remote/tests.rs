use super::*;
use crate::abi::domctl as dc;
use crate::abi::evtchn as ev;
use crate::abi::version as ver;
use crate::model::testkit::MiniGuest;
use crate::model::{Model, ModelConfig};
use crate::types::PAGE_SIZE;
use crate::xen::{XsAccess, XS_NO_TX};
use std::io::Cursor;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use zerocopy::FromZeros;

fn host() -> Model {
    Model::new(ModelConfig {
        machine_frames: 8192,
    })
}

/// A server thread owning a fresh model (prepared by `setup`, whose result comes back)
/// and a client connected to it.
fn spawn<T: Send + 'static>(
    setup: impl FnOnce(&mut Model) -> T + Send + 'static,
) -> (RemoteXen<UnixStream>, T, JoinHandle<io::Result<()>>) {
    let (a, b) = UnixStream::pair().unwrap();
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let mut m = host();
        tx.send(setup(&mut m)).unwrap();
        serve(&mut m, b)
    });
    (RemoteXen::new(a), rx.recv().unwrap(), server)
}

fn finish(client: RemoteXen<UnixStream>, server: JoinHandle<io::Result<()>>) {
    drop(client);
    server.join().unwrap().expect("server ends cleanly at EOF");
}

fn create(x: &mut dyn Xen) -> Result<u16, XenError> {
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_CREATEDOMAIN, 0);
    let mut p = dc::DomctlCreateDomain::new_zeroed();
    p.max_vcpus = 1;
    p.grant_opts = 1;
    p.max_grant_frames = 32;
    p.max_evtchn_port = 1023;
    d.set_payload(&p);
    x.domctl(&mut d, &mut [])?;
    Ok(d.domain)
}

#[test]
fn domctl_createdomain_and_getdomaininfo() {
    let (mut x, (), server) = spawn(|_| ());
    assert_eq!(x.backend_name(), "remote");
    assert_eq!(x.server_backend().unwrap(), "model");
    let dom = create(&mut x).unwrap();
    assert_eq!(dom, 1, "the domctl's domain field comes back rewritten");
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, dom);
    x.domctl(&mut d, &mut []).unwrap();
    let info: dc::DomctlGetDomainInfo = d.payload();
    assert_eq!(info.domain, dom);
    assert!(
        info.flags & dc::XEN_DOMINF_PAUSED != 0,
        "new domains start paused"
    );
    // xen_version: the value, and an out buffer filled by the server.
    assert_eq!(
        x.xen_version(ver::XENVER_VERSION as u32, &mut []).unwrap(),
        0x0004_0011
    );
    let mut extra = [0u8; 16];
    x.xen_version(ver::XENVER_EXTRAVERSION as u32, &mut extra)
        .unwrap();
    assert_eq!(&extra[..8], b".7-model");
    finish(x, server);
}

#[test]
fn errors_round_trip_as_xen_errors() {
    let (mut x, (), server) = spawn(|_| ());
    let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, 0);
    d.interface_version = 0x18;
    let e = x.domctl(&mut d, &mut []).unwrap_err();
    assert!(
        matches!(
            e,
            XenError::Xen {
                errno: Errno::EACCES,
                op: "domctl"
            }
        ),
        "{e:?}"
    );
    let e = x.xs_read(XS_NO_TX, "/no/such/node").unwrap_err();
    assert_eq!(e.errno(), Some(Errno::ENOENT));
    // A malformed argument is refused by the server, and the connection goes on.
    let e = x
        .foreign_read(DomId::new(1), &[Mfn::new(1)], &mut [0; 10], &mut [0])
        .unwrap_err();
    assert!(
        matches!(
            e,
            XenError::BadArgument {
                op: "foreign_read",
                ..
            }
        ),
        "{e:?}"
    );
    let e = x
        .call(&XenCall::Domctl {
            domctl: vec![0; 3],
            buf: vec![],
        })
        .unwrap_err();
    assert!(
        matches!(e, XenError::BadArgument { op: "remote", .. }),
        "{e:?}"
    );
    assert_eq!(
        x.xs_get_domain_path(DomId::new(3)).unwrap(),
        "/local/domain/3"
    );
    finish(x, server);
}

#[test]
fn wire_errors_convert_both_ways() {
    let cases = [
        XenError::xen("xs read", Errno::ENOENT),
        XenError::BadArgument {
            op: "memory_op",
            what: "short".into(),
        },
        XenError::NoDevice {
            path: "/dev/xen/privcmd".into(),
        },
        XenError::Io {
            op: "mmap",
            source: io::Error::other("boom"),
        },
        XenError::NotImplemented {
            op: "sysctl",
            backend: "hw",
        },
    ];
    for e in cases {
        let w = WireError::from(&e);
        let bytes = postcard::to_stdvec(&w).unwrap();
        let back: XenError = postcard::from_bytes::<WireError>(&bytes).unwrap().into();
        assert_eq!(back.to_string(), e.to_string());
        assert_eq!(WireError::from(&back), w);
    }
    // Op names are interned once.
    assert!(std::ptr::eq(intern("some op"), intern("some op")));
}

#[test]
fn xenstore_over_the_socket() {
    let (mut x, (), server) = spawn(|_| ());
    x.xs_write(XS_NO_TX, "/tool/xi/a", b"hello").unwrap();
    assert_eq!(x.xs_read(XS_NO_TX, "/tool/xi/a").unwrap(), b"hello");
    x.xs_mkdir(XS_NO_TX, "/tool/xi/b").unwrap();
    assert_eq!(x.xs_directory(XS_NO_TX, "/tool/xi").unwrap(), ["a", "b"]);
    let perms = [
        XsPerm {
            dom: DomId::new(0),
            access: XsAccess::None,
        },
        XsPerm {
            dom: DomId::new(5),
            access: XsAccess::Read,
        },
    ];
    x.xs_set_perms(XS_NO_TX, "/tool/xi/a", &perms).unwrap();
    assert_eq!(x.xs_get_perms(XS_NO_TX, "/tool/xi/a").unwrap(), perms);
    let tx = x.xs_transaction_start().unwrap();
    assert_ne!(tx, XS_NO_TX);
    x.xs_write(tx, "/tool/xi/c", b"1").unwrap();
    x.xs_transaction_end(tx, true).unwrap();
    assert_eq!(x.xs_read(XS_NO_TX, "/tool/xi/c").unwrap(), b"1");
    x.xs_watch("/tool/xi", "tok").unwrap();
    let first = x.xs_read_watch(0).unwrap().expect("a watch fires at once");
    assert_eq!(
        (first.path.as_str(), first.token.as_str()),
        ("/tool/xi", "tok")
    );
    x.xs_rm(XS_NO_TX, "/tool/xi/b").unwrap();
    let fired = x.xs_read_watch(0).unwrap().expect("rm fires the watch");
    assert_eq!(fired.token, "tok");
    x.xs_unwatch("/tool/xi", "tok").unwrap();
    finish(x, server);
}

#[test]
fn event_channels_over_the_socket() {
    let (mut x, (), server) = spawn(|_| ());
    let dom = create(&mut x).unwrap();
    let p = x.evtchn_bind_unbound_port(DomId::new(dom)).unwrap();
    // EVTCHNOP_status fills its struct on the server; the bytes come back.
    let mut st = ev::EvtchnStatus {
        dom: DomId::SELF.get(),
        port: p.get(),
        ..Default::default()
    };
    x.event_channel_op(ev::EVTCHNOP_STATUS as u32, st.as_mut_bytes())
        .unwrap();
    assert_eq!(st.status, ev::EVTCHNSTAT_UNBOUND);
    assert_eq!(st.u[0], u32::from(dom));
    x.evtchn_notify(p).unwrap();
    assert_eq!(
        x.evtchn_wait(0).unwrap(),
        None,
        "nothing bound on the far end"
    );
    x.evtchn_unbind(p).unwrap();
    let e = x.evtchn_unbind(p).unwrap_err();
    assert_eq!(e.errno(), Some(Errno::ENOTCONN));
    finish(x, server);
}

#[test]
fn foreign_read_and_write_of_guest_pages() {
    let (mut x, (dom, page), server) = spawn(|m| {
        let g = MiniGuest::build(m, 2).unwrap();
        m.mem.guest_write(g.data[1], 100, b"remote bytes").unwrap();
        (g.dom, g.data[1])
    });
    let mfns = [page, Mfn::new(u64::MAX >> 12)];
    let mut buf = vec![0xAAu8; 2 * PAGE_SIZE];
    let mut errs = [7i32; 2];
    x.foreign_read(dom, &mfns, &mut buf, &mut errs).unwrap();
    assert_eq!(errs[0], 0);
    assert!(
        errs[1] < 0,
        "a frame the domain does not own fails alone: {errs:?}"
    );
    assert_eq!(&buf[100..112], b"remote bytes");
    assert!(
        buf[PAGE_SIZE..].iter().all(|&b| b == 0),
        "failed page zeroed"
    );
    let mut page_bytes = vec![0u8; PAGE_SIZE];
    page_bytes[..4].copy_from_slice(b"new!");
    let mut errs = [1i32];
    x.foreign_write(dom, &[page], &page_bytes, &mut errs)
        .unwrap();
    assert_eq!(errs, [0]);
    let mut back = vec![0u8; PAGE_SIZE];
    x.foreign_read(dom, &[page], &mut back, &mut errs).unwrap();
    assert_eq!(back, page_bytes);
    finish(x, server);
}

/// A stream whose reads come from `input` and whose writes are collected.
#[derive(Debug)]
struct Duplex {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}
impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn duplex(input: Vec<u8>) -> Duplex {
    Duplex {
        input: Cursor::new(input),
        output: Vec::new(),
    }
}

#[test]
fn a_huge_claimed_frame_is_refused_without_allocating() {
    // Server side: a peer claiming a 4 GiB frame ends the connection with an error.
    let mut input = u32::MAX.to_le_bytes().to_vec();
    input.extend_from_slice(&[0; 16]);
    let mut m = host();
    let e = serve(&mut m, duplex(input.clone())).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    // Just over the cap is refused too; exactly at it is only limited by the data.
    let over = (MAX_FRAME as u32 + 1).to_le_bytes().to_vec();
    assert_eq!(
        read_frame(&mut Cursor::new(over)).unwrap_err().kind(),
        io::ErrorKind::InvalidData
    );
    let at = (MAX_FRAME as u32).to_le_bytes().to_vec();
    assert_eq!(
        read_frame(&mut Cursor::new(at)).unwrap_err().kind(),
        io::ErrorKind::UnexpectedEof
    );
    // Client side: the same reply makes the call fail, and the client stays failed.
    let mut x = RemoteXen::new(duplex(input));
    let e = x.xs_read(XS_NO_TX, "/").unwrap_err();
    assert!(
        matches!(&e, XenError::Io { op: "xs_read", source } if source.kind() == io::ErrorKind::InvalidData),
        "{e:?}"
    );
    let e = x.xs_read(XS_NO_TX, "/").unwrap_err();
    assert!(
        matches!(&e, XenError::Io { source, .. } if source.kind() == io::ErrorKind::NotConnected),
        "{e:?}"
    );
    // Nothing oversized is ever sent either.
    assert_eq!(
        write_frame(&mut Vec::new(), &vec![0; MAX_FRAME + 1])
            .unwrap_err()
            .kind(),
        io::ErrorKind::InvalidInput
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut m = host();
    // Undecodable frames get a Failed reply each; the framing goes on.
    let mut input = Vec::new();
    for junk in [
        &[0xffu8, 0xff, 0xff, 0xff, 0xff][..],
        &[200],
        &[],
        &[2, 0xff, 0xff, 0xff, 0xff, 0x7f],
    ] {
        write_frame(&mut input, junk).unwrap();
    }
    let mut d = duplex(input);
    serve(&mut m, &mut d).unwrap();
    let mut out = Cursor::new(d.output);
    for _ in 0..4 {
        let frame = read_frame(&mut out).unwrap().unwrap();
        let reply: XenReply = postcard::from_bytes(&frame).unwrap();
        assert!(
            matches!(reply, XenReply::Failed(WireError::BadArgument { .. })),
            "{reply:?}"
        );
    }
    assert_eq!(read_frame(&mut out).unwrap(), None);
    // A frame cut short is an error.
    let e = serve(&mut m, duplex(vec![10, 0, 0, 0, 1, 2])).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    // A client given garbage, a mismatched reply, or a wrongly sized buffer fails.
    let mut junk = Vec::new();
    write_frame(&mut junk, &[0xff; 9]).unwrap();
    let mut x = RemoteXen::new(duplex(junk));
    assert!(matches!(x.xs_rm(XS_NO_TX, "/a"), Err(XenError::Io { .. })));
    let mut wrong = Vec::new();
    send(&mut wrong, &XenReply::TxId(Ok(3))).unwrap();
    let mut x = RemoteXen::new(duplex(wrong));
    assert!(matches!(x.xs_rm(XS_NO_TX, "/a"), Err(XenError::Io { .. })));
    let mut short = Vec::new();
    send(
        &mut short,
        &XenReply::XenVersion {
            ret: Ok(0),
            arg: vec![1, 2],
        },
    )
    .unwrap();
    let mut x = RemoteXen::new(duplex(short));
    let mut arg = [0u8; 16];
    assert!(matches!(
        x.xen_version(1, &mut arg),
        Err(XenError::Io { .. })
    ));
    // And a server closing the connection mid-call.
    let mut x = RemoteXen::new(duplex(Vec::new()));
    let e = x.xs_transaction_start().unwrap_err();
    assert!(
        matches!(&e, XenError::Io { source, .. } if source.kind() == io::ErrorKind::UnexpectedEof),
        "{e:?}"
    );
}

#[test]
fn every_call_survives_postcard() {
    let calls = [
        XenCall::BackendName,
        XenCall::MemoryOp {
            cmd: 6,
            arg: vec![1; 48],
            buf: vec![2; 4096],
        },
        XenCall::ForeignRead {
            dom: 3,
            mfns: vec![1, u64::MAX],
            buf_len: 8192,
            errs_len: 2,
        },
        XenCall::XsSetPerms {
            tx: 0,
            path: "/x".into(),
            perms: vec!["b0".into(), "r5".into()],
        },
        XenCall::XsIntroduce {
            dom: 2,
            mfn: 0x1234,
            port: 7,
        },
    ];
    for c in calls {
        let bytes = postcard::to_stdvec(&c).unwrap();
        assert_eq!(postcard::from_bytes::<XenCall>(&bytes).unwrap(), c);
    }
    // Byte buffers are encoded as a length and the raw bytes.
    let bytes = postcard::to_stdvec(&XenCall::XsWrite {
        tx: 0,
        path: String::new(),
        value: vec![9; 300],
    })
    .unwrap();
    assert!(bytes.len() < 310, "{}", bytes.len());
}

#[test]
fn serve_unix_serves_connections_in_turn_and_stops() {
    let dir = std::env::temp_dir().join(format!("xi-remote-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("host.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut m = host();
            serve_unix(&mut m, listener, &|| stop.load(Ordering::SeqCst))
        })
    };
    {
        let mut a = RemoteXen::connect(&path).unwrap();
        a.xs_write(XS_NO_TX, "/tool/shared", b"one host").unwrap();
    }
    let mut b = RemoteXen::connect(&path).unwrap();
    assert_eq!(
        b.xs_read(XS_NO_TX, "/tool/shared").unwrap(),
        b"one host",
        "state outlives a client"
    );
    // Stopping works even while a client is still connected.
    stop.store(true, Ordering::SeqCst);
    server.join().unwrap().unwrap();
    assert!(
        b.xs_read(XS_NO_TX, "/tool/shared").is_err(),
        "the server has gone"
    );
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(matches!(
        RemoteXen::connect(&path),
        Err(XenError::Io { .. })
    ));
}
