//! Logging for PID 1 through the `log` facade, into the kernel log via `/dev/kmsg` as
//! `<level>linuxrc: ...` records (Documentation/ABI/testing/dev-kmsg), so that the kernel
//! timestamps every line and prints it on the console. Before devtmpfs is mounted, and whenever
//! /dev/kmsg cannot be written, lines go to stderr (the console) instead. Modelled on u-root's
//! `pkg/ulog/klog_linux.go`.
//!
//! The kernel rate-limits writes to /dev/kmsg per open file (10 records per 5 s unless
//! `printk.devkmsg=on`); a boot logs more than that, so the file is reopened every few records
//! rather than changing the system-wide sysctl.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::Mutex;

const REOPEN_EVERY: u32 = 8;

struct Klog {
    state: Mutex<(Option<std::fs::File>, u32)>,
}

static LOGGER: Klog = Klog {
    state: Mutex::new((None, 0)),
};

/// Installs the logger. Safe to call once; later calls only change the level.
pub fn init(debug: bool) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(if debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    });
}

fn syslog_level(l: Level) -> u8 {
    match l {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

impl Log for Klog {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let line = format!("<{}>linuxrc: {}\n", syslog_level(r.level()), r.args());
        let Ok(mut st) = self.state.lock() else {
            return;
        };
        if st.0.is_none() || st.1 >= REOPEN_EVERY {
            st.0 = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/kmsg")
                .ok();
            st.1 = 0;
        }
        st.1 += 1;
        let written =
            st.0.as_mut()
                .map(|f| f.write_all(line.as_bytes()).is_ok())
                .unwrap_or(false);
        if !written {
            // No kmsg yet: the console, without the <level> prefix.
            let _ = std::io::stderr().write_all(line.get(3..).unwrap_or(&line).as_bytes());
        }
    }

    fn flush(&self) {}
}
