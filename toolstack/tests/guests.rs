//! The toy guests on the real model, created through the real builder from xl.cfg
//! text: boot, run, oracle checks at several stops (memory by PFN and console), the
//! suspend protocol (stream.md §5), resume in place and full save/restore.

use guest_model::{Stop, ToyParams};
use hypervisor::model::{Model, ModelConfig};
use hypervisor::DomId;
use toolstack::build::{self, BuildOptions, BuiltDomain, OracleCheck, Verdict};
use toolstack::config::DomainConfig;

fn model() -> Model {
    Model::new(ModelConfig {
        machine_frames: 16384,
    })
}

fn cfg(name: &str, guest: &str, extra: &str) -> DomainConfig {
    let text = format!(
        "name = \"{name}\"\nmemory = 4\nvcpus = 1\nkernel = \"toy:{guest}\"\nextra = \"{extra}\"\n"
    );
    DomainConfig::parse(&text, "test.cfg").expect("config parses")
}

fn console(m: &Model, dom: DomId) -> String {
    String::from_utf8(m.console_output(dom)).expect("console is UTF-8")
}

fn check(m: &mut Model, d: &BuiltDomain, p: &ToyParams, stop: Stop) -> guest_model::Status {
    let c = console(m, d.domid);
    let v = build::check_oracle(
        m,
        d.domid,
        p,
        &OracleCheck {
            stop,
            p2m: Some(&d.p2m),
            console: Some(&c),
        },
    )
    .expect("memory readable");
    match v {
        Verdict::Holds(s) => s,
        Verdict::Fails(e) => panic!("oracle fails: {e}\nconsole:\n{c}"),
    }
}

#[test]
fn counter_boots_from_config_and_oracle_holds() {
    let mut m = model();
    let c = cfg("counter", "counter", "pages=16 report=50");
    let p = build::toy_params(&c).unwrap().unwrap();
    let d = build::create(&mut m, &c, &BuildOptions::default()).expect("create");
    let mut last = 0;
    for _ in 0..4 {
        m.run(500_000);
        m.check_invariants().expect("invariants");
        let st = check(&mut m, &d, &p, Stop::Anywhere);
        assert!(st.steps >= last);
        last = st.steps;
    }
    assert!(last > 0, "the counter ran");
}
