#!/usr/bin/env python3
"""Regenerates glibc.tsv: what the C library's own fnmatch(3) says, flags 0, in the C locale
(the locale modprobe runs in), for hand-picked and pseudo-random patterns. kmod calls
fnmatch(pattern, modalias, 0) on modules.alias patterns; modules.rs must agree with it.

Python's fnmatch module is not POSIX fnmatch (it translates to a regex), so the real libc
function is called through ctypes. Usage: python3 gen.py > glibc.tsv (deterministic seed).
Format: '<1|0>\\t<pattern>\\t<string>' per line; no tabs, spaces or NULs in either field.
"""
import ctypes
import ctypes.util
import random
import platform

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.setlocale.restype = ctypes.c_char_p
LC_ALL = 6
assert libc.setlocale(LC_ALL, b"C") == b"C"
libc.fnmatch.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]


def fnmatch(p, s):
    return libc.fnmatch(p.encode(), s.encode(), 0) == 0


HAND = [
    # modules.alias shapes
    ("pci:v00008086d0000100Esv*sd*bc*sc*i*", "pci:v00008086d0000100Esv00001AF4sd00001100bc02sc00i00"),
    ("virtio:d00000001v*", "virtio:d00000001v00001AF4"),
    ("usb:v*p*d*dc*dsc*dp*ic09isc*ip*in*", "usb:v1D6Bp0002d0606dc09dsc00dp01ic09isc00ip00in00"),
    ("acpi*:PNP0A0[38]:*", "acpi:PNP0A08:"),
    ("of:N*T*Cfsl,mpc5200-ata[A-Z]*", "of:NataTCfsl,mpc5200-ataC"),
    ("dmi*:rvn[Ll][Ee][Nn][Oo][Vv][Oo]*", "dmi:rvnLENOVO:x"),
    # escapes
    ("a\\*b", "a*b"), ("a\\*b", "axb"), ("\\", ""), ("a\\", "a"), ("a\\", "a\\"), ("\\\\", "\\"),
    ("\\a", "a"), ("[\\]]", "]"), ("[\\]]", "\\"), ("[a\\-z]", "-"), ("[a\\-z]", "m"), ("[\\", "["),
    ("[\\", "[\\"), ("*\\", "x"),
    # unclosed brackets
    ("[", "["), ("[a", "[a"), ("[a", "a"), ("a[", "a["), ("[!", "[!"), ("[]", "[]"), ("[!]", "[!]"),
    ("[]a", "[]a"), ("*[", "x["), ("[[:alpha:]", "[[:alpha:]"), ("[[:alpha:]", "a"),
    # ] first
    ("[]]", "]"), ("[]a]", "a"), ("[]a]", "]"), ("[!]]", "]"), ("[!]]", "a"), ("[!]a]", "b"),
    ("[^]]", "x"), ("[]-a]", "^"), ("[]-a]", "b"),
    # ranges
    ("[a-c]", "b"), ("[a-c]", "d"), ("[c-a]", "b"), ("[a-]", "-"), ("[-a]", "-"), ("[a-c-e]", "d"),
    ("[a-c-e]", "-"), ("[--0]", "."), ("[!a-c]", "b"), ("[!a-c]", "z"), ("[0-9A-F]", "E"),
    ("[[-]]", "["), ("[[-]]", "]"), ("[a-[]", "Z"),
    # classes
    ("[[:alpha:]]", "a"), ("[[:alpha:]]", "1"), ("[[:digit:]]", "7"), ("[![:digit:]]", "7"),
    ("[[:xdigit:]]", "f"), ("[[:xdigit:]]", "g"), ("[[:upper:][:digit:]]", "Q"),
    ("[[:punct:]]", "-"), ("[[:foo:]]", "f"), ("[[:foo:]]", "["), ("[[:foo:]a]", "a"),
    ("[a[:foo:]]", "a"), ("[[:alpha:]-z]", "-"), ("[[:alpha:]-z]", "a"), ("[[:alpha:]", "x"),
    ("[[:alpha]]", "a"), ("[[:alpha]]", "a]"), ("[[:]]", ":"), ("[[::]]", ":"), ("[[:z:]]", "z"),
    ("[[:Alpha:]]", "a"), ("[[=a=]]", "a"), ("[[=a=]]", "b"), ("[[.a.]]", "a"), ("[[.-.]]", "-"),
    ("[[=ab=]]", "a"), ("[[.ab.]]", "a"), ("[[=a]", "a"), ("[[.a]", "a"), ("[[.a.]-c]", "b"),
    ("[[:Alpha:]]", "a]"), ("[[:zz:]]", "z]"), ("[[:zz:]]", "z"), ("[[:a-z:]]", "a"),
    ("[[:a-z:]]", ":]"), ("[[:alpha:]]", "["), ("[x[.a]", "x"), ("[[.a]", "[[.a]"),
    ("[[=a]", "="), ("[[=ab=]]", "a]"), ("[[=]=]]", "]"), ("[a[:foo:]]", "b"),
    ("[!a[:foo:]]", "a"), ("[!a[:foo:]]", "b"), ("[a-[:alpha:]]", "b"), ("[a-[:alpha:]]", "-"),
    ("[a-[.z.]]", "m"), ("[ba-[:alpha:]]", "b"), ("[a-[=b=]]", "a"), ("[a-[x]", "x"),
    ("[[=a=]-c]", "b"), ("[[=a=]-c]", "-"), ("[[=a=]-c]", "c"), ("[[=a=]-c]", "a"), ("[[.a.]-z]", "m"), ("[\\a-\\z]", "m"), ("[a-\\]]", "]"),
    # stars
    ("*", ""), ("**", "x"), ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
    ("*a*a*a*a", "aaaa"), ("a*", "a"), ("*?", ""), ("?*?", "ab"), ("*/*", "a/b"), (".*", ".x"),
    ("*x", ".x"),
]

ATOMS = ["a", "b", "z", "A", "0", "-", "]", "[", "!", "^", "\\", "*", "?", ":", ".", "=",
         "[:alpha:]", "[:digit:]", "[:foo:]", "[=a=]", "[.a.]", "[a-c]", "[!b]", "[]a]"]
CHARS = "abzA0-][!^\\:.=x"


def main():
    rng = random.Random(20261130)
    rows = []
    seen = set()

    def add(p, s):
        if (p, s) not in seen:
            seen.add((p, s))
            rows.append((fnmatch(p, s), p, s))

    for p, s in HAND:
        add(p, s)
    while len(rows) < 2500:
        atoms = [rng.choice(ATOMS) for _ in range(rng.randint(1, 6))]
        p = "".join(atoms)
        for _ in range(3):
            # Most strings are an instance of the pattern read naively (each atom replaced by
            # itself or by one random character), so that a fair share of rows match.
            if rng.random() < 0.7:
                s = "".join(a if len(a) == 1 and rng.random() < 0.6 else rng.choice(CHARS)
                            for a in atoms)
            else:
                s = "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 5)))
            add(p, s)
    print("# fnmatch(pattern, string, 0) in the C locale, as computed by %s %s; see gen.py"
          % platform.libc_ver())
    for m, p, s in rows:
        print("%d\t%s\t%s" % (m, p, s))


main()
