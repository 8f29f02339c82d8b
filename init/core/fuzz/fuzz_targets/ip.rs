//! cargo-fuzz target `ip`: see `check_ip` in tests/fuzz/checks.rs, which the stable runner
//! (tests/fuzz.rs) calls too.
#![no_main]

#[path = "../../tests/fuzz/checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    checks::check_ip(data);
});
