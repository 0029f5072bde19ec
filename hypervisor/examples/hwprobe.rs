//! hwprobe: exercises each piece of the hw backend on a real dom0 and prints one
//! `PROBE ok|FAIL <what>: <detail>` line per check (exit status 1 if any failed).
//!
//!     cargo build --release -p hypervisor --features hw --example hwprobe
//!     hwprobe [DOMID]     # DOMID: a running PV guest to inspect (paused briefly)
//!
//! Without a guest it checks version, sysctl, getdomaininfo, the M2P, xenstore and the
//! event channel device.

#[cfg(not(feature = "hw"))]
fn main() {
    eprintln!("hwprobe needs --features hw");
    std::process::exit(2);
}

#[cfg(feature = "hw")]
fn main() {
    std::process::exit(hw::run());
}

#[cfg(feature = "hw")]
mod hw {
    use hypervisor::abi::domctl::{self as dc, XenDomctl};
    use hypervisor::abi::memory as xm;
    use hypervisor::abi::sysctl::{self as sc, XenSysctl};
    use hypervisor::abi::vcpu::VcpuGuestContext;
    use hypervisor::privcmd::Privcmd;
    use hypervisor::types::PAGE_SIZE;
    use hypervisor::{DomId, Mfn, Xen, XS_NO_TX};
    use zerocopy::{FromBytes, FromZeros, IntoBytes};

    struct P {
        fails: u32,
    }
    impl P {
        fn check<T, E: std::fmt::Display>(
            &mut self,
            what: &str,
            r: Result<T, E>,
            detail: impl FnOnce(&T) -> String,
        ) -> Option<T> {
            match r {
                Ok(v) => {
                    println!("PROBE ok {what}: {}", detail(&v));
                    Some(v)
                }
                Err(e) => {
                    println!("PROBE FAIL {what}: {e}");
                    self.fails += 1;
                    None
                }
            }
        }
        fn expect(&mut self, what: &str, ok: bool, detail: String) {
            if ok {
                println!("PROBE ok {what}: {detail}");
            } else {
                println!("PROBE FAIL {what}: {detail}");
                self.fails += 1;
            }
        }
    }

    pub fn run() -> i32 {
        let mut p = P { fails: 0 };
        let guest: Option<u16> = std::env::args().nth(1).and_then(|s| s.parse().ok());
        let Some(mut x) = p.check("open", Privcmd::open(), |x| format!("{:?}", x.interface()))
        else {
            return 1;
        };

        let mut extra = [0u8; 16];
        p.check(
            "xen_version(extraversion)",
            x.xen_version(1, &mut extra),
            |_| {
                String::from_utf8_lossy(&extra)
                    .trim_end_matches('\0')
                    .to_string()
            },
        );
        let mut caps = [0u8; 1024];
        p.check(
            "xen_version(capabilities)",
            x.xen_version(3, &mut caps),
            |_| {
                String::from_utf8_lossy(&caps)
                    .trim_end_matches('\0')
                    .to_string()
            },
        );

        let mut s = XenSysctl::new(sc::XEN_SYSCTL_PHYSINFO);
        p.check("sysctl physinfo", x.sysctl(&mut s, &mut []), |_| {
            let pi: sc::SysctlPhysinfo = s.payload();
            format!(
                "cpus {} total_pages {} free {} max_mfn {:#x}",
                pi.nr_cpus, pi.total_pages, pi.free_pages, pi.max_mfn
            )
        });

        let mut s = XenSysctl::new(sc::XEN_SYSCTL_GETDOMAININFOLIST);
        s.set_payload(&sc::SysctlGetDomainInfoList {
            first_domain: 0,
            max_domains: 16,
            ..Default::default()
        });
        let mut list = vec![0u8; 16 * 112];
        if p.check(
            "sysctl getdomaininfolist",
            x.sysctl(&mut s, &mut list),
            |_| String::new(),
        )
        .is_some()
        {
            let l: sc::SysctlGetDomainInfoList = s.payload();
            let mut doms = Vec::new();
            for i in 0..l.num_domains as usize {
                if let Ok(d) =
                    dc::DomctlGetDomainInfo::read_from_bytes(&list[i * 112..(i + 1) * 112])
                {
                    doms.push(format!(
                        "d{} pages {} vcpus {} flags {:#x}",
                        d.domain, d.tot_pages, d.nr_online_vcpus, d.flags
                    ));
                }
            }
            p.expect(
                "getdomaininfolist contents",
                l.num_domains >= 1 && l.buffer == 0,
                format!("{} domains: {}", l.num_domains, doms.join("; ")),
            );
        }

        let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, 0);
        p.check("domctl getdomaininfo(0)", x.domctl(&mut d, &mut []), |_| {
            let i: dc::DomctlGetDomainInfo = d.payload();
            format!(
                "dom {} tot_pages {} iv {:#x}",
                d.domain, i.tot_pages, d.interface_version
            )
        });

        // The M2P: maximum_ram_page, machphys_mfn_list, one chunk read from DOMID_XEN.
        let maxmfn = p.check(
            "memory_op maximum_ram_page",
            x.memory_op(xm::XENMEM_MAXIMUM_RAM_PAGE as u32, &mut [], &mut []),
            |v| format!("{v:#x}"),
        );
        let mut arg = xm::MachphysMfnList {
            max_extents: 4,
            ..Default::default()
        };
        let mut chunks = [0u64; 4];
        if p.check(
            "memory_op machphys_mfn_list",
            x.memory_op(
                xm::XENMEM_MACHPHYS_MFN_LIST as u32,
                arg.as_mut_bytes(),
                chunks.as_mut_bytes(),
            ),
            |_| String::new(),
        )
        .is_some()
        {
            p.expect(
                "machphys_mfn_list contents",
                arg.nr_extents >= 1 && arg.extent_start == 0,
                format!("{} chunks, first {:#x}", arg.nr_extents, chunks[0]),
            );
            let mut page = vec![0u8; PAGE_SIZE];
            let mut errs = [0i32; 1];
            if p.check(
                "foreign_read DOMID_XEN (M2P)",
                x.foreign_read(DomId::XEN, &[Mfn::new(chunks[0])], &mut page, &mut errs),
                |_| format!("err {}", errs[0]),
            )
            .is_some()
            {
                let entries: Vec<u64> = page
                    .chunks_exact(8)
                    .take(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect();
                p.expect(
                    "M2P page mapped",
                    errs[0] == 0,
                    format!("first entries {entries:x?} (max_mfn {maxmfn:?})"),
                );
            }
        }

        // xenstore.
        p.check(
            "xs get_domain_path(0)",
            x.xs_get_domain_path(DomId::DOM0),
            |s| s.clone(),
        );
        p.check(
            "xs directory /local/domain",
            x.xs_directory(XS_NO_TX, "/local/domain"),
            |v| v.join(","),
        );
        p.check(
            "xs write",
            x.xs_write(XS_NO_TX, "/xi-probe/a", b"hello"),
            |()| String::new(),
        );
        let r = x.xs_read(XS_NO_TX, "/xi-probe/a");
        p.check("xs read", r, |v| String::from_utf8_lossy(v).into_owned());
        p.check(
            "xs get_perms",
            x.xs_get_perms(XS_NO_TX, "/xi-probe/a"),
            |v| format!("{v:?}"),
        );
        p.check("xs watch", x.xs_watch("/xi-probe", "tok"), |()| {
            String::new()
        });
        p.check(
            "xs read_watch (initial)",
            x.xs_read_watch(2_000_000_000),
            |e| format!("{e:?}"),
        );
        if let Some(tx) = p.check("xs transaction_start", x.xs_transaction_start(), |t| {
            t.to_string()
        }) {
            p.check(
                "xs write in tx",
                x.xs_write(tx, "/xi-probe/b", b"2"),
                |()| String::new(),
            );
            p.check("xs transaction_end", x.xs_transaction_end(tx, true), |()| {
                String::new()
            });
        }
        p.check(
            "xs read_watch (after write)",
            x.xs_read_watch(2_000_000_000),
            |e| format!("{e:?}"),
        );
        p.check("xs unwatch", x.xs_unwatch("/xi-probe", "tok"), |()| {
            String::new()
        });
        let r = x.xs_read(XS_NO_TX, "/xi-probe/missing");
        p.expect(
            "xs read of a missing node is ENOENT",
            r.as_ref().err().and_then(|e| e.errno()) == Some(hypervisor::Errno::ENOENT),
            format!("{r:?}"),
        );
        p.check("xs rm", x.xs_rm(XS_NO_TX, "/xi-probe"), |()| String::new());

        // The event channel device: an unbound port for dom0 itself, then unbind.
        if let Some(port) = p.check(
            "evtchn bind_unbound_port",
            x.evtchn_bind_unbound_port(DomId::DOM0),
            |port| port.get().to_string(),
        ) {
            p.check(
                "evtchn wait (nothing pending)",
                x.evtchn_wait(10_000_000),
                |v| format!("{v:?}"),
            );
            p.check("evtchn unbind", x.evtchn_unbind(port), |()| String::new());
        }

        if let Some(g) = guest {
            probe_guest(&mut p, &mut x, DomId::new(g));
        }
        println!("PROBE done: {} failures", p.fails);
        i32::from(p.fails > 0)
    }

    fn probe_guest(p: &mut P, x: &mut Privcmd, dom: DomId) {
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_PAUSEDOMAIN, dom.get());
        p.check("pause guest", x.domctl(&mut d, &mut []), |_| String::new());
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETVCPUCONTEXT, dom.get());
        d.set_payload(&dc::DomctlVcpuContext {
            vcpu: 0,
            ..Default::default()
        });
        let mut ctx = VcpuGuestContext::new_zeroed();
        let cr3 = p
            .check(
                "getvcpucontext",
                x.domctl(&mut d, ctx.as_mut_bytes()),
                |_| {
                    format!(
                        "rip {:#x} cr3 {:#x} kernel_sp {:#x}",
                        ctx.user_regs.rip, ctx.ctrlreg[3], ctx.kernel_sp
                    )
                },
            )
            .map(|_| ctx.ctrlreg[3] >> 12);
        if let Some(cr3) = cr3 {
            let mut arr = cr3.to_le_bytes();
            let mut d = XenDomctl::new(dc::XEN_DOMCTL_GETPAGEFRAMEINFO3, dom.get());
            d.set_payload(&dc::DomctlGetPageFrameInfo3 { num: 1, array: 0 });
            p.check("getpageframeinfo3(cr3)", x.domctl(&mut d, &mut arr), |_| {
                format!("{:#x}", u64::from_le_bytes(arr))
            });
            let mut page = vec![0u8; PAGE_SIZE];
            let mut errs = [0i32; 1];
            p.check(
                "foreign_read(cr3 page, read-only)",
                x.foreign_read(dom, &[Mfn::new(cr3)], &mut page, &mut errs),
                |_| {
                    format!(
                        "err {} nonzero bytes {}",
                        errs[0],
                        page.iter().filter(|&&b| b != 0).count()
                    )
                },
            );
        }
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_SHADOW_OP, dom.get());
        d.set_payload(&dc::DomctlShadowOp {
            op: dc::XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY,
            ..dc::DomctlShadowOp::new_zeroed()
        });
        p.check(
            "shadow_op enable_logdirty",
            x.domctl(&mut d, &mut []),
            |_| String::new(),
        );
        let mut info = XenDomctl::new(dc::XEN_DOMCTL_GETDOMAININFO, dom.get());
        let _ = x.domctl(&mut info, &mut []);
        let pages = 1u64 << 16;
        let mut bitmap = vec![0u8; (pages / 8) as usize];
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_SHADOW_OP, dom.get());
        d.set_payload(&dc::DomctlShadowOp {
            op: dc::XEN_DOMCTL_SHADOW_OP_CLEAN,
            pages,
            ..dc::DomctlShadowOp::new_zeroed()
        });
        p.check("shadow_op clean", x.domctl(&mut d, &mut bitmap), |_| {
            let s: dc::DomctlShadowOp = d.payload();
            format!(
                "pages {} dirty_count {} bits set {}",
                s.pages,
                s.stats.dirty_count,
                bitmap.iter().map(|b| b.count_ones()).sum::<u32>()
            )
        });
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_SHADOW_OP, dom.get());
        d.set_payload(&dc::DomctlShadowOp {
            op: dc::XEN_DOMCTL_SHADOW_OP_OFF,
            ..dc::DomctlShadowOp::new_zeroed()
        });
        p.check("shadow_op off", x.domctl(&mut d, &mut []), |_| {
            String::new()
        });
        let mut d = XenDomctl::new(dc::XEN_DOMCTL_UNPAUSEDOMAIN, dom.get());
        p.check("unpause guest", x.domctl(&mut d, &mut []), |_| {
            String::new()
        });
    }
}
