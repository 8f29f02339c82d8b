//! `<module>.<param>[=<value>]` words of the kernel command line: parameters for modules that
//! are loaded after boot. The kernel applies these words only to built-in code
//! (`Documentation/admin-guide/kernel-parameters.rst`, "module parameters can be specified in
//! two ways"); for a loadable module, modprobe(8) reads them from `/proc/cmdline` (kmod's
//! `kcmdline` parsing) and passes them to init_module(2). linuxrc loads modules itself with
//! finit_module(2), so it does the same: [`ModuleParams`] collects the words, and
//! [`ModuleParams::for_module`] writes the parameter string the kernel's `parse_args` reads
//! back (`kernel/params.c`, `next_arg`).
//!
//! Only the kernel command line carries them, as with modprobe's reading of `/proc/cmdline`:
//! `/etc/unionroot.conf` is the same for every node and holds unionroot's keys; a module word
//! there is a warning (modprobe.d(5) would be the place for cluster-wide options, and the host
//! tool's `kernel_args` puts words on the command line).
//!
//! A word is one only when `<module>` is a module name (ASCII letters, digits, `_`, `-`; `-` and
//! `_` are one character: [`module_name`] canonicalises it) and `<param>` is non-empty
//! printable ASCII without spaces. Anything else (`.x=1`, `mod.=1`, `systemd.unit=` for a
//! module that is never loaded) belongs to the kernel or the real init and is left alone, as
//! modprobe leaves it.
//!
//! Values are the admin's bytes and the kernel accepts nearly any: they are passed unchanged,
//! quoted when the kernel's `isspace()` (ASCII whitespace and Latin-1 0xa0, `lib/ctype.c`) would
//! split them. A value cannot hold a `"` (the command-line tokenizer removes them), so quoting
//! cannot be closed early: no value can smuggle in a second parameter.

use crate::modules::module_name;
use std::collections::BTreeMap;

/// One module's parameter as written on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleParam {
    pub name: String,
    pub value: Option<String>,
}

/// The module parameters of a command line, by canonical module name (`-` folded to `_`), each
/// module's in command-line order (a later word for the same parameter wins, in the kernel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleParams(BTreeMap<String, Vec<ModuleParam>>);

/// The kernel's `isspace()`: `lib/ctype.c` marks 0xa0 (Latin-1 no-break space) as space too.
fn kernel_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0xa0)
}

/// A module name as modprobe accepts one on the command line, canonical (`-` as `_`).
fn module_part(m: &str) -> Option<String> {
    let ok = !m.is_empty()
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then(|| module_name(m))
}

/// A parameter name: printable ASCII without spaces (`=` cannot be in it: the key ends there).
fn param_part(p: &str) -> bool {
    !p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic() && b != b'"')
}

impl ModuleParams {
    /// Splits a command-line key `<module>.<param>` (the text before `=`) at its first dot;
    /// `None` when it is not a module parameter's key.
    pub fn split_key(key: &str) -> Option<(String, &str)> {
        let (module, param) = key.split_once('.')?;
        let module = module_part(module)?;
        param_part(param).then_some((module, param))
    }

    /// Records the word `key[=value]`; `false` (and nothing recorded) when `key` is not
    /// `<module>.<param>`.
    pub fn add(&mut self, key: &str, value: Option<&str>) -> bool {
        let Some((module, param)) = Self::split_key(key) else {
            return false;
        };
        self.push(&module, param, value);
        true
    }

    /// Adds a parameter to a module given by name (canonicalised here).
    pub fn push(&mut self, module: &str, param: &str, value: Option<&str>) {
        self.0
            .entry(module_name(module))
            .or_default()
            .push(ModuleParam {
                name: param.to_string(),
                value: value.map(String::from),
            });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every module's parameters, by canonical module name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[ModuleParam])> {
        self.0.iter().map(|(m, p)| (m.as_str(), p.as_slice()))
    }

    /// The parameter string for finit_module(2) for `module` (any spelling): `p=v p2="a b" flag`,
    /// empty when the command line gives it none.
    pub fn for_module(&self, module: &str) -> String {
        let Some(params) = self.0.get(&module_name(module)) else {
            return String::new();
        };
        let words: Vec<String> = params
            .iter()
            .map(|p| match &p.value {
                None => p.name.clone(),
                Some(v) if v.bytes().any(kernel_space) => format!("{}=\"{v}\"", p.name),
                Some(v) => format!("{}={v}", p.name),
            })
            .collect();
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_module_dot_param() {
        assert_eq!(
            ModuleParams::split_key("virtio-net.napi_tx"),
            Some(("virtio_net".into(), "napi_tx"))
        );
        assert_eq!(
            ModuleParams::split_key("i915.a.b"),
            Some(("i915".into(), "a.b"))
        );
        for not in [
            ".x",
            "mod.",
            "quiet",
            "a b.c",
            "mod.a b",
            "m\u{e9}.x",
            "m/x.y",
            "m.\x01",
        ] {
            assert_eq!(ModuleParams::split_key(not), None, "{not:?}");
        }
    }

    #[test]
    fn the_parameter_string_quotes_what_the_kernel_would_split() {
        let mut p = ModuleParams::default();
        assert!(p.add("ixgbe.allow_unsupported_sfp", Some("1")));
        assert!(p.add("ixgbe.debug", None));
        assert!(p.add("ixgbe.name", Some("a b")));
        assert!(p.add("ixgbe.tab", Some("a\tb")));
        assert!(p.add("ixgbe.nbsp", Some("\u{e0}")));
        assert!(p.add("ixgbe.empty", Some("")));
        assert!(!p.add("ixgbe.", Some("1")));
        assert_eq!(
            p.for_module("ixgbe"),
            "allow_unsupported_sfp=1 debug name=\"a b\" tab=\"a\tb\" nbsp=\"\u{e0}\" empty="
        );
        assert_eq!(p.for_module("e1000"), "");
    }
}
