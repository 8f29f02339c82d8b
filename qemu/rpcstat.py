#!/usr/bin/env python3
"""Counts the ONC RPC calls (RFC 5531) a server received, from a pcap of its loopback.

    qemu/rpcstat.py CAPTURE.pcap [MARK]

Used by qemu/bench.sh: tcpdump writes the capture on the harness namespace's `lo`, where QEMU's
user network reaches ganesha (and rpcbind). TCP streams towards a server port (default 2049,
111 and 20048) are reassembled by sequence number and split into RPC records (record marking,
RFC 5531 section 11); UDP datagrams are one message each. For every call the program, version
and procedure are counted, and for NFSv3 READ the replies' data bytes are summed.

Prints one `KEY=VALUE` line each, for the harness to read:
    total=N            calls in all
    proc.NAME=N        calls per procedure (NFSv3 names, NFSv4 COMPOUND, MOUNT, PORTMAP)
    read_bytes=N       file bytes the server returned in NFSv3 READ replies
    wire_bytes=N       payload bytes the server sent, all streams
    gaps=N             streams with a hole (tcpdump dropped packets: the counts are too low)
    before_mark=N      calls before the first NFSv3 LOOKUP of the name MARK (the guest makes it
                       when it reaches a point of interest; -1 when there is none)
Exits 2 on a file that is not a pcap this script reads.
"""
import os
import struct
import sys

NFS3 = ["NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
        "CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK",
        "READDIR", "READDIRPLUS", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT"]
PROGRAMS = {100003: "NFS", 100005: "MOUNT", 100000: "PORTMAP", 100021: "NLM", 100227: "NFSACL"}


def packets(data):
    """Yields (linktype, frame) for each record of a classic pcap file."""
    if len(data) < 24:
        raise ValueError("shorter than a pcap header")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise ValueError("not a classic pcap file (pcapng is not read)")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        incl, orig = struct.unpack(end + "II", data[off + 8:off + 16])
        frame = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if incl < orig:
            raise ValueError("a packet was cut by the snap length: capture with -s 0")
        yield linktype, frame


def ip_payload(linktype, frame):
    """The IPv4 packet inside a link-layer frame, or None."""
    if linktype == 1:  # Ethernet (Linux loopback)
        if len(frame) < 14 or frame[12:14] != b"\x08\x00":
            return None
        return frame[14:]
    if linktype == 113:  # Linux cooked (SLL)
        return frame[16:] if frame[14:16] == b"\x08\x00" else None
    if linktype == 276:  # Linux cooked v2 (SLL2)
        return frame[20:] if frame[0:2] == b"\x08\x00" else None
    if linktype in (101, 228):  # raw IPv4
        return frame
    return None


def segments(data):
    """Yields (proto, src, sport, dst, dport, seq, payload) for IPv4 TCP and UDP packets."""
    for linktype, frame in packets(data):
        ip = ip_payload(linktype, frame)
        if ip is None or len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack(">H", ip[2:4])[0]
        proto = ip[9]
        src, dst = ip[12:16], ip[16:20]
        body = ip[ihl:total]
        if proto == 6 and len(body) >= 20:
            sport, dport, seq = struct.unpack(">HHI", body[:8])
            doff = (body[12] >> 4) * 4
            syn = body[13] & 2
            # A SYN takes one sequence number: the data starts at seq + 1.
            yield "tcp", src, sport, dst, dport, (seq + 1) if syn else seq, body[doff:], syn
        elif proto == 17 and len(body) >= 8:
            sport, dport = struct.unpack(">HH", body[:4])
            yield "udp", src, sport, dst, dport, 0, body[8:], 0


def reassemble(parts):
    """One TCP direction's bytes from (seq, payload) parts in capture order; (bytes, had_gap)."""
    if not parts:
        return b"", False
    base = parts[0][0]
    chunks = sorted(((seq - base) % (1 << 32), p) for seq, p in parts if p)
    out = bytearray()
    gap = False
    for rel, p in chunks:
        if rel > len(out):
            gap = True
            break
        if rel + len(p) > len(out):
            out += p[len(out) - rel:]
    return bytes(out), gap


def records(stream):
    """Splits a TCP RPC stream into messages (fragments joined)."""
    off, msg = 0, bytearray()
    while off + 4 <= len(stream):
        mark = struct.unpack(">I", stream[off:off + 4])[0]
        n = mark & 0x7FFFFFFF
        if off + 4 + n > len(stream):
            break
        msg += stream[off + 4:off + 4 + n]
        off += 4 + n
        if mark & 0x80000000:
            yield bytes(msg)
            msg = bytearray()


def call_name(msg):
    """(xid, name) of an RPC call, or None."""
    if len(msg) < 24:
        return None
    xid, mtype, rpcvers, prog, vers, proc = struct.unpack(">IIIIII", msg[:24])
    if mtype != 0 or rpcvers != 2:
        return None
    if prog == 100003 and vers == 3 and proc < len(NFS3):
        return xid, NFS3[proc]
    if prog == 100003 and vers == 4:
        return xid, "COMPOUND" if proc == 1 else "NULL4"
    return xid, "%s%d.%d" % (PROGRAMS.get(prog, "prog%d." % prog), vers, proc)


def lookup3_name(msg):
    """The name of an NFSv3 LOOKUP call (RFC 1813 LOOKUP3args), or None."""
    try:
        off = 24
        for _ in range(2):  # credential, verifier: flavor, length, body
            n = struct.unpack(">I", msg[off + 4:off + 8])[0]
            off += 8 + (n + 3) // 4 * 4
        n = struct.unpack(">I", msg[off:off + 4])[0]  # the directory's file handle
        off += 4 + (n + 3) // 4 * 4
        n = struct.unpack(">I", msg[off:off + 4])[0]
        return msg[off + 4:off + 4 + n].decode("utf-8", "replace")
    except struct.error:
        return None


def read3_range(msg):
    """(offset, count) of an NFSv3 READ call (RFC 1813 READ3args), or None."""
    try:
        off = 24
        for _ in range(2):
            n = struct.unpack(">I", msg[off + 4:off + 8])[0]
            off += 8 + (n + 3) // 4 * 4
        n = struct.unpack(">I", msg[off:off + 4])[0]
        off += 4 + (n + 3) // 4 * 4
        return struct.unpack(">QI", msg[off:off + 12])
    except struct.error:
        return None


def read3_bytes(msg):
    """The data count of an NFSv3 READ reply (RFC 1813 READ3res), or 0."""
    try:
        off = 8  # xid, REPLY
        if struct.unpack(">I", msg[off:off + 4])[0] != 0:  # MSG_ACCEPTED
            return 0
        vlen = struct.unpack(">I", msg[off + 8:off + 12])[0]
        off += 12 + (vlen + 3) // 4 * 4
        accept, status = struct.unpack(">II", msg[off:off + 8])
        if accept != 0 or status != 0:
            return 0
        off += 8
        if struct.unpack(">I", msg[off:off + 4])[0]:  # post_op_attr follows
            off += 84
        return struct.unpack(">I", msg[off + 4:off + 8])[0]
    except struct.error:
        return 0


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    mark = argv[2] if len(argv) > 2 else None
    # RPCSTAT_READS=FILE: every NFSv3 READ call's offset and count, one "OFFSET COUNT" a line.
    reads = open(os.environ["RPCSTAT_READS"], "w") if os.environ.get("RPCSTAT_READS") else None
    ports = {2049, 111, 20048}
    with open(argv[1], "rb") as f:
        data = f.read()
    flows = {}
    udp = []
    try:
        for proto, src, sport, dst, dport, seq, payload, _syn in segments(data):
            if proto == "udp":
                if dport in ports:
                    udp.append((payload, "call"))
                elif sport in ports:
                    udp.append((payload, "reply"))
                continue
            if dport in ports or sport in ports:
                flows.setdefault((src, sport, dst, dport), []).append((seq, payload))
    except ValueError as e:
        print("rpcstat: %s: %s" % (argv[1], e), file=sys.stderr)
        return 2
    counts, total, read_bytes, wire, gaps = {}, 0, 0, 0, 0
    pending_reads = set()
    calls, replies = [], []
    before_mark = -1
    for (src, sport, dst, dport), parts in flows.items():
        stream, gap = reassemble(parts)
        gaps += gap
        if dport in ports:
            calls.extend(records(stream))
        else:
            wire += len(stream)
            replies.extend(records(stream))
    for payload, kind in udp:
        (calls if kind == "call" else replies).append(payload)
        if kind == "reply":
            wire += len(payload)
    for msg in calls:
        c = call_name(msg)
        if c is None:
            continue
        xid, name = c
        counts[name] = counts.get(name, 0) + 1
        total += 1
        if name == "READ":
            pending_reads.add(xid)
            if reads is not None:
                reads.write("%d %d\n" % (read3_range(msg) or (-1, -1)))
        elif name == "LOOKUP" and mark and before_mark < 0 and lookup3_name(msg) == mark:
            before_mark = total - 1

    for msg in replies:
        if len(msg) >= 8 and struct.unpack(">I", msg[:4])[0] in pending_reads:
            read_bytes += read3_bytes(msg)
    print("total=%d" % total)
    for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        print("proc.%s=%d" % (name, n))
    print("read_bytes=%d" % read_bytes)
    print("wire_bytes=%d" % wire)
    print("gaps=%d" % gaps)
    print("before_mark=%d" % before_mark)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
