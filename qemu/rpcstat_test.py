#!/usr/bin/env python3
"""Tests of qemu/rpcstat.py on captures built here, byte by byte: TCP reassembly and record
marking, the NFSv4 COMPOUND decoder and the per-client counts of qemu/storm-report.py, and the
KEY=VALUE lines qemu/bench.sh reads.

    python3 -m unittest discover -s qemu -p '*_test.py'     (make unit runs it)
"""
import contextlib
import io
import os
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rpcstat  # noqa: E402

SERVER = bytes([192, 168, 77, 11])
NODE_A = bytes([192, 168, 77, 101])
NODE_B = bytes([192, 168, 77, 102])


def pcap(frames):
    """A classic little-endian pcap with Ethernet frames."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i, f in enumerate(frames):
        out += struct.pack("<IIII", i, 0, len(f), len(f)) + f
    return out


def tcp(src, sport, dst, dport, seq, payload=b"", syn=False):
    """One Ethernet frame holding an IPv4 TCP segment (checksums left zero: nothing checks)."""
    seg = struct.pack(">HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02 if syn else 0x18,
                      65535, 0, 0) + payload
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(seg), 0, 0, 64, 6, 0, src, dst) + seg
    return b"\x00" * 12 + b"\x08\x00" + ip


def opaque(b):
    return struct.pack(">I", len(b)) + b + b"\x00" * (-len(b) % 4)


def call(xid, prog, vers, proc, args):
    """An RPC call with AUTH_SYS-like credential and a null verifier."""
    cred = struct.pack(">I", 1) + opaque(b"\x00" * 20)
    return struct.pack(">IIIIII", xid, 0, 2, prog, vers, proc) + cred + struct.pack(">II", 0, 0) + args


def compound(xid, minor, ops):
    return call(xid, 100003, 4, 1, opaque(b"") + struct.pack(">II", minor, len(ops)) + b"".join(ops))


def record(msg):
    return struct.pack(">I", 0x80000000 | len(msg)) + msg


SEQUENCE = struct.pack(">I", 53) + b"\x11" * 16 + struct.pack(">IIII", 7, 0, 0, 0)
PUTFH = struct.pack(">I", 22) + opaque(b"\x22" * 30)  # 30: the handle's padding is skipped too
READ = struct.pack(">I", 25) + b"\x33" * 16 + struct.pack(">QI", 4096, 65536)
GETATTR = struct.pack(">I", 9) + struct.pack(">III", 2, 0x10011A, 0xB0A23A)
# EXCHANGE_ID's arguments (verifier, owner, flags, ...) are not decoded: only its number.
EXCHANGE_ID = struct.pack(">I", 42) + b"\x44" * 8 + opaque(b"Linux NFSv4.2 (none)") + b"\x00" * 12
CREATE_SESSION = struct.pack(">I", 43) + b"\x55" * 40


class CompoundOps(unittest.TestCase):
    def test_ops_are_stepped_over_to_the_first_undecoded_one(self):
        msg = compound(1, 2, [SEQUENCE, PUTFH, READ, GETATTR, EXCHANGE_ID, PUTFH])
        self.assertEqual(rpcstat.compound_ops(msg),
                         (2, ["SEQUENCE", "PUTFH", "READ", "GETATTR", "EXCHANGE_ID"]))

    def test_exchange_id_alone(self):
        self.assertEqual(rpcstat.compound_ops(compound(2, 1, [EXCHANGE_ID])), (1, ["EXCHANGE_ID"]))

    def test_cut_short_ends_the_list(self):
        msg = compound(3, 2, [SEQUENCE, PUTFH, READ])
        self.assertEqual(rpcstat.compound_ops(msg[:-30]), (2, ["SEQUENCE", "PUTFH"]))

    def test_not_a_compound(self):
        self.assertIsNone(rpcstat.compound_ops(call(4, 100003, 4, 0, b"")))
        self.assertIsNone(rpcstat.compound_ops(call(5, 100003, 3, 6, b"")))


class V4Clients(unittest.TestCase):
    def test_counts_per_client_across_segments_and_reconnects(self):
        ex = record(compound(10, 2, [EXCHANGE_ID]))
        cs = record(compound(11, 2, [CREATE_SESSION]))
        rd = record(compound(12, 2, [SEQUENCE, PUTFH, READ]))
        null = record(call(13, 100003, 4, 0, b""))
        a1 = ex + cs + rd
        cut = len(ex) + len(cs) + 10  # the READ compound straddles two segments, which arrive
        isn, isn2 = 1000, 7_000_000    # out of order; then A reconnects from the same port
        frames = [
            tcp(NODE_A, 900, SERVER, 2049, isn, syn=True),
            tcp(NODE_A, 900, SERVER, 2049, isn + 1, null + a1[:cut]),
            tcp(NODE_A, 900, SERVER, 2049, isn + 1 + len(null) + cut, a1[cut:]),
            tcp(SERVER, 2049, NODE_A, 900, 5, record(b"\x00\x00\x00\x0a" + b"\x00" * 20)),
            tcp(NODE_B, 901, SERVER, 2049, 50, syn=True),
            tcp(NODE_B, 901, SERVER, 2049, 51, ex),
            tcp(NODE_A, 900, SERVER, 2049, isn2, syn=True),
            tcp(NODE_A, 900, SERVER, 2049, isn2 + 1, ex),
        ]
        # Swap the READ's two halves.
        frames[1], frames[2] = frames[2], frames[1]
        per = rpcstat.v4_clients(pcap(frames))
        self.assertEqual(set(per), {"192.168.77.101", "192.168.77.102"})
        a = per["192.168.77.101"]
        self.assertEqual((a["calls"], a["compounds"], a["client_id"], a["gaps"]), (5, 4, 3, 0))
        self.assertEqual((a["EXCHANGE_ID"], a["CREATE_SESSION"], a["SEQUENCE"], a["READ"]),
                         (2, 1, 1, 1))
        b = per["192.168.77.102"]
        self.assertEqual((b["calls"], b["client_id"], b["EXCHANGE_ID"]), (1, 1, 1))

    def test_a_hole_is_counted(self):
        ex = record(compound(10, 2, [EXCHANGE_ID]))
        frames = [tcp(NODE_A, 900, SERVER, 2049, 100, syn=True),
                  tcp(NODE_A, 900, SERVER, 2049, 101 + 500, ex)]
        self.assertEqual(rpcstat.v4_clients(pcap(frames))["192.168.77.101"]["gaps"], 1)

    def test_calls_after_a_hole_are_still_counted(self):
        # Three EXCHANGE_IDs; the capture lost the middle of the second (a packet tcpdump
        # dropped). The run after the hole starts inside it: the third is found again.
        ex = [record(compound(20 + i, 2, [EXCHANGE_ID])) for i in range(3)]
        at = [101, 101 + len(ex[0]), 101 + len(ex[0]) + len(ex[1])]
        frames = [tcp(NODE_A, 900, SERVER, 2049, 100, syn=True),
                  tcp(NODE_A, 900, SERVER, 2049, at[0], ex[0]),
                  tcp(NODE_A, 900, SERVER, 2049, at[1], ex[1][:10]),
                  tcp(NODE_A, 900, SERVER, 2049, at[1] + 30, ex[1][30:] + ex[2])]
        a = rpcstat.v4_clients(pcap(frames))["192.168.77.101"]
        self.assertEqual((a["gaps"], a["EXCHANGE_ID"], a["calls"]), (1, 2, 2))
        # Without the resync, only the first would count.
        islands, gap = rpcstat.reassemble([(at[0], ex[0]), (at[1], ex[1][:10]),
                                           (at[1] + 30, ex[1][30:] + ex[2])])
        self.assertTrue(gap)
        self.assertEqual(len(islands), 2)
        self.assertEqual(rpcstat.resync(islands[1]), len(ex[1]) - 30)

    def test_not_a_pcap(self):
        with self.assertRaises(ValueError):
            rpcstat.v4_clients(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40)


class BenchLines(unittest.TestCase):
    """The lines qemu/bench.sh parses stay as they were."""

    def test_nfs3_counts_read_bytes_and_mark(self):
        fh = opaque(b"\x01" * 32)
        lookup = call(20, 100003, 3, 3, fh + opaque(b"probe-mark"))
        read = call(21, 100003, 3, 6, fh + struct.pack(">QI", 0, 4096))
        # READ3res: accepted, null verifier, success, NFS3_OK, no attributes, count, eof, data
        reply = struct.pack(">IIIIIIIIII", 21, 1, 0, 0, 0, 0, 0, 0, 4096, 1) + opaque(b"\x00" * 4096)
        frames = [tcp(NODE_A, 700, SERVER, 2049, 1, syn=True),
                  tcp(NODE_A, 700, SERVER, 2049, 2, record(read) + record(lookup)),
                  tcp(SERVER, 2049, NODE_A, 700, 1, record(reply))]
        with tempfile.NamedTemporaryFile(suffix=".pcap") as f:
            f.write(pcap(frames))
            f.flush()
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                rc = rpcstat.main(["rpcstat.py", f.name, "probe-mark"])
        self.assertEqual(rc, 0)
        self.assertEqual(out.getvalue().splitlines(), [
            "total=2", "proc.LOOKUP=1", "proc.READ=1", "read_bytes=4096",
            "wire_bytes=%d" % len(record(reply)), "gaps=0", "before_mark=1"])


if __name__ == "__main__":
    unittest.main()
