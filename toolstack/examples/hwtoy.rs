//! hwtoy: the toy guests' oracle on a real dom0 (for `scripts/hw-check.sh` step 5).
//!
//!     cargo build --release -p toolstack --features hw --example hwtoy
//!     hwtoy CONFIG DOMID     # prints ORACLE holds|fails …; exit 0 when it holds
//!
//! Reads the guest's status block and oracle region through the hw backend (the
//! domain may be running: the check allows one half-done step) and runs the oracle of
//! the toy `CONFIG` names. Lives beside the CLI until `xi` grows an oracle command.

#[cfg(not(feature = "hw"))]
fn main() {
    eprintln!("hwtoy needs --features hw");
    std::process::exit(2);
}

#[cfg(feature = "hw")]
fn main() {
    use guest_model::Stop;
    use hypervisor::DomId;
    use toolstack::build::toys::{check_oracle, toy_params, OracleCheck, Verdict};
    use toolstack::config::DomainConfig;

    let args: Vec<String> = std::env::args().collect();
    let (Some(cfg), Some(dom)) = (args.get(1), args.get(2).and_then(|s| s.parse::<u16>().ok()))
    else {
        eprintln!("usage: hwtoy CONFIG DOMID");
        std::process::exit(2);
    };
    let run = || -> Result<Verdict, String> {
        let config = DomainConfig::load(std::path::Path::new(cfg)).map_err(|e| e.to_string())?;
        let params = toy_params(&config)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{cfg}: not a toy guest"))?;
        let mut x = hypervisor::privcmd::Privcmd::open().map_err(|e| e.to_string())?;
        check_oracle(
            &mut x,
            DomId::new(dom),
            &params,
            &OracleCheck {
                stop: Stop::Anywhere,
                ..OracleCheck::default()
            },
        )
        .map_err(|e| e.to_string())
    };
    match run() {
        Ok(Verdict::Holds(s)) => println!("ORACLE holds: domain {dom}: {s:?}"),
        Ok(Verdict::Fails(e)) => {
            println!("ORACLE fails: domain {dom}: {e}");
            std::process::exit(1);
        }
        Err(e) => {
            println!("ORACLE error: domain {dom}: {e}");
            std::process::exit(1);
        }
    }
}
