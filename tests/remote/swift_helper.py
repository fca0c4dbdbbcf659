#!/usr/bin/python3
"""swift_helper.py: the parts of tests/remote/swift.sh that are quicker in
one Python process: free loopback ports, and the three one-device rings
(what swift-ring-builder create/add/rebalance makes, without its 1.8 s of
start-up per call). Debian's python3-swift only: run with /usr/bin/python3.

  swift_helper.py ports N               N distinct free loopback TCP ports,
                                        below the ephemeral range
  swift_helper.py rings DIR DEV APORT CPORT OPORT
                                        DIR/{account,container,object}.ring.gz
"""
import os
import random
import socket
import sys


def ports(n):
    # Outside the kernel's ephemeral range (net.ipv4.ip_local_port_range),
    # so that no outgoing connection takes one between this choice and the
    # servers' bind; swift.sh holds a lock from here until its servers
    # listen, so that two Swifts starting at once never choose alike. A
    # machine whose ephemeral range leaves no room gets ports from it.
    low, high = (int(v) for v in open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    spans = [(first, last) for first, last in ((10000, low - 1), (high + 1, 65535))
             if last - first >= 1000]
    rng = random.SystemRandom()
    chosen = []
    while len(chosen) < n:
        if spans:
            port = rng.randint(*rng.choice(spans))
            if port in chosen:
                continue
        else:
            port = 0
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            port = s.getsockname()[1]
        except OSError:
            continue  # in use (or lingering in TIME_WAIT): another one
        finally:
            s.close()
        if port not in chosen:
            chosen.append(port)
    print(" ".join(str(p) for p in chosen))


def rings(where, dev, aport, cport, oport):
    from swift.common.ring import RingBuilder

    for name, port in (("account", aport), ("container", cport), ("object", oport)):
        # part power 4, 1 replica, min_part_hours 1: one device holds all.
        b = RingBuilder(4, 1, 1)
        b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1",
                   "port": int(port), "device": dev, "weight": 1.0, "meta": ""})
        b.rebalance()
        b.save(os.path.join(where, name + ".builder"))
        b.get_ring().save(os.path.join(where, name + ".ring.gz"))


def main(argv):
    if len(argv) == 3 and argv[1] == "ports":
        ports(int(argv[2]))
    elif len(argv) == 7 and argv[1] == "rings":
        rings(*argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
