//! linuxrc: PID 1 of a unionroot node. Wires the phases in `boot` together and owns the one
//! fatal path: PID 1 must never panic or return ("Attempted to kill init" scrolls the reason
//! away), so every failure is logged with its phase, reason and hint, and then the node drops to
//! a rescue shell, waits, reboots or halts as `unionroot.onfail=` says.

#![forbid(unsafe_code)]

use linuxrc::boot::{self, Failure, Timings};
use linuxrc::klog;
use linuxrc::sys::{LinuxSys, Sys};
use std::time::Duration;
use unionroot_core::cmdline::OnFail;
use unionroot_core::validate::Line;

fn main() {
    let mut sys = LinuxSys::default();
    klog::init(false);
    std::panic::set_hook(Box::new(|info| {
        log::error!("FATAL: internal error: {info}");
        log::error!("hint: this is a linuxrc bug; please report it with the lines above");
        wait_forever("internal error");
    }));
    let mut on_fail = OnFail::Shell;
    if let Err(f) = run(&mut sys, &mut on_fail) {
        fatal(&mut sys, &f, on_fail);
    }
}

fn run(sys: &mut dyn Sys, on_fail: &mut OnFail) -> Result<(), Failure> {
    let mut t = Timings::new(sys.now());
    boot::early_mounts(sys)?;
    let cfg = boot::read_config(sys)?;
    *on_fail = cfg.on_fail;
    klog::init(cfg.debug);
    t.mark("mounts+config", sys.now());
    boot::load_modules(sys, &cfg)?;
    t.mark("modules", sys.now());
    let mut net = boot::network(sys, &cfg)?;
    t.mark("network", sys.now());
    let pivot = boot::root_is_real(sys);
    if pivot {
        log::info!("/ is a real filesystem (init=/linuxrc from an NFS root): will pivot_root");
    }
    let plan = boot::root_plan(&cfg, net.as_ref(), pivot)?;
    // The hand-off names the root actually used, which may not be what a DHCP server offered.
    if let (Some(n), Some(base)) = (
        net.as_mut(),
        plan.lowers.first().and_then(|l| l.candidates.first()),
    ) {
        n.info.root_server = Some(base.server);
        // Built from a validated NfsRoot, so it is a line; if not, say nothing rather than it.
        n.info.root_path = Line::parse(&base.source).ok();
    }
    boot::root(sys, &plan, net.as_ref(), |sys| {
        t.mark("root", sys.now());
        log::info!("exec {} ({})", plan.init, t.summary(sys.now()));
    })
}

fn fatal(sys: &mut dyn Sys, f: &Failure, on_fail: OnFail) -> ! {
    log::error!("FATAL: {}: {}", f.phase, f.reason);
    if !f.hint.is_empty() {
        log::error!("hint: {}", f.hint);
    }
    sys.sync();
    match on_fail {
        OnFail::Shell if boot::has_shell(sys) => loop {
            log::error!("starting the rescue shell /bin/sh; leave it to start it again");
            let status = std::process::Command::new("/bin/sh").status();
            if let Err(e) = status {
                log::error!("cannot start /bin/sh: {e}");
                wait_forever(&f.reason);
            }
        },
        OnFail::Reboot => {
            log::error!("rebooting in 10 s (unionroot.onfail=reboot)");
            std::thread::sleep(Duration::from_secs(10));
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT);
            wait_forever(&f.reason)
        }
        OnFail::Halt => {
            log::error!("powering off (unionroot.onfail=halt)");
            let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
            wait_forever(&f.reason)
        }
        _ => wait_forever(&f.reason),
    }
}

/// Never returns: the node stays up with the reason on the console, repeated so that a console
/// attached later still sees it.
fn wait_forever(reason: &str) -> ! {
    loop {
        log::error!("boot failed; waiting (no rescue shell in the initramfs): {reason}");
        std::thread::sleep(Duration::from_secs(60));
    }
}
