#!/usr/bin/env python3
"""Counts the ONC RPC calls (RFC 5531) a server received, from a pcap of its loopback.

    qemu/rpcstat.py CAPTURE.pcap [MARK]
    qemu/rpcstat.py --v4-clients CAPTURE.pcap

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
    gaps=N             streams with a hole (tcpdump dropped packets: the counts may be low)
    before_mark=N      calls before the first NFSv3 LOOKUP of the name MARK (the guest makes it
                       when it reaches a point of interest; -1 when there is none)

With --v4-clients, one line per NFS client address instead (port 2049 only): `client=IP
calls=N compounds=N` and then KEY=N for client_id (COMPOUNDs that create or destroy the
client's identity: EXCHANGE_ID, CREATE_SESSION, DESTROY_SESSION, SETCLIENTID), gaps, and each
NFSv4 op seen (v4_clients; qemu/storm-report.py imports it).

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
    """One TCP direction's bytes from (seq, payload) parts in capture order: (islands, had_gap),
    the stream's contiguous runs in order. A hole (packets the capture lost) ends one run and
    starts the next, so that what follows a hole is still counted (see records)."""
    if not parts:
        return [], False
    base = parts[0][0]
    chunks = sorted(((seq - base) % (1 << 32), p) for seq, p in parts if p)
    islands, out, start = [], bytearray(), 0
    for rel, p in chunks:
        end = start + len(out)
        if rel > end:
            islands.append(bytes(out))
            out, start = bytearray(p), rel
        elif rel + len(p) > end:
            out += p[end - rel:]
    islands.append(bytes(out))
    return [i for i in islands if i], len(islands) > 1


def resync(stream):
    """The offset of the first whole RPC message in a run that follows a hole (it may begin in
    the middle of a lost one): a last-fragment record mark of a plausible length, then a call
    (RPC version 2 of a program this script knows) or a reply (accepted or denied)."""
    for off in range(max(len(stream) - 19, 0)):
        mark, _xid, mtype, a, b = struct.unpack(">IIIII", stream[off:off + 20])
        if not mark & 0x80000000 or not 24 <= mark & 0x7FFFFFFF <= 1 << 24:
            continue
        if (mtype == 0 and a == 2 and b in PROGRAMS) or (mtype == 1 and a in (0, 1)):
            return off
    return len(stream)


def records(islands):
    """Splits a TCP RPC stream (reassemble's islands) into messages (fragments joined)."""
    for i, stream in enumerate(islands):
        off, msg = (resync(stream) if i else 0), bytearray()
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


def rpc_body(msg):
    """The offset of a call's arguments, after the RPC header, credential and verifier."""
    off = 24
    for _ in range(2):  # credential, verifier: flavor, length, body
        n = struct.unpack(">I", msg[off + 4:off + 8])[0]
        off += 8 + (n + 3) // 4 * 4
    return off


def lookup3_name(msg):
    """The name of an NFSv3 LOOKUP call (RFC 1813 LOOKUP3args), or None."""
    try:
        off = rpc_body(msg)
        n = struct.unpack(">I", msg[off:off + 4])[0]  # the directory's file handle
        off += 4 + (n + 3) // 4 * 4
        n = struct.unpack(">I", msg[off:off + 4])[0]
        return msg[off + 4:off + 4 + n].decode("utf-8", "replace")
    except struct.error:
        return None


def read3_range(msg):
    """(offset, count) of an NFSv3 READ call (RFC 1813 READ3args), or None."""
    try:
        off = rpc_body(msg)
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


def connections(data, ports):
    """The RPC traffic of a capture: (tcp, udp). tcp lists one (src, sport, dst, dport, islands,
    had_gap) per TCP connection and direction whose either port is in ports, in the order of
    their first packets; udp lists (src, sport, dst, dport, payload) per datagram. A SYN that
    moves the sequence number starts a new connection on the same addresses and ports: the
    Linux NFS client reconnects from its old source port. Raises ValueError on a file that is
    not a pcap this script reads."""
    conns, udp = {}, []
    for proto, src, sport, dst, dport, seq, payload, syn in segments(data):
        if dport not in ports and sport not in ports:
            continue
        if proto == "udp":
            udp.append((src, sport, dst, dport, payload))
            continue
        key = (src, sport, dst, dport)
        parts = conns.setdefault(key, [[]])
        if syn and parts[-1] and parts[-1][0][0] != seq:
            parts.append([])
        parts[-1].append((seq, payload))
    tcp = []
    for (src, sport, dst, dport), each in conns.items():
        for parts in each:
            stream, gap = reassemble(parts)
            tcp.append((src, sport, dst, dport, stream, gap))
    return tcp, udp


# NFSv4 operation numbers (RFC 8881 section 16.2 / 18; 3-39 are NFSv4.0's, RFC 7530).
NFS4_OPS = {
    3: "ACCESS", 4: "CLOSE", 5: "COMMIT", 6: "CREATE", 7: "DELEGPURGE", 8: "DELEGRETURN",
    9: "GETATTR", 10: "GETFH", 11: "LINK", 12: "LOCK", 13: "LOCKT", 14: "LOCKU", 15: "LOOKUP",
    16: "LOOKUPP", 17: "NVERIFY", 18: "OPEN", 19: "OPENATTR", 20: "OPEN_CONFIRM",
    21: "OPEN_DOWNGRADE", 22: "PUTFH", 23: "PUTPUBFH", 24: "PUTROOTFH", 25: "READ",
    26: "READDIR", 27: "READLINK", 28: "REMOVE", 29: "RENAME", 30: "RENEW", 31: "RESTOREFH",
    32: "SAVEFH", 33: "SECINFO", 34: "SETATTR", 35: "SETCLIENTID", 36: "SETCLIENTID_CONFIRM",
    37: "VERIFY", 38: "WRITE", 39: "RELEASE_LOCKOWNER", 40: "BACKCHANNEL_CTL",
    41: "BIND_CONN_TO_SESSION", 42: "EXCHANGE_ID", 43: "CREATE_SESSION", 44: "DESTROY_SESSION",
    45: "FREE_STATEID", 46: "GET_DIR_DELEGATION", 47: "GETDEVICEINFO", 48: "GETDEVICELIST",
    49: "LAYOUTCOMMIT", 50: "LAYOUTGET", 51: "LAYOUTRETURN", 52: "SECINFO_NO_NAME",
    53: "SEQUENCE", 54: "SET_SSV", 55: "TEST_STATEID", 56: "WANT_DELEGATION",
    57: "DESTROY_CLIENTID", 58: "RECLAIM_COMPLETE", 10044: "ILLEGAL",
}
# How to step over an op's arguments: a byte count, "opaque" (one variable-length opaque:
# PUTFH's file handle, LOOKUP's name) or "bitmap" (GETATTR's uint32 array). The decoder stops
# after an op not listed here: it has the op's number, and skipping the rest of the args of
# OPEN, EXCHANGE_ID and the like is not needed to count them.
NFS4_ARGS = {
    3: 4, 9: "bitmap", 10: 0, 15: "opaque", 16: 0, 22: "opaque", 23: 0, 24: 0,
    25: 16 + 8 + 4,  # READ: stateid, offset, count
    27: 0, 31: 0, 32: 0,
    53: 16 + 4 + 4 + 4 + 4,  # SEQUENCE: sessionid, seqid, slotid, highest slotid, cachethis
    58: 4,
}
# The ops that create or tear down a client's identity on the server: a clean mount makes one
# EXCHANGE_ID and one or two CREATE_SESSION per server (NFSv4.1+), or SETCLIENTID (NFSv4.0).
CLIENT_ID_OPS = ("EXCHANGE_ID", "CREATE_SESSION", "DESTROY_SESSION", "SETCLIENTID")


def compound_ops(msg):
    """(minorversion, [op names]) of an NFSv4 COMPOUND call (RFC 8881 COMPOUND4args: tag,
    minorversion, argarray), or None for another message. The list holds the ops up to and
    including the first whose arguments NFS4_ARGS cannot step over; a message cut short ends
    the list where the cut is."""
    c = call_name(msg)
    if c is None or c[1] != "COMPOUND":
        return None
    try:
        off = rpc_body(msg)
        n = struct.unpack(">I", msg[off:off + 4])[0]  # tag
        off += 4 + (n + 3) // 4 * 4
        minor, nops = struct.unpack(">II", msg[off:off + 8])
        off += 8
    except struct.error:
        return None
    ops = []
    for _ in range(nops):
        if off + 4 > len(msg):
            break
        op = struct.unpack(">I", msg[off:off + 4])[0]
        off += 4
        ops.append(NFS4_OPS.get(op, "op%d" % op))
        skip = NFS4_ARGS.get(op)
        if skip is None:
            break
        if skip == "opaque" or skip == "bitmap":
            if off + 4 > len(msg):
                break
            n = struct.unpack(">I", msg[off:off + 4])[0]
            skip = 4 + ((n + 3) // 4 * 4 if skip == "opaque" else 4 * n)
        off += skip
    return minor, ops


def v4_clients(data, port=2049):
    """Per client (its IPv4 address, dotted), what it asked a server on port of a capture: a
    dict of counts: "calls" (RPC calls of any kind), "compounds", one count per op name (each
    op of each COMPOUND, as far as compound_ops decodes), "client_id" (COMPOUNDs with one of
    CLIENT_ID_OPS) and "gaps" (its connections with a hole: what a hole hid is not counted). Raises
    ValueError on a file that is not a pcap this script reads."""
    tcp, _udp = connections(data, {port})
    per = {}
    for src, _sport, _dst, dport, stream, gap in tcp:
        if dport != port:
            continue
        c = per.setdefault(".".join(map(str, src)), {"calls": 0, "compounds": 0,
                                                     "client_id": 0, "gaps": 0})
        c["gaps"] += gap
        for msg in records(stream):
            if call_name(msg) is None:
                continue  # a reply to a backchannel call, or not RPC at all
            c["calls"] += 1
            comp = compound_ops(msg)
            if comp is None:
                continue
            c["compounds"] += 1
            for name in comp[1]:
                c[name] = c.get(name, 0) + 1
            if any(name in CLIENT_ID_OPS for name in comp[1]):
                c["client_id"] += 1
    return per


def main_v4_clients(path):
    try:
        with open(path, "rb") as f:
            per = v4_clients(f.read())
    except (OSError, ValueError) as e:
        print("rpcstat: %s: %s" % (path, e), file=sys.stderr)
        return 2
    for client, c in sorted(per.items()):
        rest = sorted((k, v) for k, v in c.items() if k not in ("calls", "compounds"))
        print(" ".join(["client=%s calls=%d compounds=%d" % (client, c["calls"], c["compounds"])]
                       + ["%s=%d" % kv for kv in rest]))
    return 0


def main(argv):
    if len(argv) == 3 and argv[1] == "--v4-clients":
        return main_v4_clients(argv[2])
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    mark = argv[2] if len(argv) > 2 else None
    # RPCSTAT_READS=FILE: every NFSv3 READ call's offset and count, one "OFFSET COUNT" a line.
    reads = open(os.environ["RPCSTAT_READS"], "w") if os.environ.get("RPCSTAT_READS") else None
    ports = {2049, 111, 20048}
    with open(argv[1], "rb") as f:
        data = f.read()
    try:
        tcp, udp = connections(data, ports)
    except ValueError as e:
        print("rpcstat: %s: %s" % (argv[1], e), file=sys.stderr)
        return 2
    counts, total, read_bytes, wire, gaps = {}, 0, 0, 0, 0
    pending_reads = set()
    calls, replies = [], []
    before_mark = -1
    for _src, _sport, _dst, dport, stream, gap in tcp:
        gaps += gap
        if dport in ports:
            calls.extend(records(stream))
        else:
            wire += sum(map(len, stream))
            replies.extend(records(stream))
    for _src, _sport, _dst, dport, payload in udp:
        if dport in ports:
            calls.append(payload)
        else:
            replies.append(payload)
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
